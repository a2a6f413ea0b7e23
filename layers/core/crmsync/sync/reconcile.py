"""Reconciliation: find and repair what real-time sync missed, source -> state -> CRM, and report the drift.

A run for one source:
1. lists each object type changed since the source's reconciliation cursor (MARK#reconcile:<source>; a full run,
   or the first one, lists everything) with the same API clients as a backfill;
2. compares each record's canonical checksum with stored state (crmsync.sync.records.compare): an entity not stored
   is `missing`, one stored with older other content is `stale`; both are repaired by sending the record through the
   normal conversion path (archive + ingest queue), exactly as a late webhook;
3. on a full run, finds orders stored for the source that the source no longer lists (`deleted` at the source);
   WooCommerce orders are repaired by the deletion webhook the source failed to deliver. The deletion notice leaves
   the stored order as it was, so a known deletion is recorded in the sync table (GONE#<source> / the order's state
   pk), either way it became known: by this step for each deletion it reports (after its webhook was sent), or by
   convert when the source's own deletion webhook arrives (crmsync.convert, Notice.deletes). A recorded deletion is
   skipped: one reported is drift once, one the source told of is no drift at all. An order the source lists again
   (restored) loses its record on any run, so a later deletion counts again; a full run drops the records of orders
   state no longer holds (erased);
4. reads back from the CRM, in batches (CrmPort.read), the records of the entities found in step with the source,
   and compares their mapped fields with what the CRM writer would send for the stored state: a record `missing` in
   the CRM or `stale` in a field is repaired by a domain event on the CRM queue (the writer re-reads current state
   and upserts it by external id);
5. moves the cursor to the run's start (only when every page was read) and stores the drift report
   (RUN#<id>: per source and object: checked, missing, stale, deleted, repaired, failed) and the day's counters
   (checked / correct: accuracy A of GET /sync/metrics).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal

from crmsync.convert import KINDS
from crmsync.deadline import Deadline
from crmsync.messages import DetailType, DomainEvent
from crmsync.observability import logger
from crmsync.sync.clients import OBJECTS, SourceApiError, SourceClient
from crmsync.sync.errors import NotConfigured, NotSupported
from crmsync.sync.records import SourceRecord, as_webhook, compare, convert_record, send_through_ingest
from crmsync.views import customer_view

if TYPE_CHECKING:
    from crmsync.crm.port import CrmPort
    from crmsync.mapping import Mapping, ObjectMapping
    from crmsync.store.state import StateStore
    from crmsync.store.sync_jobs import SyncStore
    from crmsync.sync.jobs import SyncDeps

STRIPE_EVENTS_DAYS = 30  # Stripe keeps events this long; older cursors rescan objects instead
DELETION_TOPICS = {("woocommerce", "orders"): "order.deleted", ("woocommerce", "customers"): "customer.deleted"}
READ_BATCH = 1000  # values per CrmPort.read call; each adapter splits them into its own requests (HubSpot 100)
FIELDS = ("checked", "missing", "stale", "deleted", "repaired", "failed")


@dataclass
class Drift:
    checked: int = 0
    missing: int = 0
    stale: int = 0
    deleted: int = 0
    repaired: int = 0
    failed: int = 0
    crm_reads: int = 0  # CrmPort.read calls made (each one or more CRM requests)
    examples: list[dict[str, str]] = field(default_factory=list)  # at most 20: key, where, what

    def note(self, key: str, where: str, what: str) -> None:
        if len(self.examples) < 20:
            self.examples.append({"key": key, "where": where, "drift": what})

    def as_json(self) -> dict[str, Any]:
        return {
            **{name: getattr(self, name) for name in FIELDS},
            "crm_reads": self.crm_reads,
            "examples": self.examples,
        }


@dataclass
class ReconcileDeps:
    sync: SyncDeps
    crm: CrmPort | None
    mapping: Mapping | None
    # CRM repairs: domain events for the CRM writer (default: the CRM queue)
    repair_crm: Callable[[list[DomainEvent]], object]
    known_keys: Callable[[str], list[str]]  # state pk prefix -> every pk stored under it (entities)
    deadline: Deadline = field(default_factory=Deadline.never)
    # The run's totals as CloudWatch metrics (default: EMF through Powertools; the drift alarm watches them)
    publish: Callable[[str, dict[str, int]], None] = field(default_factory=lambda: publish_drift)


def _objects(source: str, since: datetime | None, now: datetime) -> list[str]:
    known = OBJECTS.get(source, ())
    if not known:
        raise NotSupported(f"{source} reconciliation is not supported")
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
    try:
        deps.publish(source, totals)
    except Exception:  # metrics are best effort: the report is stored already
        logger.exception("reconciliation metrics not published", run_id=run_id)
    logger.info("reconciliation done", run_id=run_id, source=source, **totals)
    return report


METRICS = {"checked": "ReconcileChecked", "repaired": "ReconcileRepaired", "failed": "ReconcileFailed"}


def publish_drift(source: str, totals: dict[str, int]) -> None:
    """One run's totals as CloudWatch metrics (EMF, namespace POWERTOOLS_METRICS_NAMESPACE): ReconcileDrift (missing +
    stale + deleted), ReconcileChecked, ReconcileRepaired, ReconcileFailed, each with the dimensions `service` and
    `stack` (CRMSYNC_STACK: the stack's name, so two stacks' alarms never see each other's drift) that the
    ReconcileDriftAlarm of template.yaml watches; per source: the log line, the run report, GET /sync/metrics."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    namespace = os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "crmsync")
    dimensions = {
        "service": os.environ.get("POWERTOOLS_SERVICE_NAME", "crmsync"),
        "stack": os.environ.get("CRMSYNC_STACK", "local"),
    }
    values = {"ReconcileDrift": totals["missing"] + totals["stale"] + totals["deleted"]}
    values.update({metric: totals[name] for name, metric in METRICS.items()})
    for name, value in values.items():
        with single_metric(name=name, unit=MetricUnit.Count, value=value, namespace=namespace) as metric:
            for key, dimension in dimensions.items():
                metric.add_dimension(name=key, value=dimension)
    logger.info("reconciliation metrics", source=source, metrics=values)


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
                drift.note(_example(comparison.creates, keys), "state", "missing")
                to_send.append(record)
            elif comparison.updates:
                drift.stale += 1
                drift.note(_example(comparison.updates, keys), "state", "stale")
                to_send.append(record)
            else:
                in_step.extend((pk.split("#", 1)[0], pk.split("#", 1)[1]) for pk, _ in keys)
        if to_send:
            now = datetime.fromtimestamp(deps.sync.clock(), UTC)
            drift.repaired += send_through_ingest(
                to_send, deps.sync.archive, deps.sync.ingest_queue, correlation_id=f"reconcile:{run_id}", now=now
            )
    _deleted_at_source(source, object_type, seen, deps, drift, run_id, full=since is None)
    return _check_crm(in_step, deps, drift)


def _example(labels: list[str], keys: list[tuple[str, str]]) -> str:
    """What a drift example names: the record's own entity (the order, not the new customer compare lists first),
    else the first label, masked."""
    own = {pk.split("#", 1)[1] for pk, _ in keys}
    return mask_key(next((label for label in labels if label in own), labels[0]))


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
    source: str, object_type: str, seen: set[str], deps: ReconcileDeps, drift: Drift, run_id: str, *, full: bool
) -> None:
    """Step 3 (orders only; customers are keyed by canonical id, and deleted customers come as notices, not found by
    listing). Every run forgets the recorded deletions of orders the source listed (restored); a full run reports,
    once, each stored order the source no longer lists and no deletion is recorded for (by an earlier run, or by
    convert from the source's deletion webhook), sends its deletion webhook, and records it."""
    if object_type != "orders":
        return
    store = deps.sync.store
    prefix = f"ORDER#{source}:order:"
    recorded = {pk for pk in store.deletions(source) if pk.startswith(prefix)}
    forget = recorded & seen
    gone: list[str] = []
    if full:
        known = set(deps.known_keys(prefix))
        forget |= recorded - known  # state no longer holds the order (erased): nothing left to report
        gone = sorted(known - seen - recorded)
    for pk in sorted(forget):
        store.clear_deletion(source, pk)
    topic = DELETION_TOPICS.get((source, object_type))
    records: list[SourceRecord] = []
    for pk in gone:
        drift.deleted += 1
        source_id = pk.removeprefix(prefix)
        drift.note(pk.removeprefix("ORDER#"), "source", "deleted at the source")
        if topic and source_id.isdigit():
            body = json.dumps({"id": int(source_id)}).encode()
            records.append(SourceRecord(source, object_type, topic, body, source_id))
    now = datetime.fromtimestamp(deps.sync.clock(), UTC)
    if records:
        drift.repaired += send_through_ingest(
            records, deps.sync.archive, deps.sync.ingest_queue, correlation_id=f"reconcile:{run_id}", now=now
        )
    for pk in gone:  # only once the webhooks are on the queue: a failed send is found and sent again next run
        store.record_deletion(source, pk, run_id, now.isoformat())


