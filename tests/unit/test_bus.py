"""EventBus splits what it publishes into PutEvents calls EventBridge accepts: ten entries and 256 KB a call."""

from __future__ import annotations

import json
from typing import Any, cast

import pytest

from crmsync.store.bus import MAX_CALL_BYTES, MAX_ENTRIES, EventBus, entry_size


class RecordingEvents:
    """An EventBridge client that accepts every entry and keeps each call's entries."""

    def __init__(self) -> None:
        self.calls: list[list[dict[str, Any]]] = []

    def put_events(self, Entries: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append(Entries)
        return {"FailedEntryCount": 0, "Entries": [{"EventId": str(i)} for i in range(len(Entries))]}


def detail(size: int) -> str:
    return json.dumps({"pad": "x" * size})


@pytest.fixture
def client() -> RecordingEvents:
    return RecordingEvents()


def publish(client: RecordingEvents, events: list[tuple[str, str]]) -> list[list[dict[str, Any]]]:
    EventBus("crmsync-bus", client=cast(Any, client)).publish(events)
    return client.calls


def call_bytes(entries: list[dict[str, Any]]) -> int:
    return sum(entry_size(e["Source"], e["DetailType"], e["Detail"]) for e in entries)


def test_large_entities_are_sent_in_calls_under_256_kb(client):
    # Given five events of ~150 KB each (convert sends entities up to 200 KB with their data)
    events = [("order.placed", detail(150_000)) for _ in range(5)]
    # When published
    calls = publish(client, events)
    # Then every call fits EventBridge's limit, and every entry went out once, in order
    assert all(call_bytes(entries) <= MAX_CALL_BYTES for entries in calls)
    assert [e["Detail"] for entries in calls for e in entries] == [d for _, d in events]
    assert len(calls) == 5


def test_small_entities_still_go_ten_a_call(client):
    events = [("customer.upserted", detail(100)) for _ in range(25)]
    assert [len(entries) for entries in publish(client, events)] == [MAX_ENTRIES, MAX_ENTRIES, 5]


def test_sizes_mix_without_a_call_over_either_limit(client):
    # Given a 200 KB entity between small ones
    events = [("a", detail(10))] * 3 + [("b", detail(200_000))] + [("c", detail(70_000))] * 2
    calls = publish(client, events)
    assert [len(entries) for entries in calls] == [4, 2]
    assert max(call_bytes(entries) for entries in calls) <= MAX_CALL_BYTES
