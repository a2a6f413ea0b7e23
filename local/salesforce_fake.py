"""A fake Salesforce: the REST endpoints crmsync's Salesforce adapter calls, in memory, with Salesforce's documented
response shapes. For tests (in-process through `session()`, or over HTTP on 127.0.0.1) and for local runs:

    python local/salesforce_fake.py --port 8766      # then CRM_BACKEND=salesforce SALESFORCE_INSTANCE_URL=... make run

What it models (API version: any `/services/data/vNN.N/`):
- Bearer token auth: a wrong or missing token -> 401 `[{"message": "Session expired or invalid", "errorCode":
  "INVALID_SESSION_ID"}]`.
- sObject Collections: upsert by external id (`PATCH composite/sobjects/{SObject}/{Field}`: 200 with one
  `{"id", "success", "errors", "created"}` per record, in order), update by id (`PATCH composite/sobjects`), create
  (`POST composite/sobjects`), delete (`DELETE composite/sobjects?ids=`); at most 200 records (else 400
  EXCEEDED_ID_LIMIT); every record needs `attributes.type` of the URL's sObject; allOrNone true rolls every record back
  (ALL_OR_NONE_OPERATION_ROLLED_BACK) when one fails. Per-record errors `{"statusCode", "message", "fields"}`:
  REQUIRED_FIELD_MISSING (on create), DUPLICATE_EXTERNAL_ID (the same external id twice in one request, or an id held
  by several records: "more than one record found for external id field"), DUPLICATES_DETECTED (the duplicate rules
  given to the constructor: same value of a field on another record), INVALID_CROSS_REFERENCE_KEY (a lookup to a
  record that does not exist), ENTITY_IS_DELETED, MALFORMED_ID, STRING_TOO_LONG (Subject > 255).
- Single-record upsert `PATCH sobjects/{SObject}/{Field}/{value}`: 201 created / 200 updated
  `{"id", "success", "errors", "created"}`; 300 with the list of matching record URLs when several match; 400 errors.
- Whole-request errors as an array `[{"message", "errorCode"}]`: 400 INVALID_FIELD (a field the sObject does not
  have: standard fields from FIELDS, custom fields from `custom_fields`), JSON_PARSER_ERROR (a date not YYYY-MM-DD, a
  number field given a non-number), INVALID_TYPE, MALFORMED_QUERY; 404 NOT_FOUND (unknown resource, or an external id
  field that is not one).
- Composite (`POST composite`): up to 25 subrequests run in order through the same endpoints, counted as ONE API
  call; `{"compositeResponse": [{"body", "httpHeaders", "httpStatusCode", "referenceId"}]}`; allOrNone true rolls all
  back and answers PROCESSING_HALTED for the others. No `@{ref.field}` references.
- SOQL (`GET query?q=`, also as a Composite subrequest): `SELECT f, ... FROM X [WHERE f = 'v' | f IN ('a', ...)
  [AND ...]] [LIMIT n]` (string literals with \' and \\ escapes), all records in one page (done: true), each with
  `attributes {type, url}` and its field values typed as Salesforce returns them (numbers, dates YYYY-MM-DD).
- Bulk API 2.0 ingest (upsert/insert/update of CSV): create job, PUT batches (201), PATCH UploadComplete (the job
  runs at once and is JobComplete), GET job info, successfulResults / failedResults / unprocessedrecords CSVs; an
  empty cell leaves the field as it is, `#N/A` clears it.
- Limits: every answer carries `Sforce-Limit-Info: api-usage=N/M`; each request counts one (a composite one); once
  `daily_limit` requests were made, 403 `[{"message": "TotalRequests Limit exceeded.", "errorCode":
  "REQUEST_LIMIT_EXCEEDED"}]`. `GET limits` answers DailyApiRequests.
- Faults for tests: `fail_next(status, times)` answers the next requests with 500 UNKNOWN_EXCEPTION or 503
  SERVER_UNAVAILABLE before they have any effect; `delay_next(seconds, times)` answers late (client timeouts).
- Relationships: OpportunityContactRole (IsPrimary moves the primary and fills Opportunity.ContactId); deleting a
  contact or opportunity deletes its contact roles and clears the Task lookups pointing at it.

What it does not model: OAuth logins (use a token), field-level security, sharing, validation rules, triggers and
flows, picklist values, record types, multi-currency, case-insensitive external ids, the duplicate rule's
`duplicateResult` details, the concurrent-request limit, query paging (nextRecordsUrl), SOQL beyond the subset above,
composite references, Bulk API query jobs and real asynchrony (a job completes when it is closed), per-app usage in
the limit header, and number fields given numeric strings (refused here, which Salesforce may accept).
"""

from __future__ import annotations

import argparse
import copy
import csv
import io
import itertools
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

