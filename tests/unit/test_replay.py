"""Replay from the archive (crmsync.replay) on fakes: which receipts a window or a list selects, paging by token,
and how requests are checked."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from crmsync.deadline import Deadline
from crmsync.ingest import archive_key, archive_metadata
from crmsync.replay import (
    BadReplay,
    ReplayDeps,
    ReplayRequest,
    Token,
    Window,
    replay,
    replay_receipts,
    replay_window,
)
from crmsync.store.archive import ArchivedObject
from crmsync.store.queue import OutgoingMessage
from crmsync.store.receipts import Receipt


class Archive:
    """S3 in key order: folders, pages of keys, head."""

    def __init__(self, page_size: int = 1000) -> None:
        self.objects: dict[str, ArchivedObject] = {}
        self.page_size = page_size
        self.heads = 0

    def add(self, source: str, receipt_id: str, at: datetime, *, metadata: dict[str, str] | None = None) -> str:
        key = archive_key(source, receipt_id, at)
        meta = archive_metadata("orders/create", receipt_id, at, "shop") if metadata is None else metadata
        self.objects[key] = ArchivedObject(key, meta, at + timedelta(milliseconds=5))
        return key

    def folders(self, prefix: str) -> list[str]:
        return sorted({prefix + k[len(prefix) :].split("/", 1)[0] + "/" for k in self.objects if k.startswith(prefix)})

    def keys(self, prefix: str, *, start_after: str = "", page_size: int = 1000) -> Iterator[list[str]]:
        found = sorted(k for k in self.objects if k.startswith(prefix) and k > start_after)
        size = min(page_size, self.page_size)
        for start in range(0, len(found), size):
            yield found[start : start + size]

    def head_many(self, keys: Sequence[str], *, workers: int = 8) -> list[ArchivedObject | None]:
        self.heads += len(keys)
        return [self.objects.get(k) for k in keys]


class Receipts:
    def __init__(self) -> None:
        self.items: dict[str, Receipt] = {}

    def get(self, receipt_id: str) -> Receipt | None:
        return self.items.get(receipt_id)


class IngestQueue:
    def __init__(self) -> None:
        self.bodies: list[dict] = []

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> tuple[list[str], dict[str, str]]:
        assert len(messages) <= 500
        self.bodies.extend(json.loads(m.body) for m in messages)
        return [m.id for m in messages], {}


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@pytest.fixture
def world():
    archive, receipts, queue = Archive(page_size=3), Receipts(), IngestQueue()
    deps = ReplayDeps(archive=archive, receipts=receipts, queue=queue, new_job_id=lambda: "rpl_1")
    return archive, receipts, queue, deps


def day_20(archive: Archive) -> list[str]:
    """Receipts over three days and three sources; those received on 2026-11-20 (UTC), in key order."""
    inside = []
    for n, source in enumerate(["stripe", "shopify", "paypal", "woocommerce", "shopify", "stripe", "shopify"]):
        archive.add(source, f"{source}:in-{n}", at("2026-11-20T00:00:00+00:00") + timedelta(hours=3 * n + 1))
        inside.append(f"{source}:in-{n}")
    archive.add("shopify", "shopify:before", at("2026-11-19T23:59:59.999+00:00"))
    archive.add("stripe", "stripe:after", at("2026-11-21T00:00:00+00:00"))
    archive.add("paypal", "paypal:long-before", at("2026-10-01T12:00:00+00:00"))
    return sorted(inside, key=lambda r: archive_key(r.split(":")[0], r, at("2026-11-20T00:00:00+00:00")))


WINDOW = Window(at("2026-11-20T00:00:00+00:00"), at("2026-11-21T00:00:00+00:00"))


# --- windows ----------------------------------------------------------------------------------------------------------
def test_a_window_enqueues_exactly_its_receipts_as_ingest_queued_them(world):
    archive, _, queue, deps = world
    inside = day_20(archive)
    # When the day is replayed
    result = replay_window(WINDOW, deps, limit=100)
    # Then exactly that day's receipts are enqueued, in key order, and there is no next page
    assert (result.enqueued, result.next_token, result.skipped) == (inside, None, 0)
    first = queue.bodies[0]
    source = first["source"]
    assert first == {
        "receipt_id": first["receipt_id"],
        "source": source,
        "topic": "orders/create",
        "archive_key": archive_key(source, first["receipt_id"], at(first["received_at"])),
        "received_at": first["received_at"],
        "correlation_id": "replay:rpl_1",
        "account": "shop",
    }
    # And only the window's day was looked at (its neighbours' keys are on other days)
    assert archive.heads == len(inside)


def test_part_of_a_day_is_chosen_by_each_receipt_time(world):
    archive, _, _, deps = world
    day_20(archive)
    # receipts at 01:00, 04:00, 07:00, 10:00, 13:00, ... on 2026-11-20
    window = Window(at("2026-11-20T04:00:00+00:00"), at("2026-11-20T13:00:00+00:00"))
    result = replay_window(window, deps, limit=100)
    assert sorted(result.enqueued) == ["paypal:in-2", "shopify:in-1", "woocommerce:in-3"]


def test_a_window_pages_by_token_without_loss_or_repeat(world):
    archive, _, queue, deps = world
    inside = day_20(archive)
    pages, token = [], None
    while True:
        result = replay_window(WINDOW, deps, limit=2, token=token)
        pages.append(result.enqueued)
        if result.next_token is None:
            break
        token = Token.decode(result.next_token)
        assert (token.job_id, token.window) == ("rpl_1", WINDOW)
    assert [r for page in pages for r in page] == inside
    assert all(len(page) == 2 for page in pages[:-1])
    assert [b["receipt_id"] for b in queue.bodies] == inside


def test_a_call_that_runs_out_of_time_answers_a_token_after_some_progress(world):
    archive, _, _, deps = world
    inside = day_20(archive)
    expired = Deadline(0.0)
    # When every call has no time left, Then each still moves on (one chunk) and answers where to go on
    collected, token, calls = [], None, 0
    while True:
        result = replay_window(WINDOW, deps, limit=100, token=token, deadline=expired)
        collected += result.enqueued
        calls += 1
        if result.next_token is None:
            break
        token = Token.decode(result.next_token)
    assert collected == inside
    assert calls > 1


def test_objects_without_a_receipt_id_are_skipped_and_old_ones_use_their_own_time(world):
    archive, _, queue, deps = world
    archive.add("shopify", "broken", at("2026-11-20T10:00:00+00:00"), metadata={})
    archive.add(
        "shopify", "old", at("2026-11-20T11:00:00+00:00"), metadata={"topic": "orders/paid", "receipt-id": "old"}
    )
    result = replay_window(WINDOW, deps, limit=100)
    assert (result.enqueued, result.skipped) == (["old"], 1)
    assert queue.bodies[0]["received_at"] == "2026-11-20T11:00:00.005000Z"  # the object's time
    assert queue.bodies[0]["account"] is None


def test_an_empty_archive_replays_nothing(world):
    _, _, queue, deps = world
    assert replay_window(WINDOW, deps, limit=10).enqueued == []
    assert queue.bodies == []


# --- receipt ids ------------------------------------------------------------------------------------------------------
def test_receipt_ids_are_found_through_their_receipts(world):
    archive, receipts, queue, deps = world
    key = archive.add("stripe", "stripe:self:evt_1", at("2026-11-20T10:00:00+00:00"))
    receipts.items["stripe:self:evt_1"] = Receipt("stripe:self:evt_1", "ACCEPTED", "orders/create", key, 1)
    receipts.items["claimed"] = Receipt("claimed", "IN_PROGRESS", None, None, None)
    gone_key = "raw/shopify/2026/11/20/" + hashlib.sha256(b"gone").hexdigest()[:40]
    receipts.items["gone"] = Receipt("gone", "ACCEPTED", "orders/create", gone_key, 1)
    result = replay_receipts(["stripe:self:evt_1", "claimed", "unknown", "gone", "stripe:self:evt_1"], deps)
    assert result.enqueued == ["stripe:self:evt_1"]
    assert result.not_found == ["claimed", "unknown", "gone"]
    assert [b["source"] for b in queue.bodies] == ["stripe"]


# --- requests and tokens ----------------------------------------------------------------------------------------------
def test_a_token_round_trips_and_a_forged_one_is_refused():
    token = Token("rpl_1", "raw/shopify/2026/11/20/abc", WINDOW)
    assert Token.decode(token.encode()) == token
    nested = base64.urlsafe_b64encode(b"[" * 100_000 + b"]" * 100_000).decode()  # deeper than json's stack
    for forged in ("", "not-a-token", token.encode()[:-3], "eyJ2IjoyfQ", nested):
        with pytest.raises(BadReplay):
            Token.decode(forged)


def test_a_request_with_a_token_of_another_window_is_refused(world):
    *_, deps = world
    token = Token("rpl_1", "", WINDOW).encode()
    request = ReplayRequest.model_validate({"from": "2026-11-20", "to": "2026-11-22", "continuation_token": token})
    with pytest.raises(BadReplay, match="another window"):
        replay(request, deps)
    alone = ReplayRequest.model_validate({"continuation_token": token})
    assert replay(alone, deps).next_token is None


@pytest.mark.parametrize(
    "body",
    [
        {"from": "2026-11-20", "to": "2026-11-21"},
        {"since": "2026-11-20T00:00:00", "until": "2026-11-21T00:00:00+00:00"},
        {"from": "2026-11-20T01:00:00+01:00", "to": "2026-11-21T01:00:00+01:00", "limit": 500},
    ],
)
def test_windows_are_read_as_utc(world, body):
    # Given the receipts of 2026-11-20, When that day is asked for in any of these spellings, Then it is replayed
    archive, *_, deps = world
    inside = day_20(archive)
    assert replay(ReplayRequest.model_validate(body), deps).enqueued == inside


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"from": "2026-11-21", "to": "2026-11-20"}, "from must be before to"),
        ({"from": "2026-11-20", "to": "2026-11-20"}, "from must be before to"),
        ({"from": "2026-11-20"}, "a window needs both from and to"),
        ({"from": "2026-11-20", "to": "2026-11-21", "receipt_ids": ["r"]}, "not both"),
        ({"receipt_ids": []}, "receipt_ids is empty"),
        ({"receipt_ids": ["r"], "continuation_token": "t"}, "goes with a window"),
        ({}, "give from and to"),
        ({"receipt_ids": [f"r{n}" for n in range(101)]}, "at most 100"),
        ({"from": "2026-11-20", "to": "2026-11-21", "limit": 0}, "greater than or equal to 1"),
        ({"from": "nope", "to": "2026-11-21"}, "valid datetime"),
        ({"from": "2026-11-20", "to": "2026-11-21", "colour": "red"}, "Extra inputs"),
    ],
)
def test_bad_requests_say_why(body, reason):
    with pytest.raises(ValidationError, match=reason):
        ReplayRequest.model_validate(body)
