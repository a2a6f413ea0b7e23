"""The Salesforce adapter: the CRM port on Salesforce's REST API, through simple-salesforce.

Objects (OBJECTS): contacts -> Contact, companies -> Account, deals -> Opportunity, notes and tasks -> Task. Every
write finds its record by an external id field (the mapping's id property, `Crmsync_External_Id__c` in
config/mappings/salesforce.yaml):

- upsert: sObject Collections, `PATCH /services/data/vXX.X/composite/sobjects/{SObject}/{ExternalIdField}` with
  `{"allOrNone": false, "records": [{"attributes": {"type": SObject}, ...}]}`, 200 records a call; the per-record
  UpsertResults come back in the order sent and are mapped back onto the inputs (two inputs with one external id
  are sent once). Above `bulk_threshold` records (2,000: Salesforce's own advice) one Bulk API 2.0 ingest job per
  object and external id field instead (`bulk_upsert`).
- match policies other than upsert (the mapping's `match_policy`): one SOQL query per up to 200 external ids finds
  the records that exist (`SELECT Id, {field} FROM {SObject} WHERE {field} IN (...)`); create_only then upserts
  only the missing ones (idempotent, as above; the ones that exist are left unchanged), update_only updates the
  found ones by Id (`PATCH composite/sobjects`, only the mapped fields, no fillers) and reports the missing ones
  skipped. Per 200 records: one query plus one write call (none when nothing is left to write), where upsert takes
  one call (the queries are per 200 even above `bulk_threshold`; create_only's upsert of the missing ones goes to
  Bulk API 2.0 there, update_only's updates stay sObject Collections). A record created by another writer between
  the query and a create_only upsert is updated by it (the external id field is the upsert's key, so there is never
  a duplicate); one deleted before an update_only update is skipped.
- per-record refusals (an external id that matches several records: HTTP 300 / DUPLICATE_EXTERNAL_ID; a duplicate
  rule: DUPLICATES_DETECTED; validation errors) are collected over the whole call, after every other record was
  written, and raised as one SalesforceRecordError naming each record, its code and what to do: the CRM writer's
  queue retries it and finally dead-letters the event with that reason.
- associate (ASSOCIATIONS): deals <-> contacts are OpportunityContactRole records (read which exist for the
  opportunities, one SOQL query, skipped for opportunities this adapter has just created; then create the missing
  ones, the first role of an opportunity as its primary contact); notes/tasks -> deals set the Task's WhatId,
  notes/tasks -> contacts its WhoId, contacts/deals -> companies the AccountId (sObject Collections updates).
- merge (contacts only): simple-salesforce has no merge call (Salesforce's merge() is a SOAP API call), so this is
  the documented fallback, re-parent then delete, in two Composite calls: read both contacts, the merged one's
  opportunity contact roles and its tasks; then (all or none) give the primary the merged one's opportunity roles,
  move its tasks (WhoId), delete it and fill the primary's blank fields from it. Unlike Salesforce's merge, other
  records pointing at the merged contact (cases, events, campaign members) are not moved.

- delete / anonymise (erasure): sObject Collections, `DELETE composite/sobjects?ids=...` (200 a call; the records go to
  the Recycle Bin, which Salesforce empties after 15 days) and `PATCH composite/sobjects` with the personal fields
  set to null (a required field, Contact.LastName, gets its filler "[not provided]"). A record already gone
  (ENTITY_IS_DELETED, INVALID_CROSS_REFERENCE_KEY) answers not_found.

Limits: every response's `Sforce-Limit-Info: api-usage=N/M` is read (ApiUsageGuard): above `slow_ratio` of the
daily allowance each call is delayed (up to `max_pause_seconds`, growing towards `stop_ratio`); at `stop_ratio`, or
on `403 REQUEST_LIMIT_EXCEEDED`, the adapter stops calling for `cooldown_seconds` and raises SalesforceLimitExceeded
at once (no retry storm: Salesforce sends no 429 and no Retry-After). 5xx answers, timeouts and dropped connections
are retried with exponential backoff and jitter (tenacity) when the call is idempotent (upserts, updates, queries,
deletes); creates are not retried in-process (the queue's redelivery re-reads first).

simple-salesforce, requests and tenacity are imported only when a Salesforce connection is made, so no other
function's cold start pays for them.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from crmsync.crm.errors import (
    CrmError,
    CrmNotConfigured,
    CrmRateLimited,
    CrmRejected,
    CrmUnavailable,
    RecordError,
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
from crmsync.observability import logger

if TYPE_CHECKING:
    import requests
    from simple_salesforce.api import Salesforce

    from crmsync.settings import Settings

API_VERSION = "62.0"
COLLECTION_LIMIT = 200  # records per sObject Collections call
COMPOSITE_LIMIT = 25  # subrequests per Composite call
BULK_THRESHOLD = 2000  # "more than 2,000 records is a good candidate for Bulk API 2.0"
RECORD_ID = re.compile(r"^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$")
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,79}$")  # an API field name (custom ones end in __c)
QUERY_CHARS = 10_000  # URL-encoded literals per lookup query: the GET stays under Salesforce's 16,384-byte URI
EMAIL = re.compile(r"[^\s@,;:\[\]()<>\"']+@[^\s@,;:\[\]()<>\"']+")
PHONE = re.compile(r"\+\d[\d\s().-]{5,}\d")


# --------------------------------------------------------------------------------------------------------- errors
# Each is one of crmsync.crm.errors' kinds, so the CRM writer treats every backend's errors alike.
class SalesforceError(CrmError):
    """Salesforce said no or could not be reached. The message says why and what to do, without personal data, so
    it can travel with a dead-lettered event."""


class SalesforceNotConfigured(SalesforceError, CrmNotConfigured):
    """Credentials or settings missing or wrong."""


class SalesforceRequestError(SalesforceError):
    """A request Salesforce refused as a whole (malformed, not allowed, expired token, unknown field or object)."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SalesforceUnavailable(SalesforceError, CrmUnavailable):
    """5xx, a timeout or a dropped connection, still so after the retries."""


class SalesforceLimitExceeded(SalesforceError, CrmRateLimited):
    """The org's API allowance is spent (403 REQUEST_LIMIT_EXCEEDED) or nearly so (Sforce-Limit-Info at the stop
    ratio): no call is made until `retry_after` seconds have passed."""

    def __init__(self, message: str, *, retry_after: float, policy: str = "REQUEST_LIMIT_EXCEEDED") -> None:
        CrmRateLimited.__init__(self, retry_after, policy, message)


MIN_CALL_SECONDS = 3.0  # time a call needs: no retry or pause starts with less left in the invocation
PLACEHOLDER = "unset"  # what template.yaml puts in the credentials secret until an operator stores real ones
MULTIPLE_MATCHES = frozenset({"DUPLICATE_EXTERNAL_ID", "MULTIPLE_CHOICES"})
DUPLICATE_RULE = "DUPLICATES_DETECTED"


@dataclass(frozen=True)
class RecordFailure:
    """One record Salesforce refused: the input's position, its external id and Salesforce's error."""

    index: int
    external_id: str
    code: str
    message: str
    fields: tuple[str, ...] = ()

    @property
    def multiple_matches(self) -> bool:
        return self.code in MULTIPLE_MATCHES or "more than one record" in self.message

    @property
    def duplicate_rule(self) -> bool:
        return self.code == DUPLICATE_RULE

    def reason(self, sobject: str) -> str:
        if self.multiple_matches:
            return (
                f"the external id matches more than one {sobject} (HTTP 300 / DUPLICATE_EXTERNAL_ID); nothing was "
                "written: merge or fix the duplicates in Salesforce, then redrive"
            )
        if self.duplicate_rule:
            return (
                f"a {sobject} duplicate rule blocked it ({redact(self.message)}); nothing was written: merge the "
                "records or let the integration user bypass the rule, then redrive"
            )
        where = f" (fields: {', '.join(self.fields)})" if self.fields else ""
        return f"{redact(self.message)}{where}"

    def as_record_error(self, sobject: str) -> RecordError:
        return RecordError(key=redact(self.external_id), message=self.reason(sobject), category=self.code)


