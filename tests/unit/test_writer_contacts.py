"""The CRM writer sends a contact again only when it must: a batch that needs a customer only for a deal or a note
associates with the contact on record when that contact was last written with the customer's current stored
version; a changed customer, a customer an event is about and a merge are sent as before; a contact gone from the
CRM is upserted again. On the in-memory fakes (tests/unit/flush_world.py's Shopify world, FaultyCrm)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from crmsync.crm.errors import CrmRejected, RecordError
from crmsync.crm.port import Association, UpsertInput
from crmsync.identity import Merge, merge_customers
from crmsync.mapping import load_mapping
from crmsync.messages import DomainEvent
from crmsync.store.state import Versioned
from crmsync.writer import WriterDeps, WriteSummary, contact_version, write_events
from tests.fakes import FaultyCrm
from tests.unit.flush_world import World

Published = list[tuple[str, DomainEvent]]


def customer_id(n: int) -> str:
    return f"cus_{n:020x}"


def order_key(n: int) -> str:
    return f"shopify:order:{7_000_000_000 + n}"


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def write(world: World):
    """Run crmsync.writer.write_events over these events (or the events of these convert results), as one batch."""

    def run(*batches: Published | Sequence[DomainEvent], crm: Any = None) -> WriteSummary:
        events = [e[1] if isinstance(e, tuple) else e for batch in batches for e in batch]
        deps = WriterDeps(state=world.state.as_store(), crm=crm or world.crm, mapping=load_mapping("default"))
        return write_events(events, deps)

    return run


def only(published: Published, entity: str) -> list[DomainEvent]:
    return [event for _, event in published if event.entity == entity]


def contact_upserts(world: World) -> list[int]:
    return world.upserted("contacts")


def the_contact_of(world: World, n: int) -> str:
    contact = world.crm.find("contacts", "email", f"buyer{n:03d}@example.com")  # the default mapping's id property
    assert contact is not None
    return contact.id


def deal_contacts(world: World, order: int) -> list[str]:
    record = world.crm.find("deals", "crmsync_external_id", order_key(order))
    assert record is not None
    return record.associations.get("contacts", [])


@pytest.fixture
def known_customer(world: World, write) -> str:
    """Customer 1, whose order 1 (and so its contact) is in the CRM; returns the contact's id."""
    write(world.order(1, customer=1))
    assert contact_upserts(world) == [1]
    return the_contact_of(world, 1)


# --- a customer the batch needs only for a deal ------------------------------------------------------------------
def test_an_untouched_known_contact_is_not_sent_again_and_the_deal_is_associated_with_its_recorded_id(
    world, write, known_customer
):
    # Given customer 1's contact written with its current version, and a second order of theirs placed at the same
    # time, which leaves the customer as it is (no customer event)
    published = world.order(2, customer=1)
    assert [event.entity for _, event in published] == ["order"]
    # When the writer runs the order's batch
    summary = write(published)
    # Then no contact is sent: the batch upserts the deal and associates it with the contact on record
    assert contact_upserts(world) == [1]
    assert [(c.method, c.object_type) for c in world.crm.calls[-2:]] == [
        ("upsert", "deals"),
        ("associate", "deals->contacts"),
    ]
    assert summary.contacts == {}
    assert summary.reused == {customer_id(1): known_customer}
    assert deal_contacts(world, 2) == [known_customer]
    assert summary.associations == 1
    # And the CRM still holds one contact, and state its id, with the version it was written with
    assert len(world.crm.records("contacts")) == 1
    records = world.state.crm_records(f"CUSTOMER#{customer_id(1)}", "local")
    assert records.ids == {"contact": known_customer}
    assert records.versions == {"contact": contact_version(world.state.customer_items(customer_id(1)))}


