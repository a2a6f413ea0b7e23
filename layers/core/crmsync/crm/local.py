"""The local CRM adapter: the CRM port on the built-in DynamoDB table, readable at GET /local-crm/{type}."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from crmsync.crm.port import (
    CREATE_ONLY_EXISTS,
    UPDATE_ONLY_MISSING,
    Association,
    ErasureAnswer,
    MatchPolicy,
    UpsertInput,
    UpsertResult,
)
from crmsync.store.crm_local import LocalCrmTable
from crmsync.store.errors import ConditionFailed


@dataclass(frozen=True)
class LocalCrm:
    records: LocalCrmTable
    name: str = "local"

    def upsert(
        self, object_type: str, inputs: Sequence[UpsertInput], policy: MatchPolicy = "upsert"
    ) -> list[UpsertResult]:
        """Each input on its own (the key index is read first, as for upsert, so no policy costs more)."""
        return [self._upsert_one(object_type, item, policy) for item in inputs]

    def _upsert_one(self, object_type: str, item: UpsertInput, policy: MatchPolicy = "upsert") -> UpsertResult:
        existing = self.records.find_id(object_type, item.id_property, item.id_value)
        if existing is not None and policy == "create_only" and self.records.get(object_type, existing) is not None:
            return UpsertResult(id=existing, created=False, skipped=CREATE_ONLY_EXISTS)
        if existing is None and policy == "update_only":
            return UpsertResult(id="", created=False, skipped=UPDATE_ONLY_MISSING)
        if existing is None:
            # Key first, record second: a crash between the two leaves a key without its record, which the retry
            # completes below. (Record first would leave an unkeyed record, and the retry would make a duplicate.)
            new_id = self.records.next_id(object_type)
            winner = self.records.claim_key(object_type, item.id_property, item.id_value, new_id)
            if winner == new_id:
                try:
                    self.records.create(object_type, new_id, item.properties)
                except ConditionFailed:  # a racer found our key first and completed the record
                    self.records.update_properties(object_type, new_id, item.properties)
                return UpsertResult(id=new_id, created=True)
            existing = winner  # a concurrent writer claimed it first
            if policy == "create_only":
                return UpsertResult(id=existing, created=False, skipped=CREATE_ONLY_EXISTS)
        try:
            self.records.update_properties(object_type, existing, item.properties)
        except ConditionFailed:
            # The key's record was never written (its writer died in between): write it now, once (not on update_only:
            # no record holds the key).
            if policy == "update_only":
                return UpsertResult(id="", created=False, skipped=UPDATE_ONLY_MISSING)
            try:
                self.records.create(object_type, existing, item.properties)
            except ConditionFailed:  # a racing retry wrote it first
                self.records.update_properties(object_type, existing, item.properties)
            return UpsertResult(id=existing, created=True)
        return UpsertResult(id=existing, created=False)

    def associate(self, from_type: str, to_type: str, pairs: Sequence[Association]) -> None:
        for pair in pairs:
            # Both records must exist before either side is written, so a failed call leaves nothing one-sided.
            for object_type, record_id in ((from_type, pair.from_id), (to_type, pair.to_id)):
                if self.records.get(object_type, record_id) is None:
                    raise ConditionFailed(f"{object_type} {record_id} does not exist")
            self.records.add_association(from_type, pair.from_id, to_type, pair.to_id)
            self.records.add_association(to_type, pair.to_id, from_type, pair.from_id)

    def merge(self, object_type: str, primary_id: str, merged_id: str) -> None:
        """Fold one record into another as HubSpot's merge does: the primary keeps its values and gains the ones
        it lacks, every association and every unique key; the merged record is gone. Merging again is a no-op."""
        merged = self.records.get(object_type, merged_id)
        if merged is None or primary_id == merged_id:
            return
        primary = self.records.get(object_type, primary_id)
        if primary is None:
            raise ValueError(f"cannot merge {object_type} {merged_id} into missing {primary_id}")
        missing = {k: v for k, v in merged.properties.items() if not primary.properties.get(k)}
        self.records.update_properties(object_type, primary_id, missing)
        for to_type, ids in merged.associations.items():
            for to_id in ids:
                self.associate(object_type, to_type, [Association(primary_id, to_id)])
                self.records.remove_association(to_type, to_id, object_type, merged_id)
        for name, value in merged.properties.items():
            if self.records.find_id(object_type, name, value) == merged_id:
                self.records.point_key(object_type, name, value, primary_id)
        self.records.delete(object_type, merged_id)

    def read(
        self, object_type: str, id_property: str, values: Sequence[str], properties: Sequence[str] = ()
    ) -> dict[str, dict[str, str]]:
        """Id property value -> the record's properties (all of them), for the values a record holds
        (reconciliation)."""
        found: dict[str, dict[str, str]] = {}
        for value in dict.fromkeys(values):
            record_id = self.records.find_id(object_type, id_property, value)
            record = self.records.get(object_type, record_id) if record_id else None
            if record is not None:
                found[value] = dict(record.properties)
        return found

    def delete(self, object_type: str, ids: Sequence[str]) -> list[ErasureAnswer]:
        """Erase records: each goes with its unique keys and every association to it; a record already gone answers
        not_found."""
        return [self._delete_one(object_type, record_id) for record_id in ids]

    def _delete_one(self, object_type: str, record_id: str) -> ErasureAnswer:
        record = self.records.get(object_type, record_id)
        if record is None:
            return ErasureAnswer(record_id, "not_found", "no such record")
        for to_type, linked in record.associations.items():
            for to_id in linked:
                self.records.remove_association(to_type, to_id, object_type, record_id)
        for name, value in record.properties.items():
            self.records.delete_key(object_type, name, value, record_id)
        self.records.delete(object_type, record_id)
        return ErasureAnswer(record_id, "deleted")

    def anonymise(self, object_type: str, ids: Sequence[str], properties: Sequence[str]) -> list[ErasureAnswer]:
        """Remove the named properties (and the unique keys they held) from each record; its associations stay."""
        answers = []
        for record_id in ids:
            record = self.records.get(object_type, record_id)
            if record is None:
                answers.append(ErasureAnswer(record_id, "not_found", "no such record"))
                continue
            cleared = [name for name in properties if name in record.properties]
            for name in cleared:
                self.records.delete_key(object_type, name, record.properties[name], record_id)
            try:
                self.records.remove_properties(object_type, record_id, cleared)
            except ConditionFailed:  # deleted meanwhile
                answers.append(ErasureAnswer(record_id, "not_found", "no such record"))
                continue
            answers.append(ErasureAnswer(record_id, "anonymised", f"{len(cleared)} properties cleared"))
        return answers
