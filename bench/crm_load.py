"""CRM load bench (issue 5): 10,000 domain events touching 3,000 CRM records, through the CRM queue's batching, the
real CRM writer Lambda handler and the real HubSpot and Salesforce adapters, on a simulated clock.

What runs, all in-process (no socket, no real sleep):
- Workload: 1,000 customers with 2,000 Shopify orders (1 to 7 each). Every order is created and paid, half of them are
  fulfilled later: 5,000 `orders/*` webhooks, each converted by the real Shopify converter. As crmsync.convert does,
  each webhook writes the customer and the order to the state store (tests.fakes.MemoryState) and publishes
  `customer.upserted` and `order.*` to the bus, which routes them to the CRM queue by template.yaml's CrmEventsRule:
  10,000 domain events, several per record, the newest last. They arrive in a burst of about 100 s (a flash sale),
  which fills the queue's batches.
- CRM queue: tests.fakes.SqsSimulator with the CrmQueue's visibility timeout and redrive count. Lambda's event source
  is emulated as AWS documents it: LAMBDA_POLLERS pollers, up to SCALE_UP_PER_MINUTE more while messages wait (an
  extra poller stops when it finds none), each gathering a batch until it has BatchSize records or the first record
  has waited MaximumBatchingWindowInSeconds (both read from template.yaml: that window is the stated maximum flush
  delay), then invoking the real `crm_writer.app.lambda_handler` synchronously and deleting what it did not report
  failed. Each invocation gets a fresh adapter (as each Lambda invocation builds one) with the Lambda's timeout.
- HubSpot: the real HubSpotCrm over an in-process transport into local.hubspot_fake.FakeHubSpot (HubSpot's
  100-per-rolling-10-s limit with its 429 body; the first SPEC_SAMPLE requests of each endpoint checked against
  HubSpot's OpenAPI specs; unique-value lookups indexed), sharing the real crmsync.store.rate_budget.RateBudget over
  an in-memory DynamoDB table, as every concurrent Lambda shares the state table's.
- Salesforce: the real SalesforceCrm / SalesforceApi (simple-salesforce) over a requests adapter into
  local.salesforce_fake.FakeSalesforce. Salesforce has no per-10-s limit (it has a daily allowance and answers no
  429), so requests beyond 100 in any 10 s are counted, not refused.
- Time: one virtual clock. Every CRM request takes CRM_LATENCY_S, every state-store and budget-table call
  STATE_LATENCY_S; the adapters' waits (budget, 429, backoff) sleep on that clock. The tasks (producer, scaler,
  pollers) are threads of which exactly one runs at a time, in simulated-time order, so a run is deterministic.

Flusher mode (`run_load(..., flusher=flusher_source(D))`): the same load with CRM_FLUSH_DELAY_SECONDS=D, so the writer
handler marks the touched records dirty (tests.fakes.dirty.MemoryDirty, each call STATE_LATENCY_S) and the real
`flusher.app.lambda_handler` runs on the FlusherFunction's schedule (template.yaml), each run its own task, with the
same adapters, rate budget and state; an event's flush delay ends when its record is cleared after its mark.

The minimum is the issue's: Σ over object types ⌈distinct records / 100⌉ (HubSpot; 200 for Salesforce) plus
⌈distinct deal-contact pairs / 100 (200)⌉, for the whole load. Context: what an ideal flusher that writes everything
pending every D seconds would need (a time-aware floor), for D = the batching window and longer. bench/README.md
("CRM load") explains the figures and what would reach the goal; `python bench/crm_load.py --what-if` measures
other queue settings.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import heapq
import itertools
import json
import logging
import math
import os
import sys
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from random import Random
from typing import TYPE_CHECKING, Any, cast
from unittest import mock
from urllib.parse import urlsplit

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "functions", ROOT / "layers" / "core"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))
os.environ.setdefault("POWERTOOLS_SERVICE_NAME", "crmsync")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "crmsync")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")

from botocore.exceptions import ClientError  # noqa: E402

from crm_writer import app as writer_app  # noqa: E402
from crmsync.convert import epoch_ms  # noqa: E402
from crmsync.crm.hubspot import HubSpotCrm, Unlimited  # noqa: E402
from crmsync.crm.hubspot_setup import required_properties, setup  # noqa: E402
from crmsync.crm.salesforce import (  # noqa: E402
    ApiUsageGuard,
    SalesforceApi,
    SalesforceCredentials,
    SalesforceCrm,
    connect,
)
from crmsync.crm.transport import HttpResponse  # noqa: E402
from crmsync.failures import DeadLetterer, RetryPolicy  # noqa: E402
from crmsync.flusher import FlusherDeps, FlushPolicy  # noqa: E402
from crmsync.mapping import Mapping as CrmMapping  # noqa: E402
from crmsync.mapping import load_mapping  # noqa: E402
from crmsync.messages import DomainEvent  # noqa: E402
from crmsync.observability import logger, metrics  # noqa: E402
from crmsync.sources.shopify import ShopifyWebhooks  # noqa: E402
from crmsync.store.rate_budget import RateBudget  # noqa: E402
from crmsync.store.state import Versioned  # noqa: E402
from crmsync.views import customer_view, order_view  # noqa: E402
from crmsync.writer import WriterDeps  # noqa: E402
from flusher import app as flusher_app  # noqa: E402
from local import hubspot_spec  # noqa: E402
from local.hubspot_fake import FakeHubSpot, Record  # noqa: E402
from local.salesforce_fake import FakeSalesforce, _InProcessAdapter  # noqa: E402
from tests.fakes import FakeClock, MemoryBus, MemoryState, SqsSimulator  # noqa: E402
from tests.fakes.dirty import MemoryDirty  # noqa: E402
from tests.fakes.template import TEMPLATE, queue_settings  # noqa: E402

if TYPE_CHECKING:
    from bench.run import Figure
    from crmsync.crm.port import CrmPort
    from crmsync.settings import Settings
    from crmsync.store.dirty import DirtyStore
    from crmsync.store.queue import QueueMessage
    from crmsync.store.state import StateStore

SAMPLE = ROOT / "events" / "payloads" / "shopify-orders-create.json"
SEED = 20261120
CUSTOMERS = 1_000
ORDERS = 2_000  # each customer has 1 to 7 (2 on average); 3,000 CRM records in all
FULFILLED_SHARE = 0.5  # orders that also get orders/fulfilled: 2,000 x 2 + 1,000 = 5,000 webhooks, 10,000 events
CREATE_SPREAD_S = 60.0  # orders are created over this long; paid 2-20 s later, fulfilled 5-25 s after that
# Lambda's SQS event source (docs: services-sqs-scaling): five concurrent batches at first; while messages are still
# available, up to 300 more a minute, up to 1,000 or the event source's ScalingConfig.MaximumConcurrency.
LAMBDA_POLLERS = 5
SCALE_UP_PER_MINUTE = 300
MAX_POLLERS = 1_000
SCALE_TICK_S = 1.0
POLL_S = 0.1  # a poller with nothing to do looks again this much later (long polling answers about that fast)
PRODUCER_TICK_S = 0.05  # events due within this long are published together (fewer thread handovers)
SPEC_SAMPLE = 25  # requests of each HubSpot endpoint checked against the OpenAPI specs (~5 ms each)
CRM_LATENCY_S = 0.150  # per CRM request
STATE_LATENCY_S = 0.004  # per DynamoDB call (state store, rate budget table)
HUBSPOT_LIMIT = 100  # inputs per batch request, and requests per rolling 10 s (the portal's tier)
HUBSPOT_WINDOW_S = 10.0
SALESFORCE_LIMIT = 200  # records per sObject Collections request
SHARE_429_GOAL = 0.01
CALLS_GOAL = 1.1
IDEAL_WINDOWS_S = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0)
# The flusher mode (CRM_FLUSH_DELAY_SECONDS): the delays `make bench` runs, the smallest one that met both goals for
# HubSpot first (bench/README.md, "CRM load": `python bench/crm_load.py --flusher-delays 30,60,90,120` finds it).
FLUSH_DELAYS_S = (45.0, 120.0)
# ... and, next to them, a FlushPolicy alternative that reached 1.0x on both CRMs at every phase (--sweep).
FLUSH_ALTERNATIVES: tuple[tuple[float, dict[str, Any]], ...] = ((120.0, {"all_when_due": True}),)
# When the flusher's schedule first fires after the burst starts (EventBridge picks the phase of a rate schedule):
# mid-tick for `make bench`; `--sweep` runs every phase of FLUSH_PHASES_S.
FLUSH_FIRST_S = 30.0
FLUSH_PHASES_S = (15.0, 30.0, 45.0, 60.0)
START = 1_795_000_000.0  # simulated epoch seconds
TOKEN = "bench-token"  # noqa: S105 - the fake portal's, not a secret
SF_URL = "https://bench.my.salesforce.com"


# ---- template.yaml ---------------------------------------------------------------------------------------------


class _CfnLoader(yaml.SafeLoader):
    """template.yaml with CloudFormation's short-form tags (!Ref, !GetAtt, ...) read as None."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: None)


