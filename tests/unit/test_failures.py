"""Poison records and backoff (crmsync.failures) on fakes: what a consumer does with a record that failed."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import UTC, datetime

import pytest
from pydantic import BaseModel, ValidationError

from crmsync.failures import (
    ATTEMPTS,
    ERROR_MESSAGE,
    ERROR_TYPE,
    FAILED_AT,
    MAX_ATTRIBUTES,
    MAX_ERROR_CHARS,
    NO_ERROR,
    SOURCE_QUEUE,
    DeadLetterer,
    RecordedError,
    RetryPolicy,
    SqsRecord,
    describe,
    failure_attributes,
    recorded_error,
    without_failure_attributes,
)
from crmsync.store.errors import StoreError
from crmsync.store.queue import Attribute

NOW = datetime(2026, 11, 20, 15, 16, 17, tzinfo=UTC)


class Sink:
    """A DLQ: records what was sent, or fails."""

    def __init__(self, *, fail: bool = False) -> None:
        self.sent: list[tuple[str, dict[str, Attribute]]] = []
        self.fail = fail

    def send(self, body: str, attributes: Mapping[str, Attribute] | None = None) -> str:
        if self.fail:
            raise StoreError("SendMessage: AWS.SimpleQueueService.NonExistentQueue")
        self.sent.append((body, dict(attributes or {})))
        return f"m-{len(self.sent)}"


class Source:
    """The consumer's own queue: records visibility changes, or fails."""

    def __init__(self, *, fail: bool = False) -> None:
        self.changes: list[tuple[str, int]] = []
        self.fail = fail

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        if self.fail:
            raise StoreError("ChangeMessageVisibility: ReceiptHandleIsInvalid")
        self.changes.append((receipt_handle, seconds))


class Order(BaseModel):
    id: int
    email: str


def validation_error() -> ValidationError:
    try:
        Order.model_validate({"id": "ada@example.com"})
    except ValidationError as exc:
        return exc
    raise AssertionError("no error")


def record(attempts: int, **attributes: Attribute) -> SqsRecord:
    return SqsRecord(
        message_id="m1", body='{"receipt_id": "r1"}', attempts=attempts, receipt_handle="h1",
        source_queue="IngestQueue", message_attributes=dict(attributes),
    )  # fmt: skip


def handler(sink: Sink | None, source: Source | None, **policy: int) -> DeadLetterer:
    return DeadLetterer(
        dlq=sink, source=source, policy=RetryPolicy(**{"max_receive_count": 5, **policy}),
        clock=lambda: NOW, jitter=lambda: 0.5,
    )  # fmt: skip


# --- what the error says ----------------------------------------------------------------------------------------------
def test_a_validation_error_is_told_by_field_and_reason_without_the_input():
    # Given a validation error whose input is personal data, When described
    kind, message = describe(validation_error())
    # Then it names the fields and reasons, never the input
    assert kind == "ValidationError"
    assert message == (
        "2 validation error(s) for Order: id: Input should be a valid integer, unable to parse string as an integer; "
        "email: Field required"
    )
    assert "ada@example.com" not in message


def test_any_other_error_is_its_message_on_one_line_truncated():
    assert describe(KeyError("detail")) == ("KeyError", "'detail'")
    assert describe(RuntimeError()) == ("RuntimeError", "RuntimeError")
    _, message = describe(ValueError("line one\n  line two " + "x" * 5000))
    assert message.startswith("line one line two x")
    assert len(message) == MAX_ERROR_CHARS
    assert message.endswith("…")


def test_the_error_attributes_of_a_dead_lettered_record():
    # Given a record on its fifth attempt that carries attributes of its own
    own = {f"a{n}": Attribute(str(n)) for n in range(8)}
    stale = {ERROR_TYPE: Attribute("OldError")}  # from an earlier trip through a DLQ
    attributes = failure_attributes(record(5, **own, **stale), RuntimeError("CRM refused"), NOW)
    # Then the error's five come first, the record's own fill up to SQS's ten, and no stale error is kept
    assert {k: v.value for k, v in attributes.items() if k.startswith("crmsync-")} == {
        ERROR_TYPE: "RuntimeError",
        ERROR_MESSAGE: "CRM refused",
        FAILED_AT: "2026-11-20T15:16:17+00:00",
        ATTEMPTS: "5",
        SOURCE_QUEUE: "IngestQueue",
    }
    assert attributes[ATTEMPTS].data_type == "Number"
    assert len(attributes) == MAX_ATTRIBUTES
    assert [k for k in attributes if not k.startswith("crmsync-")] == ["a0", "a1", "a2", "a3", "a4"]


