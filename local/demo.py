"""`make demo-reconcile`: reconciliation and backfill on the running local stack, against a local WooCommerce shop.

    make run                                   # in one terminal
    make demo-reconcile [RECORDS=2000]         # in another (python -m local.demo --help)

1. serves a local WooCommerce shop (local/fixture_shop.py: REST v3 list API with its real pagination) on 127.0.0.1
   and points the stack's SourceApiCredentials secret at it (ministack runs the functions as local processes, so
   the deployed sync function reaches 127.0.0.1);
2. sends signed order.created webhooks for five of its orders (local/send_sample.py's signing) and waits for their
   deals in the local CRM;
3. makes drift on purpose: a deal deleted in the CRM, a deal amount edited in the CRM (both straight in the local
   CRM's table, as a person editing HubSpot by hand), an order whose webhook never came (only at the source), an
   order deleted at the source and one paid at the source whose update webhooks never came;
4. POST /sync/reconcile {"source": "woocommerce", "full": true}, polls GET /sync/reconcile/runs/{id}, prints the
   drift report, waits for the repairs and prints the repaired CRM records, then runs a second reconciliation;
5. measures backfill throughput: RECORDS more orders in the shop, POST /sync/backfill, GET /sync/jobs/{id} until
   done, and the time until every order is in state and every deal in the local CRM (webhook path end to end:
   source API -> archive + ingest queue -> convert -> state -> bus -> CRM writer -> local CRM), in records/s; then
   checks exactly RECORDS orders in state and deals in the CRM, no duplicate.

The shop lives as long as the stack: `.local/<stack>/demo.json` remembers its port (the sync function caches the
secret for 5 minutes) and what earlier runs added, so a second run on the same stack finds the same shop, grown by
this run's orders (new ids), and the earlier orders in step. Exit status: 0 done, 1 a step did not complete in time
or a check failed, 2 no local stack.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO

from local import ops
from local.fixture_shop import FixtureShop, gmt, make_order, serve
from local.send_sample import signed_woocommerce

REPO = Path(__file__).resolve().parent.parent
CORE = REPO / "layers" / "core"
LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
EPOCH = datetime(2026, 10, 1, tzinfo=UTC)  # fixture dates: run n's orders are dated on day n after this
RUN_IDS = 100_000  # run n's demo orders are n * RUN_IDS + 1..6, its bulk orders n * RUN_IDS + 1000 on
BULK_OFFSET = 1000
MAX_RECORDS = 50_000  # one order a second within a day's window
POLL_SECONDS = 2.0  # the backfill's progress reads: light (counts only), but they share ministack with the functions


@dataclass(frozen=True)
class Scenario:
    offset: int  # order id = base + offset
    first_name: str
    last_name: str
    total: str
    story: str


SCENARIOS = (
    Scenario(1, "Grace", "Hopper", "42.00", "in step (control)"),
    Scenario(2, "Alan", "Turing", "58.00", "deal deleted in the CRM by hand"),
    Scenario(3, "Katherine", "Johnson", "73.50", "deal amount edited in the CRM by hand"),
    Scenario(4, "Edsger", "Dijkstra", "19.90", "only at the source: its order.created webhook never arrived"),
    Scenario(5, "Barbara", "Liskov", "88.00", "deleted at the source: its order.deleted webhook never arrived"),
    Scenario(6, "Donald", "Knuth", "64.00", "paid at the source (on-hold -> processing): order.updated lost"),
)
EDITED_AMOUNT = "1.00"


def _print(out: TextIO, text: str = "") -> None:
    print(text, file=out, flush=True)


# --- the shop: what every run of this stack put in it ---------------------------------------------------------------
def scenario_orders(run: int, shop_url: str, *, final: bool) -> list[dict[str, Any]]:
    """Run n's six demo orders: as their webhooks told them (final=False) or as the shop holds them afterwards."""
    base = run * RUN_IDS
    day = EPOCH + timedelta(days=run, hours=20)
    orders = []
    for s in SCENARIOS:
        if final and s.offset == 5:
            continue  # deleted at the source
        paid_later = final and s.offset == 6
        orders.append(
            make_order(
                base + s.offset,
                email=f"{s.first_name.lower()}.{s.last_name.lower()}+{run}@example.com",
                first_name=s.first_name,
                last_name=s.last_name,
                total=s.total,
                modified=day + timedelta(minutes=s.offset, hours=1 if paid_later else 0),
                status="on-hold" if s.offset == 6 and not paid_later else "processing",
                shop_url=shop_url,
            )
        )
    return orders


