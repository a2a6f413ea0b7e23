"""MemoryBus: crmsync.store.bus.EventBus collecting (detail-type, detail), with EventBridge's rules.

`route_crm_queue(queue)` delivers what template.yaml's CrmEventsRule matches to a queue, as the EventBridge
envelope the CRM writer reads (`{"detail-type", "source", "detail": {...}, ...}`).
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from random import Random
from typing import TYPE_CHECKING, Any, Protocol, cast

from crmsync.store.bus import MAX_CALL_BYTES, SOURCE, calls
from crmsync.store.errors import StoreError
from tests.fakes.faults import FakeClock, Faults, check, check_after, rng_of
from tests.fakes.template import rule_pattern

if TYPE_CHECKING:
    from crmsync.store.bus import EventBus

MAX_ENTRY_BYTES = 256 * 1024  # PutEvents: Source + DetailType + Detail, UTF-8


class Sender(Protocol):
    def send(self, body: str) -> str: ...


@dataclass(frozen=True)
class Route:
    name: str
    pattern: dict[str, Any]
    deliver: Callable[[dict[str, Any]], None]


class MemoryBus:
    """Same public method as EventBus (publish, ten entries a call, StoreError when an entry is rejected).

    Pass `bus.as_store()` where an EventBus is expected. `faults` fails "bus.publish" per PutEvents call of
    up to ten entries, before it (nothing of that call published) or after it (published, caller sees an
    error). An entry whose detail is not a JSON object is rejected alone (MalformedDetail) while the rest of
    its call is published, as EventBridge does; an entry over 256 KB fails its whole call.
    A call whose entries sum over `max_request_bytes` (EventBridge's 256 KB unless told) fails whole.
    """

    def __init__(
        self,
        *,
        faults: Faults | None = None,
        clock: FakeClock | None = None,
        seed: int | Random | None = 0,
        name: str = "crmsync-bus",
        source: str = SOURCE,
        account: str = "123456789012",
        region: str = "us-east-1",
        max_request_bytes: int | None = MAX_CALL_BYTES,
    ) -> None:
        self.faults = faults
        self.clock = clock or FakeClock()
        self.rng = rng_of(seed)
        self.name = name
        self.source = source  # EventBus.source: what this publisher's entries carry as Source
        self.account = account
        self.region = region
        self.max_request_bytes = max_request_bytes
        # Shared by every publisher of this bus (with_source):
        self.published: list[tuple[str, str]] = []  # accepted entries (detail-type, detail), in order
        self.entries: list[tuple[str, str, str]] = []  # accepted entries with their source: (source, type, detail)
        self.rejected: list[tuple[str, str, str]] = []  # (detail-type, detail, error code)
        self.undelivered: list[tuple[str, dict[str, Any], str]] = []  # (route, envelope, error): the rule's DLQ
        self.stats: Counter[str] = Counter()  # put_events: PutEvents calls
        self._routes: list[Route] = []
        self._lock = threading.RLock()

    def as_store(self) -> EventBus:
        return cast("EventBus", self)

    def with_source(self, source: str) -> MemoryBus:
        """Another publisher on the same bus (same rules, same records), whose entries carry this Source: what
        EventBus(name, source=...) is to EventBus(name)."""
        sibling = copy.copy(self)
        sibling.source = source
        return sibling

    @property
    def calls(self) -> int:
        """PutEvents calls, by every publisher of the bus."""
        return self.stats["put_events"]

    # --- routing ------------------------------------------------------------------------------------
    def route(
        self, target: Sender | Callable[[dict[str, Any]], None], pattern: Mapping[str, Any], *, name: str = "rule"
    ) -> None:
        """Deliver every published event matching the EventBridge pattern to target: a queue (its send() gets
        the envelope as JSON, as an SQS target does) or a callable (gets the envelope dict)."""
        deliver: Callable[[dict[str, Any]], None]
        if callable(target):
            deliver = target
        else:
            sender = target

            def deliver(envelope: dict[str, Any]) -> None:
                sender.send(json.dumps(envelope))

        with self._lock:
            self._routes.append(Route(name, dict(pattern), deliver))

    def route_crm_queue(self, queue: Sender) -> None:
        """template.yaml's CrmEventsRule, with the queue as its target."""
        self.route(queue, rule_pattern("CrmEventsRule"), name="CrmEventsRule")

    # --- EventBus ---------------------------------------------------------------------------------------
    def publish(self, events: Sequence[tuple[str, str]]) -> None:
        """Publish (detail-type, detail JSON) pairs; raises StoreError when any entry is rejected."""
        for run in calls(events, self.source):
            self._put_events(run)

    def _put_events(self, chunk: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            self.stats["put_events"] += 1
            check(self.faults, "bus.publish")
            sizes = [len(self.source.encode()) + len(t.encode()) + len(d.encode()) for t, d in chunk]
            if max(sizes, default=0) > MAX_ENTRY_BYTES or (
                self.max_request_bytes is not None and sum(sizes) > self.max_request_bytes
            ):
                raise StoreError("PutEvents: ValidationException")
            failed: list[str] = []
            for detail_type, detail in chunk:
                parsed = _json_object(detail)
                if parsed is None:
                    self.rejected.append((detail_type, detail, "MalformedDetail"))
                    failed.append("MalformedDetail")
                    continue
                self.published.append((detail_type, detail))
                self.entries.append((self.source, detail_type, detail))
                self._deliver(detail_type, parsed)
        check_after(self.faults, "bus.publish")
        if failed:  # what EventBus raises on FailedEntryCount
            raise StoreError(f"EventBridge rejected {len(failed)} entries: {', '.join(sorted(set(failed)))}")

    def _deliver(self, detail_type: str, detail: dict[str, Any]) -> None:
        envelope = {
            "version": "0",
            "id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "detail-type": detail_type,
            "source": self.source,
            "account": self.account,
            "time": datetime.fromtimestamp(self.clock(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.region,
            "resources": [],
            "detail": detail,
        }
        for route in self._routes:
            if matches(route.pattern, envelope):
                try:
                    route.deliver(json.loads(json.dumps(envelope)))  # each target gets its own copy
                except Exception as exc:  # EventBridge retries, then the rule's DLQ; never the publisher's error
                    self.undelivered.append((route.name, envelope, f"{type(exc).__name__}: {exc}"))

    # --- inspection for tests (not part of EventBus) ----------------------------------------------------
    def details(self, detail_type: str | None = None, *, source: str | None = None) -> list[dict[str, Any]]:
        """Published details (decoded), of one detail-type or all, from one source or all."""
        with self._lock:
            return [
                json.loads(d)
                for s, t, d in self.entries
                if (detail_type is None or t == detail_type) and (source is None or s == source)
            ]

    def detail_types(self) -> Counter[str]:
        with self._lock:
            return Counter(t for t, _ in self.published)


def _json_object(detail: str) -> dict[str, Any] | None:
    try:
        parsed = json.loads(detail)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


# --- EventBridge event patterns ---------------------------------------------------------------------------
_MISSING = object()


def matches(pattern: Mapping[str, Any], event: Mapping[str, Any]) -> bool:
    """Does the event match the EventBridge pattern? Exact values, nested objects, and the content filters
    prefix, suffix, anything-but, exists and equals-ignore-case; any other filter raises NotImplementedError,
    so a new kind of rule in template.yaml cannot be silently mis-routed by the fake."""
    for key, wanted in pattern.items():
        value = event.get(key, _MISSING) if isinstance(event, Mapping) else _MISSING
        if isinstance(wanted, Mapping):
            if not isinstance(value, Mapping) or not matches(wanted, value):
                return False
        elif isinstance(wanted, list):
            if not _matches_any(wanted, value):
                return False
        else:
            raise ValueError(f"pattern value for {key!r} must be a list or an object")
    return True


def _matches_any(wanted: list[Any], value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(_matches_one(rule, v) for rule in wanted for v in values)


def _matches_one(rule: Any, value: Any) -> bool:
    if not isinstance(rule, Mapping):
        return value is not _MISSING and rule == value and type(rule) is type(value)
    [(name, operand)] = rule.items()
    if name == "exists":
        return (value is not _MISSING) is bool(operand)
    if value is _MISSING:
        return False
    if name == "prefix":
        return isinstance(value, str) and value.startswith(operand)
    if name == "suffix":
        return isinstance(value, str) and value.endswith(operand)
    if name == "equals-ignore-case":
        return isinstance(value, str) and value.lower() == str(operand).lower()
    if name == "anything-but":
        excluded = operand if isinstance(operand, list) else [operand]
        return value not in excluded
    raise NotImplementedError(f"EventBridge content filter {name!r} is not simulated")
