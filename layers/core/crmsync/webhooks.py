"""What ingest needs to know of each webhook source: how it signs, names topics and identifies deliveries."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from crmsync.sources import shopify


class WebhookSource(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def secret_setting(self) -> str:
        """Which Settings field holds the id of this source's secret."""
        ...

    @property
    def handled_topics(self) -> frozenset[str]: ...

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None: ...
    def topic(self, headers: Mapping[str, str]) -> str | None: ...
    def account(self, headers: Mapping[str, str]) -> str | None: ...
    def receipt_id(self, headers: Mapping[str, str], body: bytes) -> str: ...


@dataclass(frozen=True)
class ShopifyWebhooks:
    name: str = "shopify"
    secret_setting: str = "shopify_secret_id"  # noqa: S105 - the name of a setting, not a secret
    handled_topics: frozenset[str] = shopify.ORDER_TOPICS

    def verify(self, body: bytes, headers: Mapping[str, str], secrets: Sequence[str]) -> None:
        shopify.verify(body, headers.get("x-shopify-hmac-sha256"), secrets)

    def topic(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("x-shopify-topic")

    def account(self, headers: Mapping[str, str]) -> str | None:
        return headers.get("x-shopify-shop-domain")

    def receipt_id(self, headers: Mapping[str, str], body: bytes) -> str:
        # Shopify documents both ids as the dedupe key: the event id is stable across subscriptions.
        delivery = headers.get("x-shopify-event-id") or headers.get("x-shopify-webhook-id")
        if not delivery:
            delivery = "sha256-" + hashlib.sha256(body).hexdigest()
        return f"shopify:{self.account(headers) or '-'}:{delivery}"


SOURCES: dict[str, WebhookSource] = {"shopify": ShopifyWebhooks()}
