"""Webhook receipts: one item per delivery key, claimed before anything is stored and released on failure.

Item: pk=<receipt id>, status=IN_PROGRESS|ACCEPTED, token (who holds the claim), claim_expires (epoch s),
expires_at (epoch s, the table's TTL: dedupe window), topic, archive_key.

Signed transmissions (PayPal): pk=transmission:<source>:<transmission id>, body_sha256, expires_at (TTL): the body a
signature came with, so the same signature never carries another body (crmsync.ingest).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import ConditionFailed, conditional, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@dataclass(frozen=True)
class Receipt:
    receipt_id: str
    status: str  # IN_PROGRESS | ACCEPTED
    topic: str | None
    archive_key: str | None
    accepted_at: int | None  # epoch s


class Claim(StrEnum):
    CLAIMED = "claimed"  # ours: go on and store the delivery
    DUPLICATE = "duplicate"  # accepted before: answer 200, do nothing
    IN_PROGRESS = "in_progress"  # another delivery of the same event holds a live claim


@dataclass(frozen=True)
class ReceiptStore:
    table: str
    client: DynamoDBClient | None = None

    @property
    def _ddb(self) -> DynamoDBClient:
        return self.client or clients.dynamodb()

    def claim(self, receipt_id: str, token: str, *, now: int, claim_seconds: int, retention_seconds: int) -> Claim:
        """Take the receipt unless it is accepted or held by a live claim (an expired claim is taken over)."""
        try:
            self._ddb.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": receipt_id},
                    "status": {"S": "IN_PROGRESS"},
                    "token": {"S": token},
                    "claim_expires": {"N": str(now + claim_seconds)},
                    "expires_at": {"N": str(now + retention_seconds)},
                },
                ConditionExpression="attribute_not_exists(pk) OR (#s = :progress AND claim_expires < :now)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":progress": {"S": "IN_PROGRESS"}, ":now": {"N": str(now)}},
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except ClientError as exc:
            error = translate(exc)
            if not isinstance(error, ConditionFailed):
                raise error from exc
            old = exc.response.get("Item", {})
            status = old.get("status", {}).get("S") if isinstance(old, dict) else None
            return Claim.IN_PROGRESS if status == "IN_PROGRESS" else Claim.DUPLICATE
        except BotoCoreError as exc:
            raise translate(exc) from exc
        return Claim.CLAIMED

    def accept(self, receipt_id: str, token: str, *, topic: str, archive_key: str, now: int) -> None:
        """Mark our claim accepted: from now on every redelivery is a duplicate."""
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": receipt_id}},
                UpdateExpression="SET #s = :accepted, topic = :topic, archive_key = :key, accepted_at = :now "
                "REMOVE claim_expires",
                ConditionExpression="#s = :progress AND #t = :token",
                ExpressionAttributeNames={"#s": "status", "#t": "token"},
                ExpressionAttributeValues={
                    ":accepted": {"S": "ACCEPTED"},
                    ":progress": {"S": "IN_PROGRESS"},
                    ":token": {"S": token},
                    ":topic": {"S": topic},
                    ":key": {"S": archive_key},
                    ":now": {"N": str(now)},
                },
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def release(self, receipt_id: str, token: str) -> None:
        """Give the claim back so the sender's retry is processed; only our own, still in-progress claim."""
        try:
            self._ddb.delete_item(
                TableName=self.table,
                Key={"pk": {"S": receipt_id}},
                ConditionExpression="#s = :progress AND #t = :token",
                ExpressionAttributeNames={"#s": "status", "#t": "token"},
                ExpressionAttributeValues={":progress": {"S": "IN_PROGRESS"}, ":token": {"S": token}},
            )
        except ClientError as exc:
            error = translate(exc)
            if not isinstance(error, ConditionFailed):
                raise error from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc

    def bind_transmission(self, key: str, body_sha256: str, *, now: int, retention_seconds: int) -> bool:
        """Bind a signed transmission to the SHA-256 of its body: True when it is new or came with this body before,
        False when it came with another body (a forgery that kept the signature). Kept retention_seconds (TTL); an
        expired binding (not yet swept) counts as gone."""
        return conditional(
            self._ddb.put_item,
            TableName=self.table,
            Item={
                "pk": {"S": key},
                "body_sha256": {"S": body_sha256},
                "expires_at": {"N": str(now + retention_seconds)},
            },
            ConditionExpression="attribute_not_exists(pk) OR body_sha256 = :h OR expires_at < :now",
            ExpressionAttributeValues={":h": {"S": body_sha256}, ":now": {"N": str(now)}},
        )

    def status(self, receipt_id: str) -> str | None:
        found = self.get(receipt_id)
        return found.status if found else None

    def get(self, receipt_id: str) -> Receipt | None:
        """The receipt as stored (None once unknown or expired: receipts live ReceiptRetentionDays)."""
        try:
            item = self._ddb.get_item(TableName=self.table, Key={"pk": {"S": receipt_id}}, ConsistentRead=True)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        found = item.get("Item")
        if not found:
            return None
        accepted_at = found.get("accepted_at", {}).get("N")
        return Receipt(
            receipt_id=receipt_id,
            status=found["status"]["S"],
            topic=found.get("topic", {}).get("S"),
            archive_key=found.get("archive_key", {}).get("S"),
            accepted_at=int(accepted_at) if accepted_at else None,
        )
