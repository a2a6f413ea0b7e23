"""Test doubles for the HubSpot adapter: transports that never open a socket, an in-memory id ledger, a manual
clock, and answers in HubSpot's documented shapes (each checked against the OpenAPI spec before it is used)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from crmsync.crm.hubspot import HubSpotCrm
from crmsync.crm.transport import HttpResponse, TransportError
from crmsync.store.crm_ledger import LedgerEntry
from crmsync.store.rate_budget import Decision
from local import hubspot_spec
from local.hubspot_fake import FakeHubSpot

NOW = "2026-11-26T10:00:00.000Z"


@dataclass(frozen=True)
class Sent:
    method: str
    path: str
    body: Any
    headers: Mapping[str, str]
    timeout: float


Script = HttpResponse | TransportError | Callable[[Sent], HttpResponse]


class SpecCheckingTransport:
    """Answers from a script, in order. Every request is validated against HubSpot's OpenAPI spec first (a request
    the spec rejects raises SpecViolation and fails the test), and so is every scripted answer but a 429 (HubSpot's
    documented 429 body is not the spec's Error schema)."""

    def __init__(self, *script: Script) -> None:
        self.script = list(script)
        self.sent: list[Sent] = []

    def add(self, *script: Script) -> None:
        self.script.extend(script)

    def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        hubspot_spec.validate_request(method, parts.path, body, query=query, headers=headers)
        sent = Sent(method, parts.path, json.loads(body) if body else None, dict(headers), timeout)
        self.sent.append(sent)
        if not self.script:
            raise AssertionError(f"unexpected request {method} {parts.path}")
        step = self.script.pop(0)
        if isinstance(step, TransportError):
            raise step
        answer = step(sent) if callable(step) else step
        if answer.status != 429:
            hubspot_spec.validate_response(method, parts.path, answer.status, answer.body, query=query)
        return answer


class FakeHubSpotTransport:
    """HubSpotCrm's requests straight into FakeHubSpot.handle: the fake portal without a socket."""

    def __init__(self, fake: FakeHubSpot, *, fail_first: Sequence[TransportError] = ()) -> None:
        self.fake = fake
        self.fail_first = list(fail_first)
        self.sent: list[Sent] = []

    def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        parts = urlsplit(url)
        self.sent.append(Sent(method, parts.path, json.loads(body) if body else None, dict(headers), timeout))
        if self.fail_first:
            raise self.fail_first.pop(0)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        answer = self.fake.handle(method, target, headers, body)
        return HttpResponse(answer.status, answer.encoded(), {k.lower(): v for k, v in answer.headers.items()})


@dataclass
class MemoryLedger:
    """The id ledger (crmsync.store.crm_ledger.CrmIdLedger) in memory."""

    clock: Callable[[], float]
    entries: dict[tuple[str, str], LedgerEntry] = field(default_factory=dict)

    def lookup(self, object_type: str, keys: Sequence[str]) -> dict[str, LedgerEntry]:
        return {k: self.entries[(object_type, k)] for k in keys if (object_type, k) in self.entries}

    def claim(self, object_type: str, key: str, token: str) -> bool:
        if (object_type, key) in self.entries:
            return False
        self.entries[(object_type, key)] = LedgerEntry(key, "claimed", None, self.clock(), token)
        return True

    def record(self, object_type: str, key: str, crm_id: str) -> None:
        entry = self.entries[(object_type, key)]
        self.entries[(object_type, key)] = LedgerEntry(key, "created", crm_id, entry.claimed_at, entry.token)

    def mark_unknown(self, object_type: str, key: str, token: str) -> None:
        entry = self.entries.get((object_type, key))
        if entry is not None and entry.token == token:
            self.entries[(object_type, key)] = LedgerEntry(key, "unknown", None, entry.claimed_at, token)

    def release(self, object_type: str, key: str, token: str) -> None:
        entry = self.entries.get((object_type, key))
        if entry is not None and entry.token == token and entry.state == "claimed":
            del self.entries[(object_type, key)]


@dataclass
class ManualClock:
    """Time that passes only when someone sleeps; `time_left` counts down from `budget` seconds."""

    now: float = 1_764_151_200.0  # 2025-11-26T10:00:00Z
    budget: float = float("inf")
    sleeps: list[float] = field(default_factory=list)

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        self.budget -= seconds

    def time_left(self) -> float:
        return self.budget


@dataclass
class ScriptedBudget:
    """A rate budget that answers from a list of decisions (then grants), and records holds."""

    decisions: list[Decision] = field(default_factory=list)
    holds: list[float] = field(default_factory=list)
    taken: int = 0

    def try_take(self) -> Decision:
        decision = self.decisions.pop(0) if self.decisions else Decision(True)
        self.taken += decision.granted
        return decision

    def hold(self, seconds: float) -> None:
        self.holds.append(seconds)


def hubspot(transport: Any, clock: ManualClock | None = None, **kwargs: Any) -> HubSpotCrm:
    """A HubSpotCrm on a test transport, a memory ledger and a manual clock (no real sleeping)."""
    clock = clock or ManualClock()
    kwargs.setdefault("ledger", MemoryLedger(clock))
    return HubSpotCrm(
        transport=transport,
        token="pat-test-token",
        sleep=clock.sleep,
        clock=clock,
        time_left=clock.time_left,
        jitter=lambda: 0.5,
        **kwargs,
    )


# --- answers in HubSpot's documented shapes ---------------------------------------------------------------------
def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> HttpResponse:
    return HttpResponse(status, json.dumps(body).encode(), {k.lower(): v for k, v in (headers or {}).items()})


def _record(record_id: str, properties: Mapping[str, str], trace: str | None = None, **extra: Any) -> dict[str, Any]:
    out = {"id": record_id, "properties": dict(properties), "createdAt": NOW, "updatedAt": NOW, "archived": False}
    out |= extra
    if trace is not None:
        out["objectWriteTraceId"] = trace
    return out


def record(record_id: str, properties: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A SimplePublicObject."""
    return _record(record_id, properties or {})


def merged(record_id: str) -> HttpResponse:
    """The merge answer: the primary record."""
    return _json(200, _record(record_id, {}))


def batch(results: list[dict[str, Any]], errors: list[dict[str, Any]] | None = None, status: int = 200) -> HttpResponse:
    body: dict[str, Any] = {"status": "COMPLETE", "results": results, "startedAt": NOW, "completedAt": NOW}
    if errors:
        body |= {"errors": errors, "numErrors": len(errors)}
    return _json(status, body)


def standard_error(
    message: str, *, category: str = "VALIDATION_ERROR", context: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """One StandardError of a 207 answer."""
    return {"status": "error", "category": category, "message": message, "context": context or {}, "errors": [],
            "links": {}}  # fmt: skip


def upserted(
    ids: Sequence[str], *, new: bool = True, skip: Sequence[int] = (), errors: list[dict[str, Any]] | None = None
) -> Callable[[Sent], HttpResponse]:
    """A batch/upsert answer: input n gets ids[n] (inputs in `skip` get no result); 207 when errors are given."""

    def answer(sent: Sent) -> HttpResponse:
        results = [
            _record(ids[n], {item["idProperty"]: item["id"]}, item.get("objectWriteTraceId"), new=new)
            for n, item in enumerate(sent.body["inputs"])
            if n not in skip
        ]
        return batch(results, errors, 207 if errors else 200)

    return answer


def created(
    ids: Sequence[str], *, skip: Sequence[int] = (), errors: list[dict[str, Any]] | None = None
) -> Callable[[Sent], HttpResponse]:
    """A batch/create answer (201; 207 with errors), results in reverse order as HubSpot does not promise any."""

    def answer(sent: Sent) -> HttpResponse:
        results = [
            _record(ids[n], item["properties"], item.get("objectWriteTraceId"))
            for n, item in enumerate(sent.body["inputs"])
            if n not in skip
        ]
        return batch(results[::-1], errors, 207 if errors else 201)

    return answer


def associated(sent: Sent) -> HttpResponse:
    spec = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": 3}
    return batch([{"from": i["from"], "to": i["to"], "associationSpec": spec} for i in sent.body["inputs"]])


def error(status: int, message: str, category: str = "VALIDATION_ERROR", **extra: Any) -> HttpResponse:
    """HubSpot's Error body (the specs' default response)."""
    return _json(status, {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
                          "category": category, **extra})  # fmt: skip


def rate_limited(policy: str, retry_after: str | None = None) -> HttpResponse:
    """HubSpot's documented 429 body (usage guidelines page)."""
    limit = "daily" if policy == "DAILY" else "ten_secondly_rolling"
    body = {"status": "error", "message": f"You have reached your {limit} limit.", "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()), "policyName": policy, "requestId": str(uuid.uuid4())}  # fmt: skip
    return _json(429, body, {"Retry-After": retry_after} if retry_after else None)


def server_error(status: int = 502) -> HttpResponse:
    return error(status, "Internal error", "INTERNAL_ERROR")
