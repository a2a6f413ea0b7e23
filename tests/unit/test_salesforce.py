"""The Salesforce adapter without sockets: requests go to a scripted transport (exact request shapes, every documented
answer) or to the fake Salesforce in-process (local/salesforce_fake.py, behaviour)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import deque
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests.adapters
from requests.structures import CaseInsensitiveDict

from crmsync.crm.errors import CrmError, CrmNotConfigured, CrmRateLimited, CrmRejected, CrmUnavailable
from crmsync.crm.port import Association, UpsertInput, UpsertResult
from crmsync.crm.salesforce import (
    ApiUsageGuard,
    RetryPolicy,
    SalesforceApi,
    SalesforceCredentials,
    SalesforceCrm,
    SalesforceLimitExceeded,
    SalesforceRecordError,
    SalesforceRequestError,
    SalesforceUnavailable,
    connect,
    parse_limit_info,
    redact,
)
from crmsync.mapping import load_mapping
from crmsync.settings import Settings
from local.salesforce_fake import FakeSalesforce
from tests.conftest import REPO

URL = "https://acme.my.salesforce.com"
EXT = "Crmsync_External_Id__c"
UPSERT_CONTACTS = "/services/data/v62.0/composite/sobjects/Contact/Crmsync_External_Id__c"


# ------------------------------------------------------------------------------------------------------ doubles
class Script(requests.adapters.BaseAdapter):
    """A transport that answers from a script (status, body, headers) or raises, and keeps what it was sent."""

    def __init__(self, *answers: Any) -> None:
        super().__init__()
        self.answers = deque(answers)
        self.sent: list[requests.PreparedRequest] = []
        self.timeouts: list[Any] = []

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        self.sent.append(request)
        self.timeouts.append(kwargs.get("timeout"))
        answer = self.answers.popleft()
        if callable(answer):
            answer = answer(request)
        if isinstance(answer, Exception):
            raise answer
        status, body, headers = (*answer, {})[:3] if isinstance(answer, tuple) else (200, answer, {})
        response = requests.Response()
        response.status_code = status
        response.headers = CaseInsensitiveDict({"Content-Type": "application/json", **headers})
        response._content = json.dumps(body).encode() if body is not None else b""
        response.url = str(request.url)
        response.request = request
        return response

    def close(self) -> None:
        pass

    def bodies(self) -> list[Any]:
        return [json.loads(r.body) if r.body else None for r in self.sent]


def usage(used: int, allowed: int = 1000) -> dict[str, str]:
    return {"Sforce-Limit-Info": f"api-usage={used}/{allowed}"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def adapter_on(transport: requests.adapters.BaseAdapter, clock: Clock | None = None, **crm: Any) -> SalesforceCrm:
    clock = clock or Clock()
    session = requests.Session()
    session.mount("https://", transport)
    session.mount("http://", transport)
    sf = connect(SalesforceCredentials(instance_url=URL, access_token="00Dtoken"), session=session)
    guard = ApiUsageGuard(clock=clock, sleep=clock.sleep)
    api = SalesforceApi(
        sf, guard=guard, retry=RetryPolicy(attempts=3, initial_seconds=0.5, max_seconds=4), sleep=clock.sleep
    )
    return SalesforceCrm(api=api, bulk_poll_seconds=0, **crm)


def on_fake(fake: FakeSalesforce, **crm: Any) -> SalesforceCrm:
    sf = connect(SalesforceCredentials(instance_url=URL, access_token=fake.token), session=fake.session())
    clock = Clock()
    api = SalesforceApi(sf, guard=ApiUsageGuard(clock=clock, sleep=clock.sleep), sleep=clock.sleep)
    return SalesforceCrm(api=api, bulk_poll_seconds=0, **crm)


def contact(n: int, **properties: str) -> UpsertInput:
    ext = f"crmsync:customer:{n}"
    return UpsertInput(EXT, ext, {"LastName": f"Person {n}", EXT: ext, **properties})


def ok(*ids: str, created: bool = True) -> list[dict[str, Any]]:
    return [{"id": i, "success": True, "errors": [], "created": created} for i in ids]


def sfid(prefix: str, n: int) -> str:
    return f"{prefix}{n:012d}AAA"


# -------------------------------------------------------------------------------------------- request shapes
def test_upsert_sends_sobject_collections_of_at_most_200_records():
    # Given 450 contacts
    inputs = [contact(n) for n in range(450)]
    script = Script(
        (200, ok(*(sfid("003", n) for n in range(200))), usage(1)),
        (200, ok(*(sfid("003", n) for n in range(200, 400))), usage(2)),
        (200, ok(*(sfid("003", n) for n in range(400, 450))), usage(3)),
    )
    # When they are upserted
    results = adapter_on(script).upsert("contacts", inputs)
    # Then three PATCH calls to the documented sObject Collections upsert URL, 200 + 200 + 50 records
    assert [(r.method, urlsplit(r.url).path) for r in script.sent] == [("PATCH", UPSERT_CONTACTS)] * 3
    bodies = script.bodies()
    assert [len(b["records"]) for b in bodies] == [200, 200, 50]
    for request, body in zip(script.sent, bodies, strict=True):
        assert request.headers["Authorization"] == "Bearer 00Dtoken"
        assert request.headers["Content-Type"] == "application/json"
        assert body["allOrNone"] is False
        assert set(body) == {"allOrNone", "records"}
        for record in body["records"]:
            assert record["attributes"] == {"type": "Contact"}
            assert record[EXT].startswith("crmsync:customer:")
            assert "Id" not in record
            assert "id" not in record
    # And the results come back in input order
    assert results == [UpsertResult(id=sfid("003", n), created=True) for n in range(450)]


def test_inputs_sharing_an_external_id_are_sent_once_and_share_the_result():
    # Given two inputs for one contact (the later one carries the newer phone)
    script = Script((200, ok(sfid("003", 7), created=False)))
    crm = adapter_on(script)
    # When upserted together
    results = crm.upsert(
        "contacts", [contact(1, Phone="+15550000001", FirstName="Ada"), contact(1, Phone="+15550000002")]
    )
    # Then one record is sent, with the later values over the earlier ones, and both inputs get its result
    [record] = script.bodies()[0]["records"]
    assert (record["Phone"], record["FirstName"]) == ("+15550000002", "Ada")
    assert results == [UpsertResult(sfid("003", 7), False)] * 2


def test_values_become_salesforce_types_and_required_fields_get_fillers():
    # Given deals and a note as the Salesforce mapping gives them (strings only)
    script = Script((200, ok(sfid("006", 1), sfid("006", 2))), (200, ok(sfid("00T", 3))))
    crm = adapter_on(script)
    paid = {"Name": "Shopify order #1001", "Amount": "215.40", "CloseDate": "2024-03-01T23:30:00-05:00",
            "StageName": "Closed Won", "Crmsync_Refunded_Amount__c": "4500"}  # fmt: skip
    open_deal = {"Name": "Stripe payment pi_1", "Amount": "12.345"}
    # When upserted
    crm.upsert("deals", [UpsertInput(EXT, "shopify:order:1", paid), UpsertInput(EXT, "stripe:payment:pi_1", open_deal)])
    crm.upsert("notes", [UpsertInput(EXT, "crmsync:stripe:refund:re_1", {"Subject": "x" * 300})])
    # Then dates are the UTC date, amounts JSON numbers, and Salesforce's required fields are filled
    first, second = script.bodies()[0]["records"]
    assert (first["CloseDate"], first["Amount"], first["Crmsync_Refunded_Amount__c"]) == ("2024-03-02", 215.4, 4500)
    assert first["StageName"] == "Closed Won"
    today = datetime.now(UTC).date().isoformat()
    assert (second["StageName"], second["CloseDate"], second["Amount"]) == ("Prospecting", today, 12.345)
    [note] = script.bodies()[1]["records"]
    assert note["attributes"] == {"type": "Task"}
    assert (len(note["Subject"]), note["Status"], note["Priority"]) == (255, "Completed", "Normal")


def test_salesforce_mapping_maps_views_to_contact_opportunity_and_task_fields():
    # Given the shipped Salesforce mapping
    mapping = load_mapping("salesforce")
    view = {"external_id": "crmsync:customer:c1", "email": "ada@example.com", "first_name": "Ada",
            "address": {"line1": "1 Main St", "country": "US"}}  # fmt: skip
    deal = {"external_id": "shopify:order:1", "title": "Shopify order #1", "amount": "10.00", "currency": "EUR",
            "status": "paid", "closed_at": "2024-01-02T03:04:05+00:00"}  # fmt: skip
    # Then it gives Salesforce field names, every object found by the external id field
    assert mapping.contacts.apply(view) == {
        "Email": "ada@example.com", "FirstName": "Ada", "MailingStreet": "1 Main St", "MailingCountry": "US",
        EXT: "crmsync:customer:c1",
    }  # fmt: skip
    assert mapping.deals.apply(deal)["StageName"] == "Closed Won"
    assert {mapping.contacts.id_property, mapping.deals.id_property} == {EXT}
    assert mapping.notes is not None
    assert mapping.notes.id_property == EXT


# ------------------------------------------------------------------------------------------- per-record errors
def test_refused_records_are_raised_after_the_others_were_written():
    # Given a batch where Salesforce refuses the middle record
    refused = {"success": False, "errors": [{"statusCode": "INVALID_EMAIL_ADDRESS",
                                             "message": "Email: invalid email address: <email>",
                                             "fields": ["Email"]}]}  # fmt: skip
    script = Script((200, [ok(sfid("003", 1))[0], refused, ok(sfid("003", 3))[0]]))
    # When upserted
    with pytest.raises(SalesforceRecordError) as caught:
        adapter_on(script).upsert("contacts", [contact(1), contact(2), contact(3)])
    # Then one call was made, and the error names the record, the code and the field (a CrmRejected)
    error = caught.value
    assert isinstance(error, CrmRejected)
    assert len(script.sent) == 1
    [failure] = error.failures
    assert (failure.index, failure.external_id, failure.code, failure.fields) == (
        1, "crmsync:customer:2", "INVALID_EMAIL_ADDRESS", ("Email",),
    )  # fmt: skip
    assert "crmsync:customer:2: INVALID_EMAIL_ADDRESS" in str(error)
    # And the records that were written are there for whoever wants them
    assert error.results == [UpsertResult(sfid("003", 1), True), None, UpsertResult(sfid("003", 3), True)]


def test_an_external_id_matching_several_records_is_a_clear_per_record_failure():
    # Given Salesforce finds two contacts holding one external id
    message = f"{EXT}: more than one record found for external id field: [{sfid('003', 1)}, {sfid('003', 2)}]"
    script = Script((200, [{"success": False, "errors": [{"statusCode": "DUPLICATE_EXTERNAL_ID", "message": message,
                                                          "fields": []}]}]))  # fmt: skip
    # When that contact is upserted
    with pytest.raises(SalesforceRecordError) as caught:
        adapter_on(script).upsert("contacts", [contact(5)])
    # Then the reason says what happened and what to do
    [failure] = caught.value.failures
    assert failure.multiple_matches
    text = str(caught.value)
    assert "crmsync:customer:5" in text
    assert "matches more than one Contact" in text
    assert "HTTP 300" in text
    assert "redrive" in text


def test_a_duplicate_rule_is_a_clear_per_record_failure_without_personal_data():
    # Given a duplicate rule that blocks the contact (its message quoting the email)
    errors = [{"statusCode": "DUPLICATES_DETECTED", "message": "Use one of these records? ada@example.com",
               "fields": []}]  # fmt: skip
    script = Script((200, [{"success": False, "errors": errors}]))
    # When upserted
    with pytest.raises(SalesforceRecordError) as caught:
        adapter_on(script).upsert("contacts", [contact(9, Email="ada@example.com")])
    # Then it is a per-record failure naming the duplicate rule, and the email never appears
    assert caught.value.failures[0].duplicate_rule
    assert "duplicate rule" in str(caught.value)
    assert "ada@example.com" not in str(caught.value)


def test_http_300_on_a_single_record_call_is_a_clear_error():
    # Given a call answered 300 Multiple Choices (the single-record upsert's answer to several matches)
    script = Script((300, [f"/services/data/v62.0/sobjects/Contact/{sfid('003', 1)}"]))
    crm = adapter_on(script)
    # When it is made
    with pytest.raises(SalesforceRequestError) as caught:
        crm.api.call("PATCH", f"sobjects/Contact/{EXT}/crmsync:customer:1", body={"LastName": "X"})
    # Then the error says the external id matches several records, and it was not retried
    assert caught.value.code == "MULTIPLE_CHOICES"
    assert "more than one record" in str(caught.value)
    assert len(script.sent) == 1


# -------------------------------------------------------------------------------------------------- limits
def test_request_limit_exceeded_stops_every_call_without_retrying():
    # Given the org's daily allowance is spent
    limit = [{"message": "TotalRequests Limit exceeded.", "errorCode": "REQUEST_LIMIT_EXCEEDED"}]
    clock = Clock()
    script = Script((403, limit, usage(1000)), (200, ok(sfid("003", 1))))
    crm = adapter_on(script, clock)
    # When a write meets 403 REQUEST_LIMIT_EXCEEDED
    with pytest.raises(SalesforceLimitExceeded) as caught:
        crm.upsert("contacts", [contact(1)])
    # Then it is a rate limit (CrmRateLimited) with the reason, and nothing was retried
    assert isinstance(caught.value, CrmRateLimited)
    assert caught.value.policy == "REQUEST_LIMIT_EXCEEDED"
    assert "daily API allowance" in str(caught.value)
    assert caught.value.retry_after == pytest.approx(300)
    assert len(script.sent) == 1
    # And the next writes fail at once without a request, until the cool-down ends
    with pytest.raises(SalesforceLimitExceeded):
        crm.upsert("contacts", [contact(1)])
    assert len(script.sent) == 1
    clock.now += 301
    assert crm.upsert("contacts", [contact(1)]) == [UpsertResult(sfid("003", 1), True)]
    assert len(script.sent) == 2


def test_limit_info_slows_calls_down_near_the_limit_and_stops_them_at_it():
    # Given answers telling 87% then 96% of the daily allowance used (slow from 80%, stop at 95%)
    clock = Clock()
    script = Script((200, ok(sfid("003", 1)), usage(870)), (200, ok(sfid("003", 2)), usage(960)))
    crm = adapter_on(script, clock)
    crm.upsert("contacts", [contact(1)])
    assert clock.sleeps == []
    # When the next call is made, it first waits in proportion (0.07 / 0.15 of the 1 s maximum pause)
    crm.upsert("contacts", [contact(2)])
    assert clock.sleeps == [pytest.approx(0.4667, abs=1e-3)]
    # Then, at 96%, the next call is not made: a rate limit of crmsync's own, with the usage in the message
    with pytest.raises(SalesforceLimitExceeded) as caught:
        crm.upsert("contacts", [contact(3)])
    assert caught.value.policy == "SALESFORCE_API_USAGE_STOP"
    assert "960/1000" in str(caught.value)
    assert len(script.sent) == 2


def test_limit_info_header_is_parsed():
    assert parse_limit_info("api-usage=18/5000") == (18, 5000)
    assert parse_limit_info("api-usage=25/5000; per-app-api-usage=17/250(appName=sample)") == (25, 5000)
    assert parse_limit_info("per-app-api-usage=17/250(appName=sample)") is None


# ------------------------------------------------------------------------------------------ retries, timeouts
def test_5xx_answers_are_retried_with_growing_backoff():
    # Given Salesforce answers 503, then 500, then the results
    unavailable = [{"message": "Server unavailable", "errorCode": "SERVER_UNAVAILABLE"}]
    clock = Clock()
    script = Script((503, unavailable), (500, [{"errorCode": "UNKNOWN_EXCEPTION", "message": "x"}]),
                    (200, ok(sfid("003", 1))))  # fmt: skip
    # When a contact is upserted
    results = adapter_on(script, clock).upsert("contacts", [contact(1)])
    # Then it was sent three times, waiting longer before the third, and succeeded
    assert results == [UpsertResult(sfid("003", 1), True)]
    assert len(script.sent) == 3
    assert len(clock.sleeps) == 2
    assert 0.5 <= clock.sleeps[0] <= 1.5
    assert 1.0 <= clock.sleeps[1] <= 2.5


def test_timeouts_are_retried_then_reported_as_unavailable():
    # Given three timeouts in a row (three tries in all)
    script = Script(requests.ReadTimeout("read timed out"), requests.ConnectTimeout("no"), requests.ConnectionError())
    # When a contact is upserted
    with pytest.raises(SalesforceUnavailable) as caught:
        adapter_on(script).upsert("contacts", [contact(1)])
    # Then it failed as CrmUnavailable after three tries
    assert isinstance(caught.value, CrmUnavailable)
    assert len(script.sent) == 3


def test_retries_stop_when_the_invocation_has_no_time_left():
    # Given 3.2 s left in the invocation and a 503
    script = Script((503, [{"errorCode": "SERVER_UNAVAILABLE", "message": ""}]), (200, ok(sfid("003", 1))))
    crm = adapter_on(script)
    crm.api.time_left = lambda: 3.2
    # When the upsert fails, no retry starts (a call needs 3 s, the wait comes first)
    with pytest.raises(SalesforceUnavailable):
        crm.upsert("contacts", [contact(1)])
    assert len(script.sent) == 1
    # And the one call's read timeout fitted in the time left (connect 5 s, read 2.2 s instead of 60 s)
    assert script.timeouts == [(5.0, pytest.approx(2.2))]


def test_client_errors_are_not_retried():
    # Given a field Salesforce does not know
    script = Script((400, [{"message": "No such column 'Foo__c' on sobject of type Contact",
                            "errorCode": "INVALID_FIELD"}]))  # fmt: skip
    # When upserted
    with pytest.raises(SalesforceRequestError) as caught:
        adapter_on(script).upsert("contacts", [contact(1, Foo__c="x")])
    # Then one request, and the error names the code and the field
    assert len(script.sent) == 1
    assert caught.value.code == "INVALID_FIELD"
    assert "Foo__c" in str(caught.value)


def test_an_expired_token_is_a_clear_error():
    script = Script((401, [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}]))
    with pytest.raises(SalesforceRequestError) as caught:
        adapter_on(script).upsert("contacts", [contact(1)])
    assert caught.value.status == 401
    assert "access token expired or is invalid" in str(caught.value)


def test_creates_are_not_retried_in_process():
    # Given an opportunity that exists already (so its roles are read first), and a 503 on the create
    roles = {"totalSize": 0, "done": True, "records": []}
    script = Script((200, roles), (503, [{"errorCode": "SERVER_UNAVAILABLE", "message": ""}]))
    # When the deal is associated with its contact
    with pytest.raises(SalesforceUnavailable):
        adapter_on(script).associate("deals", "contacts", [Association(sfid("006", 1), sfid("003", 1))])
    # Then the create was sent once (the queue's redelivery reads again before creating)
    assert [r.method for r in script.sent] == ["GET", "POST"]


# ---------------------------------------------------------------------------------------------- associations
def test_deals_and_contacts_are_linked_by_opportunity_contact_roles():
    # Given an opportunity that already has its role for contact 1, and none for contact 2
    existing = {"totalSize": 1, "done": True,
                "records": [{"attributes": {"type": "OpportunityContactRole"}, "OpportunityId": sfid("006", 1),
                             "ContactId": sfid("003", 1)}]}  # fmt: skip
    script = Script((200, existing), (200, [{"id": sfid("00K", 9), "success": True, "errors": []}]))
    pairs = [Association(sfid("006", 1), sfid("003", 1)), Association(sfid("006", 1), sfid("003", 2))]
    # When associated
    adapter_on(script).associate("deals", "contacts", pairs)
    # Then the roles are read with one SOQL query, and only the missing one is created (not primary: one exists)
    read, create = script.sent
    assert (read.method, urlsplit(read.url).path) == ("GET", "/services/data/v62.0/query")
    soql = parse_qs(urlsplit(str(read.url)).query)["q"][0]
    select = "SELECT OpportunityId, ContactId FROM OpportunityContactRole"
    assert soql == f"{select} WHERE OpportunityId IN ('{sfid('006', 1)}')"
    assert (create.method, urlsplit(create.url).path) == ("POST", "/services/data/v62.0/composite/sobjects")
    assert script.bodies()[1] == {
        "allOrNone": False,
        "records": [{"attributes": {"type": "OpportunityContactRole"}, "OpportunityId": sfid("006", 1),
                     "ContactId": sfid("003", 2), "IsPrimary": False}],
    }  # fmt: skip


def test_a_new_opportunity_gets_its_contact_role_without_a_read():
    # Given an opportunity this adapter has just created
    script = Script((200, ok(sfid("006", 1))), (200, [{"id": sfid("00K", 2), "success": True, "errors": []}]))
    crm = adapter_on(script)
    [deal] = crm.upsert("deals", [UpsertInput(EXT, "shopify:order:1", {"Name": "Order 1"})])
    # When it is associated with its contact
    crm.associate("deals", "contacts", [Association(deal.id, sfid("003", 1))])
    # Then no query: the role is created at once, as the primary contact
    assert [r.method for r in script.sent] == ["PATCH", "POST"]
    assert script.bodies()[1]["records"][0]["IsPrimary"] is True


def test_notes_are_linked_by_the_tasks_what_and_who_ids():
    # Given a note (Task) to link to its deal and its contact
    script = Script((200, [{"id": sfid("00T", 1), "success": True, "errors": []}]),
                    (200, [{"id": sfid("00T", 1), "success": True, "errors": []}]))  # fmt: skip
    crm = adapter_on(script)
    # When associated
    crm.associate("notes", "deals", [Association(sfid("00T", 1), sfid("006", 1))])
    crm.associate("notes", "contacts", [Association(sfid("00T", 1), sfid("003", 1))])
    # Then sObject Collections updates set WhatId, then WhoId
    assert [(r.method, urlsplit(r.url).path) for r in script.sent] == [
        ("PATCH", "/services/data/v62.0/composite/sobjects")
    ] * 2
    assert [b["records"] for b in script.bodies()] == [
        [{"attributes": {"type": "Task"}, "id": sfid("00T", 1), "WhatId": sfid("006", 1)}],
        [{"attributes": {"type": "Task"}, "id": sfid("00T", 1), "WhoId": sfid("003", 1)}],
    ]


def test_ids_that_are_not_salesforce_ids_never_reach_a_query():
    crm = adapter_on(Script())
    with pytest.raises(CrmError, match="not a Salesforce record id"):
        crm.associate("deals", "contacts", [Association("006' OR Name != '", sfid("003", 1))])


# ------------------------------------------------------------------------------------ against the fake (in-process)
def test_fake_collections_upsert_creates_then_updates_in_order():
    # Given the fake Salesforce
    fake = FakeSalesforce()
    crm = on_fake(fake)
    # When two contacts are upserted twice
    first = crm.upsert("contacts", [contact(1, Email="a@example.com"), contact(2)])
    again = crm.upsert("contacts", [contact(2, Phone="+15550000002"), contact(1)])
    # Then they are created once, updated the second time, results in input order
    assert [r.created for r in first] == [True, True]
    assert again == [UpsertResult(first[1].id, False), UpsertResult(first[0].id, False)]
    assert len(fake.all("Contact")) == 2
    assert fake.find("Contact", **{EXT: "crmsync:customer:2"})[0]["Phone"] == "+15550000002"


def test_fake_refuses_more_than_200_records_in_one_call():
    fake = FakeSalesforce()
    records = [{"attributes": {"type": "Contact"}, "LastName": "x", EXT: str(n)} for n in range(201)]
    status, _, body = fake.handle("PATCH", UPSERT_CONTACTS, {"Authorization": f"Bearer {fake.token}"},
                                  json.dumps({"allOrNone": False, "records": records}).encode())  # fmt: skip
    assert status == 400
    assert json.loads(body)[0]["errorCode"] == "EXCEEDED_ID_LIMIT"


def test_fake_single_upsert_answers_201_200_300_and_400():
    # Given the fake, a token, and the single-record upsert resource
    fake = FakeSalesforce()
    auth = {"Authorization": f"Bearer {fake.token}"}
    path = f"/services/data/v62.0/sobjects/Contact/{EXT}/crmsync:customer:1"

    def patch(body: dict[str, Any], target: str = path) -> tuple[int, Any, dict[str, str]]:
        status, headers, payload = fake.handle("PATCH", target, auth, json.dumps(body).encode())
        return status, json.loads(payload), headers

    # Then: created 201, updated 200, with Salesforce's UpsertResult shape and the limit header
    status, body, headers = patch({"LastName": "Lovelace"})
    assert (status, body["success"], body["created"], body["errors"]) == (201, True, True, [])
    assert headers["Sforce-Limit-Info"] == "api-usage=1/100000"
    assert patch({"FirstName": "Ada"})[:2] == (200, {"id": body["id"], "success": True, "errors": [],
                                                     "created": False})  # fmt: skip
    # And 300 with the matching records when two hold the id; 400 with the errors array when refused
    fake.seed("Contact", LastName="Twin", **{EXT: "crmsync:customer:1"})
    status, matches, _ = patch({"LastName": "x"})
    assert status == 300
    assert len(matches) == 2
    assert matches[0].startswith("/services/data/v62.0/sobjects/Contact/")
    status, errors, _ = patch({"Description": "x"}, path.replace(":1", ":2").replace("Contact", "Opportunity"))
    assert status == 400
    required = ["Name", "StageName", "CloseDate"]
    assert errors == [
        {
            "message": f"Required fields are missing: {required}",
            "errorCode": "REQUIRED_FIELD_MISSING",
            "fields": required,
        }
    ]


def test_fake_counts_calls_and_answers_request_limit_exceeded_after_the_allowance():
    fake = FakeSalesforce(daily_limit=2)
    crm = on_fake(fake)
    crm.upsert("contacts", [contact(1)])
    crm.upsert("contacts", [contact(2)])
    with pytest.raises(SalesforceLimitExceeded):
        crm.upsert("contacts", [contact(3)])
    assert fake.used == 2


def test_fake_duplicate_external_ids_and_duplicate_rules_fail_per_record():
    # Given two contacts holding one external id (no "Unique" on the field), and a duplicate rule on Email
    fake = FakeSalesforce(duplicate_rules={"Contact": "Email"})
    fake.seed("Contact", LastName="A", **{EXT: "crmsync:customer:1"})
    fake.seed("Contact", LastName="B", **{EXT: "crmsync:customer:1"})
    fake.seed("Contact", LastName="C", Email="taken@example.com", **{EXT: "crmsync:customer:9"})
    crm = on_fake(fake)
    # When three contacts are upserted: the ambiguous one, a duplicate by email, and a good one
    with pytest.raises(SalesforceRecordError) as caught:
        crm.upsert("contacts", [contact(1), contact(2, Email="taken@example.com"), contact(3)])
    # Then the good one is written and the two others fail, each with its own reason
    codes = [(f.index, f.code) for f in caught.value.failures]
    assert codes == [(0, "DUPLICATE_EXTERNAL_ID"), (1, "DUPLICATES_DETECTED")]
    assert caught.value.results[2] is not None
    assert len(fake.find("Contact", **{EXT: "crmsync:customer:3"})) == 1


def test_merge_reparents_roles_and_tasks_then_deletes_the_merged_contact():
    # Given two contacts of one person: the merged one has a phone, an opportunity role and a task
    fake = FakeSalesforce()
    primary = fake.seed("Contact", LastName="Curie", Email="marie@example.com", **{EXT: "crmsync:customer:1"})
    merged = fake.seed("Contact", LastName="[not provided]", Phone="+33612345678", **{EXT: "crmsync:customer:2"})
    deal = fake.seed("Opportunity", Name="Order", StageName="Closed Won", CloseDate="2024-01-01")
    fake.seed("OpportunityContactRole", OpportunityId=deal, ContactId=merged, IsPrimary=True)
    task = fake.seed("Task", Subject="Refund", WhoId=merged, WhatId=deal)
    crm = on_fake(fake)
    # When the merged contact is merged into the primary
    crm.merge("contacts", primary, merged)
    # Then one contact remains, with the phone it lacked, the opportunity role and the task
    [survivor] = fake.all("Contact")
    assert (survivor["Id"], survivor["Phone"], survivor["LastName"]) == (primary, "+33612345678", "Curie")
    assert [(r["OpportunityId"], r["ContactId"]) for r in fake.all("OpportunityContactRole")] == [(deal, primary)]
    assert fake.find("Task", Id=task)[0]["WhoId"] == primary
    # And it took two composite calls (read, then write all or none)
    assert [(s.method, s.path) for s in fake.seen] == [("POST", "composite")] * 2
    # And merging again changes nothing (one read)
    crm.merge("contacts", primary, merged)
    assert len(fake.seen) == 3


def test_merge_into_a_missing_primary_changes_nothing_and_says_so():
    fake = FakeSalesforce()
    merged = fake.seed("Contact", LastName="X")
    with pytest.raises(CrmError, match="primary does not exist"):
        on_fake(fake).merge("contacts", sfid("003", 999), merged)
    assert len(fake.all("Contact")) == 1


def test_bulk_upsert_above_the_threshold_uses_bulk_api_2_and_maps_results_back():
    # Given a threshold of 3, and one of five contacts ambiguous in Salesforce
    fake = FakeSalesforce()
    fake.seed("Contact", LastName="A", **{EXT: "crmsync:customer:4"})
    fake.seed("Contact", LastName="B", **{EXT: "crmsync:customer:4"})
    existing = fake.seed("Contact", LastName="Old", **{EXT: "crmsync:customer:1"})
    crm = on_fake(fake, bulk_threshold=3)
    # When five contacts are upserted
    with pytest.raises(SalesforceRecordError) as caught:
        crm.upsert("contacts", [contact(n, FirstName=f"F{n}") for n in range(5)])
    # Then a Bulk API 2.0 ingest job did it, and its results map back onto the inputs
    assert ("POST", "jobs/ingest") in [(s.method, s.path) for s in fake.seen]
    assert not fake.calls("PATCH", "composite")
    job = next(s.body for s in fake.seen if s.path == "jobs/ingest")
    assert (job["object"], job["operation"], job["externalIdFieldName"]) == ("Contact", "upsert", EXT)
    results = caught.value.results
    assert results[1] == UpsertResult(existing, created=False)
    assert [r.created for r in results if r is not None and r.id != existing] == [True, True, True]
    [failure] = caught.value.failures
    assert (failure.index, failure.code, failure.multiple_matches) == (4, "DUPLICATE_EXTERNAL_ID", True)
    assert fake.find("Contact", Id=existing)[0]["FirstName"] == "F1"


def test_bulk_upsert_is_not_used_at_or_below_the_threshold():
    fake = FakeSalesforce()
    crm = on_fake(fake, bulk_threshold=3)
    crm.upsert("contacts", [contact(n) for n in range(3)])
    assert [s.path for s in fake.seen] == [f"composite/sobjects/Contact/{EXT}"]


# ---------------------------------------------------------------------------------------- configuration
def test_credentials_from_a_secret():
    token = SalesforceCredentials.from_secret(json.dumps({"instance_url": URL, "access_token": "t"}))
    assert token.auth == "token"
    jwt = SalesforceCredentials.from_secret(
        json.dumps({"username": "u@acme.com", "consumer_key": "k", "private_key": "-----BEGIN", "domain": "test"})
    )
    assert (jwt.auth, jwt.domain) == ("jwt", "test")
    assert "private_key" not in repr(jwt)
    assert "-----BEGIN" not in repr(jwt)
    with pytest.raises(CrmNotConfigured, match="unknown keys"):
        SalesforceCredentials.from_secret(json.dumps({"instance_url": URL, "token": "t"}))
    with pytest.raises(CrmNotConfigured, match="incomplete"):
        SalesforceCredentials.from_secret(json.dumps({"username": "u"}))
    with pytest.raises(CrmNotConfigured, match="not a JSON object"):
        SalesforceCredentials.from_secret("unset")


def test_settings_for_salesforce():
    # Given CRM_BACKEND=salesforce with a token, and no CRMSYNC_MAPPING
    settings = Settings.model_validate(
        {"crm_backend": "salesforce", "salesforce_instance_url": URL, "salesforce_access_token": "t"}
    )
    # Then the Salesforce mapping is chosen, and the token never shows
    assert settings.mapping == "salesforce"
    assert str(settings.salesforce_access_token) == "**********"
    assert SalesforceCredentials.from_settings(settings) == SalesforceCredentials(instance_url=URL, access_token="t")
    # And without credentials the error says what to set
    with pytest.raises(CrmNotConfigured, match="SALESFORCE_INSTANCE_URL"):
        SalesforceCredentials.from_settings(Settings(crm_backend="salesforce"))


def test_error_messages_never_carry_emails_or_phones():
    assert redact("Email: invalid email address: ada@example.com; call +1 (502) 458-1234") == (
        "Email: invalid email address: <email>; call <phone>"
    )


def test_importing_the_adapter_imports_no_salesforce_library():
    # Given a fresh interpreter, When the adapter module is imported, Then simple-salesforce, requests and tenacity
    # are not (a function that does not write to Salesforce never pays for them)
    code = (
        "import sys, crmsync.crm.salesforce, crmsync.crm.backends; "
        "print(sorted(m for m in ('simple_salesforce', 'requests', 'tenacity', 'zeep') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO,
        env={"PYTHONPATH": str(REPO / "layers" / "core"), "POWERTOOLS_SERVICE_NAME": "crmsync"},
    )  # fmt: skip
    assert out.stdout.strip() == "[]"


# ------------------------------------------------------------------------------ required names: fillers on create only
@pytest.mark.parametrize("threshold", [200, 1], ids=["collections", "bulk api"])
def test_a_name_typed_in_salesforce_is_never_overwritten_by_a_filler(threshold):
    # Given a contact whose last name a sales rep typed, and crmsync knowing no last name for that person
    fake = FakeSalesforce()
    fake.seed("Contact", LastName="Lovelace", **{EXT: "crmsync:customer:1"})
    crm = on_fake(fake, bulk_threshold=threshold)
    nameless = UpsertInput(EXT, "crmsync:customer:1", {EXT: "crmsync:customer:1", "LastName": "", "Phone": "+1555"})
    # When crmsync upserts it
    [result] = crm.upsert("contacts", [nameless])
    # Then the contact is updated and keeps its name
    [record] = fake.find("Contact", **{EXT: "crmsync:customer:1"})
    assert (result.created, record["LastName"], record["Phone"]) == (False, "Lovelace", "+1555")


@pytest.mark.parametrize("threshold", [200, 1], ids=["collections", "bulk api"])
def test_a_new_contact_without_a_name_is_created_with_the_filler_in_one_more_call(threshold):
    # Given a new person without a last name next to one with a name
    fake = FakeSalesforce()
    crm = on_fake(fake, bulk_threshold=threshold)
    nameless = UpsertInput(EXT, "crmsync:customer:2", {EXT: "crmsync:customer:2", "Email": "b@example.com"})
    # When both are upserted
    results = crm.upsert("contacts", [contact(1), nameless])
    # Then both are created; the nameless one with Salesforce's filler, after one retry of that record alone
    assert [r.created for r in results] == [True, True]
    [named] = fake.find("Contact", **{EXT: "crmsync:customer:1"})
    [filled] = fake.find("Contact", **{EXT: "crmsync:customer:2"})
    assert (named["LastName"], filled["LastName"]) == ("Person 1", "[not provided]")
    if threshold == 200:
        upserts = fake.calls("PATCH", "composite/sobjects/Contact")
        assert [len(c.body["records"]) for c in upserts] == [2, 1]


def test_two_inputs_for_one_contact_keep_the_name_the_first_one_gave():
    # Given two inputs for one new contact in a batch, the later one without a last name
    fake = FakeSalesforce()
    crm = on_fake(fake)
    later = UpsertInput(EXT, "crmsync:customer:1", {EXT: "crmsync:customer:1", "Phone": "+1555"})
    # When upserted together, Then the record has the first input's name and the later input's phone
    crm.upsert("contacts", [contact(1), later])
    [record] = fake.find("Contact", **{EXT: "crmsync:customer:1"})
    assert (record["LastName"], record["Phone"]) == ("Person 1", "+1555")
