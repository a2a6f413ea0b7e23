"""DLQ listing and redrive (crmsync.dlq) on an in-memory queue: nothing consumed by a listing, exactly the chosen
messages moved by a redrive, and what is refused stays."""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import pytest

from crmsync.dlq import DeadLetterQueue, list_messages, redrive, summarize
from crmsync.failures import NO_ERROR
from crmsync.store.errors import StoreError
from crmsync.store.queue import Attribute, OutgoingMessage, QueueDepth, QueueMessage


@dataclass
class Stored:
    message_id: str
    body: str
    attributes: dict[str, Attribute]
    visible: bool = True
    handle: str = ""


@dataclass
class MemoryQueue:
    """Enough of SQS: receive hides messages until released or deleted by their latest receipt handle."""

    messages: dict[str, Stored] = field(default_factory=dict)
    refuse: set[str] = field(default_factory=set)  # bodies this queue refuses to take
    fail_release: bool = False
    handles: itertools.count = field(default_factory=itertools.count)
    receives: int = 0

    def put(self, body: str, **attributes: str) -> str:
        message_id = f"m{len(self.messages) + 1}"
        self.messages[message_id] = Stored(message_id, body, {k: Attribute(v) for k, v in attributes.items()})
        return message_id

    def receive(self, *, max_messages: int = 10, visibility_timeout: int, wait_seconds: int = 0) -> list[QueueMessage]:
        self.receives += 1
        batch = [m for m in self.messages.values() if m.visible][: min(max_messages, 10)]
        for m in batch:
            m.visible, m.handle = False, f"h{next(self.handles)}"
        return [
            QueueMessage(m.message_id, m.handle, m.body, {"SentTimestamp": "1763651743000"}, dict(m.attributes))
            for m in batch
        ]

    def _by_handle(self, handle: str) -> Stored | None:
        return next((m for m in self.messages.values() if m.handle == handle), None)

    def change_visibility_batch(self, receipt_handles: Sequence[str], seconds: int) -> list[str]:
        if self.fail_release:
            raise StoreError("ChangeMessageVisibilityBatch: throttled")
        for handle in receipt_handles:
            found = self._by_handle(handle)
            if found is not None and seconds == 0:
                found.visible = True
        return []

    def delete_batch(self, receipt_handles: Sequence[str]) -> list[str]:
        for handle in receipt_handles:
            found = self._by_handle(handle)
            if found is not None:
                del self.messages[found.message_id]
        return []

    def depth(self) -> QueueDepth:
        visible = sum(m.visible for m in self.messages.values())
        return QueueDepth(visible, len(self.messages) - visible, 0)

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> tuple[list[str], dict[str, str]]:
        sent, refused = [], {}
        for m in messages:
            if m.body in self.refuse:
                refused[m.id] = "InternalError"
            else:
                self.messages[f"t{len(self.messages) + 1}"] = Stored("t", m.body, dict(m.attributes))
                sent.append(m.id)
        return sent, refused


def dlq_with(count: int) -> tuple[DeadLetterQueue, MemoryQueue, MemoryQueue, list[str]]:
    source, target = MemoryQueue(), MemoryQueue()
    ids = [
        source.put(json.dumps({"receipt_id": f"r{n}"}), **{"crmsync-error-type": "E", "trace": f"t{n}"})
        for n in range(count)
    ]
    return DeadLetterQueue("ingest-dlq", source, "ingest-queue", target), source, target, ids


def test_a_listing_shows_up_to_its_limit_and_leaves_every_message_visible():
    dlq, source, _, ids = dlq_with(25)
    listing = list_messages(dlq, limit=12)
    assert [m.message_id for m in listing.messages] == sorted(ids[:12])
    assert listing.as_json()["truncated"] is True
    assert listing.as_json()["depth"] == 25
    assert all(m.visible for m in source.messages.values())


def test_a_listing_whose_release_fails_still_answers():
    # (the messages come back on their own when their short hold ends)
    dlq, source, _, _ = dlq_with(2)
    source.fail_release = True
    assert len(list_messages(dlq).messages) == 2


def test_an_empty_dlq_is_listed_without_receiving():
    dlq, source, _, _ = dlq_with(0)
    assert list_messages(dlq).as_json()["messages"] == []
    assert source.receives == 0


def test_a_redrive_of_some_moves_exactly_those_and_releases_the_rest():
    dlq, source, target, ids = dlq_with(15)
    result = redrive(dlq, message_ids=[ids[1], ids[12], "gone"])
    assert (sorted(result.redriven), result.not_found, result.remaining) == (sorted([ids[1], ids[12]]), ["gone"], 13)
    assert sorted(json.loads(m.body)["receipt_id"] for m in target.messages.values()) == ["r1", "r12"]
    assert all(set(m.attributes) == {"trace"} for m in target.messages.values())  # the error stays behind
    assert all(m.visible for m in source.messages.values())


def test_what_the_source_queue_refuses_stays_in_the_dlq():
    dlq, source, target, ids = dlq_with(3)
    target.refuse.add(json.dumps({"receipt_id": "r1"}))
    result = redrive(dlq)
    assert (len(result.redriven), result.failed, result.remaining, result.more) == (2, [ids[1]], 1, False)
    assert list(source.messages) == [ids[1]]


def test_a_redrive_of_all_stops_at_its_limit_and_says_there_is_more():
    dlq, _, target, _ = dlq_with(25)
    result = redrive(dlq, max_messages=12)
    assert (len(result.redriven), result.more, result.remaining) == (12, True, 13)
    assert len(target.messages) == 12


@pytest.mark.parametrize(
    ("body", "summary"),
    [
        ("not json", {"format": "text"}),
        ("[1]", {"format": "list"}),
        ("[" * 100_000 + "]" * 100_000, {"format": "text"}),  # deeper than json's stack: still listed
        (
            json.dumps({"receipt_id": "r", "source": "shopify", "topic": "orders/create", "secret": "x"}),
            {"receipt_id": "r", "source": "shopify", "topic": "orders/create"},
        ),
        (
            json.dumps({"id": "e1", "detail-type": "order.placed", "detail": {"key": "k", "data": {"email": "a@b"}}}),
            {"detail_type": "order.placed", "event_id": "e1", "time": None, "key": "k"},
        ),
    ],
)
def test_a_summary_never_shows_the_data(body, summary):
    assert summarize(body) == summary


def test_a_message_moved_by_the_redrive_policy_says_no_error_was_recorded():
    source, target = MemoryQueue(), MemoryQueue()
    source.put("{}")
    [message] = list_messages(DeadLetterQueue("crm-dlq", source, "crm-queue", target)).messages
    assert message.error.message == NO_ERROR
    assert message.sent_at == "2025-11-20T15:15:43+00:00"
