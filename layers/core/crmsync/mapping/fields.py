"""Mapping files and how they apply: every CRM property is a path into a view (or a constant), optionally transformed
and translated; each object type has a match policy; rule actions' property names may be renamed for the backend.

A file is validated whole at load, and every problem is named as `path:line: where.in.the.file: reason` (the line
from the YAML parser's marks), so a wrong mapping never starts writing.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from crmsync.crm.port import MATCH_POLICIES, MatchPolicy

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config" / "mappings"
NAME = re.compile(r"^[a-z0-9_-]+$")
PROPERTY_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,99}$")  # HubSpot internal names, Salesforce API field names
RULE_PROPERTY = re.compile(r"^[a-z][a-z0-9_]{0,99}$")  # as rule files name properties (crmsync.rules.config)
VIEW_PATH = re.compile(r"^[a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*$")
TEMPLATE_FIELD = re.compile(r"\{([a-z_]+)\}")
TEMPLATE_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
TOP_LEVEL = ("contacts", "deals", "notes", "templates", "rule_properties", "line_items", "companies")
# Sections a backend cannot write, and why (a load-time error naming the file and line, never a failed write).
UNSUPPORTED: dict[str, dict[str, str]] = {
    "salesforce": {
        "line_items": (
            "Salesforce line items are OpportunityLineItems, which need a Product2 and a PricebookEntry (in a price "
            "book) for every product; crmsync does not create or find those, so it cannot write line items to "
            "Salesforce: remove this section"
        ),
    },
}
RuleObject = Literal["contacts", "deals", "tasks", "notes"]


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a mapping file: where (file and line), which field (dotted path in the file) and why."""

    source: str
    line: int | None
    field: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line else self.source
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


class MappingError(ValueError):
    """A mapping file is missing or wrong; the message names the file, the line and the field of each problem."""

    def __init__(self, message: str | None = None, problems: tuple[Problem, ...] = ()) -> None:
        self.problems = problems
        super().__init__(message if message is not None else "\n".join(str(p) for p in problems))


