"""Backfill, import and reconciliation on the in-memory fakes: a WooCommerce REST v3 API in memory (its documented
pagination: per_page, page, X-WP-Total / X-WP-TotalPages, modified_after) behind the real client, the real job
worker, convert and CRM writer."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
import urllib.parse
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any, cast

import pytest

from crmsync.convert import ConvertDeps, convert_message
from crmsync.ingest import IngestDeps, WebhookRequest, accept_webhook
from crmsync.mapping import load_mapping
from crmsync.messages import DomainEvent, IngestMessage
from crmsync.observability import logger
from crmsync.sources import woocommerce
from crmsync.store.errors import StoreError
from crmsync.sync import reconcile
from crmsync.sync.clients import HttpResponse, RateLimiter, WooCommerceClient
from crmsync.sync.importer import BadImport, parse_file
from crmsync.sync.jobs import BackfillRequest, SyncDeps, handle_message, job_view, start_backfill
from crmsync.sync.sync_import import start_import
from crmsync.sync.wiring import IMPORT_PREFIX
from crmsync.writer import WriterDeps, write_events
from tests.conftest import EVENTS
from tests.fakes import FakeClock, FaultyCrm, MemoryArchive, MemoryBus, MemoryReceipts, MemoryState, SqsSimulator
from tests.fakes.sync import MemorySync

TEMPLATE = json.loads((EVENTS / "payloads" / "woocommerce-order-created.json").read_text())
WOO_SECRET = "sync-woocommerce-secret"


def woo_order(n: int, *, modified: str = "2026-01-01T00:00:00", total: str = "10.00") -> dict[str, Any]:
    order = copy.deepcopy(TEMPLATE)
    order.update(id=n, number=str(n), date_modified_gmt=modified, total=total, line_items=[], refunds=[])
    order["billing"] = {**order["billing"], "email": f"buyer{n}@example.com", "phone": ""}
    return order


class WooApi:
    """GET /wp-json/wc/v3/orders as WooCommerce answers it (ascending by id here, modified_after honoured)."""

    def __init__(self, orders: list[dict[str, Any]]) -> None:
        self.orders = {o["id"]: o for o in orders}
        self.requests = 0

    def transport(self, method: str, url: str, headers: Mapping[str, str]) -> HttpResponse:
        assert method == "GET"
        assert headers["Authorization"].startswith("Basic ")
        self.requests += 1
        parsed = urllib.parse.urlparse(url)
        if parsed.path == "/wp-json/wc/v3/customers":  # guests only in this shop
            return HttpResponse(200, {"x-wp-total": "0", "x-wp-totalpages": "0"}, b"[]")
        assert parsed.path == "/wp-json/wc/v3/orders"
        query = dict(urllib.parse.parse_qsl(parsed.query))
        after = query.get("modified_after", "").removesuffix("Z")
        listed = [o for _, o in sorted(self.orders.items()) if not after or o["date_modified_gmt"] > after]
        per_page, page = int(query["per_page"]), int(query["page"])
        pages = -(-len(listed) // per_page)
        body = json.dumps(listed[(page - 1) * per_page : page * per_page]).encode()
        return HttpResponse(200, {"x-wp-total": str(len(listed)), "x-wp-totalpages": str(pages)}, body)


class Crash(Exception):
    """The worker killed mid-run (Lambda timeout, out of memory)."""


class World:
    def __init__(self, orders: list[dict[str, Any]]) -> None:
        self.clock = FakeClock()
        self.state, self.sync = MemoryState(), MemorySync()
        self.archive = MemoryArchive(clock=self.clock)
        self.ingest = SqsSimulator.from_template("IngestQueue", seed=1, clock=self.clock)
        self.backfill = SqsSimulator.from_template("BackfillQueue", seed=2, clock=self.clock)
        self.bus = MemoryBus(clock=self.clock)
        self.api = WooApi(orders)
        self.client = WooCommerceClient("https://shop.example", "ck", "cs", self.api.transport, RateLimiter(0))
        self.crm = FaultyCrm(seed=3)
        self.deps = SyncDeps(
            store=self.sync.as_store(), queue=self.backfill.as_store(), state=self.state.as_store(),
            archive=self.archive.as_store(), ingest_queue=self.ingest.as_store(), client=lambda _source: self.client,
            clock=self.clock, rows=self.rows,
        )  # fmt: skip
        self.writer = WriterDeps(state=self.state.as_store(), crm=self.crm, mapping=load_mapping("default"))
        self.receipts = MemoryReceipts()
        self.deliveries = 0
        self.ingest_deps = IngestDeps(
            receipts=self.receipts.as_store(), archive=self.archive.as_store(), queue=self.ingest.as_store(),
            secrets=lambda _name: [WOO_SECRET], clock=self.clock,
        )  # fmt: skip

    def deliver(self, topic: str, payload: dict[str, Any], delivery_id: str | None = None) -> str:
        """The shop's signed webhook of `topic` through ingest onto the ingest queue; ingest's answer status. Each
        delivery has its own id, as core gives it (or `delivery_id`: the same delivery again)."""
        body = json.dumps(payload).encode()
        self.deliveries += 1
        headers = {
            "x-wc-webhook-source": "https://shop.example/",
            "x-wc-webhook-topic": topic,
            "x-wc-webhook-resource": topic.partition(".")[0],
            "x-wc-webhook-event": topic.partition(".")[2],
            "x-wc-webhook-delivery-id": delivery_id or f"delivery-{self.deliveries}",
            "x-wc-webhook-signature": woocommerce.sign(body, WOO_SECRET),
        }
        answer = accept_webhook(WebhookRequest(source="woocommerce", headers=headers, body=body), self.ingest_deps)
        return str(answer.body["status"])

    def rows(self, job_id: str, chunk: int) -> list[dict[str, Any]]:
        text = self.archive.get(f"{IMPORT_PREFIX}{job_id}/{chunk:05d}.jsonl").decode()
        return [json.loads(line) for line in text.splitlines()]

    def work(self, crash_on: set[int] = frozenset()) -> None:  # type: ignore[assignment]
        """The sync function on the backfill queue; message number n in crash_on is killed mid-way."""
        seen = [0]

        def handle(batch: list[Any]) -> list[str]:
            failed = []
            for message in batch:
                seen[0] += 1
                try:
                    if seen[0] in crash_on:
                        raise Crash
                    handle_message(message.body, self.deps)
                except Crash:
                    failed.append(message.message_id)
            return failed

        self.backfill.drain(handle, batch_size=1)

    def convert_deps(self) -> ConvertDeps:
        """The convert function's deps, as functions/convert/app.py wires them (the sync table included)."""
        return ConvertDeps(
            archive=self.archive.as_store(), state=self.state.as_store(), bus=self.bus.as_store(),
            sync=self.sync.as_store(),
        )  # fmt: skip

    def convert(self, *, write_crm: bool = False) -> int:
        """Convert everything on the ingest queue (and write the CRM); returns messages converted."""
        deps = self.convert_deps()
        events: list[DomainEvent] = []
        done = 0

        def handle(batch: list[Any]) -> list[str]:
            nonlocal done
            for message in batch:
                published = convert_message(IngestMessage.model_validate_json(message.body), deps)
                events.extend(DomainEvent.model_validate_json(detail) for _, detail in published)
                done += 1
            return []

        self.ingest.drain(handle)
        if write_crm and events:
            write_events(events, self.writer)
        return done

    def order_keys(self) -> list[str]:
        return sorted(item["pk"] for item in self.state.items("ORDER#", "STATE"))


