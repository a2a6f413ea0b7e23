"""Match policies (the mapping's `match_policy`: upsert, create_only, update_only) in the HubSpot and Salesforce
adapters: the documented calls they make (HubSpot's requests validated against its OpenAPI specs), how many per
batch, and what each leaves alone. LocalCrm and FaultyCrm: tests/integration/test_fakes_contract.py."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from crmsync.crm.errors import CrmRejected
from crmsync.crm.port import CREATE_ONLY_EXISTS, UPDATE_ONLY_MISSING, UpsertInput, UpsertResult
from crmsync.crm.salesforce import SalesforceRecordError
from crmsync.store.crm_ledger import LedgerEntry
from local.hubspot_fake import FakeHubSpot
from local.salesforce_fake import FakeSalesforce
from tests.unit.hubspot_doubles import (
    FakeHubSpotTransport,
    ManualClock,
    MemoryLedger,
    Sent,
    SpecCheckingTransport,
    batch,
    created,
    error,
    hubspot,
    record,
    standard_error,
    upserted,
)
from tests.unit.test_salesforce import EXT, UPSERT_CONTACTS, Script, adapter_on, contact, ok, on_fake, sfid

READ, CREATE, UPDATE = (f"/crm/v3/objects/contacts/batch/{op}" for op in ("read", "create", "update"))


def by_email(email: str, **properties: str) -> UpsertInput:
    return UpsertInput("email", email, {"email": email, **properties})


EXTERNAL_ID = "crmsync_external_id"


def deal(n: int) -> UpsertInput:
    return UpsertInput(EXTERNAL_ID, f"shopify:order:{n}", {EXTERNAL_ID: f"shopify:order:{n}"})


# --- HubSpot: the requests ------------------------------------------------------------------------------------------
def read_finding(held: dict[str, str], id_property: str = "email") -> Callable[[Sent], Any]:
    """A batch/read answer: the inputs `held` names (value -> record id) found, the others a 207's OBJECT_NOT_FOUND."""

    def answer(sent: Sent) -> Any:
        values = [i["id"] for i in sent.body["inputs"]]
        results = [record(held[v], {id_property: v}) for v in values if v in held]
        missing = [v for v in values if v not in held]
        not_found = "Could not get some CONTACT objects, they may be deleted or not exist."
        errors = [standard_error(not_found, category="OBJECT_NOT_FOUND", context={"ids": missing})] if missing else None
        return batch(results, errors, 207 if missing else 200)

    return answer


def updated(sent: Sent) -> Any:
    return batch([record(i["id"], i["properties"]) for i in sent.body["inputs"]])


def numbered(first: int) -> Callable[[Sent], Any]:
    """A batch/create answer giving ids first, first + 1, ... to the inputs."""

    def answer(sent: Sent) -> Any:
        return created([str(first + n) for n in range(len(sent.body["inputs"]))])(sent)

    return answer


def test_hubspot_create_only_reads_by_key_then_creates_only_the_missing_records():
    # Given a portal where ada@ has a contact (101) and grace@ has none
    transport = SpecCheckingTransport(read_finding({"ada@example.com": "101"}), created(["102"]))
    crm = hubspot(transport)
    # When both are written create_only
    results = crm.upsert(
        "contacts", [by_email("ada@example.com", firstname="Ada"), by_email("grace@example.com", firstname="Grace")],
        policy="create_only",
    )  # fmt: skip
    # Then two spec-valid requests: a batch/read by email, then a batch/create of grace@ alone, key included
    assert [(s.method, s.path) for s in transport.sent] == [("POST", READ), ("POST", CREATE)]
    assert transport.sent[0].body == {"idProperty": "email", "inputs": [{"id": "ada@example.com"},
                                      {"id": "grace@example.com"}], "properties": ["email"],
                                      "propertiesWithHistory": []}  # fmt: skip
    [created_input] = transport.sent[1].body["inputs"]
    assert created_input["properties"] == {"email": "grace@example.com", "firstname": "Grace"}
    # And ada@'s contact is left unchanged, with its id known
    assert results == [UpsertResult("101", False, CREATE_ONLY_EXISTS), UpsertResult("102", True)]


def test_hubspot_update_only_updates_found_records_by_id_and_skips_the_missing():
    # Given a portal where ada@ has a contact (101) and grace@ has none
    transport = SpecCheckingTransport(read_finding({"ada@example.com": "101"}), updated)
    crm = hubspot(transport)
    # When both are written update_only
    results = crm.upsert(
        "contacts", [by_email("ada@example.com", firstname="Ada"), by_email("grace@example.com", firstname="Grace")],
        policy="update_only",
    )  # fmt: skip
    # Then a batch/read, then a batch/update of record 101 by its id (the key it was found by is not resent)
    assert [s.path for s in transport.sent] == [READ, UPDATE]
    assert transport.sent[1].body == {"inputs": [{"id": "101", "properties": {"firstname": "Ada"}}]}
    # And grace@ is skipped: no contact made, not an error
    assert results == [UpsertResult("101", False), UpsertResult("", False, UPDATE_ONLY_MISSING)]