@dataclass(frozen=True)
class QueueSource:
    """How Lambda feeds the CRM writer from the CRM queue (template.yaml)."""

    batch_size: int
    window_s: float  # MaximumBatchingWindowInSeconds: the stated maximum flush delay
    timeout_s: float  # the function's timeout
    visibility_timeout_s: float
    max_receive_count: int
    backoff_s: int  # RetryBackoffSeconds' default
    max_concurrency: int  # ScalingConfig.MaximumConcurrency, else Lambda's own limit for an SQS event source


def crm_queue_source() -> QueueSource:
    document = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    function = document["Resources"]["CrmWriterFunction"]["Properties"]
    source = function["Events"]["CrmQueue"]["Properties"]
    queue = queue_settings("CrmQueue")
    return QueueSource(
        batch_size=int(source["BatchSize"]),
        window_s=float(source.get("MaximumBatchingWindowInSeconds", 0)),
        timeout_s=float(function.get("Timeout") or document["Globals"]["Function"]["Timeout"]),
        visibility_timeout_s=queue.visibility_timeout,
        max_receive_count=queue.max_receive_count or 5,
        backoff_s=int(document["Parameters"]["RetryBackoffSeconds"]["Default"]),
        max_concurrency=int((source.get("ScalingConfig") or {}).get("MaximumConcurrency") or MAX_POLLERS),
    )


@dataclass(frozen=True)
class FlusherSource:
    """The flusher mode: the CRM writer only marks the touched records dirty, and the FlusherFunction (template.yaml:
    its schedule and timeout) writes those dirty for `delay_s` (CRM_FLUSH_DELAY_SECONDS)."""

    delay_s: float
    tick_s: float  # the schedule's rate
    timeout_s: float
    first_s: float  # the schedule's first run, in seconds after the burst starts (its phase: 0 < first_s <= tick_s)
    policy: tuple[tuple[str, Any], ...] = ()  # FlushPolicy fields other than the defaults (--what-if)

    @property
    def label(self) -> str:
        return f"flusher_{self.delay_s:g}s" + "".join(f"_{k}" for k, v in self.policy if v is True)


_RATE_UNITS = {"minute": 60.0, "minutes": 60.0, "hour": 3600.0, "hours": 3600.0, "day": 86400.0, "days": 86400.0}


def flusher_source(delay_s: float, first_s: float | None = None, **policy: Any) -> FlusherSource:
    document = yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # noqa: S506 - a SafeLoader subclass
    function = document["Resources"]["FlusherFunction"]["Properties"]
    rate = str(function["Events"]["FlushSchedule"]["Properties"]["Schedule"])  # "rate(1 minute)"
    value, unit = rate.removeprefix("rate(").removesuffix(")").split()
    tick_s = float(value) * _RATE_UNITS[unit]
    return FlusherSource(
        delay_s=delay_s,
        tick_s=tick_s,
        timeout_s=float(function.get("Timeout") or document["Globals"]["Function"]["Timeout"]),
        first_s=FLUSH_FIRST_S if first_s is None else first_s,
        policy=tuple(sorted(policy.items())),
    )


# ---- workload ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Webhook:
    """One converted orders/* webhook: what convert writes to state and publishes."""

    at: float  # seconds after the burst starts
    receipt_id: str
    customer_id: str
    customer_sk: str
    customer_version: Versioned
    customer: dict[str, Any]
    order_key: str
    order_version: Versioned
    order: dict[str, Any]
    order_event: str  # detail type
    source_version: datetime
    source_id: str | None


