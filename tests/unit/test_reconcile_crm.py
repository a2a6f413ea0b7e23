"""Reconciliation's CRM check (state <-> CRM) on HubSpot and Salesforce: the records are read back in batches from the
fake portals (local/hubspot_fake.py validates every request and answer against HubSpot's OpenAPI specs;
local/salesforce_fake.py answers the SOQL in Composite calls), their mapped fields compared with what the CRM writer
would send, and a record missing or stale in the CRM is repaired through the writer. No sockets."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from crmsync.crm.errors import CrmRejected
from crmsync.crm.hubspot import HubSpotCrm
from crmsync.crm.hubspot_setup import required_properties, setup
from crmsync.crm.salesforce import ApiUsageGuard, SalesforceApi, SalesforceCredentials, SalesforceCrm, connect
from crmsync.mapping import load_mapping
from crmsync.sync import reconcile
from crmsync.sync.jobs import BackfillRequest, start_backfill
from crmsync.writer import WriterDeps, write_events
from local.hubspot_fake import FakeHubSpot
from local.salesforce_fake import FakeSalesforce
from tests.unit.hubspot_doubles import (
    FakeHubSpotTransport,
    ManualClock,
    SpecCheckingTransport,
    batch,
    error,
    hubspot,
    rate_limited,
    record,
    standard_error,
)
from tests.unit.test_sync import World, woo_order

ORDERS = 250


@dataclass
class Portal:
    """One CRM backend on its fake: how to break a record by hand and how many read-back calls were made."""

    backend: str
    crm: HubSpotCrm | SalesforceCrm
    mapping: str
    hubspot: FakeHubSpot | None = None
    salesforce: FakeSalesforce | None = None

    def deal(self, external_id: str) -> dict[str, Any]:
        if self.hubspot is not None:
            return next(r.properties for r in self.hubspot.records["deals"].values()
                        if r.properties.get("crmsync_external_id") == external_id)  # fmt: skip
        assert self.salesforce is not None
        [found] = self.salesforce.find("Opportunity", Crmsync_External_Id__c=external_id)
        return found

    def delete_deal(self, external_id: str) -> None:
        if self.hubspot is not None:
            deals = self.hubspot.records["deals"]
            del deals[next(i for i, r in deals.items() if r.properties.get("crmsync_external_id") == external_id)]
        else:
            assert self.salesforce is not None
            del self.salesforce.records["Opportunity"][self.deal(external_id)["Id"]]

    def edit_amount(self, external_id: str) -> None:
        if self.hubspot is not None:
            self.deal(external_id)["amount"] = "1.00"
        else:
            assert self.salesforce is not None
            self.salesforce.records["Opportunity"][self.deal(external_id)["Id"]]["Amount"] = 1.0

    def amount(self, external_id: str) -> str:
        return str(self.deal(external_id)["amount" if self.hubspot is not None else "Amount"])

    def read_calls(self) -> int:
        if self.hubspot is not None:
            return sum(1 for r in self.hubspot.log if r["path"].endswith("/batch/read"))
        assert self.salesforce is not None
        # one Composite call carries up to 25 read-back queries (and is one API call)
        return sum(1 for s in self.salesforce.calls("POST", "composite") if s.path == "composite")


def _hubspot() -> Portal:
    clock = ManualClock()
    fake = FakeHubSpot(clock=clock)
    crm = hubspot(FakeHubSpotTransport(fake), clock)
    setup(crm, required_properties(load_mapping("default")))
    return Portal("hubspot", crm, "default", hubspot=fake)


def _salesforce() -> Portal:
    fake = FakeSalesforce()
    sf = connect(SalesforceCredentials(instance_url="https://acme.my.salesforce.com", access_token=fake.token),
                 session=fake.session())  # fmt: skip
    clock = ManualClock()
    api = SalesforceApi(sf, guard=ApiUsageGuard(clock=clock, sleep=clock.sleep), sleep=clock.sleep)
    return Portal("salesforce", SalesforceCrm(api=api, bulk_poll_seconds=0), "salesforce", salesforce=fake)


@pytest.fixture(params=["hubspot", "salesforce"])
def portal(request) -> Portal:
    return _hubspot() if request.param == "hubspot" else _salesforce()


@pytest.fixture
def synced(portal) -> tuple[World, Portal, reconcile.ReconcileDeps, list[dict[str, int]]]:
    """ORDERS WooCommerce orders (one buyer each) in state and in the portal, written by the real CRM writer."""
    world = World([woo_order(n, total=f"{n}.40") for n in range(1, ORDERS + 1)])
    world.crm = portal.crm
    world.writer = WriterDeps(state=world.state.as_store(), crm=portal.crm, mapping=load_mapping(portal.mapping))
    start_backfill(BackfillRequest(source="woocommerce", objects=["orders"]), world.deps)
    world.work()
    world.convert(write_crm=True)
    published: list[dict[str, int]] = []
    deps = reconcile.ReconcileDeps(
        sync=world.deps, crm=portal.crm, mapping=world.writer.mapping,
        repair_crm=lambda events: write_events(events, world.writer),
        known_keys=lambda prefix: [i["pk"] for i in world.state.items(prefix, "STATE")],
        publish=lambda source, totals: published.append(dict(totals)),
    )  # fmt: skip
    return world, portal, deps, published


def test_a_crm_in_step_with_state_shows_no_drift_in_a_few_batched_reads(synced):
    # Given 250 orders and their 250 buyers written to the CRM
    _world, portal, deps, published = synced
    # When a full reconciliation runs
    report = reconcile.run("woocommerce", deps, run_id="rc_1", full=True)
    # Then nothing drifted: the CRM's values agree with state whatever their spelling (HubSpot "10.40", Salesforce
    # 10.4 and a date for a timestamp)
    orders = report["objects"]["orders"]
    assert (orders["checked"], orders["missing"], orders["stale"], orders["failed"]) == (ORDERS, 0, 0, 0)
    assert report["status"] == "done"
    # And 250 deals + 250 contacts cost few reads: HubSpot 100 records a batch/read (3 + 3), Salesforce one Composite
    # call per object type (up to 25 queries of 200 values each)
    expected = 6 if portal.backend == "hubspot" else 2
    assert portal.read_calls() == expected
    assert orders["crm_reads"] == 2  # one CrmPort.read per object type (each split into requests by the adapter)
    assert published[-1]["checked"] == ORDERS
    print(f"\n{portal.backend}: {ORDERS} orders + {ORDERS} contacts reconciled in {portal.read_calls()} read calls")


def test_a_deal_missing_in_the_crm_and_a_stale_field_are_found_and_repaired(synced):
    # Given drift in the CRM: one deal deleted by hand, another's amount edited by hand
    _world, portal, deps, published = synced
    right = portal.amount("woocommerce:order:5")
    portal.delete_deal("woocommerce:order:3")
    portal.edit_amount("woocommerce:order:5")
    # When a full reconciliation runs
    report = reconcile.run("woocommerce", deps, run_id="rc_1", full=True)
    # Then the report names the missing deal and the stale field, and both were repaired
    orders = report["objects"]["orders"]
    assert (orders["missing"], orders["stale"], orders["repaired"], orders["failed"]) == (1, 1, 2, 0)
    drifts = {(e["key"], e["drift"]) for e in orders["examples"]}
    amount = "amount" if portal.backend == "hubspot" else "Amount"
    assert drifts == {("woocommerce:order:3", "missing"), ("woocommerce:order:5", f"stale: {amount}")}
    assert report["totals"]["missing"] + report["totals"]["stale"] == 2
    assert published == [report["totals"]]
    # And the CRM holds the deal again, with the amount state has
    assert portal.deal("woocommerce:order:3")
    assert portal.amount("woocommerce:order:5") == right
    # And a second run finds the CRM in step
    again = reconcile.run("woocommerce", deps, run_id="rc_2", full=True)["objects"]["orders"]
    assert (again["missing"], again["stale"], again["failed"]) == (0, 0, 0)


def test_a_crm_that_cannot_be_read_fails_the_check_and_keeps_the_cursor(synced):
    # Given a CRM whose read-back is refused
    world, _portal, deps, _ = synced

    def refused(*args: Any, **kwargs: Any) -> dict[str, dict[str, str]]:
        raise CrmRejected("read deals", [])

    deps.crm.read = refused
    # When a reconciliation runs
    report = reconcile.run("woocommerce", deps, run_id="rc_1")
    # Then every record it could not check counts as failed, the run is partial and the cursor did not move
    assert report["status"] == "partial"
    assert report["objects"]["orders"]["failed"] == 2 * ORDERS
    assert world.sync.get_mark("reconcile:woocommerce") is None


# --- the adapters' read-back on their own --------------------------------------------------------------------------
def test_hubspot_read_fits_the_spec_maps_results_back_and_leaves_out_what_is_not_found():
    # Given HubSpot answering a batch/read with one record (its email in another case) and a 207 OBJECT_NOT_FOUND
    def answer(sent):
        assert sent.body["idProperty"] == "email"
        assert sent.body["properties"] == ["email", "firstname"]
        found = record("101", {"email": "ann@example.com", "firstname": "Ann", "hs_object_id": "101"})
        missing = standard_error("Could not get some CONTACT objects, they may be deleted or not exist.",
                                 category="OBJECT_NOT_FOUND", context={"ids": ["bob@example.com"]})  # fmt: skip
        return batch([found], [missing], 207)

    transport = SpecCheckingTransport(answer)
    crm = hubspot(transport)
    # When two contacts are read by email
    read = crm.read("contacts", "email", ["Ann@Example.com", "bob@example.com"], ["firstname"])
    # Then the request fitted the spec (the transport checks it), and only the found one is answered, under the
    # value asked for
    assert [(s.method, s.path) for s in transport.sent] == [("POST", "/crm/v3/objects/contacts/batch/read")]
    assert read == {"Ann@Example.com": {"email": "ann@example.com", "firstname": "Ann", "hs_object_id": "101"}}


def test_hubspot_read_sends_at_most_100_values_a_request_and_waits_out_a_429():
    # Given 150 deals to read, and HubSpot rate-limiting the first request
    def empty(sent):
        assert len(sent.body["inputs"]) <= 100
        return batch([])

    clock = ManualClock()
    transport = SpecCheckingTransport(rate_limited("TEN_SECONDLY_ROLLING", "2"), empty, empty)
    crm = hubspot(transport, clock)
    # When they are read
    read = crm.read("deals", "crmsync_external_id", [f"shopify:order:{n}" for n in range(150)])
    # Then the 429 was waited out and two requests of 100 and 50 values were answered
    assert read == {}
    assert [len(s.body["inputs"]) for s in transport.sent] == [100, 100, 50]
    assert clock.sleeps == [2.0]


def test_hubspot_read_refused_raises_crm_rejected():
    # Given HubSpot refusing the id property (not unique)
    crm = hubspot(SpecCheckingTransport(error(400, "dealname is not a unique identifier property")))
    # Then the read raises, naming the refusal
    with pytest.raises(CrmRejected, match="read deals"):
        crm.read("deals", "dealname", ["x"])


def test_salesforce_read_escapes_values_and_packs_25_queries_in_one_composite_call():
    # Given contacts whose external ids hold a quote, a comma and a parenthesis, among 5,001 asked for
    fake = FakeSalesforce()
    odd = ["crmsync:customer:o'brien", "crmsync:customer:a,b)", "crmsync:customer:back\\slash"]
    for n, ext in enumerate(odd):
        fake.seed("Contact", LastName=f"P{n}", Email=f"p{n}@example.com", Crmsync_External_Id__c=ext)
    crm = _salesforce_on(fake)
    asked = odd + [f"crmsync:customer:{n}" for n in range(4998)]
    # When they are read back
    read = crm.read("contacts", "Crmsync_External_Id__c", asked, ["Email", "LastName"])
    # Then each odd value is found by its exact text, and 26 queries of 200 values went in 2 Composite calls
    assert sorted(read) == sorted(odd)
    assert read["crmsync:customer:o'brien"]["Email"] == "p0@example.com"
    composites = [s for s in fake.calls("POST", "composite") if s.path == "composite"]
    assert [len(s.body["compositeRequest"]) for s in composites] == [25, 1]


def test_salesforce_as_stored_spells_values_as_salesforce_keeps_them():
    # Given what the writer sends for an opportunity, When it is put in Salesforce's own form
    crm = _salesforce_on(FakeSalesforce())
    stored = crm.as_stored("deals", {"Amount": "215.40", "CloseDate": "2026-03-01T23:30:00-05:00", "Name": "#1"})
    # Then numbers are numbers and a timestamp is its UTC date, as a SOQL read returns them
    assert stored == {"Amount": "215.4", "CloseDate": "2026-03-02", "Name": "#1"}


@pytest.mark.parametrize(
    ("sent", "held"),
    [
        ("215.40", "215.4"),
        ("4500", "4500.0"),
        ("2026-01-01T10:00:00Z", "2026-01-01T10:00:00.000Z"),
        ("2026-01-01T10:00:00+00:00", "2026-01-01T11:00:00+01:00"),
        (" Ann ", "Ann"),
    ],
)
def test_values_that_mean_the_same_compare_equal(sent, held):
    assert reconcile.comparable(sent) == reconcile.comparable(held)


def test_values_that_differ_compare_different():
    assert reconcile.comparable("215.40") != reconcile.comparable("215.41")
    assert reconcile.comparable("2026-01-01T10:00:00Z") != reconcile.comparable("2026-01-01T10:00:01Z")
    assert reconcile.mapped_checksum({"a": "1.0"}, ["a"]) == reconcile.mapped_checksum({"a": "1"}, ["a"])


def _salesforce_on(fake: FakeSalesforce) -> SalesforceCrm:
    sf = connect(SalesforceCredentials(instance_url="https://acme.my.salesforce.com", access_token=fake.token),
                 session=fake.session())  # fmt: skip
    clock = ManualClock()
    return SalesforceCrm(api=SalesforceApi(sf, guard=ApiUsageGuard(clock=clock, sleep=clock.sleep), sleep=clock.sleep))


def test_drift_metrics_go_out_as_emf_with_the_alarms_dimensions(capsys, monkeypatch):
    # Given the sync function's environment
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "crmsync")
    monkeypatch.setenv("CRMSYNC_STACK", "crmsync-test")
    # When a run's totals are published
    reconcile.publish_drift("woocommerce", {"checked": 10, "missing": 2, "stale": 1, "deleted": 1, "repaired": 3,
                                            "failed": 0})  # fmt: skip
    # Then ReconcileDrift (missing + stale + deleted) is an EMF line with the dimensions template.yaml's alarm watches
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    emf = {m["Name"]: (line[m["Name"]], line["_aws"]["CloudWatchMetrics"][0]) for line in lines
           for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]}  # fmt: skip
    value, meta = emf["ReconcileDrift"]
    assert value == 4.0 or value == [4.0]
    assert meta["Namespace"] == "crmsync"
    assert sorted(meta["Dimensions"][0]) == ["service", "stack"]
    assert {"ReconcileChecked", "ReconcileRepaired", "ReconcileFailed"} <= set(emf)