@pytest.mark.parametrize(
    ("policy", "held", "expected"),
    [
        ("create_only", {"ada@example.com": "101"}, [UpsertResult("101", False, CREATE_ONLY_EXISTS)]),
        ("update_only", {}, [UpsertResult("", False, UPDATE_ONLY_MISSING)]),
    ],
)
def test_hubspot_nothing_left_to_write_costs_the_read_alone(policy, held, expected):
    # Given records the policy leaves alone, When written, Then only the read is sent
    transport = SpecCheckingTransport(read_finding(held))
    assert hubspot(transport).upsert("contacts", [by_email("ada@example.com")], policy=policy) == expected
    assert [s.path for s in transport.sent] == [READ]


ALL_HELD = {f"shopify:order:{n}": str(5000 + n) for n in range(250)}


@pytest.mark.parametrize(
    ("policy", "steps", "calls"),
    [
        ("upsert", [upserted([str(n) for n in range(100)])] * 3, ["batch/upsert"] * 3),
        ("create_only", [read_finding({}, EXTERNAL_ID)] * 3 + [numbered(9000)] * 3,
         ["batch/read"] * 3 + ["batch/create"] * 3),
        ("update_only", [read_finding(ALL_HELD, EXTERNAL_ID)] * 3 + [updated] * 3,
         ["batch/read"] * 3 + ["batch/update"] * 3),
    ],
    ids=["upsert", "create_only-none-exist", "update_only-all-exist"],
)  # fmt: skip
def test_hubspot_calls_per_250_deals(policy, steps, calls):
    # Given 250 deals, none in the portal (create_only) or all of them (update_only)
    inputs = [deal(n) for n in range(250)]
    transport = SpecCheckingTransport(*steps)
    # When written with the policy
    results = hubspot(transport).upsert("deals", inputs, policy=policy)
    # Then the calls are ceil(250 / 100) = 3 for upsert, and 3 reads + 3 writes for the others (all spec-valid)
    assert [s.path.removeprefix("/crm/v3/objects/deals/") for s in transport.sent] == calls
    assert [len(s.body["inputs"]) for s in transport.sent][:3] == [100, 100, 50]
    assert all(r.found and not r.skipped for r in results)


def test_hubspot_a_read_refused_writes_nothing_for_those_records():
    # Given a read HubSpot refuses (a 400: the id property is not unique)
    transport = SpecCheckingTransport(error(400, "crmsync_external_id is not a unique identifier property"))
    # When deals are written create_only, Then nothing is created and the refusal names the records
    with pytest.raises(CrmRejected, match="not a unique identifier") as refused:
        hubspot(transport).upsert("deals", [deal(1)], policy="create_only")
    assert [e.key for e in refused.value.errors] == ["shopify:order:1"]
    assert [s.path for s in transport.sent] == ["/crm/v3/objects/deals/batch/read"]


def test_hubspot_notes_keep_their_ledger_under_either_policy():
    # Given a note recorded in the ledger (HubSpot id 301) and one never created
    clock = ManualClock()
    ledger = MemoryLedger(clock)
    ledger.entries[("notes", "n:1")] = LedgerEntry("n:1", "created", "301", clock(), "t")
    note = lambda key: UpsertInput("crmsync_external_id", key, {"hs_note_body": "x", "hs_timestamp": "2026-11-20"})  # noqa: E731
    # When both are written create_only, Then the recorded one is not updated and only the other is created
    transport = SpecCheckingTransport(created(["302"]))
    results = hubspot(transport, clock, ledger=ledger).upsert("notes", [note("n:1"), note("n:2")], policy="create_only")
    assert [s.path for s in transport.sent] == ["/crm/v3/objects/notes/batch/create"]
    assert results == [UpsertResult("301", False, CREATE_ONLY_EXISTS), UpsertResult("302", True)]
    # When a third, never created, is written update_only, Then nothing is sent and it is skipped
    transport = SpecCheckingTransport()
    assert hubspot(transport, clock, ledger=ledger).upsert("notes", [note("n:3")], policy="update_only") == [
        UpsertResult("", False, UPDATE_ONLY_MISSING)
    ]
    assert transport.sent == []


