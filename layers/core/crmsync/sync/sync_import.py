"""API side of imports, reconciliation requests and the sync metrics (the work itself runs in the sync function)."""

from __future__ import annotations

import contextlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from crmsync.store.errors import ConditionFailed
from crmsync.store.sync_jobs import SyncStore
from crmsync.sync.importer import MAX_ERRORS, BadImport, Parsed, chunks, parse_file
from crmsync.sync.jobs import SyncDeps
from crmsync.sync.wiring import IMPORT_PREFIX

RECONCILABLE = ("shopify", "woocommerce", "stripe", "paypal")


def start_import(text: str, fmt: Literal["csv", "jsonl"], deps: SyncDeps) -> dict[str, Any]:
    """Validate the file, store its valid rows in chunks, start the job; the answer reports every bad row."""
    parsed = parse_file(text, fmt)
    job_id = deps.new_id("im")
    deps.store.create_job(job_id, _import_job(fmt, "validating", deps))
    errors = _store_and_start(job_id, parsed, deps)
    return {
        "job_id": job_id,
        "rows": parsed.total,
        "accepted": len(parsed.rows),
        "rejected": len(parsed.errors),
        "errors": errors,
    }


def _import_job(fmt: str, status: str, deps: SyncDeps, **more: Any) -> dict[str, Any]:
    return {
        "kind": "import",
        "source": "import",
        "objects": ["rows"],
        "format": fmt,
        "rows": 0,
        "valid_rows": 0,
        "error_count": 0,
        "errors": [],
        "chunks": 0,
        "status": status,
        "created_at": deps.clock(),
        "dry_run": False,
        "match_policy": "newer_wins",
        **more,
    }


def _store_and_start(job_id: str, parsed: Parsed, deps: SyncDeps) -> list[dict[str, Any]]:
    """Store the valid rows in chunks, record the counts, queue the first chunk; safe to repeat (same chunk keys,
    a cursor that keeps its progress, a repeated page message ignored by its checkpoint)."""
    parts = chunks(parsed.rows)
    for number, part in enumerate(parts):
        body = "\n".join(json.dumps(row, separators=(",", ":")) for row in part).encode()
        deps.archive.put(f"{IMPORT_PREFIX}{job_id}/{number:05d}.jsonl", body, {"job-id": job_id})
    errors = [e.as_json() for e in parsed.errors[:MAX_ERRORS]]
    counts = {"rows": parsed.total, "valid_rows": len(parsed.rows), "error_count": len(parsed.errors)}
    deps.store.update_job(job_id, {**counts, "errors": errors, "chunks": len(parts)})
    if parts:
        deps.store.init_cursor(job_id, "rows")
        deps.queue.send(json.dumps({"kind": "import", "job_id": job_id, "object": "rows", "page": 0, "cursor": "0"}))
    deps.store.update_job(job_id, {"status": "running" if parts else "done"})
    return errors


# --- files too big for an API body: a presigned PUT into the archive bucket, then the import from there --------
UPLOAD_PREFIX = f"{IMPORT_PREFIX}uploads/"
UPLOAD_EXPIRES_SECONDS = 900
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
MAX_UPLOAD_ROWS = 500_000  # parsed in the sync function (memory and time bound), not in the API's 29 s
CONTENT_TYPES = {"csv": "text/csv", "jsonl": "application/x-ndjson"}
UPLOAD_ID = re.compile(r"^up_[0-9a-f]{20}$")


