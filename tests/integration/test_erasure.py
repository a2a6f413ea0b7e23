"""Erasure and data requests end to end on moto (crmsync.erasure): Shopify's compliance webhooks, Stripe's
customer.deleted in both modes and DELETE /customers/{id} erase the person from state, the raw archive and the local
CRM, leave a proof without personal data, and stay erased through retries, late webhooks and replays."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from api import app as api_app
from convert import app as convert_app
from crm_writer import app as writer_app
from ingest import app as ingest_app
from privacy import app as privacy_app
from tests.conftest import EVENTS, FIXTURES
from tests.integration.conftest import api_event

SHOPIFY_SECRET = "local-shopify-secret"
STRIPE_SECRET = "whsec_local-stripe-secret"
OPERATOR = {"x-api-key": "local-operator-key"}
ORDER = json.loads((EVENTS / "payloads" / "shopify-orders-create.json").read_bytes())
ADA = "ada.lovelace@example.com"
ADA_SHOPIFY_ID = str(ORDER["customer"]["id"])
# What must be nowhere once Ada is erased (lower-case): her email, names, phone, street and Shopify customer id.
ADA_TRACES = ("lovelace", "5024581234", "bardstown", ADA_SHOPIFY_ID)


# ---- driving the pipeline --------------------------------------------------------------------------------------------
def settle(aws: Any, context: Any) -> dict[str, list[Any]]:
    """Drain every queue through its function (convert, CRM writer, privacy) until all are empty."""
    results: dict[str, list[Any]] = {"convert": [], "writer": [], "privacy": []}
    for _ in range(10):
        moved = False
        for name, url, handler in (
            ("convert", aws.env["INGEST_QUEUE_URL"], convert_app.lambda_handler),
            ("writer", aws.crm_queue_url, writer_app.lambda_handler),
            ("privacy", aws.env["PRIVACY_QUEUE_URL"], privacy_app.lambda_handler),
        ):
            messages = aws.receive_all(url)
            if messages:
                moved = True
                results[name].append(handler(aws.sqs_event(messages, name), context))
        if not moved:
            return results
    raise AssertionError("queues never settled")


def shopify(topic: str, payload: dict[str, Any], event_id: str) -> dict[str, Any]:
    from crmsync.sources.shopify import sign

    body = json.dumps(payload).encode()
    headers = {
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(body, SHOPIFY_SECRET),
        "X-Shopify-Shop-Domain": "demo.myshopify.com",
        "X-Shopify-Event-Id": event_id,
    }
    return api_event("POST", "/webhooks/shopify", body=body, headers=headers, path_params={"source": "shopify"})


def stripe(payload: dict[str, Any]) -> dict[str, Any]:
    from crmsync.sources.stripe import sign

    body = json.dumps(payload).encode()
    headers = {"Stripe-Signature": sign(body, STRIPE_SECRET, int(time.time()))}
    return api_event("POST", "/webhooks/stripe", body=body, headers=headers, path_params={"source": "stripe"})


@pytest.fixture
def deliver(aws, lambda_context):
    """Post a webhook to ingest, then settle the pipeline; returns ingest's answer."""

    def run(event: dict[str, Any]) -> dict[str, Any]:
        answer = json.loads(ingest_app.lambda_handler(event, lambda_context)["body"])
        results = settle(aws, lambda_context)
        for batch in results["convert"] + results["privacy"]:
            assert batch == {"batchItemFailures": []}, batch
        return answer

    return run


