"""Stripe events → canonical Customer, Payment, Refund, Dispute and notices; every expectation is written by hand.

Payloads are files in tests/fixtures/stripe/: the published samples (API 2020-08-27 from stripe-ruby-mock, and a
2025-04-30.basil payment intent recorded by Lago) and hand-written variants shaped after them.
"""

from dataclasses import dataclass

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
from crmsync.sources.base import Converted, Entity, Notice, UnsupportedTopic
from crmsync.sources.stripe import StripeWebhooks
from tests.unit.conversion import assert_same_conversion, assert_same_fields, fixture_body, utc

RECEIPT = "stripe:self:evt_under_test"
SOURCE = StripeWebhooks()


def payload(name: str) -> bytes:
    return fixture_body("stripe", name)


def convert(topic: str, name: str) -> Converted:
    return SOURCE.convert(topic, payload(name), receipt_id=RECEIPT)


@dataclass(frozen=True)
class Case:
    topic: str
    fixture: str
    customer: Customer | None = None
    entities: tuple[tuple[DetailType, Entity], ...] = ()
    notices: tuple[Notice, ...] = ()


# ---- payment intents -----------------------------------------------------------------------------------------------

SAMPLE_2020 = Case(
    # The published 2020-08-27 sample: the embedded charge carries the Radar outcome; nobody is named
    "payment_intent.succeeded",
    "payment_intent.succeeded.json",
    customer=None,
    entities=(
        (
            DetailType.PAYMENT_SUCCEEDED,
            Payment(
                source="stripe",
                source_id="pi_000000000000000000000000",
                source_version=utc(2022, 3, 26, 18, 40, 33),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.SUCCEEDED,
                amount=Money(amount=2000, currency="USD"),
                amount_refunded=None,
                customer_email=None,
                customer_source_id=None,
                customer_name=None,  # only the shipping recipient is named, and shipping is not billing
                customer_phone=None,
                billing_address=None,  # every billing address field is null
                order_refs=(),
                transaction_ids=("pi_000000000000000000000000", "ch_000000000000000000000000"),
                description="(created by Stripe CLI)",
                failure_code=None,
                failure_message=None,
                risk_level="normal",
                risk_score=2,
                created_at=utc(2022, 3, 26, 18, 40, 32),
            ),
        ),
    ),
)

SAMPLE_BASIL = Case(
    # The published 2025-04-30.basil sample: latest_charge is an id only, so no billing details and no outcome
    "payment_intent.succeeded",
    "payment_intent.succeeded.2025-04-30.basil.json",
    customer=Customer(
        source="stripe",
        source_id="cus_SOXv8CncjHqSEv",
        source_version=utc(2025, 5, 28, 14, 19, 44),
        receipt_id=RECEIPT,
        email=None,
        first_name=None,
        last_name=None,
        phone=None,
        address=None,
        test=True,
    ),
    entities=(
        (
            DetailType.PAYMENT_SUCCEEDED,
            Payment(
                source="stripe",
                source_id="pi_3RTkpYQ8iJWBZFaM1LBHNo0J",
                source_version=utc(2025, 5, 28, 14, 19, 44),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.SUCCEEDED,
                amount=Money(amount=4620, currency="EUR"),
                customer_email=None,
                customer_source_id="cus_SOXv8CncjHqSEv",
                order_refs=(),  # Lago's metadata keys name no shop order
                transaction_ids=("pi_3RTkpYQ8iJWBZFaM1LBHNo0J", "ch_3RTkpYQ8iJWBZFaM1WnB7qvm"),
                description="Oberbrunner-Purdy - Invoice OBE-B200-001-001",
                risk_level=None,
                risk_score=None,
                created_at=utc(2025, 5, 28, 14, 19, 44),
            ),
        ),
    ),
)

