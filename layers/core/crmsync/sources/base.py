"""What every source module gives the pipeline: signature errors, and the result of converting one webhook."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import ConfigDict
from pydantic_core import CoreConfig, SchemaValidator

from crmsync.messages import DetailType
from crmsync.models import Customer, Dispute, Order, Payment, Refund

# How every source parses a webhook body: pydantic-core's string cache for keys only. Values are each delivery's own
# (ids, names, emails, amounts), so caching them costs more than it saves (WooCommerce's parse: 21 -> 19 us a body).
PARSE_CONFIG = ConfigDict(cache_strings="keys")


def json_validator(shape: Any) -> SchemaValidator:
    """The validator of a TypedDict payload shape, parsing with PARSE_CONFIG: TypeAdapter takes no config for a
    TypedDict, and a TypedDict's own config does not reach the validator's JSON parser."""
    from pydantic import TypeAdapter  # here: ingest imports the sources to verify signatures, and never parses

    return SchemaValidator(TypeAdapter(shape).core_schema, CoreConfig(cache_strings=PARSE_CONFIG["cache_strings"]))


Entity = Order | Payment | Refund | Dispute


class SignatureError(Exception):
    """The webhook is not provably from its source. Messages never include a secret."""


def sign_base64_hmac(body: bytes, secret: str) -> str:
    """base64(HMAC-SHA256(secret, raw body)): how Shopify and WooCommerce sign a webhook."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode("ascii")


def verify_base64_hmac(body: bytes, signature_header: str | None, secrets: Sequence[str]) -> None:
    """Raise SignatureError unless the header matches the raw body under one of the secrets (current first)."""
    # A bare string is a Sequence[str] too; iterating it would turn each character into a guessable key.
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    # An empty key would let anyone sign, so blank entries count as no secret at all.
    keys = [key for key in candidates if key.strip()]
    if not keys:
        raise SignatureError("no secret configured")
    if signature_header is None or not signature_header.strip():
        raise SignatureError("missing signature")
    given = signature_header.strip().encode()
    matched = False
    for key in keys:  # no early exit: every key costs the same, whichever one matches
        matched |= hmac.compare_digest(sign_base64_hmac(body, key).encode("ascii"), given)
    if not matched:
        raise SignatureError("signature mismatch")


class UnsupportedTopic(ValueError):
    """A topic no converter handles (ingest should not have accepted it)."""


@dataclass(frozen=True)
class Notice:
    """A fact with no entity state of its own: a deletion or a compliance request, recorded and published."""

    detail_type: DetailType
    key: str  # what it is about, e.g. "shopify:customer:123" or "shopify:shop:demo.myshopify.com"
    data: dict[str, Any] = field(default_factory=dict)
    # The kind of entity `key` names when the notice says the source deleted it (WooCommerce's order.deleted: Order):
    # convert records the deletion in the sync table as reconciliation does, so a full run does not report it again.
    deletes: type[Entity] | None = None


@dataclass(slots=True)
class Converted:
    """Everything one webhook says, in canonical form, with the domain event each entity change means.

    Not frozen: a frozen dataclass sets each field through object.__setattr__, which nearly triples the cost of the one
    object every conversion makes (dataclasses.replace derives a changed copy, as erasure.screen does)."""

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
