"""Routes of the operator API; domain exceptions become HTTP answers in one place, at the bottom."""

from __future__ import annotations

import binascii
import json
import re
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.api_gateway import ApiGatewayResolver
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware
from pydantic import BaseModel, ValidationError

from crmsync import jsontext
from crmsync.api.auth import Unauthorized, check_operator_key, is_public
from crmsync.customers import customer_document, find_by_email
from crmsync.deadline import Deadline
from crmsync.dlq import DLQS, ListQuery, NotConfigured, RedriveRequest, dead_letter_queue, list_messages, redrive
from crmsync.observability import logger
from crmsync.replay import BadReplay, ReplayDeps, ReplayRequest, replay
from crmsync.settings import Settings
from crmsync.store.archive import RawArchive
from crmsync.store.crm_local import LocalCrmTable
from crmsync.store.errors import StoreError
from crmsync.store.queue import Queue
from crmsync.store.receipts import ReceiptStore
from crmsync.store.secrets import secret_values
from crmsync.store.state import StateStore
from crmsync.sync.errors import NotConfigured as SourceNotConfigured
from crmsync.sync.errors import NotSupported as SyncRefused

LOCAL_CRM_TYPES = ("contacts", "deals", "tasks", "notes", "line_items", "companies")
RESERVE_SECONDS = 3.0  # of the function's remaining time, kept for answering after a bounded operation


class ExactPathResolver(APIGatewayRestResolver):
    """Powertools anchors routes with `$`, which also matches before a final newline: GET /local-crm/notes/%0A (a
    record id of one newline) was answered as the list of notes. `\\Z` ends the match at the end of the path."""

    @staticmethod
    def _compile_regex(rule: str, base_regex: str = r"^{}/*\Z") -> re.Pattern[str]:
        pattern: re.Pattern[str] = ApiGatewayResolver._compile_regex(rule, base_regex)
        return pattern


app = ExactPathResolver(enable_validation=True)


class NotFoundError(Exception):
    """The route exists but the thing asked for does not."""


class BadRequest(Exception):
    """The request's parameters are wrong; the message says how."""


def require_operator_key(resolver: APIGatewayRestResolver, next_middleware: NextMiddleware) -> Response[Any]:
    if not is_public(resolver.current_event.path):
        settings = Settings.from_env()
        keys = secret_values(settings.api_key_secret_id, max_age=settings.secret_max_age_seconds)
        check_operator_key(resolver.current_event.headers.get("x-api-key"), keys)
    return next_middleware(resolver)


app.use(middlewares=[require_operator_key])


@app.get("/health")
def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/customers")
def list_customers() -> dict[str, Any]:
    email = (app.current_event.query_string_parameters or {}).get("email")
    if not email:
        raise BadRequest("query parameter email is required")
    settings = Settings.from_env()
    return {"customers": find_by_email(StateStore(settings.state_table), email, settings.crm_backend)}


@app.get("/customers/<customer_id>")
def get_customer(customer_id: str) -> dict[str, Any]:
    settings = Settings.from_env()
    document = customer_document(StateStore(settings.state_table), customer_id, settings.crm_backend)
    if document is None:
        raise NotFoundError("no such customer")
    return document


@app.delete("/customers/<customer_id>")
def erase_customer(customer_id: str) -> Response[str]:
    """Erase the customer everywhere (crmsync.erasure), through the privacy queue: 202 with the erasure id. Asking
    again answers the same id, with the proof once there is one; an unknown customer is 404."""
    from datetime import UTC, datetime

    from crmsync.erasure import operator_request
    from crmsync.identity import current_id

    settings = Settings.from_env()
    state = StateStore(settings.state_table)
    now = datetime.now(UTC)
    erasure_id, message = operator_request(customer_id, correlation_id=_request_id(), at=now)
    proof = state.erasure_record(erasure_id)
    if proof is None:
        if not state.customer_items(current_id(state, customer_id)):
            raise NotFoundError("no such customer")
        if not settings.privacy_queue_url:
            raise NotConfigured("erasure is not configured (PRIVACY_QUEUE_URL)")
        Queue(settings.privacy_queue_url).send(message)
        logger.info("erasure requested", erasure_id=erasure_id)
    answer: dict[str, Any] = {"erasure_id": erasure_id, "status": proof.get("status") if proof else "requested"}
    if proof is not None:
        answer["proof"] = proof
    return _json(HTTPStatus.ACCEPTED, answer)


def _request_id() -> str:
    context = app.current_event.request_context
    return str(getattr(context, "request_id", "") or "")


def _local_crm(object_type: str) -> LocalCrmTable:
    settings = Settings.from_env()
    if settings.crm_backend != "local":
        raise NotFoundError("the local CRM is not the configured backend")
    if object_type not in LOCAL_CRM_TYPES:
        raise NotFoundError(f"unknown record type; use one of {', '.join(LOCAL_CRM_TYPES)}")
    return LocalCrmTable(settings.crm_local_table)