JPY_LIVE = Case(
    # Live mode, a Connect account, yen (no minor unit), 5000 authorised but 4500 captured, receipt_email with
    # stray case and spaces, two order keys
    "payment_intent.succeeded",
    "payment_intent.succeeded.jpy-live.json",
    customer=Customer(
        source="stripe",
        source_id="cus_PJpyYamada01",
        source_version=utc(2024, 5, 1),
        receipt_id=RECEIPT,
        email="taro.yamada@example.jp",
        first_name=None,
        last_name=None,
        phone=None,
        address=None,
        test=False,
    ),
    entities=(
        (
            DetailType.PAYMENT_SUCCEEDED,
            Payment(
                source="stripe",
                source_id="pi_3PJpyLive0000000000001",
                source_version=utc(2024, 5, 1),
                receipt_id=RECEIPT,
                test=False,
                kind="payment",
                status=PaymentStatus.SUCCEEDED,
                amount=Money(amount=4500, currency="JPY"),  # amount_received, not amount
                customer_email="taro.yamada@example.jp",
                customer_source_id="cus_PJpyYamada01",
                order_refs=("9001", "820982911946154508"),  # order_id, then shopify_order_id; "channel" is no ref
                transaction_ids=("pi_3PJpyLive0000000000001", "ch_3PJpyLive0000000000001"),
                description="抹茶 100g \u00d7 2",  # a multiplication sign
                created_at=utc(2024, 4, 30, 23, 59, 50),
            ),
        ),
    ),
)

KWD_CHARGES_LIST = Case(
    # 2020-08-27 shape with two charges (newest first): the email, name, phone and address come from the newest
    "payment_intent.succeeded",
    "payment_intent.succeeded.kwd.json",
    customer=Customer(
        source="stripe",
        source_id=None,  # a guest: no Stripe customer, identified by email
        source_version=utc(2024, 3, 10, 9, 0),
        receipt_id=RECEIPT,
        email="fatima.alsabah@example.com.kw",
        first_name="Fatima",
        last_name="Al-Sabah",
        phone="+96522223333",  # national number, read with the billing country
        address=Address(
            line1="Block 3, Street 14",
            line2=None,
            city="Kuwait City",
            region="Al Asimah",
            postal_code="13001",
            country="KW",
        ),
        test=True,
    ),
    entities=(
        (
            DetailType.PAYMENT_SUCCEEDED,
            Payment(
                source="stripe",
                source_id="pi_1OkwdSucceeded000000001",
                source_version=utc(2024, 3, 10, 9, 0),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.SUCCEEDED,
                amount=Money(amount=12340, currency="KWD"),
                customer_email="fatima.alsabah@example.com.kw",
                customer_source_id=None,
                customer_name="Fatima Al-Sabah",
                customer_phone="+96522223333",
                billing_address=Address(
                    line1="Block 3, Street 14",
                    city="Kuwait City",
                    region="Al Asimah",
                    postal_code="13001",
                    country="KW",
                ),
                order_refs=("4711",),  # woocommerce_order_id and order say the same
                transaction_ids=(
                    "pi_1OkwdSucceeded000000001",
                    "ch_1OkwdSecondTry000000001",
                    "ch_1OkwdFirstTry0000000001",
                ),
                description=None,
                risk_level="elevated",
                risk_score=67,
                created_at=utc(2024, 3, 10, 8, 58, 20),
            ),
        ),
    ),
)

INTENT_FAILED = Case(
    # basil: the decline is in last_payment_error; nothing was received, so the amount asked for is kept
    "payment_intent.payment_failed",
    "payment_intent.payment_failed.json",
    customer=Customer(
        source="stripe",
        source_id="cus_PfailedCust01",
        source_version=utc(2024, 6, 1, 10, 0),
        receipt_id=RECEIPT,
        email=None,
        first_name=None,
        last_name=None,
        phone=None,
        address=None,
        test=True,
    ),
    entities=(
        (
            DetailType.PAYMENT_FAILED,
            Payment(
                source="stripe",
                source_id="pi_3PfailedIntent000000001",
                source_version=utc(2024, 6, 1, 10, 0),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.FAILED,
                amount=Money(amount=5000, currency="EUR"),
                customer_source_id="cus_PfailedCust01",
                transaction_ids=("pi_3PfailedIntent000000001", "ch_3PfailedIntent000000001"),
                failure_code="card_declined",
                failure_message="Your card has insufficient funds.",
                created_at=utc(2024, 6, 1, 9, 59, 50),
            ),
        ),
    ),
)

# ---- charges and refunds -------------------------------------------------------------------------------------------

