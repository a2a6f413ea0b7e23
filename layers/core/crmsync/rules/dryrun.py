"""Dry run: what a rule set would have done with the events of a period, writing nothing.

The events are read back from conversion lineage (crmsync.store.history), each with its entity's current stored
state; the customer's aggregates are folded as of each event's version from what is stored plus the entities of
the period (nothing is put). The report says, per event, which rules matched and what they would have done, and,
per rule, the automation efficiency E = actions / events seen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from crmsync.identity import current_id
from crmsync.messages import DomainEvent
from crmsync.rules.automation import KINDS, plan_event
from crmsync.rules.facts import contributions_for
from crmsync.views import customer_view

if TYPE_CHECKING:
    from crmsync.deadline import Deadline
    from crmsync.rules.automation import Reader
    from crmsync.rules.config import RuleSet
    from crmsync.settings import Settings
    from crmsync.store.history import Converted, History

MAX_EVENTS = 5000
ENTITY_OF = {kind: entity for entity, kind in KINDS.items()} | {"CUSTOMER": "customer"}


class DryRunRequest(BaseModel):
    """POST /rules/dry-run: the period (since inclusive, until exclusive) and which rules: a rule set's name, or a
    whole rule file as YAML text (to try a change before deploying it); default: the deployed rule set."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    since: AwareDatetime
    until: AwareDatetime
    rules: Annotated[str, StringConstraints(pattern=r"^[a-z0-9_-]+$")] | None = None
    rules_yaml: Annotated[str, StringConstraints(min_length=1, max_length=200_000)] | None = None
    limit: int = Field(default=1000, ge=1, le=MAX_EVENTS)
    details: bool = True  # per-event decisions in the report (else the per-rule summary only)

    @model_validator(mode="after")
    def _check(self) -> DryRunRequest:
        if self.until <= self.since:
            raise ValueError("until must be after since")
        if self.rules and self.rules_yaml:
            raise ValueError("give rules (a name) or rules_yaml (a file's text), not both")
        return self


@dataclass
class _RuleTotals:
    events_seen: int = 0
    matched: int = 0
    would_apply: int = 0
    actions: int = 0
    errors: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "events_seen": self.events_seen,
            "matched": self.matched,
            "would_apply": self.would_apply,
            "actions": self.actions,
            "errors": self.errors,
            "automation_efficiency": round(self.actions / self.events_seen, 4) if self.events_seen else None,
        }


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _events(found: Converted, reader: Reader) -> list[tuple[str, DomainEvent, list[Any]]]:
    """The domain events one conversion published, rebuilt around the entity's current stored state."""
    prefix, _, key = found.pk.partition("#")
    entity = ENTITY_OF.get(prefix)
    entry = found.entry
    if entity is None:
        return []
    extra: list[Any] = []
    customer_id = entry.get("customer_id")
    if entity == "customer":
        key = current_id(reader.state, key)
        items = reader.state.customer_items(key)
        data: dict[str, Any] | None = customer_view(key, items) if items else None
        customer_id = key
    else:
        stored = reader.state.get_entity(prefix, key)
        if stored is None:
            return []
        data, customer_id = stored.data, stored.customer_id or customer_id
        extra = contributions_for(prefix, stored.data)
    event = DomainEvent(
        entity=entity,
        key=key,
        customer_id=customer_id,
        source=str(entry.get("source") or (data or {}).get("source") or ""),
        source_id=(data or {}).get("source_id"),
        source_version=datetime.fromisoformat(entry["source_version"]),
        receipt_id=str(entry.get("receipt_id", "")),
        correlation_id="dry-run",
        data=data,
    )
    return [(str(detail_type), event, extra) for detail_type in entry.get("events", [])]


def dry_run(
    request: DryRunRequest, rules: RuleSet, reader: Reader, history: History, deadline: Deadline
) -> dict[str, Any]:
    """Evaluate the rule set against the period's events; every read, no write."""
    totals = {compiled.rule.id: _RuleTotals() for compiled in rules.rules}
    events: list[dict[str, Any]] = []
    seen = 0
    truncated = None
    work: list[tuple[str, DomainEvent, list[Any]]] = []
    for found in history.converted_between(_iso(request.since), _iso(request.until)):
        if len(work) >= request.limit:
            truncated = "limit"
            break
        if deadline.passed():
            truncated = "time"
            break
        work.extend(_events(found, reader))
    work.sort(key=lambda item: (item[1].source_version, item[1].key, item[0]))
    for detail_type, event, extra in work[: request.limit]:
        if deadline.passed():
            truncated = "time"
            break
        plan = plan_event(detail_type, event, reader, rules, extra=extra)
        seen += 1
        for decision in plan.decisions:
            rule = totals[decision.rule_id]
            rule.events_seen += 1
            rule.matched += decision.matched
            rule.errors += decision.error is not None
            if decision.to_apply:
                rule.would_apply += 1
                rule.actions += sum(1 for a in decision.actions if not a.skipped)
        if request.details and plan.decisions:
            events.append(plan.as_json(dry_run=True))
    return {
        "rule_set": rules.name,
        "rule_set_version": rules.version,
        "since": _iso(request.since),
        "until": _iso(request.until),
        "events_seen": seen,
        "truncated": truncated,
        "rules": {rule_id: rule.as_json() for rule_id, rule in totals.items()},
        "events": events if request.details else None,
    }


def run(request: DryRunRequest, settings: Settings, deadline: Deadline) -> dict[str, Any]:
    """The dry run on the deployed stores: the request's rules (RuleFileError when they do not load), else the
    deployed rule set."""
    from crmsync.mapping import load_mapping
    from crmsync.rules.automation import Reader
    from crmsync.rules.config import load_rules, parse_rules_text
    from crmsync.rules.properties import check_rule_properties
    from crmsync.store.aggregates import AggregateStore
    from crmsync.store.decisions import DecisionStore
    from crmsync.store.history import History
    from crmsync.store.state import StateStore

    if request.rules_yaml:
        rules = parse_rules_text(request.rules_yaml, source="rules_yaml", name="inline")
    else:
        rules = load_rules(request.rules or settings.rules)
    mapping = load_mapping(settings.mapping)
    check_rule_properties(rules, mapping)  # a rule writing a property this backend's mapping does not place: 400
    reader = Reader(
        state=StateStore(settings.state_table),
        aggregates=AggregateStore(settings.state_table),
        decisions=DecisionStore(settings.state_table),
        mapping=mapping,
        reporting_currency=settings.reporting_currency,
    )
    return dry_run(request, rules, reader, History(settings.state_table), deadline)
