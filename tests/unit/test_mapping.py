"""Declarative mapping: the shipped default maps views to HubSpot's property names; transforms, constants, match
policies and rule property names load from YAML; bad files are refused as `file:line: field: reason`."""

from __future__ import annotations

import pytest

from crmsync.mapping import load_mapping
from crmsync.mapping.fields import CONFIG_DIR, Mapping, MappingError, parse_mapping_text

CONTACT_VIEW = {
    "id": "cus_1",
    "external_id": "crmsync:customer:cus_1",
    "email": "ada@example.com",
    "first_name": "Ada",
    "last_name": None,
    "phone": "+15024581234",
    "address": {"line1": "1 Main St", "city": "Louisville", "postal_code": "40204", "country": "US"},
}


def test_default_mapping_gives_hubspot_contact_properties():
    # Given the shipped default mapping and a customer view
    contacts = load_mapping().contacts
    # When applied
    props = contacts.apply(CONTACT_VIEW)
    # Then the HubSpot property names carry the values, and missing values are left out (never blanked)
    assert props == {
        "email": "ada@example.com",
        "firstname": "Ada",
        "phone": "+15024581234",
        "address": "1 Main St",
        "city": "Louisville",
        "zip": "40204",
        "country": "US",
        "crmsync_external_id": "crmsync:customer:cus_1",
    }
    assert (contacts.id_property, contacts.fallback_id_property) == ("email", "crmsync_external_id")


@pytest.mark.parametrize(
    ("status", "stage"),
    [("pending", "appointmentscheduled"), ("paid", "closedwon"), ("cancelled", "closedlost"), ("weird", None)],
)
def test_deal_stage_is_translated_by_table_and_unknown_values_are_left_out(status, stage):
    props = load_mapping().deals.apply({"status": status})
    assert props.get("dealstage") == stage


def test_a_user_mapping_file_is_loaded_by_name(tmp_path):
    # Given a user's mapping file with a custom property
    (tmp_path / "mine.yaml").write_text(
        "contacts:\n  id_property: email\n  properties:\n    email: email\n    shoe_size: custom.shoe\n"
        "deals:\n  id_property: crmsync_external_id\n  properties:\n    crmsync_external_id: external_id\n"
    )
    # When loaded, Then the custom path maps
    mapping = load_mapping("mine", tmp_path)
    assert mapping.contacts.apply({"email": "a@b.c", "custom": {"shoe": 42}}) == {"email": "a@b.c", "shoe_size": "42"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("contacts: [1, 2]\n", "mine.yaml:"),
        ("contacts:\n  id_property: email\n  properties: {}\n", "deals"),
        (
            "contacts:\n  id_property: email\n  properties:\n    email: {paht: email}\n"
            "deals:\n  id_property: x\n  properties: {}\n",
            "paht",
        ),
        ("contacts: {\n", "not valid YAML"),
        ("- just a list\n", "expected a mapping"),
    ],
    ids=["wrong-type", "missing-deals", "typo-in-rule", "broken-yaml", "not-a-mapping"],
)
def test_a_wrong_mapping_file_is_refused_with_file_and_reason(tmp_path, text, message):
    (tmp_path / "mine.yaml").write_text(text)
    with pytest.raises(MappingError, match=message) as info:
        load_mapping.__wrapped__("mine", tmp_path)
    assert "mine.yaml" in str(info.value)


def test_missing_file_and_bad_names_are_refused(tmp_path):
    with pytest.raises(MappingError, match="no such mapping file"):
        load_mapping.__wrapped__("absent", tmp_path)
    with pytest.raises(MappingError, match="must be lower-case"):
        load_mapping.__wrapped__("../etc/passwd", tmp_path)


def test_shipped_mapping_parses_to_the_model():
    assert isinstance(load_mapping(), Mapping)