def archive_keys(world: World) -> list[str]:
    return [key for page in world.archive.keys("") for key in page]


@pytest.fixture(autouse=True)
def _quiet():
    previous = logger.log_level
    logger.setLevel("CRITICAL")
    yield
    logger.setLevel(previous)


def test_backfill_of_5000_records_killed_and_resumed_has_no_duplicate_and_no_gap():
    # Given 5,000 WooCommerce orders behind the REST API (50 pages of 100)
    world = World([woo_order(n) for n in range(1, 5001)])
    started = time.perf_counter()
    job_id = start_backfill(BackfillRequest(source="woocommerce", objects=["orders"]), world.deps)
    # When the worker is killed on several pages (before and after their checkpoint) and SQS redelivers them
    original_advance = world.sync.advance
    advances = [0]

    def advance_then_die(*args: Any, **kwargs: Any) -> bool:
        done = original_advance(*args, **kwargs)
        advances[0] += 1
        if advances[0] in (7, 30):  # the checkpoint is written, the next page's message is not sent
            raise Crash
        return done

    world.sync.advance = advance_then_die  # type: ignore[method-assign]
    world.work(crash_on={3, 12, 40})  # killed before the page's checkpoint
    backfilled = time.perf_counter() - started
    world.convert()
    elapsed = time.perf_counter() - started
    # Then the job is done, every page counted once
    view = job_view(job_id, world.sync.as_store(), now=world.clock())
    assert view is not None
    assert view["status"] == "done"
    assert view["percent"] == 100.0
    assert view["counts"]["records"] == view["counts"]["enqueued"] == 5000
    assert view["counts"]["pages"] == 50
    # And state holds every order exactly once: no gap, no duplicate
    assert world.order_keys() == sorted(f"ORDER#woocommerce:order:{n}" for n in range(1, 5001))
    # And at most the pages that were redone were sent twice (harmless: same receipts, version-guarded)
    assert 5000 <= world.ingest.stats["sent"] <= 5000 + 3 * 100
    print(
        f"\nbackfill: 5000 records enqueued in {backfilled:.2f}s ({5000 / backfilled:,.0f} records/s); "
        f"with conversion {elapsed:.2f}s ({5000 / elapsed:,.0f} records/s); API requests {world.api.requests}"
    )