class UploadRequest(BaseModel):
    """POST /sync/import/uploads."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["csv", "jsonl"]


def _upload_key(upload_id: str, fmt: str) -> str:
    return f"{UPLOAD_PREFIX}{upload_id}.{fmt}"


def new_upload(request: UploadRequest, deps: SyncDeps) -> dict[str, Any]:
    """Where to PUT a file of up to MAX_UPLOAD_BYTES, and how; POST /sync/import?upload_id= then imports it."""
    upload_id = deps.new_id("up")
    content_type = CONTENT_TYPES[request.format]
    url = deps.archive.upload_url(_upload_key(upload_id, request.format), content_type, UPLOAD_EXPIRES_SECONDS)
    return {
        "upload_id": upload_id,
        "url": url,
        "method": "PUT",
        "headers": {"Content-Type": content_type},
        "expires_in": UPLOAD_EXPIRES_SECONDS,
        "max_bytes": MAX_UPLOAD_BYTES,
    }


def queue_uploaded_import(upload_id: str, deps: SyncDeps) -> dict[str, Any]:
    """Start the import of an uploaded file: the job exists at once (status `validating`), the sync function reads
    and validates the file. The job id follows from the upload id, so asking twice starts one job."""
    if not UPLOAD_ID.match(upload_id):
        raise BadImport("upload_id is not one POST /sync/import/uploads answered")
    found = [(fmt, head) for fmt in CONTENT_TYPES if (head := deps.archive.head(_upload_key(upload_id, fmt)))]
    if not found:
        raise BadImport("nothing was uploaded for this upload_id yet: PUT the file to its url first")
    fmt, head = found[0]
    if head.size > MAX_UPLOAD_BYTES:
        raise BadImport(f"the file is {head.size} bytes; at most {MAX_UPLOAD_BYTES}")
    if head.size == 0:
        raise BadImport("the file is empty")
    job_id = "im_" + upload_id.removeprefix("up_")
    if deps.store.get_job(job_id) is None:
        with contextlib.suppress(ConditionFailed):  # two requests at once: one job
            deps.store.create_job(job_id, _import_job(fmt, "validating", deps, upload_key=head.key))
            deps.queue.send(json.dumps({"kind": "import_file", "job_id": job_id}))
    return {"job_id": job_id, "status": "validating"}


def prepare_uploaded_import(job_id: str, deps: SyncDeps) -> None:
    """The sync function's side of queue_uploaded_import: validate the file, then go on as a direct import."""
    job = deps.store.get_job(job_id)
    if job is None or job.get("status") != "validating":
        return  # unknown, or already done by an earlier delivery of this message
    fmt: Literal["csv", "jsonl"] = "csv" if job.get("format") == "csv" else "jsonl"
    try:
        text = deps.archive.get(str(job["upload_key"])).decode("utf-8")
        parsed = parse_file(text, fmt, max_rows=MAX_UPLOAD_ROWS)
    except (UnicodeDecodeError, BadImport) as exc:
        reason = "the file is not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
        deps.store.update_job(job_id, {"status": "failed", "error": reason, "finished_at": deps.clock()})
        return
    _store_and_start(job_id, parsed, deps)


class ReconcileRequest(BaseModel):
    """POST /sync/reconcile: one source (default: every source with a listing API), full = ignore the cursor."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Literal["shopify", "woocommerce", "stripe", "paypal"] | None = None
    full: bool = False


def queue_reconcile(request: ReconcileRequest, deps: SyncDeps) -> dict[str, Any]:
    sources = [request.source] if request.source else list(RECONCILABLE)
    base = deps.new_id("rc")
    run_ids = {}
    for source in sources:
        run_id = base if len(sources) == 1 else f"{base}-{source}"
        deps.store.put_run(run_id, {"run_id": run_id, "source": source, "status": "queued", "objects": {}})
        deps.queue.send(json.dumps({"kind": "reconcile", "source": source, "run_id": run_id, "full": request.full}))
        run_ids[source] = run_id
    return {"run_id": next(iter(run_ids.values())), "run_ids": run_ids}


def metrics_view(store: SyncStore, days: int, *, today: datetime | None = None) -> dict[str, Any]:
    """The seed's figures per source and UTC day: S = records synced (and per hour), A = correct / checked by
    reconciliation, E = automated actions / events (when the rules record them; null otherwise)."""
    last = (today or datetime.now(UTC)).date()
    first = last - timedelta(days=days - 1)
    throughput: dict[str, dict[str, Any]] = {}
    accuracy: dict[str, dict[str, Any]] = {}
    efficiency: dict[str, dict[str, Any]] = {}
    for day, source, counters in store.metrics(first.isoformat(), last.isoformat()):
        synced = counters.get("synced", 0)
        throughput.setdefault(source, {})[day] = {"records": synced, "per_hour": round(synced / 24, 2)}
        checked = counters.get("checked", 0)
        if checked:
            accuracy.setdefault(source, {})[day] = {
                "checked": checked,
                "correct": counters.get("correct", 0),
                "repaired": counters.get("repaired", 0),
                "ratio": round(counters.get("correct", 0) / checked, 4),
            }
        events = counters.get("events", 0)
        if events:
            efficiency.setdefault(source, {})[day] = {
                "actions": counters.get("actions", 0),
                "events": events,
                "ratio": round(counters.get("actions", 0) / events, 4),
            }
    return {
        "from": first.isoformat(),
        "to": last.isoformat(),
        "throughput": throughput,
        "accuracy": accuracy,
        "automation_efficiency": efficiency,
    }
