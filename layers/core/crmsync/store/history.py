"""Reading back what conversion did in a period, from the lineage items of the state table (read only).

Lineage items (`<entity pk> / LINEAGE#<version>#<receipt id>#<step>`, crmsync.store.state) of step `convert` name the
domain events each conversion published; the rules dry run evaluates rules against them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class Converted:
    pk: str
    entry: dict[str, Any]  # the lineage entry: receipt_id, source, topic, source_version, events, customer_id


@dataclass(frozen=True)
class History:
    table: str
    client: DynamoDBClient | None = None

    def converted_between(self, since: str, until: str) -> Iterator[Converted]:
        """Every conversion whose entity version lies in [since, until) (UTC ISO 8601 strings, as lineage sorts them),
        in table order; a paged scan, so the caller may stop early."""
        ddb = self.client or clients.dynamodb()
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "FilterExpression": "sk BETWEEN :a AND :b",
            "ExpressionAttributeValues": {":a": {"S": f"LINEAGE#{since}"}, ":b": {"S": f"LINEAGE#{until}"}},
            "ProjectionExpression": "pk, sk, #d",
            "ExpressionAttributeNames": {"#d": "data"},
        }
        while True:
            try:
                page = ddb.scan(**kwargs)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc
            for item in page.get("Items", []):
                sk = item["sk"]["S"]
                if not sk.endswith("#convert") or sk >= f"LINEAGE#{until}":
                    continue
                entry = json.loads(item["data"]["S"])
                if entry.get("step") == "convert" and entry.get("events"):
                    yield Converted(item["pk"]["S"], entry)
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
