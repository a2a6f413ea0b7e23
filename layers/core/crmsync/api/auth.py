"""The operator key: header x-api-key, compared in constant time with every key of the secret."""

from __future__ import annotations

import hmac
from collections.abc import Sequence

PUBLIC_PREFIXES = ("/health", "/webhooks/")


class Unauthorized(Exception):
    """Missing or wrong operator key."""


def is_public(path: str) -> bool:
    return path == "/health" or path.startswith("/webhooks/")


def check_operator_key(presented: str | None, keys: Sequence[str]) -> None:
    if not presented:
        raise Unauthorized("missing x-api-key header")
    # Compare with every key (no early exit) so timing says nothing about which key nearly matched.
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(presented.encode(), key.encode())
    if not matched:
        raise Unauthorized("invalid x-api-key")