class SalesforceRecordError(SalesforceError, CrmRejected):
    """Some records of a call were refused (a CrmRejected, one RecordError each); the others were written
    (allOrNone=false). `failures` keep the input positions; `results` holds the written records at their input
    positions (None where refused)."""

    def __init__(
        self,
        operation: str,
        sobject: str,
        failures: Sequence[RecordFailure],
        results: Sequence[UpsertResult | None] = (),
    ) -> None:
        CrmRejected.__init__(
            self, f"Salesforce {operation} of {sobject}", [f.as_record_error(sobject) for f in failures]
        )
        self.sobject = sobject
        self.failures = tuple(failures)
        self.results = list(results)


def redact(text: str) -> str:
    """Salesforce error messages may quote a value (an email, a phone): those never leave the adapter."""
    return PHONE.sub("<phone>", EMAIL.sub("<email>", text))


# ------------------------------------------------------------------------------------------------ object tables
Default = str | Callable[[], str]
Grouped = dict[str, dict[str, tuple[dict[str, Any], list[int]]]]  # id field -> external id -> (fields, positions)


def _today() -> str:
    return datetime.now(UTC).date().isoformat()


@dataclass(frozen=True)
class SObjectSpec:
    """How one crmsync object type is written: its sObject, values for fields the mapping gives none (`defaults`
    always; `fillers`, the required names people edit, only when Salesforce refuses a create without them), and how
    string values become Salesforce types."""

    sobject: str
    defaults: Mapping[str, Default] = field(default_factory=dict)  # sent whenever the mapping gives no value
    fillers: Mapping[str, Default] = field(default_factory=dict)  # required names: sent only to create a record
    dates: frozenset[str] = frozenset()  # Date fields: an ISO timestamp becomes its UTC date
    numbers: frozenset[str] = frozenset()  # Number / Currency / Percent fields: sent as JSON numbers
    max_lengths: Mapping[str, int] = field(default_factory=dict)  # text cut to fit (e.g. Task.Subject, 255)
    merge_fields: tuple[str, ...] = ()  # filled on the primary from the merged record when blank there

    def fields(self, item: UpsertInput, *, fillers: bool = False, defaults: bool = True) -> dict[str, Any]:
        """The record's fields, with `defaults` where the mapping gave none. A name in `fillers` the mapping gave
        no value is left out, so an update never blanks it nor puts a filler over the name a sales rep typed;
        `fillers=True` (for a create Salesforce refused with REQUIRED_FIELD_MISSING) fills it instead."""
        out: dict[str, Any] = {}
        for name, value in item.properties.items():
            if value in (None, "") and name in self.fillers:
                continue
            out[name] = self.coerce(name, value)
        if defaults:
            out = self.fill(out, self.defaults)
        out[item.id_property] = item.id_value
        return self.fill(out, self.fillers) if fillers else out

    def fill(self, fields: dict[str, Any], values: Mapping[str, Default]) -> dict[str, Any]:
        """The fields with `values` in every one of those they leave empty."""
        missing = {name: value for name, value in values.items() if fields.get(name) in (None, "")}
        return fields | {name: self.coerce(name, v() if callable(v) else v) for name, v in missing.items()}

    def needs_fillers(self, failure: RecordFailure) -> bool:
        """A create refused for a required name crmsync has a filler for (Bulk API errors name no fields)."""
        return (
            bool(self.fillers) and failure.code == "REQUIRED_FIELD_MISSING" and set(failure.fields) <= set(self.fillers)
        )

    def coerce(self, name: str, value: str) -> Any:
        if name in self.dates:
            return _as_date(value)
        if name in self.numbers:
            return _as_number(value)
        limit = self.max_lengths.get(name)
        if limit is not None and len(value) > limit:
            return value[: limit - 1] + "…"
        return value


def _as_date(value: str) -> str:
    """`2024-03-01T23:30:00-05:00` -> `2024-03-02` (the UTC date); a date stays; anything else is left for
    Salesforce to refuse with its own message."""
    try:
        if len(value) == 10:
            return date.fromisoformat(value).isoformat()
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).date().isoformat()


def _as_number(value: str) -> Any:
    try:
        number = Decimal(value)
    except InvalidOperation:
        return value
    if not number.is_finite():
        return value
    return int(number) if number == number.to_integral_value() else float(number)


CONTACT_FIELDS = (
    "FirstName",
    "LastName",
    "Email",
    "Phone",
    "MailingStreet",
    "MailingCity",
    "MailingState",
    "MailingPostalCode",
    "MailingCountry",
    "AccountId",
)
Sender = Callable[["SObjectSpec", Grouped, list[UpsertResult | None], list["RecordFailure"]], None]
NOT_PROVIDED = "[not provided]"  # Salesforce's own filler for a required name nobody gave

OBJECTS: dict[str, SObjectSpec] = {
    "contacts": SObjectSpec(
        "Contact",
        fillers={"LastName": NOT_PROVIDED},
        numbers=frozenset({"Crmsync_Risk_Score__c"}),  # the rules' risk score (config/mappings/salesforce.yaml)
        merge_fields=CONTACT_FIELDS,
    ),
    "companies": SObjectSpec("Account", fillers={"Name": NOT_PROVIDED}, numbers=frozenset({"AnnualRevenue"})),
    "deals": SObjectSpec(
        "Opportunity",
        # An open deal has no close date yet: Salesforce requires one, so it is the day crmsync last wrote it.
        defaults={"StageName": "Prospecting", "CloseDate": _today},
        dates=frozenset({"CloseDate"}),
        numbers=frozenset({"Amount", "Probability", "Crmsync_Refunded_Amount__c", "Crmsync_Risk_Score__c"}),
    ),
    "notes": SObjectSpec(
        "Task",
        defaults={"Subject": "crmsync note", "Status": "Completed", "Priority": "Normal"},
        dates=frozenset({"ActivityDate"}),
        max_lengths={"Subject": 255},
    ),
    "tasks": SObjectSpec(
        "Task",
        defaults={"Subject": "crmsync task", "Status": "Not Started", "Priority": "Normal"},
        dates=frozenset({"ActivityDate"}),
        max_lengths={"Subject": 255},
    ),
}


@dataclass(frozen=True)
class Lookup:
    """The from-record's lookup field takes the to-record's id (a Task's WhoId/WhatId, a Contact's AccountId)."""

    field: str


@dataclass(frozen=True)
class Junction:
    """A record of `sobject` links the two (OpportunityContactRole); the from-record's first link is primary."""

    sobject: str
    from_field: str
    to_field: str
    primary_field: str | None = None


ASSOCIATIONS: dict[tuple[str, str], Lookup | Junction] = {
    ("deals", "contacts"): Junction("OpportunityContactRole", "OpportunityId", "ContactId", "IsPrimary"),
    ("contacts", "deals"): Junction("OpportunityContactRole", "ContactId", "OpportunityId"),
    ("notes", "deals"): Lookup("WhatId"),
    ("notes", "contacts"): Lookup("WhoId"),
    ("notes", "companies"): Lookup("WhatId"),
    ("tasks", "deals"): Lookup("WhatId"),
    ("tasks", "contacts"): Lookup("WhoId"),
    ("tasks", "companies"): Lookup("WhatId"),
    ("contacts", "companies"): Lookup("AccountId"),
    ("deals", "companies"): Lookup("AccountId"),
}