@dataclass(frozen=True)
class Workload:
    webhooks: list[Webhook]  # by arrival time
    customers: int
    orders: int
    pairs: int  # distinct deal -> contact associations
    events: int  # domain events it publishes: two per webhook


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_workload(seed: int = SEED) -> Workload:
    """5,000 orders/* webhooks for 2,000 orders of 1,000 customers, converted by the real Shopify converter."""
    rng = Random(seed)
    template = json.loads(SAMPLE.read_text())
    owner = list(range(CUSTOMERS)) + [rng.randrange(CUSTOMERS) for _ in range(ORDERS - CUSTOMERS)]
    rng.shuffle(owner)
    first = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim")
    last = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson", "Perlman", "Lee")
    plan: list[tuple[int, int, str, str | None]] = []  # (ms after start, order, topic, fulfillment status)
    fulfilled = set(rng.sample(range(ORDERS), round(ORDERS * FULFILLED_SHARE)))
    for order in range(ORDERS):
        created = rng.uniform(0, CREATE_SPREAD_S)
        paid = created + rng.uniform(2, 20)
        plan += [
            (round(created * 1000), order, "orders/create", None),
            (round(paid * 1000), order, "orders/paid", None),
        ]
        if order in fulfilled:
            plan.append((round((paid + rng.uniform(5, 25)) * 1000), order, "orders/fulfilled", "fulfilled"))
    plan.sort()
    # A customer's versions are the order webhook's updated_at: no two of one customer's webhooks share a millisecond,
    # else convert would keep the first and publish no customer event for the second.
    taken: set[tuple[int, int]] = set()
    timed: list[tuple[int, int, str, str | None]] = []
    for ms, order, topic, fulfillment in plan:
        while (owner[order], ms) in taken:
            ms += 1
        taken.add((owner[order], ms))
        timed.append((ms, order, topic, fulfillment))
    timed.sort()
    converter = ShopifyWebhooks()
    webhooks: list[Webhook] = []
    for n, (ms, order, topic, fulfillment) in enumerate(timed):
        customer = owner[order]
        email = f"buyer{customer:04d}@example.com"
        stamp = _iso(START + ms / 1000)
        body = dict(template)  # only top-level and customer fields change: a shallow copy of both is enough
        body.update(
            id=7_000_000_000 + order,
            name=f"#{10_000 + order}",
            order_number=10_000 + order,
            email=email,
            contact_email=email,
            updated_at=stamp,
            financial_status="pending" if topic == "orders/create" else "paid",
            fulfillment_status=fulfillment,
        )
        body["customer"] = dict(template["customer"])
        body["customer"].update(
            id=6_000_000_000 + customer,
            email=email,
            first_name=first[customer % len(first)],
            last_name=last[customer // len(first) % len(last)],
            updated_at=stamp,
        )
        receipt_id = f"rcpt-{n:05d}"
        converted = converter.convert(topic, json.dumps(body).encode(), receipt_id=receipt_id)
        assert converted.customer is not None
        detail_type, entity = converted.entities[0]
        customer_id = f"cus_{customer:020x}"
        source_key = converted.customer.source_id or converted.customer.email or "-"
        webhooks.append(
            Webhook(
                at=ms / 1000,
                receipt_id=receipt_id,
                customer_id=customer_id,
                customer_sk=f"SRC#{converted.customer.source}#{source_key}",
                customer_version=Versioned(epoch_ms(converted.customer.source_version), 0, receipt_id),
                customer=converted.customer.model_dump(mode="json"),
                order_key=entity.external_id,
                order_version=Versioned(epoch_ms(entity.source_version), entity.rank, receipt_id),
                order=entity.model_dump(mode="json"),
                order_event=detail_type.value,
                source_version=entity.source_version,
                source_id=entity.source_id,
            )
        )
    return Workload(
        webhooks=webhooks,
        customers=len({w.customer_id for w in webhooks}),
        orders=len({w.order_key for w in webhooks}),
        pairs=len({(w.order_key, w.customer_id) for w in webhooks}),
        events=2 * len(webhooks),
    )


def minimum_calls(workload: Workload, per_call: int) -> int:
    """The issue's minimum: Σ over object types ⌈records / per_call⌉ + ⌈deal-contact pairs / per_call⌉."""
    return sum(math.ceil(n / per_call) for n in (workload.customers, workload.orders, workload.pairs))


def ideal_calls(workload: Workload, window_s: float, per_call: int) -> int:
    """What a flusher needs that writes every record touched in each `window_s` slot once, in full batches, and
    associates each deal with its contact once (each record's newest version is then at most `window_s` late)."""
    slots: dict[int, tuple[set[str], set[str], set[tuple[str, str]]]] = {}
    linked: set[tuple[str, str]] = set()
    for w in workload.webhooks:
        contacts, deals, pairs = slots.setdefault(int(w.at // window_s), (set(), set(), set()))
        contacts.add(w.customer_id)
        deals.add(w.order_key)
        if (w.order_key, w.customer_id) not in linked:
            linked.add((w.order_key, w.customer_id))
            pairs.add((w.order_key, w.customer_id))
    return sum(math.ceil(len(s) / per_call) for slot in slots.values() for s in slot if s)


# ---- virtual time --------------------------------------------------------------------------------------------------


@dataclass(eq=False)
class _Task:
    name: str
    resume: threading.Semaphore = field(default_factory=lambda: threading.Semaphore(0))
    owed: float = 0.0  # time spent (`spend`) but not yet slept


class SimLoop:
    """Tasks (threads) on one simulated clock: exactly one runs at a time; `sleep` hands over to the task due next.
    `spend` is a sleep that is taken at the task's next `sleep` (thread handovers are the simulation's main cost; the
    state store's tens of thousands of 4 ms calls need no interleaving of their own): `now` includes it."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self._due: list[tuple[float, int, _Task]] = []
        self._seq = itertools.count()
        self._yielded = threading.Semaphore(0)
        self._local = threading.local()
        self.errors: list[BaseException] = []

    def now(self) -> float:
        task = getattr(self._local, "task", None)
        return self.clock.now + (task.owed if task else 0.0)

    def spend(self, seconds: float) -> None:
        task = getattr(self._local, "task", None)
        if task is None:
            raise RuntimeError("SimLoop.spend outside a simulated task")
        task.owed += max(0.0, seconds)

    def spawn(self, name: str, run: Callable[[], None]) -> None:
        task = _Task(name)

        def body() -> None:
            task.resume.acquire()
            self._local.task = task
            try:
                run()
            except BaseException as exc:  # reported by run(); the loop stops
                self.errors.append(exc)
            finally:
                self._yielded.release()

        threading.Thread(target=body, name=f"sim-{name}", daemon=True).start()
        heapq.heappush(self._due, (self.clock.now, next(self._seq), task))

    def sleep(self, seconds: float) -> None:
        task = getattr(self._local, "task", None)
        if task is None:
            raise RuntimeError("SimLoop.sleep outside a simulated task would block the loop")
        heapq.heappush(self._due, (self.clock.now + task.owed + max(0.0, seconds), next(self._seq), task))
        task.owed = 0.0
        self._yielded.release()
        task.resume.acquire()

    def run(self) -> None:
        while self._due:
            at, _, task = heapq.heappop(self._due)
            self.clock.advance_to(at)
            task.resume.release()
            self._yielded.acquire()
            if self.errors:
                raise RuntimeError(f"simulated task failed: {self.errors[0]!r}") from self.errors[0]


class TimedState:
    """The state store as the writer sees it: every call takes STATE_LATENCY_S of simulated time."""

    def __init__(self, state: MemoryState, loop: SimLoop, latency: float) -> None:
        self._state, self._loop, self._latency = state, loop, latency
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._state, name)
        if not callable(attribute):
            return attribute

        def timed(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self._loop.spend(self._latency)
            return attribute(*args, **kwargs)

        return timed


class BudgetTable:
    """The two DynamoDB calls RateBudget makes (GetItem, conditional PutItem on `rev`), in memory, each taking
    STATE_LATENCY_S, so concurrent takers race as they do on the real table."""

    CONDITION = "attribute_not_exists(rev) OR rev = :rev"

    def __init__(self, loop: SimLoop, latency: float) -> None:
        self._loop, self._latency = loop, latency
        self._items: dict[tuple[str, str], dict[str, Any]] = {}
        self.conflicts = 0

    def get_item(self, *, TableName: str, Key: dict[str, Any], ConsistentRead: bool = False) -> dict[str, Any]:
        self._loop.sleep(self._latency)
        item = self._items.get((Key["pk"]["S"], Key["sk"]["S"]))
        return {"Item": copy.deepcopy(item)} if item else {}

    def put_item(
        self,
        *,
        TableName: str,
        Item: dict[str, Any],
        ConditionExpression: str,
        ExpressionAttributeValues: dict[str, Any],
    ) -> dict[str, Any]:
        if ConditionExpression != self.CONDITION:
            raise AssertionError(f"RateBudget's condition changed ({ConditionExpression}): teach BudgetTable it")
        self._loop.sleep(self._latency)
        key = (Item["pk"]["S"], Item["sk"]["S"])
        stored = self._items.get(key)
        if stored is not None and stored["rev"] != ExpressionAttributeValues[":rev"]:
            self.conflicts += 1
            error = {"Error": {"Code": "ConditionalCheckFailedException", "Message": "The conditional request failed"}}
            raise ClientError(error, "PutItem")  # type: ignore[arg-type]
        self._items[key] = copy.deepcopy(Item)
        return {}


# ---- CRM transports ------------------------------------------------------------------------------------------------


class IndexedHubSpot(FakeHubSpot):
    """FakeHubSpot with its unique-value lookups (`_find`) indexed: the fake scans every record of the type for each
    input, which is fine for tests and quadratic under thousands of records. Every property write goes through
    `_new` or `_touch`, which keep the index; a hit is checked against the record (a merged record is gone, a value
    may have changed since). Built after the unique properties exist (the setup runs first)."""

    def reset(self) -> None:
        self._index: dict[tuple[str, str, str], Record] = {}
        self._type_of: dict[str, str] = {}
        super().reset()

    def _new(self, object_type: str, properties: dict[str, str]) -> Record:
        record = super()._new(object_type, properties)
        self._type_of[record.id] = object_type
        self._remember(object_type, record)
        return record

    def _touch(self, record: Record, properties: Mapping[str, str]) -> None:
        super()._touch(record, properties)
        self._remember(self._type_of[record.id], record)

    def _remember(self, object_type: str, record: Record) -> None:
        for name in self._unique(object_type):
            value = record.properties.get(name)
            if value is not None:
                self._index[(object_type, name, value.lower() if name == "email" else value)] = record

    def _find(self, object_type: str, name: str, value: str) -> Record | None:
        if name == "hs_object_id":
            return super()._find(object_type, name, value)
        wanted = value.lower() if name == "email" else value
        record = self._index.get((object_type, name, wanted))
        if record is None or self.records.get(object_type, {}).get(record.id) is not record:
            return None
        have = record.properties.get(name)
        return record if have is not None and (have.lower() if name == "email" else have) == wanted else None


@dataclass(frozen=True)
class Sent:
    at: float
    method: str
    path: str
    status: int


class HubSpotWire:
    """HubSpotCrm's transport: each request answered by the fake portal at once, the answer CRM_LATENCY_S later."""

    def __init__(self, fake: FakeHubSpot, loop: SimLoop, latency: float) -> None:
        self.fake, self.loop, self.latency = fake, loop, latency
        self.sent: list[Sent] = []

    def send(self, method: str, url: str, headers: Any, body: bytes | None, timeout: float) -> HttpResponse:
        parts = urlsplit(url)
        answer = self.fake.handle(method, parts.path + (f"?{parts.query}" if parts.query else ""), headers, body)
        self.sent.append(Sent(self.loop.now(), method, parts.path, answer.status))
        if self.latency > 0:
            self.loop.sleep(self.latency)
        return HttpResponse(answer.status, answer.encoded(), {k.lower(): v for k, v in answer.headers.items()})


class SalesforceWire(_InProcessAdapter):
    """simple-salesforce's requests adapter: the fake answers at once, the answer comes CRM_LATENCY_S later."""

    def __init__(self, fake: FakeSalesforce, loop: SimLoop, latency: float, sent: list[Sent]) -> None:
        super().__init__(fake)
        self.loop, self.latency, self.sent = loop, latency, sent

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        response = super().send(request, *args, **kwargs)
        self.sent.append(
            Sent(self.loop.now(), str(request.method), urlsplit(request.path_url).path, response.status_code)
        )
        self.loop.sleep(self.latency)
        return response


# ---- the Lambda event source ---------------------------------------------------------------------------------------


class SimContext:
    """What the handler reads of a Lambda context; the remaining time runs on the simulated clock."""

    function_name = "crm-writer"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:crm-writer"

    def __init__(self, loop: SimLoop, timeout_s: float, poller: int, request: int) -> None:
        self.loop, self.deadline, self.poller = loop, loop.now() + timeout_s, poller
        self.aws_request_id = f"bench-{request:05d}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - self.loop.now()) * 1000))


@dataclass
class Invocation:
    poller: int
    started: float
    ended: float
    size: int
    failed: int
    timed_out: bool
    flush_delays: list[float]  # per record: its event's publication -> the end of the invocation that wrote it


@dataclass
class Backend:
    """One CRM under load: how a container and an invocation get their adapter, and what was sent."""

    name: str
    per_call: int
    mapping: CrmMapping
    adapter: Callable[[SimContext], CrmPort]  # a fresh adapter per invocation, as crm_writer.app.deps builds one
    sent: list[Sent]
    check: Callable[[MemoryState, Workload], dict[str, int]]  # the CRM's final state against the stored state
    during: Callable[[], contextlib.AbstractContextManager[object]] = contextlib.nullcontext  # around the run


@dataclass
class FlushRun:
    """One invocation of the FlusherFunction's handler, and what it answered (crmsync.flusher.FlushReport)."""

    started: float
    ended: float
    report: dict[str, Any]


@dataclass
class LoadRun:
    backend: str
    source: QueueSource
    invocations: list[Invocation]
    sent: list[Sent]
    published: int
    dead_lettered: int
    left_in_queue: int
    simulated_s: float
    wall_s: float
    state_calls: int
    budget_conflicts: int
    checks: dict[str, int]
    peak_pollers: int
    flusher: FlusherSource | None = None  # None: today's mode, the CRM writer writes each batch
    flushes: list[FlushRun] = field(default_factory=list)
    delays: list[float] = field(default_factory=list)  # per event: publication -> the end of the write carrying it
    left_dirty: int = 0
    unwritten_events: int = 0  # events whose record no flush cleared after their mark
    dirty_calls: int = 0


BackendFactory = Callable[[SimLoop, FakeClock], tuple["Backend", "BudgetTable | None"]]


def run_load(
    workload: Workload,
    backend_for: BackendFactory,
    source: QueueSource,
    pollers: int | None = None,
    max_pollers: int | None = None,
    flusher: FlusherSource | None = None,
) -> LoadRun:
    """Publish the workload's events at their times and let Lambda's pollers (`pollers` at first, at most
    `max_pollers`; by default as AWS scales an SQS event source, within the template's MaximumConcurrency) drain the
    CRM queue into the real crm_writer handler; returns what happened. With `flusher`, the handler runs with
    CRM_FLUSH_DELAY_SECONDS (it marks records dirty) and the real flusher handler runs on its schedule, each run its
    own task (a run that outlasts the tick overlaps the next one, which finds the lease taken)."""
    max_pollers = max_pollers or source.max_concurrency
    pollers = min(pollers or LAMBDA_POLLERS, max_pollers)
    wall = time.perf_counter()
    clock = FakeClock(START - 60.0)  # the CRM setup runs a minute before the burst
    loop = SimLoop(clock)
    backend, budget_table = backend_for(loop, clock)
    clock.advance_to(START)
    state = MemoryState()
    timed = TimedState(state, loop, STATE_LATENCY_S)
    timed_state = cast("StateStore", timed)
    queue = SqsSimulator(
        "CrmQueue",
        seed=SEED,
        clock=clock,
        max_receive_count=source.max_receive_count,
        visibility_timeout=source.visibility_timeout_s,
    )
    bus = MemoryBus(clock=clock, seed=SEED)
    bus.route_crm_queue(queue)
    assert queue.dlq is not None
    dead_letterer = DeadLetterer(
        dlq=queue.dlq.as_store(),
        source=queue.as_store(),
        policy=RetryPolicy(max_receive_count=source.max_receive_count, backoff_seconds=source.backoff_s),
        clock=lambda: datetime.fromtimestamp(clock.now, UTC),
        jitter=Random(SEED).random,
    )
    invocations: list[Invocation] = []
    producing = [True]
    requests_made = itertools.count()
    dirty = MemoryDirty(clock=loop.now)
    timed_dirty = TimedState(dirty, loop, STATE_LATENCY_S)  # type: ignore[arg-type]
    acked: list[tuple[str, float, float]] = []  # flusher mode: (entity#key, published, acknowledged as marked)
    flushes: list[FlushRun] = []
    flushing = [0]

    def produce() -> None:
        for w in workload.webhooks:
            if START + w.at > loop.now() + PRODUCER_TICK_S:
                loop.sleep(START + w.at - loop.now())
            events: list[tuple[str, str]] = []
            if state.put_versioned(f"CUSTOMER#{w.customer_id}", w.customer_sk, w.customer_version, w.customer):
                events.append(("customer.upserted", _event("customer", w.customer_id, w, w.customer)))
            written = state.put_versioned(
                f"ORDER#{w.order_key}", "STATE", w.order_version, w.order, customer_id=w.customer_id
            )
            if written:
                events.append((w.order_event, _event("order", w.order_key, w, w.order)))
            bus.publish(events)
        producing[0] = False

    def deps(settings: Settings, context: SimContext) -> WriterDeps:
        return WriterDeps(state=timed_state, crm=backend.adapter(context), mapping=backend.mapping)

    def invoke(poller: int, batch: list[QueueMessage]) -> None:
        context = SimContext(loop, source.timeout_s, poller, next(requests_made))
        started = loop.now()
        answer = writer_app.lambda_handler(queue.event(batch), cast("Any", context))
        loop.sleep(0.0)  # the state calls' time since the last CRM request
        ended = loop.now()
        failed = {f["itemIdentifier"] for f in answer.get("batchItemFailures") or []}
        timed_out = ended > context.deadline  # Lambda would have stopped it: nothing is deleted
        done = [] if timed_out else [m for m in batch if m.message_id not in failed]
        queue.delete_batch([m.receipt_handle for m in done])
        delays = [ended - int(m.attributes["SentTimestamp"]) / 1000 for m in done]
        if flusher is not None:  # marked, not written: the flush that clears the record carries the event
            for m in done:
                detail = json.loads(m.body)["detail"]
                acked.append((f"{detail['entity']}#{detail['key']}", int(m.attributes["SentTimestamp"]) / 1000, ended))
            delays = []
        invocations.append(Invocation(poller, started, ended, len(batch), len(batch) - len(done), timed_out, delays))

    def poll(poller: int) -> None:
        while True:
            batch: list[QueueMessage] = []
            first = 0.0
            while len(batch) < source.batch_size:
                got = queue.receive(max_messages=min(10, source.batch_size - len(batch)))
                if got:
                    first = first if batch else loop.now()
                    batch += got
                    continue
                if batch and loop.now() >= first + source.window_s:
                    break
                if not batch and (poller >= pollers or (not producing[0] and len(queue) == 0)):
                    active.discard(poller)  # Lambda scales back to its first pollers when the backlog is gone
                    return
                loop.sleep(min(POLL_S, first + source.window_s - loop.now()) if batch else POLL_S)
            invoke(poller, batch)

    def start(poller: int) -> None:
        active.add(poller)
        peak[0] = max(peak[0], len(active))
        loop.spawn(f"poller-{poller}", lambda: poll(poller))

    def scale() -> None:
        """While messages wait, Lambda adds up to SCALE_UP_PER_MINUTE pollers a minute, up to max_pollers."""
        started = itertools.count(pollers)
        while producing[0] or len(queue):
            loop.sleep(SCALE_TICK_S)
            if queue.depth().visible:
                for _ in range(min(round(SCALE_UP_PER_MINUTE * SCALE_TICK_S / 60), max_pollers - len(active))):
                    start(next(started))

    def flusher_deps(settings: Settings, context: SimContext) -> FlusherDeps:
        return FlusherDeps(
            writer=WriterDeps(state=timed_state, crm=backend.adapter(context), mapping=backend.mapping),
            dirty=cast("DirtyStore", timed_dirty),
            failures=dead_letterer,
            clock=loop.now,
            time_left=lambda: context.get_remaining_time_in_millis() / 1000 - flusher_app.TIME_RESERVE_SECONDS,
            source_queue="CrmQueue",
        )

    def flush_once(run: int) -> None:
        assert flusher is not None
        context = SimContext(loop, flusher.timeout_s, 100_000 + run, next(requests_made))
        started = loop.now()
        report = flusher_app.lambda_handler({}, cast("Any", context))
        loop.sleep(0.0)
        flushes.append(FlushRun(started, loop.now(), report))
        flushing[0] -= 1

    def schedule() -> None:
        """The FlusherFunction's schedule: a run every tick from `first_s` after the burst starts, while anything is
        still to be written (at most an hour)."""
        assert flusher is not None
        loop.sleep(START + flusher.first_s - loop.now())
        for run in itertools.count():
            if not (producing[0] or len(queue) or dirty.items() or flushing[0]) or loop.now() > START + 3600:
                return
            flushing[0] += 1
            loop.spawn(f"flusher-{run}", lambda run=run: flush_once(run))  # type: ignore[misc]
            loop.sleep(flusher.tick_s)

    active: set[int] = set()
    peak = [0]
    loop.spawn("producer", produce)
    loop.spawn("scaler", scale)
    for poller in range(pollers):
        start(poller)
    patches = contextlib.ExitStack()
    if flusher is not None:
        loop.spawn("schedule", schedule)
        env = {"CRM_FLUSH_DELAY_SECONDS": f"{flusher.delay_s:.0f}", "CRM_BACKEND": backend.name}
        patches.enter_context(mock.patch.dict(os.environ, env))
        patches.enter_context(mock.patch.object(writer_app, "dirty_store", return_value=timed_dirty))
        patches.enter_context(mock.patch.object(flusher_app, "deps", side_effect=flusher_deps))
        if flusher.policy:
            policy, of_settings = dict(flusher.policy), FlushPolicy.from_settings
            patches.enter_context(
                mock.patch.object(
                    FlushPolicy,
                    "from_settings",
                    side_effect=lambda s: dataclasses.replace(of_settings(s), **policy),
                )
            )
    with _quiet(), backend.during(), mock.patch.object(writer_app, "deps", side_effect=deps), \
            mock.patch.object(writer_app, "dead_letterer", return_value=dead_letterer), patches:  # fmt: skip
        loop.run()
    ends = [i.ended for i in invocations] + [f.ended for f in flushes]
    delays, unwritten = _flush_delays(dirty, acked) if flusher is not None else ([], 0)
    return LoadRun(
        backend=backend.name,
        source=source,
        invocations=invocations,
        sent=backend.sent,
        published=len(bus.published),
        dead_lettered=len(queue.dlq),
        left_in_queue=len(queue),
        simulated_s=(max(ends) if ends else START) - START,
        wall_s=time.perf_counter() - wall,
        state_calls=timed.calls,
        budget_conflicts=budget_table.conflicts if budget_table else 0,
        checks=backend.check(state, workload),
        peak_pollers=peak[0],
        flusher=flusher,
        flushes=flushes,
        delays=delays,
        left_dirty=len(dirty.items()),
        unwritten_events=unwritten,
        dirty_calls=timed_dirty.calls,
    )


def _flush_delays(dirty: MemoryDirty, acked: Sequence[tuple[str, float, float]]) -> tuple[list[float], int]:
    """Per acknowledged event: its publication -> the first clear of its record after the mark that event made (a
    clear succeeds only when no mark came after the flusher listed the record, so the write it follows read the state
    the event left). Returns the delays and the events no clear followed."""
    marks: dict[str, list[float]] = {}
    clears: dict[str, list[float]] = {}
    for at, what, key in dirty.log:
        if what in ("mark", "clear"):
            (marks if what == "mark" else clears).setdefault(key, []).append(at)
    delays: list[float] = []
    unwritten = 0
    for key, published, acknowledged in acked:
        made = [at for at in marks.get(key, []) if at <= acknowledged]
        later = [at for at in clears.get(key, []) if made and at > made[-1]]
        if later:
            delays.append(later[0] - published)
        else:
            unwritten += 1
    return delays, unwritten


def _event(entity: str, key: str, w: Webhook, data: dict[str, Any]) -> str:
    return DomainEvent(
        entity=cast("Any", entity),
        key=key,
        customer_id=w.customer_id,
        source="shopify",
        source_id=w.source_id if entity == "order" else data.get("source_id"),
        source_version=w.source_version,
        receipt_id=w.receipt_id,
        correlation_id=w.receipt_id,
        data=data,
    ).model_dump_json()


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Powertools' log lines and EMF blobs to /dev/null (thousands of invocations); its warnings off."""
    previous = logger.log_level
    logger.setLevel("CRITICAL")
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            yield
        finally:
            logger.setLevel(logging.getLevelName(previous) if isinstance(previous, int) else previous)
            metrics.clear_metrics()


# ---- the two CRMs --------------------------------------------------------------------------------------------------


def hubspot_backend(loop: SimLoop, clock: FakeClock, *, shared_budget: bool = True) -> tuple[Backend, BudgetTable]:
    """HubSpotCrm per invocation on one fake portal; every invocation takes its tokens from one RateBudget (as every
    Lambda shares the state table's), or from none (`shared_budget=False`: what the budget prevents)."""
    fake = IndexedHubSpot(
        token=TOKEN, rate_limit=HUBSPOT_LIMIT, window_seconds=HUBSPOT_WINDOW_S, strict=False, clock=clock
    )
    mapping = load_mapping("default")
    # `make hubspot-setup` first (the unique crmsync_external_id property), outside the load and its window.
    setup(HubSpotCrm(HubSpotWire(fake, loop, 0.0), token=TOKEN), required_properties(mapping))
    wire = HubSpotWire(fake, loop, CRM_LATENCY_S)
    table = BudgetTable(loop, STATE_LATENCY_S)
    budget = RateBudget("state", limit=HUBSPOT_LIMIT, window_seconds=HUBSPOT_WINDOW_S, client=cast("Any", table),
                        clock=clock)  # fmt: skip
    jitter = Random(SEED).random

    def adapter(context: SimContext) -> CrmPort:
        return HubSpotCrm(
            wire, token=TOKEN, budget=budget if shared_budget else Unlimited(), sleep=loop.sleep, clock=clock,
            jitter=jitter,
            time_left=lambda: context.get_remaining_time_in_millis() / 1000 - writer_app.TIME_RESERVE_SECONDS,
        )  # fmt: skip

    sampled = SampledSpec(hubspot_spec.validate_request)

    def check(state: MemoryState, workload: Workload) -> dict[str, int]:
        return {**_check_hubspot(fake, state, mapping), "spec_checked_requests": sampled.checked}

    def during() -> contextlib.AbstractContextManager[object]:
        return mock.patch.object(hubspot_spec, "validate_request", sampled)

    return Backend("hubspot", HUBSPOT_LIMIT, mapping, adapter, wire.sent, check, during), table


class SampledSpec:
    """The fake's request validation for the first SPEC_SAMPLE requests of each method and path: a request the spec
    rejects is still answered 400, and every later request of that endpoint is built by the same code."""

    def __init__(self, validate: Callable[..., None]) -> None:
        self._validate = validate
        self._seen: Counter[tuple[str, str]] = Counter()
        self.checked = 0

    def __call__(self, method: str, path: str, body: bytes | None, **kwargs: Any) -> None:
        if self._seen[(method, path)] < SPEC_SAMPLE:
            self._seen[(method, path)] += 1
            self.checked += 1
            self._validate(method, path, body, **kwargs)


def _check_hubspot(fake: FakeHubSpot, state: MemoryState, mapping: CrmMapping) -> dict[str, int]:
    """Every deal and contact in the portal shows its stored state's newest version; every deal has its contact."""
    portal = fake.state()
    contacts = portal["records"].get("contacts", {})
    deals = portal["records"].get("deals", {})
    by_email = {p.get("email"): (i, p) for i, p in contacts.items()}
    by_external = {p.get("crmsync_external_id"): (i, p) for i, p in deals.items()}
    linked = portal["associations"].get("deals", {})
    stale = unlinked = 0
    for external_id, item in state.entities("ORDER").items():
        found = by_external.get(external_id)
        assert item.customer_id is not None
        customer = customer_view(item.customer_id, state.customer_items(item.customer_id))
        contact = by_email.get(customer.get("email"))
        expected = mapping.deals.apply(order_view(item.data, item.customer_id))
        if found is None or any(found[1].get(k) != v for k, v in expected.items()):
            stale += 1
        if found is None or contact is None or contact[0] not in linked.get(found[0], {}).get("contacts", []):
            unlinked += 1
    for customer_id, items in state.customers().items():
        expected = mapping.contacts.apply(customer_view(customer_id, items))
        found = by_email.get(expected.get("email"))
        if found is None or any(found[1].get(k) != v for k, v in expected.items()):
            stale += 1
    return {"contacts": len(contacts), "deals": len(deals), "stale_records": stale, "deals_without_contact": unlinked}


def salesforce_backend(loop: SimLoop, clock: FakeClock) -> tuple[Backend, None]:
    fake = FakeSalesforce()
    sent: list[Sent] = []
    apis: dict[int, SalesforceApi] = {}

    def api_of(poller: int) -> SalesforceApi:
        """One connection per Lambda container (SalesforceCrm.from_settings shares it), one container per poller."""
        if poller not in apis:
            session = requests.Session()
            session.trust_env = False  # no ~/.netrc or proxy lookups per request
            wire = SalesforceWire(fake, loop, CRM_LATENCY_S, sent)
            session.mount("https://", wire)
            session.mount("http://", wire)
            sf = connect(SalesforceCredentials(instance_url=SF_URL, access_token=fake.token), session=session)
            apis[poller] = SalesforceApi(sf, guard=ApiUsageGuard(clock=clock, sleep=loop.sleep), sleep=loop.sleep)
        return apis[poller]

    def adapter(context: SimContext) -> CrmPort:
        api = api_of(context.poller)
        api.time_left = lambda: context.get_remaining_time_in_millis() / 1000 - writer_app.TIME_RESERVE_SECONDS
        return SalesforceCrm(api=api)

    def check(state: MemoryState, workload: Workload) -> dict[str, int]:
        roles = {(r["OpportunityId"], r["ContactId"]) for r in fake.all("OpportunityContactRole")}
        contacts = {r["Id"]: r for r in fake.all("Contact")}
        deals = fake.all("Opportunity")
        by_external = {c.get("Crmsync_External_Id__c"): i for i, c in contacts.items()}
        unlinked = 0
        for deal in deals:
            item = state.get_order(str(deal.get("Crmsync_External_Id__c")))
            contact = by_external.get(customer_view(item.customer_id, []).get("external_id")) if item and \
                item.customer_id else None  # fmt: skip
            if contact is None or (deal["Id"], contact) not in roles:
                unlinked += 1
        return {"contacts": len(contacts), "deals": len(deals), "deals_without_contact": unlinked,
                "contact_roles": len(roles)}  # fmt: skip

    return Backend("salesforce", SALESFORCE_LIMIT, load_mapping("salesforce"), adapter, sent, check), None


# ---- figures -------------------------------------------------------------------------------------------------------


def _kind(backend: str, sent: Sent) -> str:
    parts = sent.path.strip("/").split("/")
    if backend == "hubspot":
        if parts[:3] == ["crm", "v3", "objects"]:
            return f"{parts[-1]} {parts[3]}"  # "upsert contacts"
        if parts[:3] == ["crm", "v4", "associations"]:
            return f"associate {parts[3]}->{parts[4]}"
        return f"{sent.method} {sent.path}"
    rest = parts[3:] if parts[:2] == ["services", "data"] else parts
    if rest[:2] == ["composite", "sobjects"]:
        return {"PATCH": "upsert" if len(rest) > 2 else "update", "POST": "create", "DELETE": "delete"}.get(
            sent.method, sent.method
        ) + (f" {rest[2]}" if len(rest) > 2 else "")
    return " ".join([sent.method, *rest[:1]])


def peak_per_window(times: Sequence[float], window_s: float = HUBSPOT_WINDOW_S) -> tuple[int, int]:
    """(most requests sent in any rolling window, requests a limit of HUBSPOT_LIMIT per window would refuse). As
    the fake portal counts: a refused request does not count against the window."""
    ordered = sorted(times)
    peak = refused = 0
    start = 0
    accepted: list[float] = []
    for end, at in enumerate(ordered):
        while ordered[start] <= at - window_s:
            start += 1
        peak = max(peak, end - start + 1)
        if len(accepted) >= HUBSPOT_LIMIT and accepted[-HUBSPOT_LIMIT] > at - window_s:
            refused += 1
        else:
            accepted.append(at)
    return peak, refused


def _percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] if ordered else 0.0


def figures_of(run: LoadRun, workload: Workload, make_figure: Callable[..., Figure]) -> list[Figure]:
    per_call = HUBSPOT_LIMIT if run.backend == "hubspot" else SALESFORCE_LIMIT
    minimum = minimum_calls(workload, per_call)
    answered = Counter(s.status for s in run.sent)
    kinds = Counter(_kind(run.backend, s) for s in run.sent)
    calls = len(run.sent)
    limited = answered[429]
    peak, over = peak_per_window([s.at for s in run.sent])
    sizes = [i.size for i in run.invocations]
    delays = run.delays if run.flusher else [d for i in run.invocations for d in i.flush_delays]
    ideal = {w: ideal_calls(workload, w, per_call) for w in IDEAL_WINDOWS_S}
    enough = next((w for w, n in ideal.items() if n <= CALLS_GOAL * minimum), None)
    ratio = calls / minimum
    budget, status = f"<= {CALLS_GOAL:g}x", "PASS" if ratio <= CALLS_GOAL else "FAIL"
    name = "HubSpot" if run.backend == "hubspot" else "Salesforce"
    source = run.source
    flusher = run.flusher
    prefix = f"crm.{run.backend}" + (f".{flusher.label}" if flusher else "")
    mode = (
        f", flusher, delay {flusher.delay_s:g} s" + "".join(f", {k.replace('_', ' ')}" for k, v in flusher.policy if v)
        if flusher
        else ""
    )
    runs = [f.report for f in run.flushes]
    writing = [r for r in runs if r.get("written")]
    if flusher:
        how = (
            f"CRM writer: {len(run.invocations)} invocations of {statistics_mean(sizes):.1f} events on average marking "
            f"their records dirty (BatchSize {source.batch_size}, window {source.window_s:g} s, {LAMBDA_POLLERS} to "
            f"{run.peak_pollers} concurrent pollers); flusher: CRM_FLUSH_DELAY_SECONDS={flusher.delay_s:g}, a run "
            f"every {flusher.tick_s:g} s ({len(runs)} runs: {len(writing)} wrote "
            f"{'/'.join(str(r['written']) for r in writing)} records in "
            f"{'/'.join(f'{f.ended - f.started:.0f}' for f in run.flushes if f.report.get('written'))} s, "
            f"{sum(not r.get('lease', True) for r in runs)} found the lease taken)"
            + (f", policy {dict(flusher.policy)}" if flusher.policy else "")
        )
    else:
        how = (
            f"{len(run.invocations)} invocations of {statistics_mean(sizes):.1f} events on average (BatchSize "
            f"{source.batch_size}, max flush delay = batching window {source.window_s:g} s, {LAMBDA_POLLERS} to "
            f"{run.peak_pollers} concurrent pollers"
        )
    context = (
        f"{workload.events:,} events ({len(workload.webhooks):,} orders/* webhooks) on {workload.customers:,} contacts "
        f"+ {workload.orders:,} deals ({workload.pairs:,} deal-contact pairs); {how}, "
        f"{CRM_LATENCY_S * 1000:.0f} ms a CRM "
        f"request, {STATE_LATENCY_S * 1000:.0f} ms a DynamoDB call); {run.simulated_s:.0f} simulated s "
        f"({run.wall_s:.1f} s wall)"
    )
    data: dict[str, Any] = {
        "requests": calls,
        "minimum": minimum,
        "per_call": per_call,
        "requests_by_kind": dict(sorted(kinds.items())),
        "answers": {str(k): v for k, v in sorted(answered.items())},
        "peak_requests_per_10s": peak,
        "requests_over_100_per_10s": over,
        "ideal_calls_by_flush_window_s": {f"{w:g}": n for w, n in ideal.items()},
        "events": workload.events,
        "published": run.published,
        "webhooks": len(workload.webhooks),
        "records": {"contacts": workload.customers, "deals": workload.orders, "pairs": workload.pairs},
        "invocations": len(run.invocations),
        "mean_batch": statistics_mean(sizes),
        "failed_records": sum(i.failed for i in run.invocations),
        "timed_out_invocations": sum(i.timed_out for i in run.invocations),
        "dead_lettered": run.dead_lettered,
        "left_in_queue": run.left_in_queue,
        "flush_delay_s": {
            "p50": round(_percentile(delays, 0.5), 2),
            "p99": round(_percentile(delays, 0.99), 2),
            "max": round(max(delays, default=0.0), 2),
        },
        "simulated_s": round(run.simulated_s, 1),
        "wall_s": round(run.wall_s, 1),
        "writer_state_calls": run.state_calls,
        "budget_conflicts": run.budget_conflicts,
        "crm_state": run.checks,
        "batch_size": source.batch_size,
        "window_s": source.window_s,
        "pollers": {"first": LAMBDA_POLLERS, "peak": run.peak_pollers},
        "crm_latency_s": CRM_LATENCY_S,
        "state_latency_s": STATE_LATENCY_S,
    }
    if flusher:
        data["flusher"] = {
            "delay_s": flusher.delay_s,
            "tick_s": flusher.tick_s,
            "timeout_s": flusher.timeout_s,
            "policy": dict(flusher.policy),
            "runs": [
                {"started_s": round(f.started - START, 1), "ended_s": round(f.ended - START, 1), **f.report}
                for f in run.flushes
            ],
            "dirty_store_calls": run.dirty_calls,
            "left_dirty": run.left_dirty,
            "unwritten_events": run.unwritten_events,
        }
    problems = [
        f"{k} {v}"
        for k, v in (
            ("events published", run.published if run.published != workload.events else 0),
            ("dead-lettered", run.dead_lettered),
            ("left in queue", run.left_in_queue),
            ("left dirty", run.left_dirty),
            ("events no flush wrote", run.unwritten_events),
            *((k, v) for k, v in run.checks.items() if k in ("stale_records", "deals_without_contact")),
        )
        if v
    ]
    floor = ", ".join(f"{w:g} s: {n} ({n / minimum:.1f}x)" for w, n in ideal.items())
    calls_detail = (
        f"{calls} requests ({', '.join(f'{k} {v}' for k, v in sorted(kinds.items()))}) vs minimum {minimum} "
        f"(⌈{workload.customers}/{per_call}⌉ + ⌈{workload.orders}/{per_call}⌉ + ⌈{workload.pairs}/{per_call}⌉ pairs); "
        f"{context}. An ideal flusher writing all pending records every D s would need: {floor}"
        + (f"; ≤ {CALLS_GOAL:g}x needs D ≥ {enough:g} s" if enough else "")
        + f". Flush delay (publication -> written{', through the flusher' if flusher else ''}) p50 "
        f"{data['flush_delay_s']['p50']} s, p99 {data['flush_delay_s']['p99']} s, max "
        f"{data['flush_delay_s']['max']} s; {data['failed_records']} records retried, "
        f"{data['timed_out_invocations']} invocations timed out. CRM state: {run.checks}"
        + (f". PROBLEMS: {', '.join(problems)}" if problems else "")
    )
    figures = [
        make_figure(
            key=f"{prefix}.calls_vs_minimum",
            label=f"crm: {name} calls / minimum ({workload.events:,} events{mode})",
            value=ratio,
            unit="x",
            budget=budget,
            status="FAIL" if problems else status,
            detail=calls_detail,
            data=data,
        )
    ]
    if run.backend == "hubspot":
        share = limited / calls if calls else 0.0
        figures.append(
            make_figure(
                key=f"{prefix}.share_429",
                label=f"crm: HubSpot share of requests answered 429{mode}",
                value=share,
                unit="%",
                budget=f"< {SHARE_429_GOAL:.0%}",
                status="PASS" if share < SHARE_429_GOAL else "FAIL",
                detail=f"{limited} of {calls} requests answered 429 under {HUBSPOT_LIMIT} per rolling "
                f"{HUBSPOT_WINDOW_S:g} s (the fake portal's count); peak {peak} requests in any 10 s; "
                f"{run.budget_conflicts} budget-table write conflicts between concurrent invocations",
                data={"answered_429": limited, "requests": calls, "peak_requests_per_10s": peak},
            )
        )
    else:
        share = over / calls if calls else 0.0
        figures.append(
            make_figure(
                key=f"{prefix}.share_over_100_per_10s",
                label=f"crm: Salesforce share of requests over 100 per 10 s{mode}",
                value=share,
                unit="%",
                budget="report only",
                status="INFO",
                detail=f"{over} of {calls} requests would have been refused by a limit of {HUBSPOT_LIMIT} per rolling "
                f"{HUBSPOT_WINDOW_S:g} s, counted as the HubSpot fake counts (peak {peak} sent in any 10 s). "
                "Counted, not refused: Salesforce has no per-10-s limit and answers no 429 (its limits are the "
                "daily allowance, which SalesforceApi's ApiUsageGuard follows through Sforce-Limit-Info, and 25 "
                "concurrent long-running requests)",
                data={"over_limit": over, "requests": calls, "peak_requests_per_10s": peak},
            )
        )
    return figures


def statistics_mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def bench_crm_load(
    make_figure: Callable[..., Figure] | None = None,
    flush_delays: Sequence[float] = FLUSH_DELAYS_S,
    alternatives: Sequence[tuple[float, dict[str, Any]]] = FLUSH_ALTERNATIVES,
) -> list[Figure]:
    """The CRM load figures for HubSpot and Salesforce, made by `make_figure` (bench.run.Figure, which bench/run.py
    passes in, as it imports this module): today's mode (CRM_FLUSH_DELAY_SECONDS=0), then the flusher mode with each
    of `flush_delays` (the default FlushPolicy) and with each of `alternatives` (delay, FlushPolicy fields); about
    60 s."""
    if make_figure is None:
        from bench.run import Figure

        make_figure = Figure
    workload = build_workload()
    source = crm_queue_source()
    figures: list[Figure] = []
    for backend_for in (hubspot_backend, salesforce_backend):
        figures += figures_of(run_load(workload, backend_for, source), workload, make_figure)
        for delay, policy in [*((d, {}) for d in flush_delays), *alternatives]:
            run = run_load(workload, backend_for, source, flusher=flusher_source(delay, **policy))
            figures += figures_of(run, workload, make_figure)
    return figures


# What would change the HubSpot figures: (label, backend, batch size, batching window s, first pollers, max pollers,
# Lambda timeout s); the visibility timeout follows AWS's advice (6 x the timeout + the window). MaximumConcurrency is
# at least 2, and 6 MB of SQS records per invocation is about 3,500 of these events; the last row is no Lambda event
# source but one flusher (reserved concurrency 1) that drains the queue every window.
WHAT_IF: tuple[tuple[str, Callable[..., Any], int, float, int, int, float], ...] = (
    ("template.yaml as is, no shared budget", functools.partial(hubspot_backend, shared_budget=False), 0, 0, 0, 0, 0),
    ("BatchSize 500, window 30 s, timeout 120 s", hubspot_backend, 500, 30, LAMBDA_POLLERS, MAX_POLLERS, 120),
    ("BatchSize 3,000, window 120 s, timeout 300 s", hubspot_backend, 3000, 120, LAMBDA_POLLERS, MAX_POLLERS, 300),
    ("same + MaximumConcurrency 2", hubspot_backend, 3000, 120, 2, 2, 300),
    ("one flusher every 60 s (timeout 900 s)", hubspot_backend, 10_000, 60, 1, 1, 900),
)


# Flusher policies measured by --what-if and --sweep (crmsync.flusher.FlushPolicy): the default fills the last batch
# of a kind with not-yet-due records; early full batches also write any full batch before it is due; all when due
# writes every dirty record once any is due.
FLUSHER_POLICIES: tuple[tuple[str, dict[str, Any]], ...] = (
    ("default (due + fill the last batch)", {}),
    ("no batch filling", {"fill_batches": False}),
    ("early full batches", {"early_full_batches": True}),
    ("all when due", {"all_when_due": True}),
)
FLUSHER_WHAT_IF: tuple[tuple[str, float, dict[str, Any]], ...] = tuple(
    (f"flusher, delay {delay:g} s, {label}", delay, policy)
    for delay in (45.0, 120.0)
    for label, policy in FLUSHER_POLICIES
)


def sweep(delays: Sequence[float]) -> None:
    """Calls / minimum of the flusher mode for each delay, schedule phase and policy, both CRMs (`python
    bench/crm_load.py --sweep 30,45,60,120`; ~10 s a cell)."""
    workload = build_workload()
    source = crm_queue_source()
    phases = "  ".join(f"{f'first run {p:g} s':>18}" for p in FLUSH_PHASES_S)
    print(f"{'backend':<11} {'delay':>5}  {'policy':<36} {phases}   (calls x minimum, max flush delay s)")
    for backend_for, per_call in ((hubspot_backend, HUBSPOT_LIMIT), (salesforce_backend, SALESFORCE_LIMIT)):
        minimum = minimum_calls(workload, per_call)
        for delay in delays:
            for label, policy in FLUSHER_POLICIES:
                cells = []
                for first in FLUSH_PHASES_S:
                    run = run_load(workload, backend_for, source, flusher=flusher_source(delay, first, **policy))
                    bad = (
                        run.left_dirty
                        or run.unwritten_events
                        or run.dead_lettered
                        or any(run.checks.get(k) for k in ("stale_records", "deals_without_contact"))
                    )
                    cells.append(
                        f"{len(run.sent):>3} {len(run.sent) / minimum:.2f}x {max(run.delays, default=0):>4.0f} s"
                        + ("!" if bad else " ")
                    )
                name = backend_for.__name__.removesuffix("_backend")
                print(f"{name:<11} {delay:>5g}  {label:<36} " + "  ".join(f"{c:>18}" for c in cells), flush=True)


def what_if() -> None:
    """HubSpot calls and 429s under other queue settings and flusher policies (`python bench/crm_load.py
    --what-if`; ~60 s)."""
    workload = build_workload()
    source = crm_queue_source()
    minimum = minimum_calls(workload, HUBSPOT_LIMIT)
    print(f"{'setting':<58} {'calls':>6} {'x min':>6} {'429s':>5} {'inv':>4} {'p50 s':>6} {'max s':>6} stale")
    for label, backend_for, batch, window, first, most, timeout in WHAT_IF:
        changed = (
            dataclasses.replace(
                source, batch_size=batch, window_s=window, timeout_s=timeout, visibility_timeout_s=6 * timeout + window
            )
            if batch
            else source
        )
        run = run_load(workload, backend_for, changed, first or None, most or None)
        delays = [d for i in run.invocations for d in i.flush_delays]
        print(
            f"{label:<58} {len(run.sent):>6} {len(run.sent) / minimum:>6.2f} "
            f"{sum(s.status == 429 for s in run.sent):>5} {len(run.invocations):>4} {_percentile(delays, 0.5):>6.1f} "
            f"{max(delays, default=0.0):>6.1f} {run.checks.get('stale_records', 0)}"
        )
    for label, delay, policy in FLUSHER_WHAT_IF:
        run = run_load(workload, hubspot_backend, source, flusher=flusher_source(delay, **policy))
        print(
            f"{label:<58} {len(run.sent):>6} {len(run.sent) / minimum:>6.2f} "
            f"{sum(s.status == 429 for s in run.sent):>5} {len(run.flushes):>4} {_percentile(run.delays, 0.5):>6.1f} "
            f"{max(run.delays, default=0.0):>6.1f} {run.checks.get('stale_records', 0)}"
        )


if __name__ == "__main__":
    from bench.run import print_table

    if "--what-if" in sys.argv:
        what_if()
    elif "--sweep" in sys.argv:  # e.g. --sweep 30,45,60,120
        sweep([float(d) for d in sys.argv[sys.argv.index("--sweep") + 1].split(",")])
    elif "--flusher-delays" in sys.argv:  # e.g. --flusher-delays 30,60,90,120: find the smallest that meets the goals
        chosen = [float(d) for d in sys.argv[sys.argv.index("--flusher-delays") + 1].split(",")]
        print_table(bench_crm_load(flush_delays=chosen, alternatives=()))
    else:
        print_table(bench_crm_load())
