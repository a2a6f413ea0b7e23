"""The CRM port: what crmsync asks of any CRM, shaped after HubSpot's batch APIs (the most constrained)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class UpsertInput:
    """One record to create or update, found by the value of a unique property (HubSpot's idProperty)."""

    id_property: str
    id_value: str
    properties: dict[str, str]


@dataclass(frozen=True)
class UpsertResult:
    id: str
    created: bool


@dataclass(frozen=True)
class ErasureAnswer:
    """What the CRM answered for one record of an erasure (kept in the erasure's proof, so no personal data)."""

    id: str
    outcome: str  # "deleted" | "anonymised" | "not_found" (already gone: nothing left to erase)
    detail: str = ""  # the CRM's own words: status, endpoint, error code


@dataclass(frozen=True)
class Association:
    from_id: str
    to_id: str


class CrmPort(Protocol):
    @property
    def name(self) -> str:
        """The backend's name, under which CRM ids are recorded in state."""
        ...

    def upsert(self, object_type: str, inputs: Sequence[UpsertInput]) -> list[UpsertResult]:
        """Create or update each input; results in the same order as the inputs."""
        ...

    def associate(self, from_type: str, to_type: str, pairs: Sequence[Association]) -> None:
        """Associate records with the default association type; associating twice changes nothing."""
        ...

    def merge(self, object_type: str, primary_id: str, merged_id: str) -> None:
        """Merge one record into another (HubSpot's POST /crm/v3/objects/{type}/merge): one record remains, with
        both records' associations; merging a record that is already gone changes nothing."""
        ...

    def read(self, object_type: str, id_property: str, values: Sequence[str]) -> dict[str, dict[str, str]]:
        """Batched read-back (reconciliation): id property value -> the properties of the record holding it; values
        no record holds are left out. HubSpot: POST /crm/v3/objects/{type}/batch/read with idProperty."""
        ...

    def delete(self, object_type: str, ids: Sequence[str]) -> list[ErasureAnswer]:
        """Erase records for good, one answer per id in order; a record already gone answers not_found, so deleting
        twice changes nothing. HubSpot contacts: POST /crm/v3/objects/contacts/gdpr-delete."""
        ...

    def anonymise(self, object_type: str, ids: Sequence[str], properties: Sequence[str]) -> list[ErasureAnswer]:
        """Clear the named properties of each record (the record stays, without its personal data), one answer per id
        in order; a record already gone answers not_found."""
        ...
