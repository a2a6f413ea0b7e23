"""What the fakes read from template.yaml, so they follow it when it changes: queue settings and rule patterns."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

TEMPLATE = Path(__file__).resolve().parent.parent.parent / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """Reads template.yaml, keeping CloudFormation's short-form tags (!Ref, !GetAtt, ...) as None."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@functools.cache
def resources() -> dict[str, Any]:
    document = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    return dict(document["Resources"])


@dataclass(frozen=True)
class QueueSettings:
    visibility_timeout: float
    max_receive_count: int | None  # None: no redrive policy


def queue_settings(logical_id: str) -> QueueSettings:
    props = resources()[logical_id]["Properties"] or {}
    redrive = props.get("RedrivePolicy") or {}
    count = redrive.get("maxReceiveCount")
    return QueueSettings(
        visibility_timeout=float(props.get("VisibilityTimeout", 30)),
        max_receive_count=int(count) if count is not None else None,
    )


def rule_pattern(logical_id: str = "CrmEventsRule") -> dict[str, Any]:
    """The EventPattern of an AWS::Events::Rule."""
    return dict(resources()[logical_id]["Properties"]["EventPattern"])
