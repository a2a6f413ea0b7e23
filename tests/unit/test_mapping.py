"""Declarative mapping: the shipped default maps views to HubSpot's property names; bad files are refused
with the file name and what is wrong."""

from __future__ import annotations

import pytest

from crmsync.mapping import load_mapping
from crmsync.mapping.fields import Mapping, MappingError

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