# ------------------------------------------------------------------------------------------------- API budget
@dataclass
class ApiUsageGuard:
    """The org's daily API allowance as the last `Sforce-Limit-Info: api-usage=N/M` told it: above `slow_ratio`
    each call waits (0 -> `max_pause_seconds`, growing up to `stop_ratio`); at `stop_ratio`, or after
    REQUEST_LIMIT_EXCEEDED, calls stop for `cooldown_seconds` (then one call probes the usage again).
    One guard per connection, shared by every SalesforceCrm of the container."""

    slow_ratio: float = 0.8
    stop_ratio: float = 0.95
    max_pause_seconds: float = 1.0
    cooldown_seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep
    used: int | None = None
    allowed: int | None = None
    blocked_until: float = 0.0
    reason: str = ""
    policy: str = ""  # REQUEST_LIMIT_EXCEEDED (Salesforce said so) or SALESFORCE_API_USAGE_STOP (crmsync's own stop)

    @property
    def ratio(self) -> float | None:
        return self.used / self.allowed if self.used is not None and self.allowed else None

    def before_call(self, max_wait: float = math.inf) -> None:
        now = self.clock()
        if now < self.blocked_until:
            raise SalesforceLimitExceeded(
                f"{self.reason}; no Salesforce call until the cool-down ends",
                retry_after=self.blocked_until - now,
                policy=self.policy,
            )
        ratio = self.ratio
        if ratio is not None and self.slow_ratio < ratio < self.stop_ratio and self.max_pause_seconds > 0:
            pause = self.max_pause_seconds * (ratio - self.slow_ratio) / (self.stop_ratio - self.slow_ratio)
            pause = max(0.0, min(pause, max_wait))
            logger.info("salesforce api usage high; slowing down", used=self.used, allowed=self.allowed, pause=pause)
            self.sleep(pause)

    def record(self, used: int, allowed: int) -> None:
        self.used, self.allowed = used, allowed
        if allowed and used / allowed >= self.stop_ratio:
            self.block(
                f"Salesforce API usage {used}/{allowed} reached the stop ratio {self.stop_ratio:.0%} "
                "(SALESFORCE_API_USAGE_STOP)",
                policy="SALESFORCE_API_USAGE_STOP",
            )

    def block(self, reason: str, seconds: float | None = None, *, policy: str = "REQUEST_LIMIT_EXCEEDED") -> None:
        self.reason, self.policy = reason, policy
        self.blocked_until = self.clock() + (self.cooldown_seconds if seconds is None else seconds)
        logger.warning("salesforce calls stopped", reason=reason, seconds=self.blocked_until - self.clock())


def parse_limit_info(header: str) -> tuple[int, int] | None:
    """`api-usage=18/5000; per-app-api-usage=17/250(appName=x)` -> (18, 5000)."""
    match = re.search(r"(?<![\w-])api-usage=(\d+)/(\d+)", header)
    return (int(match[1]), int(match[2])) if match else None


# ------------------------------------------------------------------------------------------------- connection
@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4  # tries of an idempotent call in all
    initial_seconds: float = 0.5
    max_seconds: float = 8.0


@dataclass(frozen=True)
class SalesforceCredentials:
    """Who crmsync is in the org. One of: `instance_url` + `access_token` (local runs, fakes, a token minted
    elsewhere); OAuth 2.0 JWT bearer (`username`, `consumer_key`, `private_key`, `domain`); username-password
    (`username`, `password`, `security_token`, `domain`). In AWS they are a Secrets Manager secret (JSON object
    with these keys) named by SALESFORCE_SECRET_ID."""

    instance_url: str = ""
    access_token: str = field(default="", repr=False)
    username: str = ""
    consumer_key: str = ""
    private_key: str = field(default="", repr=False)
    password: str = field(default="", repr=False)
    security_token: str = field(default="", repr=False)
    domain: str = "login"

    @property
    def auth(self) -> str:
        if self.access_token and self.instance_url:
            return "token"
        if self.username and self.consumer_key and self.private_key:
            return "jwt"
        if self.username and self.password:
            return "password"
        raise SalesforceNotConfigured(
            "Salesforce credentials incomplete: give instance_url + access_token, or username + consumer_key + "
            "private_key (OAuth JWT bearer), or username + password + security_token"
        )

    @classmethod
    def from_secret(cls, raw: str | bytes, *, name: str = "the Salesforce secret") -> SalesforceCredentials:
        try:
            data = json.loads(raw)
        except ValueError:
            raise SalesforceNotConfigured(f"{name} is not a JSON object") from None
        if not isinstance(data, dict):
            raise SalesforceNotConfigured(f"{name} is not a JSON object")
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - known)
        if unknown:
            raise SalesforceNotConfigured(f"{name} has unknown keys {unknown}; known: {sorted(known)}")
        if not all(isinstance(v, str) for v in data.values()):
            raise SalesforceNotConfigured(f"{name}: every value must be a string")
        credentials = cls(**data)
        _ = credentials.auth  # refuses incomplete ones now, naming what is missing
        return credentials

    @classmethod
    def from_settings(cls, settings: Settings) -> SalesforceCredentials:
        """SALESFORCE_INSTANCE_URL + SALESFORCE_ACCESS_TOKEN when both are set (local runs), else the secret
        SALESFORCE_SECRET_ID names (read through Powertools Parameters, cached `secret_max_age_seconds`)."""
        token = settings.salesforce_access_token.get_secret_value().strip()
        if settings.salesforce_instance_url and token:
            return cls(instance_url=settings.salesforce_instance_url, access_token=token)
        if settings.salesforce_secret_id:
            from aws_lambda_powertools.utilities import parameters  # lazily: it imports boto3

            raw = parameters.get_secret(settings.salesforce_secret_id, max_age=settings.secret_max_age_seconds)
            text = raw.decode() if isinstance(raw, bytes) else raw if isinstance(raw, str) else json.dumps(raw)
            if text.strip() in ("", PLACEHOLDER):
                raise SalesforceNotConfigured(
                    f"the secret {settings.salesforce_secret_id} holds no Salesforce credentials yet: store a JSON "
                    "object there (README, Salesforce), or set SALESFORCE_INSTANCE_URL and SALESFORCE_ACCESS_TOKEN"
                )
            return cls.from_secret(text, name=f"the secret {settings.salesforce_secret_id}")
        raise SalesforceNotConfigured(
            "CRM_BACKEND=salesforce needs SALESFORCE_SECRET_ID (a Secrets Manager secret), or "
            "SALESFORCE_INSTANCE_URL and SALESFORCE_ACCESS_TOKEN"
        )


