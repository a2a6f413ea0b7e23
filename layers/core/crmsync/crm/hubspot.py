"""The HubSpot adapter: the CRM port on HubSpot's batch write APIs, with the fewest calls they allow.

- upsert contacts / deals: `POST /crm/v3/objects/{type}/batch/upsert` (<= 100 inputs a call) by a unique property
  (contacts `email`, or `crmsync_external_id` for a customer without one; deals `crmsync_external_id`). Inputs
  naming one key twice are sent once (HubSpot refuses a batch that names an id twice).
- notes / tasks: HubSpot cannot upsert them, so they are created once with `POST /crm/v3/objects/{type}/batch/create`
  and the ids they got are recorded against their crmsync external ids in an id ledger (the state table); a record
  already in the ledger is updated by its id (`batch/update`). A create is claimed in the ledger before it is sent,
  so two writers never both create it, and a create without a clear answer (5xx, timeout) is never sent again:
  a retry never makes a note twice (CrmOutcomeUnknown instead). HubSpot activities take no custom property, so the
  external id stays in the ledger and is not sent as a property.
- match policies other than upsert (the mapping's `match_policy`): batch/upsert cannot leave an existing record alone
  or refuse to create one, so the records are first read by their key (`POST /crm/v3/objects/{type}/batch/read` with
  `idProperty`, <= 100 a call; a 207 lists the keys no record holds), then create_only creates the missing ones
  (`batch/create`, properties including the key) and leaves the others unchanged, and update_only updates the
  found ones by record id (`batch/update`) and reports the missing ones skipped. Per 100 records: one read plus one
  create or update call (none when nothing is left to write), where upsert takes one call. A record created by
  another writer between the read and the create is refused by its unique key (409): the batch is retried and the
  next read finds it. Notes and tasks keep their ledger: create_only never updates a recorded one, update_only
  never creates one.
- associations: `POST /crm/v4/associations/{from}/{to}/batch/associate/default` (<= 100 pairs a call).
- merge: `POST /crm/v3/objects/{type}/merge`; merging a record that is already gone (404) changes nothing.
- erasure: contacts are deleted with `POST /crm/v3/objects/contacts/gdpr-delete` (one call each: permanent, and
  HubSpot blocks the email from being tracked again), other objects archived with `batch/archive`; anonymising clears
  properties with `batch/update` (every property set to ""). A record already gone (404) answers not_found.
No read or search call is made on the write path, except the batch/read the create_only and update_only policies need.

Answers: 200/201 -> results; 207 -> the results that succeeded, and CrmRejected naming each failed record with its
error; 400/409 (and other 4xx) -> CrmRejected for the records of that call; 401/403 -> CrmNotConfigured; 429
TEN_SECONDLY_ROLLING -> wait (Retry-After, else `rate_limit_wait_seconds`) and send again while the invocation has
time, else CrmRateLimited; 429 DAILY -> CrmRateLimited at once, and the shared budget is held so no other Lambda
keeps asking; 5xx and timeouts -> exponential backoff with jitter, then CrmUnavailable.

Every request first takes a token from the shared rate budget (crmsync.store.rate_budget), waiting while the
invocation has time for it.

Retries are hand-written, not tenacity: the wait depends on the answer (429 policy, Retry-After) and on the
Lambda's remaining time, and a create must not be repeated after an unclear answer; the loop is shorter than that
configuration would be.
"""

from __future__ import annotations

import json
import math
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from crmsync.crm.errors import (
    CrmNotConfigured,
    CrmOutcomeUnknown,
    CrmRateLimited,
    CrmRejected,
    CrmUnavailable,
    RecordError,
    mask,
)
from crmsync.crm.port import (
    CREATE_ONLY_EXISTS,
    UPDATE_ONLY_MISSING,
    Association,
    ErasureAnswer,
    MatchPolicy,
    UpsertInput,
    UpsertResult,
)
from crmsync.crm.transport import HttpResponse, Transport, TransportError
from crmsync.observability import logger
from crmsync.store.crm_ledger import LedgerEntry
from crmsync.store.rate_budget import Decision

DEFAULT_BASE_URL = "https://api.hubapi.com"
BATCH_LIMIT = 100
CREATE_ONCE = frozenset({"notes", "tasks"})  # objects HubSpot cannot upsert: created once, ids in the ledger
DAILY_HOLD_SECONDS = 900.0  # after a DAILY 429, nobody asks again for this long (then one request probes)
DAILY = "DAILY"
SECONDLY = "TEN_SECONDLY_ROLLING"


