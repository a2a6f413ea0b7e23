"""JSON from outside (a webhook, an operator's body or file, a DLQ message, a continuation token), parsed so that
every bad text is one ValueError: json.loads raises RecursionError for valid JSON nested deeper than its stack, and
that escaped as a 5xx wherever a caller caught only ValueError."""

from __future__ import annotations

import json
from typing import Any


class NestedTooDeeply(ValueError):
    """Valid JSON, but nested deeper than the parser's stack (no sender or operator means that)."""


def loads(text: str | bytes) -> Any:
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise NestedTooDeeply("nested too deeply") from exc