# --- transforms, constants, match policy ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("rule", "view", "expected"),
    [
        ({"path": "email", "transform": "upper"}, {"email": "ada@example.com"}, "ADA@EXAMPLE.COM"),
        ({"path": "at", "transform": "date"}, {"at": "2026-03-01T23:30:00-05:00"}, "2026-03-02"),
        ({"path": "at", "transform": "epoch_ms"}, {"at": "2026-03-02"}, "1772409600000"),
        ({"path": "at", "transform": "date"}, {"at": "not a date"}, None),
        ({"path": "status", "transform": "lower", "values": {"paid": "closedwon"}}, {"status": "PAID"}, "closedwon"),
        ({"value": "crmsync"}, {}, "crmsync"),
    ],
    ids=["upper", "date-utc", "epoch-ms-of-a-date", "unparseable-left-out", "transform-then-table", "constant"],
)
def test_a_property_may_be_transformed_translated_or_constant(tmp_path, rule, view, expected):
    # Given a mapping whose contacts carry one property with a transform, a table or a constant
    mapping = Mapping.parse(
        {"contacts": {"id_property": "email", "properties": {"email": "email", "x": rule}},
         "deals": {"id_property": "id", "properties": {"id": "external_id"}}},
        source="mine.yaml",
    )  # fmt: skip
    # When applied to a view, Then the property holds the transformed value (or is left out)
    assert mapping.contacts.apply(view).get("x") == expected


def test_match_policy_is_upsert_unless_the_file_says_otherwise():
    # Given the shipped files (which spell it out) and a file that says create_only for deals only
    text = MAPPING.replace("deals:\n", "deals:\n  match_policy: create_only\n")
    mapping = parse_mapping_text(text, source="mine.yaml")
    # Then every object upserts, except where the file chose another policy
    assert [m.match_policy for m in (load_mapping().contacts, load_mapping().deals)] == ["upsert", "upsert"]
    assert (mapping.contacts.match_policy, mapping.deals.match_policy) == ("upsert", "create_only")


# --- errors name the file, the line and the field ----------------------------------------------------------------
MAPPING = """\
contacts:
  match_policy: upsert
  id_property: email
  properties:
    email: email
    firstname: first_name
deals:
  id_property: crmsync_external_id
  properties:
    crmsync_external_id: external_id
    dealstage: {path: status, values: {paid: closedwon}}
templates:
  refund: "Refund {source_id}: {amount} {currency}"
"""


@pytest.fixture
def mapping_file(tmp_path):
    """Write MAPPING with one line replaced as mine.yaml; returns (the file's path, the error loading it gives)."""

    def write(old: str, new: str) -> tuple[str, MappingError]:
        assert old in MAPPING
        path = tmp_path / "mine.yaml"
        path.write_text(MAPPING.replace(old, new, 1))
        with pytest.raises(MappingError) as refused:
            load_mapping.__wrapped__("mine", tmp_path)
        return str(path), refused.value

    return write


FIRSTNAME = "    firstname: first_name"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (FIRSTNAME, "    firstname: {path: first_name, transform: shout}",
         "6: contacts.properties.firstname.transform: unknown transform 'shout'; known: lower, upper, trim, date,"),
        (FIRSTNAME, "    first name: first_name",
         "6: contacts.properties.first name: bad property name 'first name': letters, digits and _ only"),
        (FIRSTNAME, "    firstname: first name",
         "6: contacts.properties.firstname: bad path 'first name'"),
        ("{source_id}", "{refund_id}", "13: templates.refund: unknown template field {refund_id}; known: amount,"),
        ("{source_id}", "{order.id}", "13: templates.refund: bad template field {order.id}: plain field names only"),
        ("  refund:", "  refnd:", "13: templates.refnd: unknown key 'refnd'; expected one of: refund, dispute"),
        ("  id_property: email", "  id_property: [email]", "3: contacts.id_property: Input should be a valid string"),
        (FIRSTNAME, "    firstname: [first_name]", "6: contacts.properties.firstname: Input should be a valid dict"),
        ("deals:", "deal:", "7: deal: unknown object 'deal'; known: contacts, deals, notes, templates, rule_"),
        ("  match_policy: upsert", "  match_policy: upsert_or_not",
         "2: contacts.match_policy: unknown match_policy 'upsert_or_not'; one of upsert, create_only, update_only"),
        (FIRSTNAME, "    firstname: {paht: first_name}",
         "6: contacts.properties.firstname.paht: unknown key 'paht'; expected one of: path, value, transform, values"),
        ("  id_property: email", "  id_property: emial",
         "3: contacts.id_property: 'emial' is not one of this object's properties"),
        (FIRSTNAME, "    firstname: {path: first_name, value: Ada}",
         "6: contacts.properties.firstname: give exactly one of path (a field of the view) or value (a constant)"),
    ],
    ids=["unknown-transform", "bad-property-name", "bad-path", "unknown-template-field", "bad-template-field",
         "unknown-template", "wrong-type", "wrong-type-of-rule", "unknown-object", "bad-policy", "unknown-key",
         "id-property-not-mapped", "path-and-constant"],
)  # fmt: skip
def test_each_kind_of_mistake_is_named_by_file_line_and_field(mapping_file, old, new, expected):
    # Given a mapping file with one mistake, When it is loaded
    path, error = mapping_file(old, new)
    # Then it is named as `path:line: field: reason`, on the line of the mistake, one problem a line
    assert any(str(problem).startswith(f"{path}:{expected}") for problem in error.problems)
    assert f"\n{path}:{expected}" in f"\n{error}"