def test_checkpoint_survives_a_crash_and_a_duplicated_page_message_changes_nothing():
    # Given a backfill whose first page is done
    world = World([woo_order(n) for n in range(1, 251)])
    job_id = start_backfill(BackfillRequest(source="woocommerce", objects=["orders"]), world.deps)
    first = world.backfill.messages()[0]
    handle_message(first.body, world.deps)
    # When the same page's message arrives again (at-least-once delivery)
    handle_message(first.body, world.deps)
    # Then the checkpoint moved once, and the next page was (re)sent rather than skipped
    checkpoint = world.sync.checkpoint(job_id, "orders")
    assert checkpoint is not None
    assert (checkpoint.next_page, checkpoint.counts["records"]) == (1, 100)
    world.work()
    assert job_view(job_id, world.sync.as_store())["counts"]["records"] == 250  # type: ignore[index]


def test_dry_run_previews_creates_updates_and_noops_and_writes_nothing():
    # Given 100 orders synced already
    world = World([woo_order(n) for n in range(1, 101)])
    start_backfill(BackfillRequest(source="woocommerce"), world.deps)
    world.work()
    world.convert()
    # And the source now has 10 of them changed and 200 new
    for n in range(1, 11):
        world.api.orders[n] = woo_order(n, modified="2026-02-01T00:00:00", total="99.00")
    for n in range(101, 301):
        world.api.orders[n] = woo_order(n)
    state_before, archive_before = world.state.items(), archive_keys(world)
    # When a dry run is made
    job_id = start_backfill(BackfillRequest(source="woocommerce", objects=["orders"], dry_run=True), world.deps)
    world.work()
    # Then it previews 200 orders and 200 customers to create, 10 orders to update, the rest unchanged
    view = job_view(job_id, world.sync.as_store())
    assert view is not None
    assert view["preview"] == {"create": 400, "update": 10, "noop": 190, "invalid": 0}
    # And nothing was written: no state, no archived body, no ingest message
    assert world.state.items() == state_before
    assert archive_keys(world) == archive_before
    assert world.ingest.messages() == []


CSV = """type,id,updated_at,email,first_name,last_name,total,currency,status,customer_id
customer,c1,2026-01-01T00:00:00Z,ann@example.com,Ann,Lee,,,,
order,o1,2026-01-02T00:00:00Z,ann@example.com,,,25.50,EUR,paid,c1
order,o2,,bob@example.com,,,10.00,EUR,paid,
order,o3,2026-01-02T00:00:00Z,bob@example.com,,,10.00,EURO,paid,
order,o1,2026-01-03T00:00:00Z,ann@example.com,,,25.50,EUR,paid,c1
customer,c2,2026-01-01T00:00:00Z,not-an-email,,,,,,
"""


def test_a_jsonl_line_nested_deeper_than_the_parser_is_a_bad_row_not_a_crash():
    # Given a JSON Lines file whose second line is valid JSON nested 100,000 deep (found by the operator fuzzer)
    text = '{"type": "customer", "id": "c1", "updated_at": "2026-01-01T00:00:00Z", "email": "a@example.com"}\n'
    text += "[" * 100_000 + "]" * 100_000
    # When it is parsed, Then the first row is valid and the second is reported by line
    parsed = parse_file(text, "jsonl")
    assert (len(parsed.rows), [(e.line, e.reason) for e in parsed.errors]) == (1, [(2, "not a JSON object")])


