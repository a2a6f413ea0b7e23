"""Canonical state in DynamoDB: every write guarded by its source version, so the newest always wins.

Items (pk / sk):
- ORDER#<external id> / STATE           one canonical order: version, rank, receipt_id, customer_id, data
- CUSTOMER#<id>      / SRC#<source>#<source key>   what one source says about the customer (versioned alike)
- CUSTOMER#<id>      / CRM#<backend>    the CRM ids of the customer's contact (`contact`), and the stored version
                                        the contact was last written with (`contact_version`, when known)
- ORDER#<external id> / CRM#<backend>   the CRM id of the order's deal
- PAYMENT#, REFUND#, DISPUTE#<external id> / STATE   the other canonical entities, versioned like orders
- IDENTITY#<key>     / IDENTITY         identity link (email:<email>, shopify:customer:<id>) -> customer id
- LINK#<ref>         / LINK             a payment reference (txn:<id>, order:<id or number>) -> order external id
- NOTICE#<receipt id> / NOTICE          a deletion or compliance request, recorded durably
- MERGED#<customer id> / MERGED         the customer was merged into another (survivor, reason, receipt)
- <entity pk>        / LINEAGE#<at>#<receipt id>   one conversion of the entity: version, outcome, events
- ERASED#<sha256 of an identity key> / ERASED   tombstone: that key's person was erased (crmsync.erasure)
- ERASURE#<erasure id> / ERASURE   the proof of one erasure (what was erased where, when; no personal data)
- ERASURE-PLAN#<erasure id> / PLAN   what an erasure in progress still has to erase (gone once it completes)
- DIRTY#<shard> / <entity>#<key>, FLUSH#LEASE / LEASE   records the CRM flusher has yet to write, and its lease
  (CRM_FLUSH_DELAY_SECONDS > 0; crmsync.store.dirty)
Index `by-customer` (customer_id, pk): every entity and identity link of one customer.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from crmsync.store import clients
from crmsync.store.errors import ConditionFailed, conditional, translate

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

# Newer version wins; at an equal version the state further along the lifecycle wins; the same receipt may
# write its own version again (a retried conversion must publish its events again).
VERSION_GUARD = (
    "attribute_not_exists(pk) OR version < :v OR (version = :v AND (#rank < :r OR (#rank = :r AND receipt_id = :rid)))"
)


@dataclass(frozen=True)
class Versioned:
    """What a versioned item holds besides its data."""

    version: int  # the source version as epoch milliseconds
    rank: int
    receipt_id: str


@dataclass(frozen=True)
class StoredItem:
    sk: str
    version: int
    receipt_id: str
    customer_id: str | None
    data: dict[str, Any]


VERSION_SUFFIX = "_version"  # CRM#<backend> item: <object type> holds the CRM id, <object type>_version its version


@dataclass(frozen=True)
class CrmRecords:
    """What state holds of one entity's records in one CRM (its CRM#<backend> item)."""

    ids: dict[str, str]  # object type -> CRM id
    versions: dict[str, str]  # object type -> the stored version that record was last written with, when recorded