@dataclass(frozen=True)
class Expected:
    """One CRM record as the CRM writer would send it for the stored state, and the event that rewrites it."""

    id_property: str
    value: str
    properties: dict[str, str]
    event: DomainEvent


def expected_records(
    entities: Sequence[tuple[str, str]], state: StateStore, mapping: Mapping, crm: CrmPort
) -> dict[str, list[Expected]]:
    """CRM object type -> the records the CRM writer would send for these entities (ORDER / PAYMENT keys) and their
    customers. The writer's own gathering decides it (crmsync.writer._gather): a payment that names a known order is
    that order's deal (its payment status), not a deal of its own; an entity is sent under the customer holding it."""
    from crmsync.writer import WriterDeps, WriteSummary, _gather

    events = [_event("order" if kind == "ORDER" else "payment", key) for kind, key in entities]
    batch = _gather(events, WriterDeps(state=state, crm=crm, mapping=mapping), WriteSummary())
    found: dict[str, list[Expected]] = {"contacts": [], "deals": []}
    for key, view in batch.deals.items():
        entity: Entity = "payment" if batch.deal_pk.get(key, "").startswith("PAYMENT#") else "order"
        _add(found["deals"], mapping.deals, view, _event(entity, key))
    for cid in batch.customers:
        items = state.customer_items(cid)
        if items:
            _add(found["contacts"], mapping.contacts, customer_view(cid, items), _event("customer", cid))
    return found


