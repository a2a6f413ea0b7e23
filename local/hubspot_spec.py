"""HubSpot's official OpenAPI specs as a request (and response) validator, with openapi-core.

The specs (tests/fixtures/hubspot-openapi/, see SOURCE.txt there) cover contacts v3, deals v3 and associations v4.
Paths are translated before validation:
- the deals spec spells its paths with the object type id: /crm/v3/objects/deals/... is validated as
  /crm/v3/objects/0-3/... (and contacts' type id 0-1 as contacts);
- other objects of HubSpot's generic objects API (notes, tasks, companies, line_items, ...) share its request and
  response shapes, so /crm/v3/objects/notes/batch/create is validated as /crm/v3/objects/contacts/batch/create (a
  check of the documented shape, as no spec of those objects is kept here);
- paths the specs do not cover (e.g. /crm/v3/properties/...) are not validated (`covers` says so).
The specs declare OAuth2 security only; requests here carry a private app's bearer token, which openapi-core
cannot check against an OAuth2 scheme, so security is not validated.
"""

from __future__ import annotations

import functools
import json
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

SPEC_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "hubspot-openapi"
SPEC_FILES = {
    "contacts": "crm-contacts-v3.openapi.json",
    "deals": "crm-deals-v3.openapi.json",
    "associations": "crm-associations-v4.openapi.json",
}
HOST = "https://api.hubapi.com"
OBJECTS_PATH = re.compile(r"^/crm/v3/objects/(?P<type>[^/]+)(?P<rest>/.*)?$")
TYPE_IDS = {"0-1": "contacts", "0-3": "deals"}


class SpecViolation(ValueError):
    """The request (or response) does not fit HubSpot's OpenAPI spec; the message says where and why."""


@dataclass(frozen=True)
class Route:
    spec: str  # key of SPEC_FILES
    path: str  # the path as the spec spells it


def route(path: str) -> Route | None:
    """Which spec validates a request path, and the path as that spec spells it; None when no spec covers it."""
    path = path.split("?", 1)[0]
    if path.startswith("/crm/v4/associations/") or path.startswith("/crm/v4/objects/"):
        return Route("associations", path)
    match = OBJECTS_PATH.match(path)
    if match is None:
        return None
    object_type = TYPE_IDS.get(match["type"], match["type"])
    rest = match["rest"] or ""
    if object_type == "deals":
        return Route("deals", f"/crm/v3/objects/0-3{rest}")
    return Route("contacts", f"/crm/v3/objects/contacts{rest}")


@functools.cache
def _openapi(spec: str, spec_dir: Path = SPEC_DIR) -> OpenAPI:
    # The specs' error responses are declared as */* (HubSpot sends JSON): read them as JSON to validate them.
    config = Config(extra_media_type_deserializers={"*/*": json.loads})
    return OpenAPI.from_file_path(str(spec_dir / SPEC_FILES[spec]), config=config)


def covers(path: str) -> bool:
    return route(path) is not None


def validate_request(
    method: str,
    path: str,
    body: bytes | None,
    *,
    query: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    spec_dir: Path = SPEC_DIR,
) -> None:
    """Raise SpecViolation unless the request fits the spec that covers its path (no-op when none does)."""
    found = route(path)
    if found is None:
        return
    request = MockRequest(
        HOST,
        method,
        found.path,
        args=dict(query or {}),
        headers=dict(headers or {}),
        data=body,
        content_type="application/json" if body else "",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "Unsupported scheme type": the specs' OAuth2 security is not checked
        try:
            _openapi(found.spec, spec_dir).validate_request(request)
        except Exception as exc:
            raise SpecViolation(f"{method.upper()} {path} (as {found.path} in {found.spec}): {_reason(exc)}") from exc


def validate_response(
    method: str,
    path: str,
    status: int,
    body: bytes,
    *,
    spec_dir: Path = SPEC_DIR,
    query: Mapping[str, str] | None = None,
) -> None:
    """Raise SpecViolation unless the response fits the spec (its status, else the default response). HubSpot's
    documented 429 body (status, message, errorType, policyName, ...) does not fit the specs' Error schema: callers
    do not validate 429s."""
    found = route(path)
    if found is None:
        return
    request = MockRequest(HOST, method, found.path, args=dict(query or {}), data=None)
    response = MockResponse(body, status_code=status, content_type="application/json")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _openapi(found.spec, spec_dir).validate_response(request, response)
        except Exception as exc:
            raise SpecViolation(f"response {status} to {method.upper()} {path}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    """The schema errors behind an openapi-core exception, each with where it is in the document."""
    reasons: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        for error in getattr(current, "schema_errors", None) or []:
            where = "/".join(str(p) for p in getattr(error, "absolute_path", []) or [])
            reasons.append(f"{where or '<body>'}: {getattr(error, 'message', error)}")
        current = current.__cause__ or current.__context__
    return "; ".join(reasons) if reasons else f"{exc.__class__.__name__}: {exc}"
