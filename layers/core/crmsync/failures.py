"""Failures of the queue consumers (convert, crm-writer): backoff between attempts, and poison records dead-lettered
by the consumer itself on their last attempt, with the error attached.

SQS's redrive policy moves a message to its DLQ after maxReceiveCount receives, but it cannot say why. So a consumer
that fails a record on its last allowed attempt (ApproximateReceiveCount >= MAX_RECEIVE_COUNT, the queue's
maxReceiveCount) sends the record to the DLQ itself, with message attributes carrying the error, and reports it
handled; if that send fails the record is reported failed and the redrive policy remains the backstop (such a message
then shows "no error recorded" in the operator's DLQ listing: the function timed out or crashed).

Earlier failures are reported failed after pushing the record's visibility timeout out exponentially (with jitter):
that is the retry backoff. Retries are SQS redeliveries, never in-process loops, because a consumer that slept in
the batch would hold every other record of it and burn its own timeout.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from crmsync.observability import logger, metrics
from crmsync.settings import Settings
from crmsync.store.queue import Attribute, Queue

PREFIX = "crmsync-"
ERROR_TYPE = "crmsync-error-type"
ERROR_MESSAGE = "crmsync-error-message"
FAILED_AT = "crmsync-failed-at"
ATTEMPTS = "crmsync-attempts"
SOURCE_QUEUE = "crmsync-source-queue"
# What EventBridge attaches to an event it could not deliver to a rule target (the EventsDlq).
EVENTBRIDGE_ATTRIBUTES = (
    "ERROR_CODE",
    "ERROR_MESSAGE",
    "RULE_ARN",
    "TARGET_ARN",
    "EXHAUSTED_RETRY_CONDITION",
    "RETRY_ATTEMPTS",
)
MAX_ATTRIBUTES = 10  # SQS takes ten message attributes a message
MAX_ERROR_CHARS = 1000
NO_ERROR = "no error recorded (the function timed out or crashed)"


class DeadLetterSink(Protocol):
    def send(self, body: str, attributes: Mapping[str, Attribute] | None = None) -> str: ...


class Redelivery(Protocol):
    def change_visibility(self, receipt_handle: str, seconds: int) -> None: ...


@dataclass(frozen=True)
class SqsRecord:
    """One SQS record as Lambda hands it to a consumer."""

    message_id: str
    body: str
    attempts: int  # ApproximateReceiveCount: 1 on the first delivery
    receipt_handle: str = ""
    source_queue: str = ""  # the queue's name, from eventSourceARN
    message_attributes: dict[str, Attribute] = field(default_factory=dict)

    @classmethod
    def from_lambda(cls, raw: Mapping[str, Any]) -> SqsRecord:
        attributes: dict[str, Attribute] = {}
        for name, value in (raw.get("messageAttributes") or {}).items():
            attribute = Attribute.from_sqs(value) if isinstance(value, Mapping) else None
            if attribute is not None:
                attributes[name] = attribute
        count = str((raw.get("attributes") or {}).get("ApproximateReceiveCount", "1"))
        return cls(
            message_id=str(raw.get("messageId", "")),
            body=str(raw.get("body", "")),
            attempts=int(count) if count.isdigit() else 1,
            receipt_handle=str(raw.get("receiptHandle", "")),
            source_queue=str(raw.get("eventSourceARN", "")).rsplit(":", 1)[-1],
            message_attributes=attributes,
        )


@dataclass(frozen=True)
class RecordedError:
    """The error a DLQ message carries, as the operator sees it."""

    type: str | None
    message: str
    failed_at: str | None = None
    attempts: int | None = None
    source_queue: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "message": self.message,
            "failed_at": self.failed_at,
            "attempts": self.attempts,
            "source_queue": self.source_queue,
        }


def truncate(text: str, limit: int = MAX_ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(exc: BaseException) -> tuple[str, str]:
    """(error type, message) of an exception; a validation error is told by field and reason only, never with the
    input values, which may be personal data."""
    from pydantic import ValidationError  # the layer's own dependency; imported where needed

    if isinstance(exc, ValidationError):
        problems = [
            f"{'.'.join(str(part) for part in error['loc']) or '<root>'}: {error['msg']}"
            for error in exc.errors(include_url=False, include_input=False, include_context=False)
        ]
        message = f"{exc.error_count()} validation error(s) for {exc.title}: " + "; ".join(problems)
    else:
        message = str(exc) or exc.__class__.__name__
    return exc.__class__.__name__, truncate(" ".join(message.split()))


def log_failure(message: str, exc: BaseException, **keys: Any) -> None:
    """Log a failed record: a validation error by field and reason (its traceback would print the input, which may
    be personal data), anything else with its traceback."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        error_type, reason = describe(exc)
        logger.error(message, error_type=error_type, error=reason, **keys)
    else:
        logger.exception(message, **keys)


def failure_attributes(record: SqsRecord, exc: BaseException, now: datetime) -> dict[str, Attribute]:
    """The record's own message attributes (as many as fit) and the error's."""
    error_type, message = describe(exc)
    ours = {
        ERROR_TYPE: Attribute(error_type),
        ERROR_MESSAGE: Attribute(message),
        FAILED_AT: Attribute(now.astimezone(UTC).isoformat(timespec="seconds")),
        ATTEMPTS: Attribute(str(record.attempts), "Number"),
        SOURCE_QUEUE: Attribute(record.source_queue or "unknown"),
    }
    carried = [(k, v) for k, v in record.message_attributes.items() if not k.startswith(PREFIX)]
    return {**dict(carried[: MAX_ATTRIBUTES - len(ours)]), **ours}


