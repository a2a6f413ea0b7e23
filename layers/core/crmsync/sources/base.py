"""What every source module gives the pipeline: signature errors, and the result of converting one webhook."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from crmsync.messages import DetailType
from crmsync.models import Customer, Dispute, Order, Payment, Refund

Entity = Order | Payment | Refund | Dispute


class SignatureError(Exception):
    """The webhook is not provably from its source. Messages never include a secret."""


class UnsupportedTopic(ValueError):
    """A topic no converter handles (ingest should not have accepted it)."""


@dataclass(frozen=True)
class Notice:
    """A fact with no entity state of its own: a deletion or a compliance request, recorded and published."""

    detail_type: DetailType
    key: str  # what it is about, e.g. "shopify:customer:123" or "shopify:shop:demo.myshopify.com"
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Converted:
    """Everything one webhook says, in canonical form, with the domain event each entity change means."""

    customer: Customer | None = None
    entities: tuple[tuple[DetailType, Entity], ...] = ()
    notices: tuple[Notice, ...] = ()


class WebhookSource(Protocol):
    """What ingest needs to know of a source: how it signs, names topics and identifies deliveries.

    `payload` is the parsed JSON body (ingest has already answered 400 to a body that is not JSON)."""

    @property
    def name(self) -> str: ...
    @property
    def secret_setting(self) -> str:
        """Which Settings field holds the id of this source's secret."""
        ...

    @property
    def handled_topics(self) -> frozenset[str]: ...

    def is_ping(self, body: bytes, headers: Mapping[str, str]) -> bool:
        """An unsigned hello the source sends when a webhook is created (answered 200, never processed)."""
        ...

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None: ...
    def topic(self, headers: Mapping[str, str], payload: Any) -> str | None: ...
    def account(self, headers: Mapping[str, str], payload: Any) -> str | None: ...
    def receipt_id(self, headers: Mapping[str, str], payload: Any, body: bytes) -> str: ...
    def convert(self, topic: str, body: bytes, *, receipt_id: str) -> Converted: ...
