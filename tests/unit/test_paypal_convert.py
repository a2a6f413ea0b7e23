"""PayPal webhook events → canonical Payment / Refund / Customer / Dispute; every expectation is written by hand."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from crmsync.messages import DetailType
from crmsync.models import (
    Address,
    Customer,
    Dispute,
    DisputeStatus,
    Money,
    Payment,
    PaymentStatus,
    Refund,
    RefundStatus,
)
from crmsync.sources.base import Converted, UnsupportedTopic
from crmsync.sources.paypal import PayPalWebhooks

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "paypal"
RECEIPT = "paypal:WH-TEST-1"


def payload(name: str) -> bytes:
    """Raw bytes of a PayPal webhook body, exactly as they would reach the ingest function."""
    return (FIXTURES / name).read_bytes()


def convert(topic: str, name: str | bytes) -> Converted:
    body = payload(name) if isinstance(name, str) else name
    return PayPalWebhooks().convert(topic, body, receipt_id=RECEIPT)


def usd(amount: int) -> Money:
    return Money(amount=amount, currency="USD")


def assert_same_fields(actual: BaseModel | None, expected: BaseModel) -> None:
    """Field by field, so a failure names the field, then whole-object equality to catch anything missed."""
    assert actual is not None
    for name in type(expected).model_fields:
        assert getattr(actual, name) == getattr(expected, name), name
    assert actual == expected


def only_entity[T](converted: Converted, detail_type: DetailType, kind: type[T]) -> T:
    """The one entity a webhook produced, checked to carry the expected domain event."""
    assert len(converted.entities) == 1
    (published, entity), *_ = converted.entities
    assert published is detail_type
    assert isinstance(entity, kind)
    return entity


# ---- captures --------------------------------------------------------------------------------------------------


def test_published_capture_sample_converts_field_by_field() -> None:
    # Given PayPal's standard PAYMENT.CAPTURE.COMPLETED sample (authorization-based, live links)
    converted = convert("PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.COMPLETED.json")

    # Then it is a succeeded capture, versioned by the capture's update_time, naming no order and no payer
    assert converted.customer is None
    payment = only_entity(converted, DetailType.PAYMENT_SUCCEEDED, Payment)
    captured = datetime(2019, 2, 14, 21, 49, 58, tzinfo=UTC)
    assert_same_fields(
        payment,
        Payment(
            source="paypal",
            source_id="27M47624FP291604U",
            source_version=captured,
            receipt_id=RECEIPT,
            test=False,
            kind="capture",
            status=PaymentStatus.SUCCEEDED,
            amount=usd(251),
            amount_refunded=None,
            customer_email=None,
            customer_source_id=None,
            customer_name=None,
            customer_phone=None,
            billing_address=None,
            order_refs=(),
            transaction_ids=("27M47624FP291604U",),
            description=None,
            failure_code=None,
            failure_message=None,
            risk_level=None,
            risk_score=None,
            created_at=captured,
        ),
    )
    assert payment.external_id == "paypal:capture:27M47624FP291604U"
    assert payment.amount.formatted() == "2.51"


def test_published_sandbox_sample_is_test_mode_and_names_its_checkout_order() -> None:
    # Given the Orders-v2 sandbox capture (links on api.sandbox.paypal.com, related_ids.order_id set)
    converted = convert("PAYMENT.CAPTURE.COMPLETED", "PAYMENT.CAPTURE.COMPLETED.sandbox.json")

    # Then it is a test payment whose order reference is the checkout order id
    captured = datetime(2022, 2, 2, 0, 22, 38, tzinfo=UTC)
    assert_same_fields(
        only_entity(converted, DetailType.PAYMENT_SUCCEEDED, Payment),
        Payment(
            source="paypal",
            source_id="29Y24445UY2083144",
            source_version=captured,
            receipt_id=RECEIPT,
            test=True,
            kind="capture",
            status=PaymentStatus.SUCCEEDED,
            amount=usd(10000),
            order_refs=("89T257400V0473133",),
            transaction_ids=("29Y24445UY2083144",),
            created_at=captured,
        ),
    )


def test_jpy_capture_has_no_decimals_and_every_order_reference() -> None:
    # Given a JPY capture ("4500") with an order id, invoice id and custom id, stamped +09:00
    converted = convert("PAYMENT.CAPTURE.COMPLETED", "capture-completed-jpy.json")

    # Then the amount is whole yen, the times are UTC and all three references may name a shop order
    payment = only_entity(converted, DetailType.PAYMENT_SUCCEEDED, Payment)
    assert_same_fields(
        payment,
        Payment(
            source="paypal",
            source_id="8MC585209K746392H",
            source_version=datetime(2024, 5, 1, 0, 30, 0, tzinfo=UTC),
            receipt_id=RECEIPT,
            kind="capture",
            status=PaymentStatus.SUCCEEDED,
            amount=Money(amount=4500, currency="JPY"),
            order_refs=("5O190127TN364715T", "INV-2024-0042", "shop-order-9001"),
            transaction_ids=("8MC585209K746392H",),
            created_at=datetime(2024, 5, 1, 0, 29, 58, tzinfo=UTC),
        ),
    )
    assert payment.amount.formatted() == "4500"


def test_kwd_capture_has_three_decimals_and_falls_back_to_create_time() -> None:
    # Given a sandbox KWD capture ("12.345") with a create_time (+03:00) but no update_time
    converted = convert("PAYMENT.CAPTURE.COMPLETED", "capture-completed-kwd.json")

    # Then fils are exact and the version is the create_time in UTC
    payment = only_entity(converted, DetailType.PAYMENT_SUCCEEDED, Payment)
    created = datetime(2024, 3, 10, 9, 0, tzinfo=UTC)
    assert_same_fields(
        payment,
        Payment(
            source="paypal",
            source_id="3KW11223PQ4455667",
            source_version=created,
            receipt_id=RECEIPT,
            test=True,
            kind="capture",
            status=PaymentStatus.SUCCEEDED,
            amount=Money(amount=12345, currency="KWD"),
            order_refs=(),
            transaction_ids=("3KW11223PQ4455667",),
            created_at=created,
        ),
    )
    assert payment.amount.formatted() == "12.345"


def test_denied_capture_is_a_failed_payment_versioned_by_the_event() -> None:
    # Given a denied capture carrying no timestamps of its own
    converted = convert("PAYMENT.CAPTURE.DENIED", "capture-denied.json")

    # Then it is a failed payment, and the event's create_time is its version
    assert_same_fields(
        only_entity(converted, DetailType.PAYMENT_FAILED, Payment),
        Payment(
            source="paypal",
            source_id="7DN12345AA9876543",
            source_version=datetime(2024, 6, 3, 14, 5, 9, 1000, tzinfo=UTC),
            receipt_id=RECEIPT,
            kind="capture",
            status=PaymentStatus.FAILED,
            amount=Money(amount=4990, currency="EUR"),
            order_refs=("woo-1187",),
            transaction_ids=("7DN12345AA9876543",),
            created_at=None,
        ),
    )


def test_reversal_as_paypal_documents_it_reverses_the_capture_named_by_the_up_link() -> None:
    # Given PayPal's documented PAYMENT.CAPTURE.REVERSED sample: a refund resource pointing "up" at the capture
    converted = convert("PAYMENT.CAPTURE.REVERSED", "capture-reversed.json")

    # Then the capture (not the refund) is the payment, now reversed in full; times converted from -07:00
    reversed_at = datetime(2018, 8, 15, 21, 30, 10, tzinfo=UTC)
    payment = only_entity(converted, DetailType.REFUND_ISSUED, Payment)
    assert_same_fields(
        payment,
        Payment(
            source="paypal",
            source_id="4L335234718889942",
            source_version=reversed_at,
            receipt_id=RECEIPT,
            kind="capture",
            status=PaymentStatus.REVERSED,
            amount=usd(251),
            amount_refunded=usd(251),
            transaction_ids=("4L335234718889942",),
            created_at=reversed_at,
        ),
    )
    assert payment.external_id == "paypal:capture:4L335234718889942"


def test_reversal_carrying_the_capture_itself_keeps_its_reason() -> None:
    # Given a REVERSED event whose resource is the capture (status REVERSED, reason CHARGEBACK)
    converted = convert("PAYMENT.CAPTURE.REVERSED", "capture-reversed-capture-shape.json")

    assert_same_fields(
        only_entity(converted, DetailType.REFUND_ISSUED, Payment),
        Payment(
            source="paypal",
            source_id="5RV24680JK1357913",
            source_version=datetime(2024, 7, 14, 4, 0, tzinfo=UTC),
            receipt_id=RECEIPT,
            kind="capture",
            status=PaymentStatus.REVERSED,
            amount=usd(1380),
            amount_refunded=usd(1380),
            order_refs=("INV-77",),
            transaction_ids=("5RV24680JK1357913",),
            failure_code="CHARGEBACK",
            created_at=datetime(2024, 7, 10, 18, 0, tzinfo=UTC),
        ),
    )


def test_reversal_refund_without_an_up_link_is_rejected() -> None:
    # Given the documented reversal with its links stripped: nothing says which capture was reversed
    body = payload("capture-reversed.json").replace(b'"rel": "up"', b'"rel": "related"')
    with pytest.raises(ValueError, match="names no capture"):
        convert("PAYMENT.CAPTURE.REVERSED", body)


# ---- refunds ---------------------------------------------------------------------------------------------------


def test_partial_refund_names_the_refunded_capture() -> None:
    # Given PayPal's refund sample: 0.99 of a capture (1.98 refunded in total), stamped -07:00
    converted = convert("PAYMENT.CAPTURE.REFUNDED", "refund-completed-partial.json")

    # Then it is a succeeded refund of exactly this amount, on the capture from the "up" link
    refunded_at = datetime(2018, 8, 15, 19, 13, 29, tzinfo=UTC)
    refund = only_entity(converted, DetailType.REFUND_ISSUED, Refund)
    assert_same_fields(
        refund,
        Refund(
            source="paypal",
            source_id="1Y107995YT783435V",
            source_version=refunded_at,
            receipt_id=RECEIPT,
            test=False,
            status=RefundStatus.SUCCEEDED,
            amount=usd(99),
            payment_id="0JF852973C016714D",
            order_id=None,
            reason="One of two items returned",
            created_at=refunded_at,
        ),
    )
    assert refund.external_id == "paypal:refund:1Y107995YT783435V"
    assert converted.customer is None


def test_refund_larger_than_the_capture_is_recorded_as_paypal_states_it() -> None:
    # Given a pending sandbox refund of 150.00 against the 100.00 sandbox capture
    converted = convert("PAYMENT.CAPTURE.REFUNDED", "refund-exceeds-capture.json")

    # Then it is kept as stated (PayPal refuses or completes it; conversion neither clamps nor fails)
    assert_same_fields(
        only_entity(converted, DetailType.REFUND_ISSUED, Refund),
        Refund(
            source="paypal",
            source_id="6RF13579LM2468024",
            source_version=datetime(2022, 2, 3, 10, 0, 1, tzinfo=UTC),
            receipt_id=RECEIPT,
            test=True,
            status=RefundStatus.PENDING,
            amount=usd(15000),
            payment_id="29Y24445UY2083144",
            reason=None,
            created_at=datetime(2022, 2, 3, 10, 0, tzinfo=UTC),
        ),
    )


@pytest.mark.parametrize(
    ("paypal_status", "status"),
    [
        ("COMPLETED", RefundStatus.SUCCEEDED),
        ("PENDING", RefundStatus.PENDING),
        ("FAILED", RefundStatus.FAILED),
        ("CANCELLED", RefundStatus.CANCELED),
        ("SOMETHING_NEW", RefundStatus.PENDING),  # unknown: lowest rank, overrides nothing
    ],
)
def test_refund_status_table(paypal_status: str, status: RefundStatus) -> None:
    body = payload("refund-completed-partial.json").replace(
        b'"status": "COMPLETED"', f'"status": "{paypal_status}"'.encode()
    )
    assert only_entity(convert("PAYMENT.CAPTURE.REFUNDED", body), DetailType.REFUND_ISSUED, Refund).status is status


# ---- approved checkout orders: the payer -------------------------------------------------------------------------


def test_order_approved_gives_the_payer_with_japanese_names_and_a_phone() -> None:
    # Given an approved sandbox checkout by 山田 太郎 with a national mobile number and a Tokyo shipping address
    converted = convert("CHECKOUT.ORDER.APPROVED", "order-approved-unicode.json")

    # Then only the customer comes out (the capture event carries the money), names untouched, phone in E.164
    assert converted.entities == ()
    assert_same_fields(
        converted.customer,
        Customer(
            source="paypal",
            source_id="QYR5Z8XDVJNXQ",
            source_version=datetime(2024, 5, 1, 0, 29, 39, tzinfo=UTC),
            receipt_id=RECEIPT,
            email="taro.yamada@example.jp",
            first_name="太郎",
            last_name="山田",
            phone="+819012345678",
            address=Address(
                line1="千代田1-1",
                line2="皇居外苑ビル 3F",
                city="千代田区",
                region="東京都",
                postal_code="100-0001",
                country="JP",
            ),
            accepts_marketing=None,
            test=True,
        ),
    )


def test_order_approved_without_a_phone() -> None:
    # Given Zoë Ødegård's approved order: no phone, a lower-case shipping country, only a create_time
    converted = convert("CHECKOUT.ORDER.APPROVED", "order-approved-no-phone.json")

    assert converted.entities == ()
    assert_same_fields(
        converted.customer,
        Customer(
            source="paypal",
            source_id="8NPQRSTUVWXYZ",
            source_version=datetime(2024, 2, 2, 7, 15, tzinfo=UTC),
            receipt_id=RECEIPT,
            email="zoe.odegard@example.no",
            first_name="Zoë",
            last_name="Ødegård",
            phone=None,
            address=Address(
                line1="Karl Johans gate 22",
                line2=None,
                city="Oslo",
                region=None,
                postal_code="0159",
                country="NO",
            ),
            test=False,
        ),
    )


def test_order_approved_reads_the_payer_from_payment_source_when_payer_is_absent() -> None:
    # Given a current Orders v2 payload: no `payer`, the buyer under payment_source.paypal, nothing shipped
    converted = convert("CHECKOUT.ORDER.APPROVED", "order-approved-payment-source.json")

    assert_same_fields(
        converted.customer,
        Customer(
            source="paypal",
            source_id="FR5PAYERID99X",
            source_version=datetime(2025, 1, 20, 16, 40, 10, tzinfo=UTC),
            receipt_id=RECEIPT,
            email="marie.dupont@example.fr",
            first_name="Marie",
            last_name="Dupont",
            phone="+33612345678",
            address=None,
            test=False,
        ),
    )


def test_order_approved_naming_nobody_has_no_customer() -> None:
    # Given the same order with the payer removed / Then there is nobody to upsert, and nothing fails
    body = payload("order-approved-payment-source.json").replace(b'"payment_source"', b'"ignored_source"')
    assert convert("CHECKOUT.ORDER.APPROVED", body) == Converted()


# ---- disputes --------------------------------------------------------------------------------------------------


def test_dispute_created_as_an_inquiry_is_a_warning() -> None:
    # Given a new INQUIRY-stage dispute waiting for the seller (no chargeback yet, no money held)
    converted = convert("CUSTOMER.DISPUTE.CREATED", "dispute-created.json")

    # Then it is an open warning on the disputed capture, with the response deadline
    dispute = only_entity(converted, DetailType.DISPUTE_OPENED, Dispute)
    assert_same_fields(
        dispute,
        Dispute(
            source="paypal",
            source_id="PP-D-27803",
            source_version=datetime(2024, 6, 10, 8, 0, tzinfo=UTC),
            receipt_id=RECEIPT,
            test=False,
            status=DisputeStatus.WARNING,
            amount=usd(2500),
            payment_id="27M47624FP291604U",
            reason="MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
            evidence_due_by=datetime(2024, 6, 30, 8, 0, tzinfo=UTC),
            created_at=datetime(2024, 6, 10, 7, 59, 58, tzinfo=UTC),
        ),
    )
    assert dispute.external_id == "paypal:dispute:PP-D-27803"


def test_dispute_updated_to_a_chargeback_needs_a_response() -> None:
    # Given the dispute escalated to a chargeback, waiting for the seller, updated at +02:00
    converted = convert("CUSTOMER.DISPUTE.UPDATED", "dispute-updated.json")

    assert_same_fields(
        only_entity(converted, DetailType.DISPUTE_UPDATED, Dispute),
        Dispute(
            source="paypal",
            source_id="PP-D-27803",
            source_version=datetime(2024, 6, 12, 10, 59, 59, tzinfo=UTC),
            receipt_id=RECEIPT,
            status=DisputeStatus.NEEDS_RESPONSE,
            amount=usd(2500),
            payment_id="27M47624FP291604U",
            reason="UNAUTHORISED",
            evidence_due_by=datetime(2024, 6, 22, 11, 0, tzinfo=UTC),
            created_at=datetime(2024, 6, 10, 7, 59, 58, tzinfo=UTC),
        ),
    )


def test_dispute_resolved_in_the_sellers_favour_is_won() -> None:
    converted = convert("CUSTOMER.DISPUTE.RESOLVED", "dispute-resolved-seller.json")

    assert_same_fields(
        only_entity(converted, DetailType.DISPUTE_CLOSED, Dispute),
        Dispute(
            source="paypal",
            source_id="PP-D-27803",
            source_version=datetime(2024, 7, 1, 9, 30, tzinfo=UTC),
            receipt_id=RECEIPT,
            status=DisputeStatus.WON,
            amount=usd(2500),
            payment_id="27M47624FP291604U",
            reason="UNAUTHORISED",
            evidence_due_by=None,
            created_at=datetime(2024, 6, 10, 7, 59, 58, tzinfo=UTC),
        ),
    )


def test_dispute_resolved_in_the_buyers_favour_is_lost() -> None:
    # Given a sandbox JPY dispute the buyer won
    converted = convert("CUSTOMER.DISPUTE.RESOLVED", "dispute-resolved-buyer.json")

    assert_same_fields(
        only_entity(converted, DetailType.DISPUTE_CLOSED, Dispute),
        Dispute(
            source="paypal",
            source_id="PP-D-31415",
            source_version=datetime(2024, 8, 5, 16, 20, tzinfo=UTC),
            receipt_id=RECEIPT,
            test=True,
            status=DisputeStatus.LOST,
            amount=Money(amount=4500, currency="JPY"),
            payment_id="8MC585209K746392H",
            reason="MERCHANDISE_OR_SERVICE_NOT_AS_DESCRIBED",
            evidence_due_by=None,
            created_at=datetime(2024, 7, 20, 10, 0, tzinfo=UTC),
        ),
    )


def test_published_dispute_sample_cancelled_by_the_buyer_is_won() -> None:
    # Given PayPal's own CUSTOMER.DISPUTE.RESOLVED sample (outcome CANCELED_BY_BUYER: the merchant keeps the money)
    converted = convert("CUSTOMER.DISPUTE.RESOLVED", "dispute-resolved-canceled.json")

    assert_same_fields(
        only_entity(converted, DetailType.DISPUTE_CLOSED, Dispute),
        Dispute(
            source="paypal",
            source_id="PP-000-042-663-135",
            source_version=datetime(2018, 6, 21, 13, 55, 58, tzinfo=UTC),
            receipt_id=RECEIPT,
            status=DisputeStatus.WON,
            amount=usd(300),
            payment_id="00D10444LD479031K",
            reason="MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
            evidence_due_by=datetime(2018, 7, 6, 13, 55, 58, tzinfo=UTC),
            created_at=datetime(2018, 6, 21, 13, 35, 44, tzinfo=UTC),
        ),
    )


@pytest.mark.parametrize(
    ("stage", "paypal_status", "status"),
    [
        ("INQUIRY", "WAITING_FOR_SELLER_RESPONSE", DisputeStatus.WARNING),
        ("INQUIRY", "OPEN", DisputeStatus.WARNING),
        ("CHARGEBACK", "WAITING_FOR_SELLER_RESPONSE", DisputeStatus.NEEDS_RESPONSE),
        ("PRE_ARBITRATION", "WAITING_FOR_SELLER_RESPONSE", DisputeStatus.NEEDS_RESPONSE),
        ("CHARGEBACK", "UNDER_REVIEW", DisputeStatus.UNDER_REVIEW),
        ("CHARGEBACK", "WAITING_FOR_BUYER_RESPONSE", DisputeStatus.UNDER_REVIEW),
        ("CHARGEBACK", "OPEN", DisputeStatus.UNDER_REVIEW),
        ("CHARGEBACK", "OTHER", DisputeStatus.UNDER_REVIEW),
    ],
)
def test_open_dispute_status_table(stage: str, paypal_status: str, status: DisputeStatus) -> None:
    body = (
        payload("dispute-updated.json")
        .replace(b'"status": "WAITING_FOR_SELLER_RESPONSE"', f'"status": "{paypal_status}"'.encode())
        .replace(b'"dispute_life_cycle_stage": "CHARGEBACK"', f'"dispute_life_cycle_stage": "{stage}"'.encode())
    )
    converted = convert("CUSTOMER.DISPUTE.UPDATED", body)
    assert only_entity(converted, DetailType.DISPUTE_UPDATED, Dispute).status is status


@pytest.mark.parametrize(
    ("outcome", "status"),
    [
        ("RESOLVED_SELLER_FAVOUR", DisputeStatus.WON),
        ("CANCELED_BY_BUYER", DisputeStatus.WON),
        ("RESOLVED_BUYER_FAVOUR", DisputeStatus.LOST),
        ("ACCEPTED", DisputeStatus.LOST),  # the merchant accepted the claim and refunded
        ("RESOLVED_WITH_PAYOUT", DisputeStatus.LOST),
        ("DENIED", DisputeStatus.LOST),
        ("NONE", DisputeStatus.LOST),
    ],
)
def test_resolved_dispute_outcome_table(outcome: str, status: DisputeStatus) -> None:
    body = payload("dispute-resolved-seller.json").replace(b"RESOLVED_SELLER_FAVOUR", outcome.encode())
    converted = convert("CUSTOMER.DISPUTE.RESOLVED", body)
    assert only_entity(converted, DetailType.DISPUTE_CLOSED, Dispute).status is status


# ---- what conversion refuses -----------------------------------------------------------------------------------


def test_unhandled_topic_is_unsupported() -> None:
    with pytest.raises(UnsupportedTopic, match=r"BILLING\.SUBSCRIPTION\.ACTIVATED"):
        convert("BILLING.SUBSCRIPTION.ACTIVATED", "PAYMENT.CAPTURE.COMPLETED.json")


@pytest.mark.parametrize(
    "topic",
    [
        "PAYMENT.CAPTURE.COMPLETED",
        "PAYMENT.CAPTURE.DENIED",
        "PAYMENT.CAPTURE.REFUNDED",
        "PAYMENT.CAPTURE.REVERSED",
        "CHECKOUT.ORDER.APPROVED",
        "CUSTOMER.DISPUTE.CREATED",
        "CUSTOMER.DISPUTE.UPDATED",
        "CUSTOMER.DISPUTE.RESOLVED",
    ],
)
def test_json_that_is_not_an_event_fails_validation(topic: str) -> None:
    # Given signed JSON that is no PayPal event / Then pydantic says so (the pipeline sends it to the DLQ)
    with pytest.raises(ValidationError):
        convert(topic, "not-an-event.json")


def test_money_is_never_rounded() -> None:
    # Given a JPY capture claiming half a yen / Then conversion fails rather than invent an amount
    body = payload("capture-completed-jpy.json").replace(b'"value": "4500"', b'"value": "4500.5"', 1)
    with pytest.raises(ValueError, match="more decimals"):
        convert("PAYMENT.CAPTURE.COMPLETED", body)


def test_amount_as_a_json_number_is_refused() -> None:
    # Given an amount sent as a JSON number (PayPal sends strings) / Then no float reaches the money path
    body = payload("PAYMENT.CAPTURE.COMPLETED.json").replace(b'"value": "2.51"', b'"value": 2.51', 1)
    with pytest.raises(ValidationError):
        convert("PAYMENT.CAPTURE.COMPLETED", body)
