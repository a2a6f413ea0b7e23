"""The fakes of tests/fakes keep up with the real classes: every public method of a store has its twin in the fake,
callable the same way. A method added to a store fails here until the fake (and its contract test) covers it."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

import pytest

from crmsync.crm.local import LocalCrm
from crmsync.crm.port import CrmPort
from crmsync.store import state as real_state
from crmsync.store.archive import RawArchive
from crmsync.store.bus import EventBus
from crmsync.store.queue import Queue
from crmsync.store.receipts import ReceiptStore
from crmsync.store.state import StateStore
from tests.fakes import FaultyCrm, MemoryArchive, MemoryBus, MemoryReceipts, MemoryState, SqsSimulator

PAIRS: list[tuple[type[Any], type[Any]]] = [
    (StateStore, MemoryState),
    (ReceiptStore, MemoryReceipts),
    (RawArchive, MemoryArchive),
    (Queue, SqsSimulator),
    (EventBus, MemoryBus),
    (LocalCrm, FaultyCrm),
]


# Dataclass fields a fake need not have: AWS resource handles, and LocalCrm's table (FaultyCrm is its own table).
RESOURCE_FIELDS = {"client", "table", "bucket", "records"}


def public_members(cls: type[Any]) -> dict[str, Any]:
    """Public methods and properties, without the dataclass fields (the real stores' table/client/url)."""
    fields = {f.name for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else set()
    return {
        name: inspect.getattr_static(cls, name) for name in dir(cls) if not name.startswith("_") and name not in fields
    }


def signature_problems(real: inspect.Signature, fake: inspect.Signature) -> list[str]:
    problems: list[str] = []
    fake_params = list(fake.parameters.values())
    for index, param in enumerate(real.parameters.values()):
        twin = fake.parameters.get(param.name)
        if twin is None:
            problems.append(f"no parameter {param.name!r}")
            continue
        if twin.kind != param.kind:
            problems.append(f"{param.name!r} is {twin.kind.description}, not {param.kind.description}")
        if param.kind is param.POSITIONAL_OR_KEYWORD and fake_params.index(twin) != index:
            problems.append(f"{param.name!r} is not at position {index}")
        if param.default is not param.empty and twin.default != param.default:
            problems.append(f"{param.name!r} defaults to {twin.default!r}, not {param.default!r}")
    for extra in fake_params:
        if (
            extra.name not in real.parameters
            and extra.default is extra.empty
            and extra.kind
            not in (
                extra.VAR_POSITIONAL,
                extra.VAR_KEYWORD,
            )
        ):
            problems.append(f"extra parameter {extra.name!r} without a default")
    if " ".join(str(real.return_annotation).split()) != " ".join(str(fake.return_annotation).split()):
        problems.append(f"returns {fake.return_annotation}, not {real.return_annotation}")
    return problems


@pytest.mark.parametrize(("real", "fake"), PAIRS, ids=[f"{r.__name__}-{f.__name__}" for r, f in PAIRS])
def test_every_public_method_of_the_store_has_a_twin_in_the_fake(real: type[Any], fake: type[Any]) -> None:
    problems: list[str] = []
    fake_members = public_members(fake)
    instance_attributes = set(inspect.signature(fake.__init__).parameters)  # e.g. name, set in __init__
    for name, member in public_members(real).items():
        twin = fake_members.get(name)
        if isinstance(member, property):
            if twin is None and name not in instance_attributes:
                problems.append(f"{name}: no such property or attribute")
            continue
        if not callable(member):
            continue
        if twin is None or not callable(twin):
            problems.append(f"{name}: missing")
            continue
        problems.extend(f"{name}: {p}" for p in signature_problems(inspect.signature(member), inspect.signature(twin)))
    assert not problems, f"{fake.__name__} drifted from {real.__name__}:\n" + "\n".join(problems)


@pytest.mark.parametrize(("real", "fake"), PAIRS, ids=[f"{r.__name__}-{f.__name__}" for r, f in PAIRS])
def test_every_setting_of_the_store_is_a_setting_of_the_fake(real: type[Any], fake: type[Any]) -> None:
    # e.g. EventBus.source (who publishes), Queue.url: the code under test may read them
    settings = {f.name for f in dataclasses.fields(real)} - RESOURCE_FIELDS if dataclasses.is_dataclass(real) else set()
    instance = fake()
    assert {name for name in settings if not hasattr(instance, name)} == set()


def test_faulty_crm_is_a_crm_port() -> None:
    crm: CrmPort = FaultyCrm()  # checked by mypy too
    assert crm.name == "local"


def test_the_version_guard_the_fake_implements_is_the_stores() -> None:
    # MemoryState evaluates this exact condition (tests/fakes/state.py: version_guard_allows); a changed guard
    # needs the fake changed with it, and the contract's guard table extended.
    assert real_state.VERSION_GUARD == (
        "attribute_not_exists(pk) OR version < :v OR (version = :v AND (#rank < :r OR (#rank = :r AND receipt_id = "
        ":rid)))"
    )
