"""WooCommerce deliveries as ingest sees them: the creation ping, signatures, topic, store and receipt ids."""

import base64
import hashlib
import hmac
import json
from pathlib import Path
from typing import Any

import pytest

from crmsync.sources.base import SignatureError, WebhookSource
from crmsync.sources.woocommerce import WooCommerceWebhooks, is_ping, sign, verify

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "woocommerce"
SECRET = "wc_current_secret"
OLD_SECRET = "wc_previous_secret"
STORE = "https://example.com/"

woo = WooCommerceWebhooks()


def payload(name: str) -> bytes:
    """Raw bytes of a WooCommerce webhook body, exactly as they would reach the ingest function."""
    return (FIXTURES / name).read_bytes()


def headers(topic: str = "order.created", **extra: str) -> dict[str, str]:
    """Delivery headers as ingest hands them over (lower-case names)."""
    resource, _, event = topic.partition(".")
    return {
        "x-wc-webhook-source": STORE,
        "x-wc-webhook-topic": topic,
        "x-wc-webhook-resource": resource,
        "x-wc-webhook-event": event,
        "x-wc-webhook-id": "12",
        "x-wc-webhook-delivery-id": "8f14e45fceea167a5a36dedd4bea2543",
        **extra,
    }


@pytest.fixture
def body() -> bytes:
    return payload("order.created.json")


# ---- the source as a whole ---------------------------------------------------------------------------------------


def test_it_is_a_webhook_source_with_its_setting_and_topics() -> None:
    # Given the source / Then it satisfies the protocol ingest uses and names its setting and topics
    source: WebhookSource = woo
    assert source.name == "woocommerce"
    assert source.secret_setting == "woocommerce_secret_id"
    assert source.handled_topics == {
        "order.created",
        "order.updated",
        "order.deleted",
        "order.restored",
        "customer.created",
        "customer.updated",
        "customer.deleted",
    }


# ---- the creation ping -------------------------------------------------------------------------------------------


def test_creation_ping_is_recognised() -> None:
    # Given the unsigned form-encoded body WooCommerce posts when a webhook is saved
    ping = payload("ping.form")

    # When ingest asks / Then it is a ping (answered 200, never processed)
    assert ping == b"webhook_id=42"
    assert woo.is_ping(ping, {"content-type": "application/x-www-form-urlencoded"})
    assert is_ping(b"webhook_id=7\r\n", {"x-wc-webhook-signature": "  "})


@pytest.mark.parametrize(
    ("ping_body", "ping_headers"),
    [
        pytest.param(b"webhook_id=42", {"x-wc-webhook-signature": "c2lnbmVk"}, id="signed"),
        pytest.param(b'{"webhook_id": 42}', {}, id="json"),
        pytest.param(b"webhook_id=", {}, id="no-digits"),
        pytest.param(b"webhook_id=42&extra=1", {}, id="more-fields"),
        pytest.param(b"webhook_id=abc", {}, id="not-digits"),
        pytest.param(b"", {}, id="empty"),
    ],
)
def test_anything_else_is_not_a_ping(ping_body: bytes, ping_headers: dict[str, str]) -> None:
    # Given a body or headers that differ from the ping / Then it goes through verification like any delivery
    assert not woo.is_ping(ping_body, ping_headers)


def test_a_real_order_delivery_is_not_a_ping(body: bytes) -> None:
    # Given a signed JSON order body / Then it is not a ping, signed or not
    assert not woo.is_ping(body, headers(**{"x-wc-webhook-signature": sign(body, SECRET)}))
    assert not woo.is_ping(body, {})


# ---- signatures --------------------------------------------------------------------------------------------------


def test_sign_matches_an_independent_computation(body: bytes) -> None:
    # Given the algorithm WooCommerce core uses, computed here without the module
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()

    # When the module signs / Then it produces the same header value
    assert sign(body, SECRET) == expected


def test_sign_matches_known_vectors(body: bytes) -> None:
    # Given fixed bodies and keys / Then the header is the value from
    #   printf '{"id":727}' | openssl dgst -sha256 -hmac wc-secret -binary | base64
    #   openssl dgst -sha256 -hmac wc_current_secret -binary order.created.json | base64
    assert sign(b'{"id":727}', "wc-secret") == "XOvG+/mKAKiNfNL5aDmmmrY8ZRtaA96JXvSO3vPAbC8="
    assert sign(body, SECRET) == "ktTGM4uBvAq3Bmh1l9PCcaK9ko58GnVbevsA3Y2xqOw="


def test_valid_signature_passes(body: bytes) -> None:
    # Given a delivery signed with the configured secret / When verified through the source / Then nothing is raised
    woo.verify(body, headers(**{"x-wc-webhook-signature": sign(body, SECRET)}), [SECRET])


