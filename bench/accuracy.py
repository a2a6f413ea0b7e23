"""Conversion accuracy: the hand-written expectations of the table-driven conversion suites, checked field by field.

A = correct fields / checked fields. The cases are read as data from the test modules (importing them needs pytest
installed, not running): a module-level list of `pytest.param(topic, fixture, expected Converted)`, or module-level
objects with `topic`, `fixture`, `customer`, `entities` and `notices` (a dict of them, or single ones). Each case's
fixture is converted for real by the source's `<Name>Webhooks().convert`, with the receipt id the module's
expectations use (its `RECEIPT`), and the expected value is walked recursively: every leaf is one checked field.
Test functions that do not draw on such a table (their expectations are written inside the function) are counted
as skipped, by name and by the number of test items pytest would make of them.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from pydantic import BaseModel

from crmsync.sources.base import Converted

MAX_MISMATCHES = 10  # per suite, kept in results.json


@dataclass(frozen=True)
class Suite:
    source: str  # "shopify": fixtures are read from tests/fixtures/<source>/
    module: str  # dotted name of the test module
    convert: Callable[..., Converted]  # <Name>Webhooks().convert


@dataclass(frozen=True)
class Case:
    id: str
    topic: str
    fixture: str
    expected: Converted
    found_as: object  # the object the module holds (a pytest.param or a case object), to see which tests use it


@dataclass
class Score:
    checked: int = 0
    correct: int = 0
    mismatches: list[str] = field(default_factory=list)

    def add(self, ok: bool, path: str, expected: object, actual: object) -> None:
        self.checked += 1
        self.correct += ok
        if not ok and len(self.mismatches) < MAX_MISMATCHES:
            self.mismatches.append(f"{path}: expected {expected!r}, got {actual!r}")

    def miss_all(self, path: str, expected: object, reason: str) -> None:
        count = leaves(expected)
        self.checked += count
        if len(self.mismatches) < MAX_MISMATCHES:
            self.mismatches.append(f"{path}: {count} field(s) wrong, {reason}")

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.checked if self.checked else None


@dataclass
class SuiteResult:
    source: str
    module: str
    cases: list[str]
    score: Score
    skipped_tests: dict[str, int]  # test function -> number of test items it makes
    errors: list[str] = field(default_factory=list)


# ---- walking expected values ----------------------------------------------------------------------------------


def _children(value: object) -> Iterator[tuple[str, object]] | None:
    """Named parts of a composite value, or None for a leaf."""
    if isinstance(value, BaseModel):
        return ((name, getattr(value, name)) for name in type(value).model_fields)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value))
    if isinstance(value, dict) and value:
        return ((f"[{key!r}]", item) for key, item in value.items())
    if isinstance(value, list | tuple) and value:
        return ((f"[{index}]", item) for index, item in enumerate(value))
    return None  # scalars, None, enums, datetimes, and empty containers (one field: "is empty")


def leaves(value: object) -> int:
    parts = _children(value)
    return 1 if parts is None else sum(leaves(part) for _, part in parts)


def compare(expected: object, actual: object, path: str, score: Score) -> None:
    """Walk `expected`; each leaf is one checked field. Extra list items or dict keys in `actual` count as wrong."""
    parts = _children(expected)
    if parts is None:
        ok = expected == actual and (not isinstance(expected, Enum) or type(expected) is type(actual))
        score.add(ok, path, expected, actual)
        return
    if isinstance(expected, BaseModel) or dataclasses.is_dataclass(expected):
        if type(actual) is not type(expected):
            score.miss_all(path, expected, f"got {type(actual).__name__} instead of {type(expected).__name__}")
            return
        for name, part in parts:
            compare(part, getattr(actual, name), f"{path}.{name}", score)
        return
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            score.miss_all(path, expected, f"got {type(actual).__name__} instead of a dict")
            return
        for key, part in expected.items():
            if key in actual:
                compare(part, actual[key], f"{path}[{key!r}]", score)
            else:
                score.miss_all(f"{path}[{key!r}]", part, "missing")
        for key in actual.keys() - expected.keys():
            score.add(False, f"{path}[{key!r}]", "(absent)", actual[key])
        return
    assert isinstance(expected, list | tuple)
    if not isinstance(actual, list | tuple):
        score.miss_all(path, expected, f"got {type(actual).__name__} instead of a sequence")
        return
    for index, part in enumerate(expected):
        if index < len(actual):
            compare(part, actual[index], f"{path}[{index}]", score)
        else:
            score.miss_all(f"{path}[{index}]", part, "missing")
    for index in range(len(expected), len(actual)):
        score.add(False, f"{path}[{index}]", "(absent)", actual[index])


# ---- finding the case tables ------------------------------------------------------------------------------------


def _as_case(name: str, value: object) -> Case | None:
    if isinstance(value, pytest.ParameterSet):
        values = value.values
        shaped = len(values) == 3 and isinstance(values[0], str) and isinstance(values[1], str)
        if shaped and isinstance(values[2], Converted):
            case_id = value.id if isinstance(value.id, str) else name
            return Case(case_id, str(values[0]), str(values[1]), values[2], value)
        return None
    parts = ("topic", "fixture", "customer", "entities", "notices")
    if not isinstance(value, type) and all(hasattr(value, part) for part in parts):
        topic, fixture = getattr(value, "topic"), getattr(value, "fixture")  # noqa: B009 - any object with them
        if isinstance(topic, str) and isinstance(fixture, str):
            expected = Converted(
                customer=getattr(value, "customer"),  # noqa: B009
                entities=tuple(getattr(value, "entities")),  # noqa: B009
                notices=tuple(getattr(value, "notices")),  # noqa: B009
            )
            return Case(name, topic, fixture, expected, value)
    return None


def find_cases(module: ModuleType) -> list[Case]:
    """Cases held as data at module level: in lists, tuples or dicts first (their ids win), then single objects."""
    cases: dict[int, Case] = {}
    singles: list[tuple[str, object]] = []
    for name, value in vars(module).items():
        if isinstance(value, dict):
            members: list[tuple[str, object]] = [(str(key), item) for key, item in value.items()]
        elif isinstance(value, list | tuple):
            members = [(f"{name}[{index}]", item) for index, item in enumerate(value)]
        else:
            singles.append((name, value))
            continue
        for member_name, member in members:
            case = _as_case(member_name, member)
            if case is not None:
                cases.setdefault(id(member), case)
    for name, value in singles:
        case = _as_case(name, value)
        if case is not None:
            cases.setdefault(id(value), case)
    return list(cases.values())


def _test_items(function: Callable[..., Any]) -> tuple[int, set[int]]:
    """How many test items pytest makes of a test function, and the ids of every parametrize value it uses."""
    items, used = 1, set[int]()
    for mark in getattr(function, "pytestmark", []):
        if mark.name == "parametrize" and len(mark.args) >= 2:
            values = list(mark.args[1])
            items *= len(values)
            used |= {id(value) for value in values}
    return items, used


def run_suite(suite: Suite, fixtures: Path) -> SuiteResult:
    module = importlib.import_module(suite.module)
    receipt = getattr(module, "RECEIPT", None)
    if not isinstance(receipt, str):
        raise AssertionError(f"{suite.module} has no RECEIPT: its expectations cannot be reproduced")
    cases = find_cases(module)
    covered = {id(case.found_as) for case in cases}
    skipped: dict[str, int] = {}
    for name, function in inspect.getmembers(module, inspect.isfunction):
        if name.startswith("test_") and function.__module__ == module.__name__:
            items, used = _test_items(function)
            if not used & covered:
                skipped[name] = items
    score = Score()
    errors: list[str] = []
    for case in cases:
        try:
            body = (fixtures / suite.source / case.fixture).read_bytes()
            actual: object = suite.convert(case.topic, body, receipt_id=receipt)
        except Exception as exc:  # a conversion that fails gets every expected field wrong, and is reported
            errors.append(f"{case.id}: {type(exc).__name__}: {exc}")
            score.miss_all(case.id, case.expected, f"conversion raised {type(exc).__name__}")
            continue
        compare(case.expected, actual, case.id, score)
    return SuiteResult(suite.source, suite.module, [case.id for case in cases], score, skipped, errors)


def combined(results: list[SuiteResult]) -> Score:
    total = Score()
    for result in results:
        total.checked += result.score.checked
        total.correct += result.score.correct
        total.mismatches += result.score.mismatches[: max(0, MAX_MISMATCHES - len(total.mismatches))]
    return total


def is_perfect(score: Score) -> bool:
    return score.checked > 0 and score.correct == score.checked