LONE_CHARGE = Case(
    # A Charges API charge (no intent) is its own payment; receipt_email beats the billing email
    "charge.succeeded",
    "charge.succeeded.json",
    customer=Customer(
        source="stripe",
        source_id="cus_PchargeFr0001",
        source_version=utc(2024, 7, 1),
        receipt_id=RECEIPT,
        email="marie.dupont@example.fr",
        first_name="Marie",
        last_name="Dupont",
        phone="+33612345678",
        address=Address(
            line1="12 rue de la Paix", line2="Bât. B", city="Paris", region=None, postal_code="75002", country="FR"
        ),
        test=True,
    ),
    entities=(
        (
            DetailType.PAYMENT_SUCCEEDED,
            Payment(
                source="stripe",
                source_id="ch_1PchargeSucceeded000001",
                source_version=utc(2024, 7, 1),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.SUCCEEDED,
                amount=Money(amount=3990, currency="EUR"),
                amount_refunded=None,
                customer_email="marie.dupont@example.fr",
                customer_source_id="cus_PchargeFr0001",
                customer_name="Marie Dupont",
                customer_phone="+33612345678",
                billing_address=Address(
                    line1="12 rue de la Paix", line2="Bât. B", city="Paris", postal_code="75002", country="FR"
                ),
                order_refs=("1042",),
                transaction_ids=("ch_1PchargeSucceeded000001",),
                description="Order 1042",
                risk_level="normal",
                risk_score=12,
                created_at=utc(2024, 6, 30, 23, 59, 59),
            ),
        ),
    ),
)

CHARGE_FAILED = Case(
    # A failed charge of an intent: no email, no Stripe customer, and "12" is no phone, so nobody to link
    "charge.failed",
    "charge.failed.json",
    customer=None,
    entities=(
        (
            DetailType.PAYMENT_FAILED,
            Payment(
                source="stripe",
                source_id="pi_3PchargeFailed000000001",
                source_version=utc(2024, 8, 1),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.FAILED,
                amount=Money(amount=15000, currency="NOK"),
                customer_email=None,
                customer_name="Ola Nordmann",
                customer_phone=None,
                billing_address=Address(city="Oslo", postal_code="0150", country="NO"),
                transaction_ids=("pi_3PchargeFailed000000001", "ch_3PchargeFailed000000001"),
                failure_code="card_declined",
                failure_message="Your card was declined.",
                risk_level="highest",
                risk_score=91,
                created_at=utc(2024, 7, 31, 23, 59, 59),
            ),
        ),
    ),
)

SAMPLE_REFUNDED = Case(
    # The published sample: a full refund of a charge without an intent, its one refund listed
    "charge.refunded",
    "charge.refunded.json",
    customer=None,
    entities=(
        (
            DetailType.REFUND_ISSUED,
            Payment(
                source="stripe",
                source_id="ch_000000000000000000000000",
                source_version=utc(2022, 3, 26, 18, 39, 9),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.REFUNDED,
                amount=Money(amount=100, currency="USD"),
                amount_refunded=Money(amount=100, currency="USD"),
                transaction_ids=("ch_000000000000000000000000",),
                description="(created by Stripe CLI)",
                risk_level="normal",
                risk_score=52,
                created_at=utc(2022, 3, 26, 18, 39, 7),
            ),
        ),
        (
            DetailType.REFUND_ISSUED,
            Refund(
                source="stripe",
                source_id="re_000000000000000000000000",
                source_version=utc(2022, 3, 26, 18, 39, 9),
                receipt_id=RECEIPT,
                test=True,
                status=RefundStatus.SUCCEEDED,
                amount=Money(amount=100, currency="USD"),
                payment_id="ch_000000000000000000000000",
                order_id=None,
                reason=None,
                created_at=utc(2022, 3, 26, 18, 39, 9),
            ),
        ),
    ),
)

PARTIAL_REFUND = Case(
    # A quarter refunded: the payment is partially refunded, and the refund points at the intent
    "charge.refunded",
    "charge.refunded.partial.json",
    customer=Customer(
        source="stripe",
        source_id=None,
        source_version=utc(2024, 9, 1),
        receipt_id=RECEIPT,
        email="alice@example.co.uk",
        first_name="Alice",
        last_name="Smith",
        phone="+442079460958",
        address=Address(line1="1 Example Road", city="London", postal_code="SW1A 1AA", country="GB"),
        test=True,
    ),
    entities=(
        (
            DetailType.REFUND_ISSUED,
            Payment(
                source="stripe",
                source_id="pi_3PpartialRefund00000001",
                source_version=utc(2024, 9, 1),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.PARTIALLY_REFUNDED,
                amount=Money(amount=10000, currency="GBP"),
                amount_refunded=Money(amount=2500, currency="GBP"),
                customer_email="alice@example.co.uk",
                customer_name="Alice Smith",
                customer_phone="+442079460958",
                billing_address=Address(line1="1 Example Road", city="London", postal_code="SW1A 1AA", country="GB"),
                transaction_ids=("pi_3PpartialRefund00000001", "ch_3PpartialRefund00000001"),
                risk_level="normal",
                risk_score=7,
                created_at=utc(2024, 8, 31),
            ),
        ),
        (
            DetailType.REFUND_ISSUED,
            Refund(
                source="stripe",
                source_id="re_3PpartialRefund00000001",
                source_version=utc(2024, 9, 1),
                receipt_id=RECEIPT,
                test=True,
                status=RefundStatus.SUCCEEDED,
                amount=Money(amount=2500, currency="GBP"),
                payment_id="pi_3PpartialRefund00000001",
                reason="requested_by_customer",
                created_at=utc(2024, 8, 31, 23, 59, 59),
            ),
        ),
    ),
)