def without_failure_attributes(attributes: Mapping[str, Attribute]) -> dict[str, Attribute]:
    """A DLQ message's attributes minus the error's (ours and EventBridge's): what a redrive sends back."""
    return {k: v for k, v in attributes.items() if not k.startswith(PREFIX) and k not in EVENTBRIDGE_ATTRIBUTES}


def recorded_error(attributes: Mapping[str, Attribute], system_attributes: Mapping[str, str]) -> RecordedError:
    """Read back the error of a DLQ message: ours, else EventBridge's, else none (the redrive policy moved it)."""

    def text(name: str) -> str | None:
        value = attributes.get(name)
        return value.value if value is not None and isinstance(value.value, str) else None

    if ERROR_TYPE in attributes:
        attempts = text(ATTEMPTS)
        return RecordedError(
            type=text(ERROR_TYPE),
            message=text(ERROR_MESSAGE) or "",
            failed_at=text(FAILED_AT),
            attempts=int(attempts) if attempts and attempts.isdigit() else None,
            source_queue=text(SOURCE_QUEUE),
        )
    if "ERROR_CODE" in attributes:
        retries = text("RETRY_ATTEMPTS")
        rule = text("RULE_ARN")
        return RecordedError(
            type=text("ERROR_CODE"),
            message=text("ERROR_MESSAGE") or "EventBridge could not deliver the event to its target",
            attempts=int(retries) + 1 if retries and retries.isdigit() else None,
            source_queue=f"rule {rule.rsplit('/', 1)[-1]}" if rule else None,
        )
    source = system_attributes.get("DeadLetterQueueSourceArn")
    return RecordedError(type=None, message=NO_ERROR, source_queue=source.rsplit(":", 1)[-1] if source else None)


@dataclass(frozen=True)
class RetryPolicy:
    max_receive_count: int = 5  # the queue's redrive policy: the last attempt dead-letters with the error
    backoff_seconds: int = 0  # first delay; doubles each attempt; 0 = leave it to the queue's visibility timeout
    backoff_max_seconds: int = 900

    def is_last_attempt(self, attempts: int) -> bool:
        return attempts >= self.max_receive_count

    def delay(self, attempts: int, jitter: float) -> int:
        """Seconds before the next attempt after failed attempt number `attempts` (jitter in [0, 1]): exponential,
        capped, half of it random so records that failed together do not all come back together."""
        if self.backoff_seconds <= 0:
            return 0
        doublings: int = min(max(attempts, 1), 32) - 1
        ceiling = min(self.backoff_max_seconds, self.backoff_seconds * (1 << doublings))
        return max(1, round(ceiling / 2 + ceiling / 2 * min(max(jitter, 0.0), 1.0)))


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DeadLetterer:
    """What a consumer does with a record that failed: dead-letter it with its error on the last attempt, else delay
    its next attempt."""

    dlq: DeadLetterSink | None
    source: Redelivery | None
    policy: RetryPolicy
    clock: Callable[[], datetime] = _now
    jitter: Callable[[], float] = random.random

    def handle(self, record: SqsRecord, exc: BaseException) -> bool:
        """True when the record is now in the DLQ with its error (report it handled); False: report it failed."""
        if self.policy.is_last_attempt(record.attempts):
            return self.dead_letter(record, exc)
        self.back_off(record)
        return False

    def dead_letter(self, record: SqsRecord, exc: BaseException) -> bool:
        if self.dlq is None:
            logger.error("no DLQ configured; the redrive policy will move the record", message_id=record.message_id)
            return False
        try:
            self.dlq.send(record.body, failure_attributes(record, exc, self.clock()))
        except Exception:  # whatever went wrong, the record must not be acknowledged: report it failed
            logger.exception(
                "record not dead-lettered; the redrive policy will move it without its error",
                message_id=record.message_id,
            )
            return False
        metrics.add_metric(name="DeadLettered", unit="Count", value=1)
        logger.warning(
            "record dead-lettered with its error",
            message_id=record.message_id,
            attempts=record.attempts,
            source_queue=record.source_queue,
            error_type=exc.__class__.__name__,
        )
        return True

    def back_off(self, record: SqsRecord) -> None:
        seconds = self.policy.delay(record.attempts, self.jitter())
        if not seconds or self.source is None or not record.receipt_handle:
            return
        try:
            self.source.change_visibility(record.receipt_handle, seconds)
        except Exception:  # best effort: without it the queue's visibility timeout spaces the attempts
            logger.warning("backoff not applied", message_id=record.message_id, exc_info=True)


def dead_letterer(settings: Settings, *, source_queue_url: str, dlq_url: str) -> DeadLetterer:
    """The production DeadLetterer of a consumer of source_queue_url whose DLQ is dlq_url (either may be unset)."""
    return DeadLetterer(
        dlq=Queue(dlq_url) if dlq_url else None,
        source=Queue(source_queue_url) if source_queue_url else None,
        policy=RetryPolicy(
            max_receive_count=settings.max_receive_count,
            backoff_seconds=settings.retry_backoff_seconds,
            backoff_max_seconds=settings.retry_backoff_max_seconds,
        ),
    )
