"""Secrets through Powertools Parameters (Secrets Manager), cached; one value may hold several, separated by commas
or newlines, current first (rotation: put the new one first, drop the old one once every sender uses the new)."""

from __future__ import annotations

import re

_SEPARATORS = re.compile(r"[,\r\n]")


def secret_values(secret_id: str, *, max_age: int = 300) -> list[str]:
    """The secret's values, current first; empty when the id is unset."""
    if not secret_id:
        return []
    from aws_lambda_powertools.utilities import parameters  # lazily: it imports boto3

    raw = parameters.get_secret(secret_id, max_age=max_age)
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return [part.strip() for part in _SEPARATORS.split(text) if part.strip()]
