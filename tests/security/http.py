"""The deployed REST API in-process, as a WSGI application: a request is routed as API Gateway routes it (the Api
events of template.yaml, literal paths before parameters), turned into the proxy event API Gateway sends (every body
base64-encoded: binary media type */*), handed to the function's real Lambda handler, and its answer sent back.

This is what schemathesis drives (tests/security/test_openapi_fuzz.py): no server, no socket, moto behind it."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from tests.integration.conftest import FakeContext
from tests.security.template import api_routes

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def _handlers() -> dict[str, Handler]:
    from api import app as api_app
    from ingest import app as ingest_app

    return {"IngestFunction": ingest_app.lambda_handler, "ApiFunction": api_app.lambda_handler}


@dataclass(frozen=True)
class Route:
    method: str
    resource: str  # e.g. /local-crm/{type}/{id}
    function: str
    pattern: re.Pattern[str]

    @classmethod
    def of(cls, method: str, resource: str, function: str) -> Route:
        regex = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(resource))
        return cls(method, resource, function, re.compile(f"\\A{regex}\\Z"))

    @property
    def literal(self) -> bool:
        return "{" not in self.resource


def routes() -> list[Route]:
    """Every route of template.yaml, literal ones first (API Gateway prefers /webhooks/shopify to /webhooks/{x})."""
    found = [Route.of(method, path, function) for method, path, function in api_routes()]
    return sorted(found, key=lambda r: (not r.literal, r.resource))


def proxy_event(
    method: str,
    path: str,
    route: Route,
    params: dict[str, str] | None,
    query: dict[str, list[str]],
    headers: dict[str, str],
    body: bytes,
) -> dict[str, Any]:
    request_id = str(uuid.uuid4())
    return {
        "resource": route.resource,
        "path": path,
        "httpMethod": method,
        "headers": headers or None,
        "multiValueHeaders": {k: [v] for k, v in headers.items()} or None,
        "queryStringParameters": {k: v[-1] for k, v in query.items()} or None,
        "multiValueQueryStringParameters": query or None,
        "pathParameters": params or None,
        "stageVariables": None,
        "requestContext": {
            "resourcePath": route.resource,
            "httpMethod": method,
            "path": f"/Prod{path}",
            "stage": "Prod",
            "requestId": request_id,
            "identity": {"sourceIp": "127.0.0.1"},
        },
        "body": base64.b64encode(body).decode() if body else None,
        "isBase64Encoded": bool(body),
    }


class LambdaApi:
    """WSGI in front of the Lambda handlers. `answers` keeps every (method, path, status) it gave."""

    def __init__(self) -> None:
        self.routes = routes()
        self.answers: list[tuple[str, str, int]] = []

    def invoke(
        self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        for route in self.routes:
            match = route.pattern.match(path)
            if match and route.method == method:
                event = proxy_event(method, path, route, match.groupdict(), query, headers, body)
                answer = _handlers()[route.function](event, FakeContext())
                raw = answer.get("body") or ""
                data = base64.b64decode(raw) if answer.get("isBase64Encoded") else raw.encode()
                out = {k: str(v) for k, v in (answer.get("headers") or {}).items()}
                for name, values in (answer.get("multiValueHeaders") or {}).items():
                    out.setdefault(name, str(values[-1]))
                return int(answer["statusCode"]), out, data
        # What API Gateway answers for a path or method no route has
        return 403, {"Content-Type": "application/json"}, b'{"message":"Missing Authentication Token"}'

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/").encode("latin-1").decode("utf-8", "replace")
        query = parse_qs(environ.get("QUERY_STRING", ""), keep_blank_values=True)
        headers = {
            key[5:].replace("_", "-").title(): value.encode("latin-1").decode("utf-8", "replace")
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            if environ.get(key):
                headers[key.replace("_", "-").title()] = environ[key]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        status, out, data = self.invoke(environ["REQUEST_METHOD"], path, query, headers, body)
        self.answers.append((environ["REQUEST_METHOD"], path, status))
        start_response(f"{status} {HTTPStatus(status).phrase}", list(out.items()))
        return [data]
