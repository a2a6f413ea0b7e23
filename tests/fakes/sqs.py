"""SqsSimulator: a standard (not FIFO) SQS queue with the semantics the pipeline depends on, and the public
methods of crmsync.store.queue.Queue, so it can stand wherever a Queue does (ingest, DLQ sink, redrive).

- send -> a message id; receive up to 10 visible messages in random (seeded) order, each becoming invisible for
  the visibility timeout and getting a new receipt handle and a receive count one higher;
- delete by the latest receipt handle; a stale handle (the message was received again since) is accepted but
  deletes nothing, as SQS documents; a message that is not deleted becomes visible again when its visibility
  timeout ends (the clock is a FakeClock: `drain` moves it forward when nothing is visible);
- a message already received maxReceiveCount times is moved to the DLQ on the next receive instead of being
  delivered: same message id, body and attributes, receive count kept, DeadLetterQueueSourceArn added;
- Lambda's view: `event(batch)` is the SQS event a function receives, and `drain(handler)` is Lambda's poller
  with ReportBatchItemFailures (a raised exception or an unknown item identifier fails the whole batch).
"""

from __future__ import annotations

import base64
import hashlib
import heapq
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from random import Random
from typing import TYPE_CHECKING, Any, cast

from crmsync.store.errors import StoreError
from crmsync.store.queue import MAX_BATCH, Attribute, OutgoingMessage, QueueDepth, QueueMessage
from tests.fakes.faults import FakeClock, Faults, check, check_after, rng_of
from tests.fakes.template import queue_settings

if TYPE_CHECKING:
    from crmsync.store.queue import Queue

MAX_MESSAGE_BYTES = 256 * 1024  # body and attributes
MAX_ATTRIBUTES = 10
MAX_VISIBILITY_SECONDS = 12 * 3600
SENDER_ID = "AIDAFAKESQSSIMULATOR"


@dataclass
class _Message:
    message_id: str
    body: str
    message_attributes: dict[str, Attribute]
    sent_at: float
    receive_count: int = 0
    first_received_at: float | None = None
    visible_at: float = 0.0
    delayed: bool = False  # sent with a delay that has not ended yet
    receipt_handle: str | None = None  # the latest one; only it deletes the message
    generation: int = 0  # bumped at every visibility change, so stale heap entries are ignored
    dead_letter_source: str | None = None


@dataclass(frozen=True)
class QueuedMessage:
    """A message in the queue, for assertions (visible, in flight or delayed)."""

    message_id: str
    body: str
    receive_count: int
    message_attributes: dict[str, Attribute]
    in_flight: bool
    dead_letter_source: str | None


@dataclass
class DrainReport:
    batches: int = 0
    deliveries: int = 0  # messages handed to the handler, redeliveries included
    deleted: int = 0  # reported succeeded and deleted
    failed: int = 0  # deliveries reported failed (or in a batch that failed as a whole)
    batch_errors: list[str] = field(default_factory=list)  # exceptions raised by the handler
    invalid_responses: int = 0  # batches whose response named a message not in the batch
    moved_to_dlq: int = 0  # by the redrive policy (maxReceiveCount)
    seconds_waited: float = 0.0  # simulated time spent waiting for visibility timeouts


def receive_count(message: QueueMessage) -> int:
    return int(message.attributes.get("ApproximateReceiveCount", "0"))


BatchHandler = Callable[[list[QueueMessage]], Sequence[str] | None]


def _attributes_size(attributes: Mapping[str, Attribute]) -> int:
    return sum(
        len(name.encode())
        + len(a.data_type.encode())
        + len(a.value if isinstance(a.value, bytes) else a.value.encode())
        for name, a in attributes.items()
    )


