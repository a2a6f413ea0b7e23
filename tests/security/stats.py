"""What the fuzz suites tried, for the closing summary of a run (tests/security/conftest.py prints it)."""

from __future__ import annotations

from collections import Counter

TRIED: Counter[str] = Counter()


def record(status: int, *, verified: bool, stored: bool) -> None:
    """Count one input by its answer's status class, and an unverified request that stored anything."""
    TRIED["inputs"] += 1
    TRIED[f"{status // 100}xx"] += 1
    if stored and not verified:
        TRIED["unverified stored"] += 1


def summary() -> str:
    classes = ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items()) if k.endswith("xx"))
    return (
        f"security fuzz: {TRIED['inputs']} inputs, {TRIED['5xx']} answered 5xx, "
        f"{TRIED['unverified stored']} unverified requests stored anything ({classes})"
    )