def test_every_problem_of_a_file_is_reported_at_once_in_line_order(mapping_file):
    # Given a file with two mistakes: an unknown object key on line 7 and a bad policy on line 2
    path, _ = mapping_file("deals:", "deal:")
    text = MAPPING.replace("deals:", "deal:").replace("  match_policy: upsert", "  match_policy: sometimes")
    with pytest.raises(MappingError) as refused:
        parse_mapping_text(text, source=path)
    # Then both are named, each on its line, in line order (and the missing deals too)
    lines = str(refused.value).splitlines()
    assert [line.split(": ", 2)[:2] for line in lines] == [
        [f"{path}:1", "deals"], [f"{path}:2", "contacts.match_policy"], [f"{path}:7", "deal"],
    ]  # fmt: skip


def test_broken_yaml_names_the_line_the_parser_stopped_at(tmp_path):
    # Given a file whose flow mapping is never closed on line 6
    (tmp_path / "mine.yaml").write_text(MAPPING.replace(FIRSTNAME, "    firstname: {path: first_name"))
    # When loaded, Then the parser's line and problem are named
    with pytest.raises(MappingError, match=r"mine\.yaml:\d+: not valid YAML \(") as refused:
        load_mapping.__wrapped__("mine", tmp_path)
    assert refused.value.problems[0].line is not None


# --- rule property names per backend -------------------------------------------------------------------------------
def test_rule_properties_rename_and_translate_what_rules_set():
    # Given the shipped Salesforce mapping
    mapping = load_mapping("salesforce")
    # When a rule's deal and task properties (HubSpot names, as rule files write them) are put in its terms
    deal = mapping.for_rules("deals", {"dealstage": "closedlost", "crmsync_refund_status": "refunded"})
    task = mapping.for_rules("tasks", {"hs_task_priority": "HIGH", "hs_queue_membership_ids": "risk"})
    note = mapping.for_rules("notes", {"crmsync_external_id": "high-risk:shopify:order:1", "crmsync_rule": "x@v1"})
    # Then they carry Salesforce field names and values; a property mapped to null is left out
    assert deal == {"StageName": "Closed Lost", "Crmsync_Refund_Status__c": "refunded"}
    assert task == {"Priority": "High"}
    # And a note's external id is suffixed, as its rule's task has the same one and both are Tasks there
    assert note == {"Crmsync_External_Id__c": "high-risk:shopify:order:1:note"}
    # And a mapping without rule_properties (HubSpot's names already) leaves them as they are
    assert load_mapping().for_rules("contacts", {"lifecyclestage": "customer"}) == {"lifecyclestage": "customer"}


def test_a_property_rule_properties_does_not_list_is_refused_by_name():
    with pytest.raises(MappingError, match=r"salesforce\.yaml: rule_properties\.contacts has no 'shoe_size'"):
        load_mapping("salesforce").for_rules("contacts", {"shoe_size": "42"})


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        (
            "  companies: {name: Name}\n",
            "15: rule_properties.companies: unknown key 'companies'; expected one of: contacts, deals, tasks, notes",
        ),
        (
            "  contacts:\n    lifecyclestage: Lifecycle Stage\n",
            "16: rule_properties.contacts.lifecyclestage: bad property name 'Lifecycle Stage'",
        ),
        (
            "  contacts:\n    LifecycleStage: X__c\n",
            "16: rule_properties.contacts.LifecycleStage: bad rule property name 'LifecycleStage'",
        ),
        (
            "  deals:\n    dealstage: {to: StageName, values: [closedwon]}\n",
            "16: rule_properties.deals.dealstage.values: Input should be a valid dictionary",
        ),
    ],
    ids=["unknown-object", "bad-target-name", "bad-rule-name", "wrong-type"],
)
def test_rule_properties_mistakes_are_named_by_line_and_field(tmp_path, section, expected):
    (tmp_path / "mine.yaml").write_text(MAPPING + "rule_properties:\n" + section)
    with pytest.raises(MappingError) as refused:
        load_mapping.__wrapped__("mine", tmp_path)
    assert str(refused.value).startswith(f"{tmp_path / 'mine.yaml'}:{expected}")