def connect(
    credentials: SalesforceCredentials,
    *,
    version: str = API_VERSION,
    session: requests.Session | None = None,
) -> Salesforce:
    """A simple-salesforce client (logging in where the credentials say so). With a token, the instance URL is used
    as given, scheme and port included, so `http://127.0.0.1:PORT` reaches a local fake."""
    from simple_salesforce.api import Salesforce
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed

    try:
        match credentials.auth:
            case "token":
                sf = Salesforce(
                    instance_url=credentials.instance_url,
                    session_id=credentials.access_token,
                    version=version,
                    session=session,
                )
                origin = credentials.instance_url.rstrip("/")
                parts = urlsplit(origin)
                if parts.scheme not in ("http", "https") or not parts.netloc:
                    raise SalesforceNotConfigured(
                        "SALESFORCE_INSTANCE_URL must be an http(s) URL, e.g. https://x.my.salesforce.com"
                    )
                sf.base_url = f"{origin}/services/data/v{version}/"
                sf.bulk2_url = f"{sf.base_url}jobs/"
                return sf
            case "jwt":
                return Salesforce(
                    username=credentials.username,
                    consumer_key=credentials.consumer_key,
                    privatekey=credentials.private_key,
                    domain=credentials.domain,
                    instance_url=credentials.instance_url or None,
                    version=version,
                    session=session,
                )
            case _:
                return Salesforce(
                    username=credentials.username,
                    password=credentials.password,
                    security_token=credentials.security_token,
                    domain=credentials.domain,
                    version=version,
                    session=session,
                )
    except SalesforceAuthenticationFailed as exc:
        raise SalesforceRequestError(
            f"Salesforce login ({credentials.auth}) failed: {redact(str(exc.code or ''))}", status=401
        ) from None


