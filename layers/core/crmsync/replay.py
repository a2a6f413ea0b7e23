"""Replay from the raw archive through the normal path: archived webhooks are put back on the ingest queue as the
IngestMessage ingest made for them, so convert handles them exactly like a first delivery. Conversion is idempotent
and version-guarded (crmsync.convert), so a replay can never duplicate a record nor put older data over newer.

Two ways to choose what to replay:
- a time window [from, to) of receipt times (UTC). The archive's keys are raw/<source>/<YYYY>/<MM>/<DD>/<digest>,
  so only the days of the window are listed, in key order, source after source; each object's own receipt time
  (metadata received-at, else the object's time) decides whether it is in. A call enqueues at most `limit`
  receipts and stops early when its time budget runs out; it then answers a continuation token (the last key it
  looked at, and the window) that the next call resumes after, until there is no token.
- a list of receipt ids (at most MAX_RECEIPT_IDS a call): each id's archive key is read from its receipt, so only
  receipts within the receipt retention (ReceiptRetentionDays, at least 30 days) can be found that way; older
  ones are answered as not_found (replay their window instead).
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Protocol, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from crmsync import jsontext
from crmsync.deadline import Deadline
from crmsync.messages import IngestMessage
from crmsync.observability import logger
from crmsync.store.archive import ArchivedObject
from crmsync.store.errors import StoreError
from crmsync.store.queue import OutgoingMessage
from crmsync.store.receipts import Receipt

ROOT = "raw/"
DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_RECEIPT_IDS = 100
HEAD_CHUNK = 50  # archive objects looked at (in parallel) between two checks of the limit and the deadline
TOKEN_VERSION = 1

ReceiptId = Annotated[str, StringConstraints(min_length=1, max_length=512)]


class BadReplay(ValueError):
    """The replay request cannot be carried out as asked; the message says why (no personal data)."""


class Archive(Protocol):
    def folders(self, prefix: str) -> list[str]: ...
    def keys(self, prefix: str, *, start_after: str = "", page_size: int = 1000) -> Iterator[list[str]]: ...
    def head_many(self, keys: Sequence[str], *, workers: int = 8) -> list[ArchivedObject | None]: ...


class Receipts(Protocol):
    def get(self, receipt_id: str) -> Receipt | None: ...


class IngestQueue(Protocol):
    def send_batch(self, messages: Sequence[OutgoingMessage]) -> tuple[list[str], dict[str, str]]: ...


def _new_job_id() -> str:
    return f"rpl_{uuid.uuid4().hex[:20]}"


@dataclass(frozen=True)
class ReplayDeps:
    archive: Archive
    receipts: Receipts
    queue: IngestQueue
    new_job_id: Callable[[], str] = field(default=_new_job_id)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class ReplayRequest(BaseModel):
    """POST /sync/replay: {"from", "to"} (or "since", "until") or {"receipt_ids"}; limit and continuation_token for
    windows. Times are ISO 8601; without an offset they are UTC."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    start: datetime | None = Field(default=None, validation_alias=AliasChoices("from", "since"))
    end: datetime | None = Field(default=None, validation_alias=AliasChoices("to", "until"))
    receipt_ids: list[ReceiptId] | None = Field(default=None, max_length=MAX_RECEIPT_IDS)
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    continuation_token: str | None = Field(default=None, min_length=1, max_length=4096)

    @model_validator(mode="after")
    def _one_way(self) -> Self:
        window = self.start is not None or self.end is not None
        if self.receipt_ids is not None:
            if window:
                raise ValueError("give either from/to or receipt_ids, not both")
            if not self.receipt_ids:
                raise ValueError("receipt_ids is empty")
            if self.continuation_token:
                raise ValueError("continuation_token goes with a window, not with receipt_ids")
            return self
        if not window and not self.continuation_token:
            raise ValueError("give from and to (a window of receipt times), or receipt_ids")
        if window and (self.start is None or self.end is None):
            raise ValueError("a window needs both from and to")
        if self.start is not None and self.end is not None and _utc(self.start) >= _utc(self.end):
            raise ValueError("from must be before to")
        return self