def test_surrounding_whitespace_in_the_header_is_tolerated(body: bytes) -> None:
    # Given a proxy that padded the header / When verified / Then it still passes
    verify(body, f" {sign(body, SECRET)}  ", [SECRET])


def test_wrong_secret_fails(body: bytes) -> None:
    # Given a body signed with some other key / When verified / Then it is a mismatch
    with pytest.raises(SignatureError, match="signature mismatch"):
        woo.verify(body, headers(**{"x-wc-webhook-signature": sign(body, "not-the-secret")}), [SECRET])


def test_tampered_body_fails(body: bytes) -> None:
    # Given a valid signature over the original bytes / When the total changes
    signature = sign(body, SECRET)
    tampered = body.replace(b'"total": "29.35"', b'"total": "0.35"')
    assert tampered != body

    # Then the signature no longer fits
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(tampered, signature, [SECRET])


def test_reserialised_json_fails(body: bytes) -> None:
    # Given the same JSON re-encoded compactly / Then it is different bytes, so not the signed body
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(compact, sign(body, SECRET), [SECRET])


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header_fails(body: bytes, header: str | None) -> None:
    # Given no signature at all / When verified / Then it says the signature is missing
    with pytest.raises(SignatureError, match="missing signature"):
        verify(body, header, [SECRET])


def test_missing_header_through_the_source(body: bytes) -> None:
    # Given delivery headers without x-wc-webhook-signature / Then the source reports it missing
    with pytest.raises(SignatureError, match="missing signature"):
        woo.verify(body, headers(), [SECRET])


def test_non_ascii_header_is_a_mismatch_not_a_crash(body: bytes) -> None:
    # Given garbage in the header / When verified / Then it is an ordinary mismatch
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(body, "é" * 44, [SECRET])


def test_rotated_secret_second_in_the_list_matches(body: bytes) -> None:
    # Given a rotation in progress (new secret first) and a delivery still signed with the old one
    signature = sign(body, OLD_SECRET)

    # When verified against both / Then it passes, and so does one signed with the new secret
    verify(body, signature, [SECRET, OLD_SECRET])
    verify(body, sign(body, SECRET), [SECRET, OLD_SECRET])


def test_rotated_secret_no_longer_listed_fails(body: bytes) -> None:
    # Given the old secret has been dropped from the list / Then its signatures stop working
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(body, sign(body, OLD_SECRET), [SECRET])


@pytest.mark.parametrize("secrets", [[], [""], ["", "  "]])
def test_no_usable_secret_is_refused(body: bytes, secrets: list[str]) -> None:
    # Given nothing to verify with (blank keys would let anyone sign) / Then verification refuses
    with pytest.raises(SignatureError, match="no secret configured"):
        verify(body, sign(body, ""), secrets)


def test_a_single_string_is_one_secret_not_many(body: bytes) -> None:
    # Given a caller passing a bare string / When a one-character key signs / Then it does not match
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(body, sign(body, "w"), SECRET)
    verify(body, sign(body, SECRET), SECRET)


def test_error_messages_never_contain_a_secret(body: bytes) -> None:
    # Given every failure mode / Then no message reveals a configured secret
    for header, secrets in [(None, [SECRET]), ("bad", [SECRET, OLD_SECRET]), ("bad", [])]:
        with pytest.raises(SignatureError) as caught:
            verify(body, header, secrets)
        assert SECRET not in str(caught.value)
        assert OLD_SECRET not in str(caught.value)


# ---- topic, store and receipt id ---------------------------------------------------------------------------------


def test_topic_and_account_come_from_the_headers(body: bytes) -> None:
    # Given an order.updated delivery / Then the topic and the store URL are read from the headers
    assert woo.topic(headers("order.updated"), json.loads(body)) == "order.updated"
    assert woo.account(headers("order.updated"), json.loads(body)) == "https://example.com/"
    assert woo.topic({}, json.loads(body)) is None
    assert woo.account({"x-wc-webhook-source": " "}, json.loads(body)) is None


def test_receipt_id_is_store_resource_id_and_modified_time(body: bytes) -> None:
    # Given the sample order / When its receipt id is taken
    receipt = woo.receipt_id(headers("order.updated"), json.loads(body), body)

    # Then it names the store, the resource and event, the order and its modified time (no delivery id)
    assert receipt == "woocommerce:https://example.com/:order.updated:727:2017-03-22T19:28:08"


