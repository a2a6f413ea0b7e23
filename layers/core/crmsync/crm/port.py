"""The CRM port: what crmsync asks of any CRM, shaped after HubSpot's batch APIs (the most constrained)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

# How a write finds its record (the mapping's `match_policy`, per object type):
#   upsert       create the record when no record holds the key, else update it (the default)
#   create_only  create it when no record holds the key; an existing record is left unchanged
#   update_only  update the record holding the key; when none does, nothing is created (reported as skipped)
MatchPolicy = Literal["upsert", "create_only", "update_only"]
MATCH_POLICIES: tuple[MatchPolicy, ...] = ("upsert", "create_only", "update_only")


@dataclass(frozen=True)
class UpsertInput:
    """One record to create or update, found by the value of a unique property (HubSpot's idProperty)."""

    id_property: str
    id_value: str
    properties: dict[str, str]


@dataclass(frozen=True)
class UpsertResult:
    """What a write did to one record. `skipped` says why nothing was written (the match policy's reason): with an id,
    the record exists and was left unchanged (create_only); without one (id ""), no record holds the key and none
    was created (update_only)."""

    id: str
    created: bool
    skipped: str = ""

    @property
    def found(self) -> bool:
        """A CRM record stands behind this result (written, or left as it was)."""
        return bool(self.id)


CREATE_ONLY_EXISTS = "create_only: a record holds this key already; left unchanged"
UPDATE_ONLY_MISSING = "update_only: no record holds this key; nothing created"


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

    def upsert(
        self, object_type: str, inputs: Sequence[UpsertInput], policy: MatchPolicy = "upsert"
    ) -> list[UpsertResult]:
        """Create or update each input as the match policy allows; results in the same order as the inputs (a record
        the policy leaves alone: UpsertResult.skipped)."""
        ...

    def associate(self, from_type: str, to_type: str, pairs: Sequence[Association]) -> None:
        """Associate records with the default association type; associating twice changes nothing."""
        ...

    def merge(self, object_type: str, primary_id: str, merged_id: str) -> None:
        """Merge one record into another (HubSpot's POST /crm/v3/objects/{type}/merge): one record remains, with
        both records' associations; merging a record that is already gone changes nothing."""
        ...

    def read(
        self, object_type: str, id_property: str, values: Sequence[str], properties: Sequence[str] = ()
    ) -> dict[str, dict[str, str]]:
        """Batched read-back (reconciliation): id property value (as given) -> the properties of the record holding
        it, as text the way the CRM holds them; values no record holds are left out. `properties` names what to read
        besides the id property (empty: what the backend reads by default). HubSpot: POST
        /crm/v3/objects/{type}/batch/read with idProperty (100 a request); Salesforce: SOQL `WHERE <field> IN (...)`
        in Composite calls (25 queries of 200 values a call); local: the table. Within the shared rate budget."""
        ...

    def delete(self, object_type: str, ids: Sequence[str]) -> list[ErasureAnswer]:
        """Erase records for good, one answer per id in order; a record already gone answers not_found, so deleting
        twice changes nothing. HubSpot contacts: POST /crm/v3/objects/contacts/gdpr-delete."""
        ...

    def anonymise(self, object_type: str, ids: Sequence[str], properties: Sequence[str]) -> list[ErasureAnswer]:
        """Clear the named properties of each record (the record stays, without its personal data), one answer per id
        in order; a record already gone answers not_found."""
        ...
