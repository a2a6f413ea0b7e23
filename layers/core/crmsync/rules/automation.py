"""Automation: a domain event -> its customer's aggregates -> risk score and rules -> CRM actions, each decision in the
lineage of the records it touched.

Planning reads only (so the dry run can plan without writing); applying writes: tags, CRM records through the CRM port,
events on the bus, the decision marker (crmsync.store.decisions) and lineage. A decision is carried out once per its
scope (`once_per`): a redelivered event finds the marker and does nothing; a retry after a crash half-way upserts the
same records again by their external ids (tasks and notes: `<rule id>:<external id of what they are about>`), so it
never makes a second task.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from crmsync.crm.port import Association, UpsertInput
from crmsync.identity import current_id
from crmsync.links import payment_links
from crmsync.messages import DetailType, DomainEvent
from crmsync.models import Payment
from crmsync.observability import logger
from crmsync.rules.engine import EvaluationFailed, render
from crmsync.rules.facts import CustomerFacts, contributions_for, epoch_ms, fold, major, newest
from crmsync.rules.risk import RiskInput, RiskScore, assess
from crmsync.views import customer_external_id, customer_view, deal_target

if TYPE_CHECKING:
    from crmsync.crm.port import CrmPort
    from crmsync.mapping import Mapping
    from crmsync.mapping.fields import RuleObject
    from crmsync.rules.config import Action, CompiledRule, RuleSet
    from crmsync.store.aggregates import AggregateStore, Contribution
    from crmsync.store.bus import EventBus
    from crmsync.store.decisions import DecisionStore
    from crmsync.store.state import StateStore, StoredItem

RULES_SOURCE = "crmsync.rules"  # events the rules emit: no bus rule routes this source back to a crmsync queue
KINDS = {"order": "ORDER", "payment": "PAYMENT", "refund": "REFUND", "dispute": "DISPUTE"}
RISK_PROPERTIES = ("crmsync_risk_flag", "crmsync_risk_reason", "crmsync_risk_score")


@dataclass(frozen=True)
class Reader:
    """What planning reads: state, aggregates, decision markers, and the contact mapping."""

    state: StateStore
    aggregates: AggregateStore
    decisions: DecisionStore
    mapping: Mapping
    reporting_currency: str = ""


@dataclass(frozen=True)
class AutomationDeps:
    reader: Reader
    crm: CrmPort
    bus: EventBus
    rules: RuleSet


@dataclass
class PlannedAction:
    kind: str  # the action's name in the rule file
    target: str  # contact, deal, task, note, event
    properties: dict[str, str] = field(default_factory=dict)
    external_id: str | None = None
    tags: list[str] = field(default_factory=list)
    detail_type: str | None = None
    skipped: str | None = None  # why it cannot be carried out (no contact, no deal)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"action": self.kind, "target": self.target}
        if self.external_id:
            out["external_id"] = self.external_id
        if self.properties:
            out["properties"] = self.properties
        if self.tags:
            out["tags"] = self.tags
        if self.detail_type:
            out["detail_type"] = self.detail_type
        if self.skipped:
            out["skipped"] = self.skipped
        return out


@dataclass
class DecisionPlan:
    rule_id: str
    rule_version: int
    scope: str
    matched: bool
    error: str | None = None
    already_applied: bool = False
    actions: list[PlannedAction] = field(default_factory=list)

    @property
    def to_apply(self) -> bool:
        return self.matched and not self.already_applied

    @property
    def outcome(self) -> str:
        if self.error:
            return "condition failed"
        if not self.matched:
            return "not matched"
        return "already applied" if self.already_applied else "applied"

    def as_json(self, *, dry_run: bool = False) -> dict[str, Any]:
        outcome = "would apply" if dry_run and self.outcome == "applied" else self.outcome
        out: dict[str, Any] = {
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "condition": f"error: {self.error}" if self.error else self.matched,
            "outcome": outcome,
        }
        if self.matched:
            out["actions"] = [a.as_json() for a in self.actions]
        return out


@dataclass
class EventPlan:
    detail_type: str
    event: DomainEvent
    kind: str | None  # state kind of the entity (ORDER, ...), None for customers and notices
    customer_id: str | None
    customer: CustomerFacts
    risk: RiskScore
    decisions: list[DecisionPlan]
    contact: dict[str, Any] | None  # the customer's view (what the writer maps to a contact), None without one
    deal: tuple[str, str] | None  # (state kind, external id) of the deal the entity is about, when stored

    @property
    def entity_pk(self) -> str | None:
        if self.kind:
            return f"{self.kind}#{self.event.key}"
        return f"CUSTOMER#{self.customer_id}" if self.event.entity == "customer" and self.customer_id else None

    def as_json(self, *, dry_run: bool = False) -> dict[str, Any]:
        return {
            "detail_type": self.detail_type,
            "entity": self.event.entity,
            "key": self.event.key,
            "customer_id": self.customer_id,
            "source_version": self.event.source_version.isoformat(),
            "receipt_id": self.event.receipt_id,
            "risk": self.risk.as_json(),
            "decisions": [d.as_json(dry_run=dry_run) for d in self.decisions],
        }


@dataclass
class Outcome:
    """What handling one event did, per rule: events seen and actions carried out (automation efficiency)."""

    plan: EventPlan | None
    seen: dict[str, int] = field(default_factory=dict)
    actions: dict[str, int] = field(default_factory=dict)


# --- planning (reads only) ----------------------------------------------------------------------------------------
def _entity_data(event: DomainEvent, state: StateStore) -> tuple[str | None, dict[str, Any], StoredItem | None]:
    kind = KINDS.get(event.entity)
    if kind is None:
        return None, dict(event.data or {}), None
    stored = state.get_entity(kind, event.key)
    return kind, dict(event.data or (stored.data if stored else {})), stored


def _customer_of(
    event: DomainEvent, kind: str | None, data: dict[str, Any], stored: StoredItem | None, state: StateStore
) -> str | None:
    """The entity's customer: the event's, the stored entity's, or that of the deal a refund or dispute is about."""
    customer_id = event.customer_id or (stored.customer_id if stored else None)
    if event.entity == "customer":
        customer_id = customer_id or event.key
    if customer_id is None and kind in ("REFUND", "DISPUTE") and data.get("source"):
        target = deal_target(kind.lower(), data)
        related = state.get_entity(*target) if target else None
        customer_id = related.customer_id if related else None
    return current_id(state, customer_id) if customer_id else None


