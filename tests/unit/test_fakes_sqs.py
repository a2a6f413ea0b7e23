"""SqsSimulator: redelivery counts, the DLQ after maxReceiveCount, deletes, partial batch failures, Lambda's view."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from crmsync.failures import SqsRecord
from crmsync.store.errors import StoreError
from crmsync.store.queue import Attribute, OutgoingMessage, QueueMessage
from tests.fakes import FakeClock, Faults, InjectedStoreError, SqsSimulator, receive_count
from tests.fakes.template import queue_settings


def test_template_queues_take_their_settings_from_template_yaml() -> None:
    ingest = SqsSimulator.from_template("IngestQueue")
    settings = queue_settings("IngestQueue")
    assert (ingest.max_receive_count, ingest.visibility_timeout) == (
        settings.max_receive_count,
        settings.visibility_timeout,
    )
    assert ingest.dlq is not None
    assert ingest.dlq.source is ingest
    assert ingest.dlq.max_receive_count is None


def test_a_failed_message_returns_after_its_visibility_timeout_with_a_higher_receive_count() -> None:
    # Given a message received once and not deleted
    clock = FakeClock()
    queue = SqsSimulator(clock=clock, visibility_timeout=120)
    queue.send("m")
    [first] = queue.receive()
    assert receive_count(first) == 1
    # Then it stays hidden until the visibility timeout ends
    clock.advance(119)
    assert queue.receive() == []
    assert (queue.depth().visible, queue.depth().in_flight) == (0, 1)
    # And comes back then, with a new handle and receive count 2
    clock.advance(1)
    [second] = queue.receive()
    assert (second.message_id, receive_count(second)) == (first.message_id, 2)
    assert second.receipt_handle != first.receipt_handle
    assert second.attributes["ApproximateFirstReceiveTimestamp"] == first.attributes["ApproximateFirstReceiveTimestamp"]


def test_after_max_receive_count_the_message_moves_to_the_dlq_with_its_id_body_and_attributes() -> None:
    queue = SqsSimulator(max_receive_count=5)
    message_id = queue.send("poison", {"source": Attribute("shopify")})
    counts = []
    for _ in range(5):
        [message] = queue.receive(visibility_timeout=0)
        counts.append(receive_count(message))
    # The sixth receive moves it instead of delivering it
    assert queue.receive(visibility_timeout=0) == []
    assert counts == [1, 2, 3, 4, 5]
    assert len(queue) == 0
    assert queue.dlq is not None
    [dead] = queue.dlq.messages()
    assert (dead.message_id, dead.body, dead.receive_count) == (message_id, "poison", 5)
    assert dead.message_attributes == {"source": Attribute("shopify")}
    assert dead.dead_letter_source == queue.arn
    [received] = queue.dlq.receive()
    assert received.attributes["DeadLetterQueueSourceArn"] == queue.arn
    assert receive_count(received) == 6  # SQS (and moto) keep counting in the DLQ
    assert queue.stats["moved_to_dlq"] == 1


def test_drain_deletes_successes_and_retries_reported_failures_until_the_dlq() -> None:
    # Given ten messages, one of which always fails and one that fails twice
    queue = SqsSimulator(seed=3, max_receive_count=5)
    ids = {queue.send(f"m{i}"): f"m{i}" for i in range(10)}
    attempts: Counter[str] = Counter()

    def handler(batch: list[QueueMessage]) -> list[str]:
        failed = []
        for message in batch:
            attempts[message.body] += 1
            if message.body == "m0" or (message.body == "m1" and attempts["m1"] <= 2):
                failed.append(message.message_id)
        return failed

    # When the queue is drained
    report = queue.drain(handler, batch_size=4)
    # Then every good message was handled once, m1 three times, m0 five times and then dead-lettered
    assert attempts == Counter({**{f"m{i}": 1 for i in range(2, 10)}, "m1": 3, "m0": 5})
    assert (report.deleted, report.failed, report.moved_to_dlq) == (9, 7, 1)
    assert report.deliveries == sum(attempts.values())
    assert report.seconds_waited >= 4 * queue.visibility_timeout  # m0 waited out four timeouts
    assert len(queue) == 0
    assert queue.dlq is not None
    assert [m.body for m in queue.dlq.messages()] == ["m0"]
    assert [ids[m.message_id] for m in queue.dlq.messages()] == ["m0"]


def test_a_handler_error_or_an_unknown_item_identifier_fails_the_whole_batch() -> None:
    queue = SqsSimulator(seed=1)
    for i in range(3):
        queue.send(f"m{i}")
    calls = {"n": 0}

    def handler(batch: list[QueueMessage]) -> list[str]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("function crashed")
        if calls["n"] == 2:
            return ["not-in-this-batch"]
        return []

    report = queue.drain(handler)
    assert report.batch_errors == ["RuntimeError: function crashed"]
    assert report.invalid_responses == 1
    assert (report.batches, report.failed, report.deleted) == (3, 6, 3)


def test_receive_order_is_random_but_fixed_by_the_seed() -> None:
    def order(seed: int) -> list[str]:
        queue = SqsSimulator(seed=seed)
        for i in range(30):
            queue.send(f"m{i:02d}")
        return [m.body for m in queue.next_batch(30)]

    assert order(7) == order(7)
    assert order(7) != order(8)
    assert order(7) != sorted(order(7))
    assert sorted(order(7)) == [f"m{i:02d}" for i in range(30)]


def test_receive_takes_at_most_ten_and_next_batch_gathers_a_lambda_batch() -> None:
    queue = SqsSimulator()
    for i in range(25):
        queue.send(f"m{i}")
    assert len(queue.receive(max_messages=50)) == 10
    assert len(queue.next_batch(50)) == 15


def test_delete_needs_the_latest_handle_and_refuses_unknown_ones() -> None:
    queue = SqsSimulator()
    queue.send("m")
    [first] = queue.receive(visibility_timeout=0)
    [second] = queue.receive(visibility_timeout=0)
    # A stale handle is accepted but deletes nothing; an unknown one is refused
    assert queue.delete_batch([first.receipt_handle, "forged"]) == ["forged"]
    assert len(queue) == 1
    assert queue.delete_batch([second.receipt_handle]) == []
    assert len(queue) == 0
    assert queue.delete(second.receipt_handle) is False


def test_change_visibility_backs_a_message_off_or_releases_it() -> None:
    clock = FakeClock()
    queue = SqsSimulator(clock=clock)
    queue.send("m")
    [message] = queue.receive()
    queue.change_visibility(message.receipt_handle, 30)
    clock.advance(29)
    assert queue.receive() == []
    clock.advance(1)
    [again] = queue.receive()
    queue.change_visibility(again.receipt_handle, 0)
    assert len(queue.receive()) == 1
    # Not in flight, stale, or beyond 12 hours: refused as SQS does
    with pytest.raises(StoreError, match="ReceiptHandleIsInvalid"):
        queue.change_visibility(message.receipt_handle, 10)
    with pytest.raises(StoreError, match="InvalidParameterValue"):
        queue.change_visibility("x", 43_201)
    assert queue.change_visibility_batch(["x"], 0) == ["x"]


def test_depth_counts_visible_in_flight_and_delayed() -> None:
    clock = FakeClock()
    queue = SqsSimulator(clock=clock)
    queue.send("a")
    queue.send("b")
    queue.send_delayed("c", 60)
    queue.receive(max_messages=1)
    depth = queue.depth()
    assert (depth.visible, depth.in_flight, depth.delayed) == (1, 1, 1)
    clock.advance(60)
    assert queue.depth().delayed == 0


def test_send_batch_refuses_bad_entries_alone_and_repeated_ids_as_a_whole() -> None:
    queue = SqsSimulator()
    sent, refused = queue.send_batch([OutgoingMessage("a", "one"), OutgoingMessage("b", ""), OutgoingMessage("c", "x")])
    assert (sent, refused) == (["a", "c"], {"b": "InvalidParameterValue"})
    with pytest.raises(StoreError, match="BatchEntryIdsNotDistinct"):
        queue.send_batch([OutgoingMessage("a", "one"), OutgoingMessage("a", "two")])
    with pytest.raises(StoreError):
        queue.send("x" * (256 * 1024 + 1))
    with pytest.raises(StoreError):
        queue.send("x", {f"a{i}": Attribute("v") for i in range(11)})
    assert len(queue) == 2


def test_the_lambda_event_parses_as_the_consumers_record() -> None:
    # Given a message with string and binary attributes, received twice
    queue = SqsSimulator("crmsync-crm")
    queue.send('{"detail": {}}', {"kind": Attribute("order"), "blob": Attribute(b"\x00\x01", "Binary")})
    queue.receive(visibility_timeout=0)
    batch = queue.receive()
    # When Lambda's event is built, Then crmsync.failures reads it back as the consumer would
    [raw] = queue.event(batch)["Records"]
    record = SqsRecord.from_lambda(raw)
    assert (record.message_id, record.body, record.attempts, record.source_queue) == (
        batch[0].message_id,
        '{"detail": {}}',
        2,
        "crmsync-crm",
    )
    assert record.receipt_handle == batch[0].receipt_handle
    assert record.message_attributes == {"kind": Attribute("order"), "blob": Attribute(b"\x00\x01", "Binary")}
    assert raw["eventSource"] == "aws:sqs"


def test_a_lambda_handler_drives_the_queue_through_its_partial_batch_response() -> None:
    queue = SqsSimulator(max_receive_count=3)
    keep = queue.send("bad")
    queue.send("good")

    def lambda_handler(event: dict, context: object) -> dict:
        return {
            "batchItemFailures": [{"itemIdentifier": r["messageId"]} for r in event["Records"] if r["body"] == "bad"]
        }

    report = queue.drain(queue.lambda_adapter(lambda_handler))
    assert (report.deleted, report.moved_to_dlq) == (1, 1)
    assert queue.dlq is not None
    assert [m.message_id for m in queue.dlq.messages()] == [keep]


def test_a_dlq_redrives_to_its_source_with_new_ids() -> None:
    queue = SqsSimulator(max_receive_count=1)
    old = queue.send("m", {"a": Attribute("1")})
    queue.receive(visibility_timeout=0)
    queue.receive()
    assert queue.dlq is not None
    [new] = queue.dlq.redrive()
    assert new != old
    assert len(queue.dlq) == 0
    [message] = queue.receive()
    assert (message.body, message.message_attributes, receive_count(message)) == ("m", {"a": Attribute("1")}, 1)


def test_a_slow_consumer_can_see_its_message_delivered_twice() -> None:
    queue = SqsSimulator()
    queue.send("m")
    [first] = queue.receive()
    assert queue.expire_in_flight() == 1
    [second] = queue.receive()
    assert first.message_id == second.message_id
    assert queue.delete_batch([first.receipt_handle]) == []  # the stale handle deletes nothing
    assert len(queue) == 1


def test_injected_send_faults_come_before_or_after_the_message_is_stored() -> None:
    faults = Faults(0)
    queue = SqsSimulator(faults=faults)
    faults.force("queue.send")
    with pytest.raises(InjectedStoreError):
        queue.send("lost")
    assert len(queue) == 0
    faults.force("queue.send", when="after")
    with pytest.raises(InjectedStoreError):
        queue.send("stored anyway")
    assert [m.body for m in queue.messages()] == ["stored anyway"]
    assert faults.injected == Counter({"before:queue.send": 1, "after:queue.send": 1})


def test_concurrent_consumers_never_hold_the_same_message_at_once() -> None:
    queue = SqsSimulator(seed=11)
    for i in range(500):
        queue.send(f"m{i}")
    seen: list[str] = []
    lock = threading.Lock()

    def consume() -> None:
        while batch := queue.receive():
            with lock:
                seen.extend(m.message_id for m in batch)
            queue.delete_batch([m.receipt_handle for m in batch])

    threads = [threading.Thread(target=consume) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == len(set(seen)) == 500
    assert len(queue) == 0
