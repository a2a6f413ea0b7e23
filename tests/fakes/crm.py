"""FaultyCrm: the CRM port in memory, with crm/local.py's semantics and seeded HTTP-style faults.

Semantics (as LocalCrm): upsert finds a record by the value of its id property (a unique-key index, so two
records holding one key is impossible by construction); none -> a new record with the next id of its type
("1", "2", ...), created=True; found -> its properties are updated (set, never removed), created=False.
Associations are kept both ways; associating twice changes nothing. merge folds one record into another as
LocalCrm.merge does (the primary keeps its values and gains the ones it lacks, the associations and the unique keys
named by the merged record's properties; the merged record is gone; merging again changes nothing).

Faults (one roll per HTTP request; requests are batches of up to `batch_limit` inputs, as HubSpot's):
rate_limited (429 with retry-after), server_error (5xx) and timeout fail BEFORE any effect of that request;
effect_then_timeout applies the request and then raises CrmTimeout, as a real CRM does when the response is
lost. A call of several requests keeps the effect of the requests before the failing one.

The faults are raised as the adapters raise them (crmsync.crm.errors): a 429 as CrmRateLimited, a 5xx or a
timeout as CrmUnavailable, a refused record as CrmRejected; the subclasses here add `effect_applied` and `status`.
"""

from __future__ import annotations

import threading
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from random import Random
from typing import Literal

from crmsync.crm import errors as crm_errors
from crmsync.crm.port import (
    CREATE_ONLY_EXISTS,
    UPDATE_ONLY_MISSING,
    Association,
    ErasureAnswer,
    MatchPolicy,
    UpsertInput,
    UpsertResult,
)
from crmsync.store.errors import ConditionFailed
from tests.fakes.faults import rng_of

FaultKind = Literal["rate_limited", "server_error", "timeout", "effect_then_timeout"]
FAULT_KINDS: tuple[FaultKind, ...] = ("rate_limited", "server_error", "timeout", "effect_then_timeout")


class _Injected:
    """What tests may ask of an injected CRM fault: `effect_applied` (callers cannot know it) and the HTTP status."""

    effect_applied: bool = False
    status: int | None = None


class CrmRateLimited(_Injected, crm_errors.CrmRateLimited):
    """HTTP 429, surfaced as the adapters surface a rate limit they cannot wait out."""

    status = 429

    def __init__(self, retry_after: float, policy: str = "TEN_SECONDLY_ROLLING") -> None:
        super().__init__(retry_after, policy, "injected 429 Too Many Requests")


class CrmServerError(_Injected, crm_errors.CrmUnavailable):
    """HTTP 5xx that outlasted the adapter's retries."""

    def __init__(self, status: int) -> None:
        super().__init__(f"injected {status} server error")
        self.status = status


class CrmTimeout(_Injected, crm_errors.CrmUnavailable):
    """No answer in time: the request may or may not have been applied (see effect_applied)."""

    def __init__(self, message: str, *, effect_applied: bool = False) -> None:
        super().__init__(message)
        self.effect_applied = effect_applied


class CrmBadRequest(_Injected, crm_errors.CrmRejected):
    status = 400

    def __init__(self, operation: str, key: str, message: str) -> None:
        super().__init__(operation, [crm_errors.RecordError(key, message, 400, "VALIDATION_ERROR")])


class CrmNotFound(_Injected, crm_errors.CrmRejected):
    status = 404

    def __init__(self, operation: str, key: str, message: str) -> None:
        super().__init__(operation, [crm_errors.RecordError(key, message, 404, "OBJECT_NOT_FOUND")])


@dataclass(frozen=True)
class CrmCall:
    method: str  # "upsert" or "associate"
    object_type: str  # "contacts", or "deals->contacts" for associations
    size: int  # inputs or pairs in this request
    outcome: str  # "ok" or a FaultKind


@dataclass(frozen=True)
class CrmRecord:
    id: str
    properties: dict[str, str]
    associations: dict[str, list[str]]  # other type -> ids, sorted as LocalRecord sorts them


def _id_order(value: str) -> int:
    return int(value) if value.isdigit() else 0


