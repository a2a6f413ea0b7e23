"""local/hubspot_fake.py without sockets: it validates requests against the OpenAPI specs, enforces HubSpot's limit
with HubSpot's 429 shape, and behaves as the portal the HubSpot adapter writes to; plus the setup command and the
backend choice."""

from __future__ import annotations

import json

import pytest

from crmsync.crm.backends import crm_for, hubspot_token
from crmsync.crm.errors import CrmNotConfigured, CrmRejected
from crmsync.crm.hubspot import HubSpotCrm
from crmsync.crm.hubspot_setup import REQUIRED, required_properties, setup
from crmsync.crm.local import LocalCrm
from crmsync.crm.port import Association, UpsertInput
from crmsync.mapping import load_mapping
from crmsync.settings import Settings
from local.hubspot_fake import FakeHubSpot
from tests.unit.hubspot_doubles import FakeHubSpotTransport, ManualClock, hubspot

AUTH = {"Authorization": "Bearer t"}


def post(fake: FakeHubSpot, path: str, body: object, headers: dict[str, str] | None = None):
    return fake.handle("POST", path, AUTH if headers is None else headers, json.dumps(body).encode())


def by_email(email: str, **properties: str) -> UpsertInput:
    return UpsertInput("email", email, {"email": email, **properties})


def by_external_id(external_id: str, **properties: str) -> UpsertInput:
    return UpsertInput("crmsync_external_id", external_id, {"crmsync_external_id": external_id, **properties})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def fake(clock) -> FakeHubSpot:
    return FakeHubSpot(clock=clock)


@pytest.fixture
def portal(fake, clock) -> HubSpotCrm:
    """HubSpotCrm on the fake portal, set up as `make hubspot-setup` would."""
    crm = hubspot(FakeHubSpotTransport(fake), clock)
    setup(crm, required_properties(load_mapping("default")))
    return crm


# --- the fake -----------------------------------------------------------------------------------------------------
def test_fake_answers_a_request_the_spec_rejects_with_400_and_the_reason(fake):
    # Given an upsert input without its required `id`
    answer = post(fake, "/crm/v3/objects/0-3/batch/upsert", {"inputs": [{"idProperty": "email", "properties": {}}]})
    # Then 400 VALIDATION_ERROR in HubSpot's Error shape, naming what the spec requires
    assert answer.status == 400
    assert answer.body["category"] == "VALIDATION_ERROR"
    assert "'id' is a required property" in answer.body["message"]
    assert {"correlationId", "message", "category"} <= set(answer.body)


def test_fake_wants_a_bearer_token(fake):
    answer = post(fake, "/crm/v3/objects/contacts/batch/upsert", {"inputs": []}, headers={})
    assert (answer.status, answer.body["category"]) == (401, "INVALID_AUTHENTICATION")


def test_fake_enforces_100_requests_per_rolling_10_seconds_with_hubspots_429(fake, clock):
    # Given 100 requests within one second
    for _ in range(100):
        assert fake.handle("GET", "/crm/v3/properties/deals", AUTH, None).status == 200
        clock.now += 0.01
    # When the 101st comes, Then it is refused with HubSpot's documented body and headers
    answer = fake.handle("GET", "/crm/v3/properties/deals", AUTH, None)
    assert answer.status == 429
    assert answer.body["policyName"] == "TEN_SECONDLY_ROLLING"
    assert (answer.body["status"], answer.body["errorType"]) == ("error", "RATE_LIMIT")
    assert {"correlationId", "requestId", "message"} <= set(answer.body)
    assert answer.headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert answer.headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    # And once the oldest request is 10 s old, one more goes through (a rolling window)
    clock.now += 9.01
    assert fake.handle("GET", "/crm/v3/properties/deals", AUTH, None).status == 200


def test_fake_daily_limit_answers_429_daily(clock):
    fake = FakeHubSpot(clock=clock, daily_limit=2)
    assert [fake.handle("GET", "/crm/v3/properties/deals", AUTH, None).status for _ in range(2)] == [200, 200]
    answer = fake.handle("GET", "/crm/v3/properties/deals", AUTH, None)
    assert (answer.status, answer.body["policyName"]) == (429, "DAILY")


def test_fake_refuses_properties_the_portal_does_not_have(fake):
    # Given a fresh portal (no crmsync properties yet)
    inputs = [{"idProperty": "email", "id": "a@x.com", "properties": {"crmsync_external_id": "c:1"}}]
    # When a contact carrying crmsync_external_id is upserted, Then 400 PROPERTY_DOESNT_EXIST, as HubSpot
    answer = post(fake, "/crm/v3/objects/contacts/batch/upsert", {"inputs": inputs})
    assert answer.status == 400
    assert "PROPERTY_DOESNT_EXIST" in answer.body["message"]


