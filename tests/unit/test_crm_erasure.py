"""CrmPort.delete and CrmPort.anonymise on HubSpot and Salesforce (erasure, crmsync.erasure), without sockets: the
requests they build (checked against HubSpot's OpenAPI specs) and what each documented answer becomes."""

from __future__ import annotations

import json
from collections.abc import Mapping
from urllib.parse import parse_qs, urlsplit

import pytest

from crmsync.crm.errors import CrmRejected
from crmsync.crm.port import ErasureAnswer
from crmsync.crm.salesforce import SalesforceRecordError
from crmsync.crm.transport import HttpResponse
from local import hubspot_spec
from tests.unit.hubspot_doubles import Sent, SpecCheckingTransport, batch, error, hubspot, record, standard_error
from tests.unit.test_salesforce import Script, adapter_on, sfid

NO_CONTENT = HttpResponse(204)


class RequestCheckingTransport(SpecCheckingTransport):
    """Requests checked against the specs as SpecCheckingTransport does; a 204 answer (no body, which the spec
    validator cannot read) is passed through unchecked."""

    def send(
        self, method: str, url: str, headers: Mapping[str, str], body: bytes | None, timeout: float
    ) -> HttpResponse:
        if self.script and self.script[0] is NO_CONTENT:
            parts = urlsplit(url)
            hubspot_spec.validate_request(method, parts.path, body, query={}, headers=headers)
            self.sent.append(Sent(method, parts.path, json.loads(body) if body else None, dict(headers), timeout))
            self.script.pop(0)
            return NO_CONTENT
        return super().send(method, url, headers, body, timeout)


# --- HubSpot ------------------------------------------------------------------------------------------------------
def test_hubspot_deletes_contacts_with_the_gdpr_delete_endpoint_one_by_one():
    # Given HubSpot that deletes the first contact and no longer has the second
    transport = RequestCheckingTransport(NO_CONTENT, error(404, "Object not found", "OBJECT_NOT_FOUND"))
    # When both are deleted
    answers = hubspot(transport).delete("contacts", ["101", "102"])
    # Then each got its own GDPR delete, by id, and the answers say what HubSpot said
    assert [(s.method, s.path, s.body) for s in transport.sent] == [
        ("POST", "/crm/v3/objects/contacts/gdpr-delete", {"objectId": "101"}),
        ("POST", "/crm/v3/objects/contacts/gdpr-delete", {"objectId": "102"}),
    ]
    assert answers == [
        ErasureAnswer("101", "deleted", "HTTP 204 gdpr-delete"),
        ErasureAnswer("102", "not_found", "HTTP 404 gdpr-delete"),
    ]


def test_hubspot_refuses_a_gdpr_delete_loudly():
    transport = SpecCheckingTransport(error(400, "Cannot delete", "VALIDATION_ERROR"))
    with pytest.raises(CrmRejected, match="gdpr-delete"):
        hubspot(transport).delete("contacts", ["101"])


def test_hubspot_archives_other_objects_in_batches():
    transport = RequestCheckingTransport(NO_CONTENT)
    answers = hubspot(transport).delete("deals", ["201", "202"])
    [sent] = transport.sent
    assert (sent.path, sent.body) == ("/crm/v3/objects/deals/batch/archive", {"inputs": [{"id": "201"}, {"id": "202"}]})
    assert [a.outcome for a in answers] == ["deleted", "deleted"]


def test_hubspot_anonymises_by_clearing_properties_with_batch_update():
    # Given HubSpot that updates the first contact and reports the second missing (207)
    missing = standard_error("Object not found", category="OBJECT_NOT_FOUND", context={"ids": ["102"]})
    transport = SpecCheckingTransport(batch([record("101")], [missing], status=207))
    # When both are anonymised
    answers = hubspot(transport).anonymise("contacts", ["101", "102"], ["email", "firstname", "phone"])
    # Then one batch/update sets each property to "" on each record
    [sent] = transport.sent
    cleared = {"email": "", "firstname": "", "phone": ""}
    assert (sent.path, sent.body) == (
        "/crm/v3/objects/contacts/batch/update",
        {"inputs": [{"id": "101", "properties": cleared}, {"id": "102", "properties": cleared}]},
    )
    assert [(a.id, a.outcome) for a in answers] == [("101", "anonymised"), ("102", "not_found")]


def test_hubspot_anonymise_refused_for_another_reason_is_raised():
    refused = standard_error("Property values were not valid", context={"ids": ["101"]})
    transport = SpecCheckingTransport(batch([], [refused], status=207))
    with pytest.raises(CrmRejected):
        hubspot(transport).anonymise("contacts", ["101"], ["email"])


# --- Salesforce ---------------------------------------------------------------------------------------------------
def test_salesforce_deletes_with_sobject_collections_and_tells_gone_records_apart():
    first, gone, locked = sfid("003", 1), sfid("003", 2), sfid("003", 3)
    transport = Script(
        [
            {"id": first, "success": True, "errors": []},
            {"id": gone, "success": False, "errors": [{"statusCode": "ENTITY_IS_DELETED", "message": "deleted"}]},
        ]
    )
    answers = adapter_on(transport).delete("contacts", [first, gone])
    [sent] = transport.sent
    url = urlsplit(str(sent.url))
    assert (sent.method, url.path) == ("DELETE", "/services/data/v62.0/composite/sobjects")
    assert parse_qs(url.query) == {"ids": [f"{first},{gone}"], "allOrNone": ["false"]}
    assert [(a.id, a.outcome) for a in answers] == [(first, "deleted"), (gone, "not_found")]
    # And a record Salesforce refuses to delete is an error naming it
    refusing = Script([{"id": locked, "success": False, "errors": [{"statusCode": "DELETE_FAILED", "message": "x"}]}])
    with pytest.raises(SalesforceRecordError):
        adapter_on(refusing).delete("contacts", [locked])


def test_salesforce_anonymises_with_nulls_and_fills_required_fields():
    contact = sfid("003", 1)
    transport = Script([{"id": contact, "success": True, "errors": []}])
    answers = adapter_on(transport).anonymise("contacts", [contact], ["Email", "FirstName", "LastName"])
    [sent] = transport.sent
    assert sent.method == "PATCH"
    assert json.loads(sent.body or b"{}") == {
        "allOrNone": False,
        "records": [
            {"attributes": {"type": "Contact"}, "id": contact, "Email": None, "FirstName": None,
             "LastName": "[not provided]"}
        ],
    }  # fmt: skip
    assert answers == [ErasureAnswer(contact, "anonymised", "sObject Collections: success")]


def test_salesforce_erasure_never_sends_something_that_is_not_an_id():
    with pytest.raises(Exception, match="not a Salesforce record id"):
        adapter_on(Script()).delete("contacts", ["1 OR 1=1"])