TOKEN = "local-salesforce-token"  # noqa: S105 - the fake's default, never a real token
PREFIX = re.compile(r"^/services/data/v(\d+\.\d)/(.*)$")
ID_PREFIX = {
    "Account": "001",
    "Contact": "003",
    "Opportunity": "006",
    "Task": "00T",
    "OpportunityContactRole": "00K",
}
FIELDS: dict[str, set[str]] = {
    "Account": {"Id", "Name", "Phone", "Website", "AnnualRevenue", "Description"},
    "Contact": {
        "Id",
        "AccountId",
        "FirstName",
        "LastName",
        "Email",
        "Phone",
        "Title",
        "Description",
        "MailingStreet",
        "MailingCity",
        "MailingState",
        "MailingPostalCode",
        "MailingCountry",
        "MailingStateCode",
        "MailingCountryCode",
    },
    "Opportunity": {
        "Id",
        "AccountId",
        "ContactId",
        "Name",
        "Amount",
        "CloseDate",
        "StageName",
        "Probability",
        "Description",
    },
    "Task": {"Id", "Subject", "Description", "ActivityDate", "Status", "Priority", "WhoId", "WhatId", "OwnerId"},
    "OpportunityContactRole": {"Id", "OpportunityId", "ContactId", "Role", "IsPrimary"},
}
REQUIRED = {
    "Account": ("Name",),
    "Contact": ("LastName",),
    "Opportunity": ("Name", "StageName", "CloseDate"),
    "OpportunityContactRole": ("OpportunityId", "ContactId"),
}
DATES = {"CloseDate", "ActivityDate"}
NUMBERS = {"Amount", "Probability", "AnnualRevenue"}
BOOLEANS = {"IsPrimary"}
REFERENCES = {
    "AccountId": ("Account",),
    "ContactId": ("Contact",),
    "OpportunityId": ("Opportunity",),
    "WhoId": ("Contact",),
    "WhatId": ("Opportunity", "Account"),
}
READ_ONLY = {"Opportunity": {"ContactId"}}  # derived from the primary contact role
CREATE_ONLY = {"OpportunityContactRole": {"OpportunityId"}}
MAX_LENGTHS = {"Subject": 255, "Name": 120, "LastName": 80, "FirstName": 40}
DEFAULTS = {"Task": {"Status": "Not Started", "Priority": "Normal"}}
# crmsync's custom fields (config/mappings/salesforce.yaml): name -> type; the external id field on every object.
# The rules' fields (rule_properties there) too: lifecycle stage, tags, risk flag/reason/score, refund status.
RULE_FIELDS = {
    "Crmsync_Risk_Flag__c": "text",
    "Crmsync_Risk_Reason__c": "text",
    "Crmsync_Risk_Score__c": "number",
}
CRMSYNC_FIELDS: dict[str, dict[str, str]] = {
    "Account": {"Crmsync_External_Id__c": "external_id"},
    "Contact": {
        "Crmsync_External_Id__c": "external_id",
        "Crmsync_Lifecycle_Stage__c": "text",
        "Crmsync_Tags__c": "text",
        **RULE_FIELDS,
    },
    "Opportunity": {
        "Crmsync_External_Id__c": "external_id",
        "Crmsync_Currency__c": "text",
        "Crmsync_Refunded_Amount__c": "number",
        "Crmsync_Payment_Status__c": "text",
        "Crmsync_Refund_Status__c": "text",
        **RULE_FIELDS,
    },
    "Task": {"Crmsync_External_Id__c": "external_id"},
    "OpportunityContactRole": {},
}
LIMIT = 200
RESULTS = {k.lower(): k for k in ("successfulResults", "failedResults", "unprocessedrecords")}
COMPOSITE_LIMIT = 25
HALTED = "The transaction was rolled back since another operation in the same transaction failed."
ROLLED_BACK = "Record rolled back because not all records were valid and the request was using AllOrNone header"
SOQL = re.compile(
    r"^\s*SELECT\s+(?P<fields>.+?)\s+FROM\s+(?P<sobject>\w+)(?:\s+WHERE\s+(?P<where>.+?))?"
    r"(?:\s+LIMIT\s+(?P<limit>\d+))?\s*$",
    re.IGNORECASE | re.DOTALL,
)
# String literals may hold escaped quotes and backslashes (\' and \\, as simple-salesforce's format_soql writes them),
# commas and parentheses.
LITERAL = r"'(?:[^'\\]|\\.)*'"
CONDITION = re.compile(
    rf"^\s*(?P<field>\w+)\s*(?:=\s*(?P<value>{LITERAL})|IN\s*\((?P<values>\s*{LITERAL}(?:\s*,\s*{LITERAL})*\s*)\))\s*$",
    re.IGNORECASE | re.DOTALL,
)


def _literals(text: str) -> set[str]:
    """The values of the SOQL string literals in `text`, unescaped."""
    return {re.sub(r"\\(.)", r"\1", m[1:-1]) for m in re.findall(LITERAL, text)}


