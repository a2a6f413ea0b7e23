"""Canonical customer: one person as a source knows them, normalised so identities can be matched."""

from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, NotRequired, Self, TypedDict

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from crmsync.models.phones import normalize_phone as normalize_phone  # re-exported, where it always was


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


# Sources send local offsets; versions are compared across payloads, so every timestamp is stored in UTC.
UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


def normalize_email(value: str | None) -> str | None:
    """Trimmed, lower-cased email; blank means unknown."""
    if value is None:
        return None
    return value.strip().lower() or None


@lru_cache(maxsize=1024)
def normalize_country(value: str | None) -> str | None:
    """ISO 3166-1 alpha-2 for a code or an English name ("us", "USA", "United States" -> "US"); None if unknown."""
    if not value or not value.strip():
        return None
    import pycountry  # lazily: its database loads on first use, and only converters need it

    try:
        country = pycountry.countries.lookup(value.strip())
    except LookupError:
        return None
    return str(country.alpha_2)


class AddressFields(TypedDict, total=False):
    """Address's fields, to build one inside a Customer's or Payment's validation: mypy checks the names."""

    line1: str | None
    line2: str | None
    city: str | None
    region: str | None
    postal_code: str | None
    country: str | None
    company: str | None


class Address(BaseModel):
    model_config = ConfigDict(frozen=True)

    line1: str | None = None
    line2: str | None = None
    city: str | None = None
    region: str | None = None
    postal_code: str | None = None
    country: Annotated[str, Field(pattern=r"^[A-Z]{2}$")] | None = None  # ISO 3166-1 alpha-2
    company: str | None = None  # the company name the address names (Shopify's and WooCommerce's `company`)

    @field_validator("country", mode="before")
    @classmethod
    def _upper_country(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value


class CustomerFields(TypedDict):
    """Customer's fields, for Customer.of: a misspelled or missing name is a mypy error, as with Customer(...)."""

    source: str
    source_id: str | None
    source_version: datetime
    receipt_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: str | None
    address: Address | AddressFields | None
    accepts_marketing: NotRequired[bool | None]
    test: NotRequired[bool]


class Customer(BaseModel):
    model_config = ConfigDict(frozen=True)

    source: str
    source_id: str | None  # None for guest checkouts
    source_version: UtcDatetime
    receipt_id: str
    email: str | None
    first_name: str | None
    last_name: str | None
    phone: Annotated[str, Field(pattern=r"^\+[1-9]\d{1,14}$")] | None  # E.164
    address: Address | None
    accepts_marketing: bool | None = None
    test: bool = False

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        return normalize_email(value)

    @classmethod
    def of(cls, fields: CustomerFields) -> Self:
        """Customer(**fields), validated the same way (an address may come as its fields), minus the Python frame
        of BaseModel.__init__ and of a separate Address."""
        customer: Self = cls.__pydantic_validator__.validate_python(fields)
        return customer
