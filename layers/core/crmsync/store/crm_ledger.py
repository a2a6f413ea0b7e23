"""The CRM id ledger: which CRM record each create-once record (HubSpot notes and tasks) became, in the state table.

HubSpot cannot upsert notes or tasks by a unique property, and the write path makes no read or search call, so
crmsync remembers what it created. Item (state table):
- CRMREC#<backend>#<object type>#<external id> / CRMREC
    state      claimed (a writer is creating it) | created | unknown (the create got no clear answer)
    crm_id     the CRM's id, once created
    token      the claiming writer's token; claimed_at (epoch seconds)

A create is claimed first (one writer wins), then sent, then recorded; a create HubSpot refused releases its claim;
one without a clear answer stays `unknown`, so it is never sent twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import StoreError, conditional, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

SK = "CRMREC"
LedgerState = Literal["claimed", "created", "unknown"]


@dataclass(frozen=True)
class LedgerEntry:
    key: str
    state: LedgerState
    crm_id: str | None = None
    claimed_at: float = 0.0
    token: str = ""


@dataclass(frozen=True)
class CrmIdLedger:
    table: str
    backend: str = "hubspot"
    client: DynamoDBClient | None = None
    clock: Callable[[], float] = time.time

    @property
    def _ddb(self) -> DynamoDBClient:
        return self.client or clients.dynamodb()

    def _pk(self, object_type: str, key: str) -> str:
        return f"CRMREC#{self.backend}#{object_type}#{key}"

    def lookup(self, object_type: str, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        """The entries of those keys that have one (consistent reads, 100 keys a request)."""
        wanted = list(dict.fromkeys(keys))
        by_pk = {self._pk(object_type, key): key for key in wanted}
        found: dict[str, LedgerEntry] = {}
        for start in range(0, len(wanted), 100):
            pending: dict[str, Any] = {
                self.table: {
                    "Keys": [
                        {"pk": {"S": self._pk(object_type, k)}, "sk": {"S": SK}} for k in wanted[start : start + 100]
                    ],
                    "ConsistentRead": True,
                }
            }
            for _ in range(10):
                try:
                    answer = self._ddb.batch_get_item(RequestItems=pending)
                except (ClientError, BotoCoreError) as exc:
                    raise translate(exc) from exc
                for item in answer.get("Responses", {}).get(self.table, []):
                    key = by_pk[item["pk"]["S"]]
                    found[key] = LedgerEntry(
                        key=key,
                        state=_state(item["state"]["S"]),
                        crm_id=item["crm_id"]["S"] if "crm_id" in item else None,
                        claimed_at=float(item["claimed_at"]["N"]) if "claimed_at" in item else 0.0,
                        token=item["token"]["S"] if "token" in item else "",
                    )
                pending = dict(answer.get("UnprocessedKeys") or {})
                if not pending:
                    break
                time.sleep(0.05)
            else:
                raise StoreError("BatchGetItem: keys left unprocessed after retries")
        return found

    def claim(self, object_type: str, key: str, token: str) -> bool:
        """Claim the create of a record nobody has claimed; False when someone has (claimed, created or unknown)."""
        return conditional(
            self._ddb.put_item,
            TableName=self.table,
            Item={
                "pk": {"S": self._pk(object_type, key)},
                "sk": {"S": SK},
                "state": {"S": "claimed"},
                "token": {"S": token},
                "claimed_at": {"N": f"{self.clock():.3f}"},
            },
            ConditionExpression="attribute_not_exists(pk)",
        )

    def record(self, object_type: str, key: str, crm_id: str) -> None:
        """The record was created with this CRM id."""
        self._update(object_type, key, "SET #s = :s, crm_id = :id", {":s": {"S": "created"}, ":id": {"S": crm_id}})

    def mark_unknown(self, object_type: str, key: str, token: str) -> None:
        """The claimed create got no clear answer: it may exist. Never created again on its own."""
        self._update(
            object_type, key, "SET #s = :s", {":s": {"S": "unknown"}, ":t": {"S": token}}, condition="#tok = :t"
        )

    def release(self, object_type: str, key: str, token: str) -> None:
        """The claimed create was refused (nothing was created): the next attempt may claim it again."""
        self._delete(object_type, key, condition="#tok = :t AND #s = :claimed", values={":t": token})

    def forget(self, object_type: str, key: str) -> None:
        """Drop the entry whatever it says (an operator who checked the CRM)."""
        self._delete(object_type, key)

    def _update(
        self, object_type: str, key: str, expression: str, values: dict[str, Any], condition: str | None = None
    ) -> None:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"pk": {"S": self._pk(object_type, key)}, "sk": {"S": SK}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": {"#s": "state", **({"#tok": "token"} if condition else {})},
            "ExpressionAttributeValues": values,
        }
        if condition:
            kwargs["ConditionExpression"] = condition
        conditional(self._ddb.update_item, **kwargs)  # refused: another writer's claim, theirs to settle

    def _delete(
        self, object_type: str, key: str, condition: str | None = None, values: dict[str, str] | None = None
    ) -> None:
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "Key": {"pk": {"S": self._pk(object_type, key)}, "sk": {"S": SK}},
        }
        if condition:
            kwargs["ConditionExpression"] = condition
            kwargs["ExpressionAttributeNames"] = {"#tok": "token", "#s": "state"}
            kwargs["ExpressionAttributeValues"] = {":claimed": {"S": "claimed"}} | {
                k: {"S": v} for k, v in (values or {}).items()
            }
        conditional(self._ddb.delete_item, **kwargs)


def _state(value: str) -> LedgerState:
    if value == "claimed":
        return "claimed"
    return "created" if value == "created" else "unknown"
