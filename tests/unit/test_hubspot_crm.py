"""HubSpotCrm: every request it builds fits HubSpot's OpenAPI specs, and each documented answer (200, 207, 400, 409,
429 of both policies, 5xx, timeouts) leads where it should. No sockets: scripted transports and a manual clock."""

from __future__ import annotations

import json

import pytest

from crmsync.crm.errors import (
    CrmNotConfigured,
    CrmOutcomeUnknown,
    CrmRateLimited,
    CrmRejected,
    CrmUnavailable,
)
from crmsync.crm.port import Association, UpsertInput
from crmsync.crm.transport import TransportError
from crmsync.store.crm_ledger import LedgerEntry
from crmsync.store.rate_budget import Decision
from local import hubspot_spec
from tests.unit.hubspot_doubles import (
    ManualClock,
    MemoryLedger,
    ScriptedBudget,
    SpecCheckingTransport,
    associated,
    batch,
    created,
    error,
    hubspot,
    merged,
    rate_limited,
    record,
    server_error,
    standard_error,
    upserted,
)


def contact(email: str, **properties: str) -> UpsertInput:
    return UpsertInput("email", email, {"email": email, **properties})


def deal(external_id: str, **properties: str) -> UpsertInput:
    return UpsertInput("crmsync_external_id", external_id, {"crmsync_external_id": external_id, **properties})


def note(external_id: str, body: str = "Refund 7420: 15.00 USD") -> UpsertInput:
    props = {"hs_note_body": body, "hs_timestamp": "2026-11-20T10:00:00Z", "crmsync_external_id": external_id}
    return UpsertInput("crmsync_external_id", external_id, props)


# --- the requests fit the specs -----------------------------------------------------------------------------------
def test_every_request_the_adapter_builds_fits_the_openapi_specs():
    # Given a transport that validates each request against HubSpot's OpenAPI specs before answering
    transport = SpecCheckingTransport(
        upserted(["101"]), upserted(["102"]), upserted(["201"]), associated, created(["301"]), associated, merged("101")
    )
    crm = hubspot(transport)
    # When the adapter upserts contacts (by email, and by external id), deals, associates them, creates a note,
    # associates it and merges two contacts
    crm.upsert("contacts", [contact("ada@example.com", firstname="Ada"), UpsertInput("crmsync_external_id", "x:1", {})])
    crm.upsert("deals", [deal("shopify:order:1", amount="225.40", dealstage="closedwon")])
    crm.associate("deals", "contacts", [Association("201", "101")])
    crm.upsert("notes", [note("crmsync:woocommerce:refund:7420")])
    crm.associate("notes", "deals", [Association("301", "201")])
    crm.merge("contacts", "101", "102")
    # Then every request fitted its spec (the transport raises otherwise), on the paths HubSpot documents
    assert [(s.method, s.path) for s in transport.sent] == [
        ("POST", "/crm/v3/objects/contacts/batch/upsert"),
        ("POST", "/crm/v3/objects/contacts/batch/upsert"),
        ("POST", "/crm/v3/objects/deals/batch/upsert"),
        ("POST", "/crm/v4/associations/deals/contacts/batch/associate/default"),
        ("POST", "/crm/v3/objects/notes/batch/create"),
        ("POST", "/crm/v4/associations/notes/deals/batch/associate/default"),
        ("POST", "/crm/v3/objects/contacts/merge"),
    ]
    # And contacts by email and by external id went in separate calls (one idProperty a call)
    assert [i["idProperty"] for i in transport.sent[0].body["inputs"]] == ["email"]
    assert [i["idProperty"] for i in transport.sent[1].body["inputs"]] == ["crmsync_external_id"]
    assert transport.sent[6].body == {"primaryObjectId": "101", "objectIdToMerge": "102"}
    assert transport.sent[0].headers["Authorization"] == "Bearer pat-test-token"


