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
