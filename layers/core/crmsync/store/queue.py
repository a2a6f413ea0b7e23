"""The ingest queue: accepted webhooks, by reference to their archived body (claim-check)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import translate

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@dataclass(frozen=True)
class Queue:
    url: str
    client: SQSClient | None = None

    def send(self, body: str) -> str:
        try:
            return (self.client or clients.sqs()).send_message(QueueUrl=self.url, MessageBody=body)["MessageId"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