@pytest.mark.parametrize(
    ("path", "body", "reason"),
    [
        ("/crm/v3/objects/contacts/batch/upsert", {"inputs": [{"idProperty": "email", "properties": {}}]}, "'id'"),
        ("/crm/v3/objects/deals/batch/upsert", {"inputs": [{"id": "x", "properties": {"amount": 1}}]}, "string"),
        ("/crm/v4/associations/deals/contacts/batch/associate/default", {"inputs": [{"from": {"id": "1"}}]}, "'to'"),
        ("/crm/v3/objects/notes/batch/create", {"inputs": [{"properties": {}}]}, "'associations'"),
        ("/crm/v3/objects/contacts/merge", {"primaryObjectId": "1"}, "'objectIdToMerge'"),
    ],
)
def test_the_spec_check_rejects_what_the_spec_rejects(path, body, reason):
    # Given a request the spec does not allow, Then the check used by these tests refuses it, saying why
    # (deals are checked as the spec spells them: /crm/v3/objects/0-3/...)
    with pytest.raises(hubspot_spec.SpecViolation, match=reason):
        hubspot_spec.validate_request("POST", path, json.dumps(body).encode())


# --- upsert answers -----------------------------------------------------------------------------------------------
def test_upsert_200_maps_results_back_to_inputs_and_tells_created_from_updated():
    # Given HubSpot answers 200 with the results in another order than the inputs (it promises none)
    def reversed_answer(sent):
        answer = upserted(["11", "12"], new=False)(sent)
        body = json.loads(answer.body)
        body["results"] = body["results"][::-1]
        body["results"][0]["new"] = True  # "12" was created
        return answer.__class__(200, json.dumps(body).encode())

    crm = hubspot(SpecCheckingTransport(reversed_answer))
    # When two deals are upserted
    results = crm.upsert("deals", [deal("shopify:order:1"), deal("shopify:order:2")])
    # Then each input gets its own record id, and `new` says which was created
    assert [(r.id, r.created) for r in results] == [("11", False), ("12", True)]


def test_upsert_sends_at_most_100_inputs_a_call():
    # Given 250 deals
    transport = SpecCheckingTransport(*[upserted([str(n) for n in range(100)])] * 3)
    crm = hubspot(transport)
    # When they are upserted
    results = crm.upsert("deals", [deal(f"shopify:order:{n}") for n in range(250)])
    # Then three calls carry 100, 100 and 50 inputs, and every input has a result
    assert [len(s.body["inputs"]) for s in transport.sent] == [100, 100, 50]
    assert len(results) == 250


def test_upsert_sends_one_input_per_key():
    # Given two inputs for one e-mail (HubSpot refuses a batch naming an id twice)
    transport = SpecCheckingTransport(upserted(["7"]))
    crm = hubspot(transport)
    # When they are upserted
    results = crm.upsert(
        "contacts", [contact("ada@example.com", firstname="A"), contact("Ada@Example.com", lastname="L")]
    )
    # Then one input goes, carrying both inputs' properties, and both inputs get its id
    [sent] = transport.sent
    assert len(sent.body["inputs"]) == 1
    assert sent.body["inputs"][0]["properties"] == {"email": "Ada@Example.com", "firstname": "A", "lastname": "L"}
    assert [r.id for r in results] == ["7", "7"]


def test_upsert_207_fails_only_the_records_hubspot_refused():
    # Given HubSpot answers 207: the second input failed, the others were written
    refusal = standard_error("Property values were not valid: INVALID_EMAIL", context={"objectWriteTraceId": ["1"]})
    transport = SpecCheckingTransport(upserted(["1", "-", "3"], skip=[1], errors=[refusal]))
    crm = hubspot(transport)
    # When three contacts are upserted
    with pytest.raises(CrmRejected) as caught:
        crm.upsert("contacts", [contact("a@example.com"), contact("bad@example.com"), contact("c@example.com")])
    # Then only that record is reported, with HubSpot's reason, its e-mail masked, and nothing is sent again
    [failed] = caught.value.errors
    assert failed.key == "bad@example.com"
    assert (failed.status, failed.category) == (207, "VALIDATION_ERROR")
    assert "INVALID_EMAIL" in str(caught.value)
    assert "b***@example.com" in str(caught.value)
    assert "bad@example.com" not in str(caught.value)
    assert len(transport.sent) == 1