def test_a_customer_with_a_newer_stored_version_is_sent_again(world, write, known_customer):
    # Given customer 1 changed since their contact was written (a newer webhook stored a new name), while the batch
    # holds only an order event of theirs (the customer's own event is in another batch, or comes later)
    world.clock.advance(60)
    newer = world.order(2, customer=1)
    assert sorted(event.entity for _, event in newer) == ["customer", "order"]
    # When the writer runs the order's event alone
    summary = write(only(newer, "order"))
    # Then the contact is upserted again, with the customer's current state, on the same record
    assert contact_upserts(world) == [1, 1]
    assert summary.contacts == {customer_id(1): known_customer}
    assert summary.reused == {}
    assert deal_contacts(world, 2) == [known_customer]
    # And state now records the version just written
    records = world.state.crm_records(f"CUSTOMER#{customer_id(1)}", "local")
    assert records.versions == {"contact": contact_version(world.state.customer_items(customer_id(1)))}


def test_an_older_view_of_another_source_changing_is_a_new_version_too(world, write, known_customer):
    # Given customer 1 also known to Stripe, by a view older than Shopify's, and their contact written with both
    cid = customer_id(1)
    shopify = max(item.version for item in world.state.customer_items(cid))
    stripe = {"source": "stripe", "source_id": "cus_S1", "email": "buyer001@example.com"}
    world.state.put_versioned(f"CUSTOMER#{cid}", "SRC#stripe#cus_S1", Versioned(shopify - 5000, 0, "r-s1"), stripe)
    write([world._event("customer", cid, cid, "r-s1")])
    assert write(only(world.order(2, customer=1), "order")).reused == {cid: known_customer}
    upserts = contact_upserts(world)
    # When Stripe's view changes (still older than Shopify's, so the newest version stays), and a batch needs the
    # customer only for a deal
    world.state.put_versioned(
        f"CUSTOMER#{cid}",
        "SRC#stripe#cus_S1",
        Versioned(shopify - 1000, 0, "r-s2"),
        {**stripe, "phone": "+15025550199"},
    )
    summary = write(only(world.order(3, customer=1), "order"))
    # Then the contact is sent again: every source's view makes the contact
    assert contact_upserts(world) == [*upserts, 1]
    assert summary.contacts == {cid: known_customer}
    assert world.crm.record("contacts", known_customer).properties["phone"] == "+15024581234"  # Shopify's, newest


def test_a_customer_an_event_of_the_batch_is_about_is_sent_as_before(world, write, known_customer):
    # Given customer 1's contact written at its current version
    first = world.order(1, customer=1)  # the same webhook again: nothing changes in state, nothing is published
    assert first == []
    customer_event = world._event("customer", customer_id(1), customer_id(1), "rcpt-again")
    # When a batch holds a customer.upserted event of theirs (a redelivery) next to a deal-only order
    summary = write([customer_event], only(world.order(2, customer=1), "order"))
    # Then the contact is upserted as the writer always did
    assert contact_upserts(world) == [1, 1]
    assert (summary.contacts, summary.reused) == ({customer_id(1): known_customer}, {})


def test_a_contact_recorded_for_another_crm_is_no_reason_to_skip(world, write):
    # Given customer 1's contact written to another backend only
    write(world.order(1, customer=1), crm=FaultyCrm(name="hubspot"))
    assert world.crm.records("contacts") == []
    # When a deal-only batch of theirs is written to this backend
    summary = write(only(world.order(2, customer=1), "order"))
    # Then this backend gets the contact
    assert contact_upserts(world) == [1]
    assert summary.contacts == {customer_id(1): the_contact_of(world, 1)}


