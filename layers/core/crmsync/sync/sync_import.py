"""API side of imports, reconciliation requests and the sync metrics (the work itself runs in the sync function)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from crmsync.store.sync_jobs import SyncStore
from crmsync.sync.importer import MAX_ERRORS, chunks, parse_file
from crmsync.sync.jobs import SyncDeps
from crmsync.sync.wiring import IMPORT_PREFIX

RECONCILABLE = ("shopify", "woocommerce", "stripe", "paypal")


def start_import(text: str, fmt: Literal["csv", "jsonl"], deps: SyncDeps) -> dict[str, Any]:
    """Validate the file, store its valid rows in chunks, start the job; the answer reports every bad row."""
    parsed = parse_file(text, fmt)
    job_id = deps.new_id("im")
    parts = chunks(parsed.rows)
    for number, part in enumerate(parts):
        body = "\n".join(json.dumps(row, separators=(",", ":")) for row in part).encode()
        deps.archive.put(f"{IMPORT_PREFIX}{job_id}/{number:05d}.jsonl", body, {"job-id": job_id})
    errors = [e.as_json() for e in parsed.errors[:MAX_ERRORS]]
    deps.store.create_job(
        job_id,
        {
            "kind": "import",
            "source": "import",
            "objects": ["rows"],
            "format": fmt,
            "rows": parsed.total,
            "valid_rows": len(parsed.rows),
            "error_count": len(parsed.errors),
            "errors": errors,
            "chunks": len(parts),
            "status": "running" if parts else "done",
            "created_at": deps.clock(),
            "dry_run": False,
            "match_policy": "newer_wins",
        },
    )
    if parts:
        deps.store.init_cursor(job_id, "rows")
        deps.queue.send(json.dumps({"kind": "import", "job_id": job_id, "object": "rows", "page": 0, "cursor": "0"}))
    return {
        "job_id": job_id,
        "rows": parsed.total,
        "accepted": len(parsed.rows),
        "rejected": len(parsed.errors),
        "errors": errors,
    }


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
