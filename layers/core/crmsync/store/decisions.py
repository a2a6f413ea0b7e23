"""Which automation rule decisions were carried out, on the state table, so a redelivered event acts once.

Items (pk / sk):
- DECISION#<rule id>#v<rule version>#<scope> / DECISION   a rule's actions were carried out for that scope: an entity
  version (`<external id>@<version ms>`), an entity (`<external id>`) or a customer (`customer:<id>`), per the rule's
  `once_per`; with when, the receipt and the actions, for operators.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import conditional, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


def decision_pk(rule_id: str, rule_version: int, scope: str) -> str:
    return f"DECISION#{rule_id}#v{rule_version}#{scope}"


@dataclass(frozen=True)
class DecisionStore:
    table: str
    client: DynamoDBClient | None = None

    @property
    def _ddb(self) -> DynamoDBClient:
        return self.client or clients.dynamodb()

    def done(self, rule_id: str, rule_version: int, scope: str) -> bool:
        try:
            answer = self._ddb.get_item(
                TableName=self.table,
                Key={"pk": {"S": decision_pk(rule_id, rule_version, scope)}, "sk": {"S": "DECISION"}},
                ConsistentRead=True,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return "Item" in answer

    def mark(self, rule_id: str, rule_version: int, scope: str, record: dict[str, Any]) -> bool:
        """Record that the decision was carried out; False when it already was (by a concurrent or earlier run)."""
        return conditional(
            self._ddb.put_item,
            TableName=self.table,
            Item={
                "pk": {"S": decision_pk(rule_id, rule_version, scope)},
                "sk": {"S": "DECISION"},
                "data": {"S": json.dumps(record, separators=(",", ":"), sort_keys=True)},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )
