"""The mapping's opt-in `line_items:` and `companies:` sections: one CRM line item per order line, upserted by its
external id and associated with its deal; one company per company name, associated with its contacts; without
the sections, not one call more than before. On the in-memory fakes (tests/unit/flush_world.py's Shopify world)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from crmsync.crm.errors import CrmUnavailable
from crmsync.mapping import Mapping, load_mapping, parse_mapping_text
from crmsync.mapping.fields import CONFIG_DIR
from crmsync.messages import DomainEvent
from crmsync.sources.shopify import ShopifyWebhooks
from crmsync.sources.woocommerce import WooCommerceWebhooks
from crmsync.store.state import Versioned
from crmsync.views import line_item_views
from crmsync.writer import WriterDeps, WriteSummary, write_events
from tests.unit.flush_world import World

Published = list[tuple[str, DomainEvent]]
DEFAULT = load_mapping.__wrapped__("default")  # the shipped file, read afresh (not the cached instance)
LINE_ITEMS = """
line_items:
  id_property: crmsync_external_id
  properties:
    name: name
    quantity: quantity
    price: price
    hs_line_item_currency_code: currency
    hs_sku: sku
    crmsync_external_id: external_id
"""
COMPANIES = """
companies:
  id_property: crmsync_external_id
  properties:
    name: name
    city: address.city
    crmsync_external_id: external_id
"""


def order_key(n: int) -> str:
    return f"shopify:order:{7_000_000_000 + n}"


def with_sections(*sections: str) -> Mapping:
    text = (CONFIG_DIR / "default.yaml").read_text() + "".join(sections)
    return parse_mapping_text(text, source="default+sections.yaml")


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def write(world: World):
    """Run crmsync.writer.write_events over these convert results, as one batch, with this mapping."""

    def run(*batches: Published | Sequence[DomainEvent], mapping: Mapping = DEFAULT) -> WriteSummary:
        events = [e[1] if isinstance(e, tuple) else e for batch in batches for e in batch]
        return write_events(events, WriterDeps(state=world.state.as_store(), crm=world.crm, mapping=mapping))

    return run


def calls(world: World) -> list[tuple[str, str, int]]:
    return [(c.method, c.object_type, c.size) for c in world.crm.calls]


def at_company(world: World, customer: int, company: str) -> Published:
    """Customer `customer`'s Shopify view again, newer, with a company name in its address."""
    customer_id = f"cus_{customer:020x}"
    [item] = world.state.as_store().customer_items(customer_id)
    data: dict[str, Any] = {**item.data, "address": {**(item.data.get("address") or {}), "company": company}}
    world.clock.advance(1)
    world.receipts += 1
    receipt = f"rcpt-{world.receipts:04d}"
    assert world.state.put_versioned(
        f"CUSTOMER#{customer_id}", item.sk, Versioned(item.version + 1000, 0, receipt), data
    )
    return [("customer.upserted", world._event("customer", customer_id, customer_id, receipt))]


# --- line items ---------------------------------------------------------------------------------------------------
def test_each_order_line_becomes_one_line_item_with_its_mapped_properties_associated_with_its_deal(world, write):
    # Given a mapping with a line_items section, and a Shopify order of two lines (a lamp, and gift wrap)
    mapping = with_sections(LINE_ITEMS)
    # When the writer writes the order
    summary = write(world.order(1), mapping=mapping)
    # Then each line is one CRM line item, found by <order external id>:line:<line id>, with its properties
    lamp = world.crm.find("line_items", "crmsync_external_id", f"{order_key(1)}:line:13579246801357")
    wrap = world.crm.find("line_items", "crmsync_external_id", f"{order_key(1)}:line:13579246801358")
    assert lamp is not None
    assert wrap is not None
    assert lamp.properties == {
        "name": "Analytical Engine Desk Lamp", "quantity": "1", "price": "199.00", "hs_line_item_currency_code": "USD",
        "hs_sku": "AE-LAMP-BR", "crmsync_external_id": f"{order_key(1)}:line:13579246801357",
    }  # fmt: skip
    assert (wrap.properties["name"], wrap.properties["price"], wrap.properties["hs_sku"]) == (
        "Punch Card Gift Wrap", "10.00", "GIFT-WRAP",
    )  # fmt: skip
    # And both are associated with the order's deal (both ways)
    deal = world.crm.find("deals", "crmsync_external_id", order_key(1))
    assert deal is not None
    assert world.crm.associations("line_items", "deals") == {(lamp.id, deal.id), (wrap.id, deal.id)}
    assert sorted(deal.associations["line_items"]) == sorted([lamp.id, wrap.id])
    assert summary.line_items == {
        f"{order_key(1)}:line:13579246801357": lamp.id, f"{order_key(1)}:line:13579246801358": wrap.id,
    }  # fmt: skip
    # And it took one upsert call and one association call for the lines, after the deal's
    assert calls(world)[-2:] == [("upsert", "line_items", 2), ("associate", "line_items->deals", 2)]


