"""Fixtures shared by every suite: repository paths and sample events loaded from files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

# Powertools reads these when the handler modules are imported, before any fixture runs.
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "crmsync")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "crmsync")

REPO = Path(__file__).resolve().parent.parent
EVENTS = REPO / "events"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture
def load_event():
    """Load a Lambda event from events/ by file name."""

    def load(name: str) -> dict[str, Any]:
        return json.loads((EVENTS / name).read_text())

    return load
