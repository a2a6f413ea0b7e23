"""MemoryDirty: crmsync.store.dirty.DirtyStore on a dict, with the same answers (proven against the real store on
moto by tests/integration/test_dirty_store.py). `faults` fails operations "dirty.<method>" before or after their
effect; `calls` counts them; `log` records what happened, for benches and tests that follow entities in time."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from typing import TYPE_CHECKING

from crmsync.store.dirty import MAX_ERROR_CHARS, DirtyItem, Touch
from tests.fakes.faults import Faults, check, check_after

if TYPE_CHECKING:
    from crmsync.store.dirty import DirtyStore


class MemoryDirty:
    def __init__(self, *, clock: Callable[[], float], faults: Faults | None = None) -> None:
        self.clock = clock
        self.faults = faults
        self.calls: Counter[str] = Counter()
        self.log: list[tuple[float, str, str]] = []  # (time, "mark" | "clear" | "drop", entity#key)
        self._items: dict[str, DirtyItem] = {}  # entity#key -> item
        self._lease: tuple[str, int] | None = None  # (token, until ms)
        self._lock = threading.RLock()

    def as_store(self) -> DirtyStore:
        return self  # type: ignore[return-value]

    @contextmanager
    def _op(self, op: str) -> Iterator[None]:
        with self._lock:
            self.calls[op] += 1
            check(self.faults, f"dirty.{op}")
            yield
        check_after(self.faults, f"dirty.{op}")

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    # --- the CRM writer's side ------------------------------------------------------------------
    def mark(self, touches: Sequence[Touch]) -> None:
        with self._op("mark"):
            now = self._now_ms()
            for touch in {(t.entity, t.key): t for t in touches}.values():
                key = f"{touch.entity}#{touch.key}"
                old = self._items.get(key)
                if old is None:
                    self._items[key] = DirtyItem(touch.entity, touch.key, now, now, 1, event=touch.event)
                else:
                    self._items[key] = replace(
                        old, touched=now, rev=old.rev + 1, event=touch.event if touch.event is not None else old.event
                    )
                self.log.append((now / 1000, "mark", key))

    # --- the flusher's side ---------------------------------------------------------------------
    def pending(self) -> list[DirtyItem]:
        with self._op("pending"):
            return sorted(self._items.values(), key=lambda i: (i.since, i.sort_key))

    def clear(self, items: Sequence[DirtyItem]) -> list[DirtyItem]:
        with self._op("clear"):
            kept = []
            for item in items:
                stored = self._items.get(item.sort_key)
                if stored is None or stored.rev != item.rev:
                    kept.append(item)
                    continue
                del self._items[item.sort_key]
                self.log.append((self.clock(), "clear", item.sort_key))
            return kept

    def failed(self, item: DirtyItem, attempts: int, retry_at: float, error: str) -> None:
        with self._op("failed"):
            stored = self._items.get(item.sort_key)
            if stored is not None:
                self._items[item.sort_key] = replace(
                    stored, attempts=attempts, retry_at=int(retry_at * 1000), error=error[:MAX_ERROR_CHARS]
                )

    def drop(self, item: DirtyItem) -> bool:
        with self._op("drop"):
            stored = self._items.get(item.sort_key)
            if stored is not None and stored.rev == item.rev:
                del self._items[item.sort_key]
                self.log.append((self.clock(), "drop", item.sort_key))
                return True
            if stored is not None:
                self._items[item.sort_key] = replace(stored, attempts=0, retry_at=0, error="")
            return False

    def acquire(self, token: str, until: float) -> bool:
        with self._op("acquire"):
            if self._lease is not None and self._lease[1] >= self._now_ms():
                return False
            self._lease = (token, int(until * 1000))
            return True

    def release(self, token: str) -> None:
        with self._op("release"):
            if self._lease is not None and self._lease[0] == token:
                self._lease = None

    # --- for tests ------------------------------------------------------------------------------
    def items(self) -> dict[str, DirtyItem]:
        with self._lock:
            return dict(self._items)
