"""The one place that turns botocore's ClientError into crmsync's own exceptions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError


class StoreError(Exception):
    """An AWS call failed for a reason the caller cannot fix by itself (retry later)."""


class ConditionFailed(StoreError):
    """A conditional write was refused: a decision, not a failure (stale version, claim held, key taken)."""


class NotFound(StoreError):
    """The item or object does not exist."""


CONDITION_CODES = {"ConditionalCheckFailedException", "TransactionCanceledException"}
NOT_FOUND_CODES = {"NoSuchKey", "404", "ResourceNotFoundException", "NotFound"}


def translate(exc: ClientError | BotoCoreError) -> StoreError:
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in CONDITION_CODES:
            return ConditionFailed(code)
        if code in NOT_FOUND_CODES:
            return NotFound(code)
        return StoreError(f"{exc.operation_name}: {code}")
    return StoreError(exc.__class__.__name__)


def conditional(call: Callable[..., object], **kwargs: Any) -> bool:
    """A conditional write: True when done, False when its condition refused it (a decision, not a failure); any
    other error as the StoreError it is."""
    try:
        call(**kwargs)
    except ClientError as exc:
        error = translate(exc)
        if isinstance(error, ConditionFailed):
            return False
        raise error from exc
    except BotoCoreError as exc:
        raise translate(exc) from exc
    return True
