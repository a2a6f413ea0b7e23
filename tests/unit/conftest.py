"""Fixtures for the unit suite: Shopify payloads read from tests/fixtures/shopify/; no sockets at all."""

from collections.abc import Callable
from pathlib import Path

import pytest

from crmsync.sources.shopify import ShopifyOrder, parse_order

SHOPIFY_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "shopify"


@pytest.fixture(autouse=True)
def _no_network(socket_disabled: None) -> None:
    """Unit tests are pure: any socket (an AWS call, a forgotten client) fails the test (pytest-socket)."""


@pytest.fixture
def shopify_payload() -> Callable[[str], bytes]:
    """Raw bytes of a Shopify webhook body, exactly as they would reach the ingest function."""

    def load(name: str) -> bytes:
        return (SHOPIFY_FIXTURES / name).read_bytes()

    return load


@pytest.fixture
def shopify_order(shopify_payload: Callable[[str], bytes]) -> Callable[[str], ShopifyOrder]:
    """A fixture file parsed the way the convert function parses it."""

    def load(name: str) -> ShopifyOrder:
        return parse_order(shopify_payload(name))

    return load
