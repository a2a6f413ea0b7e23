"""Routes of the operator API; domain exceptions become HTTP answers in one place, at the bottom."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.middlewares import NextMiddleware

from crmsync.api.auth import Unauthorized, check_operator_key, is_public
from crmsync.customers import customer_document, find_by_email
from crmsync.observability import logger
from crmsync.settings import Settings
from crmsync.store.crm_local import LocalCrmTable
from crmsync.store.errors import StoreError
from crmsync.store.secrets import secret_values
from crmsync.store.state import StateStore

LOCAL_CRM_TYPES = ("contacts", "deals", "tasks", "notes")

app = APIGatewayRestResolver(enable_validation=True)


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


def _error(status: HTTPStatus, reason: str) -> Response[str]:
    import json

    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=json.dumps({"error": reason}))


@app.exception_handler(Unauthorized)
def _unauthorized(exc: Unauthorized) -> Response[str]:
    return _error(HTTPStatus.UNAUTHORIZED, str(exc))


@app.exception_handler(NotFoundError)
def _not_found(exc: NotFoundError) -> Response[str]:
    return _error(HTTPStatus.NOT_FOUND, str(exc))


@app.exception_handler(BadRequest)
def _bad_request(exc: BadRequest) -> Response[str]:
    return _error(HTTPStatus.BAD_REQUEST, str(exc))


@app.exception_handler(StoreError)
def _store_unavailable(exc: StoreError) -> Response[str]:
    logger.exception("store unavailable")
    return _error(HTTPStatus.SERVICE_UNAVAILABLE, "storage unavailable; retry later")


@app.not_found
def _no_route(exc: Exception) -> Response[str]:
    return _error(HTTPStatus.NOT_FOUND, "no such route")