class IdLedger(Protocol):
    """Where create-once records' CRM ids are kept (crmsync.store.crm_ledger.CrmIdLedger in production)."""

    def lookup(self, object_type: str, keys: Sequence[str]) -> dict[str, LedgerEntry]: ...
    def claim(self, object_type: str, key: str, token: str) -> bool: ...
    def record(self, object_type: str, key: str, crm_id: str) -> None: ...
    def mark_unknown(self, object_type: str, key: str, token: str) -> None: ...
    def release(self, object_type: str, key: str, token: str) -> None: ...


class RequestBudget(Protocol):
    """The shared rate budget (crmsync.store.rate_budget.RateBudget in production)."""

    def try_take(self) -> Decision: ...
    def hold(self, seconds: float) -> None: ...


class Unlimited:
    """No shared budget: every request may go (the setup command, tests)."""

    def try_take(self) -> Decision:
        return Decision(True)

    def hold(self, seconds: float) -> None:
        return None


class _NoClearAnswer(Exception):
    """A request that must not be repeated got no clear answer (5xx or no answer after sending)."""


def _forever() -> float:
    return math.inf


@dataclass
class HubSpotCrm:
    transport: Transport
    token: str
    ledger: IdLedger | None = None  # needed for notes and tasks
    budget: RequestBudget = field(default_factory=Unlimited)
    base_url: str = DEFAULT_BASE_URL
    time_left: Callable[[], float] = _forever  # seconds this invocation has left
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.time
    jitter: Callable[[], float] = random.random
    request_timeout: float = 10.0
    max_attempts: int = 4  # per request, for 5xx / timeouts / connection errors
    backoff_seconds: float = 0.5  # doubles each attempt, half of it random
    backoff_max_seconds: float = 8.0
    rate_limit_wait_seconds: float = 10.0  # after a TEN_SECONDLY_ROLLING 429 without Retry-After
    max_rate_limit_waits: int = 6
    max_budget_wait_seconds: float = 60.0
    reserve_seconds: float = 3.0  # left to the caller after the last request (state writes)
    claim_seconds: float = 300.0  # a ledger claim older than this belongs to a writer that died
    name: str = "hubspot"
    requests: int = 0  # requests sent by this instance (for logs and benchmarks)

    # --- the port ---------------------------------------------------------------------------------
    def upsert(
        self, object_type: str, inputs: Sequence[UpsertInput], policy: MatchPolicy = "upsert"
    ) -> list[UpsertResult]:
        if not inputs:
            return []
        if object_type in CREATE_ONCE:
            return self._create_once(object_type, inputs, policy)
        # One input per key (the last one's properties over the earlier ones'), grouped by id property.
        merged: dict[tuple[str, str], UpsertInput] = {}
        for item in inputs:
            key = _key(item)
            earlier = merged.get(key)
            merged[key] = (
                item
                if earlier is None
                else UpsertInput(item.id_property, item.id_value, earlier.properties | item.properties)
            )
        results: dict[tuple[str, str], UpsertResult] = {}
        errors: list[RecordError] = []
        for id_property in dict.fromkeys(k[0] for k in merged):
            group = [item for k, item in merged.items() if k[0] == id_property]
            if policy != "upsert":
                self._write_by_policy(object_type, id_property, group, policy, results, errors)
                continue
            for chunk in _chunks(group):
                self._upsert_chunk(object_type, chunk, results, errors)
        if errors:
            raise CrmRejected(f"upsert {object_type}", errors)
        return [results[_key(item)] for item in inputs]

    def associate(self, from_type: str, to_type: str, pairs: Sequence[Association]) -> None:
        unique = list(dict.fromkeys(pairs))
        errors: list[RecordError] = []
        path = f"/crm/v4/associations/{from_type}/{to_type}/batch/associate/default"
        for chunk in _chunks(unique):
            body = {"inputs": [{"from": {"id": p.from_id}, "to": {"id": p.to_id}} for p in chunk]}
            answer = self._send("POST", path, body, operation=f"associate {from_type}->{to_type}")
            keys = [f"{p.from_id}->{p.to_id}" for p in chunk]
            if answer.status in (200, 201, 207):
                errors.extend(_pair_error(e, chunk, answer.status) for e in _errors_in(answer.json()))
            else:
                errors.extend(_whole_call_errors(answer, keys))
        if errors:
            raise CrmRejected(f"associate {from_type}->{to_type}", errors)

    def read(
        self, object_type: str, id_property: str, values: Sequence[str], properties: Sequence[str] = ()
    ) -> dict[str, dict[str, str]]:
        """Reconciliation's batched read-back (CrmPort.read): `POST /crm/v3/objects/{type}/batch/read` with
        `idProperty`, <= 100 values a request, asking for the id property and `properties`. Each result is matched
        back to the value asked for by its id property (emails without regard to case, as HubSpot keeps them); values
        HubSpot reports as OBJECT_NOT_FOUND (a 207) are left out; any other refusal raises CrmRejected. A property
        HubSpot answers null is read as ""."""
        wanted = list(dict.fromkeys(v for v in values if v))
        asked = {_key(UpsertInput(id_property, v, {})): v for v in wanted}
        names = list(dict.fromkeys([id_property, *properties]))
        found: dict[str, dict[str, str]] = {}
        errors: list[RecordError] = []
        path = f"/crm/v3/objects/{object_type}/batch/read"
        for chunk in _chunks(wanted):
            body = {
                "idProperty": id_property,
                "inputs": [{"id": value} for value in chunk],
                "properties": names,
                "propertiesWithHistory": [],
            }
            answer = self._send("POST", path, body, operation=f"read {object_type}")
            if answer.status not in (200, 207):
                errors.extend(_whole_call_errors(answer, chunk))
                continue
            payload = answer.json() or {}
            for result in payload.get("results") or []:
                got = (result.get("properties") or {}) if isinstance(result, dict) else {}
                held = got.get(id_property)
                original = asked.get(_key(UpsertInput(id_property, str(held), {}))) if held is not None else None
                if original is not None:
                    found[original] = {k: "" if v is None else str(v) for k, v in got.items()}
            refused = [
                e for e in _errors_in(payload) if e.get("category") != "OBJECT_NOT_FOUND" and _status(e, 0) != 404
            ]
            for error in refused:
                named = _named(error, None, chunk)
                message, category = str(error.get("message") or ""), str(error.get("category") or "")
                status = _status(error, answer.status)
                errors.append(RecordError(named or "a value of this call", message, status, category))
        if errors:
            raise CrmRejected(f"read {object_type}", errors)
        return found

    def merge(self, object_type: str, primary_id: str, merged_id: str) -> None:
        if primary_id == merged_id:
            return
        body = {"primaryObjectId": primary_id, "objectIdToMerge": merged_id}
        answer = self._send("POST", f"/crm/v3/objects/{object_type}/merge", body, operation=f"merge {object_type}")
        if answer.status in (200, 201):
            return
        message, category = _error_of(answer)
        if answer.status == 404 or (answer.status == 400 and "merged" in message.lower()):
            logger.info("hubspot merge: nothing left to merge", object_type=object_type, merged=merged_id)
            return
        raise CrmRejected(
            f"merge {object_type}", [RecordError(f"{merged_id}->{primary_id}", message, answer.status, category)]
        )

    # --- erasure ----------------------------------------------------------------------------------
    def delete(self, object_type: str, ids: Sequence[str]) -> list[ErasureAnswer]:
        if object_type == "contacts":
            return [self._gdpr_delete(record_id) for record_id in ids]
        answers: list[ErasureAnswer] = []
        for chunk in _chunks(list(ids)):
            body = {"inputs": [{"id": record_id} for record_id in chunk]}
            path = f"/crm/v3/objects/{object_type}/batch/archive"
            answer = self._send("POST", path, body, operation=f"archive {object_type}")
            if answer.status not in (200, 204):
                raise CrmRejected(f"archive {object_type}", _whole_call_errors(answer, chunk))
            answers.extend(
                ErasureAnswer(record_id, "deleted", f"HTTP {answer.status} batch/archive") for record_id in chunk
            )
        return answers

    def _gdpr_delete(self, record_id: str) -> ErasureAnswer:
        body = {"objectId": record_id}
        answer = self._send("POST", "/crm/v3/objects/contacts/gdpr-delete", body, operation="gdpr-delete contacts")
        if answer.status in (200, 204):
            return ErasureAnswer(record_id, "deleted", f"HTTP {answer.status} gdpr-delete")
        if answer.status == 404:
            return ErasureAnswer(record_id, "not_found", "HTTP 404 gdpr-delete")
        raise CrmRejected("gdpr-delete contacts", _whole_call_errors(answer, [record_id]))

    def anonymise(self, object_type: str, ids: Sequence[str], properties: Sequence[str]) -> list[ErasureAnswer]:
        answers: list[ErasureAnswer] = []
        cleared = dict.fromkeys(properties, "")
        for chunk in _chunks(list(ids)):
            body = {"inputs": [{"id": record_id, "properties": cleared} for record_id in chunk]}
            path = f"/crm/v3/objects/{object_type}/batch/update"
            answer = self._send("POST", path, body, operation=f"anonymise {object_type}")
            if answer.status not in (200, 201, 207):
                raise CrmRejected(f"anonymise {object_type}", _whole_call_errors(answer, chunk))
            payload = answer.json() or {}
            updated = {str(r.get("id")) for r in payload.get("results") or [] if isinstance(r, dict)}
            missing = [record_id for record_id in chunk if record_id not in updated]
            refused = [
                e for e in _errors_in(payload) if e.get("category") != "OBJECT_NOT_FOUND" and _status(e, 0) != 404
            ]
            if missing and refused:
                raise CrmRejected(f"anonymise {object_type}", _batch_errors(payload, missing, answer.status))
            for record_id in chunk:
                outcome = "anonymised" if record_id in updated else "not_found"
                answers.append(ErasureAnswer(record_id, outcome, f"HTTP {answer.status} batch/update"))
        return answers

    # --- upsert -----------------------------------------------------------------------------------
    def _upsert_chunk(
        self,
        object_type: str,
        chunk: list[UpsertInput],
        results: dict[tuple[str, str], UpsertResult],
        errors: list[RecordError],
    ) -> None:
        traces = [str(n) for n in range(len(chunk))]
        inputs = [
            {"idProperty": item.id_property, "id": item.id_value, "properties": item.properties,
             "objectWriteTraceId": t}
            for item, t in zip(chunk, traces, strict=True)
        ]  # fmt: skip
        self._send_traced(object_type, "upsert", inputs, chunk, traces, results, errors, created=None)

    def _send_traced(
        self,
        object_type: str,
        action: str,
        inputs: list[dict[str, Any]],
        chunk: list[UpsertInput],
        traces: list[str],
        results: dict[tuple[str, str], UpsertResult],
        errors: list[RecordError],
        *,
        created: bool | None,
    ) -> None:
        """POST batch/<action> of inputs carrying objectWriteTraceId; each result matched back to its input by trace
        (`created`: what the result says, or None to read HubSpot's `new`), every other input's error recorded."""
        answer = self._send(
            "POST",
            f"/crm/v3/objects/{object_type}/batch/{action}",
            {"inputs": inputs},
            operation=f"{action} {object_type}",
        )
        keys = [item.id_value for item in chunk]
        if answer.status not in (200, 201, 207):
            errors.extend(_whole_call_errors(answer, keys))
            return
        payload = answer.json() or {}
        matched = _match_results(payload.get("results") or [], chunk, traces)
        for n, item in enumerate(chunk):
            if n in matched:
                found = matched[n]
                new = bool(found.get("new", False)) if created is None else created
                results[_key(item)] = UpsertResult(id=str(found["id"]), created=new)
        missing = [item.id_value for n, item in enumerate(chunk) if n not in matched]
        errors.extend(_batch_errors(payload, missing, answer.status, traces=dict(zip(traces, keys, strict=True))))

    # --- create_only / update_only: read by key, then create or update ----------------------------
    def _write_by_policy(
        self,
        object_type: str,
        id_property: str,
        group: list[UpsertInput],
        policy: MatchPolicy,
        results: dict[tuple[str, str], UpsertResult],
        errors: list[RecordError],
    ) -> None:
        found: dict[tuple[str, str], str] = {}  # key -> record id
        unread: set[tuple[str, str]] = set()  # keys whose read got no clear answer: neither created nor updated
        for chunk in _chunks(group):
            self._read_ids(object_type, id_property, chunk, found, unread, errors)
        to_create: list[UpsertInput] = []
        to_update: list[tuple[UpsertInput, str]] = []
        for item in group:
            key = _key(item)
            if key in unread:
                continue
            crm_id = found.get(key)
            if policy == "create_only" and crm_id is not None:
                results[key] = UpsertResult(id=crm_id, created=False, skipped=CREATE_ONLY_EXISTS)
            elif policy == "create_only":
                to_create.append(item)
            elif crm_id is not None:
                to_update.append((item, crm_id))
            else:
                results[key] = UpsertResult(id="", created=False, skipped=UPDATE_ONLY_MISSING)
        for create_chunk in _chunks(to_create):
            self._create_keyed(object_type, create_chunk, results, errors)
        for update_chunk in _chunks(to_update):
            self._update_keyed(object_type, update_chunk, results, errors)
        skipped = sum(1 for item in group if results.get(_key(item), UpsertResult("", False)).skipped)
        if skipped:
            logger.info("hubspot match policy left records alone", object_type=object_type, policy=policy,
                        skipped=skipped)  # fmt: skip

    def _read_ids(
        self,
        object_type: str,
        id_property: str,
        chunk: list[UpsertInput],
        found: dict[tuple[str, str], str],
        unread: set[tuple[str, str]],
        errors: list[RecordError],
    ) -> None:
        """Which of the chunk's keys a record holds (batch/read by idProperty): a key it does not find is answered
        in a 207's errors (OBJECT_NOT_FOUND), or simply has no result."""
        body = {
            "idProperty": id_property,
            "inputs": [{"id": item.id_value} for item in chunk],
            "properties": [id_property],
            "propertiesWithHistory": [],
        }
        answer = self._send("POST", f"/crm/v3/objects/{object_type}/batch/read", body, operation=f"read {object_type}")
        keys = [item.id_value for item in chunk]
        if answer.status not in (200, 207):
            errors.extend(_whole_call_errors(answer, keys))
            unread.update(_key(item) for item in chunk)
            return
        payload = answer.json() or {}
        for result in payload.get("results") or []:
            if not isinstance(result, dict) or "id" not in result:
                continue
            value = (result.get("properties") or {}).get(id_property)
            if value is not None:
                found[_key(UpsertInput(id_property, str(value), {}))] = str(result["id"])
        unclear = [e for e in _errors_in(payload) if e.get("category") != "OBJECT_NOT_FOUND" and _status(e, 0) != 404]
        if unclear:
            # Not knowing whether a record exists, nothing is created or updated for the keys without a result.
            missing = [item for item in chunk if _key(item) not in found]
            unread.update(_key(item) for item in missing)
            errors.extend(_batch_errors({"errors": unclear}, [item.id_value for item in missing], answer.status))

    def _create_keyed(
        self,
        object_type: str,
        chunk: list[UpsertInput],
        results: dict[tuple[str, str], UpsertResult],
        errors: list[RecordError],
    ) -> None:
        """batch/create of records found by a unique key (contacts, deals): the key is sent as a property, so a
        repeated create is refused (409) rather than duplicated."""
        traces = [str(n) for n in range(len(chunk))]
        inputs = [
            {"properties": {**item.properties, item.id_property: item.id_value}, "associations": [],
             "objectWriteTraceId": trace}
            for item, trace in zip(chunk, traces, strict=True)
        ]  # fmt: skip
        self._send_traced(object_type, "create", inputs, chunk, traces, results, errors, created=True)

    def _update_keyed(
        self,
        object_type: str,
        chunk: list[tuple[UpsertInput, str]],
        results: dict[tuple[str, str], UpsertResult],
        errors: list[RecordError],
    ) -> None:
        """batch/update by record id of records a read just found; one deleted since is skipped, as if not found."""
        inputs = [
            {"id": crm_id, "properties": {k: v for k, v in item.properties.items() if k != item.id_property}}
            for item, crm_id in chunk
        ]
        answer = self._send(
            "POST", f"/crm/v3/objects/{object_type}/batch/update", {"inputs": inputs}, operation=f"update {object_type}"
        )
        keys = [item.id_value for item, _ in chunk]
        if answer.status not in (200, 201, 207):
            errors.extend(_whole_call_errors(answer, keys))
            return
        payload = answer.json() or {}
        updated = {str(r.get("id")) for r in payload.get("results") or [] if isinstance(r, dict)}
        refused = [e for e in _errors_in(payload) if e.get("category") != "OBJECT_NOT_FOUND" and _status(e, 0) != 404]
        missing: list[str] = []
        for item, crm_id in chunk:
            if crm_id in updated:
                results[_key(item)] = UpsertResult(id=crm_id, created=False)
            elif not refused:  # gone since the read: update_only creates nothing
                results[_key(item)] = UpsertResult(id="", created=False, skipped=UPDATE_ONLY_MISSING)
            else:
                missing.append(item.id_value)
        by_id = {crm_id: item.id_value for item, crm_id in chunk}  # errors name the record id in their context
        errors.extend(_batch_errors({"errors": refused}, missing, answer.status, traces=by_id))

    # --- create once (notes, tasks) ---------------------------------------------------------------
    def _create_once(
        self, object_type: str, inputs: Sequence[UpsertInput], policy: MatchPolicy = "upsert"
    ) -> list[UpsertResult]:
        ledger = self.ledger
        if ledger is None:
            raise CrmNotConfigured(f"create {object_type}: HubSpotCrm has no id ledger, so it cannot create once")
        by_key: dict[str, UpsertInput] = {}
        for item in inputs:
            earlier = by_key.get(item.id_value)
            by_key[item.id_value] = (
                item
                if earlier is None
                else UpsertInput(item.id_property, item.id_value, earlier.properties | item.properties)
            )
        entries = ledger.lookup(object_type, list(by_key))
        results: dict[str, UpsertResult] = {}
        errors: list[RecordError] = []
        unknown: list[str] = []
        busy: list[str] = []
        existing: list[tuple[str, str]] = []  # (key, crm id)
        fresh: list[str] = []
        for key in by_key:
            entry = entries.get(key)
            if entry is None and policy == "update_only":
                results[key] = UpsertResult(id="", created=False, skipped=UPDATE_ONLY_MISSING)
            elif entry is None:
                fresh.append(key)
            elif entry.state == "created" and entry.crm_id and policy == "create_only":
                results[key] = UpsertResult(id=entry.crm_id, created=False, skipped=CREATE_ONLY_EXISTS)
            elif entry.state == "created" and entry.crm_id:
                existing.append((key, entry.crm_id))
            elif entry.state == "unknown" or self.clock() - entry.claimed_at > self.claim_seconds:
                unknown.append(key)
            else:
                busy.append(key)
        for batch in _chunks(fresh):
            # Claimed just before its own call: a call that fails before sending releases exactly its claims.
            claimed: list[tuple[str, str]] = []  # (key, token)
            for key in batch:
                token = uuid.uuid4().hex
                if ledger.claim(object_type, key, token):
                    claimed.append((key, token))
                else:
                    busy.append(key)
            if claimed:
                self._create_chunk(ledger, object_type, claimed, by_key, results, errors, unknown)
        for update_chunk in _chunks(existing):
            self._update_chunk(object_type, update_chunk, by_key, results, errors)
        if unknown:
            raise CrmOutcomeUnknown(
                f"create {object_type}: {len(unknown)} record(s) may or may not exist in HubSpot (an earlier create got"
                f" no clear answer), so they are not created again: {', '.join(mask(k) for k in unknown[:10])}. Check"
                " HubSpot, then record the id or forget the claim (crmsync.store.crm_ledger) before redriving"
            )
        if errors:
            raise CrmRejected(f"create {object_type}", errors)
        if busy:
            raise CrmUnavailable(
                f"create {object_type}: another writer is creating {len(busy)} record(s) right now; retry later"
            )
        return [results[item.id_value] for item in inputs]

    def _create_chunk(
        self,
        ledger: IdLedger,
        object_type: str,
        chunk: list[tuple[str, str]],
        by_key: dict[str, UpsertInput],
        results: dict[str, UpsertResult],
        errors: list[RecordError],
        unknown: list[str],
    ) -> None:
        traces = [str(n) for n in range(len(chunk))]
        inputs = []
        for (key, _), trace in zip(chunk, traces, strict=True):
            item = by_key[key]
            properties = {k: v for k, v in item.properties.items() if k != item.id_property}
            inputs.append({"properties": properties, "associations": [], "objectWriteTraceId": trace})
        try:
            answer = self._send(
                "POST", f"/crm/v3/objects/{object_type}/batch/create", {"inputs": inputs},
                operation=f"create {object_type}", repeatable=False,
            )  # fmt: skip
        except _NoClearAnswer:
            for key, token in chunk:
                ledger.mark_unknown(object_type, key, token)
            unknown.extend(key for key, _ in chunk)
            return
        except Exception:  # no request went out (rate limit, budget, config): the claims are free again
            for key, token in chunk:
                ledger.release(object_type, key, token)
            raise
        keys = [key for key, _ in chunk]
        if answer.status not in (200, 201, 207):
            for key, token in chunk:
                ledger.release(object_type, key, token)
            errors.extend(_whole_call_errors(answer, keys))
            return
        payload = answer.json() or {}
        matched = _match_results(payload.get("results") or [], None, traces)
        missing: list[str] = []
        for n, (key, token) in enumerate(chunk):
            if n in matched:
                crm_id = str(matched[n]["id"])
                ledger.record(object_type, key, crm_id)
                results[key] = UpsertResult(id=crm_id, created=True)
            else:
                ledger.release(object_type, key, token)  # HubSpot reported it failed: nothing was created
                missing.append(key)
        errors.extend(_batch_errors(payload, missing, answer.status, traces=dict(zip(traces, keys, strict=True))))

    def _update_chunk(
        self,
        object_type: str,
        chunk: list[tuple[str, str]],
        by_key: dict[str, UpsertInput],
        results: dict[str, UpsertResult],
        errors: list[RecordError],
    ) -> None:
        inputs = []
        for key, crm_id in chunk:
            item = by_key[key]
            properties = {k: v for k, v in item.properties.items() if k != item.id_property}
            inputs.append({"id": crm_id, "properties": properties})
        answer = self._send(
            "POST", f"/crm/v3/objects/{object_type}/batch/update", {"inputs": inputs}, operation=f"update {object_type}"
        )
        keys = [key for key, _ in chunk]
        if answer.status not in (200, 201, 207):
            errors.extend(_whole_call_errors(answer, keys))
            return
        payload = answer.json() or {}
        updated = {str(r.get("id")) for r in payload.get("results") or [] if isinstance(r, dict)}
        missing: list[str] = []
        for key, crm_id in chunk:
            if crm_id in updated:
                results[key] = UpsertResult(id=crm_id, created=False)
            else:
                missing.append(key)
        errors.extend(_batch_errors(payload, missing, answer.status, traces={crm_id: key for key, crm_id in chunk}))

    # --- one request ------------------------------------------------------------------------------
    def request(self, method: str, path: str, body: Any = None, *, operation: str = "") -> HttpResponse:
        """Any HubSpot request within the budget and retries (e.g. the setup command's properties API calls)."""
        return self._send(method, path, body, operation=operation or f"{method} {path}")

    def _send(self, method: str, path: str, body: Any, *, operation: str, repeatable: bool = True) -> HttpResponse:
        """Send one request within the rate budget; returns HubSpot's answer unless it is a 429 or a 5xx, which
        are waited out and sent again (a request that is not `repeatable` is never sent again after an unclear
        answer: _NoClearAnswer)."""
        data = json.dumps(body, separators=(",", ":")).encode() if body is not None else None
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Accept": "application/json",
            "User-Agent": "crmsync",
            **({"Content-Type": "application/json"} if data is not None else {}),
        }
        url = self.base_url.rstrip("/") + path
        attempt = 0
        rate_waits = 0
        while True:
            attempt += 1
            self._take_token()
            timeout = max(1.0, min(self.request_timeout, self.time_left() - self.reserve_seconds))
            self.requests += 1
            try:
                answer = self.transport.send(method, url, headers, data, timeout)
            except TransportError as exc:
                if exc.sent and not repeatable:
                    logger.warning("hubspot request without a clear answer", operation=operation, error=str(exc))
                    raise _NoClearAnswer(str(exc)) from exc
                problem = str(exc)
            else:
                if answer.status == 429:
                    self._rate_limited(answer, operation, rate_waits)
                    rate_waits += 1
                    attempt -= 1  # a 429 was not processed: it does not use up an attempt
                    continue
                if answer.status < 500:
                    return answer
                if not repeatable:
                    logger.warning("hubspot request answered 5xx", operation=operation, status=answer.status)
                    raise _NoClearAnswer(f"HTTP {answer.status}")
                problem = f"HTTP {answer.status}"
            wait = min(self.backoff_max_seconds, self.backoff_seconds * 2 ** (attempt - 1))
            wait = wait / 2 + wait / 2 * self.jitter()
            if attempt >= self.max_attempts or not self._can_wait(wait):
                raise CrmUnavailable(
                    f"{operation}: HubSpot did not answer usefully ({problem}) after {attempt} attempt(s)"
                )
            logger.info("hubspot request retried", operation=operation, problem=problem, attempt=attempt, wait=wait)
            self.sleep(wait)

    def _rate_limited(self, answer: HttpResponse, operation: str, waits: int) -> None:
        """A 429: raise for DAILY (and hold the shared budget), else wait for it if there is time."""
        payload = answer.json() or {}
        policy = str(payload.get("policyName") or SECONDLY) if isinstance(payload, dict) else SECONDLY
        detail = str(payload.get("message") or "") if isinstance(payload, dict) else ""
        if policy == DAILY:
            self.budget.hold(DAILY_HOLD_SECONDS)
            logger.error("hubspot daily limit reached", operation=operation)
            raise CrmRateLimited(DAILY_HOLD_SECONDS, DAILY, detail or "HubSpot's daily API limit is spent")
        wait = _retry_after(answer) or self.rate_limit_wait_seconds
        if waits >= self.max_rate_limit_waits or not self._can_wait(wait):
            raise CrmRateLimited(wait, policy, detail)
        logger.warning("hubspot rate limited; waiting", operation=operation, policy=policy, wait=wait)
        self.sleep(wait)

    def _take_token(self) -> None:
        waited = 0.0
        while True:
            decision = self.budget.try_take()
            if decision.granted:
                return
            if decision.daily:
                raise CrmRateLimited(decision.wait_seconds, DAILY, "crmsync's daily budget for HubSpot is spent")
            wait = decision.wait_seconds + 0.05 * self.jitter()
            if waited + wait > self.max_budget_wait_seconds or not self._can_wait(wait):
                raise CrmRateLimited(wait, SECONDLY, "crmsync's shared HubSpot budget is spent for now")
            waited += wait
            self.sleep(wait)

    def _can_wait(self, seconds: float) -> bool:
        """Whether the invocation still has time for a wait of that long and one request after it."""
        return self.time_left() - seconds >= self.reserve_seconds + 1.0