def test_a_redelivered_or_updated_order_updates_the_same_line_items(world, write):
    # Given an order whose lines are in the CRM
    mapping = with_sections(LINE_ITEMS)
    published = world.order(1)
    write(published, mapping=mapping)
    # When the same batch is delivered again, and the order moves on (paid)
    write(published, mapping=mapping)
    world.clock.advance(60)
    write(world.order(1, "paid"), mapping=mapping)
    # Then there are still two line items, each associated once with the one deal
    assert len(world.crm.records("line_items")) == 2
    assert world.crm.created["line_items"] == 2
    assert len(world.crm.records("deals")) == 1
    assert len(world.crm.associations("line_items", "deals")) == 2


def test_many_orders_lines_are_upserted_and_associated_in_batches_of_100(world, write):
    # Given 60 orders of two lines each (120 lines), in one batch
    mapping = with_sections(LINE_ITEMS)
    published = [event for n in range(1, 61) for event in world.order(n)]
    # When written
    write(published, mapping=mapping)
    # Then the lines took two upsert calls (100 + 20) and two association calls
    assert [c for c in calls(world) if "line_items" in c[1]] == [
        ("upsert", "line_items", 100), ("upsert", "line_items", 20),
        ("associate", "line_items->deals", 100), ("associate", "line_items->deals", 20),
    ]  # fmt: skip


# --- companies ----------------------------------------------------------------------------------------------------
def test_contacts_of_one_company_name_share_one_company_and_are_associated_with_it(world, write):
    # Given a mapping with a companies section, and three customers: two at "Babbage & Co" (spelled with different
    # case and spacing), one with no company
    mapping = with_sections(COMPANIES)
    write(world.order(1), world.order(2), world.order(3), mapping=mapping)
    assert world.crm.records("companies") == []  # no company name yet: no company, and no call for one
    # When the first two say where they work
    summary = write(at_company(world, 1, "Babbage & Co"), at_company(world, 2, " babbage  & co "), mapping=mapping)
    # Then there is one company, found by its normalised name, and both contacts are associated with it
    [company] = world.crm.records("companies")
    assert company.properties == {
        "name": "Babbage & Co", "city": "Louisville", "crmsync_external_id": "company:babbage & co",
    }  # fmt: skip
    contacts = {c.properties["email"]: c.id for c in world.crm.records("contacts")}
    assert world.crm.associations("contacts", "companies") == {
        (contacts["buyer001@example.com"], company.id), (contacts["buyer002@example.com"], company.id),
    }  # fmt: skip
    assert summary.companies == {"company:babbage & co": company.id}
    assert [c for c in calls(world) if "compan" in c[1]] == [
        ("upsert", "companies", 1), ("associate", "contacts->companies", 2),
    ]  # fmt: skip
    # When the same is delivered again, Then still one company
    write(at_company(world, 1, "Babbage & Co"), mapping=mapping)
    assert len(world.crm.records("companies")) == 1