def _add(into: list[Expected], mapping: ObjectMapping, view: dict[str, Any], event: DomainEvent) -> None:
    properties = mapping.apply(view)
    for id_property in (mapping.id_property, mapping.fallback_id_property):
        if id_property and properties.get(id_property):
            into.append(Expected(id_property, properties[id_property], properties, event))
            return


Entity = Literal["customer", "order", "payment"]


def _event(entity: Entity, key: str) -> DomainEvent:
    """A repair: the CRM writer reads the entity's current state, so the event carries only which entity."""
    return DomainEvent(
        entity=entity,
        key=key,
        customer_id=None,
        source="reconcile",
        source_id=None,
        source_version=datetime.now(UTC).isoformat(),
        receipt_id="reconcile",
        correlation_id="reconcile",
        data=None,
    )


# --- comparing what the CRM holds with what the writer would send ---------------------------------------------------
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")


def comparable(value: object) -> str:
    """A property value in the form two CRMs' spellings of it agree on: numbers without trailing zeros ("215.40" and
    HubSpot's "215.4", Salesforce's 215.4), timestamps as UTC to the second (".000Z", "+00:00"), text trimmed."""
    text = "" if value is None else str(value).strip()
    if _NUMBER.match(text):
        return format(Decimal(text).normalize(), "f")
    if _TIMESTAMP.match(text):
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
        except ValueError:
            return text
        moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="seconds")
    return text