# --- answers --------------------------------------------------------------------------------------
def _key(item: UpsertInput) -> tuple[str, str]:
    value = item.id_value.strip().lower() if item.id_property == "email" else item.id_value
    return item.id_property, value


def _chunks[T](items: Sequence[T]) -> list[list[T]]:
    return [list(items[n : n + BATCH_LIMIT]) for n in range(0, len(items), BATCH_LIMIT)]


def _retry_after(answer: HttpResponse) -> float | None:
    value = answer.header("Retry-After")
    try:
        return max(0.0, float(value)) if value else None
    except ValueError:
        return None


def _error_of(answer: HttpResponse) -> tuple[str, str]:
    """(message, category) of an error answer (HubSpot's Error shape)."""
    payload = answer.json()
    if isinstance(payload, dict):
        return str(payload.get("message") or f"HTTP {answer.status}"), str(payload.get("category") or "")
    return f"HTTP {answer.status}", ""


def _whole_call_errors(answer: HttpResponse, keys: Sequence[str]) -> list[RecordError]:
    """A call refused as a whole: every record in it gets the reason (401/403: the token, not the records)."""
    message, category = _error_of(answer)
    if answer.status in (401, 403):
        raise CrmNotConfigured(f"HubSpot refused the access token ({answer.status} {category}): {mask(message)}")
    return [RecordError(key, message, answer.status, category) for key in keys]