class SalesforceApi:
    """One authenticated connection: every REST call goes through `call` (budget, timeout, retries, errors)."""

    def __init__(
        self,
        sf: Salesforce,
        *,
        guard: ApiUsageGuard | None = None,
        retry: RetryPolicy | None = None,
        timeout: tuple[float, float] = (5.0, 60.0),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.sf = sf
        self.guard = guard or ApiUsageGuard()
        self.retry = retry or RetryPolicy()
        self.timeout = timeout
        self.sleep = sleep
        # Seconds the invocation has left (SalesforceCrm.from_settings sets it per invocation): retries, slow-down
        # pauses and read timeouts stay within it.
        self.time_left: Callable[[], float] = lambda: math.inf
        self.calls = 0  # HTTP requests answered (retries, logins and Bulk API requests included)
        # Every answer, error or not, REST or Bulk, tells the usage: read it where requests hands it over.
        sf.session.hooks.setdefault("response", []).append(self._on_response)

    def _on_response(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        usage = parse_limit_info(response.headers.get("Sforce-Limit-Info") or "")
        if usage is not None:
            self.guard.record(*usage)

    @property
    def version(self) -> str:
        return str(self.sf.sf_version)

    def call(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool = True,
    ) -> Any:
        """One REST call relative to /services/data/vXX.X/; returns the parsed JSON body (None when empty)."""
        from tenacity import (
            RetryCallState,
            Retrying,
            retry_if_exception_type,
            stop_after_attempt,
            wait_exponential_jitter,
        )

        attempts = stop_after_attempt(self.retry.attempts if idempotent else 1)

        def stop(state: RetryCallState) -> bool:  # out of tries, or no time for the wait and one more call
            return attempts(state) or self.time_left() - (state.upcoming_sleep or 0.0) < MIN_CALL_SECONDS

        retrying = Retrying(
            stop=stop,
            wait=wait_exponential_jitter(multiplier=self.retry.initial_seconds, max=self.retry.max_seconds),
            retry=retry_if_exception_type(SalesforceUnavailable),
            sleep=self.sleep,
            reraise=True,
            before_sleep=lambda state: logger.warning(
                "salesforce call failed; retrying",
                method=method,
                resource=_resource(path),
                attempt=state.attempt_number,
            ),
        )
        for attempt in retrying:
            with attempt:
                return self._once(method, path, body, params)
        raise AssertionError("unreachable")  # pragma: no cover - tenacity reraises

    def _once(self, method: str, path: str, body: Any, params: Mapping[str, str] | None) -> Any:
        import requests
        from simple_salesforce.exceptions import SalesforceError as LibraryError

        left = self.time_left()
        self.guard.before_call(max_wait=left - MIN_CALL_SECONDS)
        try:
            read = min(self.timeout[1], max(1.0, left - 1.0))
            kwargs: dict[str, Any] = {"timeout": (self.timeout[0], read)}
            if body is not None:
                kwargs["data"] = json.dumps(body, separators=(",", ":"), allow_nan=False)
            answer = self.sf.restful(path, params=dict(params) if params else None, method=method, **kwargs)
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise SalesforceUnavailable(
                f"Salesforce {method} {_resource(path)}: {exc.__class__.__name__} (no answer)"
            ) from None
        except LibraryError as exc:
            raise self._refused(method, path, exc.status, exc.content) from None
        return answer

    def _refused(self, method: str, path: str, status: int, content: Any) -> SalesforceError:
        errors = [e for e in content if isinstance(e, dict)] if isinstance(content, list) else []
        first = errors[0] if errors else {}
        code = str(first.get("errorCode") or first.get("statusCode") or "")
        message = redact(str(first.get("message") or ""))[:300]
        where = f"Salesforce {method} {_resource(path)}"
        if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
            concurrent = "concurrent" in message.lower()
            reason = f"{where}: 403 REQUEST_LIMIT_EXCEEDED ({message or 'API limit exceeded'}): " + (
                "too many concurrent long-running requests" if concurrent else "the org's daily API allowance is spent"
            )
            self.guard.block(reason, seconds=min(60.0, self.guard.cooldown_seconds) if concurrent else None)
            return SalesforceLimitExceeded(reason, retry_after=self.guard.blocked_until - self.guard.clock())
        if status >= 500:
            return SalesforceUnavailable(f"{where}: HTTP {status} {code}".rstrip())
        if status == 401:
            return SalesforceRequestError(
                f"{where}: 401 {code or 'INVALID_SESSION_ID'}: the access token expired or is invalid "
                "(a token-only connection cannot refresh it: use JWT bearer or username-password credentials)",
                status=status,
                code=code or "INVALID_SESSION_ID",
            )
        if status == 300:
            return SalesforceRequestError(
                f"{where}: 300 the external id matches more than one record", status=300, code="MULTIPLE_CHOICES"
            )
        return SalesforceRequestError(f"{where}: HTTP {status} {code}: {message}", status=status, code=code)

    def query(self, soql: str) -> list[dict[str, Any]]:
        """Every record a SOQL query finds (following nextRecordsUrl)."""
        answer = self.call("GET", "query", params={"q": soql}) or {}
        records = list(answer.get("records") or [])
        while not answer.get("done", True) and answer.get("nextRecordsUrl"):
            answer = self.call("GET", "query/" + str(answer["nextRecordsUrl"]).rsplit("/query/", 1)[-1]) or {}
            records.extend(answer.get("records") or [])
        return records

    def composite(self, subrequests: Sequence[dict[str, Any]], *, all_or_none: bool) -> list[dict[str, Any]]:
        """One Composite call (≤ 25 subrequests; one API call); returns the compositeResponse items."""
        answer = self.call(
            "POST",
            "composite",
            body={"allOrNone": all_or_none, "compositeRequest": list(subrequests)},
            idempotent=False,
        )
        return list((answer or {}).get("compositeResponse") or [])

    def bulk_upsert(
        self, sobject: str, id_field: str, rows: Sequence[dict[str, str]], *, poll_seconds: float
    ) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
        """A Bulk API 2.0 upsert job (CSV; an empty cell leaves the field as it is): its successful and its failed
        result rows (sf__Id, sf__Created / sf__Error, and the columns sent)."""
        import requests
        from simple_salesforce.bulk2 import SFBulk2Handler
        from simple_salesforce.exceptions import SalesforceError as LibraryError

        self.guard.before_call()
        handler = getattr(SFBulk2Handler(self.sf.session_id, self.sf.bulk2_url, session=self.sf.session), sobject)
        successful: list[dict[str, str]] = []
        failed: list[dict[str, str]] = []
        try:
            jobs = handler.upsert(records=list(rows), external_id_field=id_field, wait=poll_seconds)
            for job in jobs:
                outcome = handler.get_all_ingest_records(job["job_id"])
                successful.extend(outcome["successfulRecords"])
                failed.extend(outcome["failedRecords"])
                failed.extend(
                    {**row, "sf__Error": "UNPROCESSED:not processed"} for row in outcome["unprocessedRecords"]
                )
        except (requests.Timeout, requests.ConnectionError) as exc:
            raise SalesforceUnavailable(f"Salesforce bulk upsert of {sobject}: {exc.__class__.__name__}") from None
        except LibraryError as exc:
            raise self._refused("POST", f"jobs/ingest ({sobject})", exc.status, exc.content) from None
        except Exception as exc:  # simple-salesforce's job errors (failed, aborted, upload refused)
            if exc.__class__.__module__.startswith("simple_salesforce"):
                raise SalesforceRequestError(
                    f"Salesforce bulk upsert of {sobject} failed: {redact(str(exc))[:300]}"
                ) from None
            raise
        return successful, failed


def _resource(path: str) -> str:
    """A path for messages: without its query string (SOQL may hold ids)."""
    return path.split("?", 1)[0]


@functools.lru_cache(maxsize=4)
def _shared_api(credentials: SalesforceCredentials, version: str, slow: float, stop: float) -> SalesforceApi:
    """One connection (session, login, API budget) per container and credentials."""
    return SalesforceApi(connect(credentials, version=version), guard=ApiUsageGuard(slow_ratio=slow, stop_ratio=stop))


# ---------------------------------------------------------------------------------------------------- adapter
@dataclass
class SalesforceCrm:
    """The CRM port on Salesforce (see the module docstring)."""

    api: SalesforceApi
    objects: Mapping[str, SObjectSpec] = field(default_factory=lambda: dict(OBJECTS))
    associations: Mapping[tuple[str, str], Lookup | Junction] = field(default_factory=lambda: dict(ASSOCIATIONS))
    bulk_threshold: int = BULK_THRESHOLD
    bulk_poll_seconds: float = 2.0
    name: str = "salesforce"
    created: set[str] = field(default_factory=set)  # record ids this adapter created (no links to read yet)

    @classmethod
    def from_settings(cls, settings: Settings, *, time_left: Callable[[], float] | None = None) -> SalesforceCrm:
        """The adapter on this container's connection for these settings (made, and logged in, on first use).
        `time_left`: seconds the invocation has left (retries and waits stop in time)."""
        api = _shared_api(
            SalesforceCredentials.from_settings(settings),
            settings.salesforce_api_version,
            settings.salesforce_api_usage_slow,
            settings.salesforce_api_usage_stop,
        )
        api.time_left = time_left or (lambda: math.inf)
        return cls(api=api, bulk_threshold=settings.salesforce_bulk_threshold)

    def _spec(self, object_type: str) -> SObjectSpec:
        spec = self.objects.get(object_type)
        if spec is None:
            raise SalesforceNotConfigured(
                f"no Salesforce object for crmsync type {object_type!r}; known: {sorted(self.objects)}"
            )
        return spec

    # ------------------------------------------------------------------------------------------------ upsert
    def upsert(
        self, object_type: str, inputs: Sequence[UpsertInput], policy: MatchPolicy = "upsert"
    ) -> list[UpsertResult]:
        if policy != "upsert":
            return self._write_by_policy(object_type, inputs, policy)
        if len(inputs) > self.bulk_threshold:
            return self.bulk_upsert(object_type, inputs)
        return self._with_fillers_on_create("upsert", object_type, inputs, self._upsert_collections)

    def _with_fillers_on_create(
        self, operation: str, object_type: str, inputs: Sequence[UpsertInput], send: Sender
    ) -> list[UpsertResult]:
        """Send the records without fillers; Salesforce cannot say "fill this only when creating", so the ones it
        refused to create for want of a required field go again with their fillers (one more call, only for new
        records without, say, a last name). An existing record's name is never overwritten by a filler."""
        spec = self._spec(object_type)
        results: list[UpsertResult | None] = [None] * len(inputs)
        failures: list[RecordFailure] = []
        send(spec, _by_external_id(spec, inputs), results, failures)
        again = sorted({f.index for f in failures if spec.needs_fillers(f)})
        if again:
            failures = [f for f in failures if f.index not in again]
            retried: list[UpsertResult | None] = [None] * len(again)
            refused: list[RecordFailure] = []
            send(spec, _by_external_id(spec, [inputs[i] for i in again], fillers=True), retried, refused)
            for position, result in zip(again, retried, strict=True):
                results[position] = result
            failures.extend(replace(f, index=again[f.index]) for f in refused)
        return _finish(operation, spec.sobject, results, failures)

    def _upsert_collections(
        self,
        spec: SObjectSpec,
        grouped: dict[str, dict[str, tuple[dict[str, Any], list[int]]]],
        results: list[UpsertResult | None],
        failures: list[RecordFailure],
    ) -> None:
        """sObject Collections upserts by external id field, 200 records a call; fills results and failures."""
        for id_field, records in grouped.items():
            items = list(records.items())
            for start in range(0, len(items), COLLECTION_LIMIT):
                chunk = items[start : start + COLLECTION_LIMIT]
                body = {
                    "allOrNone": False,
                    "records": [{"attributes": {"type": spec.sobject}, **fields} for _, (fields, _) in chunk],
                }
                answer = self.api.call("PATCH", f"composite/sobjects/{spec.sobject}/{id_field}", body=body)
                if not isinstance(answer, list) or len(answer) != len(chunk):
                    raise SalesforceRequestError(
                        f"Salesforce upsert of {spec.sobject}: expected {len(chunk)} results, got "
                        f"{len(answer) if isinstance(answer, list) else type(answer).__name__}"
                    )
                for (value, (_, positions)), result in zip(chunk, answer, strict=True):
                    if result.get("success") and result.get("id"):
                        written = UpsertResult(id=str(result["id"]), created=bool(result.get("created")))
                        if written.created:
                            self.created.add(written.id)
                        for i in positions:
                            results[i] = written
                    else:
                        failures.extend(_failures(positions, value, result.get("errors")))

    def bulk_upsert(self, object_type: str, inputs: Sequence[UpsertInput]) -> list[UpsertResult]:
        """Upsert through Bulk API 2.0 (one ingest job per external id field): for backfills, where sObject
        Collections would take more than `bulk_threshold` / 200 calls. Results mapped back by external id."""
        return self._with_fillers_on_create("bulk upsert", object_type, inputs, self._bulk_jobs)

    def _bulk_jobs(
        self,
        spec: SObjectSpec,
        grouped: dict[str, dict[str, tuple[dict[str, Any], list[int]]]],
        results: list[UpsertResult | None],
        failures: list[RecordFailure],
    ) -> None:
        for id_field, records in grouped.items():
            rows = [{name: _csv(value) for name, value in fields.items()} for fields, _ in records.values()]
            successful, failed = self.api.bulk_upsert(spec.sobject, id_field, rows, poll_seconds=self.bulk_poll_seconds)
            for row in successful:
                value = row.get(id_field, "")
                if value in records and row.get("sf__Id"):
                    written = UpsertResult(id=row["sf__Id"], created=row.get("sf__Created", "").lower() == "true")
                    if written.created:
                        self.created.add(written.id)
                    for i in records[value][1]:
                        results[i] = written
            for row in failed:
                value = row.get(id_field, "")
                if value in records:
                    code, _, message = row.get("sf__Error", "UNKNOWN_EXCEPTION:").partition(":")
                    error = {"statusCode": code, "message": message.removesuffix(":--"), "fields": []}
                    failures.extend(_failures(records[value][1], value, [error]))
            missing = [v for v, (_, positions) in records.items() if any(results[i] is None for i in positions)]
            told = {f.external_id for f in failures}
            for value in missing:
                if value not in told:
                    failures.extend(
                        _failures(records[value][1], value, [{"statusCode": "UNPROCESSED", "message": "no result"}])
                    )

    # ------------------------------------------------------------------------------- create_only / update_only
    def _write_by_policy(
        self, object_type: str, inputs: Sequence[UpsertInput], policy: MatchPolicy
    ) -> list[UpsertResult]:
        """Query which external ids a record holds, then create the missing ones (create_only: an upsert, so a
        retry never duplicates) or update the found ones by Id (update_only)."""
        spec = self._spec(object_type)
        results: list[UpsertResult | None] = [None] * len(inputs)
        failures: list[RecordFailure] = []
        to_create: list[int] = []  # input positions
        to_update: list[tuple[str, str, dict[str, Any], list[int]]] = []  # (record id, external id, fields, inputs)
        for id_field, records in _by_external_id(spec, inputs).items():
            found = self._existing(spec.sobject, id_field, list(records))
            for value, (_, positions) in records.items():
                ids = found.get(value, [])
                if len(ids) > 1:
                    failures.extend(_failures(positions, value, [{"statusCode": "MULTIPLE_CHOICES", "message": (
                        f"more than one record found for external id field {id_field}")}]))  # fmt: skip
                elif ids and policy == "create_only":
                    for i in positions:
                        results[i] = UpsertResult(id=ids[0], created=False, skipped=CREATE_ONLY_EXISTS)
                elif policy == "create_only":
                    to_create.extend(positions)
                elif ids:
                    fields: dict[str, Any] = {}
                    for i in positions:  # the later input's values over the earlier's, as an upsert sends them
                        fields |= spec.fields(inputs[i], defaults=False)
                    to_update.append((ids[0], value, fields, positions))
                else:
                    for i in positions:
                        results[i] = UpsertResult(id="", created=False, skipped=UPDATE_ONLY_MISSING)
        if to_create:
            created: list[UpsertResult | None]
            try:
                created = list(self.upsert(object_type, [inputs[i] for i in to_create]))
            except SalesforceRecordError as refused:
                created = list(refused.results)
                failures.extend(replace(f, index=to_create[f.index]) for f in refused.failures)
            for i, result in zip(to_create, created, strict=False):
                results[i] = result
        for start in range(0, len(to_update), COLLECTION_LIMIT):
            self._update_by_id(spec, to_update[start : start + COLLECTION_LIMIT], results, failures)
        skipped = sum(1 for r in results if r is not None and r.skipped)
        if skipped:
            logger.info("salesforce match policy left records alone", sobject=spec.sobject, policy=policy,
                        skipped=skipped)  # fmt: skip
        return _finish(policy, spec.sobject, results, failures)

    def _existing(self, sobject: str, id_field: str, values: list[str]) -> dict[str, list[str]]:
        """External id value -> the ids of the records holding it (one query per chunk of values)."""
        if not FIELD_NAME.match(id_field):
            raise SalesforceNotConfigured(f"not a Salesforce field name: {id_field[:80]!r}")
        found: dict[str, list[str]] = {}
        for chunk in _query_chunks(values):
            literals = ", ".join(_soql_string(value) for value in chunk)
            soql = f"SELECT Id, {id_field} FROM {sobject} WHERE {id_field} IN ({literals})"  # noqa: S608 - escaped
            for row in self.api.query(soql):
                found.setdefault(str(row.get(id_field)), []).append(str(row["Id"]))
        return found

    def _update_by_id(
        self,
        spec: SObjectSpec,
        chunk: list[tuple[str, str, dict[str, Any], list[int]]],
        results: list[UpsertResult | None],
        failures: list[RecordFailure],
    ) -> None:
        records = [
            {"attributes": {"type": spec.sobject}, "id": record_id, **fields} for record_id, _, fields, _ in chunk
        ]
        answer = self.api.call("PATCH", "composite/sobjects", body={"allOrNone": False, "records": records})
        if not isinstance(answer, list) or len(answer) != len(chunk):
            raise SalesforceRequestError(
                f"Salesforce update of {spec.sobject}: expected {len(chunk)} results, got "
                f"{len(answer) if isinstance(answer, list) else type(answer).__name__}"
            )
        for (record_id, external_id, _, positions), result in zip(chunk, answer, strict=True):
            errors = result.get("errors") if isinstance(result.get("errors"), list) else []
            code = _code(errors[0]) if errors and isinstance(errors[0], dict) else ""
            if result.get("success"):
                written = UpsertResult(id=record_id, created=False)
            elif code in GONE:  # deleted since the query: update_only creates nothing
                written = UpsertResult(id="", created=False, skipped=UPDATE_ONLY_MISSING)
            else:
                failures.extend(_failures(positions, external_id, errors))
                continue
            for i in positions:
                results[i] = written

    # ------------------------------------------------------------------------------------------- associations
    def associate(self, from_type: str, to_type: str, pairs: Sequence[Association]) -> None:
        how = self.associations.get((from_type, to_type))
        if how is None:
            raise SalesforceNotConfigured(f"no Salesforce association from {from_type} to {to_type}")
        unique = list(dict.fromkeys((p.from_id, p.to_id) for p in pairs))
        for from_id, to_id in unique:
            _check_id(from_id)
            _check_id(to_id)
        if isinstance(how, Lookup):
            self._set_lookups(self._spec(from_type).sobject, how.field, dict(unique))
        else:
            for start in range(0, len(unique), COLLECTION_LIMIT):
                self._link(how, unique[start : start + COLLECTION_LIMIT])

    def _set_lookups(self, sobject: str, lookup: str, targets: dict[str, str]) -> None:
        """Set `lookup` on each record (sObject Collections update by id; setting it again changes nothing)."""
        items = list(targets.items())
        failures: list[RecordFailure] = []
        for start in range(0, len(items), COLLECTION_LIMIT):
            chunk = items[start : start + COLLECTION_LIMIT]
            records = [{"attributes": {"type": sobject}, "id": rid, lookup: target} for rid, target in chunk]
            answer = self.api.call("PATCH", "composite/sobjects", body={"allOrNone": False, "records": records})
            for i, ((rid, _), result) in enumerate(zip(chunk, answer or [], strict=False)):
                if not result.get("success"):
                    failures.extend(_failures([start + i], rid, result.get("errors")))
        if failures:
            raise SalesforceRecordError(f"set {lookup}", sobject, failures)

    def _link(self, how: Junction, pairs: list[tuple[str, str]]) -> None:
        """Create the junction records that do not exist yet (read first, unless every from-record is new)."""
        owners = list(dict.fromkeys(a for a, _ in pairs))
        existing: set[tuple[str, str]] = set()
        linked: set[str] = set()
        if not all(owner in self.created for owner in owners):
            for row in self.api.query(_select([how.from_field, how.to_field], how.sobject, how.from_field, owners)):
                existing.add((str(row.get(how.from_field)), str(row.get(how.to_field))))
                linked.add(str(row.get(how.from_field)))
        missing = [pair for pair in pairs if pair not in existing]
        self.created.difference_update(owners)  # linked now: the next call reads what exists
        if not missing:
            return
        records = []
        for a, b in missing:
            record: dict[str, Any] = {"attributes": {"type": how.sobject}, how.from_field: a, how.to_field: b}
            if how.primary_field:
                record[how.primary_field] = a not in linked
            linked.add(a)
            records.append(record)
        answer = self.api.call(
            "POST", "composite/sobjects", body={"allOrNone": False, "records": records}, idempotent=False
        )
        failures: list[RecordFailure] = []
        for i, ((a, b), result) in enumerate(zip(missing, answer or [], strict=False)):
            if not result.get("success"):
                failures.extend(_failures([i], f"{a}->{b}", result.get("errors")))
        if failures:
            raise SalesforceRecordError("link", how.sobject, failures)

    # ------------------------------------------------------------------------------------------------ erasure
    def delete(self, object_type: str, ids: Sequence[str]) -> list[ErasureAnswer]:
        spec = self._spec(object_type)
        for record_id in ids:
            _check_id(record_id)
        answers: list[ErasureAnswer] = []
        failures: list[RecordFailure] = []
        for start in range(0, len(ids), COLLECTION_LIMIT):
            chunk = list(ids[start : start + COLLECTION_LIMIT])
            params = {"ids": ",".join(chunk), "allOrNone": "false"}
            answer = self.api.call("DELETE", "composite/sobjects", params=params) or []
            self._erasure_answers(chunk, answer, "deleted", start, answers, failures)
        if failures:
            raise SalesforceRecordError("delete", spec.sobject, failures)
        return answers

    def anonymise(self, object_type: str, ids: Sequence[str], properties: Sequence[str]) -> list[ErasureAnswer]:
        spec = self._spec(object_type)
        for record_id in ids:
            _check_id(record_id)
        cleared: dict[str, Any] = {}
        for name in properties:
            default = spec.fillers.get(name) or spec.defaults.get(name)  # a required field cannot be null
            cleared[name] = spec.coerce(name, default() if callable(default) else default) if default else None
        answers: list[ErasureAnswer] = []
        failures: list[RecordFailure] = []
        for start in range(0, len(ids), COLLECTION_LIMIT):
            chunk = list(ids[start : start + COLLECTION_LIMIT])
            records = [{"attributes": {"type": spec.sobject}, "id": record_id, **cleared} for record_id in chunk]
            answer = self.api.call("PATCH", "composite/sobjects", body={"allOrNone": False, "records": records}) or []
            self._erasure_answers(chunk, answer, "anonymised", start, answers, failures)
        if failures:
            raise SalesforceRecordError("anonymise", spec.sobject, failures)
        return answers

    @staticmethod
    def _erasure_answers(
        chunk: list[str],
        answer: Any,
        done: str,
        start: int,
        answers: list[ErasureAnswer],
        failures: list[RecordFailure],
    ) -> None:
        results = answer if isinstance(answer, list) else []
        for i, record_id in enumerate(chunk):
            result = results[i] if i < len(results) and isinstance(results[i], dict) else {}
            if result.get("success"):
                answers.append(ErasureAnswer(record_id, done, "sObject Collections: success"))
                continue
            errors = result.get("errors") if isinstance(result.get("errors"), list) else []
            code = _code(errors[0]) if errors and isinstance(errors[0], dict) else "NO_RESULT"
            if code in GONE:
                answers.append(ErasureAnswer(record_id, "not_found", code))
            else:
                failures.extend(_failures([start + i], record_id, errors or [{"statusCode": code}]))

    # -------------------------------------------------------------------------------------------------- merge
    def read(
        self, object_type: str, id_property: str, values: Sequence[str], properties: Sequence[str] = ()
    ) -> dict[str, dict[str, str]]:
        """Reconciliation's batched read-back (CrmPort.read): `SELECT Id, <id field>, <properties> FROM <SObject>
        WHERE <id field> IN (...)`, `READ_VALUES` values a query (literals escaped by simple-salesforce's
        format_soql), up to 25 queries in one Composite call: the queries travel in the body, so no URL grows past
        Salesforce's 16 KB limit, and 5,000 values cost one API call. Values come back as text (numbers as Salesforce
        returns them, dates YYYY-MM-DD, booleans true/false): compare them with `as_stored` of what was sent."""
        from simple_salesforce.format import format_soql

        spec = self._spec(object_type)
        fields = list(dict.fromkeys(["Id", id_property, *properties]))
        for name in fields:
            if not FIELD_NAME.match(name):
                raise SalesforceNotConfigured(f"not a Salesforce field name: {name[:60]!r}")
        wanted = list(dict.fromkeys(v for v in values if v))
        queries = {
            f"r{n}": format_soql(
                "SELECT {:literal} FROM {:literal} WHERE {:literal} IN {}",
                ", ".join(fields), spec.sobject, id_property, wanted[start : start + READ_VALUES],
            )
            for n, start in enumerate(range(0, len(wanted), READ_VALUES))
        }  # fmt: skip
        found: dict[str, dict[str, str]] = {}
        refs = list(queries)
        for start in range(0, len(refs), COMPOSITE_LIMIT):
            group = {ref: queries[ref] for ref in refs[start : start + COMPOSITE_LIMIT]}
            for rows in self._read_all(group).values():
                for row in rows:
                    held = row.get(id_property)
                    if held is not None:
                        found[str(held)] = {k: _text(v) for k, v in row.items() if k != "attributes"}
        return found

    def as_stored(self, object_type: str, properties: Mapping[str, str]) -> dict[str, str]:
        """The text `read` gives back for these mapped values once written: each coerced as the adapter sends it
        (a timestamp's UTC date, a number, text cut to its field's length). Reconciliation compares through it."""
        spec = self._spec(object_type)
        return {name: _text(spec.coerce(name, value)) for name, value in properties.items()}

    def merge(self, object_type: str, primary_id: str, merged_id: str) -> None:
        """Fold one contact into another: re-parent, then delete (see the module docstring). Merging a contact that
        is already gone changes nothing."""
        spec = self._spec(object_type)
        if spec.sobject != "Contact":
            raise SalesforceNotConfigured(f"crmsync merges Salesforce contacts only, not {spec.sobject}")
        _check_id(primary_id)
        _check_id(merged_id)
        if primary_id == merged_id:
            return
        role = self.associations.get(("deals", "contacts"))
        both = [primary_id, merged_id]
        read = {
            "contacts": _select(["Id", *spec.merge_fields], "Contact", "Id", both),
            "tasks": _select(["Id"], "Task", "WhoId", [merged_id]),
        }
        if isinstance(role, Junction):
            read["roles"] = _select(["Id", role.from_field, role.to_field], role.sobject, role.to_field, both)
        found = self._read_all(read)
        contacts = {str(r["Id"]): r for r in found["contacts"]}
        if merged_id not in contacts:
            return  # already merged (or deleted): nothing to do
        if primary_id not in contacts:
            raise SalesforceError(f"cannot merge contact {merged_id} into {primary_id}: the primary does not exist")
        writes: list[tuple[str, str, Any]] = []  # (method, path, body)
        if isinstance(role, Junction):
            roles = found["roles"]
            has = {str(r[role.from_field]) for r in roles if r[role.to_field] == primary_id}
            moved = [
                {"attributes": {"type": role.sobject}, role.from_field: r[role.from_field], role.to_field: primary_id}
                for r in roles
                if r[role.to_field] == merged_id and str(r[role.from_field]) not in has
            ]
            for i in range(0, len(moved), COLLECTION_LIMIT):
                writes.append(("POST", "composite/sobjects", _collection(moved[i : i + COLLECTION_LIMIT])))
        tasks = [{"attributes": {"type": "Task"}, "id": r["Id"], "WhoId": primary_id} for r in found["tasks"]]
        for i in range(0, len(tasks), COLLECTION_LIMIT):
            writes.append(("PATCH", "composite/sobjects", _collection(tasks[i : i + COLLECTION_LIMIT])))
        writes.append(("DELETE", f"composite/sobjects?ids={merged_id}&allOrNone=true", None))
        primary, merged = contacts[primary_id], contacts[merged_id]
        fill = {
            name: merged[name]
            for name in spec.merge_fields
            if merged.get(name) not in (None, "", NOT_PROVIDED) and primary.get(name) in (None, "", NOT_PROVIDED)
        }
        if fill:
            writes.append(
                (
                    "PATCH",
                    "composite/sobjects",
                    _collection([{"attributes": {"type": "Contact"}, "id": primary_id, **fill}]),
                )
            )
        self._write_all(writes, what=f"merge of contact {merged_id} into {primary_id}")
        logger.info("salesforce contacts merged", primary=primary_id, merged=merged_id, tasks=len(tasks))

    def _read_all(self, queries: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
        base = f"/services/data/v{self.api.version}"
        answers = self.api.composite(
            [
                {"method": "GET", "url": f"{base}/query?q={quote(soql)}", "referenceId": ref}
                for ref, soql in queries.items()
            ],
            all_or_none=False,
        )
        found: dict[str, list[dict[str, Any]]] = {}
        for answer in answers:
            ref, status, body = answer.get("referenceId"), int(answer.get("httpStatusCode") or 0), answer.get("body")
            if status != 200 or not isinstance(body, dict):
                raise SalesforceRequestError(f"Salesforce query {ref} in a composite call failed: HTTP {status}")
            records = list(body.get("records") or [])
            while not body.get("done", True) and body.get("nextRecordsUrl"):
                more = self.api.call("GET", "query/" + str(body["nextRecordsUrl"]).rsplit("/query/", 1)[-1]) or {}
                records.extend(more.get("records") or [])
                body = more
            found[str(ref)] = records
        missing = set(queries) - set(found)
        if missing:
            raise SalesforceRequestError(f"Salesforce composite call answered no {sorted(missing)}")
        return found

    def _write_all(self, writes: list[tuple[str, str, Any]], *, what: str) -> None:
        base = f"/services/data/v{self.api.version}"
        for start in range(0, len(writes), COMPOSITE_LIMIT):
            group = writes[start : start + COMPOSITE_LIMIT]
            subrequests = [
                {"method": method, "url": f"{base}/{path}", "referenceId": f"w{start + i}"}
                | ({"body": body} if body is not None else {})
                for i, (method, path, body) in enumerate(group)
            ]
            errors: list[tuple[int, dict[str, Any]]] = []
            for answer in self.api.composite(subrequests, all_or_none=True):
                status, body = int(answer.get("httpStatusCode") or 0), answer.get("body")
                for item in body if isinstance(body, list) else [body]:
                    if not isinstance(item, dict):
                        continue
                    if item.get("success") is False:
                        errors += [(status, e) for e in item.get("errors") or [] if isinstance(e, dict)]
                    elif "errorCode" in item or status >= 300:
                        errors.append((status, item))
            if errors:
                # With allOrNone, the operations that did not fail answer "rolled back": tell the one that failed.
                status, error = next((e for e in errors if _code(e[1]) not in ROLLED_BACK), errors[0])
                raise SalesforceRequestError(
                    f"Salesforce {what} failed and was rolled back: {_code(error)}: "
                    f"{redact(str(error.get('message') or ''))[:300]}",
                    status=status,
                    code=_code(error),
                )


# ---------------------------------------------------------------------------------------------------- helpers
def _by_external_id(
    spec: SObjectSpec, inputs: Sequence[UpsertInput], *, fillers: bool = False
) -> dict[str, dict[str, tuple[dict[str, Any], list[int]]]]:
    """id field -> external id value -> (record fields, input positions): one record per external id (two inputs
    with one id are sent once, the later input's values over the earlier's), in input order."""
    grouped: dict[str, dict[str, tuple[dict[str, Any], list[int]]]] = {}
    for i, item in enumerate(inputs):
        records = grouped.setdefault(item.id_property, {})
        fields = spec.fields(item)
        if item.id_value in records:
            earlier, positions = records[item.id_value]
            records[item.id_value] = ({**earlier, **fields}, [*positions, i])
        else:
            records[item.id_value] = (fields, [i])
    if fillers:  # after the merge: a later input without a name must not put a filler over an earlier one's name
        for records in grouped.values():
            for value, (fields, positions) in records.items():
                records[value] = (spec.fill(fields, spec.fillers), positions)
    return grouped


def _failures(positions: Sequence[int], external_id: str, errors: Any) -> Iterator[RecordFailure]:
    first = errors[0] if isinstance(errors, list) and errors and isinstance(errors[0], dict) else {}
    code = str(first.get("statusCode") or first.get("errorCode") or "UNKNOWN_EXCEPTION")
    message = str(first.get("message") or "")
    fields = tuple(str(f) for f in first.get("fields") or ())
    for i in positions:
        yield RecordFailure(index=i, external_id=external_id, code=code, message=message, fields=fields)


def _finish(
    operation: str, sobject: str, results: list[UpsertResult | None], failures: list[RecordFailure]
) -> list[UpsertResult]:
    if failures or any(r is None for r in results):
        raise SalesforceRecordError(operation, sobject, sorted(failures, key=lambda f: f.index), results)
    return [r for r in results if r is not None]


ROLLED_BACK = frozenset({"PROCESSING_HALTED", "ALL_OR_NONE_OPERATION_ROLLED_BACK"})
GONE = frozenset({"ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY", "NOT_FOUND"})  # erasure: nothing left there


def _code(error: dict[str, Any]) -> str:
    return str(error.get("statusCode") or error.get("errorCode") or "UNKNOWN_EXCEPTION")


def _collection(records: list[dict[str, Any]]) -> dict[str, Any]:
    return {"allOrNone": True, "records": records}


def _csv(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    return "" if value is None else str(value)


def _select(fields: Sequence[str], sobject: str, where: str, record_ids: Sequence[str]) -> str:
    """`SELECT a, b FROM X WHERE w IN ('id1', 'id2')`: names come from this module's tables, and every id is
    checked to be a Salesforce id first, so nothing else ever reaches a query."""
    for record_id in record_ids:
        _check_id(record_id)
    ids = ", ".join(f"'{record_id}'" for record_id in record_ids)
    return f"SELECT {', '.join(fields)} FROM {sobject} WHERE {where} IN ({ids})"  # noqa: S608 - ids checked above


def _soql_string(value: str) -> str:
    """A SOQL string literal, quoted and escaped by simple-salesforce (its format_soql quoting), so an external id
    can never end the literal."""
    from simple_salesforce.format import quote_soql_value

    return str(quote_soql_value(value))


def _query_chunks(values: Sequence[str]) -> list[list[str]]:
    """Values for `IN (...)` lookups: at most COLLECTION_LIMIT a query, and at most QUERY_CHARS of URL-encoded
    literals (typical external ids fit 200 a query)."""
    chunks: list[list[str]] = []
    size = 0
    for value in values:
        length = len(quote(_soql_string(value) + ", ", safe=""))
        if not chunks or len(chunks[-1]) >= COLLECTION_LIMIT or size + length > QUERY_CHARS:
            chunks.append([])
            size = 0
        chunks[-1].append(value)
        size += length
    return chunks


READ_VALUES = 200  # values per SOQL read-back query (well within SOQL's 100,000-character statement limit)
FIELD_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def _text(value: Any) -> str:
    """A SOQL result value as text: null -> "", booleans true/false, numbers without a float's trailing ".0"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _check_id(record_id: str) -> None:
    """Ids go into SOQL and URLs: only Salesforce's 15/18-character ids pass."""
    if not RECORD_ID.match(record_id):
        raise SalesforceError(f"not a Salesforce record id: {redact(record_id)[:40]!r}")
