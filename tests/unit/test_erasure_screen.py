"""What convert may store once tombstones are checked (crmsync.erasure.screen, screen_notice), on the in-memory state,
and PayPal's signed transmission as ingest reads it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from crmsync.erasure import key_hash, screen, screen_notice
from crmsync.messages import DetailType, IngestMessage
from crmsync.models import Customer, Money, Order, OrderStatus, Payment, PaymentStatus
from crmsync.sources.base import Converted, Notice, SignatureError
from crmsync.sources.paypal import PayPalWebhooks
from tests.fakes import MemoryState

AT = datetime(2026, 11, 20, 10, tzinfo=UTC)


def customer(email: str | None = "ada@example.com", phone: str | None = "+15024581234") -> Customer:
    return Customer(
        source="shopify", source_id="70", source_version=AT, receipt_id="r1", email=email, first_name="Ada",
        last_name="Lovelace", phone=phone, address=None,
    )  # fmt: skip


def order(email: str | None = "ada@example.com") -> Order:
    return Order(
        source="shopify", source_id="1", source_version=AT, receipt_id="r1", name="#1", status=OrderStatus.PAID,
        fulfillment_status=None, total=Money(amount=1000, currency="USD"), presentment_total=None, subtotal=None,
        total_tax=None, total_discounts=None, total_shipping=None, line_items=(), customer_email=email,
        customer_source_id="70", placed_at=AT, cancelled_at=None, closed_at=None,
    )  # fmt: skip


def payment() -> Payment:
    return Payment(
        source="stripe", source_id="pi_1", source_version=AT, receipt_id="r2", kind="payment",
        status=PaymentStatus.SUCCEEDED, amount=Money(amount=1000, currency="USD"), customer_email="grace@example.com",
        customer_name="Grace Hopper", customer_phone="+15024581234",
    )  # fmt: skip


def converted(*, with_customer: bool = True) -> Converted:
    return Converted(
        customer=customer() if with_customer else None,
        entities=((DetailType.ORDER_PLACED, order()), (DetailType.PAYMENT_SUCCEEDED, payment())),
    )


def entities(screened: Converted) -> tuple[Order, Payment]:
    [(_, first), (_, second)] = screened.entities
    assert isinstance(first, Order)
    assert isinstance(second, Payment)
    return first, second


def test_nothing_tombstoned_changes_nothing_in_one_read():
    state = MemoryState()
    original = converted()
    assert screen(original, state.as_store()) is original
    assert state.calls["erased"] == 1
    # And a webhook naming nobody costs no read at all
    assert screen(Converted(), state.as_store()) == Converted()
    assert state.calls["erased"] == 1


def test_an_erased_email_drops_the_person_and_anonymises_their_entities():
    state = MemoryState()
    state.put_tombstone(key_hash("email:ada@example.com"), "era_1", AT.isoformat())
    screened = screen(converted(), state.as_store())
    assert screened.customer is None
    kept_order, kept_payment = entities(screened)
    assert (kept_order.customer_email, kept_order.customer_source_id, kept_order.total.amount) == (None, None, 1000)
    assert kept_payment.customer_email is None  # hers by the webhook: the person was erased
    # And an entity of hers in a webhook without a customer is anonymised by its own keys
    [(_, alone)] = screen(Converted(entities=((DetailType.ORDER_PLACED, order()),)), state.as_store()).entities
    assert isinstance(alone, Order)
    assert alone.customer_email is None


def test_an_erased_source_id_drops_the_person_too():
    state = MemoryState()
    state.put_tombstone(key_hash("shopify:customer:70"), "era_1", AT.isoformat())
    assert screen(Converted(customer=customer(email="new@example.com")), state.as_store()).customer is None


def test_an_erased_phone_alone_only_drops_the_phone():
    # Given only a phone tombstoned (a household may share it with the erased person)
    state = MemoryState()
    state.put_tombstone(key_hash("phone:+15024581234"), "era_1", AT.isoformat())
    screened = screen(converted(), state.as_store())
    # Then the customer stays without the phone, the payment without its phone, everything else as it was
    assert screened.customer is not None
    assert (screened.customer.email, screened.customer.phone) == ("ada@example.com", None)
    kept_order, kept_payment = entities(screened)
    assert kept_order.customer_email == "ada@example.com"
    assert (kept_payment.customer_email, kept_payment.customer_phone) == ("grace@example.com", None)
    # And a guest known by that phone alone is dropped
    guest = customer(email=None).model_copy(update={"source_id": None})
    assert screen(Converted(customer=guest), state.as_store()).customer is None


def message(source: str, topic: str) -> IngestMessage:
    return IngestMessage(
        receipt_id=f"{source}:r9", source=source, topic=topic, archive_key="raw/k", received_at=AT, correlation_id="c"
    )


def test_a_redact_notice_tombstones_its_key_and_keeps_no_identifier():
    state = MemoryState()
    state.link_identity("shopify:customer:70", "cus_1", "same shopify customer id")
    notice = Notice(
        DetailType.ERASURE_REQUESTED, "shopify:customer:70",
        {"kind": "customers/redact", "shop_domain": "demo.myshopify.com", "customer_id": "70"},
    )  # fmt: skip
    screened = screen_notice(notice, message("shopify", "customers/redact"), state.as_store(), stripe_deleted="keep")
    assert screened.customer_id == "cus_1"
    assert state.erased([key_hash("shopify:customer:70")]) == {key_hash("shopify:customer:70")}
    assert "70" not in screened.notice.key.split(":")
    assert "customer_id" not in screened.notice.data
    assert screened.notice.data["key_sha256"] == [key_hash("shopify:customer:70")]


@pytest.mark.parametrize(("mode", "erases"), [("keep", False), ("anonymise", True)])
def test_a_stripe_customer_deleted_erases_only_when_set_to(mode, erases):
    state = MemoryState()
    notice = Notice(DetailType.CUSTOMER_DELETED, "stripe:customer:cus_X", {"email": "zoe@example.no"})
    screened = screen_notice(notice, message("stripe", "customer.deleted"), state.as_store(), stripe_deleted=mode)
    assert [n.detail_type for n in screened.also] == ([DetailType.ERASURE_REQUESTED] if erases else [])
    assert ("zoe@example.no" in str(screened.notice.data)) is not erases
    assert bool(state.erased([key_hash("email:zoe@example.no")])) is erases


# --- PayPal's signed transmission (crmsync.ingest refuses old ones and binds each id to its body) -------------------
def paypal_headers(time: str) -> dict[str, str]:
    return {
        "paypal-transmission-id": "tx-1",
        "paypal-transmission-time": time,
        "paypal-transmission-sig": "c2ln",
        "paypal-cert-url": "https://api.paypal.com/cert",
        "paypal-auth-algo": "SHA256withRSA",
    }


def test_paypal_names_its_signed_transmission():
    source = PayPalWebhooks()
    assert source.signed_transmission(paypal_headers("2026-11-20T15:15:43Z")) == (
        "tx-1",
        datetime(2026, 11, 20, 15, 15, 43, tzinfo=UTC),
    )
    for bad in ("yesterday", "2026-11-20T15:15:43"):  # unreadable, or without a time zone
        with pytest.raises(SignatureError):
            source.signed_transmission(paypal_headers(bad))