@dataclass(frozen=True)
class Window:
    start: datetime  # inclusive, UTC
    end: datetime  # exclusive, UTC

    def __contains__(self, moment: datetime) -> bool:
        return self.start <= _utc(moment) < self.end

    def key_range(self, source_prefix: str) -> tuple[str, str]:
        """(start after, last key) of the window's days under raw/<source>/."""
        last_day = self.end - timedelta(microseconds=1)
        return f"{source_prefix}{self.start:%Y/%m/%d}/", f"{source_prefix}{last_day:%Y/%m/%d}/~"


@dataclass(frozen=True)
class Token:
    job_id: str
    after: str  # the last archive key looked at
    window: Window

    def encode(self) -> str:
        document = {
            "v": TOKEN_VERSION,
            "job": self.job_id,
            "after": self.after,
            "from": self.window.start.isoformat(),
            "to": self.window.end.isoformat(),
        }
        return base64.urlsafe_b64encode(json.dumps(document, separators=(",", ":")).encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Token:
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
            document = jsontext.loads(raw)
            if not isinstance(document, dict) or document.get("v") != TOKEN_VERSION:
                raise ValueError("unknown token version")
            window = Window(
                _utc(datetime.fromisoformat(document["from"])), _utc(datetime.fromisoformat(document["to"]))
            )
            job_id, after = document["job"], document["after"]
            if not isinstance(job_id, str) or not isinstance(after, str) or (after and not after.startswith(ROOT)):
                raise ValueError("bad token fields")
        except (ValueError, KeyError, TypeError, binascii.Error) as exc:
            raise BadReplay("continuation_token is not one this API gave out") from exc
        return cls(job_id, after, window)


@dataclass(frozen=True)
class ReplayResult:
    job_id: str
    enqueued: list[str]  # receipt ids, in the order they were enqueued
    skipped: int = 0  # archived objects in range that could not be replayed (no receipt id or topic recorded)
    not_found: list[str] = field(default_factory=list)
    next_token: str | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "enqueued": len(self.enqueued),
            "receipt_ids": self.enqueued,
            "skipped": self.skipped,
            "not_found": self.not_found,
            "next_token": self.next_token,
            "done": self.next_token is None,
        }


def replay(request: ReplayRequest, deps: ReplayDeps, *, deadline: Deadline | None = None) -> ReplayResult:
    deadline = deadline or Deadline.never()
    if request.receipt_ids is not None:
        return replay_receipts(request.receipt_ids, deps)
    token = Token.decode(request.continuation_token) if request.continuation_token else None
    if request.start is not None and request.end is not None:
        window = Window(_utc(request.start), _utc(request.end))
        if token is not None and token.window != window:
            raise BadReplay("continuation_token belongs to another window")
    elif token is not None:
        window = token.window
    else:  # the request model rules this out
        raise BadReplay("give from and to, or receipt_ids")
    return replay_window(window, deps, limit=request.limit, token=token, deadline=deadline)


def ingest_message(
    source: str, found: ArchivedObject, job_id: str, *, receipt: Receipt | None = None
) -> IngestMessage | None:
    """The queue message ingest made for this archived webhook, rebuilt from its metadata (and its receipt)."""
    meta = found.metadata
    receipt_id = meta.get("receipt-id") or (receipt.receipt_id if receipt else None)
    topic = meta.get("topic") or (receipt.topic if receipt else None)
    if not receipt_id or not topic:
        return None
    return IngestMessage(
        receipt_id=receipt_id,
        source=source,
        topic=topic,
        archive_key=found.key,
        received_at=received_at(found, receipt),
        correlation_id=f"replay:{job_id}",
        account=meta.get("account"),
    )


def received_at(found: ArchivedObject, receipt: Receipt | None = None) -> datetime:
    """When the webhook was received: as ingest recorded it, else when it was accepted, else the object's time."""
    text = found.metadata.get("received-at")
    if text:
        try:
            return _utc(datetime.fromisoformat(text))
        except ValueError:
            pass
    if receipt is not None and receipt.accepted_at is not None:
        return datetime.fromtimestamp(receipt.accepted_at, UTC)
    return _utc(found.last_modified)