FULL_IN_TWO_REFUNDS = Case(
    # Fully refunded in two refunds, the newer one still pending: both refunds, each with its own status
    "charge.refunded",
    "charge.refunded.two-refunds.json",
    customer=Customer(
        source="stripe",
        source_id="cus_PtwoRefunds001",
        source_version=utc(2024, 10, 1),
        receipt_id=RECEIPT,
        email="buyer@example.com",
        first_name=None,
        last_name=None,
        phone=None,
        address=None,
        test=True,
    ),
    entities=(
        (
            DetailType.REFUND_ISSUED,
            Payment(
                source="stripe",
                source_id="pi_3PtwoRefunds00000000001",
                source_version=utc(2024, 10, 1),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.REFUNDED,
                amount=Money(amount=5000, currency="USD"),
                amount_refunded=Money(amount=5000, currency="USD"),
                customer_email="buyer@example.com",
                customer_source_id="cus_PtwoRefunds001",
                transaction_ids=("pi_3PtwoRefunds00000000001", "ch_3PtwoRefunds00000000001"),
                risk_level=None,  # no outcome on this charge
                created_at=utc(2024, 9, 29),
            ),
        ),
        (
            DetailType.REFUND_ISSUED,
            Refund(
                source="stripe",
                source_id="re_3PtwoRefundsSecond00001",
                source_version=utc(2024, 10, 1),
                receipt_id=RECEIPT,
                test=True,
                status=RefundStatus.PENDING,
                amount=Money(amount=2000, currency="USD"),
                payment_id="pi_3PtwoRefunds00000000001",
                reason=None,
                created_at=utc(2024, 9, 30, 23, 59, 59),
            ),
        ),
        (
            DetailType.REFUND_ISSUED,
            Refund(
                source="stripe",
                source_id="re_3PtwoRefundsFirst000001",
                source_version=utc(2024, 10, 1),
                receipt_id=RECEIPT,
                test=True,
                status=RefundStatus.SUCCEEDED,
                amount=Money(amount=3000, currency="USD"),
                payment_id="pi_3PtwoRefunds00000000001",
                reason="duplicate",
                created_at=utc(2024, 9, 30),
            ),
        ),
    ),
)

BASIL_REFUND_WITHOUT_LIST = Case(
    # basil charges carry no refunds list: the payment's refunded amount is all this event tells
    "charge.refunded",
    "charge.refunded.basil.json",
    customer=Customer(
        source="stripe",
        source_id="cus_PbasilRefund01",
        source_version=utc(2024, 11, 1),
        receipt_id=RECEIPT,
        email=None,
        first_name=None,
        last_name=None,
        phone=None,
        address=None,
        test=True,
    ),
    entities=(
        (
            DetailType.REFUND_ISSUED,
            Payment(
                source="stripe",
                source_id="pi_3PbasilRefund0000000001",
                source_version=utc(2024, 11, 1),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.PARTIALLY_REFUNDED,
                amount=Money(amount=3000, currency="EUR"),
                amount_refunded=Money(amount=1000, currency="EUR"),
                customer_source_id="cus_PbasilRefund01",
                transaction_ids=("pi_3PbasilRefund0000000001", "ch_3PbasilRefund0000000001"),
                created_at=utc(2024, 10, 31),
            ),
        ),
    ),
)

REFUND_FAILED = Case(
    # The partial refund above later failed (the card was closed): only the refund changes
    "charge.refund.updated",
    "charge.refund.updated.failed.json",
    customer=None,
    entities=(
        (
            DetailType.REFUND_ISSUED,
            Refund(
                source="stripe",
                source_id="re_3PpartialRefund00000001",
                source_version=utc(2024, 12, 1),
                receipt_id=RECEIPT,
                test=True,
                status=RefundStatus.FAILED,
                amount=Money(amount=2500, currency="GBP"),
                payment_id="pi_3PpartialRefund00000001",
                reason="requested_by_customer",
                created_at=utc(2024, 8, 31, 23, 59, 59),
            ),
        ),
    ),
)