# --- transforms ---------------------------------------------------------------------------------------------------
def _moment(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _date(text: str) -> str | None:
    """An ISO timestamp -> its UTC date (YYYY-MM-DD); a date stays; anything else is left out."""
    if len(text) == 10:
        try:
            return date.fromisoformat(text).isoformat()
        except ValueError:
            return None
    moment = _moment(text)
    return moment.astimezone(UTC).date().isoformat() if moment else None


def _epoch_ms(text: str) -> str | None:
    """An ISO timestamp -> milliseconds since the epoch (a date: its midnight UTC, as HubSpot date properties want)."""
    moment = _moment(text)
    return str(int(moment.timestamp() * 1000)) if moment else None


TRANSFORMS: dict[str, Callable[[str], str | None]] = {
    "lower": str.lower,
    "upper": str.upper,
    "trim": str.strip,
    "date": _date,
    "epoch_ms": _epoch_ms,
}


# --- one CRM property ---------------------------------------------------------------------------------------------
def _property_name(name: str) -> str:
    if not PROPERTY_NAME.match(name):
        raise ValueError(
            f"bad property name {name!r}: letters, digits and _ only, starting with a letter (at most 100)"
        )
    return name


def _rule_property_name(name: str) -> str:
    if not RULE_PROPERTY.match(name):
        raise ValueError(f"bad rule property name {name!r}: as rule files name properties (lower-case, digits, _)")
    return name


PropertyName = Annotated[str, AfterValidator(_property_name)]
RulePropertyName = Annotated[str, AfterValidator(_rule_property_name)]


class FieldRule(BaseModel):
    """One CRM property: the value at `path` in the view (or the constant `value`), then `transform`, then the
    `values` table (a value the table does not list is left out, not guessed)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: str | None = None
    value: str | None = None
    transform: str | None = None
    values: dict[str, str] | None = None

    @field_validator("path")
    @classmethod
    def _path(cls, path: str | None) -> str | None:
        if path is not None and not VIEW_PATH.match(path):
            raise ValueError(f"bad path {path!r}: dotted field names of the view (lower-case, digits, _)")
        return path

    @field_validator("transform")
    @classmethod
    def _transform(cls, transform: str | None) -> str | None:
        if transform is not None and transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {transform!r}; known: {', '.join(TRANSFORMS)}")
        return transform

    @model_validator(mode="after")
    def _one_source(self) -> FieldRule:
        if (self.path is None) == (self.value is None):
            raise ValueError("give exactly one of path (a field of the view) or value (a constant)")
        return self

    def apply(self, view: dict[str, Any]) -> str | None:
        found: Any = self.value
        if self.path is not None:
            found = view
            for part in self.path.split("."):
                if not isinstance(found, dict):
                    return None
                found = found.get(part)
        if found is None:
            return None
        text: str | None = str(found).lower() if isinstance(found, bool) else str(found)
        if self.transform is not None and text is not None:
            text = TRANSFORMS[self.transform](text)
        if self.values is not None and text is not None:
            return self.values.get(text)
        return text


class ObjectMapping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # Declared first: the id properties are checked against it.
    properties: dict[PropertyName, FieldRule]
    id_property: str
    fallback_id_property: str | None = None
    match_policy: MatchPolicy = "upsert"

    @field_validator("match_policy", mode="before")
    @classmethod
    def _policy(cls, policy: Any) -> Any:
        if isinstance(policy, str) and policy not in MATCH_POLICIES:
            raise ValueError(f"unknown match_policy {policy!r}; one of {', '.join(MATCH_POLICIES)}")
        return policy

    @field_validator("id_property", "fallback_id_property")
    @classmethod
    def _mapped(cls, name: str | None, info: ValidationInfo) -> str | None:
        properties = info.data.get("properties")
        if name is not None and properties is not None and name not in properties:
            raise ValueError(f"{name!r} is not one of this object's properties, so no record would ever be found by it")
        return name

    def apply(self, view: dict[str, Any]) -> dict[str, str]:
        """The CRM properties for one entity view; properties without a value are left out."""
        out: dict[str, str] = {}
        for name, rule in self.properties.items():
            value = rule.apply(view)
            if value is not None:
                out[name] = value
        return out


# --- note templates -----------------------------------------------------------------------------------------------
@functools.cache
def template_fields(kind: str) -> frozenset[str]:
    """The fields a note template of this kind may name: the refund's or dispute's own, and note_view's."""
    from crmsync.models import Dispute, Refund

    model = {"refund": Refund, "dispute": Dispute}[kind]
    return frozenset(model.model_fields) | {"amount", "currency", "external_id", "timestamp"}


def _template_problems(kind: str, text: str) -> list[str]:
    problems = []
    known = template_fields(kind)
    for inside in TEMPLATE_PLACEHOLDER.findall(text):
        if not re.fullmatch(r"[a-z_]+", inside):
            problems.append(f"bad template field {{{inside}}}: plain field names only, e.g. {{amount}}")
        elif inside not in known:
            problems.append(f"unknown template field {{{inside}}}; known: {', '.join(sorted(known))}")
    if "{" in TEMPLATE_PLACEHOLDER.sub("", text) or "}" in TEMPLATE_PLACEHOLDER.sub("", text):
        problems.append("unbalanced { or } (a field is {name})")
    return problems


class Templates(BaseModel):
    """Note bodies for refunds and disputes, with {field} placeholders (plain names of the note's view)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    refund: str | None = None
    dispute: str | None = None

    @field_validator("refund", "dispute")
    @classmethod
    def _fields(cls, text: str | None, info: ValidationInfo) -> str | None:
        problems = _template_problems(str(info.field_name), text) if text is not None else []
        if problems:
            raise ValueError("; ".join(problems))
        return text

    def get(self, kind: str) -> str | None:
        text = getattr(self, kind, None) if kind in type(self).model_fields else None
        return text if isinstance(text, str) else None


# --- rule property names per backend ------------------------------------------------------------------------------
class RuleProperty(BaseModel):
    """Where a property a rule action sets goes in this backend: `to` (null: not sent), values translated by
    `values` when given (a value it does not list is not sent), then `suffix` appended (e.g. to keep a rule's note
    apart from its task where both are one kind of record, as Salesforce Tasks)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    to: PropertyName | None
    values: dict[str, str] | None = None
    suffix: Annotated[str, Field(pattern=r"^[A-Za-z0-9:_.-]{0,40}$")] = ""


class RuleProperties(BaseModel):
    """`rule_properties`: per object type, the property names rule files use (HubSpot's) -> this backend's."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    contacts: dict[RulePropertyName, RuleProperty] = Field(default_factory=dict)
    deals: dict[RulePropertyName, RuleProperty] = Field(default_factory=dict)
    tasks: dict[RulePropertyName, RuleProperty] = Field(default_factory=dict)
    notes: dict[RulePropertyName, RuleProperty] = Field(default_factory=dict)

    def of(self, object_type: RuleObject) -> dict[str, RuleProperty]:
        table: dict[str, RuleProperty] = getattr(self, object_type)
        return table


# --- the file -----------------------------------------------------------------------------------------------------
class Mapping(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    contacts: ObjectMapping
    deals: ObjectMapping
    notes: ObjectMapping | None = None
    templates: Templates = Field(default_factory=Templates)
    rule_properties: RuleProperties | None = None
    # Opt-in: without these sections no line item or company is written (and no call made for them).
    line_items: ObjectMapping | None = None
    companies: ObjectMapping | None = None
    _source: str = PrivateAttr(default="mapping")

    @property
    def source(self) -> str:
        """The file it was loaded from (for messages)."""
        return self._source

    def render(self, template: str, view: dict[str, Any]) -> str | None:
        """Fill a note template with plain {field} names only (no attribute access: templates are user input)."""
        text = self.templates.get(template)
        if text is None:
            return None
        return TEMPLATE_FIELD.sub(lambda m: "" if view.get(m[1]) is None else str(view[m[1]]), text).strip()

    def rule_property(self, object_type: RuleObject, name: str) -> str | None:
        """The name a rule action's property has in this backend (None: not sent). Without `rule_properties`, the
        name itself; with it, a property it does not list is a MappingError."""
        if self.rule_properties is None:
            return name
        rule = self.rule_properties.of(object_type).get(name)
        if rule is None:
            raise MappingError(
                f"{self._source}: rule_properties.{object_type} has no {name!r}: say which field a rule's {name} goes "
                "to (or null to leave it out)"
            )
        return rule.to

    def for_rules(self, object_type: RuleObject, properties: dict[str, str]) -> dict[str, str]:
        """A rule action's properties under this backend's names, values translated where the map says so."""
        if self.rule_properties is None:
            return dict(properties)
        out: dict[str, str] = {}
        for name, value in properties.items():
            target = self.rule_property(object_type, name)
            rule = self.rule_properties.of(object_type)[name]
            translated = value if rule.values is None else rule.values.get(value)
            if target is not None and translated is not None:
                out[target] = translated + rule.suffix
        return out

    @classmethod
    def parse(cls, raw: Any, *, source: str, lines: Lines | None = None, backend: str | None = None) -> Mapping:
        """Validate a parsed mapping file; MappingError naming every problem (with its line when `lines` has it).
        `backend` (CRM_BACKEND): sections that backend cannot write (UNSUPPORTED) are problems too."""
        lines = lines or {}
        if not isinstance(raw, dict):
            raise MappingError(
                problems=(Problem(source, _line(lines, ()), "", "expected a mapping of CRM object types"),)
            )
        unknown = [
            Problem(source, _line(lines, (str(k),)), str(k), f"unknown object {k!r}; known: {', '.join(TOP_LEVEL)}")
            for k in raw
            if k not in TOP_LEVEL
        ]
        unknown += [
            Problem(source, _line(lines, (str(k),)), str(k), reason)
            for k, reason in UNSUPPORTED.get(backend or "", {}).items()
            if k in raw
        ]
        try:
            mapping = cls.model_validate(
                {kind: _shorthand(kind, spec) for kind, spec in raw.items() if kind in TOP_LEVEL}
            )
        except ValidationError as exc:
            found = [*unknown, *(_problem(e, source, lines) for e in exc.errors())]
            raise MappingError(problems=tuple(sorted(found, key=lambda p: p.line or 0))) from exc
        if unknown:
            raise MappingError(problems=tuple(unknown))
        mapping._source = source
        return mapping


def _shorthand(kind: str, spec: Any) -> Any:
    """Expand `property: path` into `property: {path: path}` in an object mapping, and `name: Field` (or null) into
    `name: {to: Field}` in rule_properties."""
    if not isinstance(spec, dict):
        return spec
    if kind == "rule_properties":
        return {
            ot: {n: r if isinstance(r, dict) else {"to": r} for n, r in rules.items()}
            if isinstance(rules, dict)
            else rules
            for ot, rules in spec.items()
        }
    if kind == "templates":
        return spec
    rules = spec.get("properties")
    if not isinstance(rules, dict):
        return spec
    return {**spec, "properties": {p: {"path": r} if isinstance(r, str) else r for p, r in rules.items()}}


# --- where in the file --------------------------------------------------------------------------------------------
Lines = dict[tuple[str, ...], tuple[int, bool]]  # path of keys -> (line, the node there is a scalar)


def compose(text: str) -> tuple[Any, Lines]:
    """Parse YAML (safely) and record the line of every key and list item, from the composer's node marks."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    finally:
        loader.dispose()
    lines: Lines = {}
    if node is not None:
        lines[()] = (node.start_mark.line + 1, isinstance(node, yaml.ScalarNode))
        _walk(node, (), lines, set())
    return data, lines


def _walk(node: yaml.Node, path: tuple[str, ...], lines: Lines, active: set[int]) -> None:
    if id(node) in active:  # an alias of an enclosing node: recursive data, walked once
        return
    active.add(id(node))
    children: list[tuple[str, yaml.Node, yaml.Node]] = []
    if isinstance(node, yaml.MappingNode):
        children = [
            (str(key.value) if isinstance(key, yaml.ScalarNode) else "?", key, value) for key, value in node.value
        ]
    elif isinstance(node, yaml.SequenceNode):
        children = [(str(n), item, item) for n, item in enumerate(node.value)]
    for name, marked, value in children:
        lines.setdefault((*path, name), (marked.start_mark.line + 1, isinstance(value, yaml.ScalarNode)))
        _walk(value, (*path, name), lines, active)
    active.discard(id(node))


def _line(lines: Lines, path: tuple[str, ...]) -> int | None:
    """The line of the longest part of `path` the file has."""
    for end in range(len(path), -1, -1):
        if path[:end] in lines:
            return lines[path[:end]][0]
    return None


def _problem(error: Any, source: str, lines: Lines) -> Problem:
    loc = tuple(str(part) for part in error["loc"] if part != "[key]")
    # Shorthands (`email: email`) are expanded before validation: name the key the file has, not the expanded one.
    shown = loc
    for end in range(len(loc), 0, -1):
        if loc[:end] in lines:
            shown = loc[:end] if lines[loc[:end]][1] else loc
            break
    reason = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        known = _known_keys(loc[:-1])
        reason = f"unknown key {loc[-1]!r}" + (f"; expected one of: {', '.join(known)}" if known else "")
    return Problem(source, _line(lines, loc), ".".join(shown), reason)


def _known_keys(loc: tuple[str, ...]) -> list[str]:
    """The keys the model at this place of the file takes (for `unknown key` messages)."""
    annotation: Any = Mapping
    for part in (*loc, None):
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            if part is None:
                return list(annotation.model_fields)
            field = annotation.model_fields.get(part)
            if field is None:
                return []
            annotation = field.annotation
        elif get_origin(annotation) is dict and part is not None:
            annotation = get_args(annotation)[1]
        else:
            return []
    return []


def _unwrap(annotation: Any) -> Any:
    """`X | None` -> X; Annotated[X, ...] -> X."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (types.UnionType, typing.Union):
        annotation = next((a for a in get_args(annotation) if a is not type(None)), annotation)
    return annotation


# --- loading ------------------------------------------------------------------------------------------------------
def parse_mapping_text(text: str, *, source: str, backend: str | None = None) -> Mapping:
    """Parse and validate a mapping file's text (MappingError: `source:line: field: reason` per problem)."""
    try:
        raw, lines = compose(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        detail = getattr(exc, "problem", None) or exc.__class__.__name__
        line = mark.line + 1 if mark is not None else None
        raise MappingError(problems=(Problem(source, line, "", f"not valid YAML ({detail})"),)) from exc
    return Mapping.parse(raw, source=source, lines=lines, backend=backend)


@functools.cache
def load_mapping(name: str = "default", directory: Path = CONFIG_DIR, backend: str | None = None) -> Mapping:
    """Load and validate config/mappings/<name>.yaml once per container; `backend` (CRM_BACKEND) also refuses the
    sections that backend cannot write."""
    if not NAME.match(name):
        raise MappingError(f"mapping name {name!r} must be lower-case letters, digits, '-' or '_'")
    path = directory / f"{name}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise MappingError(f"{path}: no such mapping file in {directory}") from exc
    return parse_mapping_text(text, source=str(path), backend=backend)
