"""The coalescing CRM flusher (CRM_FLUSH_DELAY_SECONDS > 0): CRM calls traded for latency.

With a delay, the CRM writer no longer writes what a batch of domain events touched; it marks each touched entity
dirty (crmsync.store.dirty, one item per entity, keeping the earliest time) and acknowledges the batch. The flusher
(functions/flusher, on a schedule and on demand) takes the lease, lists the dirty entities, chooses those dirty for
longer than the delay (`choose`), and writes them with the CRM writer's own code (crmsync.writer.write_events, which
reads each entity's current stored state) in groups that the adapters send in full batches (100 HubSpot inputs,
200 Salesforce records a call). Each entity written is cleared only if no mark arrived since it was listed, so a
change made during the flush is written by the next one. An entity touched by many events in the delay is written
once, with its newest state.

Delivery: an event is acknowledged only once its entity is durably marked; an entity is cleared only after a
write that read its state after the mark. A flush that fails leaves its entities dirty with one more attempt and a
retry time (the consumers' backoff, crmsync.failures.RetryPolicy); a group that fails for a reason that may be one
entity's (the CRM refused records, a bug on odd data) is split in halves until the entities at fault are alone, so
they never hold the others back. An entity that fails its last attempt (MAX_RECEIVE_COUNT, as the CRM queue's) goes
to the CRM DLQ with its error, as the CRM writer sends an event, shaped as the event that last marked it: a redrive
sends it back through the CRM queue.

Written at once, as before, whatever the delay: customer.merged (the merge of two contacts needs the event, which
names the customer folded in) and events of no entity the writer writes (notices). Notes (refunds, disputes) are
deferred like the rest: they are written from their stored state by external id, and HubSpot's id ledger keeps their
create exactly once. Tasks come from the rules function, which this does not change.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from crmsync.crm.errors import CrmNotConfigured, CrmRateLimited, CrmUnavailable
from crmsync.failures import SqsRecord, describe, log_failure
from crmsync.observability import logger
from crmsync.store.dirty import DirtyItem, Touch
from crmsync.store.errors import StoreError
from crmsync.writer import write_events

if TYPE_CHECKING:
    from crmsync.failures import DeadLetterer
    from crmsync.messages import DomainEvent
    from crmsync.settings import Settings
    from crmsync.store.dirty import DirtyStore
    from crmsync.writer import WriterDeps

# Entity -> the CRM object its batch goes to (deals of orders and payments share their batches).
KIND = {"customer": "contacts", "order": "deals", "payment": "deals", "refund": "notes", "dispute": "notes"}
DEFERRED = frozenset(KIND)
KIND_ORDER = {"contacts": 0, "deals": 1, "notes": 2}
LEASE_MARGIN_SECONDS = 30.0  # the lease outlives the flusher's own deadline by this much
MAX_LEASE_SECONDS = 900.0  # Lambda's longest timeout: the lease of a flusher with no deadline
BATCH = {"salesforce": 200}  # records per CRM call (sObject Collections); HubSpot and the local CRM: 100


@dataclass(frozen=True)
class EntityKey:
    """An entity for crmsync.writer.write_events (its Touched protocol), as a domain event would name it."""

    entity: str
    key: str
    merged: str | None = None


def deferrable(event: DomainEvent) -> bool:
    """Whether the flusher can write what this event touched (else the CRM writer writes it at once)."""
    return event.entity in DEFERRED and not event.merged


def touch_of(event: DomainEvent, detail_type: str | None) -> Touch:
    """The dirty mark of an event's entity, carrying the event without its data (what a dead letter is made of)."""
    detail = event.model_dump(mode="json", exclude={"data"})
    return Touch(event.entity, event.key, {"detail_type": detail_type, "detail": detail})


@dataclass(frozen=True)
class FlushPolicy:
    delay_seconds: float
    batch_size: int = 100  # the CRM's records per batch call
    # When some entities of a kind are due, also take not-yet-due ones of that kind (the oldest) to fill the last
    # batch: they ride in a call that is made anyway.
    fill_batches: bool = True
    # Also write full batches of a kind before they are due (bench/README.md: more calls when records still change).
    early_full_batches: bool = False
    # Once anything is due, write every dirty record (bench/README.md: fewest calls after a burst, more during one).
    all_when_due: bool = False
    max_group: int = 5000  # entities per write_events call (it reads state one call at a time: ~4 an entity)
    reserve_seconds: float = 5.0  # no group is started with less time than this left (it would be cut short)

    @classmethod
    def from_settings(cls, settings: Settings) -> FlushPolicy:
        return cls(delay_seconds=settings.crm_flush_delay_seconds, batch_size=BATCH.get(settings.crm_backend, 100))