def test_fake_refuses_an_id_property_that_is_not_unique_and_a_batch_naming_one_id_twice(fake):
    two = [{"idProperty": "email", "id": "a@x.com", "properties": {}}] * 2
    assert "Duplicate IDs" in post(fake, "/crm/v3/objects/contacts/batch/upsert", {"inputs": two}).body["message"]
    by_name = [{"idProperty": "dealname", "id": "x", "properties": {}}]
    assert post(fake, "/crm/v3/objects/deals/batch/upsert", {"inputs": by_name}).status == 400
    many = [{"idProperty": "email", "id": f"{n}@x.com", "properties": {}} for n in range(101)]
    assert "cannot exceed 100" in post(fake, "/crm/v3/objects/contacts/batch/upsert", {"inputs": many}).body["message"]


# --- HubSpotCrm on the fake portal --------------------------------------------------------------------------------
def test_contacts_deals_notes_and_associations_land_in_the_fake_portal(portal, fake):
    # When contacts and deals are upserted, associated, and a note is created on the deal
    [ada] = portal.upsert("contacts", [by_email("ada@example.com", firstname="Ada")])
    [order] = portal.upsert("deals", [by_external_id("shopify:order:1", amount="225.40")])
    portal.associate("deals", "contacts", [Association(order.id, ada.id)])
    note = by_external_id("n:1", hs_note_body="Refund", hs_timestamp="2026-11-20T10:00:00Z")
    [refund] = portal.upsert("notes", [note])
    portal.associate("notes", "deals", [Association(refund.id, order.id)])
    # Then the portal holds them, linked both ways
    state = fake.state()
    assert state["records"]["contacts"][ada.id]["firstname"] == "Ada"
    assert state["records"]["deals"][order.id]["amount"] == "225.40"
    assert state["records"]["notes"][refund.id]["hs_note_body"] == "Refund"
    assert state["associations"]["deals"][order.id] == {"contacts": [ada.id], "notes": [refund.id]}
    # And writing everything again creates nothing new
    again = portal.upsert("contacts", [UpsertInput("email", "ADA@example.com", {"lastname": "Lovelace"})])
    assert (again[0].id, again[0].created) == (ada.id, False)
    assert (
        portal.upsert("notes", [UpsertInput("crmsync_external_id", "n:1", {"hs_note_body": "Refund, done"})])[0].id
        == refund.id
    )
    state = fake.state()
    assert (len(state["records"]["contacts"]), len(state["records"]["notes"])) == (1, 1)
    assert state["records"]["notes"][refund.id]["hs_note_body"] == "Refund, done"


def test_a_207_from_the_fake_fails_only_the_rejected_record(portal, fake):
    fake.inject(reject=[{"type": "deals", "id": "shopify:order:2", "message": "stage not in pipeline"}])
    inputs = [by_external_id(f"shopify:order:{n}") for n in (1, 2, 3)]
    with pytest.raises(CrmRejected) as caught:
        portal.upsert("deals", inputs)
    assert [(e.key, e.message) for e in caught.value.errors] == [("shopify:order:2", "stage not in pipeline")]
    assert len(fake.state()["records"]["deals"]) == 2


def test_merge_in_the_fake_moves_associations_to_the_primary(portal, fake):
    a, b = portal.upsert(
        "contacts", [UpsertInput("email", "a@x.com", {}), UpsertInput("email", "b@x.com", {"phone": "1"})]
    )
    [order] = portal.upsert("deals", [UpsertInput("crmsync_external_id", "d:1", {"crmsync_external_id": "d:1"})])
    portal.associate("deals", "contacts", [Association(order.id, b.id)])
    portal.merge("contacts", a.id, b.id)
    portal.merge("contacts", a.id, b.id)  # again: already gone, a no-op
    state = fake.state()
    assert list(state["records"]["contacts"]) == [a.id]
    assert state["records"]["contacts"][a.id]["phone"] == "1"
    assert state["associations"]["deals"][order.id] == {"contacts": [a.id]}