def bulk_window(run: int, records: int) -> tuple[datetime, datetime]:
    """Run n's bulk orders are modified one a second from day n, 00:00: backfill since/until select exactly them."""
    start = EPOCH + timedelta(days=run)
    return start, start + timedelta(seconds=records)


def bulk_orders(run: int, records: int, customers: int, shop_url: str) -> list[dict[str, Any]]:
    start, _ = bulk_window(run, records)
    base = run * RUN_IDS + BULK_OFFSET
    return [
        make_order(
            base + i,
            email=f"buyer{i % customers:05d}+{run}@example.com",
            first_name="Buyer",
            last_name=f"{i % customers:05d}",
            total=f"{10 + i % 90}.{i % 100:02d}",
            modified=start + timedelta(seconds=i),
            shop_url=shop_url,
        )
        for i in range(records)
    ]


def bulk_emails(run: int, records: int, customers: int) -> set[str]:
    return {f"buyer{i % customers:05d}+{run}@example.com" for i in range(records)}


@dataclass
class DemoState:
    """.local/<stack>/demo.json: the shop's port and every earlier run (for one life of the stack)."""

    path: Path
    stack_pid: int
    port: int = 0
    runs: list[dict[str, int]] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path, stack_pid: int) -> DemoState:
        try:
            saved = json.loads(path.read_text())
        except (OSError, ValueError):
            saved = {}
        if saved.get("stack_pid") != stack_pid:  # another life of the stack: a new shop
            return cls(path, stack_pid)
        return cls(path, stack_pid, int(saved.get("port", 0)), list(saved.get("runs", [])))

    def save(self) -> None:
        self.path.write_text(json.dumps({"stack_pid": self.stack_pid, "port": self.port, "runs": self.runs}))

    @property
    def next_run(self) -> int:
        return 1 + max((r["run"] for r in self.runs), default=0)

    def shop_orders(self, shop_url: str) -> list[dict[str, Any]]:
        orders = []
        for run in self.runs:
            if run.get("reconcile"):
                orders.extend(scenario_orders(run["run"], shop_url, final=True))
            if run.get("records"):
                orders.extend(bulk_orders(run["run"], run["records"], run["customers"], shop_url))
        return orders