def test_an_error_reads_back_as_the_operator_sees_it():
    attributes = failure_attributes(record(5), RuntimeError("CRM refused"), NOW)
    assert recorded_error(attributes, {}) == RecordedError(
        "RuntimeError", "CRM refused", "2026-11-20T15:16:17+00:00", 5, "IngestQueue"
    )
    # EventBridge's own attributes on the events DLQ
    eventbridge = {
        "ERROR_CODE": Attribute("SQSError"),
        "ERROR_MESSAGE": Attribute("Access denied"),
        "RULE_ARN": Attribute("arn:aws:events:us-east-1:1:rule/bus/crm-rule"),
        "RETRY_ATTEMPTS": Attribute("185"),
    }
    assert recorded_error(eventbridge, {}) == RecordedError("SQSError", "Access denied", None, 186, "rule crm-rule")
    # Moved by the redrive policy: no error, but where it came from
    moved = recorded_error({}, {"DeadLetterQueueSourceArn": "arn:aws:sqs:us-east-1:1:stack-CrmQueue-1"})
    assert moved == RecordedError(None, NO_ERROR, None, None, "stack-CrmQueue-1")


def test_a_redrive_sends_the_messages_own_attributes_without_the_error():
    attributes = {
        **failure_attributes(record(5), RuntimeError("x"), NOW),
        "trace": Attribute("t"),
        "ERROR_CODE": Attribute("SQSError"),
        "RULE_ARN": Attribute("arn"),
    }
    assert without_failure_attributes(attributes) == {"trace": Attribute("t")}


def test_a_record_as_lambda_hands_it_over():
    raw = {
        "messageId": "m1",
        "receiptHandle": "h1",
        "body": "{}",
        "attributes": {"ApproximateReceiveCount": "3"},
        "messageAttributes": {
            "trace": {"stringValue": "t-1", "dataType": "String"},
            "blob": {"binaryValue": base64.b64encode(b"\x00\x01").decode(), "dataType": "Binary"},
        },
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:stack-IngestQueue-AB12",
    }
    parsed = SqsRecord.from_lambda(raw)
    assert (parsed.message_id, parsed.attempts, parsed.receipt_handle, parsed.source_queue) == (
        "m1", 3, "h1", "stack-IngestQueue-AB12",
    )  # fmt: skip
    assert parsed.message_attributes == {"trace": Attribute("t-1"), "blob": Attribute(b"\x00\x01", "Binary")}
    assert SqsRecord.from_lambda({"messageId": "m2", "body": "x"}).attempts == 1


# --- backoff ----------------------------------------------------------------------------------------------------------
def test_backoff_doubles_each_attempt_up_to_its_cap_half_of_it_random():
    policy = RetryPolicy(max_receive_count=8, backoff_seconds=15, backoff_max_seconds=900)
    ceilings = [15, 30, 60, 120, 240, 480, 900]
    assert [policy.delay(n, 1.0) for n in range(1, 8)] == ceilings
    assert [policy.delay(n, 0.0) for n in range(1, 8)] == [round(c / 2) for c in ceilings]
    assert policy.delay(1000, 0.5) == 675
    assert RetryPolicy(backoff_seconds=0).delay(3, 0.5) == 0


# --- what a consumer does with a failed record -----------------------------------------------------------------------
def test_the_last_attempt_is_dead_lettered_with_its_error_and_reported_handled():
    sink, source = Sink(), Source()
    # When a record fails on its fifth attempt of five
    handled = handler(sink, source, backoff_seconds=10).handle(record(5), validation_error())
    # Then it is in the DLQ, body unchanged, error attached, and reported handled (no backoff: it is done)
    assert handled is True
    [(body, attributes)] = sink.sent
    assert body == '{"receipt_id": "r1"}'
    assert attributes[ERROR_TYPE].value == "ValidationError"
    assert attributes[ATTEMPTS].value == "5"
    assert source.changes == []


def test_an_earlier_attempt_is_reported_failed_after_its_backoff():
    sink, source = Sink(), Source()
    handled = handler(sink, source, backoff_seconds=10).handle(record(3), RuntimeError("throttled"))
    assert handled is False
    assert sink.sent == []
    assert source.changes == [("h1", 30)]  # ceiling 40 s on the third attempt, half of it random (0.5)


def test_without_backoff_the_queues_visibility_timeout_spaces_the_attempts():
    source = Source()
    assert handler(Sink(), source).handle(record(1), RuntimeError("x")) is False
    assert source.changes == []


def test_a_backoff_that_cannot_be_set_is_no_failure():
    assert handler(Sink(), Source(fail=True), backoff_seconds=10).handle(record(1), RuntimeError("x")) is False


@pytest.mark.parametrize("sink", [Sink(fail=True), None])
def test_a_record_that_cannot_be_dead_lettered_is_reported_failed(sink):
    # Given the DLQ refuses the record (or none is configured), When its last attempt fails
    # Then it is reported failed: SQS's redrive policy moves it, without its error
    assert handler(sink, Source()).handle(record(5), RuntimeError("x")) is False


def test_a_record_received_more_often_than_the_policy_allows_is_dead_lettered_too():
    sink = Sink()
    assert handler(sink, None).handle(record(7), RuntimeError("x")) is True
    assert sink.sent[0][1][ATTEMPTS].value == "7"