@pytest.mark.parametrize(
    ("status", "category", "message"),
    [
        (400, "VALIDATION_ERROR", 'Property values were not valid: [{"name":"amount","error":"INVALID_FLOAT"}]'),
        (409, "CONFLICT", "A deal with that crmsync_external_id already exists. Existing ID: 77"),
    ],
)
def test_upsert_400_and_409_reject_every_record_of_the_call_with_the_reason(status, category, message):
    # Given HubSpot refuses the whole call
    transport = SpecCheckingTransport(error(status, message, category))
    crm = hubspot(transport)
    # When two deals are upserted
    with pytest.raises(CrmRejected) as caught:
        crm.upsert("deals", [deal("shopify:order:1"), deal("shopify:order:2")])
    # Then both records are reported with the status, category and message (a DLQ reason), and there is no retry
    assert [(e.key, e.status, e.category) for e in caught.value.errors] == [
        ("shopify:order:1", status, category),
        ("shopify:order:2", status, category),
    ]
    assert message.split(":")[0] in str(caught.value)
    assert len(transport.sent) == 1


def test_a_refused_token_is_a_configuration_error():
    crm = hubspot(SpecCheckingTransport(error(401, "Authentication credentials not found.", "INVALID_AUTHENTICATION")))
    with pytest.raises(CrmNotConfigured, match="401"):
        crm.upsert("deals", [deal("shopify:order:1")])


# --- 429 ----------------------------------------------------------------------------------------------------------
def test_ten_secondly_429_is_waited_out_and_sent_again():
    # Given HubSpot answers 429 TEN_SECONDLY_ROLLING once, and the invocation has 20 s left
    clock = ManualClock(budget=20)
    transport = SpecCheckingTransport(rate_limited("TEN_SECONDLY_ROLLING"), upserted(["1"]))
    crm = hubspot(transport, clock)
    # When a deal is upserted
    [result] = crm.upsert("deals", [deal("shopify:order:1")])
    # Then the adapter waited 10 s (no Retry-After) and the second request succeeded
    assert clock.sleeps == [10.0]
    assert result.id == "1"
    assert len(transport.sent) == 2


def test_ten_secondly_429_follows_retry_after():
    clock = ManualClock(budget=20)
    crm = hubspot(SpecCheckingTransport(rate_limited("TEN_SECONDLY_ROLLING", retry_after="2"), upserted(["1"])), clock)
    crm.upsert("deals", [deal("shopify:order:1")])
    assert clock.sleeps == [2.0]


def test_ten_secondly_429_without_time_to_wait_fails_the_batch_for_a_later_retry():
    # Given the invocation has 6 s left: not enough to wait 10 s and send again
    clock = ManualClock(budget=6)
    transport = SpecCheckingTransport(rate_limited("TEN_SECONDLY_ROLLING"))
    crm = hubspot(transport, clock)
    # When a deal is upserted, Then CrmRateLimited says which policy and when to retry, without waiting
    with pytest.raises(CrmRateLimited) as caught:
        crm.upsert("deals", [deal("shopify:order:1")])
    assert (caught.value.policy, caught.value.retry_after) == ("TEN_SECONDLY_ROLLING", 10.0)
    assert clock.sleeps == []
    assert len(transport.sent) == 1


def test_daily_429_stops_at_once_and_holds_the_shared_budget():
    # Given HubSpot says the daily limit is spent
    clock = ManualClock(budget=20)
    budget = ScriptedBudget()
    transport = SpecCheckingTransport(rate_limited("DAILY"))
    crm = hubspot(transport, clock, budget=budget)
    # When a deal is upserted
    with pytest.raises(CrmRateLimited) as caught:
        crm.upsert("deals", [deal("shopify:order:1")])
    # Then the batch fails at once with the DAILY policy (no retry, no wait), and no Lambda asks again for 15 min
    assert caught.value.policy == "DAILY"
    assert "daily limit" in str(caught.value)
    assert (len(transport.sent), clock.sleeps, budget.holds) == (1, [], [900.0])