# ---- disputes and fraud warnings -----------------------------------------------------------------------------------

SAMPLE_DISPUTE = Case(
    # The published sample: an inquiry (warning_needs_response) on a charge without an intent
    "charge.dispute.created",
    "charge.dispute.created.json",
    entities=(
        (
            DetailType.DISPUTE_OPENED,
            Dispute(
                source="stripe",
                source_id="dp_000000000000000000000000",
                source_version=utc(2022, 3, 26, 18, 39, 0),
                receipt_id=RECEIPT,
                test=True,
                status=DisputeStatus.WARNING,
                amount=Money(amount=100, currency="USD"),
                payment_id="ch_000000000000000000000000",
                reason="fraudulent",
                evidence_due_by=utc(2022, 4, 4, 23, 59, 59),
                created_at=utc(2022, 3, 26, 18, 39, 0),
            ),
        ),
    ),
)

DISPUTE_WON = Case(
    "charge.dispute.closed",
    "charge.dispute.closed.won.json",
    entities=(
        (
            DetailType.DISPUTE_CLOSED,
            Dispute(
                source="stripe",
                source_id="dp_1PdisputeWon00000000001",
                source_version=utc(2025, 1, 1),
                receipt_id=RECEIPT,
                test=True,
                status=DisputeStatus.WON,
                amount=Money(amount=24900, currency="NOK"),
                payment_id="pi_3PdisputeWon00000000001",  # the intent, not the charge: the payment's own id
                reason="product_not_received",
                evidence_due_by=utc(2024, 12, 10, 23, 59, 59),
                created_at=utc(2024, 12, 1),
            ),
        ),
    ),
)

EARLY_FRAUD_WARNING = Case(
    "radar.early_fraud_warning.created",
    "radar.early_fraud_warning.created.json",
    entities=(
        (
            DetailType.RISK_FLAGGED,
            Dispute(
                source="stripe",
                source_id="issfr_1PfraudWarning0000001",
                source_version=utc(2024, 7, 1),
                receipt_id=RECEIPT,
                test=True,
                status=DisputeStatus.WARNING,
                amount=None,
                payment_id="pi_3PfraudWarning000000001",
                reason="made_with_stolen_card",
                evidence_due_by=None,
                created_at=utc(2024, 6, 30, 23, 43, 20),
            ),
        ),
    ),
)

# ---- customers -----------------------------------------------------------------------------------------------------

SAMPLE_CUSTOMER = Case(
    # The published sample: a customer made by the CLI with nothing but an id
    "customer.created",
    "customer.created.json",
    customer=Customer(
        source="stripe",
        source_id="cus_00000000000000",
        source_version=utc(2022, 3, 26, 18, 41, 47),
        receipt_id=RECEIPT,
        email=None,
        first_name=None,
        last_name=None,
        phone=None,
        address=None,
        test=True,
    ),
)

CUSTOMER_UPDATED = Case(
    # One name field split on its first space (Stripe cannot say which part is the family name, so the order
    # is kept as written); no address of its own, so the shipping address, whose country reads the phone
    "customer.updated",
    "customer.updated.json",
    customer=Customer(
        source="stripe",
        source_id="cus_PJpyYamada01",
        source_version=utc(2024, 5, 1),
        receipt_id=RECEIPT,
        email="taro.yamada@example.jp",
        first_name="山田",
        last_name="太郎",
        phone="+819012345678",
        address=Address(
            line1="千代田区千代田1-1",
            line2=None,
            city="千代田区",
            region="東京都",
            postal_code="100-0001",
            country="JP",
        ),
        test=True,
    ),
)

CUSTOMER_DELETED = Case(
    "customer.deleted",
    "customer.deleted.json",
    customer=None,
    notices=(
        Notice(
            DetailType.CUSTOMER_DELETED,
            key="stripe:customer:cus_PzoeOdegard001",
            data={"email": "zoe.odegard@example.no"},
        ),
    ),
)

# ---- invoices and checkout -----------------------------------------------------------------------------------------