def source_of(key: str) -> str | None:
    parts = key.split("/")
    return parts[1] if len(parts) > 2 and key.startswith(ROOT) and parts[1] else None


def _enqueue(deps: ReplayDeps, messages: list[IngestMessage]) -> list[str]:
    if not messages:
        return []
    sent, refused = deps.queue.send_batch(
        [OutgoingMessage(str(i), m.model_dump_json()) for i, m in enumerate(messages)]
    )
    if refused:
        raise StoreError(f"the ingest queue refused {len(refused)} replayed messages")
    return [messages[int(i)].receipt_id for i in sorted(sent, key=int)]


def replay_window(
    window: Window, deps: ReplayDeps, *, limit: int, token: Token | None = None, deadline: Deadline | None = None
) -> ReplayResult:
    """Enqueue up to limit archived webhooks received within the window, after the token's key if any."""
    deadline = deadline or Deadline.never()
    job_id = token.job_id if token else deps.new_job_id()
    after = token.after if token else ""
    enqueued: list[str] = []
    skipped = 0
    looked = False  # every call looks at one chunk at least, however little time it is given
    for source_prefix in deps.archive.folders(ROOT):
        source = source_of(source_prefix)
        first, last = window.key_range(source_prefix)
        if source is None or after >= last:
            continue
        for page in deps.archive.keys(source_prefix, start_after=max(first, after)):
            in_range = [key for key in page if key <= last]
            position = 0
            while position < len(in_range):
                if len(enqueued) >= limit or (looked and deadline.passed()):
                    return _page(job_id, enqueued, skipped, Token(job_id, after, window))
                looked = True
                room = limit - len(enqueued)
                chunk = in_range[position : position + min(HEAD_CHUNK, max(room, 10))]
                messages: list[IngestMessage] = []
                for key, found in zip(chunk, deps.archive.head_many(chunk), strict=True):
                    if len(messages) >= room:
                        break
                    after, position = key, position + 1
                    if found is None or received_at(found) not in window:
                        continue  # gone since the listing, or received outside the window
                    message = ingest_message(source, found, job_id)
                    if message is None:
                        skipped += 1
                        logger.warning("archived object without receipt id or topic", key=key)
                        continue
                    messages.append(message)
                enqueued.extend(_enqueue(deps, messages))
            if len(in_range) < len(page):
                break  # past the window's last day for this source
    return _page(job_id, enqueued, skipped, None)


def _page(job_id: str, enqueued: list[str], skipped: int, token: Token | None) -> ReplayResult:
    logger.info("replay page", job_id=job_id, enqueued=len(enqueued), skipped=skipped, more=token is not None)
    return ReplayResult(job_id, enqueued, skipped, [], token.encode() if token else None)


def replay_receipts(receipt_ids: Sequence[str], deps: ReplayDeps) -> ReplayResult:
    job_id = deps.new_job_id()
    wanted = list(dict.fromkeys(receipt_ids))  # each once, in the order given
    not_found: list[str] = []
    located: list[tuple[str, Receipt]] = []
    for receipt_id in wanted:
        receipt = deps.receipts.get(receipt_id)
        if receipt is None or receipt.status != "ACCEPTED" or not receipt.archive_key:
            not_found.append(receipt_id)
        else:
            located.append((receipt.archive_key, receipt))
    messages: list[IngestMessage] = []
    skipped = 0
    heads = deps.archive.head_many([key for key, _ in located])
    for (key, receipt), found in zip(located, heads, strict=True):
        source = source_of(key)
        if found is None or source is None:
            not_found.append(receipt.receipt_id)
            continue
        message = ingest_message(source, found, job_id, receipt=receipt)
        if message is None:
            skipped += 1
            continue
        messages.append(message)
    enqueued = _enqueue(deps, messages)
    logger.info("replay of receipts", job_id=job_id, enqueued=len(enqueued), not_found=len(not_found))
    return ReplayResult(job_id, enqueued, skipped, not_found, None)