@app.get("/local-crm/<object_type>")
def list_local_records(object_type: str) -> dict[str, Any]:
    table = _local_crm(object_type)
    query = dict(app.current_event.query_string_parameters or {})
    limit_text = query.pop("limit", None)
    if limit_text is not None and not (limit_text.isdigit() and int(limit_text) > 0):
        raise BadRequest("limit must be a positive whole number")
    records = [r for r in table.list(object_type) if all(r.properties.get(k) == v for k, v in query.items())]
    if limit_text is not None:
        records = records[: int(limit_text)]
    return {"results": [r.as_json() for r in records]}


@app.get("/local-crm/<object_type>/<record_id>")
def get_local_record(object_type: str, record_id: str) -> dict[str, Any]:
    record = _local_crm(object_type).get(object_type, record_id)
    if record is None:
        raise NotFoundError("no such record")
    return record.as_json()


# --- operator tools: dead-letter queues and replay (crmsync.dlq, crmsync.replay) -----------------------------------
@app.get("/sync/dlq")
def list_dead_letters() -> dict[str, Any]:
    query = _validated(ListQuery, dict(app.current_event.query_string_parameters or {}))
    settings = Settings.from_env()
    deadline = _deadline()
    names = [query.queue] if query.queue else list(DLQS)
    listings = [
        list_messages(dead_letter_queue(settings, name), limit=query.limit, deadline=deadline) for name in names
    ]
    return {"queues": [listing.as_json() for listing in listings]}


@app.post("/sync/dlq/redrive")
def redrive_dead_letters() -> Response[str]:
    request = _validated(RedriveRequest, _json_body())
    dlq = dead_letter_queue(Settings.from_env(), request.queue)
    result = redrive(dlq, message_ids=request.message_ids, max_messages=request.limit, deadline=_deadline())
    return _json(HTTPStatus.ACCEPTED, result.as_json())


@app.post("/sync/replay")
def replay_from_archive() -> Response[str]:
    request = _validated(ReplayRequest, _json_body())
    settings = Settings.from_env()
    deps = ReplayDeps(
        archive=RawArchive(settings.archive_bucket),
        receipts=ReceiptStore(settings.receipts_table),
        queue=Queue(settings.ingest_queue_url),
    )
    return _json(HTTPStatus.ACCEPTED, replay(request, deps, deadline=_deadline()).as_json())


# --- backfill, import, reconciliation and sync metrics (crmsync.sync) --------------------------------------------
@app.post("/sync/backfill")
def start_backfill() -> Response[str]:
    from crmsync.sync.jobs import BackfillRequest
    from crmsync.sync.jobs import start_backfill as start
    from crmsync.sync.wiring import sync_deps

    request = _validated(BackfillRequest, _json_body())
    return _json(HTTPStatus.ACCEPTED, {"job_id": start(request, sync_deps(Settings.from_env()))})


@app.post("/sync/import")
def start_import() -> Response[str]:
    from crmsync.sync.importer import BadImport
    from crmsync.sync.sync_import import start_import as start
    from crmsync.sync.wiring import sync_deps

    query = app.current_event.query_string_parameters or {}
    if "upload_id" in query:  # a file PUT to the URL POST /sync/import/uploads gave
        from crmsync.sync.sync_import import queue_uploaded_import

        try:
            return _json(HTTPStatus.ACCEPTED, queue_uploaded_import(query["upload_id"], sync_deps(Settings.from_env())))
        except BadImport as exc:
            raise BadRequest(str(exc)) from exc
    content_type = (app.current_event.headers or {}).get("content-type", "") or ""
    fmt = query.get("format") or ("csv" if "csv" in content_type else "jsonl")
    if fmt not in ("csv", "jsonl"):
        raise BadRequest("format must be csv or jsonl")
    try:
        text = app.current_event.decoded_body or ""
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("body could not be decoded") from exc
    if not text.strip():
        raise BadRequest("the file is empty")
    try:
        answer = start(text, "csv" if fmt == "csv" else "jsonl", sync_deps(Settings.from_env()))
    except BadImport as exc:
        raise BadRequest(str(exc)) from exc
    return _json(HTTPStatus.ACCEPTED, answer)


@app.post("/sync/import/uploads")
def new_import_upload() -> Response[str]:
    from crmsync.sync.sync_import import UploadRequest, new_upload
    from crmsync.sync.wiring import sync_deps

    request = _validated(UploadRequest, _json_body())
    return _json(HTTPStatus.CREATED, new_upload(request, sync_deps(Settings.from_env())))


@app.get("/sync/jobs/<job_id>")
def get_job(job_id: str) -> dict[str, Any]:
    from crmsync.store.sync_jobs import SyncStore
    from crmsync.sync.jobs import job_view

    view = job_view(job_id, SyncStore(Settings.from_env().sync_table))
    if view is None:
        raise NotFoundError("no such job")
    return view