class Refused(Exception):
    """A whole request refused: HTTP status and Salesforce's error array."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.body: Any = [{"message": message, "errorCode": code}]


def _error(code: str, message: str, fields: list[str] | None = None) -> dict[str, Any]:
    return {"statusCode": code, "message": message, "fields": fields or []}


@dataclass
class Answer:
    status: int
    body: Any = None
    content_type: str = "application/json;charset=UTF-8"

    def payload(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Seen:
    """One request as the fake received it (tests read these)."""

    method: str
    path: str  # after /services/data/vNN.N/
    query: dict[str, list[str]]
    body: Any


@dataclass
class FakeSalesforce:
    token: str = TOKEN
    daily_limit: int = 100_000
    used: int = 0
    # sObject -> field: a second record with the same value is refused (DUPLICATES_DETECTED), e.g. {"Contact": "Email"}
    duplicate_rules: dict[str, str] = field(default_factory=dict)
    custom_fields: dict[str, dict[str, str]] = field(default_factory=lambda: copy.deepcopy(CRMSYNC_FIELDS))
    records: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: {s: {} for s in FIELDS})
    seen: list[Seen] = field(default_factory=list)  # requests that passed auth, the limit and the faults
    received: int = 0  # every request, answered or refused
    jobs: dict[str, dict[str, Any]] = field(default_factory=dict)
    _faults: deque[tuple[int, float]] = field(default_factory=deque)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.RLock = field(default_factory=threading.RLock)

    # ----------------------------------------------------------------------------------------------- for tests
    def fail_next(self, status: int = 503, times: int = 1) -> None:
        self._faults.extend([(status, 0.0)] * times)

    def delay_next(self, seconds: float, times: int = 1) -> None:
        self._faults.extend([(0, seconds)] * times)

    def seed(self, sobject: str, **fields: Any) -> str:
        """Put a record in directly, as an admin or another integration would (no checks): its id."""
        with self._lock:
            record_id = self._new_id(sobject)
            self.records[sobject][record_id] = {"Id": record_id, **fields}
            return record_id

    def all(self, sobject: str) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(r) for r in self.records[sobject].values()]

    def find(self, sobject: str, **match: Any) -> list[dict[str, Any]]:
        return [r for r in self.all(sobject) if all(r.get(k) == v for k, v in match.items())]

    def calls(self, method: str | None = None, prefix: str = "") -> list[Seen]:
        return [s for s in self.seen if (method is None or s.method == method) and s.path.startswith(prefix)]

    def session(self, base_url: str = "https://fake.my.salesforce.com") -> requests.Session:
        """A requests Session whose every request is answered by this fake in-process (no socket)."""
        session = requests.Session()
        adapter = _InProcessAdapter(self)
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        return session

    # -------------------------------------------------------------------------------------------- the server
    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request -> (status, headers, body)."""
        fault = self._faults.popleft() if self._faults else None
        if fault and fault[1]:
            time.sleep(fault[1])
        with self._lock:
            answer = self._handle(method, target, headers, body, fault[0] if fault else 0)
            out_headers = {
                "Content-Type": answer.content_type,
                "Sforce-Limit-Info": f"api-usage={self.used}/{self.daily_limit}",
            }
        return answer.status, out_headers, answer.payload()

    def _handle(self, method: str, target: str, headers: dict[str, str], raw: bytes, fault: int) -> Answer:
        self.received += 1
        parts = urlsplit(target)
        match = PREFIX.match(unquote(parts.path))
        if not match:
            return Answer(404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if auth != f"Bearer {self.token}":
            return Answer(401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}])
        if self.used >= self.daily_limit:
            return Answer(403, [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}])
        self.used += 1
        if fault:
            code = "SERVER_UNAVAILABLE" if fault == 503 else "UNKNOWN_EXCEPTION"
            return Answer(fault, [{"message": "An unexpected error occurred. Please try again.", "errorCode": code}])
        version, path = match[1], match[2].rstrip("/")
        query = parse_qs(parts.query, keep_blank_values=True)
        is_csv = path.startswith("jobs/ingest/") and path.endswith("/batches")
        try:
            body = raw.decode() if is_csv else (json.loads(raw) if raw else None)
        except ValueError:
            return Answer(400, [{"message": "Unexpected character in JSON body", "errorCode": "JSON_PARSER_ERROR"}])
        self.seen.append(Seen(method, path, query, body))
        try:
            return self._route(method, path, query, body, version)
        except Refused as exc:
            return Answer(exc.status, exc.body)

    def _route(self, method: str, path: str, query: dict[str, list[str]], body: Any, version: str) -> Answer:
        segments = path.split("/")
        match method, segments:
            case "PATCH", ["composite", "sobjects", sobject, id_field]:
                return Answer(200, self._upsert_collection(sobject, id_field, body))
            case "PATCH", ["composite", "sobjects"]:
                return Answer(200, self._update_collection(body))
            case "POST", ["composite", "sobjects"]:
                return Answer(200, self._create_collection(body))
            case "DELETE", ["composite", "sobjects"]:
                ids = ",".join(query.get("ids", [""])).split(",")
                all_or_none = query.get("allOrNone", ["false"])[0].lower() == "true"
                return Answer(200, self._delete_collection([i for i in ids if i], all_or_none))
            case "POST", ["composite"]:
                return Answer(200, self._composite(body, version))
            case "GET", ["query"]:
                return Answer(200, self._query(query.get("q", [""])[0], version))
            case "GET", ["limits"]:
                remaining = self.daily_limit - self.used
                return Answer(200, {"DailyApiRequests": {"Max": self.daily_limit, "Remaining": remaining}})
            case "PATCH", ["sobjects", sobject, id_field, value]:
                return self._upsert_one(sobject, id_field, value, body, version)
            case "GET", ["sobjects", sobject, record_id]:
                record = self.records.get(sobject, {}).get(record_id)
                if record is None:
                    raise Refused(404, "NOT_FOUND", "The requested resource does not exist")
                return Answer(200, {"attributes": _attributes(sobject, record_id, version), **record})
            case _ if segments[:2] == ["jobs", "ingest"]:
                return self._bulk(method, segments[2:], body, version)
        raise Refused(404, "NOT_FOUND", "The requested resource does not exist")

    # -------------------------------------------------------------------------------------------- records
    def _new_id(self, sobject: str) -> str:
        return f"{ID_PREFIX.get(sobject, 'a00')}{next(self._ids):012d}AAA"

    def _schema(self, sobject: str) -> set[str]:
        if sobject not in FIELDS:
            raise Refused(400, "INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        return FIELDS[sobject] | set(self.custom_fields.get(sobject, {}))

    def _external_id_field(self, sobject: str, id_field: str) -> None:
        self._schema(sobject)
        if self.custom_fields.get(sobject, {}).get(id_field) != "external_id":
            raise Refused(
                404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: {id_field}"
            )

    def _check_types(self, sobject: str, record: dict[str, Any]) -> None:
        """Whole-request checks: unknown fields and JSON types (Salesforce refuses these while parsing)."""
        schema = self._schema(sobject)
        for name, value in record.items():
            if name in ("attributes", "id"):
                continue
            if name not in schema:
                raise Refused(400, "INVALID_FIELD", f"No such column '{name}' on sobject of type {sobject}")
            if value is None:
                continue
            number = name in NUMBERS or self.custom_fields.get(sobject, {}).get(name) == "number"
            if name in DATES and not (isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
                raise Refused(
                    400,
                    "JSON_PARSER_ERROR",
                    f"Cannot deserialize instance of date from VALUE_STRING value {value} or request may be "
                    f"missing a required field at [line:1, column:1]",
                )
            if number and (isinstance(value, bool) or not isinstance(value, int | float)):
                raise Refused(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of double for field {name}")

    def _record_errors(
        self, sobject: str, fields: dict[str, Any], *, creating: bool, record_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Per-record checks of one write (fields as they would be after it)."""
        errors: list[dict[str, Any]] = []
        if creating:
            missing = [f for f in REQUIRED.get(sobject, ()) if fields.get(f) in (None, "")]
            if missing:
                errors.append(_error("REQUIRED_FIELD_MISSING", f"Required fields are missing: {missing}", missing))
        for name, value in fields.items():
            limit = MAX_LENGTHS.get(name)
            if limit and isinstance(value, str) and len(value) > limit:
                errors.append(_error("STRING_TOO_LONG", f"{name}: data value too large (max length={limit})", [name]))
            targets = REFERENCES.get(name)
            if targets and value and not any(value in self.records[t] for t in targets):
                errors.append(_error("INVALID_CROSS_REFERENCE_KEY", f"invalid cross reference id ({name})", [name]))
        rule = self.duplicate_rules.get(sobject)
        if rule and fields.get(rule):
            others = [r for i, r in self.records[sobject].items() if i != record_id and r.get(rule) == fields[rule]]
            if others:
                errors.append(_error("DUPLICATES_DETECTED", "Use one of these records?"))
        return errors

    def _write(self, sobject: str, fields: dict[str, Any], record_id: str | None) -> str:
        clean = {k: v for k, v in fields.items() if k not in ("attributes", "id", "Id")}
        if record_id is None:
            record_id = self._new_id(sobject)
            self.records[sobject][record_id] = {"Id": record_id, **DEFAULTS.get(sobject, {}), **clean}
        else:
            self.records[sobject][record_id].update(clean)
        if sobject == "OpportunityContactRole":
            self._primary_role(self.records[sobject][record_id])
        return record_id

    def _primary_role(self, role: dict[str, Any]) -> None:
        opportunity = self.records["Opportunity"].get(role.get("OpportunityId") or "")
        if not role.get("IsPrimary") or opportunity is None:
            return
        for other in self.records["OpportunityContactRole"].values():
            if other is not role and other.get("OpportunityId") == role["OpportunityId"]:
                other["IsPrimary"] = False
        opportunity["ContactId"] = role["ContactId"]

    def _records_of(self, body: Any, sobject: str | None = None) -> tuple[list[dict[str, Any]], bool]:
        if not isinstance(body, dict) or not isinstance(body.get("records"), list):
            raise Refused(400, "JSON_PARSER_ERROR", "The request body must be an object with a records array")
        records = body["records"]
        if len(records) > LIMIT:
            raise Refused(
                400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records into this call"
            )
        for record in records:
            kind = (record.get("attributes") or {}).get("type") if isinstance(record, dict) else None
            if not kind:
                raise Refused(400, "JSON_PARSER_ERROR", "Each record needs attributes with a type")
            if sobject is not None and kind != sobject:
                raise Refused(400, "INVALID_TYPE", f"Records must be of the type in the URI ({sobject}), not {kind}")
            self._check_types(kind, record)
        return records, bool(body.get("allOrNone", False))

    def _transaction(self, results: list[dict[str, Any]], all_or_none: bool, snapshot: Any) -> list[dict[str, Any]]:
        if all_or_none and any(not r["success"] for r in results):
            self.records = snapshot
            return [
                r
                if not r["success"]
                else {"success": False, "errors": [_error("ALL_OR_NONE_OPERATION_ROLLED_BACK", ROLLED_BACK)]}
                for r in results
            ]
        return results

    def _upsert_collection(self, sobject: str, id_field: str, body: Any) -> list[dict[str, Any]]:
        self._external_id_field(sobject, id_field)
        records, all_or_none = self._records_of(body, sobject)
        snapshot = copy.deepcopy(self.records) if all_or_none else None  # only a rollback reads it
        results: list[dict[str, Any]] = []
        seen: set[str] = set()
        for record in records:
            value = record.get(id_field)
            if "id" in record or "Id" in record:
                results.append({"success": False, "errors": [_error("INVALID_FIELD", "Id not specified in an upsert")]})
            elif value in (None, ""):
                results.append({"success": False, "errors": [_error("MISSING_ARGUMENT", f"{id_field} not specified")]})
            elif value in seen:
                message = f"Duplicate external id specified: {value}"
                results.append({"success": False, "errors": [_error("DUPLICATE_EXTERNAL_ID", message, [id_field])]})
            else:
                seen.add(value)
                results.append(self._upsert_record(sobject, id_field, str(value), record))
        return self._transaction(results, all_or_none, snapshot)

    def _upsert_record(self, sobject: str, id_field: str, value: str, record: dict[str, Any]) -> dict[str, Any]:
        matches = [i for i, r in self.records[sobject].items() if r.get(id_field) == value]
        if len(matches) > 1:
            message = f"{id_field}: more than one record found for external id field: [{', '.join(matches)}]"
            return {"success": False, "errors": [_error("DUPLICATE_EXTERNAL_ID", message, [])]}
        existing = matches[0] if matches else None
        if existing and (fixed := CREATE_ONLY.get(sobject, set()) & set(record)):
            message = f"Unable to create/update fields: {', '.join(sorted(fixed))}."
            return {"success": False, "errors": [_error("INVALID_FIELD_FOR_INSERT_UPDATE", message, sorted(fixed))]}
        after = {**(self.records[sobject][existing] if existing else {}), **record}
        errors = self._record_errors(sobject, after, creating=existing is None, record_id=existing)
        if errors:
            return {"success": False, "errors": errors}
        record_id = self._write(sobject, record, existing)
        return {"id": record_id, "success": True, "errors": [], "created": existing is None}

    def _update_collection(self, body: Any) -> list[dict[str, Any]]:
        records, all_or_none = self._records_of(body)
        snapshot = copy.deepcopy(self.records) if all_or_none else None  # only a rollback reads it
        results: list[dict[str, Any]] = []
        for record in records:
            sobject, record_id = record["attributes"]["type"], str(record.get("id") or "")
            if not re.fullmatch(r"[a-zA-Z0-9]{15}([a-zA-Z0-9]{3})?", record_id):
                results.append({"success": False, "errors": [_error("MALFORMED_ID", f"malformed id {record_id}")]})
                continue
            if record_id not in self.records[sobject]:
                results.append(
                    {"id": record_id, "success": False, "errors": [_error("ENTITY_IS_DELETED", "entity is deleted")]}
                )
                continue
            fixed = (READ_ONLY.get(sobject, set()) | CREATE_ONLY.get(sobject, set())) & set(record)
            if fixed:
                message = f"Unable to create/update fields: {', '.join(sorted(fixed))}."
                error = _error("INVALID_FIELD_FOR_INSERT_UPDATE", message, sorted(fixed))
                results.append({"id": record_id, "success": False, "errors": [error]})
                continue
            after = {**self.records[sobject][record_id], **record}
            errors = self._record_errors(sobject, after, creating=False, record_id=record_id)
            if errors:
                results.append({"id": record_id, "success": False, "errors": errors})
                continue
            self._write(sobject, record, record_id)
            results.append({"id": record_id, "success": True, "errors": []})
        return self._transaction(results, all_or_none, snapshot)

    def _create_collection(self, body: Any) -> list[dict[str, Any]]:
        records, all_or_none = self._records_of(body)
        snapshot = copy.deepcopy(self.records) if all_or_none else None  # only a rollback reads it
        results: list[dict[str, Any]] = []
        for record in records:
            sobject = record["attributes"]["type"]
            if "id" in record or "Id" in record:
                results.append({"success": False, "errors": [_error("INVALID_FIELD", "Id not allowed on create")]})
                continue
            if fixed := READ_ONLY.get(sobject, set()) & set(record):
                message = f"Unable to create/update fields: {', '.join(sorted(fixed))}."
                results.append({"success": False, "errors": [_error("INVALID_FIELD_FOR_INSERT_UPDATE", message)]})
                continue
            errors = self._record_errors(sobject, record, creating=True)
            if errors:
                results.append({"success": False, "errors": errors})
                continue
            results.append({"id": self._write(sobject, record, None), "success": True, "errors": []})
        return self._transaction(results, all_or_none, snapshot)

    def _delete_collection(self, ids: list[str], all_or_none: bool) -> list[dict[str, Any]]:
        if len(ids) > LIMIT:
            raise Refused(400, "EXCEEDED_ID_LIMIT", "record limit reached. cannot submit more than 200 records")
        snapshot = copy.deepcopy(self.records) if all_or_none else None  # only a rollback reads it
        results: list[dict[str, Any]] = []
        for record_id in ids:
            sobject = next((s for s, rs in self.records.items() if record_id in rs), None)
            if sobject is None:
                error = _error("ENTITY_IS_DELETED", "entity is deleted")
                results.append({"id": record_id, "success": False, "errors": [error]})
                continue
            self._delete(sobject, record_id)
            results.append({"id": record_id, "success": True, "errors": []})
        return self._transaction(results, all_or_none, snapshot)

    def _delete(self, sobject: str, record_id: str) -> None:
        del self.records[sobject][record_id]
        roles = self.records["OpportunityContactRole"]
        for role_id in [i for i, r in roles.items() if record_id in (r.get("ContactId"), r.get("OpportunityId"))]:
            del roles[role_id]
        for task in self.records["Task"].values():
            for lookup in ("WhoId", "WhatId"):
                if task.get(lookup) == record_id:
                    task[lookup] = None

    def _upsert_one(self, sobject: str, id_field: str, value: str, body: Any, version: str) -> Answer:
        self._external_id_field(sobject, id_field)
        if not isinstance(body, dict):
            raise Refused(400, "JSON_PARSER_ERROR", "The request body must be a JSON object")
        if id_field in body or "Id" in body or "id" in body:
            raise Refused(400, "INVALID_FIELD", f"Id or {id_field} not allowed in the body of an upsert by external id")
        self._check_types(sobject, body)
        matches = [i for i, r in self.records[sobject].items() if r.get(id_field) == value]
        if len(matches) > 1:
            return Answer(300, [f"/services/data/v{version}/sobjects/{sobject}/{i}" for i in matches])
        result = self._upsert_record(sobject, id_field, value, {**body, id_field: value})
        if not result["success"]:
            return Answer(
                400,
                [
                    {"message": e["message"], "errorCode": e["statusCode"], "fields": e["fields"]}
                    for e in result["errors"]
                ],
            )
        return Answer(201 if result["created"] else 200, result)

    # ------------------------------------------------------------------------------------------- composite
    def _composite(self, body: Any, version: str) -> dict[str, Any]:
        if not isinstance(body, dict) or not isinstance(body.get("compositeRequest"), list):
            raise Refused(400, "JSON_PARSER_ERROR", "The request body must have a compositeRequest array")
        subrequests = body["compositeRequest"]
        if len(subrequests) > COMPOSITE_LIMIT:
            raise Refused(400, "LIMIT_EXCEEDED", f"Composite requests are limited to {COMPOSITE_LIMIT} subrequests")
        all_or_none = bool(body.get("allOrNone", False))
        snapshot = copy.deepcopy(self.records) if all_or_none else None  # only a rollback reads it
        answers: list[dict[str, Any]] = []
        failed = False
        for sub in subrequests:
            ref = sub.get("referenceId")
            if failed:
                answers.append(_sub(ref, 400, [{"errorCode": "PROCESSING_HALTED", "message": HALTED}]))
                continue
            parts = urlsplit(str(sub.get("url") or ""))
            match = PREFIX.match(unquote(parts.path))
            if not match:
                answer = Answer(404, [{"message": "The requested resource does not exist", "errorCode": "NOT_FOUND"}])
            else:
                query = parse_qs(parts.query, keep_blank_values=True)
                try:
                    answer = self._route(str(sub.get("method")), match[2].rstrip("/"), query, sub.get("body"), version)
                except Refused as exc:
                    answer = Answer(exc.status, exc.body)
            answers.append(_sub(ref, answer.status, answer.body))
            refused = answer.status >= 400 or (
                isinstance(answer.body, list)
                and any(isinstance(r, dict) and r.get("success") is False for r in answer.body)
            )
            if all_or_none and refused:
                failed = True
        if failed and snapshot is not None:  # failed: only with allOrNone, which took the snapshot
            self.records = snapshot
            for item in answers:
                if 200 <= item["httpStatusCode"] < 300:
                    item.update(httpStatusCode=400, body=[{"errorCode": "PROCESSING_HALTED", "message": HALTED}])
        return {"compositeResponse": answers}

    # ----------------------------------------------------------------------------------------------- SOQL
    def _query(self, soql: str, version: str) -> dict[str, Any]:
        match = SOQL.match(soql)
        if not match:
            raise Refused(400, "MALFORMED_QUERY", "unexpected token in query")
        sobject = match["sobject"]
        schema = self._schema(sobject)
        fields = [f.strip() for f in match["fields"].split(",")]
        conditions: list[tuple[str, set[str]]] = []
        where = match["where"] or ""
        # AND between conditions, not inside a string literal
        clauses = re.split(rf"\s+AND\s+(?=(?:[^']|{LITERAL})*$)", where, flags=re.IGNORECASE) if where else []
        for clause in clauses:
            cond = CONDITION.match(clause)
            if not cond:
                raise Refused(400, "MALFORMED_QUERY", "unexpected token in WHERE clause")
            values = _literals(cond["value"] if cond["value"] is not None else cond["values"])
            conditions.append((cond["field"], values))
        for name in fields + [c[0] for c in conditions]:
            if name not in schema:
                raise Refused(400, "INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'")
        rows = [
            {"attributes": _attributes(sobject, r["Id"], version), **{f: r.get(f) for f in fields}}
            for r in self.records[sobject].values()
            if all(str(r.get(f)) in values for f, values in conditions)
        ]
        if match["limit"]:
            rows = rows[: int(match["limit"])]
        return {"totalSize": len(rows), "done": True, "records": rows}

    # ----------------------------------------------------------------------------------------- Bulk API 2.0
    def _bulk(self, method: str, rest: list[str], body: Any, version: str) -> Answer:
        match method, rest:
            case "POST", []:
                if not isinstance(body, dict) or body.get("operation") not in ("upsert", "insert", "update"):
                    raise Refused(400, "INVALIDJOB", "Only insert, update and upsert ingest jobs are modelled")
                sobject = str(body.get("object"))
                self._schema(sobject)
                if body["operation"] == "upsert":
                    self._external_id_field(sobject, str(body.get("externalIdFieldName")))
                job_id = f"750{next(self._ids):012d}AAA"
                self.jobs[job_id] = {
                    "id": job_id,
                    "operation": body["operation"],
                    "object": sobject,
                    "externalIdFieldName": body.get("externalIdFieldName"),
                    "state": "Open",
                    "contentType": "CSV",
                    "lineEnding": body.get("lineEnding", "LF"),
                    "columnDelimiter": body.get("columnDelimiter", "COMMA"),
                    "apiVersion": float(version),
                    "numberRecordsProcessed": 0,
                    "numberRecordsFailed": 0,
                    "_csv": "",
                    "_results": {},
                }
                return Answer(200, _job_info(self.jobs[job_id]))
            case "PUT", [job_id, "batches"]:
                job = self._job(job_id)
                if job["state"] != "Open":
                    raise Refused(400, "INVALIDJOBSTATE", "Job is not open for uploads")
                job["_csv"] += str(body or "")
                return Answer(201)
            case "PATCH", [job_id]:
                job = self._job(job_id)
                state = (body or {}).get("state") if isinstance(body, dict) else None
                if state == "UploadComplete" and job["state"] == "Open":
                    self._run_job(job)
                elif state == "Aborted" and job["state"] in ("Open", "UploadComplete", "InProgress"):
                    job["state"] = "Aborted"
                else:
                    raise Refused(400, "INVALIDJOBSTATE", f"Cannot move a job from {job['state']} to {state}")
                return Answer(200, _job_info(job))
            case "GET", [job_id]:
                return Answer(200, _job_info(self._job(job_id)))
            case "DELETE", [job_id]:
                self._job(job_id)
                del self.jobs[job_id]
                return Answer(204)
            case "GET", [job_id, kind] if kind.lower() in RESULTS:  # paths are case-insensitive
                return Answer(200, self._job(job_id)["_results"].get(RESULTS[kind.lower()], ""), "text/csv")
        raise Refused(404, "NOT_FOUND", "The requested resource does not exist")

    def _job(self, job_id: str) -> dict[str, Any]:
        job = self.jobs.get(job_id)
        if job is None:
            raise Refused(404, "NOT_FOUND", "Job not found")
        return job

    def _run_job(self, job: dict[str, Any]) -> None:
        sobject, operation, id_field = job["object"], job["operation"], job["externalIdFieldName"]
        rows = list(csv.DictReader(io.StringIO(job["_csv"])))
        columns = list(rows[0]) if rows else []
        good, bad = io.StringIO(), io.StringIO()
        good_writer = csv.writer(good, lineterminator="\n")
        bad_writer = csv.writer(bad, lineterminator="\n")
        good_writer.writerow(["sf__Id", "sf__Created", *columns])
        bad_writer.writerow(["sf__Id", "sf__Error", *columns])
        failed = 0
        for row in rows:
            record: dict[str, Any] = {"attributes": {"type": sobject}}
            for name, text in row.items():
                if text == "":
                    continue
                record[name] = None if text == "#N/A" else self._typed(sobject, name, text)
            try:
                self._check_types(sobject, record)
                if operation == "upsert":
                    result = self._upsert_record(sobject, id_field, str(record.get(id_field) or ""), record)
                elif operation == "insert":
                    result = self._create_collection({"records": [record]})[0]
                else:
                    record["id"] = record.pop("Id", "")
                    result = self._update_collection({"records": [record]})[0]
            except Refused as exc:
                result = {"success": False, "errors": [_error(exc.body[0]["errorCode"], exc.body[0]["message"])]}
            values = [row[c] for c in columns]
            if result["success"]:
                good_writer.writerow([result["id"], str(bool(result.get("created", True))).lower(), *values])
            else:
                failed += 1
                error = result["errors"][0]
                bad_writer.writerow(["", f"{error['statusCode']}:{error['message']}:--", *values])
        job.update(
            state="JobComplete",
            numberRecordsProcessed=len(rows),
            numberRecordsFailed=failed,
            _results={
                "successfulResults": good.getvalue(),
                "failedResults": bad.getvalue(),
                "unprocessedrecords": ",".join(columns) + "\n",
            },
        )

    def _typed(self, sobject: str, name: str, text: str) -> Any:
        if name in NUMBERS or self.custom_fields.get(sobject, {}).get(name) == "number":
            try:
                return float(text) if "." in text else int(text)
            except ValueError:
                return text
        if name in BOOLEANS:
            return text.lower() == "true"
        return text


def _attributes(sobject: str, record_id: str, version: str) -> dict[str, str]:
    return {"type": sobject, "url": f"/services/data/v{version}/sobjects/{sobject}/{record_id}"}


def _sub(ref: Any, status: int, body: Any) -> dict[str, Any]:
    return {"body": body, "httpHeaders": {}, "httpStatusCode": status, "referenceId": ref}


def _job_info(job: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in job.items() if not k.startswith("_")}


class _InProcessAdapter(requests.adapters.BaseAdapter):
    """A requests transport adapter that hands each request to the fake and builds the response (no socket)."""

    def __init__(self, fake: FakeSalesforce) -> None:
        super().__init__()
        self.fake = fake

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        body = request.body or b""
        status, headers, payload = self.fake.handle(
            str(request.method),
            request.path_url,
            dict(request.headers),
            body.encode() if isinstance(body, str) else body,
        )
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict(headers)
        response._content = payload
        response.encoding = "utf-8"
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass


class FakeSalesforceServer:
    """The fake over HTTP on 127.0.0.1 (a thread); `url` is the instance URL to give the adapter."""

    def __init__(self, fake: FakeSalesforce | None = None, port: int = 0) -> None:
        self.fake = fake or FakeSalesforce()
        handler = _handler(self.fake)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fake-salesforce", daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeSalesforceServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


def _handler(fake: FakeSalesforce) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, headers, payload = fake.handle(self.command, self.path, dict(self.headers.items()), body)
            try:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (a timeout test)
                pass

        do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="A fake Salesforce REST API on 127.0.0.1 (see the docstring).")
    parser.add_argument("--port", type=int, default=8766)  # 8765 is make hubspot-fake's
    parser.add_argument("--token", default=TOKEN)
    parser.add_argument("--daily-limit", type=int, default=100_000)
    args = parser.parse_args()
    with FakeSalesforceServer(FakeSalesforce(token=args.token, daily_limit=args.daily_limit), args.port) as server:
        print(f"fake Salesforce at {server.url}\n  CRM_BACKEND=salesforce CRMSYNC_MAPPING=salesforce")
        print(f"  SALESFORCE_INSTANCE_URL={server.url} SALESFORCE_ACCESS_TOKEN={args.token}\nCtrl-C stops it.")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