INVOICE_PAID = Case(
    # basil invoices name no payment intent: the invoice is the payment
    "invoice.paid",
    "invoice.paid.json",
    customer=Customer(
        source="stripe",
        source_id="cus_PinvoiceJenny1",
        source_version=utc(2024, 9, 1),
        receipt_id=RECEIPT,
        email="jenny.rosen@example.com",
        first_name="Jenny",
        last_name="Rosen",
        phone="+14155550100",
        address=Address(line1="510 Townsend St", city="San Francisco", region="CA", postal_code="94103", country="US"),
        test=True,
    ),
    entities=(
        (
            DetailType.PAYMENT_SUCCEEDED,
            Payment(
                source="stripe",
                source_id="in_1PinvoicePaid0000000001",
                source_version=utc(2024, 9, 1),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.SUCCEEDED,
                amount=Money(amount=1999, currency="USD"),
                customer_email="jenny.rosen@example.com",
                customer_source_id="cus_PinvoiceJenny1",
                customer_name="Jenny Rosen",
                customer_phone="+14155550100",
                billing_address=Address(
                    line1="510 Townsend St", city="San Francisco", region="CA", postal_code="94103", country="US"
                ),
                transaction_ids=("in_1PinvoicePaid0000000001",),
                description="Invoice ABC-0001",
                created_at=utc(2024, 8, 31, 23, 0),
            ),
        ),
    ),
)

INVOICE_FAILED = Case(
    # 2020-08-27 invoices still name their intent, which is then the payment; nothing paid, so the amount due
    "invoice.payment_failed",
    "invoice.payment_failed.json",
    customer=Customer(
        source="stripe",
        source_id="cus_PinvoiceJenny1",
        source_version=utc(2024, 10, 1),
        receipt_id=RECEIPT,
        email="jenny.rosen@example.com",
        first_name=None,
        last_name=None,
        phone=None,
        address=None,
        test=True,
    ),
    entities=(
        (
            DetailType.PAYMENT_FAILED,
            Payment(
                source="stripe",
                source_id="pi_1PinvoiceFailed00000001",
                source_version=utc(2024, 10, 1),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.FAILED,
                amount=Money(amount=4999, currency="USD"),
                customer_email="jenny.rosen@example.com",
                customer_source_id="cus_PinvoiceJenny1",
                order_refs=("5001",),
                transaction_ids=(
                    "pi_1PinvoiceFailed00000001",
                    "ch_1PinvoiceFailed00000001",
                    "in_1PinvoiceFailed00000001",
                ),
                description="Invoice ABC-0002",
                created_at=utc(2024, 9, 30, 23, 0),
            ),
        ),
    ),
)

CHECKOUT = Case(
    # A guest checkout (no Stripe customer) by Zoë Ødegård: her details, and the client reference as an order ref
    "checkout.session.completed",
    "checkout.session.completed.json",
    customer=Customer(
        source="stripe",
        source_id=None,
        source_version=utc(2024, 11, 1),
        receipt_id=RECEIPT,
        email="zoe.odegard@example.no",
        first_name="Zoë",
        last_name="Ødegård",
        phone="+4741234567",
        address=Address(line1="Karl Johans gate 1", city="Oslo", postal_code="0154", country="NO"),
        test=True,
    ),
    entities=(
        (
            DetailType.PAYMENT_SUCCEEDED,
            Payment(
                source="stripe",
                source_id="pi_3PcheckoutDone000000001",
                source_version=utc(2024, 11, 1),
                receipt_id=RECEIPT,
                test=True,
                kind="payment",
                status=PaymentStatus.SUCCEEDED,
                amount=Money(amount=24900, currency="NOK"),
                customer_email="zoe.odegard@example.no",
                customer_source_id=None,
                customer_name="Zoë Ødegård",
                customer_phone="+4741234567",
                billing_address=Address(line1="Karl Johans gate 1", city="Oslo", postal_code="0154", country="NO"),
                order_refs=("order-1001", "5550001"),
                transaction_ids=("pi_3PcheckoutDone000000001", "cs_test_a1PcheckoutDone0000001"),
                created_at=utc(2024, 10, 31, 23, 56, 40),
            ),
        ),
    ),
)

CHECKOUT_SETUP = Case(
    # Setup mode saves a card and moves no money: the customer, and no payment
    "checkout.session.completed",
    "checkout.session.completed.setup.json",
    customer=Customer(
        source="stripe",
        source_id="cus_PsetupCust0001",
        source_version=utc(2024, 12, 1),
        receipt_id=RECEIPT,
        email="setup.buyer@example.com",
        first_name=None,
        last_name=None,
        phone=None,
        address=None,
        test=True,
    ),
)