def test_a_second_delivery_of_the_same_state_has_the_same_receipt_id(body: bytes) -> None:
    # Given the same order state delivered twice (new delivery id each time, as core does)
    first = headers("order.updated", **{"x-wc-webhook-delivery-id": "aaa"})
    second = headers("order.updated", **{"x-wc-webhook-delivery-id": "bbb"})

    # Then both deliveries share one receipt id, so the second is a duplicate
    parsed = json.loads(body)
    assert woo.receipt_id(first, parsed, body) == woo.receipt_id(second, parsed, body)


def test_created_and_updated_of_one_save_are_two_receipts(body: bytes) -> None:
    # Given order.created and order.updated sent for the same save (same modified time)
    parsed = json.loads(body)
    # Then neither is taken for a duplicate of the other
    assert woo.receipt_id(headers("order.created"), parsed, body) != woo.receipt_id(
        headers("order.updated"), parsed, body
    )


def test_a_newer_modified_time_is_a_new_receipt(body: bytes) -> None:
    # Given the order modified again / Then its receipt id differs
    parsed: dict[str, Any] = json.loads(body)
    newer = {**parsed, "date_modified_gmt": "2017-03-22T19:30:00"}
    assert woo.receipt_id(headers("order.updated"), newer, body) == (
        "woocommerce:https://example.com/:order.updated:727:2017-03-22T19:30:00"
    )


def test_resource_falls_back_to_the_topic() -> None:
    # Given a delivery without x-wc-webhook-resource / Then the resource is the topic's first part
    customer = payload("customer.created.json")
    delivery = {"x-wc-webhook-source": STORE, "x-wc-webhook-topic": "customer.created"}
    assert woo.receipt_id(delivery, json.loads(customer), customer) == (
        "woocommerce:https://example.com/:customer.created:25:2017-03-21T19:09:30"
    )


@pytest.mark.parametrize(
    ("topic", "name", "expected"),
    [
        ("order.deleted", "order.deleted.json", "woocommerce:https://example.com/:order.deleted:727:deleted"),
        ("customer.deleted", "customer.deleted.json", "woocommerce:https://example.com/:customer.deleted:26:deleted"),
    ],
)
def test_deleted_bodies_are_keyed_on_the_id_and_the_delivery(topic: str, name: str, expected: str) -> None:
    # Given a *.deleted body ({"id": n}, no modified time) / Then the receipt id is the id, "deleted" and the delivery
    # id; without one (a deletion webhook reconciliation replays), the id and "deleted" alone
    deleted = payload(name)
    delivery = headers(topic)
    assert (
        woo.receipt_id(delivery, json.loads(deleted), deleted) == f"{expected}:{delivery['x-wc-webhook-delivery-id']}"
    )
    del delivery["x-wc-webhook-delivery-id"]
    assert woo.receipt_id(delivery, json.loads(deleted), deleted) == expected


def test_deleted_bodies_are_keyed_on_their_delivery_when_it_has_an_id() -> None:
    # Given two deliveries of order 727's {"id": 727}: deleted, restored at the store, deleted again
    deleted = payload("order.deleted.json")
    first, second = (headers("order.deleted") | {"x-wc-webhook-delivery-id": d} for d in ("a1f0", "b2e1"))
    # Then each is its own receipt (the second deletion is no duplicate of the first), and the same delivery again is
    ids = [woo.receipt_id(h, json.loads(deleted), deleted) for h in (first, second, first)]
    assert ids == [f"woocommerce:https://example.com/:order.deleted:727:deleted:{d}" for d in ("a1f0", "b2e1", "a1f0")]


@pytest.mark.parametrize(
    "parsed",
    [
        pytest.param([1, 2], id="array"),
        pytest.param({"action": "woocommerce_new_order", "arg": 5}, id="action-topic"),
        pytest.param({"id": 5, "date_modified_gmt": None}, id="no-modified-time"),
        pytest.param({"id": True, "date_modified_gmt": "2024-01-01T00:00:00"}, id="bool-id"),
    ],
)
def test_bodies_without_id_and_modified_time_are_keyed_on_their_bytes(parsed: Any) -> None:
    # Given a signed JSON body that is not a resource we can key / Then the receipt id is a hash of the bytes
    raw = json.dumps(parsed).encode()
    digest = hashlib.sha256(raw).hexdigest()
    assert (
        woo.receipt_id(headers("order.updated"), parsed, raw)
        == f"woocommerce:https://example.com/:order.updated:sha256-{digest}"
    )


def test_receipt_id_without_any_headers_still_works(body: bytes) -> None:
    # Given no store, topic or resource headers / Then placeholders keep the receipt id well-formed
    assert woo.receipt_id({}, json.loads(body), body) == "woocommerce:-:-.-:727:2017-03-22T19:28:08"