def test_a_csv_with_old_mac_line_endings_is_read_like_any_other():
    # Given a CSV whose lines end in a bare \r (found by the OpenAPI fuzzer: it used to be a 502)
    text = "type,id,updated_at,email\rcustomer,c1,2026-01-01T00:00:00Z,a@example.com\r"
    # When parsed, Then its one row is valid
    parsed = parse_file(text, "csv")
    row = {"type": "customer", "id": "c1", "updated_at": "2026-01-01T00:00:00Z", "email": "a@example.com"}
    assert (parsed.rows, parsed.errors) == ([row], [])


def test_a_csv_the_csv_module_cannot_read_is_refused_with_the_line():
    # Given a CSV with a field over the csv module's 128 KiB limit on line 2
    text = "type,id\ncustomer," + "x" * 200_000 + "\n"
    # When parsed, Then the whole file is refused, naming the line
    with pytest.raises(BadImport, match=r"line 2: not readable as CSV \(field larger than field limit"):
        parse_file(text, "csv")


def test_import_reports_each_bad_row_and_reimport_is_idempotent():
    world = World([])
    # When a CSV with three bad rows and a duplicate is imported
    answer = start_import(CSV, "csv", world.deps)
    # Then each bad row is reported by line, with the field at fault and never its value
    assert answer["rows"] == 6
    assert answer["accepted"] == 2
    lines = {e["line"]: e["error"] for e in answer["errors"]}
    assert set(lines) == {4, 5, 6, 7}
    assert lines[4].startswith("updated_at")
    assert "currency" in lines[5]
    assert "same order id as line 3" in lines[6]
    assert lines[7].startswith("email")
    assert "not-an-email" not in json.dumps(answer)
    # And the valid rows go through the normal conversion path
    world.work()
    world.convert(write_crm=True)
    assert world.order_keys() == ["ORDER#import:order:o1"]
    order = world.state.as_store().get_order("import:order:o1")
    assert order is not None
    assert order.data["total"] == {"amount": 2550, "currency": "EUR"}
    contacts, deals = len(world.crm.records("contacts")), len(world.crm.records("deals"))
    assert (contacts, deals) == (1, 1)
    items = world.state.items()
    # When the same file is imported again
    again = start_import(CSV, "csv", world.deps)
    world.work()
    world.convert(write_crm=True)
    # Then nothing new exists: same state, same CRM records
    assert again["accepted"] == 2
    assert len(world.state.items("ORDER#")) == len([i for i in items if i["pk"].startswith("ORDER#")])
    assert world.order_keys() == ["ORDER#import:order:o1"]
    assert (len(world.crm.records("contacts")), len(world.crm.records("deals"))) == (contacts, deals)
    assert job_view(again["job_id"], world.sync.as_store())["status"] == "done"  # type: ignore[index]


