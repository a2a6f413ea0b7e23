"""Fixtures of the security suite: the moto account of the integration suite, the handlers called in-process, a
PayPal certificate of our own, and no network at all (pytest-socket)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.integration.conftest import aws, lambda_context  # noqa: F401 - fixtures used by this suite
from tests.security.webhooks import PayPalKey, Writes, stored


@pytest.fixture(autouse=True)
def _no_network(socket_disabled: None) -> None:
    """moto answers in-process; a request that reaches a socket (a PayPal certificate download, a forgotten
    endpoint) fails the test."""


@pytest.fixture(scope="session")
def paypal_key() -> PayPalKey:
    return PayPalKey.make()


@pytest.fixture(autouse=True)
def _paypal_certificate(paypal_key: PayPalKey, monkeypatch: pytest.MonkeyPatch) -> None:
    """PayPal's certificate downloads answered with our certificate, whatever the (allow-listed) URL."""
    from crmsync import webhooks
    from crmsync.sources.paypal import PayPalWebhooks, clear_certificate_cache

    clear_certificate_cache()
    monkeypatch.setitem(webhooks.SOURCES, "paypal", PayPalWebhooks(fetch_cert=lambda url: paypal_key.pem))


@pytest.fixture
def writes(aws: Any) -> Iterator[Writes]:  # noqa: F811
    """What each request changed in AWS; when the test ends, the account holds exactly what the test expected
    (`writes.expect(...)`, default nothing): a last check that does not depend on which client the code used."""
    recorder = Writes()
    yield recorder
    assert stored(aws) == recorder.expected


def _answer(handler: Callable[[dict[str, Any], Any], dict[str, Any]], event: dict[str, Any], context: Any) -> Any:
    """(status, parsed JSON body); a handler that raises is what API Gateway answers then: 502."""
    try:
        response = handler(event, context)
    except Exception as exc:
        return 502, {"lambda error": repr(exc)[:300]}
    body = response.get("body") or ""
    try:
        document = json.loads(body)
    except ValueError:
        document = {"not json": body[:200]}
    return response["statusCode"], document


@pytest.fixture
def ingest(aws: Any, lambda_context: Any) -> Callable[[dict[str, Any]], tuple[int, Any]]:  # noqa: F811
    """Invoke the ingest handler with an API event; (status, parsed JSON body)."""
    from ingest import app

    return lambda event: _answer(app.lambda_handler, event, lambda_context)


@pytest.fixture
def operator_api(aws: Any, lambda_context: Any) -> Callable[[dict[str, Any]], tuple[int, Any]]:  # noqa: F811
    """Invoke the operator API handler with an API event; (status, parsed JSON body)."""
    from api import app

    return lambda event: _answer(app.lambda_handler, event, lambda_context)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    from tests.security.stats import TRIED, summary

    if TRIED["inputs"]:
        terminalreporter.write_line(summary())
