"""Canonical payments, refunds and disputes: what a payment provider says about money that moved."""

from datetime import datetime
from enum import StrEnum
from typing import NotRequired, Self, TypedDict

from pydantic import BaseModel, ConfigDict, Field, field_validator

from crmsync.models.customer import Address, AddressFields, UtcDatetime, normalize_email
from crmsync.models.money import Money, MoneyFields, ReportingAmount


class PaymentStatus(StrEnum):
    """Lifecycle states in the order a payment moves through them (a later state wins at equal versions)."""

    PENDING = "pending"
    FAILED = "failed"
    AUTHORIZED = "authorized"
    SUCCEEDED = "succeeded"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    REVERSED = "reversed"  # charged back or reversed by the provider

    @property
    def rank(self) -> int:
        return list(PaymentStatus).index(self)


class RefundStatus(StrEnum):
    PENDING = "pending"
    FAILED = "failed"
    CANCELED = "canceled"
    SUCCEEDED = "succeeded"

    @property
    def rank(self) -> int:
        return list(RefundStatus).index(self)


class DisputeStatus(StrEnum):
    """Open states first, closed ones last: a closed dispute never reopens by a late event."""

    WARNING = "warning"  # an early fraud warning or an inquiry: no money held yet
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    WON = "won"
    LOST = "lost"

    @property
    def rank(self) -> int:
        return list(DisputeStatus).index(self)

    @property
    def is_open(self) -> bool:
        return self not in (DisputeStatus.WON, DisputeStatus.LOST)


class _EntityFields(TypedDict):
    source: str
    source_id: str
    source_version: datetime
    receipt_id: str
    test: NotRequired[bool]
    reporting: NotRequired[dict[str, ReportingAmount] | None]


class _Entity(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    source_id: str
    source_version: UtcDatetime
    receipt_id: str
    test: bool = False
    # Money fields restated in the reporting currency, keyed by field name ("amount", "amount_refunded", ...);
    # None when reporting is off. Set by crmsync.fx.apply_reporting, never by a converter.
    reporting: dict[str, ReportingAmount] | None = None


class PaymentFields(_EntityFields):
    """Payment's fields, for Payment.of: a misspelled or missing name is a mypy error, as with Payment(...)."""

    kind: str
    status: PaymentStatus
    amount: Money | MoneyFields
    amount_refunded: NotRequired[Money | MoneyFields | None]
    customer_email: NotRequired[str | None]
    customer_source_id: NotRequired[str | None]
    customer_name: NotRequired[str | None]
    customer_phone: NotRequired[str | None]
    billing_address: NotRequired[Address | AddressFields | None]
    order_refs: NotRequired[tuple[str, ...]]
    transaction_ids: NotRequired[tuple[str, ...]]
    description: NotRequired[str | None]
    failure_code: NotRequired[str | None]
    failure_message: NotRequired[str | None]
    risk_level: NotRequired[str | None]
    risk_score: NotRequired[int | None]
    created_at: NotRequired[datetime | None]


class Payment(_Entity):
    """One payment (a Stripe PaymentIntent or lone charge, a PayPal capture)."""

    kind: str = Field(pattern=r"^[a-z_]+$")  # "payment" (Stripe) or "capture" (PayPal): part of the external id
    status: PaymentStatus
    amount: Money  # amount_received once succeeded, else the amount asked for
    amount_refunded: Money | None = None
    customer_email: str | None = None
    customer_source_id: str | None = None  # the provider's customer id (cus_..., PayPal payer id)
    customer_name: str | None = None
    customer_phone: str | None = None  # E.164
    billing_address: Address | None = None
    order_refs: tuple[str, ...] = ()  # ids that may name a shop order (metadata order id, PayPal invoice/custom id)
    transaction_ids: tuple[str, ...] = ()  # every id of this payment (pi_, ch_, capture id) a shop order may quote
    description: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None
    risk_level: str | None = None  # Stripe Radar: normal / elevated / highest
    risk_score: int | None = None
    created_at: UtcDatetime | None = None

    @field_validator("customer_email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return normalize_email(value)

    @classmethod
    def of(cls, fields: PaymentFields) -> Self:
        """Payment(**fields), validated the same way (money and address may come as their fields), minus the
        Python frames of BaseModel.__init__."""
        payment: Self = cls.__pydantic_validator__.validate_python(fields)
        return payment

    @property
    def external_id(self) -> str:
        return f"{self.source}:{self.kind}:{self.source_id}"

    @property
    def rank(self) -> int:
        return self.status.rank


class RefundFields(_EntityFields):
    """Refund's fields, for Refund.of: a misspelled or missing name is a mypy error, as with Refund(...)."""

    status: RefundStatus
    amount: Money | MoneyFields
    payment_id: NotRequired[str | None]
    order_id: NotRequired[str | None]
    reason: NotRequired[str | None]
    created_at: NotRequired[datetime | None]


class Refund(_Entity):
    """Money returned, in part or in full, for a payment or an order."""

    status: RefundStatus
    amount: Money
    payment_id: str | None = None  # the provider's id of the refunded payment (pi_, ch_, capture id)
    order_id: str | None = None  # the shop's id of the refunded order
    reason: str | None = None
    created_at: UtcDatetime | None = None

    @classmethod
    def of(cls, fields: RefundFields) -> Self:
        """Refund(**fields), validated the same way, minus BaseModel.__init__'s Python frame."""
        refund: Self = cls.__pydantic_validator__.validate_python(fields)
        return refund

    @property
    def external_id(self) -> str:
        return f"{self.source}:refund:{self.source_id}"

    @property
    def rank(self) -> int:
        return self.status.rank


class DisputeFields(_EntityFields):
    """Dispute's fields, for Dispute.of: a misspelled or missing name is a mypy error, as with Dispute(...)."""

    status: DisputeStatus
    amount: Money | MoneyFields | None
    payment_id: NotRequired[str | None]
    reason: NotRequired[str | None]
    evidence_due_by: NotRequired[datetime | None]
    created_at: NotRequired[datetime | None]


class Dispute(_Entity):
    """A chargeback, inquiry or fraud warning raised against a payment."""

    status: DisputeStatus
    amount: Money | None
    payment_id: str | None = None
    reason: str | None = None
    evidence_due_by: datetime | None = None
    created_at: UtcDatetime | None = None

    @classmethod
    def of(cls, fields: DisputeFields) -> Self:
        """Dispute(**fields), validated the same way, minus BaseModel.__init__'s Python frame."""
        dispute: Self = cls.__pydantic_validator__.validate_python(fields)
        return dispute

    @property
    def external_id(self) -> str:
        return f"{self.source}:dispute:{self.source_id}"

    @property
    def rank(self) -> int:
        return self.status.rank
