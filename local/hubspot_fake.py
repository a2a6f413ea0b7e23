"""A fake HubSpot portal for local runs and tests: HubSpot's CRM write endpoints in memory, every request checked
against HubSpot's official OpenAPI specs (local/hubspot_spec.py), HubSpot's 100-per-10-seconds limit enforced.

Run it: `python -m local.hubspot_fake --port 8765 [--token T] [--rate-limit 100] [--daily-limit N]`, then e.g.
`CRM_BACKEND=hubspot HUBSPOT_ACCESS_TOKEN=T HUBSPOT_BASE_URL=http://127.0.0.1:8765 make run`. In tests:
`FakeHubSpot().handle(...)` answers a request without any socket; `with FakeHubSpot().serving() as fake:` serves
it on 127.0.0.1 on a free port (`fake.url`).

What it models
- Objects API, any object type by name (contacts, deals, notes, tasks, companies, line_items, ...) or type id
  (0-1, 0-2, 0-3, 0-8, 0-27, 0-46):
  POST /crm/v3/objects/{type}/batch/upsert (by `idProperty`: contacts' `email`, or a property created with
  `hasUniqueValue`; `new` tells created from updated), /batch/create (inline `associations` applied),
  /batch/update (by id), /batch/read (by `idProperty` or id: the properties asked for; values no record holds are
  a 207's OBJECT_NOT_FOUND error); POST /crm/v3/objects/{type}/merge (the primary keeps its values, gains the ones
  it lacks and every association; the merged record is gone).
- Associations v4: POST /crm/v4/associations/{from}/{to}/batch/associate/default (both directions, idempotent;
  a pair naming a missing record is reported in the 200 answer's `errors`, as the spec declares it).
- Properties: GET /crm/v3/properties/{type}, POST /crm/v3/properties/{type} and /batch/create (409 when the name
  exists). A portal starts with the standard properties crmsync writes; writing a property the portal does not
  have is a 400 VALIDATION_ERROR (PROPERTY_DOESNT_EXIST), as in HubSpot, so `make hubspot-setup` is needed first.
- Checks HubSpot makes: more than 100 inputs -> 400; one id twice in a batch -> 400; an `idProperty` that is not
  unique -> 400; a number property with a non-number -> 400; a unique value already held by another record ->
  409 CONFLICT; notes and tasks need `hs_timestamp`; a missing or wrong bearer token -> 401.
- Validation: a request the OpenAPI spec rejects -> 400 VALIDATION_ERROR naming the reason. Notes, tasks and other
  objects are checked against the contacts spec's shapes (the generic objects API). With `strict` (tests), every
  answer the fake gives is validated too, and a fake bug answers 500 with the reason.
- Limits: at most `rate_limit` requests per rolling `window_seconds` over every /crm request (HubSpot's 429 body:
  status, message, errorType RATE_LIMIT, correlationId, policyName TEN_SECONDLY_ROLLING, requestId), and an
  optional daily cap (policyName DAILY); X-HubSpot-RateLimit-Max / -Remaining / -Interval-Milliseconds (and
  -Daily / -Daily-Remaining with a cap) on every answer.
- Inspection (counted like any HubSpot request): GET /crm/v3/objects/{type} (paged), GET /crm/v3/objects/{type}/{id}
  (?associations=...), GET /crm/v4/objects/{type}/{id}/associations/{toType}.
- Control, not HubSpot, never rate limited: GET /_fake/state (every record and association), GET /_fake/requests,
  POST /_fake/reset, POST /_fake/faults {"next": [{"status": 500, "path": "/crm/...", "apply": true, "policy":
  "DAILY"}], "reject": [{"type": "contacts", "id": "<value>", "message": "...", "category": "..."}]}: one-shot
  answers for the next request under a path (applied first when `apply`), and inputs answered as failed in a 207
  (an upsert input by its id value, a create input by any of its property values).

What it does not model
- Search, archive, GDPR delete, pipelines and stage ids, owners, property types other than number,
  association labels (the default type ids below are HubSpot's documented ones for the common pairs, 1 otherwise),
  id aliases of merged records (a merged id is simply gone: 404), eventual consistency and asynchronous batch
  status, per-app vs per-account limits (one window per fake), requests answered 429 counting against the window
  (they do not here), the date-versioned /crm/objects/2026-03/ paths.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import threading
import time
import urllib.parse
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from local import hubspot_spec

LOOPBACK = "127.0.0.1"
BATCH_LIMIT = 100
TYPE_IDS = {
    "0-1": "contacts",
    "0-2": "companies",
    "0-3": "deals",
    "0-8": "line_items",
    "0-27": "tasks",
    "0-46": "notes",
}
# Default association type ids (HubSpot-defined), by (from, to).
ASSOCIATION_TYPES = {
    ("deals", "contacts"): 3,
    ("contacts", "deals"): 4,
    ("contacts", "companies"): 279,
    ("companies", "contacts"): 280,
    ("deals", "companies"): 341,
    ("companies", "deals"): 342,
    ("line_items", "deals"): 20,
    ("deals", "line_items"): 19,
    ("notes", "contacts"): 202,
    ("contacts", "notes"): 201,
    ("notes", "deals"): 214,
    ("deals", "notes"): 213,
    ("tasks", "contacts"): 204,
    ("contacts", "tasks"): 203,
    ("tasks", "deals"): 216,
    ("deals", "tasks"): 215,
}
NAME = re.compile(r"^[a-z][a-z0-9_]*$")
PROPERTY_TYPES = {"string", "number", "date", "datetime", "enumeration", "bool"}
FIELD_TYPES = {"text", "textarea", "number", "date", "select", "radio", "checkbox", "booleancheckbox", "phonenumber"}


def _prop(
    name: str, type_: str = "string", field_type: str = "text", group: str = "", unique: bool = False
) -> dict[str, Any]:
    return {"name": name, "label": name, "type": type_, "fieldType": field_type, "groupName": group,
            "hasUniqueValue": unique, "description": "", "hidden": False, "formField": False}  # fmt: skip


def _standard_properties() -> dict[str, dict[str, dict[str, Any]]]:
    """The standard properties of a fresh portal (those crmsync writes, and the ones every object has)."""
    common = ["hs_object_id", "createdate", "hs_lastmodifieddate", "hubspot_owner_id"]
    names = {
        "contacts": ["email", "firstname", "lastname", "phone", "address", "city", "state", "zip", "country",
                     "lifecyclestage", "company", "website", "lastmodifieddate"],
        "deals": ["dealname", "deal_currency_code", "dealstage", "pipeline", "closedate", "description"],
        "notes": ["hs_note_body", "hs_timestamp", "hs_attachment_ids"],
        "tasks": ["hs_task_subject", "hs_task_body", "hs_task_priority", "hs_task_status", "hs_task_type",
                  "hs_timestamp"],
        "companies": ["name", "domain", "city", "country", "phone"],
        "line_items": ["name", "hs_sku", "description", "hs_product_id", "hs_line_item_currency_code"],
    }  # fmt: skip
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for object_type, own in names.items():
        group = {"contacts": "contactinformation", "deals": "dealinformation"}.get(object_type, "")
        out[object_type] = {n: _prop(n, group=group) for n in [*common, *own]}
    out["deals"]["amount"] = _prop("amount", "number", "number", "dealinformation")
    for name in ("quantity", "price", "amount"):
        out["line_items"][name] = _prop(name, "number", "number")
    return out


def _now_iso(clock: Callable[[], float]) -> str:
    return datetime.fromtimestamp(clock(), UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Record:
    id: str
    properties: dict[str, str]
    created_at: str
    updated_at: str


class Refusal(Exception):
    """An error answer of the whole request (HubSpot's Error body)."""

    def __init__(self, status: int, category: str, message: str, context: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.status, self.category, self.message, self.context = status, category, message, context or {}


@dataclass
class Answer:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        return json.dumps(self.body, separators=(",", ":")).encode() if self.body is not None else b""


@dataclass
class Fault:
    status: int
    path: str = ""
    apply: bool = False
    policy: str = "TEN_SECONDLY_ROLLING"
    retry_after: str = ""


class FakeHubSpot:
    """One fake portal. `handle` is thread-safe; `serving()` runs it over HTTP on 127.0.0.1."""

    def __init__(
        self,
        *,
        token: str | None = None,
        rate_limit: int = 100,
        window_seconds: float = 10.0,
        daily_limit: int = 0,
        strict: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.token = token
        self.rate_limit = rate_limit
        self.window_seconds = window_seconds
        self.daily_limit = daily_limit
        self.strict = strict
        self.clock = clock
        self.lock = threading.RLock()
        self.server: ThreadingHTTPServer | None = None
        self.reset()

    # --- state --------------------------------------------------------------------------------------
    def reset(self) -> None:
        with self.lock:
            self.records: dict[str, dict[str, Record]] = {}
            self.associations: set[tuple[str, str, str, str]] = set()  # (from type, from id, to type, to id)
            self.properties = _standard_properties()
            self.next_id = 1001
            self.sent: deque[float] = deque()
            self.day_count = 0
            self.log: list[dict[str, Any]] = []  # one entry per HubSpot request: method, path, status, inputs
            self.faults: list[Fault] = []
            self.rejects: dict[tuple[str, str], tuple[str, str]] = {}  # (type, id value) -> (message, category)

    def state(self) -> dict[str, Any]:
        """Every record (type -> id -> properties) and association (type -> id -> other type -> ids)."""
        with self.lock:
            linked: dict[str, dict[str, dict[str, list[str]]]] = {}
            for ft, fid, tt, tid in sorted(self.associations):
                linked.setdefault(ft, {}).setdefault(fid, {}).setdefault(tt, []).append(tid)
            return {
                "records": {t: {i: dict(r.properties) for i, r in rs.items()} for t, rs in self.records.items()},
                "associations": linked,
            }

    # --- HTTP-free entry point ----------------------------------------------------------------------
    def handle(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None) -> Answer:
        """Answer one request: `target` is the path with its query string."""
        parsed = urllib.parse.urlsplit(target)
        path = parsed.path
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        method = method.upper()
        if path.startswith("/_fake/"):
            with self.lock:
                return self._control(method, path, body)
        lowered = {k.lower(): v for k, v in headers.items()}
        with self.lock:
            answer = self._hubspot(method, path, query, lowered, body)
            answer.headers.update(self._limit_headers())
            self.log.append({"method": method, "path": path, "status": answer.status, "inputs": _count_inputs(body)})
        if self.strict and answer.status not in (401, 429) and hubspot_spec.covers(path):
            try:
                hubspot_spec.validate_response(method, path, answer.status, answer.encoded(), query=query)
            except hubspot_spec.SpecViolation as exc:
                return Answer(500, _error_body("INTERNAL_ERROR", f"the fake's own answer breaks the spec: {exc}"))
        return answer

    def _hubspot(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: bytes | None
    ) -> Answer:
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or (self.token is not None and auth != f"Bearer {self.token}"):
            return Answer(401, _error_body("INVALID_AUTHENTICATION", "Authentication credentials not found."))
        limited = self._rate_limit()
        if limited is not None:
            return limited
        fault = next((f for f in self.faults if path.startswith(f.path)), None)
        if fault is not None:
            self.faults.remove(fault)
            if fault.status == 429:
                return self._too_many(fault.policy, fault.retry_after)
            if not fault.apply:
                return Answer(fault.status, _error_body("INTERNAL_ERROR", f"injected {fault.status}"))
        try:
            hubspot_spec.validate_request(method, path, body, query=query, headers=headers)
            payload = json.loads(body) if body else None
            answer = self._route(method, path, query, payload)
        except hubspot_spec.SpecViolation as exc:
            answer = Answer(400, _error_body("VALIDATION_ERROR", f"Invalid input: {exc}"))
        except Refusal as refusal:
            answer = Answer(refusal.status, _error_body(refusal.category, refusal.message, refusal.context))
        except ValueError as exc:
            answer = Answer(400, _error_body("VALIDATION_ERROR", f"Invalid input JSON: {exc}"))
        if fault is not None:  # applied, then answered with the fault (a lost answer)
            return Answer(fault.status, _error_body("INTERNAL_ERROR", f"injected {fault.status} after applying"))
        return answer

    # --- rate limits --------------------------------------------------------------------------------
    def _rate_limit(self) -> Answer | None:
        now = self.clock()
        while self.sent and self.sent[0] <= now - self.window_seconds:
            self.sent.popleft()
        if self.daily_limit and self.day_count >= self.daily_limit:
            return self._too_many("DAILY")
        if len(self.sent) >= self.rate_limit:
            return self._too_many("TEN_SECONDLY_ROLLING")
        self.sent.append(now)
        self.day_count += 1
        return None

    def _too_many(self, policy: str, retry_after: str = "") -> Answer:
        limit = "daily" if policy == "DAILY" else "ten_secondly_rolling"
        body = {
            "status": "error",
            "message": f"You have reached your {limit} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "requestId": str(uuid.uuid4()),
        }
        return Answer(429, body, {"Retry-After": retry_after} if retry_after else {})

    def _limit_headers(self) -> dict[str, str]:
        headers = {
            "X-HubSpot-RateLimit-Max": str(self.rate_limit),
            "X-HubSpot-RateLimit-Remaining": str(max(0, self.rate_limit - len(self.sent))),
            "X-HubSpot-RateLimit-Interval-Milliseconds": str(int(self.window_seconds * 1000)),
        }
        if self.daily_limit:
            headers["X-HubSpot-RateLimit-Daily"] = str(self.daily_limit)
            headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(max(0, self.daily_limit - self.day_count))
        return headers

    # --- routes -------------------------------------------------------------------------------------
    def _route(self, method: str, path: str, query: dict[str, str], payload: Any) -> Answer:
        parts = path.strip("/").split("/")
        if parts[:3] == ["crm", "v3", "objects"] and len(parts) >= 4:
            object_type = TYPE_IDS.get(parts[3], parts[3])
            rest = parts[4:]
            if method == "POST" and rest == ["batch", "upsert"]:
                return self._upsert(object_type, payload)
            if method == "POST" and rest == ["batch", "create"]:
                return self._create(object_type, payload)
            if method == "POST" and rest == ["batch", "update"]:
                return self._update(object_type, payload)
            if method == "POST" and rest == ["batch", "read"]:
                return self._read(object_type, payload)
            if method == "POST" and rest == ["merge"]:
                return self._merge(object_type, payload)
            if method == "GET" and not rest:
                return self._list(object_type, query)
            if method == "GET" and len(rest) == 1:
                return self._get(object_type, rest[0], query)
        if (
            parts[:3] == ["crm", "v4", "associations"]
            and parts[5:] == ["batch", "associate", "default"]
            and method == "POST"
        ):
            return self._associate(TYPE_IDS.get(parts[3], parts[3]), TYPE_IDS.get(parts[4], parts[4]), payload)
        if parts[:3] == ["crm", "v4", "objects"] and len(parts) == 7 and parts[5] == "associations" and method == "GET":
            return self._associations_of(TYPE_IDS.get(parts[3], parts[3]), parts[4], TYPE_IDS.get(parts[6], parts[6]))
        if parts[:3] == ["crm", "v3", "properties"] and len(parts) >= 4:
            object_type = TYPE_IDS.get(parts[3], parts[3])
            if method == "GET" and len(parts) == 4:
                return Answer(200, {"results": list(self.properties.get(object_type, {}).values())})
            if method == "POST" and len(parts) == 4:
                return Answer(201, self._create_properties(object_type, [payload])[0])
            if method == "POST" and parts[4:] == ["batch", "create"]:
                inputs = (payload or {}).get("inputs")
                if not isinstance(inputs, list):
                    raise Refusal(400, "VALIDATION_ERROR", "inputs: a list is required")
                return Answer(201, self._batch_answer(self._create_properties(object_type, inputs)))
        raise Refusal(404, "OBJECT_NOT_FOUND", f"no route for {method} {path} in this fake")

    def _inputs(self, payload: Any) -> list[dict[str, Any]]:
        inputs = list(payload["inputs"])
        if len(inputs) > BATCH_LIMIT:
            raise Refusal(400, "VALIDATION_ERROR", f"Batch input cannot exceed {BATCH_LIMIT} inputs; got {len(inputs)}")
        return inputs

    def _check_properties(self, object_type: str, properties: Mapping[str, str]) -> None:
        known = self.properties.get(object_type)
        if known is None:
            raise Refusal(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")
        problems = []
        for name, value in properties.items():
            definition = known.get(name)
            if definition is None:
                problems.append({"isValid": False, "message": f'Property "{name}" does not exist',
                                 "error": "PROPERTY_DOESNT_EXIST", "name": name})  # fmt: skip
            elif definition["type"] == "number" and value != "":
                try:
                    float(value)
                except ValueError:
                    problems.append({"isValid": False, "message": f"{value!r} is not a valid number",
                                     "error": "INVALID_FLOAT", "name": name})  # fmt: skip
        if problems:
            raise Refusal(400, "VALIDATION_ERROR", f"Property values were not valid: {json.dumps(problems)}")

    def _unique(self, object_type: str) -> set[str]:
        names = {n for n, d in self.properties.get(object_type, {}).items() if d.get("hasUniqueValue")}
        return names | ({"email"} if object_type == "contacts" else set()) | {"hs_object_id"}

    def _find(self, object_type: str, name: str, value: str) -> Record | None:
        records = self.records.get(object_type, {})
        if name == "hs_object_id":
            return records.get(value)
        wanted = value.lower() if name == "email" else value
        for record in records.values():
            have = record.properties.get(name)
            if have is not None and (have.lower() if name == "email" else have) == wanted:
                return record
        return None

    def _check_unique_values(self, object_type: str, properties: Mapping[str, str], own_id: str | None) -> None:
        for name in self._unique(object_type) - {"hs_object_id"}:
            value = properties.get(name)
            holder = self._find(object_type, name, value) if value else None
            if holder is not None and holder.id != own_id:
                raise Refusal(
                    409, "CONFLICT", f"A {object_type[:-1]} with that {name} already exists. Existing ID: {holder.id}"
                )

    def _new(self, object_type: str, properties: dict[str, str]) -> Record:
        now = _now_iso(self.clock)
        record = Record(str(self.next_id), {}, now, now)
        self.next_id += 1
        record.properties.update(properties)
        record.properties.update(hs_object_id=record.id, createdate=now, hs_lastmodifieddate=now)
        self.records.setdefault(object_type, {})[record.id] = record
        return record

    def _touch(self, record: Record, properties: Mapping[str, str]) -> None:
        record.properties.update(properties)
        record.updated_at = record.properties["hs_lastmodifieddate"] = _now_iso(self.clock)

    def _public(self, record: Record, trace: str | None = None, **extra: Any) -> dict[str, Any]:
        out = {"id": record.id, "properties": dict(record.properties), "createdAt": record.created_at,
               "updatedAt": record.updated_at, "archived": False, **extra}  # fmt: skip
        if trace is not None:
            out["objectWriteTraceId"] = trace
        return out

    def _batch_answer(
        self, results: list[dict[str, Any]], errors: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        now = _now_iso(self.clock)
        body: dict[str, Any] = {"status": "COMPLETE", "results": results, "requestedAt": now, "startedAt": now,
                                "completedAt": now}  # fmt: skip
        if errors:
            body["errors"] = errors
            body["numErrors"] = len(errors)
        return body

    def _rejected(self, object_type: str, values: list[str], trace: str | None) -> dict[str, Any] | None:
        """The 207 error of an input that a test asked to fail (by its id value, or any property value)."""
        reject = next((self.rejects[(object_type, v)] for v in values if (object_type, v) in self.rejects), None)
        if reject is None:
            return None
        message, category = reject
        context = {"objectWriteTraceId": [trace]} if trace is not None else {"id": values[:1]}
        return {"status": "error", "category": category, "message": message, "context": context, "errors": [],
                "links": {}}  # fmt: skip

    def _upsert(self, object_type: str, payload: Any) -> Answer:
        inputs = self._inputs(payload)
        keys = [(i.get("idProperty") or "hs_object_id", i["id"]) for i in inputs]
        dupes = sorted({v for (_, v) in keys if sum(1 for _, w in keys if w == v) > 1})
        if dupes:
            raise Refusal(400, "VALIDATION_ERROR", f"Duplicate IDs found in batch input: {dupes}. IDs must be unique")
        for name, _ in keys:
            if name not in self._unique(object_type):
                raise Refusal(400, "VALIDATION_ERROR", f"{name} is not a unique identifier property of {object_type}")
        for item in inputs:
            self._check_properties(object_type, item["properties"])
        results, errors = [], []
        for item, (name, value) in zip(inputs, keys, strict=True):
            trace = item.get("objectWriteTraceId")
            rejected = self._rejected(object_type, [value], trace)
            if rejected is not None:
                errors.append(rejected)
                continue
            record = self._find(object_type, name, value)
            properties = dict(item["properties"])
            if record is None:
                if name != "hs_object_id":
                    properties.setdefault(name, value)
                self._check_unique_values(object_type, properties, None)
                results.append(self._public(self._new(object_type, properties), trace, new=True))
            else:
                self._check_unique_values(object_type, properties, record.id)
                self._touch(record, properties)
                results.append(self._public(record, trace, new=False))
        return Answer(207 if errors else 200, self._batch_answer(results, errors))

    def _create(self, object_type: str, payload: Any) -> Answer:
        inputs = self._inputs(payload)
        for item in inputs:
            self._check_properties(object_type, item["properties"])
            if object_type in ("notes", "tasks") and not item["properties"].get("hs_timestamp"):
                raise Refusal(400, "VALIDATION_ERROR", "hs_timestamp is required for notes and tasks")
            self._check_unique_values(object_type, item["properties"], None)
            for association in item.get("associations") or []:
                to_id = str(association["to"]["id"])
                if not any(to_id in records for records in self.records.values()):
                    raise Refusal(400, "VALIDATION_ERROR", f"association target {to_id} does not exist")
        results, errors = [], []
        for item in inputs:
            trace = item.get("objectWriteTraceId")
            rejected = self._rejected(object_type, list(item["properties"].values()), trace)
            if rejected is not None:
                errors.append(rejected)
                continue
            record = self._new(object_type, dict(item["properties"]))
            for association in item.get("associations") or []:
                to_id = str(association["to"]["id"])
                to_type = next(t for t, records in self.records.items() if to_id in records)
                self._link(object_type, record.id, to_type, to_id)
            results.append(self._public(record, trace))
        return Answer(207 if errors else 201, self._batch_answer(results, errors))

    def _update(self, object_type: str, payload: Any) -> Answer:
        inputs = self._inputs(payload)
        for item in inputs:
            self._check_properties(object_type, item["properties"])
        results, errors = [], []
        for item in inputs:
            record = self.records.get(object_type, {}).get(str(item["id"]))
            if record is None:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND", "message": "Object not found",
                               "context": {"id": [str(item["id"])]}, "errors": [], "links": {}})  # fmt: skip
                continue
            self._check_unique_values(object_type, item["properties"], record.id)
            self._touch(record, item["properties"])
            results.append(self._public(record))
        return Answer(207 if errors else 200, self._batch_answer(results, errors))

    def _read(self, object_type: str, payload: Any) -> Answer:
        """batch/read by `idProperty` (else by record id): each record found once, with the properties asked for
        that it holds (plus hs_object_id, createdate, hs_lastmodifieddate, which HubSpot always sends); the values no
        record holds are one OBJECT_NOT_FOUND error of a 207, naming them in its context."""
        inputs = self._inputs(payload)
        name = payload.get("idProperty") or "hs_object_id"
        if name not in self._unique(object_type):
            raise Refusal(400, "VALIDATION_ERROR", f"{name} is not a unique identifier property of {object_type}")
        asked = [str(p) for p in payload.get("properties") or []]
        results: list[dict[str, Any]] = []
        seen: set[str] = set()
        missing: list[str] = []
        for item in inputs:
            record = self._find(object_type, name, str(item["id"]))
            if record is None:
                missing.append(str(item["id"]))
                continue
            if record.id in seen:
                continue
            seen.add(record.id)
            shown = {k: v for k, v in record.properties.items() if k in asked}
            for always in ("hs_object_id", "createdate", "hs_lastmodifieddate"):
                shown[always] = record.properties[always]
            results.append({"id": record.id, "properties": shown, "createdAt": record.created_at,
                            "updatedAt": record.updated_at, "archived": False})  # fmt: skip
        errors = []
        if missing:
            kind = {"contacts": "CONTACT", "deals": "DEAL"}.get(object_type, object_type.upper().removesuffix("S"))
            errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                           "message": f"Could not get some {kind} objects, they may be deleted or not exist. Check "
                                      "that ids are valid.",
                           "context": {"ids": missing}, "errors": [], "links": {}})  # fmt: skip
        return Answer(207 if errors else 200, self._batch_answer(results, errors))

    def _merge(self, object_type: str, payload: Any) -> Answer:
        primary_id, merged_id = str(payload["primaryObjectId"]), str(payload["objectIdToMerge"])
        records = self.records.get(object_type, {})
        if primary_id == merged_id:
            raise Refusal(400, "VALIDATION_ERROR", "Cannot merge an object with itself")
        for object_id in (primary_id, merged_id):
            if object_id not in records:
                raise Refusal(404, "OBJECT_NOT_FOUND", f"Object not found. objectId are usually numeric: {object_id}")
        primary, merged = records[primary_id], records.pop(merged_id)
        missing = {k: v for k, v in merged.properties.items() if not primary.properties.get(k)}
        self._touch(primary, missing)
        for ft, fid, tt, tid in list(self.associations):
            if (ft, fid) == (object_type, merged_id):
                self.associations.discard((ft, fid, tt, tid))
                self.associations.discard((tt, tid, ft, fid))
                self._link(object_type, primary_id, tt, tid)
        return Answer(200, self._public(primary))

    def _link(self, from_type: str, from_id: str, to_type: str, to_id: str) -> None:
        self.associations.add((from_type, from_id, to_type, to_id))
        self.associations.add((to_type, to_id, from_type, from_id))

    def _associate(self, from_type: str, to_type: str, payload: Any) -> Answer:
        inputs = self._inputs(payload)
        results, errors = [], []
        for item in inputs:
            from_id, to_id = str(item["from"]["id"]), str(item["to"]["id"])
            missing = [i for t, i in ((from_type, from_id), (to_type, to_id)) if i not in self.records.get(t, {})]
            if missing:
                errors.append({"status": "error", "category": "OBJECT_NOT_FOUND",
                               "message": f"No {from_type}/{to_type} record with id {missing[0]}",
                               "context": {"ids": missing}, "errors": [], "links": {}})  # fmt: skip
                continue
            self._link(from_type, from_id, to_type, to_id)
            for (a, ai), (b, bi) in (
                ((from_type, from_id), (to_type, to_id)),
                ((to_type, to_id), (from_type, from_id)),
            ):
                spec = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": ASSOCIATION_TYPES.get((a, b), 1)}
                results.append({"from": {"id": ai}, "to": {"id": bi}, "associationSpec": spec})
        return Answer(200, self._batch_answer(results, errors))

    def _create_properties(self, object_type: str, inputs: list[Any]) -> list[dict[str, Any]]:
        known = self.properties.get(object_type)
        if known is None:
            raise Refusal(400, "VALIDATION_ERROR", f"Unable to infer object type from: {object_type}")
        created = []
        for item in inputs:
            if not isinstance(item, dict):
                raise Refusal(400, "VALIDATION_ERROR", "each input must be an object")
            missing = [k for k in ("name", "label", "type", "fieldType", "groupName") if not item.get(k)]
            if missing:
                raise Refusal(400, "VALIDATION_ERROR", f"missing required fields: {missing}")
            if (
                not NAME.match(item["name"])
                or item["type"] not in PROPERTY_TYPES
                or item["fieldType"] not in FIELD_TYPES
            ):
                raise Refusal(400, "VALIDATION_ERROR", f"invalid property definition: {item['name']}")
            if item["name"] in known:
                raise Refusal(409, "CONFLICT", f"Property named '{item['name']}' already exists.")
            definition = {**_prop(item["name"]), **item, "hasUniqueValue": bool(item.get("hasUniqueValue", False))}
            created.append(definition)
        for definition in created:
            known[definition["name"]] = definition
        return created

    def _list(self, object_type: str, query: dict[str, str]) -> Answer:
        limit = min(int(query.get("limit") or 10), 100)
        records = sorted(self.records.get(object_type, {}).values(), key=lambda r: int(r.id))
        after = int(query.get("after") or 0)
        page = [r for r in records if int(r.id) > after][:limit]
        body: dict[str, Any] = {"results": [self._public(r) for r in page]}
        if len(page) == limit and page and int(page[-1].id) < int(records[-1].id):
            body["paging"] = {"next": {"after": page[-1].id}}
        return Answer(200, body)

    def _get(self, object_type: str, object_id: str, query: dict[str, str]) -> Answer:
        record = self.records.get(object_type, {}).get(object_id)
        if record is None:
            raise Refusal(404, "OBJECT_NOT_FOUND", "Object not found")
        out = self._public(record)
        wanted = [TYPE_IDS.get(t, t) for t in (query.get("associations") or "").split(",") if t]
        if wanted:
            out["associations"] = {
                to: {"results": [{"id": tid, "type": f"{object_type[:-1]}_to_{to[:-1]}"}
                                 for ft, fid, tt, tid in sorted(self.associations)
                                 if (ft, fid, tt) == (object_type, object_id, to)]}
                for to in wanted
            }  # fmt: skip
        return Answer(200, out)

    def _associations_of(self, object_type: str, object_id: str, to_type: str) -> Answer:
        if object_id not in self.records.get(object_type, {}):
            raise Refusal(404, "OBJECT_NOT_FOUND", "Object not found")
        results = [
            {"toObjectId": tid, "associationTypes": [
                {"category": "HUBSPOT_DEFINED", "typeId": ASSOCIATION_TYPES.get((object_type, to_type), 1)}]}
            for ft, fid, tt, tid in sorted(self.associations)
            if (ft, fid, tt) == (object_type, object_id, to_type)
        ]  # fmt: skip
        return Answer(200, {"results": results})

    # --- control ------------------------------------------------------------------------------------
    def _control(self, method: str, path: str, body: bytes | None) -> Answer:
        if method == "GET" and path == "/_fake/state":
            return Answer(200, self.state())
        if method == "GET" and path == "/_fake/requests":
            return Answer(200, {"requests": self.log})
        if method == "POST" and path == "/_fake/reset":
            self.reset()
            return Answer(200, {"status": "reset"})
        if method == "POST" and path == "/_fake/faults":
            self.inject(**json.loads(body or b"{}"))
            return Answer(200, {"faults": len(self.faults), "rejects": len(self.rejects)})
        return Answer(404, {"error": f"no control route {method} {path}"})

    def inject(self, next: list[dict[str, Any]] | None = None, reject: list[dict[str, Any]] | None = None) -> None:
        """One-shot answers for the next requests under a path, and records a 207 answers as failed."""
        with self.lock:
            self.faults.extend(Fault(**f) for f in next or [])
            for r in reject or []:
                self.rejects[(r["type"], r["id"])] = (
                    r.get("message", "rejected by the fake"),
                    r.get("category", "VALIDATION_ERROR"),
                )

    # --- HTTP ---------------------------------------------------------------------------------------
    @contextlib.contextmanager
    def serving(self, port: int = 0) -> Iterator[FakeHubSpot]:
        """Serve on 127.0.0.1 (a free port unless given) while the block runs."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                result = fake.handle(self.command, self.path, dict(self.headers.items()), body)
                payload = result.encoded()
                self.send_response(result.status)
                for key, value in result.headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = answer

            def log_message(self, format: str, *args: Any) -> None:
                return None

        server = ThreadingHTTPServer((LOOPBACK, port), Handler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, name="hubspot-fake", daemon=True)
        thread.start()
        self.server = server
        try:
            yield self
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self.server = None

    @property
    def url(self) -> str:
        if self.server is None:
            raise RuntimeError("the fake is not serving")
        return f"http://{LOOPBACK}:{self.server.server_address[1]}"


def _error_body(category: str, message: str, context: dict[str, list[str]] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": "error",
        "message": message,
        "correlationId": str(uuid.uuid4()),
        "category": category,
    }
    if context:
        body["context"] = context
    return body


def _count_inputs(body: bytes | None) -> int | None:
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        return None
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    return len(inputs) if isinstance(inputs, list) else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A spec-validating fake HubSpot on 127.0.0.1 (see the docstring).")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--token", default=None, help="the only bearer token accepted (default: any)")
    parser.add_argument("--rate-limit", type=int, default=100, help="requests per 10 s (HubSpot: 100 or 190)")
    parser.add_argument("--daily-limit", type=int, default=0, help="requests per day (0: none)")
    args = parser.parse_args(argv)
    fake = FakeHubSpot(token=args.token, rate_limit=args.rate_limit, daily_limit=args.daily_limit, strict=False)
    with fake.serving(args.port):
        print(f"fake HubSpot on {fake.url} (Ctrl-C stops it); state at {fake.url}/_fake/state", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            threading.Event().wait()


if __name__ == "__main__":
    main()