def _deal_of(kind: str | None, key: str, data: dict[str, Any], state: StateStore) -> tuple[str, str] | None:
    """(state kind, external id) of the deal the entity is shown on, as the CRM writer places it; None if not stored."""
    if kind in ("REFUND", "DISPUTE") and data.get("source"):
        target = deal_target(kind.lower(), data)
        if target is None:
            return None
        kind, key = target
        stored = state.get_entity(kind, key)
        if stored is None:
            return None
        data = stored.data
    if kind == "PAYMENT" and data.get("source"):
        order = state.find_link(payment_links(Payment.model_validate(data)))
        return ("ORDER", order) if order and state.get_entity("ORDER", order) else ("PAYMENT", key)
    return ("ORDER", key) if kind == "ORDER" else None


def _deal_facts(deal: tuple[str, str] | None, state: StateStore) -> dict[str, Any]:
    facts: dict[str, Any] = {"key": "", "status": "", "amount": Decimal(0), "refunded": Decimal(0), "currency": "",
                             "fully_refunded": False}  # fmt: skip
    stored = state.get_entity(*deal) if deal else None
    if deal is None or stored is None:
        return facts
    data = stored.data
    money = data.get("total") if deal[0] == "ORDER" else data.get("amount")
    back = data.get("refunded") if deal[0] == "ORDER" else data.get("amount_refunded")
    currency = str(money["currency"]) if money else ""
    amount, refunded = (int(money["amount"]) if money else 0), (int(back["amount"]) if back else 0)
    facts.update(
        key=deal[1], status=str(data.get("status", "")), currency=currency, amount=major(amount, currency),
        refunded=major(refunded, currency),
        fully_refunded=data.get("status") in ("refunded", "reversed") or (amount > 0 and refunded >= amount),
    )  # fmt: skip
    return facts