# --- opt-in sections: line_items and companies ---------------------------------------------------------------------
SECTION = (
    "{}:\n  id_property: crmsync_external_id\n  properties:\n    name: name\n    crmsync_external_id: external_id\n"
)
LINE_ITEMS, COMPANIES = SECTION.format("line_items"), SECTION.format("companies")


def test_the_shipped_mappings_have_no_line_items_or_companies_so_nothing_more_is_written():
    for name in ("default", "salesforce"):
        mapping = load_mapping(name)
        assert (mapping.line_items, mapping.companies) == (None, None)


def test_line_items_and_companies_sections_map_their_views_as_any_object_does(tmp_path):
    # Given a mapping with both sections, When it is loaded (for HubSpot)
    mapping = parse_mapping_text(MAPPING + LINE_ITEMS + COMPANIES, source="mine.yaml", backend="hubspot")
    # Then each maps its view by the same rules
    assert mapping.line_items is not None
    assert mapping.companies is not None
    assert mapping.line_items.apply({"name": "Lamp", "external_id": "shopify:order:1:line:9"}) == {
        "name": "Lamp", "crmsync_external_id": "shopify:order:1:line:9",
    }  # fmt: skip
    assert mapping.companies.id_property == "crmsync_external_id"


@pytest.mark.parametrize(
    ("section", "old", "new", "expected"),
    [
        (LINE_ITEMS, "    name: name", "    name: {path: name, transform: shout}",
         "line_items.properties.name.transform: unknown transform 'shout'"),
        (LINE_ITEMS, "  id_property: crmsync_external_id", "  id_property: hs_sku",
         "line_items.id_property: 'hs_sku' is not one of this object's properties"),
        (COMPANIES, "    name: name", "    name: {paht: name}",
         "companies.properties.name.paht: unknown key 'paht'; expected one of: path, value, transform, values"),
        (COMPANIES, "  id_property: crmsync_external_id\n", "",
         "companies.id_property: Field required"),
    ],
    ids=["line-items-transform", "line-items-id-property", "companies-unknown-key", "companies-no-id-property"],
)  # fmt: skip
def test_mistakes_in_the_new_sections_are_named_by_file_line_and_field(section, old, new, expected):
    # Given a mapping file whose line_items or companies section has one mistake
    text = MAPPING + section.replace(old, new, 1)
    wrong = next((n for n, line in enumerate(text.splitlines(), 1) if new and line == new), None)
    # When it is loaded, Then the problem names the file, the line and the field
    with pytest.raises(MappingError) as refused:
        parse_mapping_text(text, source="mine.yaml")
    [problem] = refused.value.problems
    line = wrong if wrong is not None else len(MAPPING.splitlines()) + 1  # the section's own line
    assert str(problem).startswith(f"mine.yaml:{line}: {expected}")


def test_a_line_items_section_in_a_salesforce_mapping_is_refused_at_load_saying_why(tmp_path):
    # Given the shipped Salesforce mapping with a line_items section added
    shipped = (CONFIG_DIR / "salesforce.yaml").read_text()
    (tmp_path / "sf.yaml").write_text(shipped + "\n" + LINE_ITEMS.replace("crmsync_external_id", "Crmsync_Id__c"))
    line = len(shipped.splitlines()) + 2
    # When it is loaded for CRM_BACKEND=salesforce
    with pytest.raises(MappingError) as refused:
        load_mapping.__wrapped__("sf", tmp_path, backend="salesforce")
    # Then the load fails on the section's line, saying why (Product2 and PricebookEntry), and nothing else is wrong
    [problem] = refused.value.problems
    assert str(problem).startswith(f"{tmp_path / 'sf.yaml'}:{line}: line_items: Salesforce line items are ")
    assert "Product2" in problem.reason
    assert "PricebookEntry" in problem.reason
    # And the same file loads for HubSpot (or with no backend named), and a companies section is fine for Salesforce
    assert load_mapping.__wrapped__("sf", tmp_path, backend="hubspot").line_items is not None
    sf_companies = shipped + "\n" + COMPANIES.replace("crmsync_external_id", "Crmsync_External_Id__c")
    (tmp_path / "sfc.yaml").write_text(sf_companies)
    assert load_mapping.__wrapped__("sfc", tmp_path, backend="salesforce").companies is not None