@dataclass(frozen=True)
class StateStore:
    table: str
    client: DynamoDBClient | None = None

    @property
    def _ddb(self) -> DynamoDBClient:
        return self.client or clients.dynamodb()

    # --- versioned writes -----------------------------------------------------------------------
    def put_versioned(
        self, pk: str, sk: str, meta: Versioned, data: dict[str, Any], *, customer_id: str | None = None
    ) -> bool:
        """Write unless stored state is newer; True when written, False when the write was stale.

        An update, not a put: a version that names no customer keeps the customer the entity already has (an
        order's later webhook may leave the customer out), and lineage or other attributes are never dropped."""
        names = {"#rank": "rank", "#data": "data", "#version": "version"}
        values: dict[str, AttributeValueTypeDef] = {
            ":v": {"N": str(meta.version)},
            ":r": {"N": str(meta.rank)},
            ":rid": {"S": meta.receipt_id},
            ":data": {"S": json.dumps(data, separators=(",", ":"), sort_keys=True)},
        }
        update = "SET #version = :v, #rank = :r, receipt_id = :rid, #data = :data"
        if customer_id:
            update += ", customer_id = :cid"
            values[":cid"] = {"S": customer_id}
        return conditional(
            self._ddb.update_item,
            TableName=self.table,
            Key={"pk": {"S": pk}, "sk": {"S": sk}},
            UpdateExpression=update,
            ConditionExpression=VERSION_GUARD.replace("version", "#version"),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
        )

    def _items(self, operation: str, **kwargs: Any) -> list[dict[str, Any]]:
        """Every item of a query or scan, page after page."""
        items: list[dict[str, Any]] = []
        kwargs["TableName"] = self.table
        try:
            while True:
                page = getattr(self._ddb, operation)(**kwargs)
                items.extend(page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    return items
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    # --- reads ----------------------------------------------------------------------------------
    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        try:
            answer = self._ddb.get_item(
                TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}, ConsistentRead=True
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return answer.get("Item")

    def get_order(self, external_id: str) -> StoredItem | None:
        return self.get_entity("ORDER", external_id)

    def get_entity(self, kind: str, external_id: str) -> StoredItem | None:
        item = self._get(f"{kind}#{external_id}", "STATE")
        return _stored(item) if item else None

    def customer_entities(self, customer_id: str) -> list[tuple[str, StoredItem]]:
        """(kind, item) of every order, payment, refund and dispute linked to the customer."""
        items = self._items(
            "query",
            IndexName="by-customer",
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": customer_id}},
        )
        return [(i["pk"]["S"].split("#", 1)[0], _stored(i)) for i in items if i["sk"]["S"] == "STATE"]

    # --- payment links and notices --------------------------------------------------------------
    def put_links(self, refs: list[str], target: str) -> None:
        """Remember that each reference names the target (an order's external id); the last writer wins."""
        for ref in refs:
            self._put({"pk": {"S": f"LINK#{ref}"}, "sk": {"S": "LINK"}, "target": {"S": target}})

    def find_link(self, refs: list[str]) -> str | None:
        for ref in refs:
            item = self._get(f"LINK#{ref}", "LINK")
            if item:
                return str(item["target"]["S"])
        return None

    def record_notice(self, receipt_id: str, detail_type: str, key: str, data: dict[str, Any]) -> None:
        self._put(
            {
                "pk": {"S": f"NOTICE#{receipt_id}"},
                "sk": {"S": "NOTICE"},
                "detail_type": {"S": detail_type},
                "key": {"S": key},
                "data": {"S": json.dumps(data, separators=(",", ":"), sort_keys=True)},
            }
        )

    def _put(self, item: dict[str, AttributeValueTypeDef]) -> None:
        try:
            self._ddb.put_item(TableName=self.table, Item=item)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def customer_items(self, customer_id: str) -> list[StoredItem]:
        """Every source's view of one customer (SRC# items)."""
        items = self._items(
            "query",
            KeyConditionExpression="pk = :pk AND begins_with(sk, :src)",
            ExpressionAttributeValues={":pk": {"S": f"CUSTOMER#{customer_id}"}, ":src": {"S": "SRC#"}},
            ConsistentRead=True,
        )
        return [_stored(i) for i in items]

    # --- identity links -------------------------------------------------------------------------
    def lookup_identity(self, key: str) -> str | None:
        item = self._get(f"IDENTITY#{key}", "IDENTITY")
        return str(item["customer_id"]["S"]) if item else None

    def identity_reason(self, key: str) -> str | None:
        item = self._get(f"IDENTITY#{key}", "IDENTITY")
        return str(item["reason"]["S"]) if item and "reason" in item else None

    def link_identity(self, key: str, customer_id: str, reason: str) -> str:
        """Link key -> customer id unless already linked; returns the customer id the key ends up with."""
        item: dict[str, AttributeValueTypeDef] = {
            "pk": {"S": f"IDENTITY#{key}"},
            "sk": {"S": "IDENTITY"},
            "customer_id": {"S": customer_id},
            "reason": {"S": reason},
        }
        if self._put_first(item):
            return customer_id
        return self.lookup_identity(key) or customer_id

    def _put_first(self, item: dict[str, AttributeValueTypeDef]) -> bool:
        """Write the item unless one with its key exists (first writer wins); False when it did."""
        return conditional(
            self._ddb.put_item, TableName=self.table, Item=item, ConditionExpression="attribute_not_exists(pk)"
        )

    # --- merges ---------------------------------------------------------------------------------
    def mark_merged(self, loser: str, survivor: str, reason: str, receipt_id: str, at: str) -> str:
        """Record that `loser` is merged into `survivor` unless it already is; returns the survivor on record."""
        item: dict[str, AttributeValueTypeDef] = {
            "pk": {"S": f"MERGED#{loser}"},
            "sk": {"S": "MERGED"},
            "survivor": {"S": survivor},
            "reason": {"S": reason},
            "receipt_id": {"S": receipt_id},
            "at": {"S": at},
        }
        if self._put_first(item):
            return survivor
        return self.merged_into(loser) or survivor

    def merged_into(self, customer_id: str) -> str | None:
        """The customer this one was merged into (one step), if it was."""
        item = self._get(f"MERGED#{customer_id}", "MERGED")
        return str(item["survivor"]["S"]) if item else None

    def merge_record(self, customer_id: str) -> dict[str, str] | None:
        item = self._get(f"MERGED#{customer_id}", "MERGED")
        return {k: v["S"] for k, v in item.items() if k not in ("pk", "sk") and "S" in v} if item else None

    def customer_index(self, customer_id: str) -> list[tuple[str, str]]:
        """(pk, sk) of every item the by-customer index holds for the customer: entities and identity links."""
        items = self._items(
            "query",
            IndexName="by-customer",
            KeyConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": customer_id}},
            ProjectionExpression="pk, sk",
        )
        return [(i["pk"]["S"], i["sk"]["S"]) for i in items]

    def reassign(self, pk: str, sk: str, loser: str, survivor: str) -> None:
        """Point an entity or identity link of `loser` at `survivor`; a no-op if it already moved or is gone."""
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": pk}, "sk": {"S": sk}},
                UpdateExpression="SET customer_id = :s",
                ConditionExpression="customer_id = :l",
                ExpressionAttributeValues={":s": {"S": survivor}, ":l": {"S": loser}},
            )
        except ClientError as exc:
            error = translate(exc)
            if not isinstance(error, ConditionFailed):
                raise error from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc

    def move_source(self, loser: str, survivor: str, item: StoredItem, rank: int = 0) -> None:
        """Move one source's view of the customer to the survivor (version-guarded there), then delete it."""
        self.put_versioned(f"CUSTOMER#{survivor}", item.sk, Versioned(item.version, rank, item.receipt_id), item.data)
        try:
            self._ddb.delete_item(TableName=self.table, Key={"pk": {"S": f"CUSTOMER#{loser}"}, "sk": {"S": item.sk}})
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def forget_crm_ids(self, pk: str, backend: str) -> None:
        try:
            self._ddb.delete_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": f"CRM#{backend}"}})
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    # --- lineage --------------------------------------------------------------------------------
    def record_lineage(self, pk: str, at: str, receipt_id: str, entry: dict[str, Any]) -> None:
        """One step of an entity's history (a conversion, a CRM write); written once per receipt and step."""
        self._put(
            {
                "pk": {"S": pk},
                "sk": {"S": f"LINEAGE#{at}#{receipt_id}#{entry.get('step', '')}"},
                "data": {"S": json.dumps(entry, separators=(",", ":"), sort_keys=True)},
            }
        )

    def lineage(self, pk: str) -> list[dict[str, Any]]:
        """The entity's history, oldest first."""
        items = self._items(
            "query",
            KeyConditionExpression="pk = :pk AND begins_with(sk, :l)",
            ExpressionAttributeValues={":pk": {"S": pk}, ":l": {"S": "LINEAGE#"}},
            ConsistentRead=True,
        )
        return [json.loads(i["data"]["S"]) for i in items]

    # --- CRM ids --------------------------------------------------------------------------------
    def record_crm_id(self, pk: str, backend: str, object_type: str, crm_id: str, version: str | None = None) -> None:
        """Record the CRM id of the entity's record of that type and, with `version`, the stored version that record
        now shows (crmsync.writer: what it was last written with). One update sets both, and an id recorded without a
        version removes the one recorded before, so a version never outlives the id it was written under."""
        names = {"#t": object_type, "#v": f"{object_type}{VERSION_SUFFIX}"}
        values: dict[str, AttributeValueTypeDef] = {":id": {"S": crm_id}}
        update = "SET #t = :id REMOVE #v"
        if version is not None:
            update = "SET #t = :id, #v = :v"
            values[":v"] = {"S": version}
        try:
            self._ddb.update_item(
                TableName=self.table,
                Key={"pk": {"S": pk}, "sk": {"S": f"CRM#{backend}"}},
                UpdateExpression=update,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def crm_records(self, pk: str, backend: str) -> CrmRecords:
        """The entity's CRM ids in that backend, with the versions recorded beside them (one read)."""
        item = self._get(pk, f"CRM#{backend}") or {}
        return _crm_records({k: v["S"] for k, v in item.items() if k not in ("pk", "sk") and "S" in v})

    def crm_ids(self, pk: str, backend: str) -> dict[str, str]:
        """Object type -> CRM id of the entity's records in that backend."""
        return self.crm_records(pk, backend).ids

    # --- erasure (crmsync.erasure) ------------------------------------------------------------------
    def erased(self, key_hashes: Sequence[str]) -> set[str]:
        """The hashes among these that carry a tombstone: identity keys of people who were erased."""
        wanted = list(dict.fromkeys(key_hashes))
        found: set[str] = set()
        for start in range(0, len(wanted), 100):
            keys: list[dict[str, AttributeValueTypeDef]] = [
                {"pk": {"S": f"ERASED#{h}"}, "sk": {"S": "ERASED"}} for h in wanted[start : start + 100]
            ]
            while keys:
                try:
                    answer = self._ddb.batch_get_item(
                        RequestItems={self.table: {"Keys": keys, "ConsistentRead": True, "ProjectionExpression": "pk"}}
                    )
                except (ClientError, BotoCoreError) as exc:
                    raise translate(exc) from exc
                found.update(
                    i["pk"]["S"].removeprefix("ERASED#") for i in answer.get("Responses", {}).get(self.table, [])
                )
                unprocessed = answer.get("UnprocessedKeys", {}).get(self.table)
                keys = list(unprocessed["Keys"]) if unprocessed else []
        return found

    def put_tombstone(self, key_hash: str, erasure_id: str, at: str) -> None:
        """Mark an identity key (by its hash) as erased; the first erasure that named it stays on record."""
        try:
            self._ddb.put_item(
                TableName=self.table,
                Item={
                    "pk": {"S": f"ERASED#{key_hash}"},
                    "sk": {"S": "ERASED"},
                    "erasure_id": {"S": erasure_id},
                    "at": {"S": at},
                },
                ConditionExpression="attribute_not_exists(pk)",
            )
        except ClientError as exc:
            error = translate(exc)
            if not isinstance(error, ConditionFailed):
                raise error from exc
        except BotoCoreError as exc:
            raise translate(exc) from exc

    def delete_partition(self, pk: str) -> int:
        """Delete every item under pk (a customer's source views, CRM ids and lineage; a plan); returns how many."""
        keys: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
            "ProjectionExpression": "pk, sk",
            "ConsistentRead": True,
        }
        try:
            while True:
                page = self._ddb.query(**kwargs)
                keys.extend({"pk": i["pk"], "sk": i["sk"]} for i in page.get("Items", []))
                if "LastEvaluatedKey" not in page:
                    break
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
            for key in keys:
                self._ddb.delete_item(TableName=self.table, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc
        return len(keys)

    def forget_identity(self, key: str, customer_id: str) -> bool:
        """Delete the identity link key -> customer_id; False (and nothing deleted) when it names someone else."""
        return conditional(
            self._ddb.delete_item,
            TableName=self.table,
            Key={"pk": {"S": f"IDENTITY#{key}"}, "sk": {"S": "IDENTITY"}},
            ConditionExpression="customer_id = :c",
            ExpressionAttributeValues={":c": {"S": customer_id}},
        )

    def anonymise_entity(self, pk: str, data: dict[str, Any]) -> bool:
        """Replace a stored entity's data (its personal fields cleared) and unlink it from its customer, keeping its
        version (newer webhooks still win); False when there is no such entity."""
        return conditional(
            self._ddb.update_item,
            TableName=self.table,
            Key={"pk": {"S": pk}, "sk": {"S": "STATE"}},
            UpdateExpression="SET #data = :data REMOVE customer_id",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#data": "data"},
            ExpressionAttributeValues={":data": {"S": json.dumps(data, separators=(",", ":"), sort_keys=True)}},
        )

    def scrub_lineage(self, pk: str, fields: Sequence[str], mark: dict[str, Any]) -> int:
        """Drop the named fields from every lineage entry of pk and add `mark` to each; returns the entries changed."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :l)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":l": {"S": "LINEAGE#"}},
            "ConsistentRead": True,
        }
        changed = 0
        try:
            while True:
                page = self._ddb.query(**kwargs)
                for item in page.get("Items", []):
                    entry = json.loads(item["data"]["S"])
                    scrubbed = {k: v for k, v in entry.items() if k not in fields} | mark
                    if scrubbed != entry:
                        self._put({**item, "data": {"S": json.dumps(scrubbed, separators=(",", ":"), sort_keys=True)}})
                        changed += 1
                if "LastEvaluatedKey" not in page:
                    return changed
                kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        except (ClientError, BotoCoreError) as exc:
            raise translate(exc) from exc

    def customers_with_source(self, source: str) -> list[str]:
        """Ids of the customers one source has a view of (a scan: for shop/redact, which erases a whole shop)."""
        items = self._items(
            "scan",
            FilterExpression="begins_with(pk, :c) AND begins_with(sk, :s)",
            ExpressionAttributeValues={":c": {"S": "CUSTOMER#"}, ":s": {"S": f"SRC#{source}#"}},
            ProjectionExpression="pk",
        )
        return sorted({i["pk"]["S"].removeprefix("CUSTOMER#") for i in items})

    def record_erasure(self, erasure_id: str, part: str, document: dict[str, Any]) -> None:
        """Write one part of an erasure's record: "ERASURE" (the proof) or "PLAN" (what is left to erase)."""
        pk = f"ERASURE#{erasure_id}" if part == "ERASURE" else f"ERASURE-{part}#{erasure_id}"
        self._put(
            {
                "pk": {"S": pk},
                "sk": {"S": part},
                "data": {"S": json.dumps(document, separators=(",", ":"), sort_keys=True)},
            }
        )

    def erasure_record(self, erasure_id: str, part: str = "ERASURE") -> dict[str, Any] | None:
        pk = f"ERASURE#{erasure_id}" if part == "ERASURE" else f"ERASURE-{part}#{erasure_id}"
        item = self._get(pk, part)
        return dict(json.loads(item["data"]["S"])) if item else None


def _crm_records(attributes: dict[str, str]) -> CrmRecords:
    """A CRM#<backend> item's text attributes, split into ids and versions."""
    ids = {k: v for k, v in attributes.items() if not k.endswith(VERSION_SUFFIX)}
    versions = {k.removesuffix(VERSION_SUFFIX): v for k, v in attributes.items() if k.endswith(VERSION_SUFFIX)}
    return CrmRecords(ids, versions)


def _stored(item: dict[str, Any]) -> StoredItem:
    return StoredItem(
        sk=item["sk"]["S"],
        version=int(item["version"]["N"]),
        receipt_id=item["receipt_id"]["S"],
        customer_id=item.get("customer_id", {}).get("S"),
        data=json.loads(item["data"]["S"]),
    )
