"""The one place that turns botocore's ClientError into crmsync's own exceptions."""

from __future__ import annotations

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
