"""The raw archive: every accepted webhook body exactly as received, with the headers that describe it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class RawArchive:
    bucket: str
    client: S3Client | None = None

    @property
    def _s3(self) -> S3Client:
        return self.client or clients.s3()

    def put(self, key: str, body: bytes, metadata: dict[str, str]) -> None:
        try:
            self._s3.put_object(
                Bucket=self.bucket, Key=key, Body=body, Metadata=metadata, ContentType="application/octet-stream"
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def get(self, key: str) -> bytes:
        try:
            return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