# --- 5xx and timeouts ---------------------------------------------------------------------------------------------
def test_5xx_is_retried_with_exponential_backoff():
    # Given HubSpot answers 502, then 503, then 200
    clock = ManualClock(budget=20)
    transport = SpecCheckingTransport(server_error(502), server_error(503), upserted(["1"]))
    crm = hubspot(transport, clock)
    # When a deal is upserted, Then it succeeds after two waits that double (half of each random; jitter 0.5 here)
    assert crm.upsert("deals", [deal("shopify:order:1")])[0].id == "1"
    assert clock.sleeps == [0.375, 0.75]


def test_5xx_that_lasts_fails_with_crm_unavailable_after_the_attempts():
    transport = SpecCheckingTransport(*[server_error(500)] * 4)
    crm = hubspot(transport, ManualClock(budget=20))
    with pytest.raises(CrmUnavailable, match=r"HTTP 500\) after 4 attempt"):
        crm.upsert("deals", [deal("shopify:order:1")])
    assert len(transport.sent) == 4


def test_timeouts_are_retried_like_5xx():
    # Given the first request gets no answer in time, and the second does
    clock = ManualClock(budget=20)
    transport = SpecCheckingTransport(TransportError("no answer: TimeoutError", sent=True), upserted(["1"]))
    crm = hubspot(transport, clock)
    # Then the upsert (safe to repeat) succeeds on the second attempt
    assert crm.upsert("deals", [deal("shopify:order:1")])[0].id == "1"
    assert len(transport.sent) == 2


def test_no_retry_starts_when_the_invocation_has_no_time_for_it():
    clock = ManualClock(budget=3.5)
    transport = SpecCheckingTransport(server_error(503))
    with pytest.raises(CrmUnavailable, match="after 1 attempt"):
        hubspot(transport, clock).upsert("deals", [deal("shopify:order:1")])


def test_the_request_timeout_never_outlasts_the_invocation():
    clock = ManualClock(budget=8)
    transport = SpecCheckingTransport(upserted(["1"]))
    hubspot(transport, clock).upsert("deals", [deal("shopify:order:1")])
    assert transport.sent[0].timeout == 5.0  # 8 s left, 3 s kept for the writer


# --- the shared rate budget ---------------------------------------------------------------------------------------
def test_every_request_takes_a_token_and_waits_while_the_budget_is_empty():
    # Given the shared budget is empty for 1.5 s
    clock = ManualClock(budget=20)
    budget = ScriptedBudget([Decision(False, 1.5)])
    crm = hubspot(SpecCheckingTransport(upserted(["1"])), clock, budget=budget)
    # When a deal is upserted, Then the adapter waited for a token (with a little jitter) and took one
    crm.upsert("deals", [deal("shopify:order:1")])
    assert clock.sleeps == [pytest.approx(1.525)]
    assert budget.taken == 1


def test_an_empty_budget_without_time_to_wait_fails_the_batch():
    budget = ScriptedBudget([Decision(False, 8.0)])
    transport = SpecCheckingTransport()
    with pytest.raises(CrmRateLimited, match="shared HubSpot budget") as caught:
        hubspot(transport, ManualClock(budget=10), budget=budget).upsert("deals", [deal("shopify:order:1")])
    assert caught.value.policy == "TEN_SECONDLY_ROLLING"
    assert transport.sent == []


def test_a_spent_daily_budget_fails_at_once():
    budget = ScriptedBudget([Decision(False, 3600.0, daily=True)])
    with pytest.raises(CrmRateLimited) as caught:
        hubspot(SpecCheckingTransport(), ManualClock(budget=20), budget=budget).upsert("deals", [deal("x:1")])
    assert caught.value.policy == "DAILY"


