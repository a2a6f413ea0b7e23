"""Publishing domain events to the EventBridge bus, ten entries and 256 KB a call, failing loudly on any rejected
entry."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import StoreError, translate

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

SOURCE = "crmsync"
MAX_ENTRIES = 10
# PutEvents refuses a whole call over 256 KB, counted as AWS documents ("Calculating PutEvents event entry size"):
# the UTF-8 bytes of Source, DetailType and Detail (plus Resources and 14 for Time, which crmsync does not send).
MAX_CALL_BYTES = 256 * 1024


def entry_size(source: str, detail_type: str, detail: str) -> int:
    return len(source.encode()) + len(detail_type.encode()) + len(detail.encode())


def calls(events: Sequence[tuple[str, str]], source: str) -> list[Sequence[tuple[str, str]]]:
    """Consecutive runs of `events`, each within PutEvents' entry count and size; an entry over the size alone
    travels by itself (and EventBridge's refusal of it fails loudly, as any rejected entry does)."""
    runs: list[Sequence[tuple[str, str]]] = []
    start, size = 0, 0
    for index, (detail_type, detail) in enumerate(events):
        entry = entry_size(source, detail_type, detail)
        if index > start and (index - start == MAX_ENTRIES or size + entry > MAX_CALL_BYTES):
            runs.append(events[start:index])
            start, size = index, 0
        size += entry
    if start < len(events):
        runs.append(events[start:])
    return runs


@dataclass(frozen=True)
class EventBus:
    name: str
    client: EventBridgeClient | None = None
    source: str = SOURCE  # the automation rules publish as crmsync.rules, which no bus rule routes back

    def publish(self, events: Sequence[tuple[str, str]]) -> None:
        """Publish (detail-type, detail JSON) pairs; raises StoreError when any entry is rejected."""
        client = self.client or clients.events()
        for run in calls(events, self.source):
            entries: list[PutEventsRequestEntryTypeDef] = [
                {"EventBusName": self.name, "Source": self.source, "DetailType": detail_type, "Detail": detail}
                for detail_type, detail in run
            ]
            try:
                answer = client.put_events(Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc
            if answer.get("FailedEntryCount", 0):
                codes = sorted({e.get("ErrorCode", "?") for e in answer["Entries"] if e.get("ErrorCode")})
                raise StoreError(f"EventBridge rejected {answer['FailedEntryCount']} entries: {', '.join(codes)}")