def customer_facts(
    reader: Reader, customer_id: str | None, *, as_of: datetime, extra: Iterable[Contribution] = ()
) -> CustomerFacts:
    """The customer's aggregates: stored contributions, those of every entity state links to the customer (history
    from before the rules ran), and `extra` (a dry run's own), the newest of each."""
    if not customer_id:
        return CustomerFacts()
    found = list(reader.aggregates.contributions(customer_id))
    for kind, item in reader.state.customer_entities(customer_id):
        found.extend(contributions_for(kind, item.data))
    found.extend(extra)
    tags = reader.aggregates.tags(customer_id)
    return fold(customer_id, newest(found), as_of=as_of, tags=tags, reporting_currency=reader.reporting_currency)


def _amount(kind: str | None, data: dict[str, Any]) -> tuple[Decimal, str]:
    money = data.get("total") if kind == "ORDER" else data.get("amount")
    if not isinstance(money, dict) or "amount" not in money:
        return Decimal(0), ""
    return major(int(money["amount"]), str(money["currency"])), str(money["currency"])


def plan_event(
    detail_type: str,
    event: DomainEvent,
    reader: Reader,
    rules: RuleSet,
    *,
    extra: Iterable[Contribution] = (),
) -> EventPlan:
    state = reader.state
    kind, data, stored = _entity_data(event, state)
    customer_id = _customer_of(event, kind, data, stored, state)
    as_of = event.source_version
    customer = customer_facts(reader, customer_id, as_of=as_of, extra=extra)
    items = state.customer_items(customer_id) if customer_id else []
    contact = customer_view(customer_id, items) if customer_id and items else None
    deal = _deal_of(kind, event.key, data, state)
    payment: dict[str, Any] | None = data if kind == "PAYMENT" else None
    if kind in ("REFUND", "DISPUTE") and data.get("source"):
        target = deal_target(kind.lower(), data)
        related = state.get_entity(*target) if target and target[0] == "PAYMENT" else None
        payment = related.data if related else None
    risk = assess(
        rules.risk,
        RiskInput(
            entity=event.entity, key=event.key, data=data, customer=customer, as_of=as_of, payment=payment,
            customer_country=((contact or {}).get("address") or {}).get("country"),
        ),
    )  # fmt: skip
    amount, currency = _amount(kind, data)
    facts: dict[str, Any] = {
        "event": detail_type,
        "entity": event.entity,
        "key": event.key,
        "source": event.source,
        "status": str(data.get("status") or ""),
        "amount": amount,
        "currency": currency,
        "test": bool(data.get("test", False)),
        "customer_id": customer_id or "",
        "data": data,
        "customer": customer.for_rules(),
        "deal": _deal_facts(deal, state),
        "risk": risk.for_rules(),
    }
    plan = EventPlan(detail_type, event, kind, customer_id, customer, risk, [], contact, deal)
    for compiled in rules.for_event(detail_type):
        plan.decisions.append(_decide(compiled, plan, facts, reader))
    return plan


def _scope(rule_once_per: str, plan: EventPlan) -> str:
    if rule_once_per == "customer" and plan.customer_id:
        return f"customer:{plan.customer_id}"
    if rule_once_per == "entity":
        return plan.event.key
    return f"{plan.event.key}@{epoch_ms(plan.event.source_version)}"


def _decide(compiled: CompiledRule, plan: EventPlan, facts: dict[str, Any], reader: Reader) -> DecisionPlan:
    rule = compiled.rule
    decision = DecisionPlan(rule.id, rule.version, _scope(rule.once_per, plan), matched=False)
    try:
        decision.matched = compiled.condition.matches(facts)
    except EvaluationFailed as exc:
        decision.error = str(exc)
        logger.warning("rule condition failed", rule_id=rule.id, key=plan.event.key, reason=str(exc))
        return decision
    if not decision.matched:
        return decision
    decision.already_applied = reader.decisions.done(rule.id, rule.version, decision.scope)
    about = (
        customer_external_id(plan.customer_id)
        if plan.customer_id and (rule.once_per == "customer" or plan.kind is None)
        else plan.event.key
    )
    counts: dict[str, int] = {}
    for action in rule.then:
        counts[action.kind] = counts.get(action.kind, 0) + 1
        suffix = f":{counts[action.kind]}" if counts[action.kind] > 1 else ""
        decision.actions.append(_action(action, f"{rule.id}:{about}{suffix}", rule.id, rule.version, plan, facts))
    return decision


