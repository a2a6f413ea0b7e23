"""Ground-truth checks of the fault suite and the soak (bench/soak.py): the CRM as the scenario says it must be."""

from __future__ import annotations

from typing import Any

from tests.fakes import FaultyCrm
from tests.faults import scenario
from tests.faults.harness import Pipeline


def contacts_by_person(crm: FaultyCrm, world: scenario.World) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {person.key: [] for person in world.people}
    for record in crm.records("contacts"):
        email, phone = record.properties.get("email"), record.properties.get("phone")
        key = email if email else f"phone:{phone}"
        found.setdefault(key, []).append(record)
    return found


def assert_contacts_are_the_people(world: scenario.World, pipeline: Pipeline) -> None:
    found = contacts_by_person(pipeline.crm, world)
    # No contact exists that is no person's, and no person has two
    assert set(found) == {person.key for person in world.people}
    assert {key: len(records) for key, records in found.items() if len(records) != 1} == {}
    for person in world.people:
        [record] = found[person.key]
        expected = {"firstname": person.first, "lastname": person.last, "phone": person.phone_e164}
        assert {k: record.properties.get(k) for k in expected} == expected, person.key
    assert pipeline.crm.duplicate_contacts_by_email() == {}


def assert_deals_are_the_truth(world: scenario.World, pipeline: Pipeline) -> None:
    crm = pipeline.crm
    deals: dict[str, list[Any]] = {}
    for record in crm.records("deals"):
        deals.setdefault(record.properties["crmsync_external_id"], []).append(record)
    assert {key: len(found) for key, found in deals.items() if len(found) != 1} == {}
    assert set(deals) == set(world.deals)
    contact_of = {key: records[0].id for key, records in contacts_by_person(crm, world).items() if records}
    wrong = {}
    for external_id, expected in world.deals.items():
        [deal] = deals[external_id]
        actual = (
            deal.properties.get("dealstage"),
            deal.properties.get("amount"),
            deal.properties.get("deal_currency_code"),
            sorted(deal.associations.get("contacts", [])),
        )
        person = [contact_of[expected.person]] if expected.person else []
        wanted = (expected.stage, expected.amount, expected.currency, person)
        if actual != wanted:
            wrong[external_id] = (actual, wanted)
    assert wrong == {}


def assert_crm_is_the_truth(world: scenario.World, pipeline: Pipeline) -> None:
    assert_contacts_are_the_people(world, pipeline)
    assert_deals_are_the_truth(world, pipeline)
