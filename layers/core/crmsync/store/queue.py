"""SQS queues: the ingest queue (accepted webhooks by reference to their archived body), the CRM queue and the
dead-letter queues. Every SQS call of crmsync is here; callers see plain dataclasses and StoreError."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import translate

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueTypeDef

MAX_BATCH = 10  # SQS takes at most ten entries a batch call


@dataclass(frozen=True)
class Attribute:
    """One message attribute: String and Number values as text, Binary as bytes."""

    value: str | bytes
    data_type: str = "String"

    def as_sqs(self) -> MessageAttributeValueTypeDef:
        if isinstance(self.value, bytes):
            return {"DataType": self.data_type, "BinaryValue": self.value}
        return {"DataType": self.data_type, "StringValue": self.value}

    @classmethod
    def from_sqs(cls, raw: Mapping[str, Any]) -> Attribute | None:
        """From the SQS API shape ({"DataType", "StringValue"}) or Lambda's ({"dataType", "stringValue"}, binary
        values base64-encoded); None for list values, which SQS reserves and nobody sends."""
        data_type = raw.get("DataType") or raw.get("dataType") or "String"
        text = raw.get("StringValue", raw.get("stringValue"))
        if text is not None:
            return cls(str(text), data_type)
        binary = raw.get("BinaryValue", raw.get("binaryValue"))
        if isinstance(binary, bytes):
            return cls(binary, data_type)
        if isinstance(binary, str):
            return cls(base64.b64decode(binary), data_type)
        return None


@dataclass(frozen=True)
class QueueMessage:
    message_id: str
    receipt_handle: str
    body: str
    attributes: dict[str, str] = field(default_factory=dict)  # SentTimestamp, DeadLetterQueueSourceArn, ...
    message_attributes: dict[str, Attribute] = field(default_factory=dict)


@dataclass(frozen=True)
class OutgoingMessage:
    id: str  # the caller's id for this entry of a batch (unique within the batch)
    body: str
    attributes: Mapping[str, Attribute] = field(default_factory=dict)


@dataclass(frozen=True)
class QueueDepth:
    visible: int  # waiting to be received
    in_flight: int  # received and not yet deleted (invisible)
    delayed: int


@dataclass(frozen=True)
class Queue:
    url: str
    client: SQSClient | None = None

    @property
    def _sqs(self) -> SQSClient:
        return self.client or clients.sqs()

    @property
    def name(self) -> str:
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def send(self, body: str, attributes: Mapping[str, Attribute] | None = None) -> str:
        try:
            if attributes:
                answer = self._sqs.send_message(
                    QueueUrl=self.url,
                    MessageBody=body,
                    MessageAttributes={k: v.as_sqs() for k, v in attributes.items()},
                )
            else:
                answer = self._sqs.send_message(QueueUrl=self.url, MessageBody=body)
            return answer["MessageId"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def send_batch(self, messages: Sequence[OutgoingMessage]) -> tuple[list[str], dict[str, str]]:
        """Send in batches of ten; returns (ids sent, {id: error code} of the entries SQS refused)."""
        sent: list[str] = []
        refused: dict[str, str] = {}
        for start in range(0, len(messages), MAX_BATCH):
            chunk = messages[start : start + MAX_BATCH]
            try:
                answer = self._sqs.send_message_batch(
                    QueueUrl=self.url,
                    Entries=[
                        {
                            "Id": m.id,
                            "MessageBody": m.body,
                            "MessageAttributes": {k: v.as_sqs() for k, v in m.attributes.items()},
                        }
                        if m.attributes
                        else {"Id": m.id, "MessageBody": m.body}
                        for m in chunk
                    ],
                )
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc
            sent.extend(entry["Id"] for entry in answer.get("Successful", []))
            refused.update({entry["Id"]: entry.get("Code", "?") for entry in answer.get("Failed", [])})
        return sent, refused

    def receive(
        self, *, max_messages: int = MAX_BATCH, visibility_timeout: int, wait_seconds: int = 0
    ) -> list[QueueMessage]:
        """Receive up to ten messages, hidden from other consumers for visibility_timeout seconds."""
        try:
            answer = self._sqs.receive_message(
                QueueUrl=self.url,
                MaxNumberOfMessages=max(1, min(MAX_BATCH, max_messages)),
                VisibilityTimeout=visibility_timeout,
                WaitTimeSeconds=wait_seconds,
                AttributeNames=["All"],  # the older name of the next, for emulators that know only it
                MessageSystemAttributeNames=["All"],
                MessageAttributeNames=["All"],
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        messages = []
        for raw in answer.get("Messages", []):
            attributes = {}
            for name, value in raw.get("MessageAttributes", {}).items():
                attribute = Attribute.from_sqs(value)
                if attribute is not None:
                    attributes[name] = attribute
            messages.append(
                QueueMessage(
                    message_id=raw["MessageId"],
                    receipt_handle=raw["ReceiptHandle"],
                    body=raw.get("Body", ""),
                    attributes={str(k): v for k, v in raw.get("Attributes", {}).items()},
                    message_attributes=attributes,
                )
            )
        return messages

    def delete_batch(self, receipt_handles: Sequence[str]) -> list[str]:
        """Delete by receipt handle, ten a call; returns the handles SQS did not delete."""
        failed: list[str] = []
        for start in range(0, len(receipt_handles), MAX_BATCH):
            chunk = receipt_handles[start : start + MAX_BATCH]
            try:
                answer = self._sqs.delete_message_batch(
                    QueueUrl=self.url, Entries=[{"Id": str(i), "ReceiptHandle": h} for i, h in enumerate(chunk)]
                )
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc
            failed.extend(chunk[int(entry["Id"])] for entry in answer.get("Failed", []))
        return failed

    def change_visibility(self, receipt_handle: str, seconds: int) -> None:
        try:
            self._sqs.change_message_visibility(
                QueueUrl=self.url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def change_visibility_batch(self, receipt_handles: Sequence[str], seconds: int) -> list[str]:
        """Set the visibility timeout of received messages (0 = visible again now); returns the handles refused."""
        failed: list[str] = []
        for start in range(0, len(receipt_handles), MAX_BATCH):
            chunk = receipt_handles[start : start + MAX_BATCH]
            try:
                answer = self._sqs.change_message_visibility_batch(
                    QueueUrl=self.url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": seconds} for i, h in enumerate(chunk)
                    ],
                )
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc
            failed.extend(chunk[int(entry["Id"])] for entry in answer.get("Failed", []))
        return failed

    def depth(self) -> QueueDepth:
        try:
            answer = self._sqs.get_queue_attributes(
                QueueUrl=self.url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        values = answer.get("Attributes", {})
        return QueueDepth(
            visible=int(values.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(values.get("ApproximateNumberOfMessagesNotVisible", 0)),
            delayed=int(values.get("ApproximateNumberOfMessagesDelayed", 0)),
        )
