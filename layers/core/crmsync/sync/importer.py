"""Bulk import of customers and orders from a CSV or JSONL file, through the normal conversion path.

Each row is validated when the file is uploaded (every bad row is reported with its line number and the fields at
fault, never their values); the valid rows are stored in chunks and then, a chunk per backfill-queue message
(crmsync.sync.jobs), archived and enqueued as IngestMessages of the synthetic source "import" (topics
"import.customer" and "import.order"). convert turns them into canonical Customer / Order through this module's
ImportSource, so identity resolution, the version guard, lineage and domain events are exactly a webhook's.

Columns (CSV header or JSONL keys); `type` is "customer" or "order":
- both: id (the record's id in the file's system: external ids are import:customer:<id>, import:order:<id>, so a
  re-import finds the same records), updated_at (ISO 8601; the version: a row re-imported unchanged is a no-op, a
  newer one wins), email
- customer: first_name, last_name, phone (dropped when it cannot be parsed), line1, city, postal_code, country
- order: name, total (a decimal string), currency (ISO 4217), status (pending|authorized|paid|partially_refunded|
  refunded|cancelled; default pending), placed_at, customer_id
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from crmsync import jsontext
from crmsync.messages import DetailType
from crmsync.models import Address, Customer, Money, Order, OrderStatus
from crmsync.models.customer import normalize_phone
from crmsync.sources.base import Converted, UnsupportedTopic
from crmsync.sync.records import SourceRecord

SOURCE = "import"
TOPICS = {"customer": "import.customer", "order": "import.order"}
CHUNK_ROWS = 500
MAX_ROWS = 50_000
MAX_ERRORS = 200  # reported in full up to this many; the count is always exact


class BadImport(ValueError):
    """The file as a whole cannot be read (not CSV / JSONL, too many rows)."""


class ImportRow(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=True)

    type: Literal["customer", "order"]
    id: str = Field(min_length=1, max_length=200, pattern=r"^[^\s]+$")
    updated_at: datetime
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    first_name: str | None = Field(default=None, max_length=200)
    last_name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    line1: str | None = Field(default=None, max_length=500)
    city: str | None = Field(default=None, max_length=200)
    postal_code: str | None = Field(default=None, max_length=40)
    country: str | None = Field(default=None, pattern=r"^[A-Za-z]{2}$")
    name: str | None = Field(default=None, max_length=200)
    total: str | None = Field(default=None, pattern=r"^-?\d+(\.\d+)?$")
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    status: OrderStatus | None = None  # pending when not given
    placed_at: datetime | None = None
    customer_id: str | None = Field(default=None, max_length=200)

    @field_validator("*", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("updated_at", "placed_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    def problems(self) -> list[str]:
        if self.type == "order":
            missing = [name for name in ("total", "currency") if getattr(self, name) is None]
            if missing:
                return [f"{name}: required for an order" for name in missing]
            try:
                Money.from_decimal(self.total or "0", (self.currency or "").upper())
            except (ValueError, ValidationError):
                return ["total: not an amount in that currency"]
        return []


@dataclass(frozen=True)
class RowError:
    line: int
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"line": self.line, "error": self.reason}


@dataclass(frozen=True)
class Parsed:
    rows: list[dict[str, Any]]  # valid rows, as JSON documents
    errors: list[RowError]
    total: int


def _reasons(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        field = ".".join(str(p) for p in error["loc"])
        parts.append(f"{field}: {error['msg'].removeprefix('Value error, ')}" if field else error["msg"])
    return "; ".join(parts)


def _rows(text: str, fmt: Literal["csv", "jsonl"]) -> list[tuple[int, Any]]:
    if fmt == "csv":
        # newline="" lets the csv module read \r, \n and \r\n endings and newlines inside quoted fields itself
        reader = csv.DictReader(io.StringIO(text, newline=""))
        try:
            if not reader.fieldnames or "type" not in reader.fieldnames:
                raise BadImport("the CSV header must name the columns, with a `type` column")
            return [(reader.line_num, dict(row)) for row in reader]
        except csv.Error as exc:  # e.g. a field over the csv module's 128 KiB limit
            raise BadImport(f"line {reader.line_num + 1}: not readable as CSV ({exc})") from exc
    found: list[tuple[int, Any]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            found.append((number, jsontext.loads(line)))
        except ValueError:
            found.append((number, None))
    return found


def parse_file(text: str, fmt: Literal["csv", "jsonl"], *, max_rows: int = MAX_ROWS) -> Parsed:
    """Validate every row; the valid ones in file order, one error per bad row (line numbers count from 1, a CSV's
    header being line 1)."""
    raw = _rows(text, fmt)
    if len(raw) > max_rows:
        raise BadImport(f"at most {max_rows} rows a file")
    valid: list[dict[str, Any]] = []
    errors: list[RowError] = []
    seen: dict[tuple[str, str], int] = {}
    for line, document in raw:
        if not isinstance(document, dict):
            errors.append(RowError(line, "not a JSON object"))
            continue
        try:
            row = ImportRow.model_validate(document)
        except ValidationError as exc:
            errors.append(RowError(line, _reasons(exc)))
            continue
        problems = row.problems()
        if problems:
            errors.append(RowError(line, "; ".join(problems)))
            continue
        key = (row.type, row.id)
        if key in seen:
            errors.append(RowError(line, f"id: the same {row.type} id as line {seen[key]}"))
            continue
        seen[key] = line
        valid.append(row.model_dump(mode="json", exclude_none=True))
    return Parsed(valid, errors, len(raw))


def chunks(rows: Sequence[dict[str, Any]], size: int = CHUNK_ROWS) -> list[list[dict[str, Any]]]:
    return [list(rows[start : start + size]) for start in range(0, len(rows), size)]


def import_records(rows: Sequence[Mapping[str, Any]]) -> list[SourceRecord]:
    records = []
    for row in rows:
        body = json.dumps(row, separators=(",", ":"), sort_keys=True).encode()
        records.append(SourceRecord(SOURCE, f"{row['type']}s", TOPICS[str(row["type"])], body, str(row["id"])))
    return records


# --- conversion: the "import" source as convert sees it -----------------------------------------------------------
def _customer(row: ImportRow, receipt_id: str) -> Customer | None:
    if not row.email and row.type == "order":
        return None
    address = None
    if row.line1 or row.city or row.postal_code or row.country:
        address = Address(line1=row.line1, city=row.city, postal_code=row.postal_code, country=row.country)
    source_id = row.id if row.type == "customer" else row.customer_id
    return Customer(
        source=SOURCE,
        source_id=source_id,
        source_version=row.updated_at,
        receipt_id=receipt_id,
        email=row.email,
        first_name=row.first_name if row.type == "customer" else None,
        last_name=row.last_name if row.type == "customer" else None,
        phone=normalize_phone(row.phone, row.country) if row.phone else None,
        address=address,
    )


def _order(row: ImportRow, receipt_id: str) -> Order:
    total = Money.from_decimal(row.total or "0", (row.currency or "").upper())
    return Order(
        source=SOURCE,
        source_id=row.id,
        source_version=row.updated_at,
        receipt_id=receipt_id,
        name=row.name or row.id,
        status=row.status,
        fulfillment_status=None,
        total=total,
        presentment_total=None,
        subtotal=None,
        total_tax=None,
        total_discounts=None,
        total_shipping=None,
        line_items=(),
        customer_email=row.email,
        customer_source_id=row.customer_id,
        placed_at=row.placed_at or row.updated_at,
        cancelled_at=row.updated_at if row.status is OrderStatus.CANCELLED else None,
        closed_at=None,
    )


ORDER_EVENTS = {
    OrderStatus.PAID: DetailType.ORDER_PAID,
    OrderStatus.CANCELLED: DetailType.ORDER_CANCELLED,
}


class ImportSource:
    """The converter of imported rows (not a webhook source: nothing can POST /webhooks/import)."""

    name = SOURCE
    handled_topics = frozenset(TOPICS.values())

    def convert(self, topic: str, body: bytes, *, receipt_id: str) -> Converted:
        if topic not in self.handled_topics:
            raise UnsupportedTopic(f"import has no topic {topic}")
        row = ImportRow.model_validate_json(body)
        customer = _customer(row, receipt_id)
        if row.type == "customer":
            return Converted(customer=customer)
        order = _order(row, receipt_id)
        event = ORDER_EVENTS.get(order.status, DetailType.ORDER_UPDATED)
        return Converted(customer=customer, entities=((event, order),))


IMPORT_SOURCE = ImportSource()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]