def _match_results(
    results: list[Any], chunk: Sequence[UpsertInput] | None, traces: list[str]
) -> dict[int, dict[str, Any]]:
    """Input position -> its result: by objectWriteTraceId, else (upserts) by the id property's value."""
    position = {t: n for n, t in enumerate(traces)}
    matched: dict[int, dict[str, Any]] = {}
    unplaced: list[dict[str, Any]] = []
    for result in results:
        if not isinstance(result, dict) or "id" not in result:
            continue
        n = position.get(str(result.get("objectWriteTraceId")))
        if n is not None and n not in matched:
            matched[n] = result
        else:
            unplaced.append(result)
    if chunk is not None:
        for result in unplaced:
            properties = result.get("properties") or {}
            for n, item in enumerate(chunk):
                value = properties.get(item.id_property)
                if (
                    n not in matched
                    and value is not None
                    and _key(item) == _key(UpsertInput(item.id_property, value, {}))
                ):
                    matched[n] = result
                    break
    return matched


def _batch_errors(
    payload: Any, keys: Sequence[str], status: int, traces: dict[str, str] | None = None
) -> list[RecordError]:
    """One RecordError per record of `keys` (the records with no result): the batch error that names the record
    (in its context: a trace id or the key itself), else the errors that name none, in order."""
    if not keys:
        return []
    errors = _errors_in(payload)
    by_key: dict[str, dict[str, Any]] = {}
    anonymous: list[dict[str, Any]] = []
    for error in errors:
        named = _named(error, traces, keys)
        if named is not None and named not in by_key:
            by_key[named] = error
        else:
            anonymous.append(error)
    out = []
    for n, key in enumerate(keys):
        found = by_key.get(key) or (anonymous[min(n, len(anonymous) - 1)] if anonymous else None)
        if found is None:
            out.append(RecordError(key, "HubSpot returned no result for this record", status, "MISSING_RESULT"))
        else:
            message, category = str(found.get("message") or ""), str(found.get("category") or "")
            out.append(RecordError(key, message, _status(found, status), category))
    return out