# --- HubSpot: behaviour on the fake portal -------------------------------------------------------------------------
@pytest.fixture
def portal() -> FakeHubSpot:
    """The fake HubSpot portal in-process (strict: every request and answer checked against the specs), with a
    contact for ada@ whose first name a sales rep set."""
    fake = FakeHubSpot(token="pat-test-token", strict=True)
    crm = hubspot(FakeHubSpotTransport(fake))
    crm.upsert("contacts", [by_email("ada@example.com", firstname="Countess")])
    return fake


def contacts_of(fake: FakeHubSpot) -> dict[str, str]:
    """email -> firstname of every contact in the portal."""
    return {p["email"]: p.get("firstname", "") for p in fake.state()["records"]["contacts"].values()}


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("upsert", {"ada@example.com": "Ada", "grace@example.com": "Grace"}),
        ("create_only", {"ada@example.com": "Countess", "grace@example.com": "Grace"}),
        ("update_only", {"ada@example.com": "Ada"}),
    ],
)
def test_hubspot_each_policy_on_the_fake_portal(portal, policy, expected):
    # When ada@ (existing) and grace@ (new) are written with the policy
    crm = hubspot(FakeHubSpotTransport(portal))
    crm.upsert("contacts", [by_email("ada@example.com", firstname="Ada"), by_email("grace@example.com",
               firstname="Grace")], policy=policy)  # fmt: skip
    # Then upsert writes both, create_only leaves ada@ as the rep left it, update_only makes no contact for grace@
    assert contacts_of(portal) == expected


def test_hubspot_a_contact_created_between_read_and_create_is_refused_then_found(portal, monkeypatch):
    # Given a create_only write whose read finds nothing, and another writer creating the contact right after it
    crm = hubspot(FakeHubSpotTransport(portal))
    real = portal._read

    def read_then_someone_creates(object_type: str, payload: Any) -> Any:
        answer = real(object_type, payload)
        hubspot(FakeHubSpotTransport(portal)).upsert("contacts", [by_email("grace@example.com", firstname="Other")])
        return answer

    with monkeypatch.context() as patched:
        patched.setattr(portal, "_read", read_then_someone_creates)
        # When written, Then HubSpot refuses the create by the unique email (409), and nothing is duplicated
        with pytest.raises(CrmRejected, match="already exists"):
            crm.upsert("contacts", [by_email("grace@example.com", firstname="Grace")], policy="create_only")
    # And the retry (the queue's) finds it and leaves it unchanged
    [result] = crm.upsert("contacts", [by_email("grace@example.com", firstname="Grace")], policy="create_only")
    assert result.skipped == CREATE_ONLY_EXISTS
    assert contacts_of(portal)["grace@example.com"] == "Other"


# --- Salesforce: the requests --------------------------------------------------------------------------------------
def query_of(request: Any) -> str:
    return parse_qs(urlsplit(request.url).query)["q"][0]


def found(*rows: tuple[str, str]) -> dict[str, Any]:
    """A SOQL answer: one record per (Id, external id)."""
    records = [{"attributes": {"type": "Contact", "url": f"/services/data/v62.0/sobjects/Contact/{i}"}, "Id": i,
                EXT: value} for i, value in rows]  # fmt: skip
    return {"totalSize": len(records), "done": True, "records": records}


def test_salesforce_create_only_queries_by_external_id_then_upserts_only_the_missing():
    # Given contact 1 in the org (its Id) and contact 2 not
    script = Script((200, found((sfid("003", 1), "crmsync:customer:1"))), (200, ok(sfid("003", 2))))
    # When both are written create_only
    results = adapter_on(script).upsert("contacts", [contact(1), contact(2)], policy="create_only")
    # Then one SOQL query for both external ids, then a collections upsert of contact 2 alone
    assert [(r.method, urlsplit(r.url).path) for r in script.sent] == [
        ("GET", "/services/data/v62.0/query"), ("PATCH", UPSERT_CONTACTS),
    ]  # fmt: skip
    assert query_of(script.sent[0]) == (
        f"SELECT Id, {EXT} FROM Contact WHERE {EXT} IN ('crmsync:customer:1', 'crmsync:customer:2')"  # noqa: S608
    )
    assert [r[EXT] for r in script.bodies()[1]["records"]] == ["crmsync:customer:2"]
    # And contact 1 is left unchanged, with its id known
    assert results == [UpsertResult(sfid("003", 1), False, CREATE_ONLY_EXISTS), UpsertResult(sfid("003", 2), True)]


