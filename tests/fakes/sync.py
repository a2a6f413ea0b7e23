"""MemorySync: crmsync.store.sync_jobs.SyncStore on dicts (jobs, checkpoints with their conditional advance, runs,
marks, recorded deletions, metrics), with the same answers."""

from __future__ import annotations

import copy
import threading
from typing import TYPE_CHECKING, Any, cast

from crmsync.store.sync_jobs import Checkpoint, add_counts

if TYPE_CHECKING:
    from crmsync.store.sync_jobs import SyncStore


class MemorySync:
    def __init__(self) -> None:
        self.jobs: dict[str, dict[str, Any]] = {}
        self.cursors: dict[tuple[str, str], Checkpoint] = {}
        self.runs: dict[str, dict[str, Any]] = {}
        self.marks: dict[str, str] = {}
        self.gone: dict[tuple[str, str], dict[str, str]] = {}  # (source, state pk) -> {run_id or receipt_id, at}
        self.counters: dict[tuple[str, str], dict[str, int]] = {}
        self._lock = threading.RLock()

    def as_store(self) -> SyncStore:
        return cast("SyncStore", self)

    def create_job(self, job_id: str, doc: dict[str, Any]) -> None:
        with self._lock:
            if job_id in self.jobs:
                raise ValueError("job exists")
            self.jobs[job_id] = copy.deepcopy(doc)

    def get_job(self, job_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.jobs.get(job_id))

    def update_job(self, job_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self.jobs[job_id].update(copy.deepcopy(changes))
            return copy.deepcopy(self.jobs[job_id])

    def init_cursor(self, job_id: str, object_type: str, total: int | None = None) -> None:
        with self._lock:
            self.cursors.setdefault((job_id, object_type), Checkpoint(object_type, 0, "", False, {}, total))

    def checkpoints(self, job_id: str) -> list[Checkpoint]:
        return [c for (job, _), c in sorted(self.cursors.items()) if job == job_id]

    def checkpoint(self, job_id: str, object_type: str) -> Checkpoint | None:
        return self.cursors.get((job_id, object_type))

    def advance(
        self,
        job_id: str,
        object_type: str,
        *,
        page: int,
        next_cursor: str | None,
        delta: dict[str, int],
        total: int | None = None,
    ) -> bool:
        with self._lock:
            current = self.cursors.get((job_id, object_type))
            if current is None or current.next_page != page:
                return False
            self.cursors[(job_id, object_type)] = Checkpoint(
                object_type,
                page + 1,
                next_cursor or "",
                next_cursor is None,
                add_counts(current.counts, delta),
                total if total is not None else current.total,
            )
            return True

    def put_run(self, run_id: str, doc: dict[str, Any]) -> None:
        self.runs[run_id] = copy.deepcopy(doc)

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        return copy.deepcopy(self.runs.get(run_id))

    def get_mark(self, name: str) -> str | None:
        return self.marks.get(name)

    def set_mark(self, name: str, value: str) -> None:
        self.marks[name] = value

    def deletions(self, source: str) -> set[str]:
        return {key for (s, key) in self.gone if s == source}

    def record_deletion(self, source: str, key: str, run_id: str, at: str) -> None:
        self.gone[(source, key)] = {"run_id": run_id, "at": at}

    def record_deletion_notice(self, source: str, key: str, receipt_id: str, at: str) -> None:
        with self._lock:
            self.gone.setdefault((source, key), {"receipt_id": receipt_id, "at": at})

    def clear_deletion(self, source: str, key: str) -> None:
        self.gone.pop((source, key), None)

    def add_metrics(self, day: str, source: str, delta: dict[str, int]) -> None:
        with self._lock:
            self.counters[(day, source)] = add_counts(self.counters.get((day, source), {}), delta)

    def metrics(self, first_day: str, last_day: str) -> list[tuple[str, str, dict[str, int]]]:
        return [(d, s, dict(c)) for (d, s), c in sorted(self.counters.items()) if first_day <= d <= last_day]