class FaultyCrm:
    """CrmPort in memory with injected faults; thread-safe."""

    def __init__(
        self,
        *,
        name: str = "local",
        seed: int | Random | None = 0,
        rate_limited: float = 0.0,
        server_error: float = 0.0,
        timeout: float = 0.0,
        effect_then_timeout: float = 0.0,
        retry_after: float = 10.0,
        batch_limit: int = 100,
        reject_duplicate_ids: bool = False,
    ) -> None:
        self.name = name
        self.rng = rng_of(seed)
        self.rates: dict[FaultKind, float] = {
            "rate_limited": rate_limited,
            "server_error": server_error,
            "timeout": timeout,
            "effect_then_timeout": effect_then_timeout,
        }
        if sum(self.rates.values()) > 1:
            raise ValueError("fault rates add up to more than 1")
        self.retry_after = retry_after
        self.batch_limit = batch_limit
        self.reject_duplicate_ids = reject_duplicate_ids  # HubSpot refuses a batch naming one id twice (400)
        self.faults_enabled = True
        self.calls: list[CrmCall] = []
        self.outcomes: Counter[str] = Counter()  # "<method>:<outcome>" -> requests
        self.created: Counter[str] = Counter()  # object type -> records created
        self.updated: Counter[str] = Counter()  # object type -> updates applied
        self.merged: Counter[str] = Counter()  # object type -> records merged away
        self._scripted: deque[FaultKind | None] = deque()
        self._records: dict[str, dict[str, dict[str, str]]] = {}  # type -> id -> properties
        self._keys: dict[tuple[str, str, str], str] = {}  # (type, id property, value) -> id
        self._associations: dict[tuple[str, str], dict[str, set[str]]] = {}  # (type, id) -> other type -> ids
        self._last_id: Counter[str] = Counter()
        self._lock = threading.RLock()

    # --- fault control ----------------------------------------------------------------------------------
    def fail_next(self, *kinds: FaultKind | None) -> None:
        """The next requests fail with these kinds, in order (None: that request succeeds), whatever the rates
        and even inside healthy()."""
        with self._lock:
            self._scripted.extend(kinds)

    @contextmanager
    def healthy(self) -> Iterator[None]:
        """No random faults inside the block (the cause is fixed)."""
        previous, self.faults_enabled = self.faults_enabled, False
        try:
            yield
        finally:
            self.faults_enabled = previous

    @property
    def requests(self) -> int:
        return len(self.calls)

    @property
    def faults_injected(self) -> Counter[str]:
        return Counter({k: v for k, v in self.outcomes.items() if not k.endswith(":ok")})

    def _roll(self) -> FaultKind | None:
        if self._scripted:
            return self._scripted.popleft()
        if not self.faults_enabled:
            return None
        draw, edge = self.rng.random(), 0.0
        for kind in FAULT_KINDS:
            edge += self.rates[kind]
            if draw < edge:
                return kind
        return None

    def _request(self, method: str, object_type: str, size: int) -> FaultKind | None:
        """Record one request and raise its fault when it fails before any effect."""
        fault = self._roll()
        outcome = fault or "ok"
        self.calls.append(CrmCall(method, object_type, size, outcome))
        self.outcomes[f"{method}:{outcome}"] += 1
        if fault == "rate_limited":
            raise CrmRateLimited(self.retry_after)
        if fault == "server_error":
            raise CrmServerError(self.rng.choice((500, 502, 503, 504)))
        if fault == "timeout":
            raise CrmTimeout(f"{method} {object_type}: read timed out")
        return fault

    def _chunks[T](self, items: Sequence[T]) -> Iterator[Sequence[T]]:
        for start in range(0, len(items), self.batch_limit):
            yield items[start : start + self.batch_limit]

    # --- CrmPort ------------------------------------------------------------------------------------------
    def upsert(
        self, object_type: str, inputs: Sequence[UpsertInput], policy: MatchPolicy = "upsert"
    ) -> list[UpsertResult]:
        """Create or update each input as the match policy allows (LocalCrm's semantics); results in input order."""
        results: list[UpsertResult] = []
        for chunk in self._chunks(inputs):
            with self._lock:
                fault = self._request("upsert", object_type, len(chunk))
                if self.reject_duplicate_ids:
                    keys = [(i.id_property, i.id_value) for i in chunk]
                    if len(set(keys)) != len(keys):
                        raise CrmBadRequest(f"upsert {object_type}", chunk[0].id_value, "duplicate ids in one batch")
                done = [self._upsert_one(object_type, item, policy) for item in chunk]
                if fault == "effect_then_timeout":
                    raise CrmTimeout(f"upsert {object_type}: read timed out", effect_applied=True)
            results.extend(done)
        return results

    def _upsert_one(self, object_type: str, item: UpsertInput, policy: MatchPolicy = "upsert") -> UpsertResult:
        key = (object_type, item.id_property, item.id_value)
        existing = self._keys.get(key)
        if existing is None and policy == "update_only":
            return UpsertResult(id="", created=False, skipped=UPDATE_ONLY_MISSING)
        if existing is not None and policy == "create_only" and existing in self._records.get(object_type, {}):
            return UpsertResult(id=existing, created=False, skipped=CREATE_ONLY_EXISTS)
        if existing is None:
            self._last_id[object_type] += 1
            new_id = str(self._last_id[object_type])
            self._records.setdefault(object_type, {})[new_id] = dict(item.properties)
            self._keys[key] = new_id
            self.created[object_type] += 1
            return UpsertResult(id=new_id, created=True)
        record = self._records.get(object_type, {}).get(existing)
        if record is None:  # a key left naming a record merged away: LocalCrm's conditional update fails so
            raise ConditionFailed("ConditionalCheckFailedException")
        record.update(item.properties)
        self.updated[object_type] += 1
        return UpsertResult(id=existing, created=False)

    def associate(self, from_type: str, to_type: str, pairs: Sequence[Association]) -> None:
        """Associate records with the default association type; associating twice changes nothing."""
        for chunk in self._chunks(pairs):
            with self._lock:
                fault = self._request("associate", f"{from_type}->{to_type}", len(chunk))
                for pair in chunk:  # every record must exist; checked before any effect of the request
                    for object_type, record_id in ((from_type, pair.from_id), (to_type, pair.to_id)):
                        if record_id not in self._records.get(object_type, {}):
                            raise CrmNotFound(
                                f"associate {from_type}->{to_type}", record_id, f"no {object_type} record {record_id}"
                            )
                for pair in chunk:
                    self._associations.setdefault((from_type, pair.from_id), {}).setdefault(to_type, set()).add(
                        pair.to_id
                    )
                    self._associations.setdefault((to_type, pair.to_id), {}).setdefault(from_type, set()).add(
                        pair.from_id
                    )
                if fault == "effect_then_timeout":
                    raise CrmTimeout(f"associate {from_type}->{to_type}: read timed out", effect_applied=True)

    def merge(self, object_type: str, primary_id: str, merged_id: str) -> None:
        """Merge one record into another; merging a record that is already gone changes nothing."""
        with self._lock:
            fault = self._request("merge", object_type, 1)
            self._merge(object_type, primary_id, merged_id)
            if fault == "effect_then_timeout":
                raise CrmTimeout(f"merge {object_type}: read timed out", effect_applied=True)

    def _merge(self, object_type: str, primary_id: str, merged_id: str) -> None:
        records = self._records.get(object_type, {})
        if merged_id not in records or primary_id == merged_id:
            return
        if primary_id not in records:
            raise ValueError(f"cannot merge {object_type} {merged_id} into missing {primary_id}")
        merged, primary = records[merged_id], records[primary_id]
        primary.update({k: v for k, v in merged.items() if not primary.get(k)})
        for to_type, ids in self._associations.pop((object_type, merged_id), {}).items():
            for to_id in ids:
                self._associations.setdefault((object_type, primary_id), {}).setdefault(to_type, set()).add(to_id)
                linked = self._associations.setdefault((to_type, to_id), {}).setdefault(object_type, set())
                linked.add(primary_id)
                linked.discard(merged_id)
        for name, value in merged.items():
            if self._keys.get((object_type, name, value)) == merged_id:
                self._keys[(object_type, name, value)] = primary_id
        del records[merged_id]
        self.merged[object_type] += 1

    def read(
        self, object_type: str, id_property: str, values: Sequence[str], properties: Sequence[str] = ()
    ) -> dict[str, dict[str, str]]:
        """CrmPort.read: one request per batch_limit values, faults as any request; values without a record are
        left out."""
        found: dict[str, dict[str, str]] = {}
        for chunk in self._chunks(list(dict.fromkeys(values))):
            with self._lock:
                fault = self._request("read", object_type, len(chunk))
                for value in chunk:
                    record_id = self._keys.get((object_type, id_property, value))
                    record = self._records.get(object_type, {}).get(record_id) if record_id else None
                    if record is not None:
                        found[value] = dict(record)
                if fault == "effect_then_timeout":
                    raise CrmTimeout(f"read {object_type}: read timed out", effect_applied=True)
        return found

    def delete(self, object_type: str, ids: Sequence[str]) -> list[ErasureAnswer]:
        """CrmPort.delete: each record goes with its unique keys and every association to it (one request per
        batch_limit ids, faults as any request); a record already gone answers not_found."""
        answers: list[ErasureAnswer] = []
        for chunk in self._chunks(list(ids)):
            with self._lock:
                fault = self._request("delete", object_type, len(chunk))
                done = []
                for record_id in chunk:
                    if record_id not in self._records.get(object_type, {}):
                        done.append(ErasureAnswer(record_id, "not_found", "no such record"))
                        continue
                    for to_type, linked in self._associations.pop((object_type, record_id), {}).items():
                        for to_id in linked:
                            self._associations.get((to_type, to_id), {}).get(object_type, set()).discard(record_id)
                    self.delete_record(object_type, record_id)
                    done.append(ErasureAnswer(record_id, "deleted"))
                if fault == "effect_then_timeout":
                    raise CrmTimeout(f"delete {object_type}: read timed out", effect_applied=True)
            answers.extend(done)
        return answers

    def anonymise(self, object_type: str, ids: Sequence[str], properties: Sequence[str]) -> list[ErasureAnswer]:
        """CrmPort.anonymise: the named properties (and the unique keys they held) are removed; a record already gone
        answers not_found."""
        answers: list[ErasureAnswer] = []
        for chunk in self._chunks(list(ids)):
            with self._lock:
                fault = self._request("anonymise", object_type, len(chunk))
                done = []
                for record_id in chunk:
                    record = self._records.get(object_type, {}).get(record_id)
                    if record is None:
                        done.append(ErasureAnswer(record_id, "not_found", "no such record"))
                        continue
                    cleared = [name for name in properties if name in record]
                    for name in cleared:
                        if self._keys.get((object_type, name, record[name])) == record_id:
                            del self._keys[(object_type, name, record[name])]
                        del record[name]
                    done.append(ErasureAnswer(record_id, "anonymised", f"{len(cleared)} properties cleared"))
                if fault == "effect_then_timeout":
                    raise CrmTimeout(f"anonymise {object_type}: read timed out", effect_applied=True)
            answers.extend(done)
        return answers

    def delete_record(self, object_type: str, record_id: str) -> None:
        """Test helper: a record gone from the CRM (deleted by a user), its unique keys with it."""
        with self._lock:
            self._records.get(object_type, {}).pop(record_id, None)
            for key in [k for k, v in self._keys.items() if k[0] == object_type and v == record_id]:
                del self._keys[key]

    def set_property(self, object_type: str, record_id: str, name: str, value: str) -> None:
        """Test helper: a field changed in the CRM by hand (drift)."""
        with self._lock:
            self._records[object_type][record_id][name] = value

    # --- inspection for tests -------------------------------------------------------------------------------
    def records(self, object_type: str) -> list[CrmRecord]:
        """Every record of a type, by id (as GET /local-crm/{type} lists them)."""
        with self._lock:
            ids = sorted(self._records.get(object_type, {}), key=_id_order)
            return [self._record(object_type, record_id) for record_id in ids]

    def record(self, object_type: str, record_id: str) -> CrmRecord | None:
        with self._lock:
            return self._record(object_type, record_id) if record_id in self._records.get(object_type, {}) else None

    def find(self, object_type: str, id_property: str, value: str) -> CrmRecord | None:
        """The record holding that id property value (the unique-key index), if any."""
        with self._lock:
            record_id = self._keys.get((object_type, id_property, value))
            return self._record(object_type, record_id) if record_id else None

    def associations(self, from_type: str, to_type: str) -> set[tuple[str, str]]:
        """(from id, to id) of every association between the two types."""
        with self._lock:
            return {
                (record_id, other)
                for (object_type, record_id), linked in self._associations.items()
                if object_type == from_type
                for other in linked.get(to_type, ())
            }

    def duplicates(
        self, object_type: str, property_name: str, normalize: Callable[[str], str] = str
    ) -> dict[str, list[str]]:
        """Property value -> ids of the records sharing it, for values held by more than one record."""
        groups: dict[str, list[str]] = {}
        for record in self.records(object_type):
            value = record.properties.get(property_name)
            if value:
                groups.setdefault(normalize(value), []).append(record.id)
        return {value: ids for value, ids in groups.items() if len(ids) > 1}

    def duplicate_contacts_by_email(self) -> dict[str, list[str]]:
        """Contacts that are one person by email (trimmed, case-insensitive): HubSpot would refuse the second."""
        return self.duplicates("contacts", "email", lambda email: email.strip().lower())

    def _record(self, object_type: str, record_id: str) -> CrmRecord:
        linked = self._associations.get((object_type, record_id), {})
        return CrmRecord(
            id=record_id,
            properties=dict(self._records[object_type][record_id]),
            associations={t: sorted(ids, key=_id_order) for t, ids in linked.items() if ids},
        )