def test_a_contact_the_match_policy_left_unchanged_is_recorded_without_a_version_and_sent_again(world):
    # Given a mapping that only creates contacts, and a contact someone else made that already holds customer 1's key
    mapping = load_mapping("default")
    contacts = mapping.contacts.model_copy(update={"match_policy": "create_only"})
    deps = WriterDeps(
        state=world.state.as_store(), crm=world.crm, mapping=mapping.model_copy(update={"contacts": contacts})
    )
    [theirs] = world.crm.upsert(
        "contacts", [UpsertInput("email", "buyer001@example.com", {"email": "buyer001@example.com"})]
    )
    # When customer 1's first order is written, then a deal-only batch of theirs
    first = write_events([e for _, e in world.order(1, customer=1)], deps)
    second = write_events(only(world.order(2, customer=1), "order"), deps)
    # Then the contact left unchanged shows no version of ours: its id is recorded without one, and it is sent
    # again, as before (create_only leaves it as it is again)
    assert first.unchanged == second.unchanged == [customer_id(1)]
    records = world.state.crm_records(f"CUSTOMER#{customer_id(1)}", "local")
    assert records.ids == {"contact": theirs.id}
    assert records.versions == {}
    assert contact_upserts(world) == [1, 1, 1]
    assert second.reused == {}


# --- merges ----------------------------------------------------------------------------------------------------------
def test_a_merged_customer_is_sent_again_and_the_merged_contact_folded_into_it(world, write):
    # Given customers 1 and 2, each with a contact, then found to be one person: 2 is merged into 1
    write(world.order(1, customer=1))
    write(world.order(2, customer=2))
    survivor, loser = the_contact_of(world, 1), the_contact_of(world, 2)
    merge_customers(
        world.state.as_store(), Merge(customer_id(1), customer_id(2), "same phone"), receipt_id="r-m", at="2026"
    )
    merged = world._event("customer", customer_id(1), customer_id(1), "r-m").model_copy(
        update={"merged": customer_id(2)}
    )
    # When the batch holds the merge event and a deal-only order of the survivor
    summary = write([merged], only(world.order(3, customer=1), "order"))
    # Then the survivor's contact is upserted and the merged one folded into it: one person, one contact
    assert summary.contacts == {customer_id(1): survivor}
    assert summary.reused == {}
    assert [r.id for r in world.crm.records("contacts")] == [survivor]
    assert world.crm.record("contacts", loser) is None
    assert deal_contacts(world, 2) == deal_contacts(world, 3) == [survivor]
    assert world.state.crm_ids(f"CUSTOMER#{customer_id(2)}", "local") == {}


def test_a_merge_that_leaves_the_survivors_version_as_it_was_still_folds_the_contacts(world, write):
    # Given customers 1 and 2 with contacts, 2's views already moved to 1 by an earlier run of the merge whose
    # event is only now written: 1's contact is on record at 1's current version
    write(world.order(1, customer=1))
    write(world.order(2, customer=2))
    survivor, loser = the_contact_of(world, 1), the_contact_of(world, 2)
    merge_customers(
        world.state.as_store(), Merge(customer_id(1), customer_id(2), "same email"), receipt_id="r-m", at="2026"
    )
    write(only(world.order(3, customer=1), "order"))  # sends 1's contact again: its views changed
    assert world.crm.record("contacts", loser) is not None
    upserts = len(contact_upserts(world))
    merged = world._event("customer", customer_id(1), customer_id(1), "r-m").model_copy(
        update={"merged": customer_id(2)}
    )
    # When the merge event is written
    summary = write([merged])
    # Then the survivor is sent again and the merged customer's contact folded into it
    assert len(contact_upserts(world)) == upserts + 1
    assert summary.contacts == {customer_id(1): survivor}
    assert world.crm.record("contacts", loser) is None
    assert world.state.crm_ids(f"CUSTOMER#{customer_id(2)}", "local") == {}