def _action(action: Action, external_id: str, rule_id: str, rule_version: int, plan: EventPlan,
            facts: dict[str, Any]) -> PlannedAction:  # fmt: skip
    no_contact = None if plan.contact else "no contact: the entity has no known customer yet"
    no_deal = None if plan.deal else "no deal: the entity is not on a stored order or payment"
    at = plan.event.source_version.astimezone(UTC)
    if action.set_contact is not None:
        props = {name: render(value, facts) for name, value in action.set_contact.items()}
        return PlannedAction("set_contact", "contact", props, skipped=no_contact)
    if action.add_tags is not None:
        return PlannedAction("add_tags", "contact", tags=list(action.add_tags), skipped=no_contact)
    if action.set_deal is not None:
        props = {name: render(value, facts) for name, value in action.set_deal.items()}
        return PlannedAction("set_deal", "deal", props, skipped=no_deal)
    if action.create_task is not None:
        task = action.create_task
        props = {
            "hs_task_subject": render(task.subject, facts),
            "hs_task_body": render(task.body, facts),
            "hs_task_priority": task.priority,
            "hs_task_status": "NOT_STARTED",
            "hs_timestamp": (at + timedelta(hours=task.due_in_hours)).isoformat(),
            "crmsync_rule": f"{rule_id}@v{rule_version}",
            "crmsync_external_id": external_id,
        }
        if task.owner:
            props["hubspot_owner_id"] = task.owner
        if task.queue:
            props["hs_queue_membership_ids"] = task.queue
        return PlannedAction("create_task", "task", props, external_id)
    if action.add_note is not None:
        props = {
            "hs_note_body": render(action.add_note.body, facts),
            "hs_timestamp": at.isoformat(),
            "crmsync_rule": f"{rule_id}@v{rule_version}",
            "crmsync_external_id": external_id,
        }
        return PlannedAction("add_note", "note", props, external_id)
    if action.emit is not None:
        detail = {name: render(value, facts) for name, value in action.emit.detail.items()}
        return PlannedAction("emit", "event", detail, detail_type=action.emit.detail_type)
    assert action.flag_risk is not None
    props = {
        "crmsync_risk_flag": "true",
        "crmsync_risk_reason": render(action.flag_risk.reason, facts),
        "crmsync_risk_score": str(plan.risk.score),
    }
    skipped = "no contact and no deal" if no_contact and no_deal else None
    return PlannedAction("flag_risk", "contact", props, detail_type=DetailType.RISK_FLAGGED.value, skipped=skipped)


# --- applying (writes) --------------------------------------------------------------------------------------------
def record_contributions(detail_type: str, event: DomainEvent, plan_customer: str | None, deps: AutomationDeps) -> None:
    """The entity's part in its customer's aggregates (version-guarded puts: a duplicate writes the same items)."""
    kind = KINDS.get(event.entity)
    if kind is None or plan_customer is None:
        return
    data = event.data or {}
    if not data:
        stored = deps.reader.state.get_entity(kind, event.key)
        data = stored.data if stored else {}
    if not data:
        return
    for contribution in contributions_for(kind, data, failed=detail_type == DetailType.PAYMENT_FAILED):
        deps.reader.aggregates.put(plan_customer, contribution)


def handle_event(detail_type: str, event: DomainEvent, deps: AutomationDeps) -> Outcome:
    """Aggregates, then rules, then actions, for one domain event from the bus."""
    reader = deps.reader
    if detail_type == DetailType.CUSTOMER_MERGED and event.merged:
        moved = reader.aggregates.merge(event.merged, current_id(reader.state, event.key))
        logger.info("aggregates merged", survivor=event.key, merged=event.merged, contributions=moved)
    kind, data, stored = _entity_data(event, reader.state)
    customer_id = _customer_of(event, kind, data, stored, reader.state)
    record_contributions(detail_type, event, customer_id, deps)
    plan = plan_event(detail_type, event, reader, deps.rules)
    outcome = Outcome(plan, seen={d.rule_id: 1 for d in plan.decisions})
    if plan.decisions:
        applied = apply_plan(plan, deps)
        outcome.actions = applied
        _record_lineage(plan, deps)
    return outcome