def api(context: Any, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    answer = api_app.lambda_handler(api_event(method, path, headers=OPERATOR, **kwargs), context)
    return answer["statusCode"], json.loads(answer["body"])


def customer_id_of(context: Any, email: str) -> str:
    status, body = api(context, "GET", "/customers", query={"email": email})
    assert status == 200
    [found] = body["customers"]
    return str(found["id"])


def local_crm(context: Any, object_type: str) -> list[dict[str, Any]]:
    status, body = api(context, "GET", f"/local-crm/{object_type}", path_params={"type": object_type})
    assert status == 200
    return list(body["results"])


def table_items(aws: Any, env_name: str) -> list[dict[str, Any]]:
    ddb = aws.client("dynamodb")
    items: list[dict[str, Any]] = []
    kwargs: dict[str, Any] = {"TableName": aws.env[env_name]}
    while True:
        page = ddb.scan(**kwargs)
        items.extend(page["Items"])
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def archived(aws: Any, prefix: str = "") -> list[str]:
    """Every version and delete marker in the archive bucket (an erased body leaves neither)."""
    answer = aws.client("s3").list_object_versions(Bucket=aws.env["ARCHIVE_BUCKET"], Prefix=prefix)
    return sorted(v["Key"] for v in answer.get("Versions", []) + answer.get("DeleteMarkers", []))


def stored_order(aws: Any) -> dict[str, Any]:
    [order] = [
        i
        for i in table_items(aws, "STATE_TABLE")
        if (i["pk"]["S"], i["sk"]["S"]) == ("ORDER#shopify:order:5678901234567", "STATE")
    ]
    return order


def proofs(aws: Any) -> list[dict[str, Any]]:
    return [
        json.loads(item["data"]["S"])
        for item in table_items(aws, "STATE_TABLE")
        if item["pk"]["S"].startswith("ERASURE#")
    ]


def assert_no_trace_of_ada(aws: Any) -> None:
    """Nothing crmsync holds names Ada any more: state, receipts, local CRM, archive."""
    for env_name in ("STATE_TABLE", "RECEIPTS_TABLE", "CRM_LOCAL_TABLE"):
        text = json.dumps(table_items(aws, env_name)).lower()
        assert [trace for trace in ADA_TRACES if trace in text] == [], env_name
    s3 = aws.client("s3")
    for key in archived(aws):
        body = s3.get_object(Bucket=aws.env["ARCHIVE_BUCKET"], Key=key)["Body"].read().decode().lower()
        assert [trace for trace in ADA_TRACES if trace in body] == [], key


def redact(event_id: str = "redact-1") -> dict[str, Any]:
    payload = json.loads((FIXTURES / "shopify" / "customers-redact.json").read_bytes())
    payload["customer"] = {"id": int(ADA_SHOPIFY_ID), "email": ADA, "phone": "+15024581234"}
    return shopify("customers/redact", payload, event_id)


# ---- Shopify customers/redact ----------------------------------------------------------------------------------------
def test_a_shopify_redact_erases_the_person_everywhere_and_leaves_a_proof(aws, deliver, lambda_context):
    # Given Ada's order synced: a customer, a contact and a deal associated with it
    deliver(shopify("orders/create", ORDER, "order-1"))
    ada = customer_id_of(lambda_context, ADA)
    [contact] = local_crm(lambda_context, "contacts")
    assert archived(aws, "raw/")
    # When Shopify asks to redact her
    assert deliver(redact())["status"] == "accepted"
    # Then she is gone from the API, from state and from the CRM
    assert api(lambda_context, "GET", f"/customers/{ada}")[0] == 404
    assert api(lambda_context, "GET", "/customers", query={"email": ADA}) == (200, {"customers": []})
    assert local_crm(lambda_context, "contacts") == []
    # And her order is kept as a fact (amount, stage) without her, and without its contact
    [deal] = local_crm(lambda_context, "deals")
    assert (deal["properties"]["amount"], deal["associations"]) == ("225.40", {})
    # And every raw body naming her (the order and the request itself) is gone, every version
    assert archived(aws, "raw/") == []
    # And the proof says what was erased where, with the CRM's answer, and names her by hashes only
    [proof] = proofs(aws)
    assert proof["status"] == "completed"
    assert proof["trigger"]["topic"] == "customers/redact"
    assert proof["subject"]["found"] is True
    assert len(proof["subject"]["identity_key_sha256"]) == 3  # email, Shopify customer id, phone
    assert proof["steps"]["state"]["identity_links_deleted"] == 3
    assert proof["steps"]["state"]["entities_anonymised"] == 1
    assert proof["steps"]["archive"]["objects_deleted"] == 2
    assert proof["steps"]["crm"]["answers"] == [
        {"object_type": "contacts", "id": contact["id"], "outcome": "deleted", "detail": ""}
    ]
    assert_no_trace_of_ada(aws)


def test_a_redact_delivered_again_and_processed_twice_changes_nothing(aws, deliver, lambda_context):
    # Given Ada erased by a redact
    deliver(shopify("orders/create", ORDER, "order-1"))
    deliver(redact())
    [before] = proofs(aws)
    # When Shopify redelivers the same request, and the privacy message is processed again (a retry)
    assert deliver(redact())["status"] == "duplicate"
    envelope = {"detail-type": "erasure.requested", "detail": None}
    redo = {
        **envelope,
        "detail": {
            "entity": "notice", "key": "shopify:customer:sha256:x", "customer_id": None, "source": "shopify",
            "source_id": None, "source_version": "2026-11-20T15:15:43Z", "receipt_id": before["trigger"]["receipt_id"],
            "correlation_id": "c", "data": {"erasure_id": before["erasure_id"], "scope": "customer"},
        },
    }  # fmt: skip
    sqs = aws.client("sqs")
    sqs.send_message(QueueUrl=aws.env["PRIVACY_QUEUE_URL"], MessageBody=json.dumps(redo))
    settle(aws, lambda_context)
    # Then the proof is the same, and there is still one deal and no contact
    assert proofs(aws) == [before]
    assert len(local_crm(lambda_context, "deals")) == 1
    assert local_crm(lambda_context, "contacts") == []
    # And a new redact of her (another request) completes, finding nothing left
    deliver(redact("redact-2"))
    second = [p for p in proofs(aws) if p["erasure_id"] != before["erasure_id"]]
    assert [(p["status"], p["subject"]["found"], p["steps"]["crm"]["answers"]) for p in second] == [
        ("completed", False, [])
    ]


def test_an_erasure_that_fails_at_the_crm_resumes_where_it_stopped(aws, deliver, lambda_context, monkeypatch):
    # Given Ada synced, and a CRM that cannot be reached
    deliver(shopify("orders/create", ORDER, "order-1"))
    from crmsync.crm import local as local_crm_module

    def unreachable(self: Any, object_type: str, ids: Any) -> Any:
        raise ConnectionError("CRM unreachable")

    with monkeypatch.context() as patched:
        patched.setattr(local_crm_module.LocalCrm, "delete", unreachable)
        # When the redact is processed, Then the record fails (the queue retries it) with state and archive done
        ingest_app.lambda_handler(redact(), lambda_context)
        results = settle(aws, lambda_context)
    assert results["privacy"][0]["batchItemFailures"]
    [proof] = proofs(aws)
    assert (proof["status"], proof["steps"]["archive"]["objects_deleted"]) == ("in_progress", 2)
    assert len(local_crm(lambda_context, "contacts")) == 1
    # And when the CRM is back and the message comes again, the contact id kept in the plan is erased
    # (settle deleted the failed message as it received it: SQS's redelivery is sent here by hand)
    sqs = aws.client("sqs")
    envelope = {
        "detail-type": "erasure.requested",
        "detail": {
            "entity": "notice", "key": "k", "customer_id": None, "source": "shopify", "source_id": None,
            "source_version": "2026-11-20T15:15:43Z", "receipt_id": proof["trigger"]["receipt_id"],
            "correlation_id": "c", "data": {"erasure_id": proof["erasure_id"], "scope": "customer"},
        },
    }  # fmt: skip
    sqs.send_message(QueueUrl=aws.env["PRIVACY_QUEUE_URL"], MessageBody=json.dumps(envelope))
    settle(aws, lambda_context)
    [done] = proofs(aws)
    assert done["status"] == "completed"
    assert done["attempts"] == 2
    assert [a["outcome"] for a in done["steps"]["crm"]["answers"]] == ["deleted"]
    assert local_crm(lambda_context, "contacts") == []
    assert not [i for i in table_items(aws, "STATE_TABLE") if i["pk"]["S"].startswith("ERASURE-PLAN#")]
    assert_no_trace_of_ada(aws)


# ---- nothing brings her back -----------------------------------------------------------------------------------------
def test_a_late_webhook_after_erasure_does_not_resurrect_her(aws, deliver, lambda_context):
    # Given Ada erased
    deliver(shopify("orders/create", ORDER, "order-1"))
    deliver(redact())
    # When a later update of her order, and a customer update of hers, arrive after the erasure
    later = {**ORDER, "updated_at": "2026-11-22T12:00:00Z", "current_total_price": "199.99"}
    assert deliver(shopify("orders/updated", later, "order-2"))["status"] == "accepted"
    customer = json.loads((FIXTURES / "identity" / "shopify-customer-create.json").read_bytes())
    customer.update(id=int(ADA_SHOPIFY_ID), email="Ada.Lovelace@example.com", updated_at="2026-11-22T12:00:00Z")
    assert deliver(shopify("customers/update", customer, "customer-1"))["status"] == "accepted"
    # Then she is not re-created: no customer, no contact; the order's new amount is kept, anonymised
    assert api(lambda_context, "GET", "/customers", query={"email": ADA}) == (200, {"customers": []})
    assert local_crm(lambda_context, "contacts") == []
    [deal] = local_crm(lambda_context, "deals")
    assert (deal["properties"]["amount"], deal["associations"]) == ("199.99", {})
    order = stored_order(aws)
    data = json.loads(order["data"]["S"])
    assert (data["customer_email"], data["customer_source_id"], "customer_id" in order) == (None, None, False)


def test_a_replay_after_erasure_does_not_resurrect_her(aws, deliver, lambda_context):
    # Given Ada erased, and a copy of her order's raw body that the erasure could not know of (e.g. restored from a
    # backup) back in the archive
    deliver(shopify("orders/create", ORDER, "order-1"))
    deliver(redact())
    now = datetime.now(UTC)
    aws.client("s3").put_object(
        Bucket=aws.env["ARCHIVE_BUCKET"],
        Key=f"raw/shopify/{now:%Y/%m/%d}/restored-copy",
        Body=json.dumps(ORDER).encode(),
        Metadata={"topic": "orders/create", "receipt-id": "shopify:restored:1", "received-at": now.isoformat()},
    )
    # When the operator replays the day
    window = {"from": (now - timedelta(days=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    status, answer = api(lambda_context, "POST", "/sync/replay", body=json.dumps(window).encode())
    assert status == 202
    assert answer["enqueued"] == 1  # only the copy: her own bodies are gone
    results = settle(aws, lambda_context)
    assert results["convert"] == [{"batchItemFailures": []}]
    # Then she is not re-created, and the order stays without her
    assert api(lambda_context, "GET", "/customers", query={"email": ADA}) == (200, {"customers": []})
    assert local_crm(lambda_context, "contacts") == []
    order = stored_order(aws)
    assert json.loads(order["data"]["S"])["customer_email"] is None


# ---- DELETE /customers/{id} ------------------------------------------------------------------------------------------
def test_delete_erases_end_to_end_and_asking_again_answers_the_proof(aws, deliver, lambda_context, load_event):
    # Given Ada synced
    deliver(shopify("orders/create", ORDER, "order-1"))
    ada = customer_id_of(lambda_context, ADA)
    # When the operator deletes her (the sample event, aimed at her id)
    event = load_event("api-customer-erasure.json")
    event.update(path=f"/customers/{ada}", pathParameters={"id": ada})
    answer = api_app.lambda_handler(event, lambda_context)
    assert answer["statusCode"] == 202
    first = json.loads(answer["body"])
    assert first["status"] == "requested"
    results = settle(aws, lambda_context)
    assert results["privacy"] == [{"batchItemFailures": []}]
    # Then she is gone everywhere, with a completed proof
    assert api(lambda_context, "GET", f"/customers/{ada}")[0] == 404
    assert local_crm(lambda_context, "contacts") == []
    assert archived(aws, "raw/") == []
    assert_no_trace_of_ada(aws)
    # And deleting again is the same erasure, answered with its proof (no new request)
    status, again = api(lambda_context, "DELETE", f"/customers/{ada}", path_params={"id": ada})
    assert (status, again["erasure_id"], again["status"]) == (202, first["erasure_id"], "completed")
    assert again["proof"]["trigger"] == {"source": "operator", "route": "DELETE /customers/{id}"}
    assert again["proof"]["steps"]["crm"]["answers"][0]["outcome"] == "deleted"
    assert aws.receive_all(aws.env["PRIVACY_QUEUE_URL"]) == []


def test_delete_of_an_unknown_customer_is_404(aws, lambda_context):
    status, body = api(lambda_context, "DELETE", "/customers/cus_missing", path_params={"id": "cus_missing"})
    assert (status, body) == (404, {"error": "no such customer"})
    assert aws.receive_all(aws.env["PRIVACY_QUEUE_URL"]) == []


def test_the_sample_privacy_event_is_handled(aws, load_event, lambda_context):
    # Given the documented erasure.requested for a customer crmsync never saw, When the privacy function gets it
    answer = privacy_app.lambda_handler(load_event("privacy-erasure-requested.json"), lambda_context)
    # Then it completes (nothing found), with its proof
    assert answer == {"batchItemFailures": []}
    [proof] = proofs(aws)
    assert (proof["erasure_id"], proof["status"], proof["subject"]["found"]) == (
        "era_0123456789abcdef01234567",
        "completed",
        False,
    )


# ---- shop/redact and data requests -----------------------------------------------------------------------------------
def test_shop_redact_erases_every_customer_of_the_shop(aws, deliver, lambda_context):
    # Given two Shopify buyers
    deliver(shopify("orders/create", ORDER, "order-1"))
    other = {**ORDER, "id": 5678901234999, "name": "#1043", "email": "grace@example.com", "customer": {
        **ORDER["customer"], "id": 7012345678999, "email": "grace@example.com", "phone": None}}  # fmt: skip
    deliver(shopify("orders/create", other, "order-2"))
    assert len(local_crm(lambda_context, "contacts")) == 2
    # When the shop is redacted (48 h after uninstall)
    shop = json.loads((FIXTURES / "shopify" / "shop-redact.json").read_bytes())
    deliver(shopify("shop/redact", shop, "shop-redact-1"))
    # Then both are erased, each with its own proof under the shop's, and the shop's raw bodies are gone
    assert local_crm(lambda_context, "contacts") == []
    assert api(lambda_context, "GET", "/customers", query={"email": "grace@example.com"}) == (200, {"customers": []})
    shop_proof = next(p for p in proofs(aws) if "shop_sha256" in p["subject"])
    children = [p for p in proofs(aws) if p.get("parent") == shop_proof["erasure_id"]]
    assert sorted(shop_proof["steps"]["customers"]["erasures"]) == sorted(p["erasure_id"] for p in children)
    assert [p["status"] for p in children] == ["completed", "completed"]
    assert archived(aws, "raw/") == []
    assert len(local_crm(lambda_context, "deals")) == 2


def test_a_data_request_writes_an_export_that_a_later_erasure_deletes(aws, deliver, lambda_context):
    # Given Ada synced
    deliver(shopify("orders/create", ORDER, "order-1"))
    # When Shopify forwards her data request
    request = json.loads((FIXTURES / "shopify" / "customers-data-request.json").read_bytes())
    request["customer"] = {"id": int(ADA_SHOPIFY_ID), "email": ADA, "phone": "+15024581234"}
    receipt = deliver(shopify("customers/data_request", request, "data-request-1"))["receipt_id"]
    # Then an export of everything crmsync holds about her is in the archive bucket, named in the notice
    [key] = archived(aws, "exports/")
    export = json.loads(aws.client("s3").get_object(Bucket=aws.env["ARCHIVE_BUCKET"], Key=key)["Body"].read())
    assert export["found"] is True
    assert export["customer"]["emails"] == [ADA]
    assert [o["source_id"] for o in export["customer"]["orders"]] == ["5678901234567"]
    assert [json.loads(raw["text"])["id"] for raw in export["raw_webhooks"]] == [ORDER["id"]]
    notice = next(i for i in table_items(aws, "STATE_TABLE") if i["pk"]["S"] == f"NOTICE#{receipt}")
    assert json.loads(notice["data"]["S"])["export_key"] == key
    # And when she is erased later, the export goes with her
    deliver(redact())
    assert archived(aws, "exports/") == []


# ---- Stripe customer.deleted: keep or anonymise ----------------------------------------------------------------------
def stripe_customer(event_type: str, event_id: str) -> dict[str, Any]:
    payload = json.loads((FIXTURES / "stripe" / "customer.deleted.json").read_bytes())
    payload.update(
        id=event_id, type=event_type, created=int(time.time()) - (10 if event_type != "customer.deleted" else 0)
    )
    return payload


def test_stripe_customer_deleted_keeps_the_person_by_default(aws, deliver, lambda_context):
    # Given a Stripe customer synced
    deliver(stripe(stripe_customer("customer.created", "evt_created")))
    zoe = customer_id_of(lambda_context, "zoe.odegard@example.no")
    # When Stripe says the customer was deleted (STRIPE_CUSTOMER_DELETED unset: keep)
    deliver(stripe(stripe_customer("customer.deleted", "evt_deleted")))
    # Then crmsync keeps her, and nothing was erased
    assert customer_id_of(lambda_context, "zoe.odegard@example.no") == zoe
    assert len(local_crm(lambda_context, "contacts")) == 1
    assert proofs(aws) == []


def test_stripe_customer_deleted_erases_the_person_when_set_to_anonymise(aws, deliver, lambda_context, monkeypatch):
    # Given STRIPE_CUSTOMER_DELETED=anonymise and ERASURE_CRM_ACTION=anonymise, and a Stripe customer synced
    monkeypatch.setenv("STRIPE_CUSTOMER_DELETED", "anonymise")
    monkeypatch.setenv("ERASURE_CRM_ACTION", "anonymise")
    deliver(stripe(stripe_customer("customer.created", "evt_created")))
    zoe = customer_id_of(lambda_context, "zoe.odegard@example.no")
    [before] = local_crm(lambda_context, "contacts")
    # When Stripe says the customer was deleted
    receipt = deliver(stripe(stripe_customer("customer.deleted", "evt_deleted")))["receipt_id"]
    # Then she is erased from state, and her contact stays in the CRM without its personal properties
    assert api(lambda_context, "GET", f"/customers/{zoe}")[0] == 404
    [after] = local_crm(lambda_context, "contacts")
    assert after["id"] == before["id"]
    assert after["properties"] == {"crmsync_external_id": f"crmsync:customer:{zoe}"}
    [proof] = proofs(aws)
    assert (proof["status"], proof["steps"]["crm"]["action"]) == ("completed", "anonymise")
    assert [a["outcome"] for a in proof["steps"]["crm"]["answers"]] == ["anonymised"]
    # And the recorded customer.deleted notice keeps no email
    notice = next(i for i in table_items(aws, "STATE_TABLE") if i["pk"]["S"] == f"NOTICE#{receipt}")
    assert "odegard" not in json.dumps(notice).lower()
    # And a late customer.updated of hers is dropped
    deliver(stripe(stripe_customer("customer.updated", "evt_updated")))
    assert api(lambda_context, "GET", "/customers", query={"email": "zoe.odegard@example.no"}) == (
        200,
        {"customers": []},
    )
