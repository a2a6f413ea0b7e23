"""The raw archive: every accepted webhook body exactly as received, with the headers that describe it.

Keys: raw/<source>/<YYYY>/<MM>/<DD>/<digest of the receipt id> (crmsync.ingest.archive_key), so a listing in key
order is by source, then by day of receipt.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import NotFound, StoreError, translate

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class ArchivedObject:
    key: str
    metadata: dict[str, str]  # lower-case names: topic, receipt-id, received-at, account
    last_modified: datetime
    size: int = 0  # bytes


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

    def upload_url(self, key: str, content_type: str, expires_in: int) -> str:
        """A presigned PUT of `key` (an operator's file too big for an API body), valid for `expires_in` seconds;
        the upload must send the same Content-Type. Signing is local: no call to S3."""
        try:
            return self._s3.generate_presigned_url(
                "put_object",
                Params={"Bucket": self.bucket, "Key": key, "ContentType": content_type},
                ExpiresIn=expires_in,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def delete(self, key: str) -> int:
        """Delete the object for good: every version of it and every delete marker (the bucket is versioned, so a
        plain delete would only hide it). Returns how many versions went; 0 when there was none. Deleting twice is
        harmless."""
        versions: list[dict[str, str]] = []
        try:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": key}
            while True:
                answer = self._s3.list_object_versions(**kwargs)
                for entry in [*answer.get("Versions", []), *answer.get("DeleteMarkers", [])]:
                    if entry.get("Key") == key:
                        versions.append({"Key": key, "VersionId": str(entry.get("VersionId") or "null")})
                if not answer.get("IsTruncated"):
                    break
                kwargs["KeyMarker"] = answer.get("NextKeyMarker", "")
                kwargs["VersionIdMarker"] = answer.get("NextVersionIdMarker", "")
            for start in range(0, len(versions), 1000):
                chunk = versions[start : start + 1000]
                answer_delete = self._s3.delete_objects(
                    Bucket=self.bucket,
                    Delete={"Objects": chunk, "Quiet": True},  # type: ignore[typeddict-item]
                )
                if answer_delete.get("Errors"):
                    raise StoreError(f"DeleteObjects: {answer_delete['Errors'][0].get('Code', 'error')}")
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return len(versions)

    def head(self, key: str) -> ArchivedObject | None:
        """The object's metadata and time, without its body; None when there is no such object."""
        return self._head(self._s3, key)

    def head_many(self, keys: Sequence[str], *, workers: int = 8) -> list[ArchivedObject | None]:
        """head() of every key, in the same order, several at a time (a replay page needs one per object)."""
        s3 = self._s3  # created here, once: making boto3 clients is not thread-safe, using them is
        if len(keys) <= 1 or workers <= 1:
            return [self._head(s3, key) for key in keys]
        with ThreadPoolExecutor(max_workers=min(workers, len(keys))) as pool:
            return list(pool.map(lambda key: self._head(s3, key), keys))

    def _head(self, s3: S3Client, key: str) -> ArchivedObject | None:
        try:
            answer = s3.head_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            error = translate(exc)
            if isinstance(error, NotFound):
                return None
            raise error from exc
        return ArchivedObject(
            key, dict(answer.get("Metadata", {})), answer["LastModified"], int(answer.get("ContentLength", 0))
        )

    def folders(self, prefix: str) -> list[str]:
        """The next level of "folders" under prefix (e.g. raw/ -> raw/shopify/, raw/stripe/), sorted."""
        found: list[str] = []
        token: str | None = None
        while True:
            try:
                if token:
                    answer = self._s3.list_objects_v2(
                        Bucket=self.bucket, Prefix=prefix, Delimiter="/", ContinuationToken=token
                    )
                else:
                    answer = self._s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, Delimiter="/")
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc
            found.extend(p["Prefix"] for p in answer.get("CommonPrefixes", []) if "Prefix" in p)
            token = answer.get("NextContinuationToken")
            if not answer.get("IsTruncated") or not token:
                return sorted(found)

    def keys(self, prefix: str, *, start_after: str = "", page_size: int = 1000) -> Iterator[list[str]]:
        """Keys under prefix that sort after start_after, in key order, a page (one S3 call) at a time."""
        after = start_after
        while True:
            try:
                answer = self._s3.list_objects_v2(
                    Bucket=self.bucket, Prefix=prefix, StartAfter=after, MaxKeys=page_size
                )
            except (ClientError, BotoCoreError) as exc:
                raise translate(exc) from exc
            page = [item["Key"] for item in answer.get("Contents", []) if "Key" in item]
            if page:
                yield page
                after = page[-1]
            if not answer.get("IsTruncated") or not page:
                return