def test_reconciliation_finds_and_repairs_drift():
    # Given 20 orders synced to state and the CRM
    world = World([woo_order(n) for n in range(1, 21)])
    start_backfill(BackfillRequest(source="woocommerce", objects=["orders"]), world.deps)
    world.work()
    world.convert(write_crm=True)
    deals = {r.properties["crmsync_external_id"]: r for r in world.crm.records("deals")}
    assert len(deals) == 20
    # And drift: a webhook lost (order 21 never arrived), a deal deleted in the CRM, a deal edited by hand,
    # an order deleted at the source
    world.api.orders[21] = woo_order(21)
    world.crm.delete_record("deals", deals["woocommerce:order:3"].id)
    world.crm.set_property("deals", deals["woocommerce:order:5"].id, "amount", "1.00")
    del world.api.orders[7]
    deps = reconcile.ReconcileDeps(
        sync=world.deps, crm=world.crm, mapping=world.writer.mapping,
        repair_crm=lambda events: write_events(events, world.writer),
        known_keys=lambda prefix: [i["pk"] for i in world.state.items(prefix, "STATE")],
    )  # fmt: skip
    # When a full reconciliation runs
    report = reconcile.run("woocommerce", deps, run_id="rc_1", full=True)
    # Then the drift report says what was found and repaired
    orders = report["objects"]["orders"]
    assert report["status"] == "done"
    assert orders["checked"] == 20
    assert orders["deleted"] == 1
    assert orders["missing"] == 2  # order 21 missing in state, deal 3 missing in the CRM
    assert orders["stale"] == 1  # deal 5's amount
    assert orders["repaired"] == 4
    assert orders["failed"] == 0
    assert world.sync.get_run("rc_1") == report
    # And the repairs went through the normal paths: order 21 converted, the deletion recorded, the CRM rewritten
    world.convert(write_crm=True)
    assert "ORDER#woocommerce:order:21" in world.order_keys()
    repaired = {r.properties["crmsync_external_id"]: r for r in world.crm.records("deals")}
    assert "woocommerce:order:3" in repaired
    assert repaired["woocommerce:order:5"].properties["amount"] == deals["woocommerce:order:5"].properties["amount"]
    # And a second run finds state and CRM in step: the deletion was reported once (state keeps the order's record)
    again = reconcile.run("woocommerce", deps, run_id="rc_2", full=True)["objects"]["orders"]
    assert (again["missing"], again["stale"], again["deleted"], again["repaired"]) == (0, 0, 0, 0)
    assert world.convert() == 0  # nothing sent again
    assert world.sync.counters[(next(iter(world.sync.counters))[0], "woocommerce")]["checked"] == 40


def reconcile_deps(world: World, published: list[dict[str, int]] | None = None) -> reconcile.ReconcileDeps:
    """A reconciliation of world's shop against its state and CRM (CRM repairs written at once)."""
    return reconcile.ReconcileDeps(
        sync=world.deps, crm=world.crm, mapping=world.writer.mapping,
        repair_crm=lambda events: write_events(events, world.writer),
        known_keys=lambda prefix: [i["pk"] for i in world.state.items(prefix, "STATE")],
        publish=lambda _source, totals: (published if published is not None else []).append(dict(totals)),
    )  # fmt: skip


def synced_world(count: int) -> World:
    """count WooCommerce orders backfilled into state and the CRM."""
    world = World([woo_order(n) for n in range(1, count + 1)])
    start_backfill(BackfillRequest(source="woocommerce", objects=["orders"]), world.deps)
    world.work()
    world.convert(write_crm=True)
    return world


def test_an_order_deleted_at_the_source_is_drift_once_and_its_deletion_is_sent_once():
    # Given 3 synced orders, and order 2 deleted at the source without its order.deleted webhook
    world = synced_world(3)
    del world.api.orders[2]
    published: list[dict[str, int]] = []
    deps = reconcile_deps(world, published)
    # When a full reconciliation runs
    first = reconcile.run("woocommerce", deps, run_id="rc_1", full=True)["objects"]["orders"]
    # Then the deletion is drift, its webhook is sent through ingest, and it is recorded in the sync store
    assert (first["deleted"], first["repaired"]) == (1, 1)
    assert world.convert() == 1
    assert world.sync.deletions("woocommerce") == {"ORDER#woocommerce:order:2"}
    assert world.sync.gone[("woocommerce", "ORDER#woocommerce:order:2")]["run_id"] == "rc_1"
    # And the deletion notice leaves the stored order as it was
    assert "ORDER#woocommerce:order:2" in world.order_keys()
    # When a second and a third full run follow
    second = reconcile.run("woocommerce", deps, run_id="rc_2", full=True)
    third = reconcile.run("woocommerce", deps, run_id="rc_3", full=True)
    # Then neither counts the deletion again nor sends anything: no drift for the alarm
    for report in (second, third):
        orders = report["objects"]["orders"]
        assert {name: orders[name] for name in reconcile.FIELDS} == {
            "checked": 2, "missing": 0, "stale": 0, "deleted": 0, "repaired": 0, "failed": 0,
        }  # fmt: skip
        assert orders["examples"] == []
    assert world.convert() == 0
    assert [p["deleted"] for p in published] == [1, 0, 0]
    assert world.sync.deletions("woocommerce") == {"ORDER#woocommerce:order:2"}