# --- notes: created exactly once ----------------------------------------------------------------------------------
def test_notes_are_created_once_then_updated_by_their_recorded_id():
    # Given two new notes
    clock = ManualClock()
    ledger = MemoryLedger(clock)
    transport = SpecCheckingTransport(created(["301", "302"]))
    crm = hubspot(transport, clock, ledger=ledger)
    # When they are written
    first = crm.upsert("notes", [note("n:1"), note("n:2")])
    # Then one batch/create made them (the external id stays in crmsync, HubSpot notes take no custom property)
    # and the ledger holds their ids, matched by trace id even though HubSpot answered in another order
    assert [(r.id, r.created) for r in first] == [("301", True), ("302", True)]
    assert "crmsync_external_id" not in transport.sent[0].body["inputs"][0]["properties"]
    assert {k: e.crm_id for (_, k), e in ledger.entries.items()} == {"n:1": "301", "n:2": "302"}
    # When they are written again (a retry, or a newer version of the refund)
    transport.add(batch([record("301"), record("302")]))
    again = crm.upsert("notes", [note("n:1", "Refund 7420: 15.00 USD, succeeded"), note("n:2")])
    # Then nothing is created: they are updated by id
    assert transport.sent[1].path == "/crm/v3/objects/notes/batch/update"
    assert [i["id"] for i in transport.sent[1].body["inputs"]] == ["301", "302"]
    assert [(r.id, r.created) for r in again] == [("301", False), ("302", False)]


def test_a_note_is_never_created_twice_across_a_retry():
    # Given a create that HubSpot answered 502 (it may or may not have made the note)
    clock = ManualClock(budget=20)
    ledger = MemoryLedger(clock)
    transport = SpecCheckingTransport(server_error(502))
    crm = hubspot(transport, clock, ledger=ledger)
    with pytest.raises(CrmOutcomeUnknown, match="n:1"):
        crm.upsert("notes", [note("n:1")])
    # When the batch is retried (any number of times)
    for _ in range(3):
        with pytest.raises(CrmOutcomeUnknown):
            crm.upsert("notes", [note("n:1")])
    # Then the create was sent exactly once: no second note, ever; the ledger says its outcome is unknown
    assert [s.path for s in transport.sent] == ["/crm/v3/objects/notes/batch/create"]
    assert ledger.entries[("notes", "n:1")].state == "unknown"


def test_a_create_without_an_answer_is_not_sent_again_but_one_that_never_left_is():
    # Given a create whose answer timed out (sent), and one whose connection was refused (never sent)
    clock = ManualClock(budget=20)
    timed_out = SpecCheckingTransport(TransportError("no answer: TimeoutError", sent=True))
    with pytest.raises(CrmOutcomeUnknown):
        hubspot(timed_out, clock).upsert("notes", [note("n:1")])
    refused = SpecCheckingTransport(TransportError("connection failed", sent=False), created(["9"]))
    # Then the first is not repeated, and the second is retried and succeeds
    assert len(timed_out.sent) == 1
    assert hubspot(refused, clock).upsert("notes", [note("n:2")])[0].id == "9"
    assert len(refused.sent) == 2


def test_notes_created_before_a_later_failure_are_not_created_again():
    # Given notes created, then the association call after them failing for good (the batch will be retried)
    clock = ManualClock(budget=20)
    ledger = MemoryLedger(clock)
    transport = SpecCheckingTransport(created(["301"]), *[server_error(503)] * 4)
    crm = hubspot(transport, clock, ledger=ledger)
    [made] = crm.upsert("notes", [note("n:1")])
    with pytest.raises(CrmUnavailable):
        crm.associate("notes", "deals", [Association(made.id, "201")])
    # When the retried batch writes the note again
    transport.add(batch([record("301")]))
    [again] = crm.upsert("notes", [note("n:1")])
    # Then it is the same note, updated, not a second one
    assert again.id == "301"
    assert [s.path.rsplit("/", 1)[-1] for s in transport.sent].count("create") == 1


def test_a_refused_create_frees_its_claim_for_the_next_attempt():
    # Given HubSpot refuses a create with 400 (nothing was made)
    clock = ManualClock(budget=20)
    ledger = MemoryLedger(clock)
    transport = SpecCheckingTransport(error(400, "hs_timestamp is required", "VALIDATION_ERROR"), created(["5"]))
    crm = hubspot(transport, clock, ledger=ledger)
    with pytest.raises(CrmRejected, match="hs_timestamp"):
        crm.upsert("notes", [note("n:1")])
    # Then the claim is gone, and a later attempt creates it
    assert ledger.entries == {}
    assert crm.upsert("notes", [note("n:1")])[0].id == "5"