def apply_plan(plan: EventPlan, deps: AutomationDeps) -> dict[str, int]:
    """Carry out every matched decision not yet applied; returns actions carried out per rule id."""
    todo = [d for d in plan.decisions if d.to_apply]
    if not todo:
        return {}
    contact_props: dict[str, str] = {}
    deal_props: dict[str, str] = {}
    tags: list[str] = []
    tasks: list[UpsertInput] = []
    notes: list[UpsertInput] = []
    events: list[tuple[str, str]] = []
    for decision in todo:
        for action in decision.actions:
            if action.skipped:
                continue
            if action.kind == "set_contact":
                contact_props.update(action.properties)
            elif action.kind == "add_tags":
                tags.extend(action.tags)
            elif action.kind == "set_deal":
                deal_props.update(action.properties)
            elif action.kind == "create_task" and action.external_id:
                tasks.append(UpsertInput("crmsync_external_id", action.external_id, action.properties))
            elif action.kind == "add_note" and action.external_id:
                notes.append(UpsertInput("crmsync_external_id", action.external_id, action.properties))
            elif action.kind == "emit" and action.detail_type:
                events.append((action.detail_type, _detail(plan, decision, action.properties)))
            elif action.kind == "flag_risk":
                contact_props.update(action.properties)
                deal_props.update(action.properties)
                events.append((DetailType.RISK_FLAGGED.value, _risk_event(plan, decision, action)))
    if tags and plan.customer_id and plan.contact:
        every = deps.reader.aggregates.add_tags(plan.customer_id, tags)
        contact_props["crmsync_tags"] = ";".join(sorted(every))
    # Rule files name properties as HubSpot does; the mapping's rule_properties renames them for its backend.
    mapping = deps.reader.mapping
    contact_props = mapping.for_rules("contacts", contact_props)
    deal_props = mapping.for_rules("deals", deal_props)
    tasks = [_for_backend(mapping, "tasks", item) for item in tasks]
    notes = [_for_backend(mapping, "notes", item) for item in notes]
    wants_records = bool(tasks or notes)
    contact_id = (
        _upsert_contact(plan, contact_props, deps) if plan.contact and (contact_props or wants_records) else None
    )
    deal_id = _upsert_deal(plan, deal_props, deps) if plan.deal and (deal_props or wants_records) else None
    for object_type, inputs in (("tasks", tasks), ("notes", notes)):
        if not inputs:
            continue
        ids = [r.id for r in deps.crm.upsert(object_type, inputs)]
        if contact_id:
            deps.crm.associate(object_type, "contacts", [Association(i, contact_id) for i in ids])
        if deal_id:
            deps.crm.associate(object_type, "deals", [Association(i, deal_id) for i in ids])
    if events:
        deps.bus.publish(events)
    applied: dict[str, int] = {}
    for decision in todo:
        record = {"key": plan.event.key, "receipt_id": plan.event.receipt_id, "actions": len(decision.actions),
                  "at": datetime.now(UTC).isoformat()}  # fmt: skip
        deps.reader.decisions.mark(decision.rule_id, decision.rule_version, decision.scope, record)
        applied[decision.rule_id] = sum(1 for a in decision.actions if not a.skipped)
    logger.info("rules applied", key=plan.event.key, rules=sorted(applied), tasks=len(tasks), notes=len(notes))
    return applied


def _for_backend(mapping: Mapping, object_type: RuleObject, item: UpsertInput) -> UpsertInput:
    """A rule's task or note under the backend's property names, found by its external id as the backend spells
    that (renamed, and suffixed where the mapping says so)."""
    id_property = mapping.rule_property(object_type, item.id_property)
    properties = mapping.for_rules(object_type, item.properties)
    if id_property is None or id_property not in properties:  # refused at load by check_rule_properties
        from crmsync.mapping import MappingError

        raise MappingError(f"{mapping.source}: rule_properties.{object_type}.{item.id_property} must name a field")
    return UpsertInput(id_property, properties[id_property], properties)


