"""Rule files (config/rules/<name>.yaml): read, validated with pydantic, conditions compiled; all or nothing.

A file with any error is rejected whole with every problem named (file, rule id, what is wrong), so a running rule
set is never half-loaded: a container keeps the rule set it loaded, and a bad file fails its records (which retry,
then dead-letter with the reason) instead of running some of the rules.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from crmsync.messages import DetailType
from crmsync.rules.engine import Condition, ConditionError, template_problems
from crmsync.rules.risk import RiskConfig

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config" / "rules"
NAME = re.compile(r"^[a-z0-9_-]+$")

RuleId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
PropertyName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,99}$")]
Tag = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9 _.-]{0,49}$")]
Text = Annotated[str, StringConstraints(min_length=1, max_length=2000)]
EventName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+$", max_length=128)]


class RuleFileError(ValueError):
    """A rule file that cannot be used; the message names the file, each rule id and what is wrong."""

    def __init__(self, source: str, problems: list[tuple[str, str]]) -> None:
        self.source = source
        self.problems = problems
        listed = "; ".join(f"rule {rule_id}: {reason}" if rule_id else reason for rule_id, reason in problems)
        super().__init__(f"{source}: {listed}")


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TaskAction(_Strict):
    subject: Text
    body: str = Field(default="", max_length=5000)
    priority: Literal["LOW", "MEDIUM", "HIGH"] = "MEDIUM"
    owner: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None  # a CRM owner id
    queue: Annotated[str, StringConstraints(min_length=1, max_length=100)] | None = None  # a CRM task queue id
    due_in_hours: int = Field(default=24, ge=0, le=24 * 365)


class NoteAction(_Strict):
    body: Text


class EmitAction(_Strict):
    detail_type: EventName
    detail: dict[PropertyName, str] = Field(default_factory=dict)


class FlagRiskAction(_Strict):
    reason: Text


class Action(_Strict):
    """Exactly one of these per item of `then`."""

    set_contact: dict[PropertyName, str] | None = None
    add_tags: Annotated[list[Tag], Field(min_length=1)] | None = None
    set_deal: dict[PropertyName, str] | None = None
    create_task: TaskAction | None = None
    add_note: NoteAction | None = None
    emit: EmitAction | None = None
    flag_risk: FlagRiskAction | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Action:
        chosen = [name for name in type(self).model_fields if getattr(self, name) is not None]
        if len(chosen) != 1:
            names = ", ".join(type(self).model_fields)
            raise ValueError(f"each action is exactly one of {names}; got {', '.join(chosen) or 'none'}")
        return self

    @property
    def kind(self) -> str:
        return next(name for name in type(self).model_fields if getattr(self, name) is not None)

    def templates(self) -> list[str]:
        """Every text of the action that may hold {placeholders}."""
        if self.set_contact is not None:
            return list(self.set_contact.values())
        if self.set_deal is not None:
            return list(self.set_deal.values())
        if self.create_task is not None:
            return [self.create_task.subject, self.create_task.body]
        if self.add_note is not None:
            return [self.add_note.body]
        if self.emit is not None:
            return list(self.emit.detail.values())
        if self.flag_risk is not None:
            return [self.flag_risk.reason]
        return []


class Rule(_Strict):
    id: RuleId
    version: int = Field(ge=1)
    description: str = ""
    enabled: bool = True
    when: Annotated[list[DetailType], Field(min_length=1)]
    condition: Annotated[str, StringConstraints(min_length=1, max_length=2000)] = "true"
    # Act once per entity version (a new version of the entity may act again), once per entity, or once per customer.
    once_per: Literal["version", "entity", "customer"] = "version"
    then: Annotated[list[Action], Field(min_length=1)]


class _File(_Strict):
    version: int = Field(default=1, ge=1)  # the file's own version, reported with every decision
    risk: RiskConfig = RiskConfig()
    rules: list[Any] = Field(default_factory=list)


@dataclass(frozen=True)
class CompiledRule:
    rule: Rule
    condition: Condition


@dataclass(frozen=True)
class RuleSet:
    name: str  # the file's name, or "inline" for a dry run's own YAML
    version: int
    risk: RiskConfig
    rules: tuple[CompiledRule, ...]

    def for_event(self, detail_type: str) -> list[CompiledRule]:
        return [c for c in self.rules if c.rule.enabled and detail_type in c.rule.when]


def _where(error: Any) -> str:
    location = ".".join(str(part) for part in error["loc"])
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{location}: {message}" if location else message


def parse_rules(raw: Any, *, source: str, name: str | None = None) -> RuleSet:
    """Validate a parsed rule file and compile every condition; RuleFileError naming every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise RuleFileError(source, [("", "expected a mapping with `rules:` (and optionally `risk:`, `version:`)")])
    try:
        top = _File.model_validate(raw)
    except ValidationError as exc:
        raise RuleFileError(source, [("", _where(e)) for e in exc.errors(include_url=False)]) from None
    problems: list[tuple[str, str]] = []
    compiled: list[CompiledRule] = []
    seen: set[str] = set()
    for index, item in enumerate(top.rules):
        rule_id = str(item.get("id")) if isinstance(item, dict) and item.get("id") else f"#{index + 1} (no id)"
        try:
            rule = Rule.model_validate(item)
        except ValidationError as exc:
            problems.extend((rule_id, _where(e)) for e in exc.errors(include_url=False))
            continue
        if rule.id in seen:
            problems.append((rule.id, "duplicate rule id"))
        seen.add(rule.id)
        try:
            condition = Condition(rule.condition)
        except ConditionError as exc:
            problems.append((rule.id, f"condition: {exc}"))
            continue
        for position, action in enumerate(rule.then):
            for template in action.templates():
                problems.extend(
                    (rule.id, f"then.{position}.{action.kind}: {problem}") for problem in template_problems(template)
                )
        compiled.append(CompiledRule(rule, condition))
    if problems:
        raise RuleFileError(source, problems)
    return RuleSet(name=name or source, version=top.version, risk=top.risk, rules=tuple(compiled))


def parse_rules_text(text: str, *, source: str = "inline", name: str | None = None) -> RuleSet:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise RuleFileError(source, [("", f"not valid YAML{where} ({getattr(exc, 'problem', None) or exc})")]) from None
    return parse_rules(raw, source=source, name=name)


@functools.cache
def load_rules(name: str = "default", directory: Path = CONFIG_DIR) -> RuleSet:
    """Load config/rules/<name>.yaml once per container (a failed load is not cached: the next call tries again)."""
    if not NAME.match(name):
        raise RuleFileError(f"{name!r}", [("", "a rule set name is lower-case letters, digits, '-' or '_'")])
    path = directory / f"{name}.yaml"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RuleFileError(path.name, [("", f"no such rule file in {directory.name}/")]) from None
    return parse_rules_text(text, source=path.name, name=name)
