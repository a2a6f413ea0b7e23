"""Operator tools for the dead-letter queues: list their messages with their errors, and redrive all or some of them
to the queue they came from (IngestDlq -> IngestQueue, CrmDlq -> CrmQueue, EventsDlq -> CrmQueue, RulesDlq ->
RulesQueue).

Listing never consumes: SQS has no peek, so messages are received with a short visibility timeout (HOLD_SECONDS,
long enough to page through them in one call) and made visible again at once when the listing is done; should the
function die first, they reappear on their own when the hold ends. A receive counts as a receive, but the DLQs have
no redrive policy of their own, so it costs nothing. A message that is held by another listing or redrive at that
moment is counted (in_flight) but not shown.

Redrive sends each chosen message's body (with its own attributes, without the error's) to the source queue and
deletes it from the DLQ only once SQS has taken it there; every other received message is made visible again. It
is bounded per call (max_messages and a time budget) and says when there is more. The consumers are idempotent, so
the rare double (a delete that failed after a send that worked) does no harm.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from crmsync import jsontext
from crmsync.deadline import Deadline
from crmsync.failures import RecordedError, recorded_error, without_failure_attributes
from crmsync.observability import logger
from crmsync.settings import Settings
from crmsync.store.errors import StoreError
from crmsync.store.queue import OutgoingMessage, Queue, QueueDepth, QueueMessage

HOLD_SECONDS = 30  # how long a listed or redriven message stays hidden if it is not released
DEFAULT_LIST_LIMIT = 10
MAX_LIST_LIMIT = 100
DEFAULT_REDRIVE_LIMIT = 500
MAX_REDRIVE_LIMIT = 1000
MAX_MESSAGE_IDS = 100

QueueName = Literal["ingest-dlq", "crm-dlq", "events-dlq", "rules-dlq"]
# DLQ name -> (Settings field of its URL, name of the queue it redrives to, Settings field of that URL)
DLQS: dict[str, tuple[str, str, str]] = {
    "ingest-dlq": ("ingest_dlq_url", "ingest-queue", "ingest_queue_url"),
    "crm-dlq": ("crm_dlq_url", "crm-queue", "crm_queue_url"),
    "events-dlq": ("events_dlq_url", "crm-queue", "crm_queue_url"),
    "rules-dlq": ("rules_dlq_url", "rules-queue", "rules_queue_url"),  # the rules function's and its bus rule's
}
SUMMARY_FIELDS = ("receipt_id", "source", "topic", "archive_key", "received_at", "correlation_id")
EVENT_SUMMARY_FIELDS = ("entity", "key", "source", "source_id", "receipt_id", "correlation_id")

MessageId = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class NotConfigured(StoreError):
    """A queue this operation needs has no URL in the function's environment."""


class DeadLetterSource(Protocol):
    def receive(
        self, *, max_messages: int = 10, visibility_timeout: int, wait_seconds: int = 0
    ) -> list[QueueMessage]: ...
    def change_visibility_batch(self, receipt_handles: Sequence[str], seconds: int) -> list[str]: ...
    def delete_batch(self, receipt_handles: Sequence[str]) -> list[str]: ...
    def depth(self) -> QueueDepth: ...


class RedriveTarget(Protocol):
    def send_batch(self, messages: Sequence[OutgoingMessage]) -> tuple[list[str], dict[str, str]]: ...


@dataclass(frozen=True)
class DeadLetterQueue:
    name: str
    queue: DeadLetterSource
    target_name: str
    target: RedriveTarget


def dead_letter_queue(settings: Settings, name: str) -> DeadLetterQueue:
    url_field, target_name, target_field = DLQS[name]
    url, target_url = getattr(settings, url_field), getattr(settings, target_field)
    if not url or not target_url:
        raise NotConfigured(f"{name} is not configured ({url_field.upper()}, {target_field.upper()})")
    return DeadLetterQueue(name, Queue(url), target_name, Queue(target_url))


class ListQuery(BaseModel):
    """GET /sync/dlq?queue=&limit="""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: QueueName | None = None
    limit: int = Field(default=DEFAULT_LIST_LIMIT, ge=1, le=MAX_LIST_LIMIT)


