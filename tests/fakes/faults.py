"""Seeded fault injection and a controllable clock, shared by every fake.

`Faults` decides, operation by operation, whether a call fails: either BEFORE its effect (the call changed
nothing) or AFTER it (the effect happened, but the caller sees an error, as when a response is lost).
Operation names are "<fake>.<method>" ("state.put_versioned", "queue.send", "bus.publish"); a rate may be
given for one operation, for every method of a fake ("state.*") or for everything ("*").
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from random import Random

from crmsync.store.errors import StoreError


class InjectedStoreError(StoreError):
    """An injected AWS failure: what the real adapters raise when a call fails (store/errors.py)."""

    def __init__(self, op: str, when: str) -> None:
        super().__init__(f"injected failure {when} {op}")
        self.op = op
        self.when = when  # "before" (nothing changed) or "after" (the effect happened)


def rng_of(seed: int | Random | None) -> Random:
    """A Random from a seed, or the given Random itself (so several fakes can share one sequence)."""
    return seed if isinstance(seed, Random) else Random(seed if seed is not None else 0)  # noqa: S311 - tests


class Faults:
    """Seeded failure decisions, with counters of what was injected.

    >>> faults = Faults(7, before={"state.put_versioned": 0.05}, after={"queue.send": 0.01})
    """

    def __init__(
        self,
        seed: int | Random | None = 0,
        *,
        before: Mapping[str, float] | None = None,
        after: Mapping[str, float] | None = None,
    ) -> None:
        self.rng = rng_of(seed)
        self.before: dict[str, float] = dict(before or {})
        self.after: dict[str, float] = dict(after or {})
        self.enabled = True
        self.injected: Counter[str] = Counter()  # "<when>:<op>" -> count
        self._scripted: deque[tuple[str, str]] = deque()  # (when, op pattern) forced in order
        self._lock = threading.Lock()

    # --- configuration ----------------------------------------------------------------------------
    def force(self, op: str, *, when: str = "before", times: int = 1) -> None:
        """Fail the next `times` calls matching op ("state.put_versioned", "state.*", "*"), whatever the rates."""
        if when not in ("before", "after"):
            raise ValueError("when is 'before' or 'after'")
        with self._lock:
            self._scripted.extend([(when, op)] * times)

    @contextmanager
    def paused(self) -> Iterator[None]:
        """No failures inside the block (e.g. while redriving once the cause is fixed)."""
        previous, self.enabled = self.enabled, False
        try:
            yield
        finally:
            self.enabled = previous

    @property
    def total(self) -> int:
        return sum(self.injected.values())

    # --- decisions ----------------------------------------------------------------------------------
    def check(self, op: str) -> None:
        """Raise InjectedStoreError before the effect of op, when it is this call's turn to fail."""
        if self._decide(op, "before"):
            raise InjectedStoreError(op, "before")

    def check_after(self, op: str) -> None:
        """Raise InjectedStoreError after the effect of op (call it once the effect is done)."""
        if self._decide(op, "after"):
            raise InjectedStoreError(op, "after")

    def _decide(self, op: str, when: str) -> bool:
        if not self.enabled:
            return False
        with self._lock:
            if self._scripted and self._scripted[0][0] == when and _matches(self._scripted[0][1], op):
                self._scripted.popleft()
                self.injected[f"{when}:{op}"] += 1
                return True
            rate = _rate(self.before if when == "before" else self.after, op)
            if rate and self.rng.random() < rate:
                self.injected[f"{when}:{op}"] += 1
                return True
        return False


def _matches(pattern: str, op: str) -> bool:
    return pattern in (op, "*") or (pattern.endswith(".*") and op.startswith(pattern[:-1]))


def _rate(rates: Mapping[str, float], op: str) -> float:
    if op in rates:
        return rates[op]
    family = op.split(".", 1)[0] + ".*"
    return rates.get(family, rates.get("*", 0.0))


def check(faults: Faults | None, op: str) -> None:
    if faults is not None:
        faults.check(op)


def check_after(faults: Faults | None, op: str) -> None:
    if faults is not None:
        faults.check_after(op)


class FakeClock:
    """Epoch seconds that move only when told to; callable, so it fits IngestDeps(clock=...)."""

    def __init__(self, start: float = 1_795_000_000.0) -> None:
        self.now = float(start)
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("time only moves forward")
        with self._lock:
            self.now += seconds
            return self.now

    def advance_to(self, at: float) -> float:
        with self._lock:
            self.now = max(self.now, at)
            return self.now
