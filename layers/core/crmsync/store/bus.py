"""Publishing domain events to the EventBridge bus, ten entries a call, failing loudly on any rejected entry."""

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


@dataclass(frozen=True)
class EventBus:
    name: str
    client: EventBridgeClient | None = None
    source: str = SOURCE  # the automation rules publish as crmsync.rules, which no bus rule routes back

    def publish(self, events: Sequence[tuple[str, str]]) -> None:
        """Publish (detail-type, detail JSON) pairs; raises StoreError when any entry is rejected."""
        client = self.client or clients.events()
        for start in range(0, len(events), MAX_ENTRIES):
            entries: list[PutEventsRequestEntryTypeDef] = [
                {"EventBusName": self.name, "Source": self.source, "DetailType": detail_type, "Detail": detail}
                for detail_type, detail in events[start : start + MAX_ENTRIES]
            ]
            try:
                answer = client.put_events(Entries=entries)
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc
            if answer.get("FailedEntryCount", 0):
                codes = sorted({e.get("ErrorCode", "?") for e in answer["Entries"] if e.get("ErrorCode")})
                raise StoreError(f"EventBridge rejected {answer['FailedEntryCount']} entries: {', '.join(codes)}")