# --- the setup command --------------------------------------------------------------------------------------------
def test_setup_creates_the_missing_properties_once(fake, clock):
    # Given a fresh portal
    crm = hubspot(FakeHubSpotTransport(fake), clock)
    # When the setup runs twice
    first = setup(crm, required_properties())
    second = setup(crm, required_properties())
    # Then the first run created every property crmsync needs, unique where it must be, and the second none
    assert sorted(first.created) == sorted(f"{p.object_type}.{p.name}" for p in REQUIRED)
    assert (second.created, second.problems) == ([], [])
    assert sorted(second.existing) == sorted(first.created)
    assert fake.properties["deals"]["crmsync_external_id"]["hasUniqueValue"] is True
    assert fake.properties["deals"]["crmsync_refunded_amount"]["type"] == "number"
    # And one GET plus one batch create per object type on the first run, one GET per type on the second
    calls = [(e["method"], e["path"]) for e in fake.log]
    assert calls.count(("POST", "/crm/v3/properties/deals/batch/create")) == 1
    assert len(calls) == 6


def test_setup_reports_a_property_that_exists_without_uniqueness(fake, clock):
    crm = hubspot(FakeHubSpotTransport(fake), clock)
    crm.request("POST", "/crm/v3/properties/deals", {"name": "crmsync_external_id", "label": "x", "type": "string",
                                                     "fieldType": "text", "groupName": "dealinformation"})  # fmt: skip
    report = setup(crm, required_properties())
    assert any("deals.crmsync_external_id exists but is not unique" in p for p in report.problems)


def test_setup_dry_run_creates_nothing(fake, clock):
    report = setup(hubspot(FakeHubSpotTransport(fake), clock), required_properties(), dry_run=True)
    assert report.created
    assert all(name.endswith("(dry run)") for name in report.created)
    assert "crmsync_external_id" not in fake.properties["deals"]


def test_setup_also_creates_crmsync_properties_a_mapping_adds():
    mapping = load_mapping("default")
    properties = {**mapping.deals.properties, "crmsync_source": mapping.deals.properties["dealname"]}
    extra = mapping.deals.model_copy(update={"properties": properties})
    names = [(p.object_type, p.name) for p in required_properties(mapping.model_copy(update={"deals": extra}))]
    assert ("deals", "crmsync_source") in names


def test_setup_creates_unique_external_ids_on_line_items_and_companies_only_when_they_are_mapped(fake, clock):
    # Given the shipped mapping, and the same with line_items and companies sections
    shipped = load_mapping("default")
    section = shipped.deals.model_copy(
        update={"properties": {"name": shipped.deals.properties["dealname"],
                               "crmsync_external_id": shipped.deals.properties["crmsync_external_id"]}}
    )  # fmt: skip
    mapped = shipped.model_copy(update={"line_items": section, "companies": section})
    # Then the shipped mapping wants nothing on either object
    assert {p.object_type for p in required_properties(shipped)} == {"contacts", "deals"}
    # When the setup runs for the mapping with the sections
    report = setup(hubspot(FakeHubSpotTransport(fake), clock), required_properties(mapped))
    # Then crmsync_external_id is created, unique, on line items and companies, in their HubSpot property groups
    assert {"line_items.crmsync_external_id", "companies.crmsync_external_id"} <= set(report.created)
    assert report.problems == []
    for object_type, group in (("line_items", "lineiteminformation"), ("companies", "companyinformation")):
        created = fake.properties[object_type]["crmsync_external_id"]
        assert (created["hasUniqueValue"], created["groupName"]) == (True, group)


# --- choosing the backend -----------------------------------------------------------------------------------------
def test_crm_backend_chooses_the_adapter():
    assert isinstance(crm_for(Settings(crm_backend="local", crm_local_table="t")), LocalCrm)
    chosen = crm_for(Settings(crm_backend="hubspot", state_table="s", hubspot_access_token="pat-1",
                              hubspot_base_url="http://127.0.0.1:9", hubspot_rate_limit=190))  # fmt: skip
    assert isinstance(chosen, HubSpotCrm)
    assert (chosen.token, chosen.base_url, chosen.budget.limit) == ("pat-1", "http://127.0.0.1:9", 190)  # type: ignore[attr-defined]


@pytest.mark.parametrize("token", ["", "unset", "  "])
def test_hubspot_without_a_token_is_not_configured(token):
    with pytest.raises(CrmNotConfigured, match="HUBSPOT_ACCESS_TOKEN"):
        hubspot_token(Settings(crm_backend="hubspot", state_table="s", hubspot_access_token=token))


def test_hubspot_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("CRM_BACKEND", "hubspot")
    monkeypatch.setenv("HUBSPOT_BASE_URL", "http://127.0.0.1:8765")
    monkeypatch.setenv("HUBSPOT_RATE_LIMIT", "190")
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-x")
    settings = Settings.from_env()
    assert (settings.crm_backend, settings.hubspot_base_url, settings.hubspot_rate_limit) == (
        "hubspot", "http://127.0.0.1:8765", 190,
    )  # fmt: skip
    assert "pat-x" not in repr(settings)