def mapped_checksum(properties: dict[str, str], names: Sequence[str]) -> str:
    """Digest of the named (mapped) properties in comparable form: equal digests, equal records."""
    content = [(name, comparable(properties.get(name))) for name in sorted(names)]
    return hashlib.sha256(json.dumps(content, separators=(",", ":")).encode()).hexdigest()


def _stored_form(crm: CrmPort, object_type: str, properties: dict[str, str]) -> dict[str, str]:
    """What the backend keeps of the values sent (Salesforce turns a timestamp into a date, text into numbers);
    backends that keep text as sent (HubSpot, local) have no `as_stored`."""
    as_stored: Callable[[str, dict[str, str]], dict[str, str]] | None = getattr(crm, "as_stored", None)
    return as_stored(object_type, properties) if as_stored is not None else properties


def _check_crm(entities: Sequence[tuple[str, str]], deps: ReconcileDeps, drift: Drift) -> bool:
    """Step 4: read the CRM records back in batches and compare checksums of their mapped fields; True unless a read
    failed or the deadline came (the run is then partial and its cursor stays)."""
    crm = deps.crm
    if crm is None or deps.mapping is None:
        return True
    from crmsync.crm.errors import CrmError
    from crmsync.observability import mask_personal_data

    repairs: dict[str, DomainEvent] = {}
    complete = True
    for object_type, wanted in expected_records(entities, deps.sync.state, deps.mapping, crm).items():
        by_property: dict[str, list[Expected]] = {}
        for item in wanted:
            by_property.setdefault(item.id_property, []).append(item)
        for id_property, items in by_property.items():
            for start in range(0, len(items), READ_BATCH):
                if deps.deadline.passed():
                    return False
                chunk = items[start : start + READ_BATCH]
                names = sorted({name for item in chunk for name in item.properties} - {id_property})
                try:
                    read = crm.read(object_type, id_property, [item.value for item in chunk], names)
                except (CrmError, NotImplementedError) as exc:
                    drift.failed += len(chunk)
                    drift.note(
                        object_type, "crm", f"read failed: {type(exc).__name__}: {mask_personal_data(str(exc))[:200]}"
                    )
                    complete = False
                    continue
                drift.crm_reads += 1
                for item in chunk:
                    _compare(item, read.get(item.value), crm, object_type, drift, repairs)
    if repairs:
        try:
            deps.repair_crm(list(repairs.values()))
            drift.repaired += len(repairs)
        except Exception:
            logger.exception("crm repair not sent")
            drift.failed += len(repairs)
    return complete


def _compare(
    item: Expected,
    record: dict[str, str] | None,
    crm: CrmPort,
    object_type: str,
    drift: Drift,
    repairs: dict[str, DomainEvent],
) -> None:
    where = f"crm {object_type}"
    label = mask_key(item.value)
    if record is None:
        drift.missing += 1
        drift.note(label, where, "missing")
        repairs[f"{item.event.entity}:{item.event.key}"] = item.event
        return
    expected = {k: v for k, v in _stored_form(crm, object_type, item.properties).items() if v}
    if mapped_checksum(expected, list(expected)) == mapped_checksum(record, list(expected)):
        return
    differing = sorted(k for k, v in expected.items() if comparable(v) != comparable(record.get(k)))
    drift.stale += 1
    drift.note(label, where, "stale: " + ", ".join(differing))
    repairs[f"{item.event.entity}:{item.event.key}"] = item.event


def mask_key(value: str) -> str:
    """A record key for the drift report: an email key is masked (reports never hold personal data)."""
    from crmsync.observability import mask_personal_data

    return mask_personal_data(value)


def detail_type(event: DomainEvent) -> str:
    return DetailType.CUSTOMER_UPSERTED.value if event.entity == "customer" else DetailType.ORDER_UPDATED.value


def elapsed(started: float) -> float:
    return time.perf_counter() - started
