"""Identity resolution on an in-memory state fake: one id per person, email first, races settled by the first key."""

from __future__ import annotations

from datetime import UTC, datetime

from crmsync.identity import identity_keys, resolve_customer_id
from crmsync.models import Customer


class FakeIdentityState:
    """Just the identity part of StateStore, with StateStore's first-writer-wins semantics."""

    def __init__(self) -> None:
        self.links: dict[str, tuple[str, str]] = {}

    def lookup_identity(self, key: str) -> str | None:
        return self.links[key][0] if key in self.links else None

    def link_identity(self, key: str, customer_id: str, reason: str) -> str:
        return self.links.setdefault(key, (customer_id, reason))[0]

    def merged_into(self, customer_id: str) -> str | None:
        return None  # merges are covered on the full state store (tests/integration/test_identity_merge.py)


def customer(email: str | None = "ada@example.com", source_id: str | None = "1", phone: str | None = None) -> Customer:
    return Customer(
        source="shopify", source_id=source_id, source_version=datetime(2026, 1, 1, tzinfo=UTC), receipt_id="r",
        email=email, first_name="Ada", last_name=None, phone=phone, address=None,
    )  # fmt: skip


def ids(*values: str):
    it = iter(values)
    return lambda: next(it)


def test_keys_in_order_of_trust():
    assert [k for k, _ in identity_keys(customer(phone="+15024581234"))] == [
        "email:ada@example.com",
        "shopify:customer:1",
        "phone:+15024581234",
    ]
    assert [k for k, _ in identity_keys(customer(email=None, phone="+15024581234"))] == [
        "shopify:customer:1",
        "phone:+15024581234",
    ]


def test_same_email_from_another_customer_record_resolves_to_the_same_person():
    state = FakeIdentityState()
    first = resolve_customer_id(customer(), state, ids("cus_a"))  # type: ignore[arg-type]
    second = resolve_customer_id(customer(source_id="2"), state, ids("cus_b"))  # type: ignore[arg-type]
    assert first is not None
    assert second is not None
    assert first.customer_id == second.customer_id == "cus_a"
    assert (first.matched_by, second.matched_by) == ("new customer (same email)", "same email")
    assert state.links["shopify:customer:2"] == ("cus_a", "same shopify customer id")
    assert state.links["email:ada@example.com"][1] == "same email"


def test_a_customer_without_any_key_has_no_id():
    assert resolve_customer_id(customer(email=None, source_id=None), FakeIdentityState(), ids("x")) is None  # type: ignore[arg-type]


def test_a_racing_writer_ends_with_the_winners_id():
    # Given another conversion linked the email between our lookup and our link
    state = FakeIdentityState()
    original = state.lookup_identity
    state.lookup_identity = lambda key: None  # type: ignore[method-assign]
    state.links["email:ada@example.com"] = ("cus_winner", "same email")
    # When we resolve, Then we adopt the winner's id
    resolution = resolve_customer_id(customer(), state, ids("cus_loser"))  # type: ignore[arg-type]
    assert resolution is not None
    assert resolution.customer_id == "cus_winner"
    state.lookup_identity = original  # type: ignore[method-assign]
