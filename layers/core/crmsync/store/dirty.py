"""Dirty entities: what the CRM has not been sent the newest stored state of yet, when the CRM writer defers its
writes to the flusher (CRM_FLUSH_DELAY_SECONDS > 0; crmsync.flusher). In the state table:

- DIRTY#<shard> / <entity>#<key>   one entity (customer, order, payment, refund, dispute) to write:
    since     epoch ms of the first mark since it was last written; later marks keep it (if_not_exists), so an
              entity that keeps changing still comes due
    touched   epoch ms of the latest mark
    rev       marks so far (ADD 1 each). The flusher deletes the item only while rev is what it read before it read
              the entity's state: a mark that lands during a flush is never lost
    event     the latest marking event's detail without its data, and its detail-type (JSON): what a poison entity is
              dead-lettered with (a redrive sends it back through the CRM queue)
    attempts, retry_at, error   failed flushes of the entity, when it may be tried again, and the last error
- FLUSH#LEASE / LEASE   the flusher's lease (token, until epoch ms): one flusher at a time writes

A mark is an update (if_not_exists keeps `since`), so marks go in TransactWriteItems of up to 100 updates (the
batch API only puts); a transaction that conflicts with another writer of one of its items is cancelled whole and
its marks are then made one by one (each is idempotent). Clears go the same way, as conditional deletes. The shard
(crc32 of the sort key) spreads a burst of marks over SHARDS partitions; listing is one query per shard.
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import ConditionFailed, conditional, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import TransactWriteItemTypeDef

SHARDS = 8
PREFIX = "DIRTY#"
LEASE_PK = "FLUSH#LEASE"
LEASE_SK = "LEASE"
TRANSACTION_LIMIT = 100  # actions in one TransactWriteItems
MAX_ERROR_CHARS = 1000
NAMES = {"#since": "since", "#touched": "touched", "#rev": "rev", "#event": "event"}


@dataclass(frozen=True)
class Touch:
    """One entity a domain event touched, with the event (detail without data, and its detail-type)."""

    entity: str
    key: str
    event: dict[str, Any] | None = None


@dataclass(frozen=True)
class DirtyItem:
    entity: str
    key: str
    since: int  # epoch ms
    touched: int  # epoch ms
    rev: int
    attempts: int = 0
    retry_at: int = 0  # epoch ms; 0 = now
    error: str = ""
    event: dict[str, Any] | None = None

    @property
    def sort_key(self) -> str:
        return f"{self.entity}#{self.key}"


def shard_of(sort_key: str) -> int:
    return zlib.crc32(sort_key.encode()) % SHARDS


def item_key(entity: str, key: str) -> dict[str, Any]:
    sort_key = f"{entity}#{key}"
    return {"pk": {"S": f"{PREFIX}{shard_of(sort_key)}"}, "sk": {"S": sort_key}}


def _millis(seconds: float) -> int:
    return int(seconds * 1000)


@dataclass(frozen=True)
class DirtyStore:
    table: str
    client: DynamoDBClient | None = None
    clock: Callable[[], float] = time.time

    @property
    def _ddb(self) -> DynamoDBClient:
        return self.client or clients.dynamodb()

    # --- the CRM writer's side ------------------------------------------------------------------
    def mark(self, touches: Sequence[Touch]) -> None:
        """Mark each touched entity dirty (the last touch of an entity wins its `event`); idempotent."""
        latest = {(t.entity, t.key): t for t in touches}
        now = str(_millis(self.clock()))
        updates: list[dict[str, Any]] = []
        for touch in latest.values():
            values: dict[str, Any] = {":now": {"N": now}, ":one": {"N": "1"}}
            expression = "SET #since = if_not_exists(#since, :now), #touched = :now"
            if touch.event is not None:
                values[":event"] = {"S": json.dumps(touch.event, separators=(",", ":"), sort_keys=True)}
                expression += ", #event = :event"
            expression += " ADD #rev :one"
            updates.append(
                {
                    "TableName": self.table,
                    "Key": item_key(touch.entity, touch.key),
                    "UpdateExpression": expression,
                    "ExpressionAttributeNames": {k: v for k, v in NAMES.items() if k in expression},
                    "ExpressionAttributeValues": values,
                }
            )
        for start in range(0, len(updates), TRANSACTION_LIMIT):
            chunk = updates[start : start + TRANSACTION_LIMIT]
            if len(chunk) > 1 and self._transact([{"Update": u} for u in chunk]):
                continue
            for update in chunk:
                try:
                    self._ddb.update_item(**update)
                except (ClientError, BotoCoreError) as exc:
                    raise translate(exc) from exc

    # --- the flusher's side ---------------------------------------------------------------------
    def pending(self) -> list[DirtyItem]:
        """Every dirty entity (consistent reads), oldest first."""
        found: list[DirtyItem] = []
        for shard in range(SHARDS):
            kwargs: dict[str, Any] = {
                "TableName": self.table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": f"{PREFIX}{shard}"}},
                "ConsistentRead": True,
            }
            try:
                while True:
                    page = self._ddb.query(**kwargs)
                    found.extend(_dirty(item) for item in page.get("Items", []))
                    if "LastEvaluatedKey" not in page:
                        break
                    kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc
        return sorted(found, key=lambda i: (i.since, i.sort_key))

    def clear(self, items: Sequence[DirtyItem]) -> list[DirtyItem]:
        """Delete the items that are still as read (same rev); returns those that are not: marked again since (or
        gone), so they stay dirty."""
        deletes = [
            {
                "TableName": self.table,
                "Key": item_key(i.entity, i.key),
                "ConditionExpression": "#rev = :rev",
                "ExpressionAttributeNames": {"#rev": "rev"},
                "ExpressionAttributeValues": {":rev": {"N": str(i.rev)}},
            }
            for i in items
        ]
        kept: list[DirtyItem] = []
        for start in range(0, len(deletes), TRANSACTION_LIMIT):
            chunk = deletes[start : start + TRANSACTION_LIMIT]
            if len(chunk) > 1 and self._transact([{"Delete": d} for d in chunk]):
                continue
            for item, delete in zip(items[start : start + TRANSACTION_LIMIT], chunk, strict=True):
                if not conditional(self._ddb.delete_item, **delete):
                    kept.append(item)
        return kept

    def failed(self, item: DirtyItem, attempts: int, retry_at: float, error: str) -> None:
        """Record a failed flush of the entity: it stays dirty, to be tried again from retry_at (epoch seconds)."""
        conditional(
            self._ddb.update_item,
            **{
                "TableName": self.table,
                "Key": item_key(item.entity, item.key),
                "UpdateExpression": "SET attempts = :a, retry_at = :r, #error = :e",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": {"#error": "error"},
                "ExpressionAttributeValues": {
                    ":a": {"N": str(attempts)},
                    ":r": {"N": str(_millis(retry_at))},
                    ":e": {"S": error[:MAX_ERROR_CHARS]},
                },
            },
        )

    def drop(self, item: DirtyItem) -> bool:
        """After the entity went to the DLQ: delete it if nothing marked it since; else keep it dirty with its
        attempts reset (a newer change gets attempts of its own). True when deleted."""
        if self.clear([item]) == []:
            return True
        conditional(
            self._ddb.update_item,
            **{
                "TableName": self.table,
                "Key": item_key(item.entity, item.key),
                "UpdateExpression": "REMOVE attempts, retry_at, #error",
                "ConditionExpression": "attribute_exists(pk)",
                "ExpressionAttributeNames": {"#error": "error"},
            },
        )
        return False

    def acquire(self, token: str, until: float) -> bool:
        """Take the flusher's lease until `until` (epoch seconds) unless another flusher holds it."""
        return conditional(
            self._ddb.put_item,
            **{
                "TableName": self.table,
                "Item": {
                    "pk": {"S": LEASE_PK},
                    "sk": {"S": LEASE_SK},
                    "token": {"S": token},
                    "until": {"N": str(_millis(until))},
                },
                "ConditionExpression": "attribute_not_exists(pk) OR #until < :now",
                "ExpressionAttributeNames": {"#until": "until"},
                "ExpressionAttributeValues": {":now": {"N": str(_millis(self.clock()))}},
            },
        )

    def release(self, token: str) -> None:
        """Give the lease back (only our own: one that expired and was taken since is the other flusher's)."""
        conditional(
            self._ddb.delete_item,
            **{
                "TableName": self.table,
                "Key": {"pk": {"S": LEASE_PK}, "sk": {"S": LEASE_SK}},
                "ConditionExpression": "#token = :token",
                "ExpressionAttributeNames": {"#token": "token"},
                "ExpressionAttributeValues": {":token": {"S": token}},
            },
        )

    # --- helpers --------------------------------------------------------------------------------
    def _transact(self, actions: list[Any]) -> bool:
        """True when the transaction went through; False when it was cancelled (a condition failed, or another
        writer was changing one of its items): the caller then goes item by item."""
        try:
            self._ddb.transact_write_items(TransactItems=cast("Sequence[TransactWriteItemTypeDef]", actions))
        except ClientError as exc:
            if isinstance(translate(exc), ConditionFailed):
                return False
            raise translate(exc) from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc
        return True


def _dirty(item: dict[str, Any]) -> DirtyItem:
    entity, _, key = item["sk"]["S"].partition("#")
    event = item.get("event", {}).get("S")
    return DirtyItem(
        entity=entity,
        key=key,
        since=int(item["since"]["N"]),
        touched=int(item["touched"]["N"]),
        rev=int(item["rev"]["N"]),
        attempts=int(item["attempts"]["N"]) if "attempts" in item else 0,
        retry_at=int(item["retry_at"]["N"]) if "retry_at" in item else 0,
        error=item["error"]["S"] if "error" in item else "",
        event=json.loads(event) if event else None,
    )