def restore_then_delete_again(
    world: World, deps: reconcile.ReconcileDeps, deleted: dict[str, Any], *, full: bool
) -> tuple[dict[str, Any], set[str], dict[str, Any]]:
    """The shop restores order 2 (modified after the cursor) and a run (full or not) lists it; then the shop deletes
    it again, without a webhook, and a full run follows. Both runs' order reports, and the deletions recorded
    between them."""
    world.api.orders[2] = {**deleted, "date_modified_gmt": "2030-01-01T00:00:00"}
    world.clock.advance(60)
    restored = reconcile.run("woocommerce", deps, run_id="rc_2", full=full)["objects"]["orders"]
    recorded = world.sync.deletions("woocommerce")
    del world.api.orders[2]
    world.clock.advance(60)
    again = reconcile.run("woocommerce", deps, run_id="rc_3", full=True)["objects"]["orders"]
    return restored, recorded, again


@pytest.mark.parametrize("full", [True, False], ids=["full run", "incremental run"])
def test_an_order_listed_again_clears_its_recorded_deletion(full):
    # Given order 2 deleted at the source and reported by a full run
    world = synced_world(3)
    deleted = world.api.orders.pop(2)
    deps = reconcile_deps(world)
    reconcile.run("woocommerce", deps, run_id="rc_1", full=True)
    world.convert(write_crm=True)
    assert world.sync.deletions("woocommerce") == {"ORDER#woocommerce:order:2"}
    # When the shop restores it (WooCommerce's order.restored: modified after the cursor) and a run lists it, then
    # deletes it again
    restored, recorded, again = restore_then_delete_again(world, deps, deleted, full=full)
    # Then the restore is no drift and clears its recorded deletion
    assert (restored["deleted"], restored["failed"]) == (0, 0)
    assert recorded == set()
    # And the second deletion is drift once more, and sent
    assert (again["deleted"], again["repaired"]) == (1, 1)
    assert world.sync.deletions("woocommerce") == {"ORDER#woocommerce:order:2"}


def test_a_recorded_deletion_goes_once_state_no_longer_has_the_order():
    # Given a deletion recorded for order 2, and the order then gone from state (erased)
    world = synced_world(3)
    del world.api.orders[2]
    deps = reconcile_deps(world)
    reconcile.run("woocommerce", deps, run_id="rc_1", full=True)
    world.convert(write_crm=True)
    world.state.as_store().delete_partition("ORDER#woocommerce:order:2")
    # When a full run follows, Then there is nothing to report and the record is gone
    report = reconcile.run("woocommerce", deps, run_id="rc_2", full=True)["objects"]["orders"]
    assert report["deleted"] == 0
    assert world.sync.deletions("woocommerce") == set()


def webhook_world(count: int) -> World:
    """count WooCommerce orders stored from the shop's order.created webhooks, and written to the CRM."""
    world = World([woo_order(n) for n in range(1, count + 1)])
    for order in world.api.orders.values():
        assert world.deliver("order.created", order) == "accepted"
    world.convert(write_crm=True)
    return world


def delete_with_webhook(world: World, n: int) -> tuple[dict[str, Any], IngestMessage]:
    """The shop deletes order n and sends its order.deleted webhook ({"id": n}), which convert takes: the order, and
    the ingest message convert took."""
    deleted = world.api.orders.pop(n)
    assert world.deliver("order.deleted", {"id": n}) == "accepted"
    [queued] = world.ingest.messages()
    assert world.convert(write_crm=True) == 1
    return deleted, IngestMessage.model_validate_json(queued.body)


DELETED_2 = ("woocommerce", "ORDER#woocommerce:order:2")


def test_an_order_deleted_webhook_records_the_deletion_as_reconciliation_does():
    # Given 3 orders stored from their order.created webhooks
    world = webhook_world(3)
    # When the shop deletes order 2 and its order.deleted webhook is converted
    _, message = delete_with_webhook(world, 2)
    # Then the deletion is recorded in the sync table under the order's state pk, by the webhook's receipt
    assert world.sync.deletions("woocommerce") == {"ORDER#woocommerce:order:2"}
    record = world.sync.gone[DELETED_2]
    assert record["receipt_id"] == message.receipt_id
    # And the notice is published, and the stored order kept as it was
    assert [d["key"] for d in world.bus.details("order.cancelled")] == ["woocommerce:order:2"]
    assert "ORDER#woocommerce:order:2" in world.order_keys()
    # When the same message is converted again (SQS redelivers it)
    convert_message(message, world.convert_deps())
    # Then the record is the same
    assert world.sync.gone == {DELETED_2: record}


