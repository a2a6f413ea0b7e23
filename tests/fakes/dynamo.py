"""DynamoDB rules the in-memory tables keep, so a fake refuses what the real table refuses."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any

from crmsync.store.errors import StoreError

MAX_ITEM_BYTES = 400 * 1024  # DynamoDB's item size limit


def validation_error(operation: str) -> StoreError:
    """What store/errors.translate makes of a ValidationException."""
    return StoreError(f"{operation}: ValidationException")


def _number_size(value: int | float | Decimal) -> int:
    digits = str(abs(Decimal(value)).normalize()).replace(".", "").lstrip("0").rstrip("0") or "0"
    return (len(digits) + 1) // 2 + 1


def value_size(value: Any) -> int:
    """Approximate stored size of one attribute value, by DynamoDB's published rules."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, bool) or value is None:
        return 1
    if isinstance(value, int | float | Decimal):
        return _number_size(value)
    if isinstance(value, bytes):
        return len(value)
    if isinstance(value, set | frozenset | list | tuple):
        return 3 + sum(value_size(v) + (1 if not isinstance(value, set | frozenset) else 0) for v in value)
    if isinstance(value, dict):
        return 3 + sum(len(k.encode()) + value_size(v) + 1 for k, v in value.items())
    raise TypeError(f"not a DynamoDB value: {type(value).__name__}")


def item_size(item: dict[str, Any]) -> int:
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def check_item(item: dict[str, Any], *, operation: str, keys: Iterable[str]) -> None:
    """Refuse an item DynamoDB would refuse: over 400 KB, or an empty string in a table or index key."""
    if item_size(item) > MAX_ITEM_BYTES:
        raise validation_error(operation)
    for key in keys:
        if key in item and item[key] == "":
            raise validation_error(operation)
