"""Customer aggregates for the automation rules, on the state table: one item per entity's contribution.

Items (pk / sk):
- AGG#<customer id> / C#<KIND>#<entity external id>    what one order, payment, refund or dispute adds to its customer's
                                                        aggregates: version, rank, receipt_id, data (JSON)
- AGG#<customer id> / C#FAIL#<payment external id>#<version ms>   one payment failure (a failed attempt at a version)
- AGG#<customer id> / TAGS                              tags the rules gave the customer (a string set, ADD only)

Exact under duplicated and concurrent events without any read-modify-write: every contribution is one conditional
put keyed by the entity, guarded by its version exactly like canonical state (newer wins; at an equal version the
state further along wins; the same receipt may write its own version again). A redelivered event writes the same
item again; two events of one entity racing leave the newer; different entities never touch each other's items.
Sums, counts and time windows are folded from the items when read (crmsync.rules.facts), so nothing can count twice.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import conditional, translate
from crmsync.store.state import VERSION_GUARD

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

PREFIX = "AGG#"


@dataclass(frozen=True)
class Contribution:
    """One entity's (or one failure's) part in its customer's aggregates."""

    sk: str  # C#<KIND>#<external id>[#<version>]
    version: int  # source version, epoch milliseconds
    rank: int
    receipt_id: str
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.sk.split("#", 2)[1]


@dataclass(frozen=True)
class AggregateStore:
    table: str
    client: DynamoDBClient | None = None

    @property
    def _ddb(self) -> DynamoDBClient:
        return self.client or clients.dynamodb()

    def put(self, customer_id: str, contribution: Contribution) -> bool:
        """Record a contribution unless a newer one of the same entity is stored; True when written."""
        item: dict[str, AttributeValueTypeDef] = {
            "pk": {"S": PREFIX + customer_id},
            "sk": {"S": contribution.sk},
            "version": {"N": str(contribution.version)},
            "rank": {"N": str(contribution.rank)},
            "receipt_id": {"S": contribution.receipt_id},
            "data": {"S": json.dumps(contribution.data, separators=(",", ":"), sort_keys=True)},
        }
        return conditional(
            self._ddb.put_item,
            TableName=self.table,
            Item=item,
            ConditionExpression=VERSION_GUARD,
            ExpressionAttributeNames={"#rank": "rank"},
            ExpressionAttributeValues={
                ":v": {"N": str(contribution.version)},
                ":r": {"N": str(contribution.rank)},
                ":rid": {"S": contribution.receipt_id},
            },
        )

    def contributions(self, customer_id: str) -> list[Contribution]:
        """Every contribution of the customer (consistent read)."""
        found: list[Contribution] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :c)",
            "ExpressionAttributeValues": {":pk": {"S": PREFIX + customer_id}, ":c": {"S": "C#"}},
            "ConsistentRead": True,
        }
        try:
            while True:
                page = self._ddb.query(**kwargs)
                found.extend(
                    Contribution(
                        sk=i["sk"]["S"],
                        version=int(i["version"]["N"]),
                        rank=int(i["rank"]["N"]),
                        receipt_id=i["receipt_id"]["S"],
                        data=json.loads(i["data"]["S"]),
                    )
                    for i in page.get("Items", [])
                )
                if "LastEvaluatedKey" not in page:
                    return found
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    # --- tags -----------------------------------------------------------------------------------
    def add_tags(self, customer_id: str, tags: list[str]) -> set[str]:
        """Add tags (a set: adding one twice changes nothing); returns every tag the customer now has."""
        if not tags:
            return self.tags(customer_id)
        try:
            answer = self._ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": PREFIX + customer_id}, "sk": {"S": "TAGS"}},
                UpdateExpression="ADD tags :t",
                ExpressionAttributeValues={":t": {"SS": sorted(set(tags))}},
                ReturnValues="ALL_NEW",
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return set(answer.get("Attributes", {}).get("tags", {}).get("SS", []))

    def tags(self, customer_id: str) -> set[str]:
        try:
            answer = self._ddb.get_item(
                TableName=self.table,
                Key={"pk": {"S": PREFIX + customer_id}, "sk": {"S": "TAGS"}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return set(answer.get("Item", {}).get("tags", {}).get("SS", []))

    # --- merges ---------------------------------------------------------------------------------
    def merge(self, merged: str, survivor: str) -> int:
        """Move every contribution and tag of `merged` to `survivor` (version-guarded there), then delete them from
        `merged`. Idempotent and resumable: a repeat finds nothing left, or puts the same items again."""
        moved = 0
        for contribution in self.contributions(merged):
            self.put(survivor, contribution)
            self._delete(merged, contribution.sk)
            moved += 1
        tags = self.tags(merged)
        if tags:
            self.add_tags(survivor, sorted(tags))
            self._delete(merged, "TAGS")
        return moved

    def _delete(self, customer_id: str, sk: str) -> None:
        try:
            self._ddb.delete_item(TableName=self.table, Key={"pk": {"S": PREFIX + customer_id}, "sk": {"S": sk}})
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
