"""Rule files name CRM properties the HubSpot way; a backend's mapping that renames them (`rule_properties`) must place
every property its rules write, checked when rules and mapping meet, naming the rule and the property."""

from __future__ import annotations

import pytest

from crmsync.mapping import load_mapping
from crmsync.mapping.fields import CONFIG_DIR
from crmsync.rules.automation import RISK_PROPERTIES
from crmsync.rules.config import RuleFileError, load_rules, parse_rules_text
from crmsync.rules.properties import RISK_PROPERTIES as CHECKED_RISK_PROPERTIES
from crmsync.rules.properties import check_rule_properties, written

RULES = """\
rules:
  - id: shoe-size
    version: 1
    when: [order.paid]
    then:
      - set_contact: {shoe_size: "42"}
  - id: owner-task
    version: 1
    when: [payment.failed]
    then:
      - create_task: {subject: "Call", owner: "0051t000000AAAA"}
"""


@pytest.fixture
def salesforce():
    return load_mapping("salesforce")


@pytest.mark.parametrize("mapping", ["default", "salesforce"])
def test_the_shipped_rules_fit_each_shipped_mapping(mapping):
    # Given the shipped rules, When checked against each shipped mapping, Then nothing is missing
    check_rule_properties(load_rules("default"), load_mapping(mapping))


def test_what_a_rule_set_writes_per_object_type():
    # Given a rule setting a contact property and one creating a task with an owner
    found = written(parse_rules_text(RULES))
    # Then the contact property, and the task's own properties with the owner, are listed with the rule writing them
    assert found["contacts"] == {"shoe_size": "shoe-size"}
    assert found["tasks"]["hubspot_owner_id"] == "owner-task"
    assert "hs_queue_membership_ids" not in found["tasks"]  # no queue named
    assert found["deals"] == found["notes"] == {}
    # And flag_risk's properties are the ones automation writes
    assert CHECKED_RISK_PROPERTIES == RISK_PROPERTIES


def test_a_property_the_salesforce_mapping_does_not_place_fails_at_load_naming_rule_and_property(salesforce):
    # Given a rule setting shoe_size, which config/mappings/salesforce.yaml does not list
    rules = parse_rules_text(RULES, source="mine.yaml")
    # When checked against the Salesforce mapping, Then it fails, naming the file, the rule and the property
    with pytest.raises(RuleFileError) as refused:
        check_rule_properties(rules, salesforce)
    assert str(refused.value).startswith("mine.yaml: rule shoe-size: contacts property 'shoe_size': ")
    assert "has no rule_properties.contacts.shoe_size" in str(refused.value)
    # And the task's owner is placed (OwnerId), so only shoe_size is named
    assert [rule_id for rule_id, _ in refused.value.problems] == ["shoe-size"]


def test_a_mapping_without_rule_properties_takes_any_name(salesforce):
    # Given the HubSpot mapping (no rule_properties: rule files already speak its names), Then anything goes
    check_rule_properties(parse_rules_text(RULES), load_mapping("default"))


def test_tasks_and_notes_need_a_field_for_their_external_id(tmp_path):
    # Given a Salesforce mapping that leaves the tasks' crmsync_external_id out
    shipped = (CONFIG_DIR / "salesforce.yaml").read_text()
    placed = "    crmsync_external_id: Crmsync_External_Id__c\n  notes:"
    assert placed in shipped
    (tmp_path / "sf.yaml").write_text(shipped.replace(placed, "    crmsync_external_id: null\n  notes:"))
    # When the rules creating tasks are checked against it, Then that is refused: tasks are found again by it
    with pytest.raises(RuleFileError, match=r"rule_properties\.tasks\.crmsync_external_id must name a field"):
        check_rule_properties(load_rules("default"), load_mapping.__wrapped__("sf", tmp_path))