def test_salesforce_update_only_updates_found_records_by_id_without_fillers_and_skips_the_missing():
    # Given contact 1 in the org and contact 2 not; contact 1 written without a last name
    script = Script(
        (200, found((sfid("003", 1), "crmsync:customer:1"))),
        (200, [{"id": sfid("003", 1), "success": True, "errors": []}]),
    )
    inputs = [UpsertInput(EXT, "crmsync:customer:1", {"Phone": "+15550000001"}), contact(2)]
    # When written update_only
    results = adapter_on(script).upsert("contacts", inputs, policy="update_only")
    # Then contact 1 is updated by Id, with only the mapped fields (no "[not provided]" LastName over its own)
    assert [(r.method, urlsplit(r.url).path) for r in script.sent][1] == (
        "PATCH",
        "/services/data/v62.0/composite/sobjects",
    )
    sent = {"attributes": {"type": "Contact"}, "id": sfid("003", 1), "Phone": "+15550000001", EXT: "crmsync:customer:1"}
    assert script.bodies()[1] == {"allOrNone": False, "records": [sent]}
    # And contact 2 is skipped
    assert results == [UpsertResult(sfid("003", 1), False), UpsertResult("", False, UPDATE_ONLY_MISSING)]


def test_salesforce_a_record_deleted_between_query_and_update_is_skipped():
    deleted = {"statusCode": "ENTITY_IS_DELETED", "message": "entity is deleted", "fields": []}
    gone = {"id": sfid("003", 1), "success": False, "errors": [deleted]}
    script = Script((200, found((sfid("003", 1), "crmsync:customer:1"))), (200, [gone]))
    assert adapter_on(script).upsert("contacts", [contact(1)], policy="update_only") == [
        UpsertResult("", False, UPDATE_ONLY_MISSING)
    ]


def test_salesforce_an_external_id_held_by_two_records_is_refused_and_nothing_is_written():
    # Given two contacts holding one external id (the field not marked Unique)
    script = Script((200, found((sfid("003", 1), "crmsync:customer:1"), (sfid("003", 2), "crmsync:customer:1"))))
    # When written update_only, Then a per-record failure says so, and no write was sent
    with pytest.raises(SalesforceRecordError, match="more than one") as refused:
        adapter_on(script).upsert("contacts", [contact(1)], policy="update_only")
    assert refused.value.failures[0].multiple_matches
    assert len(script.sent) == 1


@pytest.mark.parametrize(("policy", "calls"), [("upsert", 3), ("create_only", 6), ("update_only", 6)])
def test_salesforce_calls_per_450_contacts(policy, calls):
    # Given 450 contacts, none in the org (create_only, upsert) or all of them (update_only)
    fake = FakeSalesforce()
    if policy == "update_only":
        on_fake(fake).upsert("contacts", [contact(n) for n in range(450)])
        fake.used = 0
    # When written with the policy
    results = on_fake(fake).upsert("contacts", [contact(n, FirstName="Ada") for n in range(450)], policy=policy)
    # Then ceil(450 / 200) = 3 calls for upsert, 3 queries + 3 writes for the others
    assert fake.used == calls
    assert all(r.found and not r.skipped for r in results)
    assert {r["FirstName"] for r in fake.all("Contact")} == {"Ada"}


def test_salesforce_long_external_ids_split_the_query_so_its_url_stays_short():
    # Given 200 contacts whose external ids are long and full of characters a URL escapes
    fake = FakeSalesforce()
    inputs = [UpsertInput(EXT, f"crmsync:customer:{n}:{':' * 60}", {"LastName": "X"}) for n in range(200)]
    # When written create_only
    on_fake(fake).upsert("contacts", inputs, policy="create_only")
    # Then more than one query was needed, none of them longer than Salesforce takes, and every contact was made
    queries = [c for c in fake.calls("GET") if "query" in c.path]
    assert len(queries) > 1
    assert all(len(urlencode({"q": c.query["q"][0]})) < 16_000 for c in queries)
    assert len(fake.all("Contact")) == 200


# --- Salesforce: behaviour on the fake org --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("upsert", {"crmsync:customer:1": "Ada", "o'brien": "Grace"}),
        ("create_only", {"crmsync:customer:1": "Countess", "o'brien": "Grace"}),
        ("update_only", {"crmsync:customer:1": "Ada"}),
    ],
)
def test_salesforce_each_policy_on_the_fake_org(policy, expected):
    # Given the fake org with contact 1, whose first name a sales rep set
    fake = FakeSalesforce()
    crm = on_fake(fake)
    crm.upsert("contacts", [contact(1, FirstName="Countess")])
    # When contact 1 and a new contact (an external id with a quote, escaped in SOQL) are written with the policy
    inputs: Sequence[UpsertInput] = [contact(1, FirstName="Ada"), UpsertInput(EXT, "o'brien", {"FirstName": "Grace"})]
    crm.upsert("contacts", inputs, policy=policy)
    # Then upsert writes both, create_only leaves contact 1 as it was, update_only makes no new contact
    assert {r[EXT]: r["FirstName"] for r in fake.all("Contact")} == expected