def _upsert_contact(plan: EventPlan, properties: dict[str, str], deps: AutomationDeps) -> str | None:
    """The customer's contact, found the way the CRM writer finds it (the mapped view, the mapping's match policy),
    with the rule's properties; None when the policy finds no contact to update (update_only)."""
    assert plan.contact is not None
    mapping = deps.reader.mapping.contacts
    mapped = {**mapping.apply(plan.contact), **properties}
    for id_property in (mapping.id_property, mapping.fallback_id_property):
        if id_property and mapped.get(id_property):
            inputs = [UpsertInput(id_property, mapped[id_property], mapped)]
            [result] = deps.crm.upsert("contacts", inputs, policy=mapping.match_policy)
            return result.id or None
    return None


def _upsert_deal(plan: EventPlan, properties: dict[str, str], deps: AutomationDeps) -> str | None:
    """The entity's deal with the rule's properties, as the mapping's match policy allows (None: no deal to update)."""
    assert plan.deal is not None
    mapping = deps.reader.mapping.deals
    inputs = [UpsertInput(mapping.id_property, plan.deal[1], {**properties, mapping.id_property: plan.deal[1]})]
    [result] = deps.crm.upsert("deals", inputs, policy=mapping.match_policy)
    return result.id or None


def _detail(plan: EventPlan, decision: DecisionPlan, data: dict[str, Any]) -> str:
    event = plan.event
    detail = DomainEvent(
        entity=event.entity, key=event.key, customer_id=plan.customer_id, source=event.source,
        source_id=event.source_id, source_version=event.source_version, receipt_id=event.receipt_id,
        correlation_id=event.correlation_id,
        data={"rule_id": decision.rule_id, "rule_version": decision.rule_version, **data},
    )  # fmt: skip
    return detail.model_dump_json()


def _risk_event(plan: EventPlan, decision: DecisionPlan, action: PlannedAction) -> str:
    return _detail(plan, decision, {"reason": action.properties["crmsync_risk_reason"], **plan.risk.as_json()})


def _record_lineage(plan: EventPlan, deps: AutomationDeps) -> None:
    """The decisions on the entity's own history, and on the contact's and deal's when actions touched them."""
    event = plan.event
    at = datetime.fromtimestamp(epoch_ms(event.source_version) / 1000, UTC).isoformat()  # as crmsync.convert
    entry = {
        "step": "rule",
        "receipt_id": event.receipt_id,
        "detail_type": plan.detail_type,
        "key": event.key,
        "rule_set": deps.rules.name,
        "rule_set_version": deps.rules.version,
        "risk": plan.risk.as_json(),
        "decisions": [d.as_json() for d in plan.decisions],
    }
    own = plan.entity_pk
    if own:
        deps.reader.state.record_lineage(own, at, event.receipt_id, entry)
    applied = [a for d in plan.decisions if d.to_apply for a in d.actions if not a.skipped]
    touched = set()
    if plan.customer_id and plan.contact and any(a.target in ("contact", "task", "note") for a in applied):
        touched.add(f"CUSTOMER#{plan.customer_id}")
    if plan.deal and any(a.kind in ("set_deal", "flag_risk", "create_task", "add_note") for a in applied):
        touched.add(f"{plan.deal[0]}#{plan.deal[1]}")
    for pk in sorted(touched - {own}):
        # One entry per event on a record several events of one receipt may touch: the key keeps them apart.
        deps.reader.state.record_lineage(pk, at, f"{event.receipt_id}#{event.key}", entry)


def summarise(outcomes: Sequence[Outcome]) -> dict[str, tuple[int, int]]:
    """Per rule id: (events seen, actions carried out)."""
    totals: dict[str, tuple[int, int]] = {}
    for outcome in outcomes:
        for rule_id, seen in outcome.seen.items():
            events, actions = totals.get(rule_id, (0, 0))
            totals[rule_id] = (events + seen, actions + outcome.actions.get(rule_id, 0))
    return totals