def queued_deletion(world: World, n: int) -> IngestMessage:
    """The shop deletes order n and its order.deleted webhook waits on the ingest queue: the message convert gets."""
    del world.api.orders[n]
    world.deliver("order.deleted", {"id": n})
    [queued] = world.ingest.messages()
    return IngestMessage.model_validate_json(queued.body)


def test_a_deletion_record_that_cannot_be_written_fails_the_message_and_its_retry_loses_nothing():
    # Given order 2's order.deleted webhook on the ingest queue, and the sync table failing
    world = webhook_world(3)
    message = queued_deletion(world, 2)
    record_deletion_notice = world.sync.record_deletion_notice

    def unavailable(source: str, key: str, receipt_id: str, at: str) -> None:
        raise StoreError("sync table unavailable")

    world.sync.record_deletion_notice = unavailable  # type: ignore[method-assign]
    # When convert takes it, Then the message fails (SQS delivers it again) after the notice is published
    with pytest.raises(StoreError):
        convert_message(message, world.convert_deps())
    assert [d["key"] for d in world.bus.details("order.cancelled")] == ["woocommerce:order:2"]
    assert world.sync.deletions("woocommerce") == set()
    # When the table is back and the message is retried, Then the notice is published again (consumers are
    # idempotent) and the deletion recorded
    world.sync.record_deletion_notice = record_deletion_notice  # type: ignore[method-assign]
    convert_message(message, world.convert_deps())
    assert world.sync.gone[DELETED_2]["receipt_id"] == message.receipt_id
    assert [d["key"] for d in world.bus.details("order.cancelled")] == ["woocommerce:order:2"] * 2


def test_a_deletion_whose_notice_cannot_be_published_is_not_recorded():
    # Given order 2's order.deleted webhook on the ingest queue, and the event bus failing
    world = webhook_world(3)
    message = queued_deletion(world, 2)
    deps = world.convert_deps()

    def unavailable(events: Any) -> None:
        raise StoreError("event bus unavailable")

    # When convert takes it / Then the message fails, and no deletion is recorded: were it dead-lettered, the next
    # full reconciliation still finds the order deleted, reports it and sends its deletion webhook again
    with pytest.raises(StoreError):
        convert_message(message, dataclasses.replace(deps, bus=cast(Any, SimpleNamespace(publish=unavailable))))
    assert world.sync.deletions("woocommerce") == set()


def test_a_second_deletion_after_a_restore_is_taken_and_stays_recorded():
    # Given order 2 deleted with its webhook, then restored at the shop (order.restored), before any run saw it
    world = webhook_world(3)
    deleted, first = delete_with_webhook(world, 2)
    world.api.orders[2] = deleted
    assert world.deliver("order.restored", deleted) == "accepted"
    world.convert(write_crm=True)
    # When the shop deletes it again: a new delivery of the same {"id": 2}
    del world.api.orders[2]
    assert world.deliver("order.deleted", {"id": 2}, delivery_id="second") == "accepted"  # not the first again
    [queued] = world.ingest.messages()
    assert world.convert(write_crm=True) == 1
    # Then the order is recorded deleted, and a full run reports no drift for it
    assert world.sync.deletions("woocommerce") == {"ORDER#woocommerce:order:2"}
    report = reconcile.run("woocommerce", reconcile_deps(world, []), run_id="rc_1", full=True)
    assert report["objects"]["orders"]["deleted"] == 0
    assert IngestMessage.model_validate_json(queued.body).receipt_id != first.receipt_id
    # And the same delivery again is a duplicate
    assert world.deliver("order.deleted", {"id": 2}, delivery_id="second") == "duplicate"


def test_a_full_run_after_the_order_deleted_webhook_reports_no_deletion_and_sends_nothing():
    # Given 3 orders stored from their order.created webhooks, then order 2 deleted with its order.deleted webhook
    world = webhook_world(3)
    _, message = delete_with_webhook(world, 2)
    published: list[dict[str, int]] = []
    # When a full reconciliation runs, the shop no longer listing order 2
    report = reconcile.run("woocommerce", reconcile_deps(world, published), run_id="rc_1", full=True)
    # Then the deletion the webhook told of is no drift, and no deletion webhook is sent again
    orders = report["objects"]["orders"]
    assert {name: orders[name] for name in reconcile.FIELDS} == {
        "checked": 2, "missing": 0, "stale": 0, "deleted": 0, "repaired": 0, "failed": 0,
    }  # fmt: skip
    assert orders["examples"] == []
    assert world.ingest.messages() == []
    assert [p["deleted"] for p in published] == [0]
    # And the webhook's record stays, for the runs after it
    assert world.sync.gone[DELETED_2]["receipt_id"] == message.receipt_id


