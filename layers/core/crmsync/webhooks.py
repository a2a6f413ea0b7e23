"""The registry of webhook sources: path segment of POST /webhooks/{source} -> its WebhookSource."""

from __future__ import annotations

from crmsync.sources.base import WebhookSource
from crmsync.sources.paypal import PayPalWebhooks
from crmsync.sources.shopify import ShopifyWebhooks
from crmsync.sources.stripe import StripeWebhooks
from crmsync.sources.woocommerce import WooCommerceWebhooks

SOURCES: dict[str, WebhookSource] = {
    "shopify": ShopifyWebhooks(),
    "woocommerce": WooCommerceWebhooks(),
    "stripe": StripeWebhooks(),
    "paypal": PayPalWebhooks(),
}
