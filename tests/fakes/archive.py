"""MemoryArchive: crmsync.store.archive.RawArchive on a dict of bytes, listing in S3's key order."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, cast

from crmsync.store.archive import ArchivedObject
from crmsync.store.errors import NotFound, StoreError
from tests.fakes.faults import FakeClock, Faults, check, check_after

if TYPE_CHECKING:
    from crmsync.store.archive import RawArchive

MAX_METADATA_BYTES = 2 * 1024  # S3: user metadata, names and values, at most 2 KB
MAX_KEYS = 1000  # S3: at most 1,000 keys a listing page


class MemoryArchive:
    """Same public methods and semantics as RawArchive: put overwrites; get of a missing key raises NotFound,
    head answers None; metadata names come back lower-cased; keys() pages in key order (UTF-8 byte order,
    which is Python's str order). Pass `archive.as_store()` where a RawArchive is expected.
    `faults` fails "archive.<method>" (put, get, head, folders, keys: per page) before its effect."""

    def __init__(self, *, faults: Faults | None = None, clock: FakeClock | None = None) -> None:
        self.faults = faults
        self.clock = clock or FakeClock()
        self.calls: Counter[str] = Counter()
        self._objects: dict[str, tuple[bytes, dict[str, str], datetime]] = {}
        self._lock = threading.Lock()

    def as_store(self) -> RawArchive:
        return cast("RawArchive", self)

    def _enter(self, op: str) -> None:
        self.calls[op] += 1
        check(self.faults, f"archive.{op}")

    def put(self, key: str, body: bytes, metadata: dict[str, str]) -> None:
        with self._lock:
            self._enter("put")
            if not all(k.isascii() and v.isascii() for k, v in metadata.items()):
                raise StoreError("ParamValidationError")  # botocore refuses non-ASCII S3 metadata
            meta = {name.lower(): value for name, value in metadata.items()}
            if sum(len(k.encode()) + len(v.encode()) for k, v in meta.items()) > MAX_METADATA_BYTES:
                raise StoreError("PutObject: MetadataTooLarge")
            modified = datetime.fromtimestamp(int(self.clock()), UTC)  # S3 reports whole seconds
            self._objects[key] = (bytes(body), meta, modified)
        check_after(self.faults, "archive.put")

    def get(self, key: str) -> bytes:
        with self._lock:
            self._enter("get")
            if key not in self._objects:
                raise NotFound("NoSuchKey")
            return self._objects[key][0]

    def upload_url(self, key: str, content_type: str, expires_in: int) -> str:
        """A URL naming the key, as a presigned PUT would; `uploaded(url, body)` stands for the operator's PUT."""
        self.calls["upload_url"] += 1
        return f"https://memory-archive.invalid/{key}?content-type={content_type}&expires={expires_in}"

    def uploaded(self, url: str, body: bytes) -> None:
        """What a PUT of `body` to an upload_url() does."""
        key = url.removeprefix("https://memory-archive.invalid/").partition("?")[0]
        self.put(key, body, {})

    def delete(self, key: str) -> int:
        """Delete the object for good (the fake keeps one version per key); returns how many versions went."""
        with self._lock:
            self._enter("delete")
            found = self._objects.pop(key, None)
        check_after(self.faults, "archive.delete")
        return 1 if found is not None else 0

    def head(self, key: str) -> ArchivedObject | None:
        """The object's metadata and time, without its body; None when there is no such object."""
        with self._lock:
            self._enter("head")
            found = self._objects.get(key)
            return ArchivedObject(key, dict(found[1]), found[2], len(found[0])) if found else None

    def head_many(self, keys: Sequence[str], *, workers: int = 8) -> list[ArchivedObject | None]:
        """head() of every key, in the same order."""
        return [self.head(key) for key in keys]

    def folders(self, prefix: str) -> list[str]:
        """The next level of "folders" under prefix (e.g. raw/ -> raw/shopify/, raw/stripe/), sorted."""
        with self._lock:
            self._enter("folders")
            found = set()
            for key in self._objects:
                if key.startswith(prefix):
                    rest = key[len(prefix) :]
                    if "/" in rest:
                        found.add(prefix + rest[: rest.index("/") + 1])
            return sorted(found)

    def keys(self, prefix: str, *, start_after: str = "", page_size: int = 1000) -> Iterator[list[str]]:
        """Keys under prefix that sort after start_after, in key order, a page at a time."""
        after = start_after
        size = max(1, min(MAX_KEYS, page_size))
        while True:
            with self._lock:
                self._enter("keys")
                page = sorted(k for k in self._objects if k.startswith(prefix) and k > after)[:size]
            if not page:
                return
            yield page
            after = page[-1]

    # --- inspection for tests (not part of RawArchive) ------------------------------------------
    def all_keys(self, prefix: str = "") -> list[str]:
        with self._lock:
            return sorted(k for k in self._objects if k.startswith(prefix))

    def metadata(self, key: str) -> dict[str, str]:
        with self._lock:
            if key not in self._objects:
                raise NotFound("NoSuchKey")
            return dict(self._objects[key][1])

    def __len__(self) -> int:
        return len(self._objects)