@dataclass
class FlushReport:
    lease: bool = True  # False: another flusher held it, nothing was done
    pending: int = 0  # dirty entities listed
    chosen: int = 0  # ... taken for this flush
    written: int = 0  # ... written to the CRM
    redirtied: int = 0  # ... of those, marked again during the flush: still dirty
    failed: int = 0  # ... left dirty with one more attempt
    dead_lettered: int = 0  # ... sent to the CRM DLQ on their last attempt
    postponed: int = 0  # ... not started for lack of time (still dirty)
    groups: int = 0  # write_events calls that succeeded

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _forever() -> float:
    return math.inf


@dataclass(frozen=True)
class FlusherDeps:
    writer: WriterDeps
    dirty: DirtyStore
    failures: DeadLetterer  # policy (attempts, backoff), and the CRM DLQ
    clock: Callable[[], float] = time.time
    time_left: Callable[[], float] = _forever  # seconds this invocation may still work
    source_queue: str = ""  # the queue a dead-lettered entity names as its source: the CRM queue


def kind_of(item: DirtyItem) -> str:
    return KIND.get(item.entity, item.entity)


def choose(items: Sequence[DirtyItem], now: float, policy: FlushPolicy, *, everything: bool = False) -> list[DirtyItem]:
    """The entities to write now: dirty for at least the delay (all, with `everything`) and not waiting for a retry;
    then, per kind, the oldest not-yet-due ones that fill the last batch (fill_batches) or make full batches
    (early_full_batches). Ordered by kind, then oldest first."""
    now_ms = int(now * 1000)
    cutoff = now_ms - int(policy.delay_seconds * 1000)
    ready = sorted((i for i in items if i.retry_at <= now_ms), key=lambda i: (i.since, i.sort_key))
    due = [i for i in ready if everything or i.since <= cutoff]
    waiting: dict[str, list[DirtyItem]] = {}
    for item in ready:
        if not (everything or item.since <= cutoff):
            waiting.setdefault(kind_of(item), []).append(item)
    if due and policy.all_when_due:
        due = ready
        waiting = {}
    chosen = list(due)
    counts: dict[str, int] = {}
    for item in due:
        counts[kind_of(item)] = counts.get(kind_of(item), 0) + 1
    batch = max(1, policy.batch_size)
    for kind, later in waiting.items():
        have = counts.get(kind, 0)
        target = have
        if policy.fill_batches and have % batch:
            target = have + batch - have % batch
        if policy.early_full_batches:
            target = max(target, (have + len(later)) // batch * batch)
        chosen += later[: max(0, target - have)]
    return sorted(chosen, key=lambda i: (KIND_ORDER.get(kind_of(i), 9), i.since, i.sort_key))


def flush(deps: FlusherDeps, policy: FlushPolicy, *, everything: bool = False) -> FlushReport:
    """One flush: take the lease, write what is due (`choose`), clear what was written, give the lease back."""
    report = FlushReport()
    token = uuid.uuid4().hex
    hold = min(deps.time_left(), MAX_LEASE_SECONDS) + LEASE_MARGIN_SECONDS
    if not deps.dirty.acquire(token, deps.clock() + hold):
        logger.info("crm flush skipped: another flusher holds the lease")
        report.lease = False
        return report
    try:
        items = deps.dirty.pending()
        chosen = choose(items, deps.clock(), policy, everything=everything)
        report.pending, report.chosen = len(items), len(chosen)
        for start in range(0, len(chosen), max(1, policy.max_group)):
            _write(deps, policy, chosen[start : start + policy.max_group], report)
    finally:
        try:
            deps.dirty.release(token)
        except StoreError:
            logger.warning("flusher lease not released; it expires by itself", exc_info=True)
    logger.info("crm flushed", **report.as_json())
    return report


def _whole_call(exc: BaseException) -> bool:
    """Errors that are nobody's data: splitting the group would only repeat them (and multiply the calls)."""
    return isinstance(exc, CrmRateLimited | CrmUnavailable | CrmNotConfigured | StoreError)


def _keys(items: Sequence[DirtyItem]) -> list[EntityKey]:
    return [EntityKey(i.entity, i.key) for i in items]


def _write(deps: FlusherDeps, policy: FlushPolicy, group: Sequence[DirtyItem], report: FlushReport) -> None:
    if deps.time_left() < policy.reserve_seconds:
        report.postponed += len(group)
        return
    try:
        write_events(_keys(group), deps.writer)
    except Exception as exc:
        if len(group) > 1 and not _whole_call(exc):
            logger.warning("crm flush of a group failed; splitting it", entities=len(group), error=describe(exc)[0])
            half = len(group) // 2
            _write(deps, policy, group[:half], report)
            _write(deps, policy, group[half:], report)
            return
        log_failure("crm flush failed; the entities stay dirty", exc, entities=len(group))
        _failed(deps, group, exc, report)
        return
    report.groups += 1
    report.written += len(group)
    report.redirtied += len(_clear(deps, group))


def _clear(deps: FlusherDeps, items: Sequence[DirtyItem]) -> list[DirtyItem]:
    try:
        return deps.dirty.clear(items)
    except StoreError:  # written, but still dirty: written again next time (an upsert by external id: harmless)
        logger.warning("written entities not cleared; they will be written again", entities=len(items), exc_info=True)
        return list(items)


def _failed(deps: FlusherDeps, group: Sequence[DirtyItem], exc: BaseException, report: FlushReport) -> None:
    """Each entity of a failed write: one more attempt, a retry time; on its last attempt it is written alone (so a
    group's failure is never dead-lettered on another entity's behalf) and what still fails goes to the DLQ."""
    policy = deps.failures.policy
    for item in group:
        attempts = item.attempts + 1
        error: BaseException = exc
        if policy.is_last_attempt(attempts):
            if len(group) > 1:
                try:
                    write_events(_keys([item]), deps.writer)
                except Exception as own:
                    log_failure("crm flush of a single entity failed on its last attempt", own, entity=item.entity)
                    error = own
                else:
                    report.written += 1
                    report.redirtied += len(_clear(deps, [item]))
                    continue
            if _dead_letter(deps, item, attempts, error):
                report.dead_lettered += 1
                continue
        delay = float(policy.delay(attempts, deps.failures.jitter()))
        if isinstance(error, CrmRateLimited):
            delay = max(delay, error.retry_after)
        try:
            deps.dirty.failed(item, attempts, deps.clock() + delay, ": ".join(describe(error)))
        except StoreError:  # still dirty; only this attempt goes uncounted
            logger.warning("failed flush not recorded", entity=item.entity, exc_info=True)
        report.failed += 1


def dead_letter_body(item: DirtyItem, now: float) -> str:
    """The CRM DLQ message of a poison entity: the EventBridge event that last marked it (without its data: the
    writer reads the stored state), so a redrive sends it back through the CRM queue like any failed event."""
    event = item.event or {}
    detail = event.get("detail") or {
        "entity": item.entity,
        "key": item.key,
        "customer_id": None,
        "source": "crmsync",
        "source_id": None,
        "source_version": datetime.fromtimestamp(item.since / 1000, UTC).isoformat(),
        "receipt_id": "",
        "correlation_id": "",
    }
    envelope = {
        "version": "0",
        "id": f"crmsync-flusher:{item.sort_key}:{item.rev}",
        "detail-type": event.get("detail_type") or f"{item.entity}.upserted",
        "source": "crmsync",
        "time": datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
        "detail": detail,
    }
    return json.dumps(envelope, separators=(",", ":"))


def _dead_letter(deps: FlusherDeps, item: DirtyItem, attempts: int, error: BaseException) -> bool:
    record = SqsRecord(
        message_id=f"dirty:{item.sort_key}",
        body=dead_letter_body(item, deps.clock()),
        attempts=attempts,
        source_queue=deps.source_queue,
    )
    if not deps.failures.dead_letter(record, error):
        return False
    try:
        deps.dirty.drop(item)
    except StoreError:  # in the DLQ and still dirty: written once more, which a redrive would do anyway
        logger.warning("dead-lettered entity not cleared", entity=item.entity, exc_info=True)
    return True
