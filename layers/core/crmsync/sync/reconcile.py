"""Reconciliation: find and repair what real-time sync missed, source -> state -> CRM, and report the drift.

A run for one source:
1. lists each object type changed since the source's reconciliation cursor (MARK#reconcile:<source>; a full run,
   or the first one, lists everything) with the same API clients as a backfill;
2. compares each record's canonical checksum with stored state (crmsync.sync.records.compare): an entity not stored
   is `missing`, one stored with older other content is `stale`; both are repaired by sending the record through the
   normal conversion path (archive + ingest queue), exactly as a late webhook;
3. on a full run, finds entities stored for the source that the source no longer lists (`deleted` at the source);
   WooCommerce orders and customers are repaired by the deletion webhook the source failed to deliver;
4. reads back from the CRM, in batches (CrmPort.read), the records of the entities found in step with the source,
   and compares their mapped fields with what the CRM writer would send for the stored state: a record `missing` in
   the CRM or `stale` in a field is repaired by a domain event on the CRM queue (the writer re-reads current state
   and upserts it by external id);
5. moves the cursor to the run's start (only when every page was read) and stores the drift report
   (RUN#<id>: per source and object: checked, missing, stale, deleted, repaired, failed) and the day's counters
   (checked / correct: accuracy A of GET /sync/metrics).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from crmsync.convert import KINDS
from crmsync.deadline import Deadline
from crmsync.messages import DetailType, DomainEvent
from crmsync.observability import logger
from crmsync.sync.clients import OBJECTS, SourceApiError, SourceClient
from crmsync.sync.errors import NotConfigured, NotSupported
from crmsync.sync.records import SourceRecord, as_webhook, compare, convert_record, send_through_ingest
from crmsync.views import customer_view, order_view, payment_view

if TYPE_CHECKING:
    from crmsync.crm.port import CrmPort
    from crmsync.mapping import Mapping, ObjectMapping
    from crmsync.store.state import StateStore
    from crmsync.store.sync_jobs import SyncStore
    from crmsync.sync.jobs import SyncDeps

STRIPE_EVENTS_DAYS = 30  # Stripe keeps events this long; older cursors rescan objects instead
DELETION_TOPICS = {("woocommerce", "orders"): "order.deleted", ("woocommerce", "customers"): "customer.deleted"}
READ_BATCH = 100
FIELDS = ("checked", "missing", "stale", "deleted", "repaired", "failed")


@dataclass
class Drift:
    checked: int = 0
    missing: int = 0
    stale: int = 0
    deleted: int = 0
    repaired: int = 0
    failed: int = 0
    examples: list[dict[str, str]] = field(default_factory=list)  # at most 20: key, where, what

    def note(self, key: str, where: str, what: str) -> None:
        if len(self.examples) < 20:
            self.examples.append({"key": key, "where": where, "drift": what})

    def as_json(self) -> dict[str, Any]:
        return {**{name: getattr(self, name) for name in FIELDS}, "examples": self.examples}


@dataclass
class ReconcileDeps:
    sync: SyncDeps
    crm: CrmPort | None
    mapping: Mapping | None
    # CRM repairs: domain events for the CRM writer (default: the CRM queue)
    repair_crm: Callable[[list[DomainEvent]], object]
    known_keys: Callable[[str], list[str]]  # state pk prefix -> every pk stored under it (entities)
    deadline: Deadline = field(default_factory=Deadline.never)


def _objects(source: str, since: datetime | None, now: datetime) -> list[str]:
    known = OBJECTS.get(source, ())
    if not known:
        raise NotSupported(f"{source} reconciliation is not supported yet (transaction search)")
    if source == "stripe" and since is not None and now - since < timedelta(days=STRIPE_EVENTS_DAYS - 1):
        return ["events"]
    return [o for o in known if o != "events"]


def run(source: str, deps: ReconcileDeps, *, run_id: str, full: bool = False) -> dict[str, Any]:
    store: SyncStore = deps.sync.store
    started = datetime.fromtimestamp(deps.sync.clock(), UTC)
    mark = f"reconcile:{source}"
    since_text = None if full else store.get_mark(mark)
    since = datetime.fromisoformat(since_text) if since_text else None
    report: dict[str, Any] = {
        "run_id": run_id,
        "source": source,
        "status": "running",
        "started_at": started.isoformat(),
        "since": since_text,
        "full": since is None,
        "objects": {},
    }
    store.put_run(run_id, report)
    complete = True
    try:
        client = deps.sync.client(source)
        for object_type in _objects(source, since, started):
            drift = Drift()
            report["objects"][object_type] = drift
            complete &= _reconcile_object(source, object_type, client, since, deps, drift, run_id)
    except (NotConfigured, NotSupported, SourceApiError) as exc:
        report["status"], report["error"] = "failed", str(exc)
        complete = False
    objects = {name: d.as_json() if isinstance(d, Drift) else d for name, d in report["objects"].items()}
    totals = {name: sum(o[name] for o in objects.values()) for name in FIELDS}
    report.update(
        objects=objects, totals=totals, finished_at=datetime.fromtimestamp(deps.sync.clock(), UTC).isoformat()
    )
    if report["status"] == "running":
        report["status"] = "done" if complete else "partial"
    if complete:
        store.set_mark(mark, started.isoformat())
    day = started.date().isoformat()
    bad = totals["missing"] + totals["stale"] + totals["deleted"]
    store.add_metrics(
        day,
        source,
        {
            "checked": totals["checked"],
            "correct": max(totals["checked"] - bad, 0),
            "repaired": totals["repaired"],
            "drift": bad,
        },
    )
    store.put_run(run_id, report)
    logger.info("reconciliation done", run_id=run_id, source=source, **totals)
    return report


def _reconcile_object(
    source: str,
    object_type: str,
    client: SourceClient,
    since: datetime | None,
    deps: ReconcileDeps,
    drift: Drift,
    run_id: str,
) -> bool:
    """Steps 1-4 for one object type; True when every page was read."""
    cursor: str | None = ""
    seen: set[str] = set()  # state pks of entities the source listed
    in_step: list[tuple[str, str]] = []  # (kind, key) agreeing with the source: checked against the CRM
    state = deps.sync.state
    while cursor is not None:
        if deps.deadline.passed():
            return False
        page = client.list_page(object_type, cursor, since, None)
        cursor = page.next_cursor
        records = [r for raw in page.records if (r := as_webhook(source, object_type, raw)) is not None]
        to_send: list[SourceRecord] = []
        for record in records:
            comparison = compare([record], state)
            keys = _entity_keys(record)
            seen.update(pk for pk, _ in keys)
            drift.checked += 1
            if comparison.failed:
                drift.failed += 1
                drift.note(record.record_id, "source", "converter refused the record")
            elif comparison.creates:
                drift.missing += 1
                drift.note(comparison.creates[0], "state", "missing")
                to_send.append(record)
            elif comparison.updates:
                drift.stale += 1
                drift.note(comparison.updates[0], "state", "stale")
                to_send.append(record)
            else:
                in_step.extend((pk.split("#", 1)[0], pk.split("#", 1)[1]) for pk, _ in keys)
        if to_send:
            now = datetime.fromtimestamp(deps.sync.clock(), UTC)
            drift.repaired += send_through_ingest(
                to_send, deps.sync.archive, deps.sync.ingest_queue, correlation_id=f"reconcile:{run_id}", now=now
            )
    if since is None:
        _deleted_at_source(source, object_type, seen, deps, drift, run_id)
    if deps.crm is not None and deps.mapping is not None:
        _check_crm(in_step, deps, drift)
    return True


def _entity_keys(record: SourceRecord) -> list[tuple[str, str]]:
    """(state pk, label) of the order/payment entities a record converts to (customers are found through them)."""
    try:
        converted = convert_record(record)
    except Exception:
        return []
    keys = [(f"{KINDS[type(e)]}#{e.external_id}", e.external_id) for _, e in converted.entities]
    customer = converted.customer
    if customer is not None and customer.source_id and not converted.entities:
        keys.append((f"IDENTITY#{customer.source}:customer:{customer.source_id}", "customer"))
    return keys


def _deleted_at_source(
    source: str, object_type: str, seen: set[str], deps: ReconcileDeps, drift: Drift, run_id: str
) -> None:
    if object_type != "orders":
        return  # customers are keyed by canonical id; deleted customers come as notices, not found by listing
    prefix = f"ORDER#{source}:order:"
    gone = sorted(pk for pk in deps.known_keys(prefix) if pk not in seen)
    topic = DELETION_TOPICS.get((source, object_type))
    records: list[SourceRecord] = []
    for pk in gone:
        drift.deleted += 1
        source_id = pk.removeprefix(prefix)
        drift.note(pk.removeprefix("ORDER#"), "source", "deleted at the source")
        if topic and source_id.isdigit():
            body = json.dumps({"id": int(source_id)}).encode()
            records.append(SourceRecord(source, object_type, topic, body, source_id))
    if records:
        now = datetime.fromtimestamp(deps.sync.clock(), UTC)
        drift.repaired += send_through_ingest(
            records, deps.sync.archive, deps.sync.ingest_queue, correlation_id=f"reconcile:{run_id}", now=now
        )


def expected_records(
    entities: Sequence[tuple[str, str]], state: StateStore, mapping: Mapping
) -> dict[str, list[tuple[str, str, dict[str, str], DomainEvent]]]:
    """CRM object type -> (id property, id value, mapped properties, the event that rewrites it) for each entity
    and its customer, as the CRM writer would send them for the stored state."""
    from crmsync.identity import current_id

    found: dict[str, list[tuple[str, str, dict[str, str], DomainEvent]]] = {"contacts": [], "deals": []}
    customers: set[str] = set()
    for kind, key in entities:
        stored = state.get_entity(kind, key)
        if stored is None:
            continue
        owner = current_id(state, stored.customer_id) if stored.customer_id else None
        view = order_view(stored.data, owner) if kind == "ORDER" else payment_view(stored.data, owner)
        event = _event("order" if kind == "ORDER" else "payment", key, owner, stored.data)
        _add(found["deals"], mapping.deals, view, event)
        if owner:
            customers.add(owner)
    for cid in sorted(customers):
        items = state.customer_items(cid)
        if items:
            event = _event("customer", cid, cid, items[0].data)
            _add(found["contacts"], mapping.contacts, customer_view(cid, items), event)
    return found


def _add(into: list[Any], mapping: ObjectMapping, view: dict[str, Any], event: DomainEvent) -> None:
    properties = mapping.apply(view)
    for id_property in (mapping.id_property, mapping.fallback_id_property):
        if id_property and properties.get(id_property):
            into.append((id_property, properties[id_property], properties, event))
            return


Entity = Literal["customer", "order", "payment"]


def _event(entity: Entity, key: str, customer_id: str | None, data: dict[str, Any]) -> DomainEvent:
    version = data.get("source_version") or datetime.now(UTC).isoformat()
    return DomainEvent(
        entity=entity,
        key=key,
        customer_id=customer_id,
        source=str(data.get("source", "reconcile")),
        source_id=data.get("source_id"),
        source_version=version,
        receipt_id="reconcile",
        correlation_id="reconcile",
        data=None,
    )


def _check_crm(entities: Sequence[tuple[str, str]], deps: ReconcileDeps, drift: Drift) -> None:
    if deps.crm is None or deps.mapping is None:
        return
    repairs: dict[str, DomainEvent] = {}
    for object_type, wanted in expected_records(entities, deps.sync.state, deps.mapping).items():
        for start in range(0, len(wanted), READ_BATCH):
            chunk = wanted[start : start + READ_BATCH]
            by_property: dict[str, list[str]] = {}
            for id_property, value, _, _ in chunk:
                by_property.setdefault(id_property, []).append(value)
            read: dict[tuple[str, str], dict[str, str]] = {}
            try:
                for id_property, values in by_property.items():
                    for value, properties in deps.crm.read(object_type, id_property, values).items():
                        read[(id_property, value)] = properties
            except NotImplementedError as exc:
                drift.failed += len(chunk)
                drift.note(object_type, "crm", str(exc))
                continue
            for id_property, value, properties, event in chunk:
                record = read.get((id_property, value))
                if record is None:
                    drift.missing += 1
                    drift.note(value, f"crm {object_type}", "missing")
                    repairs[f"{event.entity}:{event.key}"] = event
                    continue
                differing = sorted(k for k, v in properties.items() if v and record.get(k) != v)
                if differing:
                    drift.stale += 1
                    drift.note(value, f"crm {object_type}", "stale: " + ", ".join(differing))
                    repairs[f"{event.entity}:{event.key}"] = event
    if repairs:
        try:
            deps.repair_crm(list(repairs.values()))
            drift.repaired += len(repairs)
        except Exception:
            logger.exception("crm repair not sent")
            drift.failed += len(repairs)


def detail_type(event: DomainEvent) -> str:
    return DetailType.CUSTOMER_UPSERTED.value if event.entity == "customer" else DetailType.ORDER_UPDATED.value


def elapsed(started: float) -> float:
    return time.perf_counter() - started