@app.post("/sync/reconcile")
def start_reconcile() -> Response[str]:
    from crmsync.sync.sync_import import ReconcileRequest, queue_reconcile
    from crmsync.sync.wiring import sync_deps

    text = app.current_event.body
    request = _validated(ReconcileRequest, _json_body() if text and text.strip() else {})
    return _json(HTTPStatus.ACCEPTED, queue_reconcile(request, sync_deps(Settings.from_env())))


@app.get("/sync/reconcile/runs/<run_id>")
def get_reconcile_run(run_id: str) -> dict[str, Any]:
    from crmsync.store.sync_jobs import SyncStore

    report = SyncStore(Settings.from_env().sync_table).get_run(run_id)
    if report is None:
        raise NotFoundError("no such run")
    return report


@app.get("/sync/metrics")
def sync_metrics() -> dict[str, Any]:
    from crmsync.store.sync_jobs import SyncStore
    from crmsync.sync.sync_import import metrics_view

    days_text = (app.current_event.query_string_parameters or {}).get("days", "7")
    if not days_text.isdigit() or not 1 <= int(days_text) <= 90:
        raise BadRequest("days must be a whole number from 1 to 90")
    return metrics_view(SyncStore(Settings.from_env().sync_table), int(days_text))


# --- automation rules (crmsync.rules.dryrun): what a rule set would have done, writing nothing ---------------------
@app.post("/rules/dry-run")
def rules_dry_run() -> dict[str, Any]:
    # Imported here: rule-engine builds its parser on import (about half a second), which no other route should pay.
    from crmsync.rules.config import RuleFileError
    from crmsync.rules.dryrun import DryRunRequest, run

    request = _validated(DryRunRequest, _json_body())
    try:
        return run(request, Settings.from_env(), _deadline())
    except RuleFileError as exc:  # names the file, each rule id and what is wrong
        raise BadRequest(str(exc)) from exc


def _deadline() -> Deadline:
    """What is left of this invocation, less a reserve for answering: bounded operations stop in time."""
    context = getattr(app, "lambda_context", None)
    remaining = context.get_remaining_time_in_millis() / 1000 if context is not None else 10.0
    return Deadline(max(1.0, remaining - RESERVE_SECONDS))


def _json_body() -> Any:
    try:
        text = app.current_event.decoded_body
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise BadRequest("body could not be decoded") from exc
    if not text or not text.strip():
        raise BadRequest("a JSON body is required")
    try:
        return jsontext.loads(text)
    except jsontext.NestedTooDeeply as exc:
        raise BadRequest("body is nested too deeply") from exc
    except ValueError as exc:
        raise BadRequest("body is not JSON") from exc


def _validated[Model: BaseModel](model: type[Model], data: Any) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise BadRequest(_reasons(exc)) from exc


def _reasons(exc: ValidationError) -> str:
    """Field and reason of each problem, never the input (which could be personal data)."""
    reasons = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        message = error["msg"].removeprefix("Value error, ")
        field = ".".join(str(part) for part in error["loc"])
        reasons.append(f"{field}: {message}" if field else message)
    return "; ".join(reasons)


def _json(status: HTTPStatus, document: Any) -> Response[str]:
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps(document))


def _error(status: HTTPStatus, reason: str) -> Response[str]:
    return _json(status, {"error": reason})


@app.exception_handler(Unauthorized)
def _unauthorized(exc: Unauthorized) -> Response[str]:
    return _error(HTTPStatus.UNAUTHORIZED, str(exc))


@app.exception_handler(NotFoundError)
def _not_found(exc: NotFoundError) -> Response[str]:
    return _error(HTTPStatus.NOT_FOUND, str(exc))


@app.exception_handler(BadRequest)
def _bad_request(exc: BadRequest) -> Response[str]:
    return _error(HTTPStatus.BAD_REQUEST, str(exc))


@app.exception_handler(BadReplay)
def _bad_replay(exc: BadReplay) -> Response[str]:
    return _error(HTTPStatus.BAD_REQUEST, str(exc))


@app.exception_handler(SyncRefused)
def _sync_refused(exc: SyncRefused) -> Response[str]:
    return _error(HTTPStatus.BAD_REQUEST, str(exc))


@app.exception_handler(SourceNotConfigured)
def _source_not_configured(exc: SourceNotConfigured) -> Response[str]:
    return _error(HTTPStatus.BAD_REQUEST, str(exc))


@app.exception_handler(NotConfigured)
def _not_configured(exc: NotConfigured) -> Response[str]:
    logger.error("operator tool not configured", reason=str(exc))
    return _error(HTTPStatus.SERVICE_UNAVAILABLE, str(exc))


@app.exception_handler(StoreError)
def _store_unavailable(exc: StoreError) -> Response[str]:
    logger.exception("store unavailable")
    return _error(HTTPStatus.SERVICE_UNAVAILABLE, "storage unavailable; retry later")


@app.not_found
def _no_route(exc: Exception) -> Response[str]:
    return _error(HTTPStatus.NOT_FOUND, "no such route")