CASES = {
    "payment intent, 2020-08-27 sample": SAMPLE_2020,
    "payment intent, 2025-04-30.basil sample": SAMPLE_BASIL,
    "payment intent, JPY, live, Connect": JPY_LIVE,
    "payment intent, KWD, charges list": KWD_CHARGES_LIST,
    "payment intent failed": INTENT_FAILED,
    "charge succeeded without an intent": LONE_CHARGE,
    "charge failed, unparseable phone": CHARGE_FAILED,
    "charge refunded, sample (full)": SAMPLE_REFUNDED,
    "charge refunded, partial": PARTIAL_REFUND,
    "charge refunded, full in two refunds": FULL_IN_TWO_REFUNDS,
    "charge refunded, basil without a list": BASIL_REFUND_WITHOUT_LIST,
    "refund updated, failed": REFUND_FAILED,
    "dispute created, sample": SAMPLE_DISPUTE,
    "dispute closed, won": DISPUTE_WON,
    "early fraud warning": EARLY_FRAUD_WARNING,
    "customer created, sample": SAMPLE_CUSTOMER,
    "customer updated, Japanese name": CUSTOMER_UPDATED,
    "customer deleted": CUSTOMER_DELETED,
    "invoice paid, basil": INVOICE_PAID,
    "invoice payment failed, 2020-08-27": INVOICE_FAILED,
    "checkout completed, non-Latin name": CHECKOUT,
    "checkout completed, setup mode": CHECKOUT_SETUP,
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_event_converts_field_by_field(case: Case) -> None:
    # Given a signed Stripe event body for the topic
    # When it is converted
    converted = convert(case.topic, case.fixture)

    # Then the customer, each entity with its domain event, and each notice are exactly as written
    assert_same_conversion(converted, Converted(customer=case.customer, entities=case.entities, notices=case.notices))


def test_every_handled_topic_has_a_case() -> None:
    # charge.dispute.updated has its own status table below
    assert {case.topic for case in CASES.values()} | {"charge.dispute.updated"} == SOURCE.handled_topics


# ---- what the converted entities mean downstream -------------------------------------------------------------------


def test_amounts_format_with_the_currency_decimals() -> None:
    # Given yen (no minor unit) and dinar (three decimals) payments
    (_, yen), *_ = convert(JPY_LIVE.topic, JPY_LIVE.fixture).entities
    (_, dinar), *_ = convert(KWD_CHARGES_LIST.topic, KWD_CHARGES_LIST.fixture).entities

    # Then the human form follows ISO 4217
    assert isinstance(yen, Payment)
    assert isinstance(dinar, Payment)
    assert yen.amount.formatted() == "4500"
    assert dinar.amount.formatted() == "12.340"


def test_external_ids_follow_the_design() -> None:
    # Given a charge event of an intent, and a charge made without one
    (_, of_intent), (_, refund) = convert("charge.refunded", "charge.refunded.partial.json").entities
    (_, lone), *_ = convert("charge.succeeded", "charge.succeeded.json").entities
    (_, dispute), *_ = convert("charge.dispute.closed", "charge.dispute.closed.won.json").entities

    # Then the intent names the payment (so intent and charge events update one deal), else the charge does
    assert of_intent.external_id == "stripe:payment:pi_3PpartialRefund00000001"
    assert lone.external_id == "stripe:payment:ch_1PchargeSucceeded000001"
    assert refund.external_id == "stripe:refund:re_3PpartialRefund00000001"
    assert dispute.external_id == "stripe:dispute:dp_1PdisputeWon00000000001"


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("warning_needs_response", DisputeStatus.WARNING),
        ("warning_under_review", DisputeStatus.WARNING),
        ("warning_closed", DisputeStatus.WON),  # an inquiry that ended without a chargeback: closed, money kept
        ("needs_response", DisputeStatus.NEEDS_RESPONSE),
        ("appeal_needs_response", DisputeStatus.NEEDS_RESPONSE),
        ("under_review", DisputeStatus.UNDER_REVIEW),
        ("appeal_under_review", DisputeStatus.UNDER_REVIEW),
        ("won", DisputeStatus.WON),
        ("lost", DisputeStatus.LOST),
        ("charge_refunded", DisputeStatus.LOST),  # older APIs: settled by refunding, so the money is gone
        ("prevented", DisputeStatus.LOST),  # stopped by an automatic refund (Visa RDR): closed, money returned
        ("some_future_status", DisputeStatus.WARNING),  # lowest rank: overrides nothing it does not know
    ],
)
def test_dispute_statuses(status: str, expected: DisputeStatus) -> None:
    # Given the published dispute sample in each status Stripe has used
    body = payload("charge.dispute.created.json").replace(b'"warning_needs_response"', f'"{status}"'.encode())

    # When converted as an update
    ((detail, dispute),) = SOURCE.convert("charge.dispute.updated", body, receipt_id=RECEIPT).entities

    # Then the status is as written
    assert detail is DetailType.DISPUTE_UPDATED
    assert isinstance(dispute, Dispute)
    assert dispute.status is expected


