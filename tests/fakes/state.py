"""MemoryState: crmsync.store.state.StateStore on dicts, with the same items, guard and answers.

Items are kept as the real table keeps them (attribute name -> value, `data` as the same JSON text), so what a
caller reads is always a fresh copy and the contract tests can compare raw items with the real table's.
"""

from __future__ import annotations

import json
import threading
from collections import Counter, deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, cast

from crmsync.store.state import VERSION_SUFFIX, CrmRecords, StoredItem, Versioned
from tests.fakes.dynamo import check_item, validation_error
from tests.fakes.faults import Faults, check, check_after

if TYPE_CHECKING:
    from crmsync.store.state import StateStore

KEYS = ("pk", "sk", "customer_id")  # table key and the by-customer index key: never an empty string


def _dumps(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"), sort_keys=True)  # exactly as StateStore stores it


def version_guard_allows(old: dict[str, Any] | None, meta: Versioned) -> bool:
    """state.VERSION_GUARD evaluated on a stored item; a missing attribute makes its comparison false."""
    if old is None:
        return True
    version, rank = old.get("version"), old.get("rank")
    if version is None:
        return False
    if version < meta.version:
        return True
    if version != meta.version or rank is None:
        return False
    return bool(rank < meta.rank or (rank == meta.rank and old.get("receipt_id") == meta.receipt_id))


def _stored(item: dict[str, Any]) -> StoredItem:
    return StoredItem(
        sk=item["sk"],
        version=int(item["version"]),
        receipt_id=item["receipt_id"],
        customer_id=item.get("customer_id"),
        data=json.loads(item["data"]),
    )


class MemoryState:
    """Same public methods and semantics as StateStore; thread-safe. Pass `state.as_store()` where a
    StateStore is expected. `faults` fails operations "state.<method>" before their effect.

    Every read is strongly consistent, as StateStore's reads are (ConsistentRead), except customer_entities:
    it queries the by-customer GSI, which DynamoDB updates asynchronously. `index_lag=n` makes the fake's index
    show each write only after n later writes (0, the default, is always up to date, as moto is);
    `settle_index()` catches it up.
    """

    def __init__(self, *, faults: Faults | None = None, index_lag: int = 0) -> None:
        self.faults = faults
        self.index_lag = index_lag
        self.calls: Counter[str] = Counter()  # method name -> calls (reads included)
        self._items: dict[str, dict[str, dict[str, Any]]] = {}  # pk -> sk -> item
        # The by-customer index as a reader sees it: customer id -> (pk, sk) -> projected item (ALL).
        self._index: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self._index_backlog: deque[tuple[dict[str, Any] | None, dict[str, Any] | None]] = deque()  # (old, new)
        self._lock = threading.RLock()

    def as_store(self) -> StateStore:
        return cast("StateStore", self)

    # --- storage primitives (one DynamoDB item operation each, atomically) --------------------------
    @contextmanager
    def _op(self, op: str) -> Iterator[None]:
        """One table operation: atomic under the lock, failed before its effect or, once done, after it."""
        with self._lock:
            self.calls[op] += 1
            check(self.faults, f"state.{op}")
            yield
        check_after(self.faults, f"state.{op}")

    def _load(self, pk: str, sk: str) -> dict[str, Any] | None:
        return self._items.get(pk, {}).get(sk)

    def _store(self, item: dict[str, Any]) -> None:
        old = self._load(item["pk"], item["sk"])
        self._items.setdefault(item["pk"], {})[item["sk"]] = item
        self._index_change(old, item)

    def _delete(self, pk: str, sk: str) -> None:
        old = self._items.get(pk, {}).pop(sk, None)
        if pk in self._items and not self._items[pk]:
            del self._items[pk]
        self._index_change(old, None)

    def _index_change(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if (old and old.get("customer_id")) or (new and new.get("customer_id")):
            self._index_backlog.append((old, new))
            while len(self._index_backlog) > self.index_lag:
                self._index_apply(*self._index_backlog.popleft())

    def _index_apply(self, old: dict[str, Any] | None, new: dict[str, Any] | None) -> None:
        if old and old.get("customer_id"):
            self._index.get(old["customer_id"], {}).pop((old["pk"], old["sk"]), None)
        if new and new.get("customer_id"):
            self._index.setdefault(new["customer_id"], {})[(new["pk"], new["sk"])] = new

    def _indexed(self, customer_id: str) -> list[dict[str, Any]]:
        """What a query of the by-customer index answers (range key pk), as of the index's lag."""
        indexed = self._index.get(customer_id, {})
        return [indexed[key] for key in sorted(indexed)]

    def settle_index(self) -> None:
        """Apply every pending by-customer index update (what DynamoDB does within about a second)."""
        with self._lock:
            while self._index_backlog:
                self._index_apply(*self._index_backlog.popleft())

    # --- versioned writes -----------------------------------------------------------------------
    def put_versioned(
        self, pk: str, sk: str, meta: Versioned, data: dict[str, Any], *, customer_id: str | None = None
    ) -> bool:
        """Write unless stored state is newer; True when written, False when the write was stale."""
        item: dict[str, Any] = {
            "pk": pk,
            "sk": sk,
            "version": meta.version,
            "rank": meta.rank,
            "receipt_id": meta.receipt_id,
            "data": _dumps(data),
        }
        with self._op("put_versioned"):
            stored = self._load(pk, sk)
            if not version_guard_allows(stored, meta):
                return False
            # An update, as the real store: attributes it does not set (customer_id, when none is given) stay.
            item = {**(stored or {}), **item}
            if customer_id:
                item["customer_id"] = customer_id
            check_item(item, operation="UpdateItem", keys=KEYS)
            self._store(item)
            return True

    # --- reads ----------------------------------------------------------------------------------
    def get_order(self, external_id: str) -> StoredItem | None:
        return self.get_entity("ORDER", external_id)

    def get_entity(self, kind: str, external_id: str) -> StoredItem | None:
        with self._op("get_entity"):
            item = self._load(f"{kind}#{external_id}", "STATE")
            return _stored(item) if item else None

    def customer_entities(self, customer_id: str) -> list[tuple[str, StoredItem]]:
        """(kind, item) of every order, payment, refund and dispute linked to the customer."""
        with self._op("customer_entities"):
            items = self._indexed(customer_id)
            return [(item["pk"].split("#", 1)[0], _stored(item)) for item in items if item["sk"] == "STATE"]

    # --- payment links and notices --------------------------------------------------------------
    def put_links(self, refs: list[str], target: str) -> None:
        """Remember that each reference names the target (an order's external id); the last writer wins."""
        for ref in refs:  # one put per reference, as the real store: a failure leaves the earlier ones written
            with self._op("put_links"):
                self._put({"pk": f"LINK#{ref}", "sk": "LINK", "target": target})

    def find_link(self, refs: list[str]) -> str | None:
        for ref in refs:  # one get per reference, as the real store
            with self._op("find_link"):
                item = self._load(f"LINK#{ref}", "LINK")
                if item:
                    return str(item["target"])
        return None

    def record_notice(self, receipt_id: str, detail_type: str, key: str, data: dict[str, Any]) -> None:
        item = {
            "pk": f"NOTICE#{receipt_id}",
            "sk": "NOTICE",
            "detail_type": detail_type,
            "key": key,
            "data": _dumps(data),
        }
        with self._op("record_notice"):
            self._put(item)

    def _put(self, item: dict[str, Any]) -> None:
        check_item(item, operation="PutItem", keys=KEYS)
        self._store(item)

    def customer_items(self, customer_id: str) -> list[StoredItem]:
        """Every source's view of one customer (SRC# items)."""
        with self._op("customer_items"):
            by_sk = self._items.get(f"CUSTOMER#{customer_id}", {})
            return [_stored(by_sk[sk]) for sk in sorted(by_sk) if sk.startswith("SRC#")]

    # --- identity links -------------------------------------------------------------------------
    def lookup_identity(self, key: str) -> str | None:
        with self._op("lookup_identity"):
            item = self._load(f"IDENTITY#{key}", "IDENTITY")
            return str(item["customer_id"]) if item else None

    def identity_reason(self, key: str) -> str | None:
        with self._op("identity_reason"):
            item = self._load(f"IDENTITY#{key}", "IDENTITY")
            return str(item["reason"]) if item and "reason" in item else None

    def link_identity(self, key: str, customer_id: str, reason: str) -> str:
        """Link key -> customer id unless already linked; returns the customer id the key ends up with."""
        item = {"pk": f"IDENTITY#{key}", "sk": "IDENTITY", "customer_id": customer_id, "reason": reason}
        with self._op("link_identity"):
            check_item(item, operation="PutItem", keys=KEYS)
            existing = self._load(item["pk"], item["sk"])
            if existing is not None:  # attribute_not_exists(pk) failed: the first writer keeps the key
                return str(existing.get("customer_id") or customer_id)
            self._store(item)
            return customer_id

    # --- merges ---------------------------------------------------------------------------------
    def mark_merged(self, loser: str, survivor: str, reason: str, receipt_id: str, at: str) -> str:
        """Record that `loser` is merged into `survivor` unless it already is; returns the survivor on record."""
        item = {
            "pk": f"MERGED#{loser}",
            "sk": "MERGED",
            "survivor": survivor,
            "reason": reason,
            "receipt_id": receipt_id,
            "at": at,
        }
        with self._op("mark_merged"):
            check_item(item, operation="PutItem", keys=KEYS)
            existing = self._load(item["pk"], item["sk"])
            if existing is not None:  # attribute_not_exists(pk) failed: the first record stands
                return str(existing.get("survivor") or survivor)
            self._store(item)
            return survivor

    def merged_into(self, customer_id: str) -> str | None:
        """The customer this one was merged into (one step), if it was."""
        with self._op("merged_into"):
            item = self._load(f"MERGED#{customer_id}", "MERGED")
            return str(item["survivor"]) if item else None

    def merge_record(self, customer_id: str) -> dict[str, str] | None:
        with self._op("merge_record"):
            item = self._load(f"MERGED#{customer_id}", "MERGED")
            return {k: v for k, v in item.items() if k not in ("pk", "sk") and isinstance(v, str)} if item else None

    def customer_index(self, customer_id: str) -> list[tuple[str, str]]:
        """(pk, sk) of every item the by-customer index holds for the customer: entities and identity links."""
        with self._op("customer_index"):
            return [(item["pk"], item["sk"]) for item in self._indexed(customer_id)]

    def reassign(self, pk: str, sk: str, loser: str, survivor: str) -> None:
        """Point an entity or identity link of `loser` at `survivor`; a no-op if it already moved or is gone."""
        with self._op("reassign"):
            item = self._load(pk, sk)
            if item is None or item.get("customer_id") != loser:  # customer_id = :l failed
                return
            moved = {**item, "customer_id": survivor}
            check_item(moved, operation="UpdateItem", keys=KEYS)
            self._store(moved)

    def move_source(self, loser: str, survivor: str, item: StoredItem, rank: int = 0) -> None:
        """Move one source's view of the customer to the survivor (version-guarded there), then delete it.
        Two operations, as in the store: faults of "state.move_source" hit the delete, after the copy."""
        self.put_versioned(f"CUSTOMER#{survivor}", item.sk, Versioned(item.version, rank, item.receipt_id), item.data)
        with self._op("move_source"):
            self._delete(f"CUSTOMER#{loser}", item.sk)

    def forget_crm_ids(self, pk: str, backend: str) -> None:
        with self._op("forget_crm_ids"):
            self._delete(pk, f"CRM#{backend}")

    # --- lineage --------------------------------------------------------------------------------
    def record_lineage(self, pk: str, at: str, receipt_id: str, entry: dict[str, Any]) -> None:
        """One step of an entity's history (a conversion, a CRM write); written once per receipt and step."""
        item = {"pk": pk, "sk": f"LINEAGE#{at}#{receipt_id}#{entry.get('step', '')}", "data": _dumps(entry)}
        with self._op("record_lineage"):
            self._put(item)

    def lineage(self, pk: str) -> list[dict[str, Any]]:
        """The entity's history, oldest first."""
        with self._op("lineage"):
            by_sk = self._items.get(pk, {})
            return [json.loads(by_sk[sk]["data"]) for sk in sorted(by_sk) if sk.startswith("LINEAGE#")]

    # --- CRM ids --------------------------------------------------------------------------------
    def record_crm_id(self, pk: str, backend: str, object_type: str, crm_id: str, version: str | None = None) -> None:
        with self._op("record_crm_id"):
            if object_type in ("pk", "sk"):
                raise validation_error("UpdateItem")  # a key attribute cannot be SET
            item = dict(self._load(pk, f"CRM#{backend}") or {"pk": pk, "sk": f"CRM#{backend}"})
            item[object_type] = crm_id  # update_item: SET #t = :id, creating the item when missing
            if version is None:
                item.pop(f"{object_type}{VERSION_SUFFIX}", None)  # REMOVE #v
            else:
                item[f"{object_type}{VERSION_SUFFIX}"] = version  # SET #v = :v
            check_item(item, operation="UpdateItem", keys=KEYS)
            self._store(item)

    def crm_records(self, pk: str, backend: str) -> CrmRecords:
        with self._op("crm_records"):
            return self._crm_records(pk, backend)

    def crm_ids(self, pk: str, backend: str) -> dict[str, str]:
        with self._op("crm_ids"):
            return self._crm_records(pk, backend).ids

    def _crm_records(self, pk: str, backend: str) -> CrmRecords:
        item = self._load(pk, f"CRM#{backend}") or {}
        text = {k: v for k, v in item.items() if k not in ("pk", "sk") and isinstance(v, str)}
        return CrmRecords(
            ids={k: v for k, v in text.items() if not k.endswith(VERSION_SUFFIX)},
            versions={k.removesuffix(VERSION_SUFFIX): v for k, v in text.items() if k.endswith(VERSION_SUFFIX)},
        )

    # --- erasure --------------------------------------------------------------------------------
    def erased(self, key_hashes: Sequence[str]) -> set[str]:
        """The hashes among these that carry a tombstone: identity keys of people who were erased."""
        with self._op("erased"):
            return {h for h in key_hashes if self._load(f"ERASED#{h}", "ERASED") is not None}

    def put_tombstone(self, key_hash: str, erasure_id: str, at: str) -> None:
        """Mark an identity key (by its hash) as erased; the first erasure that named it stays on record."""
        item = {"pk": f"ERASED#{key_hash}", "sk": "ERASED", "erasure_id": erasure_id, "at": at}
        with self._op("put_tombstone"):
            check_item(item, operation="PutItem", keys=KEYS)
            if self._load(item["pk"], item["sk"]) is None:
                self._store(item)

    def delete_partition(self, pk: str) -> int:
        """Delete every item under pk; returns how many."""
        with self._op("delete_partition"):
            sks = sorted(self._items.get(pk, {}))
            for sk in sks:
                self._delete(pk, sk)
            return len(sks)

    def forget_identity(self, key: str, customer_id: str) -> bool:
        """Delete the identity link key -> customer_id; False (and nothing deleted) when it names someone else."""
        with self._op("forget_identity"):
            item = self._load(f"IDENTITY#{key}", "IDENTITY")
            if item is None or item.get("customer_id") != customer_id:
                return False
            self._delete(f"IDENTITY#{key}", "IDENTITY")
            return True

    def anonymise_entity(self, pk: str, data: dict[str, Any]) -> bool:
        """Replace a stored entity's data and unlink it from its customer, keeping its version."""
        with self._op("anonymise_entity"):
            stored = self._load(pk, "STATE")
            if stored is None:
                return False
            item = {k: v for k, v in stored.items() if k != "customer_id"} | {"data": _dumps(data)}
            check_item(item, operation="UpdateItem", keys=KEYS)
            self._store(item)
            return True

    def scrub_lineage(self, pk: str, fields: Sequence[str], mark: dict[str, Any]) -> int:
        """Drop the named fields from every lineage entry of pk and add `mark` to each; returns the entries changed."""
        with self._op("scrub_lineage"):
            changed = 0
            for sk, item in sorted(self._items.get(pk, {}).items()):
                if not sk.startswith("LINEAGE#"):
                    continue
                entry = json.loads(item["data"])
                scrubbed = {k: v for k, v in entry.items() if k not in fields} | mark
                if scrubbed != entry:
                    self._put({**item, "data": _dumps(scrubbed)})
                    changed += 1
            return changed

    def customers_with_source(self, source: str) -> list[str]:
        """Ids of the customers one source has a view of."""
        with self._op("customers_with_source"):
            return sorted(
                pk.removeprefix("CUSTOMER#")
                for pk, by_sk in self._items.items()
                if pk.startswith("CUSTOMER#") and any(sk.startswith(f"SRC#{source}#") for sk in by_sk)
            )

    def record_erasure(self, erasure_id: str, part: str, document: dict[str, Any]) -> None:
        """Write one part of an erasure's record: "ERASURE" (the proof) or "PLAN" (what is left to erase)."""
        pk = f"ERASURE#{erasure_id}" if part == "ERASURE" else f"ERASURE-{part}#{erasure_id}"
        with self._op("record_erasure"):
            self._put({"pk": pk, "sk": part, "data": _dumps(document)})

    def erasure_record(self, erasure_id: str, part: str = "ERASURE") -> dict[str, Any] | None:
        pk = f"ERASURE#{erasure_id}" if part == "ERASURE" else f"ERASURE-{part}#{erasure_id}"
        with self._op("erasure_record"):
            item = self._load(pk, part)
            return dict(json.loads(item["data"])) if item else None

    # --- inspection for tests (not part of StateStore) ------------------------------------------
    def item(self, pk: str, sk: str) -> dict[str, Any] | None:
        """The raw item (attribute -> value, numbers as int), a copy."""
        with self._lock:
            found = self._load(pk, sk)
            return dict(found) if found is not None else None

    def items(self, pk_prefix: str = "", sk: str | None = None) -> list[dict[str, Any]]:
        """Raw items whose pk starts with the prefix (and whose sk is `sk`, when given), ordered by (pk, sk)."""
        with self._lock:
            return [
                dict(item)
                for pk in sorted(self._items)
                if pk.startswith(pk_prefix)
                for item_sk, item in sorted(self._items[pk].items())
                if sk is None or item_sk == sk
            ]

    def entities(self, kind: str) -> dict[str, StoredItem]:
        """Every stored entity of a kind ("ORDER", "PAYMENT", ...), by external id."""
        return {i["pk"].split("#", 1)[1]: _stored(i) for i in self.items(f"{kind}#", sk="STATE")}

    def customers(self) -> dict[str, list[StoredItem]]:
        """Every customer id with its SRC# items."""
        found: dict[str, list[StoredItem]] = {}
        for item in self.items("CUSTOMER#"):
            if item["sk"].startswith("SRC#"):
                found.setdefault(item["pk"].split("#", 1)[1], []).append(_stored(item))
        return found

    def identities(self) -> dict[str, str]:
        """Identity key -> customer id."""
        return {i["pk"].split("#", 1)[1]: i["customer_id"] for i in self.items("IDENTITY#", sk="IDENTITY")}

    def merges(self) -> dict[str, str]:
        """Merged customer id -> the survivor it was merged into (one step)."""
        return {i["pk"].split("#", 1)[1]: i["survivor"] for i in self.items("MERGED#", sk="MERGED")}

    def links(self) -> dict[str, str]:
        """Payment reference -> order external id."""
        return {i["pk"].split("#", 1)[1]: i["target"] for i in self.items("LINK#", sk="LINK")}

    def notices(self) -> list[dict[str, Any]]:
        """Recorded notices: receipt_id, detail_type, key and data (decoded)."""
        return [
            {"receipt_id": i["pk"].split("#", 1)[1], "detail_type": i["detail_type"], "key": i["key"],
             "data": json.loads(i["data"])}
            for i in self.items("NOTICE#", sk="NOTICE")
        ]  # fmt: skip