@pytest.mark.parametrize("full", [True, False], ids=["full run", "incremental run"])
def test_an_order_restored_after_its_order_deleted_webhook_clears_the_record(full):
    # Given order 2 deleted with its order.deleted webhook, and a full run since (no drift)
    world = webhook_world(3)
    deleted, _ = delete_with_webhook(world, 2)
    deps = reconcile_deps(world)
    assert reconcile.run("woocommerce", deps, run_id="rc_1", full=True)["objects"]["orders"]["deleted"] == 0
    # When the shop restores it (modified after the cursor) and a run lists it, then deletes it again, this time
    # without its webhook
    restored, recorded, again = restore_then_delete_again(world, deps, deleted, full=full)
    # Then the restore is no drift and clears the webhook's record
    assert (restored["deleted"], restored["failed"]) == (0, 0)
    assert recorded == set()
    # And the second deletion is drift once more, sent, and recorded by the run
    assert (again["deleted"], again["repaired"]) == (1, 1)
    assert world.sync.gone[DELETED_2]["run_id"] == "rc_3"


def test_the_example_of_an_order_missing_in_state_names_the_order_not_its_new_customer():
    # Given 2 synced orders, and order 3 of a new (guest) buyer whose order.created webhook never arrived
    world = synced_world(2)
    world.api.orders[3] = woo_order(3)
    # When a full reconciliation runs
    report = reconcile.run("woocommerce", reconcile_deps(world), run_id="rc_1", full=True)
    # Then the order is missing, and the example names the order's key (never the buyer's email)
    orders = report["objects"]["orders"]
    assert (orders["missing"], orders["repaired"]) == (1, 1)
    assert orders["examples"] == [{"key": "woocommerce:order:3", "where": "state", "drift": "missing"}]
    assert "@" not in json.dumps(report)


def test_the_example_of_a_stale_order_names_the_order():
    # Given 2 synced orders, and order 2 changed at the source (a newer total) without its order.updated webhook
    world = synced_world(2)
    world.api.orders[2] = woo_order(2, modified="2026-01-02T00:00:00", total="99.00")
    # When a full reconciliation runs, Then the example names the order
    orders = reconcile.run("woocommerce", reconcile_deps(world), run_id="rc_1", full=True)["objects"]["orders"]
    assert orders["stale"] == 1
    assert orders["examples"] == [{"key": "woocommerce:order:2", "where": "state", "drift": "stale"}]


def test_cli_backfill_shows_a_progress_bar_until_done():
    import io

    from local import ops

    views = iter(
        [
            {
                "job_id": "bf_1",
                "status": "running",
                "counts": {"records": 250},
                "percent": 25.0,
                "rate": 50.0,
                "eta": 15,
            },
            {"job_id": "bf_1", "status": "done", "counts": {"records": 1000}, "percent": 100.0, "rate": 60.0, "eta": 0},
        ]
    )

    def transport(method: str, url: str, body: bytes | None, headers: Mapping[str, str]) -> tuple[int, Any]:
        if method == "POST":
            assert json.loads(body or b"{}") == {"source": "woocommerce", "objects": ["orders"], "dry_run": False}
            return 202, {"job_id": "bf_1"}
        return 200, next(views)

    out = io.StringIO()
    args = ["--url", "http://127.0.0.1:1", "--api-key", "k", "backfill", "--source", "woocommerce", "--object",
            "orders", "--watch", "--interval", "0"]  # fmt: skip
    assert ops.main(args, transport=transport, env={}, out=out) == 0
    lines = out.getvalue().splitlines()
    assert lines[0] == "backfill job bf_1 started"
    assert "[#######" in lines[1]
    assert " 25.0%" in lines[1]
    assert "eta 15s" in lines[1]
    assert lines[2].startswith("bf_1 done")
    assert "100.0%" in lines[2]
