"""The CRM properties rule actions write, per object type, under the names rule files use (HubSpot's), and the check
that a mapping's `rule_properties` says where each of them goes in its backend.

Rule files are the same for every backend; the mapping file is per backend. So a backend whose names differ
(Salesforce: config/mappings/salesforce.yaml) lists, under `rule_properties`, each property the rules write and its
field there. The check runs where a rule set meets its mapping (the rules function's start, the dry run), so a rule
writing a property the mapping does not place fails there, naming the rule and the property, and never half-way
through its actions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from crmsync.rules.config import RuleFileError

if TYPE_CHECKING:
    from crmsync.mapping import Mapping
    from crmsync.mapping.fields import RuleObject
    from crmsync.rules.config import RuleSet

# What crmsync.rules.automation writes for each action, besides the properties set_contact / set_deal name.
EXTERNAL_ID = "crmsync_external_id"  # tasks and notes are found again by it
TASK_PROPERTIES = (
    "hs_task_subject",
    "hs_task_body",
    "hs_task_priority",
    "hs_task_status",
    "hs_timestamp",
    "crmsync_rule",
    EXTERNAL_ID,
)
TASK_OWNER = "hubspot_owner_id"  # only when the task names an owner
TASK_QUEUE = "hs_queue_membership_ids"  # only when the task names a queue
NOTE_PROPERTIES = ("hs_note_body", "hs_timestamp", "crmsync_rule", EXTERNAL_ID)
RISK_PROPERTIES = ("crmsync_risk_flag", "crmsync_risk_reason", "crmsync_risk_score")  # flag_risk: contact and deal
TAGS_PROPERTY = "crmsync_tags"  # add_tags: on the contact


def written(rules: RuleSet) -> dict[RuleObject, dict[str, str]]:
    """Object type -> property -> the id of the first rule writing it (every rule, enabled or not)."""
    out: dict[RuleObject, dict[str, str]] = {"contacts": {}, "deals": {}, "tasks": {}, "notes": {}}

    def add(object_type: RuleObject, names: tuple[str, ...] | list[str], rule_id: str) -> None:
        for name in names:
            out[object_type].setdefault(name, rule_id)

    for compiled in rules.rules:
        rule = compiled.rule
        for action in rule.then:
            if action.set_contact is not None:
                add("contacts", list(action.set_contact), rule.id)
            if action.set_deal is not None:
                add("deals", list(action.set_deal), rule.id)
            if action.add_tags is not None:
                add("contacts", (TAGS_PROPERTY,), rule.id)
            if action.flag_risk is not None:
                add("contacts", RISK_PROPERTIES, rule.id)
                add("deals", RISK_PROPERTIES, rule.id)
            if action.create_task is not None:
                task = action.create_task
                add("tasks", TASK_PROPERTIES, rule.id)
                add("tasks", [name for name, given in ((TASK_OWNER, task.owner), (TASK_QUEUE, task.queue)) if given],
                    rule.id)  # fmt: skip
            if action.add_note is not None:
                add("notes", NOTE_PROPERTIES, rule.id)
    return out


def check_rule_properties(rules: RuleSet, mapping: Mapping) -> None:
    """RuleFileError naming each rule and property the mapping's `rule_properties` does not place. A mapping without
    `rule_properties` takes the rule files' names as they are (HubSpot, the local CRM): nothing to check."""
    if mapping.rule_properties is None:
        return
    problems: list[tuple[str, str]] = []
    for object_type, properties in written(rules).items():
        table = mapping.rule_properties.of(object_type)
        for name, rule_id in properties.items():
            if name not in table:
                problems.append((rule_id, (
                    f"{object_type} property {name!r}: {mapping.source} has no rule_properties.{object_type}.{name} "
                    "(the field it goes to in this backend, or null to leave it out)")))  # fmt: skip
            elif name == EXTERNAL_ID and table[name].to is None:
                problems.append((rule_id, (
                    f"{mapping.source}: rule_properties.{object_type}.{EXTERNAL_ID} must name a field: a rule's "
                    f"{object_type} are found again by it")))  # fmt: skip
    if problems:
        raise RuleFileError(rules.name, problems)