class SqsSimulator:
    """A queue with SQS semantics; its `dlq` is made automatically when max_receive_count is set.

    Pass `queue.as_store()` where a crmsync.store.queue.Queue is expected. `faults` fails "queue.<method>"
    (send, send_batch, receive, delete_batch, change_visibility, depth) before the effect, or with `after` once
    it happened (e.g. a send whose message is stored but whose sender sees an error).
    """

    def __init__(
        self,
        name: str = "queue",
        *,
        seed: int | Random | None = 0,
        clock: FakeClock | None = None,
        max_receive_count: int | None = 5,
        visibility_timeout: float = 120.0,
        dlq: SqsSimulator | None = None,
        faults: Faults | None = None,
        region: str = "us-east-1",
        account: str = "123456789012",
    ) -> None:
        self.name = name
        self.rng = rng_of(seed)
        self.clock = clock or FakeClock()
        self.max_receive_count = max_receive_count
        self.visibility_timeout = visibility_timeout
        self.faults = faults
        self.region = region
        self.account = account
        self.stats: Counter[str] = Counter()  # sent, received, deleted, moved_to_dlq, redriven
        self.source: SqsSimulator | None = None  # the queue whose DLQ this one is
        self.dlq: SqsSimulator | None = dlq
        if self.dlq is None and max_receive_count is not None:
            self.dlq = SqsSimulator(
                f"{name}-dlq", seed=self.rng, clock=self.clock, max_receive_count=None, region=region, account=account
            )
        if self.dlq is not None:
            self.dlq.source = self
        self._messages: dict[str, _Message] = {}
        self._visible: list[str] = []  # message ids, in no order
        self._position: dict[str, int] = {}  # message id -> index in _visible
        self._hidden: list[tuple[float, int, str, int]] = []  # heap of (visible_at, seq, message id, generation)
        self._handles: dict[str, str] = {}  # every receipt handle ever issued -> message id
        self._seq = 0
        self._lock = threading.RLock()

    @classmethod
    def from_template(cls, logical_id: str, **kwargs: Any) -> SqsSimulator:
        """A queue with the VisibilityTimeout and maxReceiveCount template.yaml gives `logical_id`."""
        settings = queue_settings(logical_id)
        return cls(
            kwargs.pop("name", logical_id),
            max_receive_count=settings.max_receive_count,
            visibility_timeout=settings.visibility_timeout,
            **kwargs,
        )

    def as_store(self) -> Queue:
        return cast("Queue", self)

    @property
    def url(self) -> str:
        return f"https://sqs.{self.region}.amazonaws.com/{self.account}/{self.name}"

    @property
    def arn(self) -> str:
        return f"arn:aws:sqs:{self.region}:{self.account}:{self.name}"

    # --- Queue: producer ----------------------------------------------------------------------------
    def send(self, body: str, attributes: Mapping[str, Attribute] | None = None) -> str:
        """SendMessage; returns the message id."""
        with self._lock:
            check(self.faults, "queue.send")
            refused = self._refusal(body, attributes or {})
            if refused:
                raise StoreError(f"SendMessage: {refused}")
            message_id = self._enqueue(body, attributes or {})
        check_after(self.faults, "queue.send")
        return message_id

    def send_delayed(self, body: str, delay_seconds: float, attributes: Mapping[str, Attribute] | None = None) -> str:
        """SendMessage with DelaySeconds (not part of Queue)."""
        with self._lock:
            refused = self._refusal(body, attributes or {})
            if refused or not 0 <= delay_seconds <= 900:
                raise StoreError(f"SendMessage: {refused or 'InvalidParameterValue'}")
            return self._enqueue(body, attributes or {}, delay_seconds)

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> tuple[list[str], dict[str, str]]:
        """Send in batches of ten; returns (ids sent, {id: error code} of the entries SQS refused)."""
        sent: list[str] = []
        refused: dict[str, str] = {}
        for start in range(0, len(messages), MAX_BATCH):
            chunk = messages[start : start + MAX_BATCH]
            with self._lock:
                check(self.faults, "queue.send_batch")
                if len({m.id for m in chunk}) != len(chunk):
                    raise StoreError("SendMessageBatch: AWS.SimpleQueueService.BatchEntryIdsNotDistinct")
                for message in chunk:
                    problem = self._refusal(message.body, message.attributes)
                    if problem:
                        refused[message.id] = problem
                    else:
                        self._enqueue(message.body, message.attributes)
                        sent.append(message.id)
            check_after(self.faults, "queue.send_batch")
        return sent, refused

    # --- Queue: consumer ----------------------------------------------------------------------------
    def receive(
        self, *, max_messages: int = MAX_BATCH, visibility_timeout: int | None = None, wait_seconds: int = 0
    ) -> list[QueueMessage]:
        """ReceiveMessage: up to ten visible messages, in random order, hidden for visibility_timeout seconds
        (the queue's own when None); messages received maxReceiveCount times go to the DLQ instead."""
        timeout = self.visibility_timeout if visibility_timeout is None else visibility_timeout
        wanted = max(1, min(MAX_BATCH, max_messages))
        delivered: list[QueueMessage] = []
        with self._lock:
            check(self.faults, "queue.receive")
            now = self.clock()
            self._promote(now)
            while self._visible and len(delivered) < wanted:
                message = self._messages[self._take(self.rng.randrange(len(self._visible)))]
                if self.max_receive_count is not None and message.receive_count >= self.max_receive_count:
                    self._move_to_dlq(message)
                    continue
                message.receive_count += 1
                message.first_received_at = message.first_received_at or now
                self._seq += 1
                message.receipt_handle = f"{message.message_id}#{self._seq}#{self.rng.getrandbits(32):08x}"
                self._handles[message.receipt_handle] = message.message_id
                self._hide(message, now + timeout)
                delivered.append(self._received(message))
            self.stats["received"] += len(delivered)
        return delivered

    def delete_batch(self, receipt_handles: Sequence[str]) -> list[str]:
        """Delete by receipt handle; returns the handles SQS refused (never issued). A stale handle of a message
        received again since is accepted and deletes nothing."""
        failed: list[str] = []
        for start in range(0, len(receipt_handles), MAX_BATCH):
            with self._lock:
                check(self.faults, "queue.delete_batch")
                for handle in receipt_handles[start : start + MAX_BATCH]:
                    if handle not in self._handles:
                        failed.append(handle)
                    else:
                        self._delete(handle)
            check_after(self.faults, "queue.delete_batch")
        return failed

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        """ChangeMessageVisibility of an in-flight message, counted from now (0: visible again now)."""
        with self._lock:
            check(self.faults, "queue.change_visibility")
            refused = self._change_visibility(receipt_handle, seconds)
            if refused:
                raise StoreError(f"ChangeMessageVisibility: {refused}")

    def change_visibility_batch(self, receipt_handles: Sequence[str], seconds: int) -> list[str]:
        """Set the visibility timeout of received messages (0 = visible again now); returns the handles refused."""
        failed: list[str] = []
        for start in range(0, len(receipt_handles), MAX_BATCH):
            with self._lock:
                check(self.faults, "queue.change_visibility_batch")
                failed.extend(
                    h for h in receipt_handles[start : start + MAX_BATCH] if self._change_visibility(h, seconds)
                )
        return failed

    def depth(self) -> QueueDepth:
        with self._lock:
            check(self.faults, "queue.depth")
            self._promote(self.clock())
            delayed = sum(1 for m in self._messages.values() if m.delayed)
            return QueueDepth(
                visible=len(self._visible),
                in_flight=len(self._messages) - len(self._visible) - delayed,
                delayed=delayed,
            )

    # --- simple helpers (not part of Queue) ---------------------------------------------------------
    def delete(self, receipt_handle: str) -> bool:
        """Delete one message by receipt handle; True when that deleted it."""
        with self._lock:
            return self._delete(receipt_handle)

    def expire_in_flight(self) -> int:
        """Every in-flight message's visibility timeout ends now (a slow consumer): it can be received again
        while the first consumer still works on it. Returns how many."""
        with self._lock:
            now = self.clock()
            flying = [m for m in self._messages.values() if m.message_id not in self._position and not m.delayed]
            for message in flying:
                self._hide(message, now)
            self._promote(now)
            return len(flying)

    # --- Lambda's view ----------------------------------------------------------------------------
    def event(self, batch: Sequence[QueueMessage]) -> dict[str, Any]:
        """The SQS event a Lambda function receives for this batch."""
        return {"Records": [self._record(m) for m in batch]}

    def lambda_adapter(self, function: Callable[[dict[str, Any], Any], Any], context: Any = None) -> BatchHandler:
        """A drain handler from a Lambda handler (event, context) -> {"batchItemFailures": [...]}."""

        def handle(batch: list[QueueMessage]) -> list[str]:
            answer = function(self.event(batch), context) or {}
            return [failure.get("itemIdentifier", "") for failure in answer.get("batchItemFailures") or []]

        return handle

    def next_batch(self, batch_size: int = MAX_BATCH) -> list[QueueMessage]:
        """What Lambda's poller hands a function: up to batch_size messages, gathered by receives of ten."""
        batch: list[QueueMessage] = []
        while len(batch) < batch_size:
            got = self.receive(max_messages=min(MAX_BATCH, batch_size - len(batch)))
            if not got:
                break
            batch.extend(got)
        return batch

    def drain(self, handler: BatchHandler, *, batch_size: int = MAX_BATCH, max_batches: int = 100_000) -> DrainReport:
        """Lambda's poller until the queue is empty: take a batch, call handler(batch) -> failed message ids (the
        partial batch response), delete the others. A failed message comes back when its visibility timeout
        ends (the clock jumps ahead when nothing else is visible) and goes to the DLQ after maxReceiveCount."""
        report = DrainReport()
        moved_before = self.stats["moved_to_dlq"]
        while True:
            batch = self.next_batch(batch_size)
            if not batch:
                waited = self._wait_for_next()
                if waited is None:
                    break
                report.seconds_waited += waited
                continue
            if report.batches >= max_batches:
                raise RuntimeError(f"{self.name}: not drained after {max_batches} batches")
            report.batches += 1
            report.deliveries += len(batch)
            ids = {m.message_id for m in batch}
            try:
                failed = set(handler(batch) or ())
            except Exception as exc:  # Lambda: a function error fails the whole batch
                report.batch_errors.append(f"{type(exc).__name__}: {exc}")
                failed = ids
            if not failed <= ids:  # Lambda: an item identifier not in the batch fails the whole batch
                report.invalid_responses += 1
                failed = ids
            for message in batch:
                if message.message_id in failed:
                    report.failed += 1
                elif self.delete(message.receipt_handle):
                    report.deleted += 1
        report.moved_to_dlq = self.stats["moved_to_dlq"] - moved_before
        return report

    # --- DLQ ----------------------------------------------------------------------------------------
    def redrive(self, message_ids: Sequence[str] | None = None, *, to: SqsSimulator | None = None) -> list[str]:
        """Move messages of this queue (a DLQ) back to its source queue, or to `to`, by send and delete (new
        message ids, receive count 0, attributes kept). Returns the new message ids."""
        target = to or self.source
        if target is None:
            raise ValueError(f"{self.name} is no queue's DLQ; say where to redrive with to=")
        wanted = None if message_ids is None else set(message_ids)
        with self._lock:
            chosen = [m for m in self._messages.values() if wanted is None or m.message_id in wanted]
            for message in chosen:
                self._remove(message.message_id)
                self.stats["redriven"] += 1
        return [target.send(m.body, m.message_attributes) for m in chosen]

    def purge(self) -> None:
        with self._lock:
            for message_id in list(self._messages):
                self._remove(message_id)

    # --- inspection -----------------------------------------------------------------------------------
    def __len__(self) -> int:
        """Messages in the queue: visible, in flight or delayed."""
        return len(self._messages)

    def messages(self) -> list[QueuedMessage]:
        with self._lock:
            self._promote(self.clock())
            return [
                QueuedMessage(
                    message_id=m.message_id,
                    body=m.body,
                    receive_count=m.receive_count,
                    message_attributes=dict(m.message_attributes),
                    in_flight=m.message_id not in self._position and not m.delayed,
                    dead_letter_source=m.dead_letter_source,
                )
                for m in sorted(self._messages.values(), key=lambda m: (m.sent_at, m.message_id))
            ]

    # --- internals --------------------------------------------------------------------------------------
    def _refusal(self, body: str, attributes: Mapping[str, Attribute]) -> str | None:
        if not body or len(body.encode()) + _attributes_size(attributes) > MAX_MESSAGE_BYTES:
            return "InvalidParameterValue"
        if len(attributes) > MAX_ATTRIBUTES:
            return "InvalidParameterValue"
        return None

    def _enqueue(self, body: str, attributes: Mapping[str, Attribute], delay_seconds: float = 0) -> str:
        message_id = str(uuid.UUID(int=self.rng.getrandbits(128), version=4))
        now = self.clock()
        self._add(
            _Message(
                message_id=message_id,
                body=body,
                message_attributes=dict(attributes),
                sent_at=now,
                visible_at=now + delay_seconds,
                delayed=delay_seconds > 0,
            )
        )
        self.stats["sent"] += 1
        return message_id

    def _add(self, message: _Message) -> None:
        self._messages[message.message_id] = message
        if message.visible_at <= self.clock():
            self._show(message.message_id)
        else:
            self._hide(message, message.visible_at)

    def _show(self, message_id: str) -> None:
        if message_id not in self._position:
            self._messages[message_id].delayed = False
            self._position[message_id] = len(self._visible)
            self._visible.append(message_id)

    def _take(self, index: int) -> str:
        """Remove and return the visible message id at index (swapped with the last: O(1))."""
        message_id, last = self._visible[index], self._visible[-1]
        self._visible[index] = last
        self._position[last] = index
        self._visible.pop()
        del self._position[message_id]
        return message_id

    def _hide(self, message: _Message, until: float) -> None:
        if message.message_id in self._position:
            self._take(self._position[message.message_id])
        message.visible_at = until
        message.generation += 1
        self._seq += 1
        heapq.heappush(self._hidden, (until, self._seq, message.message_id, message.generation))

    def _promote(self, now: float) -> None:
        while self._hidden and self._hidden[0][0] <= now:
            _, _, message_id, generation = heapq.heappop(self._hidden)
            message = self._messages.get(message_id)
            if message is not None and message.generation == generation:
                self._show(message_id)

    def _wait_for_next(self) -> float | None:
        """Move the clock to when the next hidden message becomes visible; None when none is hidden."""
        with self._lock:
            while self._hidden:
                until, _, message_id, generation = self._hidden[0]
                message = self._messages.get(message_id)
                if message is None or message.generation != generation:
                    heapq.heappop(self._hidden)
                    continue
                before = self.clock()
                self.clock.advance_to(until)
                return max(0.0, until - before)
            return None

    def _delete(self, receipt_handle: str) -> bool:
        message_id = self._handles.get(receipt_handle)
        message = self._messages.get(message_id) if message_id else None
        if message is None or message.receipt_handle != receipt_handle:
            return False  # gone already, or received again since: nothing deleted
        self._remove(message.message_id)
        self.stats["deleted"] += 1
        return True

    def _change_visibility(self, receipt_handle: str, seconds: float) -> str | None:
        """None when done, else SQS's error code."""
        if not 0 <= seconds <= MAX_VISIBILITY_SECONDS:
            return "InvalidParameterValue"
        message_id = self._handles.get(receipt_handle)
        message = self._messages.get(message_id) if message_id else None
        if message is None or message.receipt_handle != receipt_handle:
            return "ReceiptHandleIsInvalid"
        now = self.clock()
        if message.message_id in self._position or message.visible_at <= now:
            return "AWS.SimpleQueueService.MessageNotInflight"
        self._hide(message, now + seconds)
        self._promote(now)
        return None

    def _remove(self, message_id: str) -> None:
        message = self._messages.pop(message_id)
        if message_id in self._position:
            self._take(self._position[message_id])
        message.generation += 1  # its heap entry, if any, is now stale

    def _move_to_dlq(self, message: _Message) -> None:
        if self.dlq is None:  # a max receive count always comes with a DLQ (made in __init__)
            raise AssertionError("over-received message without a DLQ")
        self._remove(message.message_id)
        self.stats["moved_to_dlq"] += 1
        with self.dlq._lock:
            self.dlq._add(
                _Message(
                    message_id=message.message_id,
                    body=message.body,
                    message_attributes=message.message_attributes,
                    sent_at=message.sent_at,
                    receive_count=message.receive_count,
                    first_received_at=message.first_received_at,
                    visible_at=self.clock(),
                    dead_letter_source=self.arn,
                )
            )
            self.dlq.stats["sent"] += 1

    def _received(self, message: _Message) -> QueueMessage:
        attributes = {
            "ApproximateReceiveCount": str(message.receive_count),
            "SentTimestamp": str(int(message.sent_at * 1000)),
            "SenderId": SENDER_ID,
            "ApproximateFirstReceiveTimestamp": str(int((message.first_received_at or message.sent_at) * 1000)),
        }
        if message.dead_letter_source:
            attributes["DeadLetterQueueSourceArn"] = message.dead_letter_source
        assert message.receipt_handle is not None
        return QueueMessage(
            message_id=message.message_id,
            receipt_handle=message.receipt_handle,
            body=message.body,
            attributes=attributes,
            message_attributes=dict(message.message_attributes),
        )

    def _record(self, message: QueueMessage) -> dict[str, Any]:
        def lambda_attribute(attribute: Attribute) -> dict[str, Any]:
            shaped: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": attribute.data_type}
            if isinstance(attribute.value, bytes):
                shaped["binaryValue"] = base64.b64encode(attribute.value).decode()
            else:
                shaped["stringValue"] = attribute.value
            return shaped

        return {
            "messageId": message.message_id,
            "receiptHandle": message.receipt_handle,
            "body": message.body,
            "attributes": dict(message.attributes),
            "messageAttributes": {name: lambda_attribute(a) for name, a in message.message_attributes.items()},
            "md5OfBody": hashlib.md5(message.body.encode(), usedforsecurity=False).hexdigest(),
            "eventSource": "aws:sqs",
            "eventSourceARN": self.arn,
            "awsRegion": self.region,
        }