class RedriveRequest(BaseModel):
    """POST /sync/dlq/redrive: every message of the queue (up to limit a call), or those of message_ids."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    queue: QueueName
    message_ids: list[MessageId] | None = Field(default=None, min_length=1, max_length=MAX_MESSAGE_IDS)
    limit: int = Field(default=DEFAULT_REDRIVE_LIMIT, ge=1, le=MAX_REDRIVE_LIMIT)


@dataclass(frozen=True)
class DlqMessage:
    message_id: str
    sent_at: str | None
    summary: dict[str, Any]
    error: RecordedError
    body_bytes: int

    def as_json(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "sent_at": self.sent_at,
            "summary": self.summary,
            "error": self.error.as_json(),
            "body_bytes": self.body_bytes,
        }


@dataclass(frozen=True)
class DlqListing:
    name: str
    redrives_to: str
    depth: QueueDepth
    messages: list[DlqMessage]

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "redrives_to": self.redrives_to,
            "depth": self.depth.visible,
            "in_flight": self.depth.in_flight,
            "messages": [m.as_json() for m in self.messages],
            "truncated": self.depth.visible > len(self.messages),
        }


@dataclass(frozen=True)
class RedriveResult:
    queue: str
    target: str
    redriven: list[str]
    failed: list[str]
    not_found: list[str]
    remaining: int
    more: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "target": self.target,
            "redriven": len(self.redriven),
            "failed": len(self.failed),
            "message_ids": self.redriven,
            "failed_ids": self.failed,
            "not_found": self.not_found,
            "remaining": self.remaining,
            "more": self.more,
        }


def summarize(body: str) -> dict[str, Any]:
    """What a DLQ message is about, without its data (which may be personal): the ingest message's pointer fields, or
    an EventBridge event's type and entity key."""
    try:
        document = jsontext.loads(body)
    except ValueError:
        return {"format": "text"}
    if not isinstance(document, dict):
        return {"format": type(document).__name__}
    detail = document.get("detail")
    if "detail-type" in document and isinstance(detail, dict):
        summary = {
            "detail_type": document.get("detail-type"),
            "event_id": document.get("id"),
            "time": document.get("time"),
        }
        summary.update({k: detail[k] for k in EVENT_SUMMARY_FIELDS if isinstance(detail.get(k), str)})
        return summary
    return {k: document[k] for k in SUMMARY_FIELDS if isinstance(document.get(k), str)}


def describe_message(message: QueueMessage) -> DlqMessage:
    sent = message.attributes.get("SentTimestamp", "")
    return DlqMessage(
        message_id=message.message_id,
        sent_at=datetime.fromtimestamp(int(sent) / 1000, UTC).isoformat(timespec="seconds") if sent.isdigit() else None,
        summary=summarize(message.body),
        error=recorded_error(message.message_attributes, message.attributes),
        body_bytes=len(message.body.encode()),
    )


def _release(dlq: DeadLetterQueue, handles: Sequence[str]) -> None:
    """Make held messages visible again; if that fails they come back when their hold ends."""
    if not handles:
        return
    try:
        refused = dlq.queue.change_visibility_batch(list(handles), 0)
    except StoreError:
        logger.warning("messages not released; visible again after the hold", queue=dlq.name, exc_info=True)
        return
    if refused:
        logger.warning("messages not released; visible again after the hold", queue=dlq.name, count=len(refused))


def _receive(dlq: DeadLetterQueue, max_messages: int) -> list[QueueMessage]:
    """The next messages, held for HOLD_SECONDS. A short poll asks only some of SQS's servers and may come back empty
    while messages wait; then, if the queue says some are visible, a one-second long poll asks all of them."""
    batch = dlq.queue.receive(max_messages=max_messages, visibility_timeout=HOLD_SECONDS)
    if batch or dlq.queue.depth().visible == 0:
        return batch
    return dlq.queue.receive(max_messages=max_messages, visibility_timeout=HOLD_SECONDS, wait_seconds=1)