def _pair_error(error: dict[str, Any], pairs: Sequence[Association], status: int) -> RecordError:
    """A failed association: the pair whose ids the error's context names, if any."""
    context = error.get("context") or {}
    named = (
        {str(v) for vs in context.values() if isinstance(vs, list) for v in vs} if isinstance(context, dict) else set()
    )
    pair = next((p for p in pairs if p.from_id in named or p.to_id in named), None)
    key = f"{pair.from_id}->{pair.to_id}" if pair else "a pair of this call"
    return RecordError(key, str(error.get("message") or ""), _status(error, status), str(error.get("category") or ""))


def _errors_in(payload: Any) -> list[dict[str, Any]]:
    raw = payload.get("errors") if isinstance(payload, dict) else None
    return [e for e in raw or [] if isinstance(e, dict)]


def _named(error: dict[str, Any], traces: dict[str, str] | None, keys: Sequence[str] = ()) -> str | None:
    """The record an error's context names, if any."""
    context = error.get("context") or {}
    values = (
        [str(v) for vs in context.values() if isinstance(vs, list) for v in vs] if isinstance(context, dict) else []
    )
    lowered = {k.lower(): k for k in keys}
    for value in values:
        if traces and value in traces:
            return traces[value]
        if value.lower() in lowered:
            return lowered[value.lower()]
    return None


def _status(error: dict[str, Any], default: int) -> int:
    try:
        return int(error.get("status") or default)
    except (TypeError, ValueError):
        return default
