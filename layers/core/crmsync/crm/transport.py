"""HTTP for the CRM adapters: a one-method transport, urllib behind it in production and fakes in tests.

The transport answers every HTTP status as a response (4xx and 5xx included) and raises TransportError only when
there is no answer, saying whether the request may have reached the server (`sent`): a connection refused before
the request went out is safe to repeat; a timeout waiting for the answer is not known to be.
"""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)  # names lower-cased

    def json(self) -> Any:
        """The body as JSON; None when it is empty or not JSON."""
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            return None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


class TransportError(Exception):
    """No HTTP answer. `sent`: the request may have reached the server (its effect is unknown)."""

    def __init__(self, message: str, *, sent: bool) -> None:
        super().__init__(message)
        self.sent = sent


class Transport(Protocol):
    def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse: ...


class UrllibTransport:
    """The standard library's HTTP client; http(s) URLs only."""

    def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        if not url.startswith(("https://", "http://")):
            raise ValueError("only http(s) URLs are sent")
        request = urllib.request.Request(url, data=body, method=method, headers=dict(headers))  # noqa: S310 - checked
        try:
            with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - scheme checked above
                return HttpResponse(answer.status, answer.read(), _lower(answer.headers.items()))
        except urllib.error.HTTPError as exc:  # an answer with a 4xx or 5xx status
            try:
                payload = exc.read()
            except (OSError, http.client.HTTPException):
                payload = b""
            return HttpResponse(exc.code, payload, _lower(exc.headers.items()) if exc.headers else {})
        except urllib.error.URLError as exc:  # raised while connecting or sending: the request did not arrive whole
            raise TransportError(f"connection failed: {exc.reason.__class__.__name__}", sent=False) from exc
        except (TimeoutError, OSError, http.client.HTTPException) as exc:  # while waiting for or reading the answer
            raise TransportError(f"no answer: {exc.__class__.__name__}", sent=True) from exc


def _lower(items: Any) -> dict[str, str]:
    return {str(k).lower(): str(v) for k, v in items}
