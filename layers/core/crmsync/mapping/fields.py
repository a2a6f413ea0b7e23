"""Mapping files and how they apply: every CRM property is a path into a view, optionally translated."""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config" / "mappings"
NAME = re.compile(r"^[a-z0-9_-]+$")


class MappingError(ValueError):
    """A mapping file is missing or wrong; the message names the file and what is wrong."""


class FieldRule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str = Field(min_length=1)
    values: dict[str, str] | None = None

    def apply(self, view: dict[str, Any]) -> str | None:
        value: Any = view
        for part in self.path.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(part)
        if value is None:
            return None
        text = str(value).lower() if isinstance(value, bool) else str(value)
        if self.values is not None:
            return self.values.get(text)
        return text


class ObjectMapping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id_property: str
    fallback_id_property: str | None = None
    properties: dict[str, FieldRule]

    def apply(self, view: dict[str, Any]) -> dict[str, str]:
        """The CRM properties for one entity view; properties without a value are left out."""
        out: dict[str, str] = {}
        for name, rule in self.properties.items():
            value = rule.apply(view)
            if value is not None:
                out[name] = value
        return out


TEMPLATE_FIELD = re.compile(r"\{([a-z_]+)\}")


class Mapping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    contacts: ObjectMapping
    deals: ObjectMapping
    notes: ObjectMapping | None = None
    templates: dict[str, str] = Field(default_factory=dict)

    def render(self, template: str, view: dict[str, Any]) -> str | None:
        """Fill a note template with plain {field} names only (no attribute access: templates are user input)."""
        text = self.templates.get(template)
        if text is None:
            return None
        return TEMPLATE_FIELD.sub(lambda m: "" if view.get(m[1]) is None else str(view[m[1]]), text).strip()

    @classmethod
    def parse(cls, raw: Any, *, source: str) -> Mapping:
        if not isinstance(raw, dict):
            raise MappingError(f"{source}: expected a mapping of CRM object types")
        try:
            return cls.model_validate({kind: _shorthand(kind, spec) for kind, spec in raw.items()})
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise MappingError(f"{source}: {problems}") from exc


def _shorthand(kind: str, spec: Any) -> Any:
    """Expand `property: path` into `property: {path: path}` in an object mapping."""
    if kind == "templates" or not isinstance(spec, dict):
        return spec
    rules = spec.get("properties") or {}
    return {**spec, "properties": {p: {"path": r} if isinstance(r, str) else r for p, r in rules.items()}}


@functools.cache
def load_mapping(name: str = "default", directory: Path = CONFIG_DIR) -> Mapping:
    """Load and validate config/mappings/<name>.yaml once per container."""
    if not NAME.match(name):
        raise MappingError(f"mapping name {name!r} must be lower-case letters, digits, '-' or '_'")
    path = directory / f"{name}.yaml"
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise MappingError(f"{path.name}: no such mapping file in {directory}") from exc
    except yaml.YAMLError as exc:
        raise MappingError(f"{path.name}: not valid YAML ({exc.__class__.__name__})") from exc
    return Mapping.parse(raw, source=path.name)
