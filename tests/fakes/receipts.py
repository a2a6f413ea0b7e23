"""MemoryReceipts: crmsync.store.receipts.ReceiptStore on a dict, with the same conditions and items."""

from __future__ import annotations

import threading
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

from crmsync.store.errors import ConditionFailed
from crmsync.store.receipts import Claim, Receipt
from tests.fakes.dynamo import check_item
from tests.fakes.faults import Faults, check, check_after

if TYPE_CHECKING:
    from crmsync.store.receipts import ReceiptStore


class MemoryReceipts:
    """Same public methods and semantics as ReceiptStore; thread-safe. Pass `receipts.as_store()` where a
    ReceiptStore is expected. `faults` fails "receipts.<method>" before (or, with `after`, after) the effect.

    Items: pk, status (IN_PROGRESS | ACCEPTED), token, claim_expires (removed once accepted), expires_at (the
    TTL: claim time + retention), topic, archive_key, accepted_at. DynamoDB deletes expired items lazily (up to
    days later), so here they go only when a test calls `sweep_expired`.
    """

    def __init__(self, *, faults: Faults | None = None) -> None:
        self.faults = faults
        self.calls: Counter[str] = Counter()
        self._items: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def as_store(self) -> ReceiptStore:
        return cast("ReceiptStore", self)

    def _enter(self, op: str) -> None:
        self.calls[op] += 1
        check(self.faults, f"receipts.{op}")

    def claim(self, receipt_id: str, token: str, *, now: int, claim_seconds: int, retention_seconds: int) -> Claim:
        """Take the receipt unless it is accepted or held by a live claim (an expired claim is taken over)."""
        item = {
            "pk": receipt_id,
            "status": "IN_PROGRESS",
            "token": token,
            "claim_expires": now + claim_seconds,
            "expires_at": now + retention_seconds,
        }
        with self._lock:
            self._enter("claim")
            check_item(item, operation="PutItem", keys=("pk",))
            old = self._items.get(receipt_id)
            # attribute_not_exists(pk) OR (status = IN_PROGRESS AND claim_expires < now)
            takeover = old is not None and old.get("status") == "IN_PROGRESS" and old.get("claim_expires", now) < now
            if old is not None and not takeover:
                return Claim.IN_PROGRESS if old.get("status") == "IN_PROGRESS" else Claim.DUPLICATE
            self._items[receipt_id] = item
        check_after(self.faults, "receipts.claim")
        return Claim.CLAIMED

    def accept(self, receipt_id: str, token: str, *, topic: str, archive_key: str, now: int) -> None:
        """Mark our claim accepted: from now on every redelivery is a duplicate."""
        with self._lock:
            self._enter("accept")
            old = self._items.get(receipt_id)
            if old is None or old.get("status") != "IN_PROGRESS" or old.get("token") != token:
                raise ConditionFailed("ConditionalCheckFailedException")
            item = {**old, "status": "ACCEPTED", "topic": topic, "archive_key": archive_key, "accepted_at": now}
            item.pop("claim_expires", None)
            check_item(item, operation="UpdateItem", keys=("pk",))
            self._items[receipt_id] = item
        check_after(self.faults, "receipts.accept")

    def release(self, receipt_id: str, token: str) -> None:
        """Give the claim back so the sender's retry is processed; only our own, still in-progress claim."""
        with self._lock:
            self._enter("release")
            old = self._items.get(receipt_id)
            if old is not None and old.get("status") == "IN_PROGRESS" and old.get("token") == token:
                del self._items[receipt_id]
        check_after(self.faults, "receipts.release")

    def bind_transmission(self, key: str, body_sha256: str, *, now: int, retention_seconds: int) -> bool:
        """Bind a signed transmission to the SHA-256 of its body; False when it came with another body before."""
        item = {"pk": key, "body_sha256": body_sha256, "expires_at": now + retention_seconds}
        with self._lock:
            self._enter("bind_transmission")
            check_item(item, operation="PutItem", keys=("pk",))
            old = self._items.get(key)
            # attribute_not_exists(pk) OR body_sha256 = :h OR expires_at < :now
            if old is not None and old.get("body_sha256") != body_sha256 and not old.get("expires_at", now) < now:
                return False
            self._items[key] = item
        check_after(self.faults, "receipts.bind_transmission")
        return True

    def status(self, receipt_id: str) -> str | None:
        found = self.get(receipt_id)
        return found.status if found else None

    def get(self, receipt_id: str) -> Receipt | None:
        """The receipt as stored (None once unknown or expired)."""
        with self._lock:
            self._enter("get")
            found = self._items.get(receipt_id)
            if not found:
                return None
            return Receipt(
                receipt_id=receipt_id,
                status=str(found["status"]),
                topic=found.get("topic"),
                archive_key=found.get("archive_key"),
                accepted_at=found.get("accepted_at") or None,
            )

    # --- inspection for tests (not part of ReceiptStore) ----------------------------------------
    def item(self, receipt_id: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._items.get(receipt_id)
            return dict(found) if found is not None else None

    def statuses(self) -> dict[str, str]:
        """Receipt id -> status, for every receipt."""
        with self._lock:
            return {k: str(v["status"]) for k, v in self._items.items() if "status" in v}

    def sweep_expired(self, now: int) -> list[str]:
        """What DynamoDB's TTL sweeper does eventually: delete items whose expires_at is in the past."""
        with self._lock:
            gone = [k for k, v in self._items.items() if v.get("expires_at", now) < now]
            for key in gone:
                del self._items[key]
            return gone
