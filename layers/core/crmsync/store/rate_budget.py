"""A CRM request budget shared by every concurrent Lambda, in one state-table item updated by conditional writes.

Item RATE#<name> / BUDGET:
- sent          epoch milliseconds of the requests granted within the last window (never more than `limit`)
- day, day_count  the UTC day and the requests granted on it (counted when a daily cap is set)
- hold_until    epoch milliseconds before which nothing is granted (the CRM answered 429 DAILY)
- rev           revision; each write is conditional on the revision it read, so two takers never both get the
                last token (optimistic concurrency: the loser reads again)

It is a token bucket whose tokens come back one window after they were spent: at most `limit` grants within any
`window_seconds` (plus a small margin for network jitter), which is how HubSpot counts its TEN_SECONDLY_ROLLING
limit. A bucket refilled at a constant rate would let up to twice `limit` through in one window.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import conditional, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

SK = "BUDGET"


@dataclass(frozen=True)
class Decision:
    granted: bool
    wait_seconds: float = 0.0  # when refused: until a token comes back (or the day's budget resets)
    daily: bool = False  # refused for the day (daily cap or a hold): waiting in this invocation will not help


@dataclass(frozen=True)
class _Read:
    rev: int
    sent: list[int]
    day: str
    day_count: int
    hold_until: int


@dataclass(frozen=True)
class RateBudget:
    table: str
    name: str = "hubspot"
    limit: int = 100  # requests per window
    window_seconds: float = 10.0
    daily_limit: int = 0  # requests per UTC day; 0 = no cap of crmsync's own (the CRM's DAILY 429 still holds)
    margin_seconds: float = 0.25  # a token comes back this much after its window, for network jitter
    client: DynamoDBClient | None = None
    clock: Callable[[], float] = time.time
    max_conflicts: int = 20

    @property
    def _ddb(self) -> DynamoDBClient:
        return self.client or clients.dynamodb()

    @property
    def _key(self) -> dict[str, AttributeValueTypeDef]:
        return {"pk": {"S": f"RATE#{self.name}"}, "sk": {"S": SK}}

    def try_take(self) -> Decision:
        """Take one request's token if there is one (then send at once); else say how long to wait."""
        for _ in range(self.max_conflicts):
            read = self._read()
            seconds = self.clock()
            now = math.floor(seconds * 1000)
            stamp = math.ceil(seconds * 1000)  # a grant is stamped no earlier than it happened: never back too soon
            if now < read.hold_until:
                return Decision(False, (read.hold_until - now) / 1000, daily=True)
            window_ms = int((self.window_seconds + self.margin_seconds) * 1000)
            sent = sorted(t for t in read.sent if t > now - window_ms)
            day = _day(now)
            day_count = read.day_count if read.day == day else 0
            if self.daily_limit and day_count >= self.daily_limit:
                return Decision(False, _seconds_to_next_day(now), daily=True)
            if len(sent) >= self.limit:
                return Decision(False, max(0.001, (sent[-self.limit] + window_ms - now) / 1000))
            if self._write(read.rev, [*sent, stamp], day, day_count + 1, read.hold_until):
                return Decision(True)
        return Decision(False, 0.05)  # lost every race: wait a moment and ask again

    def hold(self, seconds: float) -> None:
        """Grant nothing for that long (the CRM said its daily limit is spent): no Lambda keeps asking it."""
        for _ in range(self.max_conflicts):
            read = self._read()
            until = max(read.hold_until, int((self.clock() + seconds) * 1000))
            if self._write(read.rev, read.sent, read.day, read.day_count, until):
                return

    def _read(self) -> _Read:
        try:
            item = self._ddb.get_item(TableName=self.table, Key=self._key, ConsistentRead=True).get("Item") or {}
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return _Read(
            rev=int(_n(item, "rev")),
            sent=[int(v["N"]) for v in item.get("sent", {}).get("L", []) if "N" in v],
            day=str(item.get("day", {}).get("S", "")),
            day_count=int(_n(item, "day_count")),
            hold_until=int(_n(item, "hold_until")),
        )

    def _write(self, rev: int, sent: list[int], day: str, day_count: int, hold_until: int) -> bool:
        return conditional(
            self._ddb.put_item,
            TableName=self.table,
            Item={
                **self._key,
                "rev": {"N": str(rev + 1)},
                "sent": {"L": [{"N": str(t)} for t in sent]},
                "day": {"S": day},
                "day_count": {"N": str(day_count)},
                "hold_until": {"N": str(hold_until)},
            },
            ConditionExpression="attribute_not_exists(rev) OR rev = :rev",
            ExpressionAttributeValues={":rev": {"N": str(rev)}},
        )


def _n(item: dict[str, Any], name: str) -> str:
    return str(item.get(name, {}).get("N", "0"))


def _day(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).date().isoformat()


def _seconds_to_next_day(epoch_ms: int) -> float:
    now = datetime.fromtimestamp(epoch_ms / 1000, UTC)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), UTC)
    return (midnight - now).total_seconds()