def test_a_207_create_records_what_was_made_and_frees_what_was_not():
    clock = ManualClock()
    ledger = MemoryLedger(clock)
    refusal = standard_error("Note body too long", context={"objectWriteTraceId": ["1"]})
    crm = hubspot(SpecCheckingTransport(created(["301", "-"], skip=[1], errors=[refusal])), clock, ledger=ledger)
    with pytest.raises(CrmRejected) as caught:
        crm.upsert("notes", [note("n:1"), note("n:2")])
    assert [e.key for e in caught.value.errors] == ["n:2"]
    assert ledger.entries[("notes", "n:1")].crm_id == "301"
    assert ("notes", "n:2") not in ledger.entries


def test_a_note_another_writer_is_creating_is_left_to_it_and_a_dead_writers_claim_is_not_guessed():
    clock = ManualClock()
    ledger = MemoryLedger(clock)
    ledger.entries[("notes", "busy")] = LedgerEntry("busy", "claimed", None, clock.now - 5, "other")
    ledger.entries[("notes", "dead")] = LedgerEntry("dead", "claimed", None, clock.now - 3600, "other")
    transport = SpecCheckingTransport()
    crm = hubspot(transport, clock, ledger=ledger)
    # A fresh claim: retry later
    with pytest.raises(CrmUnavailable, match="another writer"):
        crm.upsert("notes", [note("busy")])
    # A claim older than any invocation: its writer died mid-create, so the outcome is unknown
    with pytest.raises(CrmOutcomeUnknown):
        crm.upsert("notes", [note("dead")])
    assert transport.sent == []


def test_notes_need_a_ledger():
    with pytest.raises(CrmNotConfigured, match="ledger"):
        hubspot(SpecCheckingTransport(), ledger=None).upsert("notes", [note("n:1")])


# --- associations and merges --------------------------------------------------------------------------------------
def test_associations_are_sent_once_each_100_a_call():
    transport = SpecCheckingTransport(associated, associated)
    pairs = [Association(str(n), "1") for n in range(150)]
    hubspot(transport).associate("deals", "contacts", [*pairs, pairs[0]])
    assert [len(s.body["inputs"]) for s in transport.sent] == [100, 50]


def test_association_errors_are_reported_per_pair():
    # Given HubSpot answers with an error naming a record that does not exist
    refusal = standard_error("No deals/contacts record with id 9", category="OBJECT_NOT_FOUND", context={"ids": ["9"]})
    transport = SpecCheckingTransport(batch([], [refusal]))
    with pytest.raises(CrmRejected) as caught:
        hubspot(transport).associate("deals", "contacts", [Association("1", "2"), Association("3", "9")])
    [failed] = caught.value.errors
    assert (failed.key, failed.category) == ("3->9", "OBJECT_NOT_FOUND")


def test_merge_of_a_record_already_gone_changes_nothing():
    # Given the merged contact no longer exists (merged by an earlier attempt)
    transport = SpecCheckingTransport(error(404, "Object not found", "OBJECT_NOT_FOUND"))
    crm = hubspot(transport)
    # Then merging it again is a no-op, and merging a record into itself makes no call
    crm.merge("contacts", "1", "2")
    crm.merge("contacts", "1", "1")
    assert len(transport.sent) == 1


def test_merge_refused_for_another_reason_is_rejected():
    transport = SpecCheckingTransport(error(400, "Cannot merge contacts in different portals", "VALIDATION_ERROR"))
    with pytest.raises(CrmRejected, match="2->1"):
        hubspot(transport).merge("contacts", "1", "2")


def test_notes_of_a_call_that_never_went_out_are_free_again():
    # Given 150 new notes, and HubSpot's daily limit reached before the second create call
    clock = ManualClock(budget=20)
    ledger = MemoryLedger(clock)
    transport = SpecCheckingTransport(created([str(n) for n in range(100)]), rate_limited("DAILY"))
    crm = hubspot(transport, clock, ledger=ledger)
    with pytest.raises(CrmRateLimited):
        crm.upsert("notes", [note(f"n:{n}") for n in range(150)])
    # Then the first 100 are recorded as created, and the other 50 are not claimed: a later attempt creates them
    states = [e.state for e in ledger.entries.values()]
    assert (states.count("created"), len(states)) == (100, 100)