def test_checkout_paid_later_is_pending() -> None:
    # Given a session completed with an asynchronous method (bank transfer): not paid yet
    body = payload("checkout.session.completed.json").replace(
        b'"payment_status": "paid"', b'"payment_status": "unpaid"'
    )

    # When converted / Then the payment is pending, still announced on completion
    ((detail, payment),) = SOURCE.convert("checkout.session.completed", body, receipt_id=RECEIPT).entities
    assert detail is DetailType.PAYMENT_SUCCEEDED
    assert isinstance(payment, Payment)
    assert payment.status is PaymentStatus.PENDING


def test_a_name_and_a_valid_phone_are_enough_for_a_customer() -> None:
    # Given the failed charge, but with a phone that parses (still no email, no Stripe customer)
    body = payload("charge.failed.json").replace(b'"phone": "12"', b'"phone": "412 34 567"')

    # When converted / Then the payer becomes a customer, the national number read with the billing country
    customer = SOURCE.convert("charge.failed", body, receipt_id=RECEIPT).customer
    assert_same_fields(
        customer,
        Customer(
            source="stripe",
            source_id=None,
            source_version=utc(2024, 8, 1),
            receipt_id=RECEIPT,
            email=None,
            first_name="Ola",
            last_name="Nordmann",
            phone="+4741234567",
            address=Address(city="Oslo", postal_code="0150", country="NO"),
            test=True,
        ),
    )


# ---- bodies that do not fit ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "name"),
    [
        ("payment_intent.succeeded", "not-an-event.payment_intent.json"),  # a bare resource, no envelope
        ("payment_intent.succeeded", "plan.created.json"),  # an event whose object is no payment intent
        ("charge.dispute.created", "customer.created.json"),  # a customer is no dispute
        ("checkout.session.completed", "invoice.paid.json"),
    ],
)
def test_json_that_is_not_the_topics_event_is_a_validation_error(topic: str, name: str) -> None:
    # Given a signed JSON body that does not fit the topic's schema / When converted
    # Then pydantic says why (the pipeline sends it to the DLQ with that reason)
    with pytest.raises(ValidationError):
        convert(topic, name)


@pytest.mark.parametrize(
    ("original", "replacement"),
    [
        (b'"amount": 2000,', b'"amount": 2000.0,'),  # a float amount: exactness already lost upstream
        (b'"amount": 2000,', b'"amount": "2000",'),  # a string amount
        (b'"amount": 2000,', b'"amount": -2000,'),
        (b'"currency": "usd"', b'"currency": "dollars"'),
        (b'"livemode": false,\n  "pending', b'"livemode": "no",\n  "pending'),  # test or live must be a verdict
    ],
)
def test_mistyped_fields_are_validation_errors(original: bytes, replacement: bytes) -> None:
    # Given the 2020 sample with one field of the wrong type
    body = payload("payment_intent.succeeded.json")
    assert original in body
    # When converted / Then it is refused, never coerced
    with pytest.raises(ValidationError):
        SOURCE.convert("payment_intent.succeeded", body.replace(original, replacement, 1), receipt_id=RECEIPT)


@pytest.mark.parametrize("body", [b"[]", b'"evt_1"', b"{}"])
def test_json_that_is_no_event_object_is_a_validation_error(body: bytes) -> None:
    with pytest.raises(ValidationError):
        SOURCE.convert("customer.created", body, receipt_id=RECEIPT)


def test_unhandled_topic_is_unsupported() -> None:
    # Given Stripe's generic fixture event, plan.created, which nothing here converts
    # When converted / Then UnsupportedTopic, before the body is even parsed
    assert "plan.created" not in SOURCE.handled_topics
    with pytest.raises(UnsupportedTopic, match=r"plan\.created"):
        convert("plan.created", "plan.created.json")