# --- opt-in -------------------------------------------------------------------------------------------------------
def test_without_the_sections_the_writer_makes_exactly_the_calls_it_made_before():
    # Given two worlds with the same orders (and a customer with a company name), one written with the shipped
    # mapping and one with a mapping that has both sections
    plain, mapped = World(), World()
    for world in (plain, mapped):
        for n in (1, 2):
            world.order(n)

    def run(world: World, mapping: Mapping) -> None:
        events = [e for n in (1, 2) for e in world.order(n, "paid")] + at_company(world, 1, "Babbage & Co")
        write_events([e for _, e in events], WriterDeps(world.state.as_store(), world.crm, mapping))

    # When both write the same batch
    run(plain, DEFAULT)
    run(mapped, with_sections(LINE_ITEMS, COMPANIES))
    # Then the shipped mapping made the contacts, deals and associations calls only, and no line item or company
    assert calls(plain) == [
        ("upsert", "contacts", 2), ("upsert", "deals", 2), ("associate", "deals->contacts", 2),
    ]  # fmt: skip
    assert plain.crm.records("line_items") == []
    assert plain.crm.records("companies") == []
    # And the mapping with the sections made those same calls plus one per section's upsert and association
    assert calls(mapped) == [
        ("upsert", "contacts", 2), ("upsert", "companies", 1), ("associate", "contacts->companies", 1),
        ("upsert", "deals", 2), ("associate", "deals->contacts", 2),
        ("upsert", "line_items", 4), ("associate", "line_items->deals", 4),
    ]  # fmt: skip
    assert DEFAULT.line_items is None
    assert DEFAULT.companies is None


def test_a_company_the_crm_refused_is_written_with_the_contact_by_the_next_batch_that_needs_it(world, write):
    # Given a contact in the CRM, and its customer now naming a company, whose company upsert fails (a 5xx) after the
    # contact's went through
    mapping = with_sections(COMPANIES)
    first = world.order(1)
    write(first, mapping=mapping)
    world.crm.fail_next(None, "server_error")
    with pytest.raises(CrmUnavailable):
        write(at_company(world, 1, "Babbage & Co"), mapping=mapping)
    assert world.crm.records("companies") == []
    # When a later batch needs the customer only for its order's deal
    write([event for _, event in first if event.entity == "order"], mapping=mapping)
    # Then the contact was not taken as written (its version was never recorded): it is sent again, with its company
    [company] = world.crm.records("companies")
    [contact] = world.crm.records("contacts")
    assert world.crm.associations("contacts", "companies") == {(contact.id, company.id)}


# --- where the company name comes from ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("source", "fixture", "topic", "where"),
    [
        ("shopify", "events/payloads/shopify-orders-create.json", "orders/create", "billing_address"),
        ("woocommerce", "tests/fixtures/woocommerce/order-partial-refund.json", "order.updated", "billing"),
    ],
)
def test_shopify_and_woocommerce_address_companies_reach_the_canonical_address(source, fixture, topic, where):
    # Given an order whose billing address names a company (blanks around it)
    payload = json.loads((Path(__file__).resolve().parents[2] / fixture).read_text())
    payload[where] = {**payload[where], "company": "  Babbage & Co "}
    converter = ShopifyWebhooks() if source == "shopify" else WooCommerceWebhooks()
    # When converted
    converted = converter.convert(topic, json.dumps(payload).encode(), receipt_id="r")
    # Then the customer's address carries it, trimmed
    assert converted.customer is not None
    assert converted.customer.address is not None
    assert converted.customer.address.company == "Babbage & Co"


def test_lines_without_an_id_of_their_own_are_named_by_their_position_in_the_order():
    # Given an order view whose lines have no id, or one id twice (a source's quirk), in JPY
    def line(source_id: str, title: str) -> dict[str, Any]:
        money = {"amount": 1500, "currency": "JPY"}
        return {"source_id": source_id, "sku": None, "title": title, "quantity": 2, "unit_price": money,
                "total_discount": {"amount": 0, "currency": "JPY"}}  # fmt: skip

    deal = {
        "external_id": "shop:order:1",
        "line_items": [line("", "a"), line("7", "b"), line("7", "c"), line("8", "d")],
    }
    # When made line item views
    views = line_item_views(deal)
    # Then a line keeps its own id only when it is the only one holding it, and prices have the currency's decimals
    assert list(views) == ["shop:order:1:line:0", "shop:order:1:line:1", "shop:order:1:line:2", "shop:order:1:line:8"]
    assert {v["price"] for v in views.values()} == {"1500"}
    assert views["shop:order:1:line:8"]["deal_external_id"] == "shop:order:1"
    # And a payment view (no lines) has none
    assert line_item_views({"external_id": "stripe:payment:1"}) == {}
