"""PayPal webhook events → canonical Payment / Refund / Customer / Dispute; every expectation is written by hand.

The conversion cases are data: `CASES` holds `pytest.param(topic, fixture, expected Converted)`, each fixture a file in
tests/fixtures/paypal/ (the published samples have a .source.txt beside them). One Given/When/Then test compares every
case field by field, and bench/accuracy.py reads the same table. After it come the status tables, checked on one
fixture with one field changed, and what conversion refuses.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

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
from tests.unit.conversion import assert_same_conversion, fixture_body, shown, usd, utc

RECEIPT = "paypal:WH-TEST-1"

paypal = PayPalWebhooks()


def payload(name: str) -> bytes:
    return fixture_body("paypal", name)


def convert(topic: str, body: bytes) -> Converted:
    return paypal.convert(topic, body, receipt_id=RECEIPT)


def jpy(amount: int) -> Money:
    return Money(amount=amount, currency="JPY")


CASES = [
    # ---- captures ----
    pytest.param(
        # Given PayPal's standard PAYMENT.CAPTURE.COMPLETED sample (authorization-based, live links): a succeeded
        # capture, versioned by the capture's update_time, naming no order and no payer
        "PAYMENT.CAPTURE.COMPLETED",
        "PAYMENT.CAPTURE.COMPLETED.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.PAYMENT_SUCCEEDED,
                    Payment(
                        source="paypal",
                        source_id="27M47624FP291604U",
                        source_version=utc(2019, 2, 14, 21, 49, 58),
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
                        created_at=utc(2019, 2, 14, 21, 49, 58),
                    ),
                ),
            ),
        ),
        id="capture-published-sample",
    ),
    pytest.param(
        # Given the Orders-v2 sandbox capture (links on api.sandbox.paypal.com, related_ids.order_id set): a test
        # payment whose order reference is the checkout order id
        "PAYMENT.CAPTURE.COMPLETED",
        "PAYMENT.CAPTURE.COMPLETED.sandbox.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.PAYMENT_SUCCEEDED,
                    Payment(
                        source="paypal",
                        source_id="29Y24445UY2083144",
                        source_version=utc(2022, 2, 2, 0, 22, 38),
                        receipt_id=RECEIPT,
                        test=True,
                        kind="capture",
                        status=PaymentStatus.SUCCEEDED,
                        amount=usd(10000),
                        amount_refunded=None,
                        customer_email=None,
                        customer_source_id=None,
                        customer_name=None,
                        customer_phone=None,
                        billing_address=None,
                        order_refs=("89T257400V0473133",),
                        transaction_ids=("29Y24445UY2083144",),
                        description=None,
                        failure_code=None,
                        failure_message=None,
                        risk_level=None,
                        risk_score=None,
                        created_at=utc(2022, 2, 2, 0, 22, 38),
                    ),
                ),
            ),
        ),
        id="capture-published-sandbox-sample",
    ),
    pytest.param(
        # Given a JPY capture ("4500") with an order id, invoice id and custom id, stamped +09:00: whole yen, UTC
        # times, and all three references may name a shop order
        "PAYMENT.CAPTURE.COMPLETED",
        "capture-completed-jpy.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.PAYMENT_SUCCEEDED,
                    Payment(
                        source="paypal",
                        source_id="8MC585209K746392H",
                        source_version=utc(2024, 5, 1, 0, 30, 0),
                        receipt_id=RECEIPT,
                        test=False,
                        kind="capture",
                        status=PaymentStatus.SUCCEEDED,
                        amount=jpy(4500),
                        amount_refunded=None,
                        customer_email=None,
                        customer_source_id=None,
                        customer_name=None,
                        customer_phone=None,
                        billing_address=None,
                        order_refs=("5O190127TN364715T", "INV-2024-0042", "shop-order-9001"),
                        transaction_ids=("8MC585209K746392H",),
                        description=None,
                        failure_code=None,
                        failure_message=None,
                        risk_level=None,
                        risk_score=None,
                        created_at=utc(2024, 5, 1, 0, 29, 58),
                    ),
                ),
            ),
        ),
        id="capture-jpy-every-order-reference",
    ),
    pytest.param(
        # Given a sandbox KWD capture ("12.345") with a create_time (+03:00) but no update_time: fils are exact and
        # the version is the create_time in UTC
        "PAYMENT.CAPTURE.COMPLETED",
        "capture-completed-kwd.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.PAYMENT_SUCCEEDED,
                    Payment(
                        source="paypal",
                        source_id="3KW11223PQ4455667",
                        source_version=utc(2024, 3, 10, 9, 0),
                        receipt_id=RECEIPT,
                        test=True,
                        kind="capture",
                        status=PaymentStatus.SUCCEEDED,
                        amount=Money(amount=12345, currency="KWD"),
                        amount_refunded=None,
                        customer_email=None,
                        customer_source_id=None,
                        customer_name=None,
                        customer_phone=None,
                        billing_address=None,
                        order_refs=(),
                        transaction_ids=("3KW11223PQ4455667",),
                        description=None,
                        failure_code=None,
                        failure_message=None,
                        risk_level=None,
                        risk_score=None,
                        created_at=utc(2024, 3, 10, 9, 0),
                    ),
                ),
            ),
        ),
        id="capture-kwd-create-time-only",
    ),
    pytest.param(
        # Given a denied capture carrying no timestamps of its own: a failed payment, versioned by the event's
        # create_time (to the millisecond)
        "PAYMENT.CAPTURE.DENIED",
        "capture-denied.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.PAYMENT_FAILED,
                    Payment(
                        source="paypal",
                        source_id="7DN12345AA9876543",
                        source_version=utc(2024, 6, 3, 14, 5, 9, 1000),
                        receipt_id=RECEIPT,
                        test=False,
                        kind="capture",
                        status=PaymentStatus.FAILED,
                        amount=Money(amount=4990, currency="EUR"),
                        amount_refunded=None,
                        customer_email=None,
                        customer_source_id=None,
                        customer_name=None,
                        customer_phone=None,
                        billing_address=None,
                        order_refs=("woo-1187",),
                        transaction_ids=("7DN12345AA9876543",),
                        description=None,
                        failure_code=None,
                        failure_message=None,
                        risk_level=None,
                        risk_score=None,
                        created_at=None,
                    ),
                ),
            ),
        ),
        id="capture-denied",
    ),
    pytest.param(
        # Given PayPal's documented PAYMENT.CAPTURE.REVERSED sample: a refund resource pointing "up" at the capture.
        # The capture (not the refund) is the payment, now reversed in full; times converted from -07:00
        "PAYMENT.CAPTURE.REVERSED",
        "capture-reversed.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.REFUND_ISSUED,
                    Payment(
                        source="paypal",
                        source_id="4L335234718889942",
                        source_version=utc(2018, 8, 15, 21, 30, 10),
                        receipt_id=RECEIPT,
                        test=False,
                        kind="capture",
                        status=PaymentStatus.REVERSED,
                        amount=usd(251),
                        amount_refunded=usd(251),
                        customer_email=None,
                        customer_source_id=None,
                        customer_name=None,
                        customer_phone=None,
                        billing_address=None,
                        order_refs=(),
                        transaction_ids=("4L335234718889942",),
                        description=None,
                        failure_code=None,
                        failure_message=None,
                        risk_level=None,
                        risk_score=None,
                        created_at=utc(2018, 8, 15, 21, 30, 10),  # the reversal's own create_time
                    ),
                ),
            ),
        ),
        id="capture-reversed-published-refund-shape",
    ),
    pytest.param(
        # Given a REVERSED event whose resource is the capture itself (status REVERSED, reason CHARGEBACK): the
        # reason is kept as the failure code
        "PAYMENT.CAPTURE.REVERSED",
        "capture-reversed-capture-shape.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.REFUND_ISSUED,
                    Payment(
                        source="paypal",
                        source_id="5RV24680JK1357913",
                        source_version=utc(2024, 7, 14, 4, 0),
                        receipt_id=RECEIPT,
                        test=False,
                        kind="capture",
                        status=PaymentStatus.REVERSED,
                        amount=usd(1380),
                        amount_refunded=usd(1380),
                        customer_email=None,
                        customer_source_id=None,
                        customer_name=None,
                        customer_phone=None,
                        billing_address=None,
                        order_refs=("INV-77",),
                        transaction_ids=("5RV24680JK1357913",),
                        description=None,
                        failure_code="CHARGEBACK",
                        failure_message=None,
                        risk_level=None,
                        risk_score=None,
                        created_at=utc(2024, 7, 10, 18, 0),
                    ),
                ),
            ),
        ),
        id="capture-reversed-capture-shape",
    ),
    # ---- refunds ----
    pytest.param(
        # Given PayPal's refund sample: 0.99 of a capture (1.98 refunded in total), stamped -07:00. A succeeded
        # refund of exactly this amount, on the capture from the "up" link
        "PAYMENT.CAPTURE.REFUNDED",
        "refund-completed-partial.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.REFUND_ISSUED,
                    Refund(
                        source="paypal",
                        source_id="1Y107995YT783435V",
                        source_version=utc(2018, 8, 15, 19, 13, 29),
                        receipt_id=RECEIPT,
                        test=False,
                        status=RefundStatus.SUCCEEDED,
                        amount=usd(99),
                        payment_id="0JF852973C016714D",
                        order_id=None,
                        reason="One of two items returned",
                        created_at=utc(2018, 8, 15, 19, 13, 29),
                    ),
                ),
            ),
        ),
        id="refund-partial",
    ),
    pytest.param(
        # Given the JPY capture refunded in full (4500 yen, +09:00), with a Japanese note to the payer: whole yen,
        # the note untouched; invoice and custom ids name no order on a refund
        "PAYMENT.CAPTURE.REFUNDED",
        "refund-completed-jpy-full.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.REFUND_ISSUED,
                    Refund(
                        source="paypal",
                        source_id="2JR86420MN1357924",
                        source_version=utc(2024, 5, 3, 2, 0, 0),
                        receipt_id=RECEIPT,
                        test=False,
                        status=RefundStatus.SUCCEEDED,
                        amount=jpy(4500),
                        payment_id="8MC585209K746392H",
                        order_id=None,
                        reason="在庫切れのため全額返金",
                        created_at=utc(2024, 5, 3, 1, 59, 58),
                    ),
                ),
            ),
        ),
        id="refund-full-jpy-japanese-note",
    ),
    pytest.param(
        # Given a pending sandbox refund of 150.00 against the 100.00 sandbox capture: kept as stated (PayPal refuses
        # or completes it; conversion neither clamps nor fails)
        "PAYMENT.CAPTURE.REFUNDED",
        "refund-exceeds-capture.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.REFUND_ISSUED,
                    Refund(
                        source="paypal",
                        source_id="6RF13579LM2468024",
                        source_version=utc(2022, 2, 3, 10, 0, 1),
                        receipt_id=RECEIPT,
                        test=True,
                        status=RefundStatus.PENDING,
                        amount=usd(15000),
                        payment_id="29Y24445UY2083144",
                        order_id=None,
                        reason=None,
                        created_at=utc(2022, 2, 3, 10, 0),
                    ),
                ),
            ),
        ),
        id="refund-larger-than-the-capture",
    ),
    # ---- approved checkout orders: the payer ----
    pytest.param(
        # Given an approved sandbox checkout by 山田 太郎 (older `payer` object) with a national mobile number and a
        # Tokyo shipping address: only the customer comes out (the capture event carries the money), names
        # untouched, phone in E.164
        "CHECKOUT.ORDER.APPROVED",
        "order-approved-unicode.json",
        Converted(
            customer=Customer(
                source="paypal",
                source_id="QYR5Z8XDVJNXQ",
                source_version=utc(2024, 5, 1, 0, 29, 39),
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
        ),
        id="order-approved-japanese-payer",
    ),
    pytest.param(
        # Given Zoë Ødegård's approved order: no phone, a lower-case shipping country, only a create_time
        "CHECKOUT.ORDER.APPROVED",
        "order-approved-no-phone.json",
        Converted(
            customer=Customer(
                source="paypal",
                source_id="8NPQRSTUVWXYZ",
                source_version=utc(2024, 2, 2, 7, 15),
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
                accepts_marketing=None,
                test=False,
            ),
        ),
        id="order-approved-missing-phone",
    ),
    pytest.param(
        # Given a current Orders v2 payload: no `payer`, the buyer under payment_source.paypal, nothing shipped
        "CHECKOUT.ORDER.APPROVED",
        "order-approved-payment-source.json",
        Converted(
            customer=Customer(
                source="paypal",
                source_id="FR5PAYERID99X",
                source_version=utc(2025, 1, 20, 16, 40, 10),
                receipt_id=RECEIPT,
                email="marie.dupont@example.fr",
                first_name="Marie",
                last_name="Dupont",
                phone="+33612345678",
                address=None,
                accepts_marketing=None,
                test=False,
            ),
        ),
        id="order-approved-payment-source-paypal",
    ),
    pytest.param(
        # Given an order approved with a card: no `payer`, no PayPal wallet, only a cardholder and a shipping name.
        # Nobody is named that identity resolution could use, so nothing is upserted, and nothing fails
        "CHECKOUT.ORDER.APPROVED",
        "order-approved-card-no-payer.json",
        Converted(customer=None, entities=(), notices=()),
        id="order-approved-missing-customer",
    ),
    # ---- disputes ----
    pytest.param(
        # Given a new INQUIRY-stage dispute waiting for the seller (no chargeback yet, no money held): an open warning
        # on the disputed capture, with the response deadline
        "CUSTOMER.DISPUTE.CREATED",
        "dispute-created.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.DISPUTE_OPENED,
                    Dispute(
                        source="paypal",
                        source_id="PP-D-27803",
                        source_version=utc(2024, 6, 10, 8, 0),
                        receipt_id=RECEIPT,
                        test=False,
                        status=DisputeStatus.WARNING,
                        amount=usd(2500),
                        payment_id="27M47624FP291604U",
                        reason="MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
                        evidence_due_by=utc(2024, 6, 30, 8, 0),
                        created_at=utc(2024, 6, 10, 7, 59, 58),
                    ),
                ),
            ),
        ),
        id="dispute-created-inquiry",
    ),
    pytest.param(
        # Given the dispute escalated to a chargeback, waiting for the seller, updated at +02:00
        "CUSTOMER.DISPUTE.UPDATED",
        "dispute-updated.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.DISPUTE_UPDATED,
                    Dispute(
                        source="paypal",
                        source_id="PP-D-27803",
                        source_version=utc(2024, 6, 12, 10, 59, 59),
                        receipt_id=RECEIPT,
                        test=False,
                        status=DisputeStatus.NEEDS_RESPONSE,
                        amount=usd(2500),
                        payment_id="27M47624FP291604U",
                        reason="UNAUTHORISED",
                        evidence_due_by=utc(2024, 6, 22, 11, 0),
                        created_at=utc(2024, 6, 10, 7, 59, 58),
                    ),
                ),
            ),
        ),
        id="dispute-updated-chargeback",
    ),
    pytest.param(
        # Given the dispute resolved in the seller's favour: won, no deadline left
        "CUSTOMER.DISPUTE.RESOLVED",
        "dispute-resolved-seller.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.DISPUTE_CLOSED,
                    Dispute(
                        source="paypal",
                        source_id="PP-D-27803",
                        source_version=utc(2024, 7, 1, 9, 30),
                        receipt_id=RECEIPT,
                        test=False,
                        status=DisputeStatus.WON,
                        amount=usd(2500),
                        payment_id="27M47624FP291604U",
                        reason="UNAUTHORISED",
                        evidence_due_by=None,
                        created_at=utc(2024, 6, 10, 7, 59, 58),
                    ),
                ),
            ),
        ),
        id="dispute-resolved-seller-favour",
    ),
    pytest.param(
        # Given a sandbox JPY dispute the buyer won
        "CUSTOMER.DISPUTE.RESOLVED",
        "dispute-resolved-buyer.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.DISPUTE_CLOSED,
                    Dispute(
                        source="paypal",
                        source_id="PP-D-31415",
                        source_version=utc(2024, 8, 5, 16, 20),
                        receipt_id=RECEIPT,
                        test=True,
                        status=DisputeStatus.LOST,
                        amount=jpy(4500),
                        payment_id="8MC585209K746392H",
                        reason="MERCHANDISE_OR_SERVICE_NOT_AS_DESCRIBED",
                        evidence_due_by=None,
                        created_at=utc(2024, 7, 20, 10, 0),
                    ),
                ),
            ),
        ),
        id="dispute-resolved-buyer-favour-jpy",
    ),
    pytest.param(
        # Given PayPal's own CUSTOMER.DISPUTE.RESOLVED sample (outcome CANCELED_BY_BUYER: the merchant keeps the money)
        "CUSTOMER.DISPUTE.RESOLVED",
        "dispute-resolved-canceled.json",
        Converted(
            customer=None,
            entities=(
                (
                    DetailType.DISPUTE_CLOSED,
                    Dispute(
                        source="paypal",
                        source_id="PP-000-042-663-135",
                        source_version=utc(2018, 6, 21, 13, 55, 58),
                        receipt_id=RECEIPT,
                        test=False,
                        status=DisputeStatus.WON,
                        amount=usd(300),
                        payment_id="00D10444LD479031K",
                        reason="MERCHANDISE_OR_SERVICE_NOT_RECEIVED",
                        evidence_due_by=utc(2018, 7, 6, 13, 55, 58),
                        created_at=utc(2018, 6, 21, 13, 35, 44),
                    ),
                ),
            ),
        ),
        id="dispute-resolved-published-sample-cancelled-by-buyer",
    ),
]


@pytest.mark.parametrize(("topic", "fixture", "expected"), CASES)
def test_event_converts_field_by_field(topic: str, fixture: str, expected: Converted) -> None:
    # Given the signed event of the case (each case says what it holds)
    # When it is converted under its event type
    converted = convert(topic, payload(fixture))

    # Then the customer, each entity with its domain event, and each notice are exactly as the case writes them
    assert_same_conversion(converted, expected)


def test_every_handled_topic_has_a_case() -> None:
    assert {case.values[0] for case in CASES} == paypal.handled_topics


# How a CRM shows the entities of some cases: external id, then the amount with the currency's decimals, by hand.
SHOWN = {
    "PAYMENT.CAPTURE.COMPLETED.json": [("paypal:capture:27M47624FP291604U", "2.51")],
    "capture-completed-jpy.json": [("paypal:capture:8MC585209K746392H", "4500")],
    "capture-completed-kwd.json": [("paypal:capture:3KW11223PQ4455667", "12.345")],
    "capture-reversed.json": [("paypal:capture:4L335234718889942", "2.51")],  # the capture's key, not the refund's
    "refund-completed-partial.json": [("paypal:refund:1Y107995YT783435V", "0.99")],
    "dispute-created.json": [("paypal:dispute:PP-D-27803", "25.00")],
}


@pytest.mark.parametrize(("topic", "fixture", "expected"), [case for case in CASES if case.values[1] in SHOWN])
def test_entities_are_keyed_and_formatted_for_the_crm(topic: str, fixture: str, expected: Converted) -> None:
    # Given a case whose entities a CRM shows / When converted
    converted = convert(topic, payload(fixture))

    # Then it is the case's result, and each entity's external id and amount read as written
    assert converted == expected
    assert [shown(entity) for _, entity in converted.entities] == SHOWN[fixture]


# ---- status tables: one fixture, one field changed -----------------------------------------------------------------


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
    # Given the refund sample in another status / When converted / Then the refund's status follows
    body = payload("refund-completed-partial.json").replace(
        b'"status": "COMPLETED"', f'"status": "{paypal_status}"'.encode()
    )
    ((published, refund),) = convert("PAYMENT.CAPTURE.REFUNDED", body).entities
    assert published is DetailType.REFUND_ISSUED
    assert isinstance(refund, Refund)
    assert refund.status is status


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
    # Given the updated dispute at another stage and status / When converted / Then the dispute's status follows
    body = (
        payload("dispute-updated.json")
        .replace(b'"status": "WAITING_FOR_SELLER_RESPONSE"', f'"status": "{paypal_status}"'.encode())
        .replace(b'"dispute_life_cycle_stage": "CHARGEBACK"', f'"dispute_life_cycle_stage": "{stage}"'.encode())
    )
    ((published, dispute),) = convert("CUSTOMER.DISPUTE.UPDATED", body).entities
    assert published is DetailType.DISPUTE_UPDATED
    assert isinstance(dispute, Dispute)
    assert dispute.status is status


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
    # Given the resolved dispute with another outcome / When converted / Then won or lost follows the outcome
    body = payload("dispute-resolved-seller.json").replace(b"RESOLVED_SELLER_FAVOUR", outcome.encode())
    ((published, dispute),) = convert("CUSTOMER.DISPUTE.RESOLVED", body).entities
    assert published is DetailType.DISPUTE_CLOSED
    assert isinstance(dispute, Dispute)
    assert dispute.status is status


# ---- what conversion refuses -----------------------------------------------------------------------------------


def test_reversal_refund_without_an_up_link_is_rejected() -> None:
    # Given the documented reversal with its links stripped: nothing says which capture was reversed
    body = payload("capture-reversed.json").replace(b'"rel": "up"', b'"rel": "related"')
    with pytest.raises(ValueError, match="names no capture"):
        convert("PAYMENT.CAPTURE.REVERSED", body)


def test_unhandled_topic_is_unsupported() -> None:
    with pytest.raises(UnsupportedTopic, match=r"BILLING\.SUBSCRIPTION\.ACTIVATED"):
        convert("BILLING.SUBSCRIPTION.ACTIVATED", payload("PAYMENT.CAPTURE.COMPLETED.json"))


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
        convert(topic, payload("not-an-event.json"))


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