def list_messages(
    dlq: DeadLetterQueue, *, limit: int = DEFAULT_LIST_LIMIT, deadline: Deadline | None = None
) -> DlqListing:
    """Up to limit messages of the DLQ with their errors, oldest first; none is consumed (see the module doc)."""
    deadline = deadline or Deadline.never()
    depth = dlq.queue.depth()
    want = min(limit, depth.visible)
    seen: dict[str, QueueMessage] = {}
    held: list[str] = []
    try:
        while len(seen) < want and not deadline.passed():
            batch = _receive(dlq, min(10, want - len(seen)))
            if not batch:
                break
            for message in batch:
                held.append(message.receipt_handle)
                seen.setdefault(message.message_id, message)
    finally:
        _release(dlq, held)
    messages = sorted((describe_message(m) for m in seen.values()), key=lambda m: (m.sent_at or "", m.message_id))
    return DlqListing(dlq.name, dlq.target_name, depth, messages[:limit])


def redrive(
    dlq: DeadLetterQueue,
    *,
    message_ids: Sequence[str] | None = None,
    max_messages: int = DEFAULT_REDRIVE_LIMIT,
    deadline: Deadline | None = None,
) -> RedriveResult:
    """Move every message (up to max_messages this call), or exactly those of message_ids, back to the source queue."""
    deadline = deadline or Deadline.never()
    wanted = set(message_ids) if message_ids is not None else None
    seen: set[str] = set()
    held: dict[str, str] = {}  # receipt handle -> message id, released at the end unless deleted
    redriven: list[str] = []
    failed: list[str] = []
    more = False
    try:
        while True:
            if wanted is not None and wanted <= seen:
                break
            if wanted is None and len(redriven) + len(failed) >= max_messages:
                more = True
                break
            if deadline.passed():
                more = True
                break
            batch = _receive(dlq, 10)
            fresh = [m for m in batch if m.message_id not in seen]
            held.update({m.receipt_handle: m.message_id for m in batch})
            if not fresh:
                break  # the queue is empty, or gives back only what this call already holds
            seen.update(m.message_id for m in fresh)
            chosen = [m for m in fresh if wanted is None or m.message_id in wanted]
            if wanted is None:
                room = max_messages - len(redriven) - len(failed)
                chosen = chosen[:room]
            if chosen:
                moved, refused, deleted = _move(dlq, chosen)
                redriven.extend(moved)
                failed.extend(refused)
                for handle in deleted:
                    held.pop(handle, None)
    finally:
        _release(dlq, list(held))
    not_found = sorted(wanted - seen) if wanted is not None else []
    remaining = dlq.queue.depth().visible
    more = more and remaining > 0
    logger.info("dlq redriven", queue=dlq.name, target=dlq.target_name, redriven=len(redriven), failed=len(failed))
    return RedriveResult(dlq.name, dlq.target_name, redriven, failed, not_found, remaining, more)


def _move(dlq: DeadLetterQueue, chosen: list[QueueMessage]) -> tuple[list[str], list[str], list[str]]:
    """Send to the target, then delete from the DLQ what was sent: (ids sent, ids refused, handles deleted)."""
    outgoing = [
        OutgoingMessage(str(i), m.body, without_failure_attributes(m.message_attributes)) for i, m in enumerate(chosen)
    ]
    sent, refused = dlq.target.send_batch(outgoing)
    sent_messages = [chosen[int(i)] for i in sent]
    handles = [m.receipt_handle for m in sent_messages]
    not_deleted = set(dlq.queue.delete_batch(handles))
    if not_deleted:
        # Sent but still in the DLQ: released with the rest, so a later redrive may send it once more (harmless:
        # every consumer is idempotent) rather than losing it.
        logger.warning("redriven messages not deleted from the DLQ", queue=dlq.name, count=len(not_deleted))
    if refused:
        logger.warning(
            "messages refused by the target queue", queue=dlq.target_name, codes=sorted(set(refused.values()))
        )
    return (
        [m.message_id for m in sent_messages],
        [chosen[int(i)].message_id for i in refused],
        [h for h in handles if h not in not_deleted],
    )
