"""Backfill and import jobs: started by the API, carried out a page at a time by the sync function.

A backfill of `objects` of one source fans out one chain of messages per object type on the backfill queue; each
message is one page (its number and the source's cursor for it). The worker for page p:
1. reads the object's checkpoint (crmsync.store.sync_jobs): if it is past p the page is done already (a redelivered
   or duplicated message); if it is exactly p+1, the message for p+1 may never have been sent (a crash after the
   checkpoint), so it is sent again, which is harmless (the checkpoint lets only one worker through a page);
2. fetches the page from the source API (throttled by the client's rate limiter);
3. sends every record through the normal conversion path (archive + IngestMessage: crmsync.sync.records), or, in a
   dry run, compares it with stored state and writes nothing but its counts;
4. advances the checkpoint with a write conditional on p (counts added exactly once);
5. sends the message for page p+1 with the cursor the API gave (or marks the object done).
A crash anywhere leaves the message to be received again: before 4 the page is redone (records sent twice are
no-ops in convert), after 4 step 1 resends the next page. The checkpoint never moves past a page whose records were
not all enqueued, so there is no gap; and no page is counted twice.

An import is the same with pages of rows of an uploaded file (crmsync.sync.importer) instead of API pages.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from crmsync.observability import logger
from crmsync.store.queue import OutgoingMessage
from crmsync.store.state import StateStore
from crmsync.store.sync_jobs import Checkpoint, SyncStore, add_counts
from crmsync.sync.clients import OBJECTS, SourceClient
from crmsync.sync.errors import NotSupported
from crmsync.sync.records import Comparison, FileArchive, IngestQueue, as_webhook, compare, send_through_ingest

PREVIEW_KEYS = ("create", "update", "noop", "invalid")


class Sender(Protocol):
    def send(self, body: str) -> str: ...


@dataclass
class SyncDeps:
    store: SyncStore
    queue: Sender  # the backfill queue (pages, import chunks, reconcile requests)
    state: StateStore
    archive: FileArchive
    ingest_queue: IngestQueue
    client: Callable[[str], SourceClient]  # source -> its API client
    clock: Callable[[], float] = time.time
    new_id: Callable[[str], str] = field(default=lambda prefix: f"{prefix}_{uuid.uuid4().hex[:20]}")
    rows: Callable[[str, int], list[dict[str, Any]]] | None = None  # import: (job id, chunk) -> rows (importer)


class BackfillRequest(BaseModel):
    """POST /sync/backfill. since/until bound the records' change time (updated_at / modified / created)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["shopify", "woocommerce", "stripe", "paypal"]
    objects: list[str] = Field(default_factory=list, max_length=5)
    since: datetime | None = None
    until: datetime | None = None
    dry_run: bool = False
    # newer_wins: every record goes through convert's version guard (newest state wins);
    # missing_only: only records whose entities are not stored yet are sent (existing state is left alone).
    match_policy: Literal["newer_wins", "missing_only"] = "newer_wins"

    @model_validator(mode="after")
    def _window(self) -> Self:
        for name in ("since", "until"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                object.__setattr__(self, name, value.replace(tzinfo=UTC))
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self

    def object_types(self) -> list[str]:
        known = OBJECTS[self.source]
        if not known:
            raise NotSupported(f"{self.source} backfill is not supported")
        chosen = list(dict.fromkeys(self.objects)) or [o for o in known if o != "events"]
        unknown = [o for o in chosen if o not in known]
        if unknown:
            raise NotSupported(f"{self.source} cannot list {', '.join(unknown)}; use {', '.join(known)}")
        return chosen


def _message(kind: str, job_id: str, object_type: str, page: int, cursor: str) -> str:
    return json.dumps({"kind": kind, "job_id": job_id, "object": object_type, "page": page, "cursor": cursor})


def start_backfill(request: BackfillRequest, deps: SyncDeps) -> str:
    objects = request.object_types()
    job_id = deps.new_id("bf")
    deps.store.create_job(
        job_id,
        {
            "kind": "backfill",
            "source": request.source,
            "objects": objects,
            "dry_run": request.dry_run,
            "match_policy": request.match_policy,
            "since": request.since.isoformat() if request.since else None,
            "until": request.until.isoformat() if request.until else None,
            "status": "running",
            "created_at": deps.clock(),
        },
    )
    for object_type in objects:
        deps.store.init_cursor(job_id, object_type)
        deps.queue.send(_message("page", job_id, object_type, 0, ""))
    logger.info("backfill started", job_id=job_id, source=request.source, objects=objects, dry_run=request.dry_run)
    return job_id


def handle_message(body: str, deps: SyncDeps, reconcile: Callable[[dict[str, Any]], Any] | None = None) -> None:
    """One backfill-queue message: a page of a backfill, a chunk of an import, or a reconciliation request."""
    message = json.loads(body)
    kind = message.get("kind")
    if kind == "reconcile":
        if reconcile is None:
            raise RuntimeError("reconciliation is not wired in this worker")
        reconcile(message)
        return
    if kind == "import_file":
        from crmsync.sync.sync_import import prepare_uploaded_import

        prepare_uploaded_import(str(message["job_id"]), deps)
        return
    if kind not in ("page", "import"):
        raise ValueError(f"unknown sync message kind {kind!r}")
    process_page(kind, message["job_id"], message["object"], int(message["page"]), str(message["cursor"]), deps)


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def process_page(kind: str, job_id: str, object_type: str, page: int, cursor: str, deps: SyncDeps) -> None:
    job = deps.store.get_job(job_id)
    checkpoint = deps.store.checkpoint(job_id, object_type)
    if job is None or checkpoint is None:
        logger.warning("sync message of an unknown job", job_id=job_id)
        return
    if checkpoint.next_page != page:
        if checkpoint.next_page == page + 1 and not checkpoint.done:  # done, but the next message may be lost
            deps.queue.send(_message(kind, job_id, object_type, page + 1, checkpoint.cursor))
        logger.info("page already done", job_id=job_id, object=object_type, page=page)
        return
    if job.get("status") == "cancelled":
        return
    if kind == "import":
        next_cursor, total, delta = _import_page(job, job_id, page, deps)
    else:
        next_cursor, total, delta = _backfill_page(job, job_id, object_type, cursor, deps)
    if not deps.store.advance(job_id, object_type, page=page, next_cursor=next_cursor, delta=delta, total=total):
        logger.info("page done by another worker", job_id=job_id, object=object_type, page=page)
        return
    if next_cursor is not None:
        deps.queue.send(_message(kind, job_id, object_type, page + 1, next_cursor))
    elif all(c.done for c in deps.store.checkpoints(job_id)):
        deps.store.update_job(job_id, {"status": "done", "finished_at": deps.clock()})
        logger.info("sync job done", job_id=job_id)
    if not job.get("dry_run") and delta.get("enqueued"):
        day = datetime.fromtimestamp(deps.clock(), UTC).date().isoformat()
        deps.store.add_metrics(day, str(job["source"]), {"synced": delta["enqueued"]})


def _backfill_page(
    job: dict[str, Any], job_id: str, object_type: str, cursor: str, deps: SyncDeps
) -> tuple[str | None, int | None, dict[str, int]]:
    source = str(job["source"])
    fetched = deps.client(source).list_page(object_type, cursor, _when(job.get("since")), _when(job.get("until")))
    records = [r for raw in fetched.records if (r := as_webhook(source, object_type, raw)) is not None]
    delta = {"pages": 1, "records": len(fetched.records), "skipped": len(fetched.records) - len(records)}
    delta.update(_send(job, job_id, records, deps))
    return fetched.next_cursor, fetched.total, delta


def _send(job: dict[str, Any], job_id: str, records: Sequence[Any], deps: SyncDeps) -> dict[str, int]:
    """Dry run: compare only. Otherwise send through ingest (missing_only: only records with an entity to create)."""
    if job.get("dry_run") or job.get("match_policy") == "missing_only":
        comparison = Comparison()
        chosen = []
        for record in records:
            single = compare([record], deps.state)
            for name in ("creates", "updates", "noops", "failed"):
                getattr(comparison, name).extend(getattr(single, name))
            if single.creates:
                chosen.append(record)
        if job.get("dry_run"):
            return comparison.counts()
        records = chosen
    now = datetime.fromtimestamp(deps.clock(), UTC)
    enqueued = send_through_ingest(records, deps.archive, deps.ingest_queue, correlation_id=f"sync:{job_id}", now=now)
    return {"enqueued": enqueued}


def _import_page(
    job: dict[str, Any], job_id: str, page: int, deps: SyncDeps
) -> tuple[str | None, int | None, dict[str, int]]:
    from crmsync.sync.importer import import_records

    if deps.rows is None:
        raise RuntimeError("import rows are not available to this worker")
    rows = deps.rows(job_id, page)
    records = import_records(rows)
    delta = {"pages": 1, "records": len(rows)}
    delta.update(_send(job, job_id, records, deps))
    chunks = int(job.get("chunks", 0))
    return (str(page + 1) if page + 1 < chunks else None), None, delta


# --- progress ------------------------------------------------------------------------------------------------------
def job_view(job_id: str, store: SyncStore, *, now: float | None = None) -> dict[str, Any] | None:
    """GET /sync/jobs/{id}: status, counts, percent, rate (records/s), eta (s); dry runs add the preview."""
    job = store.get_job(job_id)
    if job is None:
        return None
    checkpoints = store.checkpoints(job_id)
    counts: dict[str, int] = {}
    for checkpoint in checkpoints:
        counts = add_counts(counts, checkpoint.counts)
    done = bool(checkpoints) and all(c.done for c in checkpoints)
    status = "done" if done else str(job.get("status", "running"))
    processed = counts.get("records", 0)
    total = _total(job, checkpoints)
    started = float(job.get("created_at", 0))
    ended = float(job["finished_at"]) if done and job.get("finished_at") else (now or time.time())
    elapsed = max(ended - started, 1e-6)
    rate = processed / elapsed if processed else 0.0
    percent = 100.0 if done else (round(min(99.9, 100.0 * processed / total), 1) if total else None)
    eta = 0.0 if done else (round((total - processed) / rate, 1) if total and rate else None)
    view: dict[str, Any] = {
        "job_id": job_id,
        "kind": job.get("kind"),
        "source": job.get("source"),
        "status": status,
        "counts": counts,
        "percent": percent,
        "rate": round(rate, 2),
        "eta": eta,
        "total": total,
        "objects": {c.object_type: {"page": c.next_page, "done": c.done, "counts": c.counts} for c in checkpoints},
    }
    if job.get("dry_run"):
        view["preview"] = {key: counts.get(key, 0) for key in PREVIEW_KEYS}
    if job.get("kind") == "import":
        view["rows"] = job.get("rows", 0)
        view["errors"] = job.get("errors", [])
    if job.get("error"):  # why a job failed as a whole (e.g. an uploaded file that is not UTF-8)
        view["error"] = job["error"]
    return view


def _total(job: dict[str, Any], checkpoints: Sequence[Checkpoint]) -> int | None:
    if job.get("kind") == "import":
        return int(job.get("valid_rows", 0)) or None
    totals = [c.total for c in checkpoints]
    return sum(t for t in totals if t is not None) if checkpoints and all(t is not None for t in totals) else None


def outgoing(bodies: Sequence[str]) -> list[OutgoingMessage]:
    return [OutgoingMessage(str(i), body) for i, body in enumerate(bodies)]