def pick_port(wanted: int) -> int:
    """The port the shop had (the sync function caches the secret pointing at it), if still free; else a free one."""
    for port in (wanted, 0):
        with socket.socket() as sock:
            try:
                sock.bind((LOOPBACK, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise SystemExit("no free port for the fixture shop")


# --- the local AWS behind the stack ---------------------------------------------------------------------------------
class LocalAws:
    """boto3 clients for the stack's ministack only: loopback endpoint, dummy credentials, no profile."""

    def __init__(self, state: Mapping[str, Any]) -> None:
        endpoint = str(state["ministack_endpoint"])
        if urllib.parse.urlparse(endpoint).hostname != LOOPBACK:
            raise ops.UsageError(f"refusing to touch {endpoint}: the demo only talks to a local stack on {LOOPBACK}")
        import boto3

        self.session = boto3.session.Session(
            aws_access_key_id="test",
            aws_secret_access_key="test",  # noqa: S106 - ministack dummy credentials
            region_name=REGION,
        )
        self.endpoint = endpoint
        self.outputs: dict[str, str] = dict(state["outputs"])
        self.ddb = self.client("dynamodb")

    def client(self, service: str) -> Any:
        return self.session.client(service, endpoint_url=self.endpoint)  # type: ignore[call-overload]

    def point_sync_at(self, shop: FixtureShop, url: str) -> None:
        credentials = {
            "woocommerce_base_url": url,
            "woocommerce_consumer_key": shop.consumer_key,
            "woocommerce_consumer_secret": shop.consumer_secret,
        }
        self.client("secretsmanager").put_secret_value(
            SecretId=self.outputs["SourceApiCredentialsSecretId"], SecretString=json.dumps(credentials)
        )

    def crm_table(self) -> Any:
        if str(CORE) not in sys.path:
            sys.path.insert(0, str(CORE))
        from crmsync.store.crm_local import LocalCrmTable

        return LocalCrmTable(self.outputs["CrmLocalTableName"], client=self.ddb)

    def deals(self) -> dict[str, list[dict[str, Any]]]:
        """External id -> the deal records holding it (more than one would be a duplicate)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for record in self.crm_table().list("deals"):
            found.setdefault(record.properties.get("crmsync_external_id", ""), []).append(record.as_json())
        return found

    def contacts_by_email(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self.crm_table().list("contacts"):
            email = record.properties.get("email", "")
            counts[email] = counts.get(email, 0) + 1
        return counts

    def scan(self, table: str, prefix: str, sk: str, projection: str = "pk") -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "TableName": table,
            "FilterExpression": "begins_with(pk, :p) AND sk = :s",
            "ExpressionAttributeValues": {":p": {"S": prefix}, ":s": {"S": sk}},
            "ProjectionExpression": projection,
        }
        if "#" in projection:
            kwargs["ExpressionAttributeNames"] = {"#key": "key"}
        while True:
            page = self.ddb.scan(**kwargs)
            yield from page.get("Items", [])
            if "LastEvaluatedKey" not in page:
                return
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def state_orders(self, prefix: str = "ORDER#woocommerce:order:") -> dict[str, str]:
        """Stored WooCommerce orders: external id -> customer id."""
        table = self.outputs["StateTableName"]
        return {
            item["pk"]["S"].removeprefix("ORDER#"): item.get("customer_id", {}).get("S", "")
            for item in self.scan(table, prefix, "STATE", "pk, customer_id")
        }

    def _count(self, operation: str, **kwargs: Any) -> int:
        count = 0
        while True:
            page = getattr(self.ddb, operation)(Select="COUNT", **kwargs)
            count += int(page.get("Count", 0))
            if "LastEvaluatedKey" not in page:
                return count
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def count_orders_in_state(self, first: str, last: str) -> int:
        """Stored orders whose external ids sort within [first, last] (ids of one length: a run's bulk orders);
        only the count crosses the wire (this runs every few seconds while the functions work)."""
        return self._count(
            "scan",
            TableName=self.outputs["StateTableName"],
            FilterExpression="pk BETWEEN :lo AND :hi AND sk = :s",
            ExpressionAttributeValues={
                ":lo": {"S": f"ORDER#{first}"},
                ":hi": {"S": f"ORDER#{last}"},
                ":s": {"S": "STATE"},
            },
        )

    def count_deals(self, first: str, last: str) -> int:
        """Deal records in the local CRM whose external ids sort within [first, last]."""
        return self._count(
            "query",
            TableName=self.outputs["CrmLocalTableName"],
            KeyConditionExpression="pk = :pk",
            FilterExpression="#p.#x BETWEEN :lo AND :hi",
            ExpressionAttributeNames={"#p": "properties", "#x": "crmsync_external_id"},
            ExpressionAttributeValues={":pk": {"S": "REC#deals"}, ":lo": {"S": first}, ":hi": {"S": last}},
        )

    def notices(self, key: str) -> list[str]:
        """Detail types of the deletion notices recorded for this entity key."""
        table = self.outputs["StateTableName"]
        items = self.scan(table, "NOTICE#", "NOTICE", "pk, #key, detail_type")
        return [item["detail_type"]["S"] for item in items if item.get("key", {}).get("S") == key]


# --- helpers ---------------------------------------------------------------------------------------------------------
def wait(check: Callable[[], Any], timeout: float, interval: float = 1.0) -> tuple[Any, float]:
    """(the first truthy result of check, seconds it took); (last result, seconds) when the time ran out."""
    started = time.monotonic()
    while True:
        result = check()
        elapsed = time.monotonic() - started
        if result or elapsed > timeout:
            return result, elapsed
        time.sleep(interval)


def post_webhook(base_url: str, body: bytes, headers: Mapping[str, str]) -> tuple[int, Any]:
    status, answer = ops.http_transport(
        "POST", f"{base_url}/webhooks/woocommerce", body, {"Content-Type": "application/json", **headers}
    )
    return status, answer


def external_id(order_id: int) -> str:
    return f"woocommerce:order:{order_id}"


FIELDS = ("checked", "missing", "stale", "deleted", "repaired", "failed")


def format_report(report: Mapping[str, Any]) -> list[str]:
    """The drift report as a table: per object type, then examples (keys only)."""
    mode = "full run" if report.get("full") else f"changes since {report.get('since')}"
    lines = [f"Drift report {report['run_id']} ({report['source']}, {mode}): {report['status']}"]
    if report.get("error"):
        lines.append(f"  error: {report['error']}")
    lines.append("  " + f"{'object':<11}" + "".join(f"{name:>10}" for name in FIELDS))
    objects: Mapping[str, Any] = report.get("objects") or {}
    for name, drift in objects.items():
        lines.append("  " + f"{name:<11}" + "".join(f"{drift.get(f, 0):>10}" for f in FIELDS))
    examples = [e for drift in objects.values() for e in drift.get("examples", [])]
    if examples:
        lines.append("  examples:")
        lines.extend(f"    {e['key']:<28} {e['where']:<14} {e['drift']}" for e in examples)
    return lines


def deal_line(record: Mapping[str, Any] | None) -> str:
    if record is None:
        return "no deal"
    p = record["properties"]
    return f"deal {record['id']:>4}: {p.get('dealname', '?')!r}, {p.get('amount')} {p.get('deal_currency_code', '')}, {p.get('dealstage')}"  # noqa: E501


# --- the demo ---------------------------------------------------------------------------------------------------------
class Demo:
    def __init__(self, api: ops.Client, aws: LocalAws, shop: FixtureShop, shop_url: str, secrets: Mapping[str, str],
                 run: int, out: TextIO, timeout: float) -> None:  # fmt: skip
        self.api, self.aws, self.shop, self.shop_url = api, aws, shop, shop_url
        self.secret = str(secrets.get("WOOCOMMERCE_WEBHOOK_SECRET", "local-woocommerce-secret")).split(",")[0]
        self.run, self.out, self.timeout = run, out, timeout
        self.result: dict[str, Any] = {"run": run, "shop": shop_url}

    def say(self, text: str = "") -> None:
        _print(self.out, text)

    def reconcile_now(self) -> dict[str, Any]:
        answer = self.api.call("POST", "/sync/reconcile", body={"source": "woocommerce", "full": True})
        run_id = answer["run_id"]

        def finished() -> dict[str, Any] | None:
            report: dict[str, Any] = self.api.call("GET", f"/sync/reconcile/runs/{run_id}")
            return report if report.get("status") not in ("queued", "running") else None

        report: dict[str, Any] | None
        report, seconds = wait(finished, self.timeout)
        if report is None:
            raise TimeoutError(f"reconciliation run {run_id} did not finish in {self.timeout:.0f} s")
        report["_seconds"] = round(seconds, 1)
        return report

    # 2-5: webhooks, drift, reconciliation, repairs
    def reconciliation(self) -> bool:
        base = self.run * RUN_IDS
        ids = {s.offset: base + s.offset for s in SCENARIOS}
        sent = scenario_orders(self.run, self.shop_url, final=False)
        self.shop.put_orders(sent)
        self.say(f"2. The shop has {len(sent)} new orders (#{ids[1]}-#{ids[6]}); signed order.created webhooks for 5:")
        for order in sent:
            if order["id"] == ids[4]:
                continue  # the webhook that never arrived
            body, headers = signed_woocommerce(order, secret=self.secret, shop_url=f"{self.shop_url}/")
            status, answer = post_webhook(self.api.base_url, body, headers)
            if status != 200:
                self.say(f"   #{order['id']}: webhook answered {status} {answer}")
                return False
            self.say(f"   POST /webhooks/woocommerce order.created #{order['id']} -> {status} {answer['status']}")
        expected = [external_id(ids[s.offset]) for s in SCENARIOS if s.offset != 4]

        def arrived() -> dict[str, list[dict[str, Any]]] | None:
            now = self.aws.deals()
            return now if all(e in now for e in expected) else None

        deals, seconds = wait(arrived, self.timeout)
        if not deals:
            self.say(f"   the CRM did not get the 5 deals within {self.timeout:.0f} s")
            return False
        self.say(f"   the local CRM has their 5 deals after {seconds:.1f} s")
        before = {e: deals[e][0] for e in expected}

        self.say("3. Drift, made on purpose:")
        crm = self.aws.crm_table()
        deleted = before[external_id(ids[2])]
        self._delete_deal(crm, deleted["id"])
        edited = before[external_id(ids[3])]
        crm.update_properties("deals", edited["id"], {"amount": EDITED_AMOUNT})
        self.shop.delete_order(ids[5])
        self.shop.put_orders([o for o in scenario_orders(self.run, self.shop_url, final=True) if o["id"] == ids[6]])
        for s in SCENARIOS[1:]:
            detail = {
                2: f" (deal {deleted['id']})",
                3: f": {edited['properties']['amount']} -> {EDITED_AMOUNT}",
            }.get(s.offset, "")
            self.say(f"   #{ids[s.offset]}  {s.story}{detail}")

        self.say('4. POST /sync/reconcile {"source": "woocommerce", "full": true}, then GET /sync/reconcile/runs/{id}:')
        report = self.reconcile_now()
        self.say(f"   finished after {report['_seconds']} s")
        self.say()
        for line in format_report(report):
            self.say("   " + line)
        self.say()
        self.result["report"] = report
        if report.get("status") != "done":
            if "unreachable" in str(report.get("error", "")):
                self.say(
                    "   The sync function could not reach the shop. It caches the SourceApiCredentials secret for 5"
                )
                self.say("   minutes: if the shop just moved to another port, run the demo again in a few minutes.")
            return False

        self.say("5. Repairs (through the normal paths: ingest -> convert -> CRM writer; CRM queue -> CRM writer):")

        def repaired() -> dict[str, list[dict[str, Any]]] | None:
            now = self.aws.deals()
            ok = (
                external_id(ids[2]) in now
                and now.get(external_id(ids[3]), [{}])[0].get("properties", {}).get("amount")
                == edited["properties"]["amount"]
                and external_id(ids[4]) in now
                and now.get(external_id(ids[6]), [{}])[0].get("properties", {}).get("dealstage") == "closedwon"
                and bool(self.aws.notices(external_id(ids[5])))
            )
            return now if ok else None

        after, seconds = wait(repaired, self.timeout)
        final = after or self.aws.deals()
        self.say(f"   {'all repaired' if after else 'NOT all repaired'} after {seconds:.1f} s; the CRM's deals now:")
        crm_lines = {}
        for s in SCENARIOS:
            key = external_id(ids[s.offset])
            records = final.get(key, [])
            line = deal_line(records[0] if records else None)
            if s.offset == 5:
                line += f"; deletion recorded in state: {', '.join(self.aws.notices(key)) or 'not yet'}"
            if len(records) > 1:
                line += f" (DUPLICATED: {len(records)} records)"
            crm_lines[key] = line
            self.say(f"   #{ids[s.offset]}  {line}")
        self.result["crm"] = crm_lines
        self.say(f"   (curl -sS -H 'x-api-key: ...' {self.api.base_url}/local-crm/deals shows them all)")

        again = self.reconcile_now()
        totals = again.get("totals") or {}
        figures = ", ".join(f"{k} {totals.get(k, 0)}" for k in FIELDS)
        self.say(f"   a second full run {again['run_id']}: {figures}")
        if not totals.get("deleted"):
            self.say(f"   (#{ids[5]}'s deletion, reported and sent once by the first run, is recorded: no drift now)")
        self.result["second_report"] = again
        return bool(after) and report.get("status") == "done"

    @staticmethod
    def _delete_deal(crm: Any, record_id: str) -> None:
        """What deleting a deal in the CRM's UI does: the record, its unique keys and its associations go."""
        record = crm.get("deals", record_id)
        if record is None:
            return
        for to_type, linked in record.associations.items():
            for to_id in linked:
                crm.remove_association(to_type, to_id, "deals", record_id)
        for name, value in record.properties.items():
            crm.delete_key("deals", name, value, record_id)
        crm.delete("deals", record_id)

    # 6: backfill throughput
    def throughput(self, records: int, customers: int) -> bool:
        since, until = bulk_window(self.run, records)
        orders = bulk_orders(self.run, records, customers, self.shop_url)
        self.shop.put_orders(orders)
        wanted = {external_id(o["id"]) for o in orders}
        emails = bulk_emails(self.run, records, customers)
        # modified_after is exclusive: start a second before the first order
        window = {"since": gmt(since - timedelta(seconds=1)) + "Z", "until": gmt(until) + "Z"}
        self.say(
            f"6. Backfill throughput: {records:,} more orders ({len(emails):,} buyers) in the shop, modified in "
            f"[{window['since']}, {window['until']})"
        )
        body = {"source": "woocommerce", "objects": ["orders"], **window}
        requests_before = self.shop.requests
        started = time.monotonic()
        job_id = self.api.call("POST", "/sync/backfill", body=body)["job_id"]
        self.say(f"   POST /sync/backfill {json.dumps(body)} -> {job_id}")
        first, last = external_id(orders[0]["id"]), external_id(orders[-1]["id"])  # one id length: they sort
        marks: dict[str, float] = {}
        view: dict[str, Any] = {}
        in_state = in_crm = 0
        last_line = next_state = 0.0
        progress: tuple[Any, ...] = ()
        moved = started
        while True:  # until every deal is in the CRM, or nothing moved for self.timeout seconds
            now = time.monotonic() - started
            if "job" not in marks:
                view = self.api.call("GET", f"/sync/jobs/{job_id}")
                if view.get("status") == "done":
                    marks["job"] = now
                elif view.get("status") not in ("running", None):
                    self.say(f"   job {job_id} ended {view.get('status')}: {view}")
                    return False
            if "state" not in marks and now >= next_state:  # a scan: every 5 s is enough
                next_state = now + 5
                in_state = self.aws.count_orders_in_state(first, last)
                if in_state >= records:
                    marks["state"] = time.monotonic() - started
            in_crm = self.aws.count_deals(first, last)
            if in_crm >= records:
                marks["crm"] = time.monotonic() - started
                break
            if now - last_line >= 15:
                last_line = now
                self.say(
                    f"   {now:6.1f} s  job {view.get('status')} {ops.progress_bar(view.get('percent'), 20)}"
                    f"  state {in_state:>6,}  CRM {in_crm:>6,}"
                )
            current = ((view.get("counts") or {}).get("records"), in_state, in_crm)
            if current != progress:
                progress, moved = current, time.monotonic()
            elif time.monotonic() - moved > self.timeout:
                break
            time.sleep(POLL_SECONDS)
        if "crm" not in marks:
            self.say(
                f"   nothing moved for {self.timeout:.0f} s: {in_state:,} orders in state, {in_crm:,} deals in the CRM"
            )
            return False
        marks.setdefault("state", marks["crm"])
        rate = records / marks["crm"]
        view = self.api.call("GET", f"/sync/jobs/{job_id}")
        calls = self.shop.requests - requests_before
        job_seconds = marks.get("job", marks["crm"])
        self.say(f"   source pages read and enqueued (job done)   {job_seconds:7.1f} s   "
                 f"(job rate {view.get('rate')} records/s, {calls} API requests)")  # fmt: skip
        self.say(f"   all {records:,} orders in state               {marks['state']:7.1f} s")
        self.say(f"   all {records:,} deals in the local CRM        {marks['crm']:7.1f} s")
        self.say(
            f"   => {rate:.1f} records/s end to end (source API -> state -> local CRM; polled every {POLL_SECONDS:g} s)"
        )
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        self.say(f"   (this machine: {os.cpu_count()} cores, load average {load:.1f}; every function runs on them)")

        # Correctness: exactly `records` orders in state and deals in the CRM, no duplicate deal, contact or customer
        time.sleep(3)  # anything late (a duplicate, a retried write) would show now
        deals = self.aws.deals()
        deal_records = sum(len(deals.get(e, [])) for e in wanted)
        stored = self.aws.state_orders(f"ORDER#woocommerce:order:{self.run}")
        state_orders = len(wanted & set(stored))
        customer_ids = {stored[e] for e in wanted if e in stored}
        contacts = self.aws.contacts_by_email()
        contact_records = sum(contacts.get(e, 0) for e in emails)
        checks = {
            "orders in state": (state_orders, records),
            "deals in the CRM (distinct external ids)": (len(wanted & set(deals)), records),
            "deal records (a duplicate would add one)": (deal_records, records),
            "customers in state": (len(customer_ids), len(emails)),
            "contacts in the CRM": (contact_records, len(emails)),
        }
        ok = all(got == want for got, want in checks.values())
        self.say("   checks:")
        for name, (got, want) in checks.items():
            self.say(f"     {name:<42} {got:>7,} / {want:,}{'' if got == want else '   <- WRONG'}")
        self.say(f"   {'OK: no gap, no duplicate' if ok else 'FAILED'}")
        self.result["backfill"] = {
            "job_id": job_id,
            "records": records,
            "buyers": len(emails),
            "job_seconds": round(marks.get("job", marks["crm"]), 1),
            "state_seconds": round(marks["state"], 1),
            "crm_seconds": round(marks["crm"], 1),
            "records_per_second": round(rate, 1),
            "job_rate": view.get("rate"),
            "api_requests": self.shop.requests - requests_before,
            "checks": {name: {"got": got, "want": want} for name, (got, want) in checks.items()},
            "cores": os.cpu_count(),
            "load_average": round(load, 2),
            "ok": ok,
        }
        return ok


@contextmanager
def shop_for(state: DemoState, out: TextIO) -> Iterator[tuple[FixtureShop, str]]:
    shop = FixtureShop()
    port = pick_port(state.port)
    if state.port and port != state.port:
        _print(out, f"   (port {state.port} is taken; the sync function may use its cached secret for up to 5 minutes)")
    with serve(shop, port) as url:
        shop.put_orders(state.shop_orders(url))
        state.port = port
        yield shop, url


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    summary = __doc__.splitlines()[0] if __doc__ else ""
    parser = argparse.ArgumentParser(prog="python -m local.demo", description=summary)
    parser.add_argument("--stack", default=os.environ.get("CRMSYNC_STACK", ops.DEFAULT_STACK))
    parser.add_argument("--records", type=int, default=int(os.environ.get("RECORDS", "2000")),
                        help="orders for the backfill throughput measurement (0: skip it)")  # fmt: skip
    parser.add_argument("--customers", type=int, default=0, help="distinct buyers of those orders (default: half)")
    parser.add_argument("--no-reconcile", action="store_true", help="only the backfill measurement")
    parser.add_argument("--timeout", type=float, default=float(os.environ.get("DEMO_TIMEOUT", "0")),
                        help="seconds a step may take (default 120); the backfill: without progress (180)")  # fmt: skip
    parser.add_argument("--json", help="also write the results (reports, figures, checks) to this file")
    args = parser.parse_args(argv)
    if not 0 <= args.records <= MAX_RECORDS:
        parser.error(f"--records must be 0..{MAX_RECORDS}")
    return args


def main(argv: Sequence[str] | None = None, out: TextIO | None = None) -> int:
    args = parse_args(argv)
    out = out or sys.stdout
    stack = ops.stack_state(args.stack)
    if stack is None:
        print(f"demo: no local stack {args.stack!r} is running: start it with `make run` first", file=sys.stderr)
        return 2
    try:
        aws = LocalAws(stack)
    except ops.UsageError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    api = ops.Client(str(stack["url"]).rstrip("/"), str(stack["secrets"]["CRMSYNC_API_KEY"]))
    state = DemoState.load(REPO / ".local" / args.stack / "demo.json", int(stack.get("pid", 0)))
    run = state.next_run
    records, customers = args.records, args.customers or max(1, args.records // 2)
    _print(out, f"crmsync demo: reconciliation and backfill on stack {args.stack} ({api.base_url}), run {run}")
    _print(out)
    ok = True
    result: dict[str, Any] = {"run": run}
    with shop_for(state, out) as (shop, url):
        aws.point_sync_at(shop, url)
        _print(out, f"1. Local WooCommerce shop on {url} ({len(shop.orders):,} orders from earlier runs)")
        _print(out, "   GET /wp-json/wc/v3/orders?modified_after=&per_page=100&page=N, paged by X-WP-TotalPages")
        _print(out, "   the stack's SourceApiCredentials secret now points the sync function at it")
        demo = Demo(api, aws, shop, url, stack["secrets"], run, out, args.timeout or 120)
        result = demo.result
        entry: dict[str, int] = {"run": run, "reconcile": 0, "records": 0, "customers": customers}
        try:
            if not args.no_reconcile:
                entry["reconcile"] = 1
                ok = demo.reconciliation() and ok
            if records:
                entry["records"] = records
                demo.timeout = args.timeout or 180
                _print(out)
                ok = demo.throughput(records, customers) and ok
        except (ops.OpsError, TimeoutError) as exc:
            _print(out, f"demo: {exc}")
            ok = False
        finally:
            state.runs.append(entry)
            state.save()
    if args.json:
        Path(args.json).write_text(json.dumps({**result, "ok": ok}, indent=2, default=str))
    _print(out)
    _print(out, "demo done" if ok else "demo: something did not complete; see above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