# --- a contact gone from the CRM --------------------------------------------------------------------------------------
def test_a_contact_gone_from_the_crm_is_upserted_again_and_the_deal_associated_with_it(world, write, known_customer):
    # Given customer 1's contact on record, then deleted in the CRM by hand
    world.crm.delete_record("contacts", known_customer)
    # When a deal-only batch of theirs is written
    summary = write(only(world.order(2, customer=1), "order"))
    # Then the association naming the gone contact is refused, the contact upserted after all (a new record), and
    # the deal associated with it
    calls = [(c.method, c.object_type, c.outcome) for c in world.crm.calls[-4:]]  # after the deal's upsert
    assert calls == [
        ("associate", "deals->contacts", "ok"),  # refused (CrmNotFound: no contacts record), before any effect
        ("upsert", "contacts", "ok"),
        ("merge", "contacts", "ok"),  # the contact on record folded into the one written: it is gone, a no-op
        ("associate", "deals->contacts", "ok"),
    ]
    [contact] = world.crm.records("contacts")
    assert contact.id != known_customer
    assert summary.contacts == {customer_id(1): contact.id}
    assert summary.reused == {}
    assert summary.associations == 1
    assert deal_contacts(world, 2) == [contact.id]
    # And state records the new contact, with the version it now shows, for the next batch
    records = world.state.crm_records(f"CUSTOMER#{customer_id(1)}", "local")
    assert records.ids == {"contact": contact.id}
    assert records.versions == {"contact": contact_version(world.state.customer_items(customer_id(1)))}
    # And the next deal-only batch reuses it
    assert write(only(world.order(3, customer=1), "order")).reused == {customer_id(1): contact.id}


def test_a_note_whose_customers_contact_is_gone_reaches_the_new_contact(world, write, known_customer):
    # Given customer 1's contact deleted in the CRM, and a refund of their order 1 (a note on the deal and contact)
    world.crm.delete_record("contacts", known_customer)
    world.state.put_versioned(
        "REFUND#shopify:refund:1",
        "STATE",
        Versioned(1, 0, "r-refund"),
        {"source": "shopify", "source_id": "1", "order_id": "7000000001", "status": "succeeded",
         "amount": {"amount": 500, "currency": "USD"}, "reason": "damaged"},
        customer_id=customer_id(1),
    )  # fmt: skip
    refund = world._event("refund", "shopify:refund:1", customer_id(1), "r-refund")
    # When the refund's batch is written
    summary = write([refund])
    # Then every association ends on the live contact
    [contact] = world.crm.records("contacts")
    assert summary.contacts == {customer_id(1): contact.id}
    assert contact.id in deal_contacts(world, 1)  # (FaultyCrm keeps the gone contact's id on the deal)
    for note_id in summary.notes.values():
        note = world.crm.record("notes", note_id)
        assert note is not None
        assert note.associations.get("contacts") == [contact.id]


class RefusingAssociations:
    """A CRM (delegating to another) that refuses every association, as a CRM does when what it cannot find is the
    deal, not the contact."""

    def __init__(self, crm: FaultyCrm) -> None:
        self.crm = crm
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.crm, name)

    def associate(self, from_type: str, to_type: str, pairs: Sequence[Association]) -> None:
        self.refused += 1
        raise CrmRejected(f"associate {from_type}->{to_type}", [RecordError("a pair", "refused", 400)])


def test_a_refusal_that_sending_the_contact_does_not_cure_fails_the_batch(world, write, known_customer):
    # Given a CRM that refuses every association, and customer 1's contact on record
    crm = RefusingAssociations(world.crm)
    upserts = len(world.crm.calls)
    # When a deal-only batch of theirs is written
    with pytest.raises(CrmRejected):
        write(only(world.order(2, customer=1), "order"), crm=crm)
    # Then the contact was sent once more before the second refusal failed the batch (which SQS retries)
    assert crm.refused == 2
    assert [(c.method, c.object_type) for c in world.crm.calls[upserts:]] == [
        ("upsert", "deals"),
        ("upsert", "contacts"),
    ]


def test_a_refused_association_with_only_contacts_sent_in_the_batch_fails_at_once(world, write):
    # Given a CRM that refuses every association
    crm = RefusingAssociations(world.crm)
    # When a batch that sends its contact is written
    with pytest.raises(CrmRejected):
        write(world.order(1, customer=1), crm=crm)
    # Then nothing more is tried: sending the contact again would change nothing
    assert crm.refused == 1
    assert [(c.method, c.object_type) for c in world.crm.calls] == [("upsert", "contacts"), ("upsert", "deals")]
