"""The whole pipeline on the in-memory fakes (tests/fakes), driven the way AWS drives it, with faults injected.

Senders deliver every webhook (redeliveries and all) to crmsync.ingest.accept_webhook and retry what is not answered
2xx, as Shopify, WooCommerce, Stripe and PayPal do. The real Lambda handlers of convert and the CRM writer consume
the simulated SQS queues (partial batch responses, redelivery after the visibility timeout, the last attempt
dead-lettered with its error by crmsync.failures), with only their AWS clients swapped for fakes. The bus routes
by the CrmEventsRule of template.yaml. The CRM answers 429, 5xx and timeouts, some after applying the write.

A "buggy release" of the Shopify converter crashes on orders named with scenario.BUG_MARK: those webhooks must end
in the ingest DLQ with their error, and once the bug is fixed, a redrive through crmsync.dlq must convert them.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from unittest import mock

from convert import app as convert_app
from crm_writer import app as writer_app
from crmsync import dlq, webhooks
from crmsync.convert import ConvertDeps
from crmsync.failures import ERROR_TYPE, DeadLetterer, RetryPolicy
from crmsync.ingest import IngestDeps, WebhookRequest, accept_webhook
from crmsync.mapping import load_mapping
from crmsync.observability import logger
from crmsync.sources import shopify
from crmsync.sources.paypal import PayPalWebhooks, clear_certificate_cache
from crmsync.writer import WriterDeps
from tests.fakes import (
    FakeClock,
    Faults,
    FaultyCrm,
    MemoryArchive,
    MemoryBus,
    MemoryReceipts,
    MemoryState,
    SqsSimulator,
)
from tests.faults import scenario
from tests.faults.scenario import Delivery, World

SECRETS = {
    "shopify_secret_id": [scenario.SHOPIFY_SECRET],
    "woocommerce_secret_id": [scenario.WOO_SECRET],
    "stripe_secret_id": [scenario.STRIPE_SECRET],
    "paypal_secret_id": [scenario.PAYPAL_WEBHOOK_ID],
}
MAX_SENDER_ATTEMPTS = 20  # senders retry for hours; here every retry comes after all first attempts


@dataclass(frozen=True)
class FaultRates:
    # Rates of failures that got past botocore's own retries (which absorb most throttling and 5xx): a CRM batch
    # of 50 events makes ~300 state calls, so even 0.1% fails a quarter of the batches at least once.
    state_before: float = 0.001  # a DynamoDB call fails before it did anything
    state_after: float = 0.0005  # ... or after it was applied (the caller sees an error anyway)
    bus: float = 0.02  # PutEvents fails
    archive: float = 0.01  # S3 put/get fails (ingest answers 503, convert retries)
    receipts: float = 0.01
    # Per CRM request, after the adapter's own retries (crm/hubspot.py retries 5xx, timeouts and 10-second 429s):
    # the writer flushes 50 events in a handful of requests, so these fail about one batch in ten.
    crm_rate_limited: float = 0.02
    crm_server_error: float = 0.01
    crm_timeout: float = 0.01
    crm_effect_then_timeout: float = 0.01


# A CRM having a bad hour: a third of the batches fail, and some events run out of their eight attempts.
CRM_STORM = FaultRates(crm_rate_limited=0.12, crm_server_error=0.08, crm_timeout=0.05, crm_effect_then_timeout=0.08)


NO_FAULTS = FaultRates(0, 0, 0, 0, 0, 0, 0, 0, 0)


@dataclass
class Report:
    events: int = 0  # distinct webhook events (versions count separately)
    deliveries: int = 0  # sender POSTs, first attempts and redeliveries
    duplicates_delivered: int = 0  # deliveries of an event already delivered
    sender_retries: int = 0  # deliveries repeated because crmsync did not answer 2xx
    answers: Counter[int] = field(default_factory=Counter)
    faults: Counter[str] = field(default_factory=Counter)
    poison_crashes: int = 0
    dead_lettered: dict[str, int] = field(default_factory=dict)
    redriven: int = 0
    dead_lettered_errors: Counter[str] = field(default_factory=Counter)  # error type attached to DLQ messages
    deals_before_fix: set[str] = field(default_factory=set)  # crmsync_external_id of every deal before the redrive
    seconds: float = 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "deliveries": self.deliveries,
            "duplicates_delivered": self.duplicates_delivered,
            "sender_retries": self.sender_retries,
            "answers": dict(sorted(self.answers.items())),
            "faults_injected": dict(sorted(self.faults.items())),
            "poison_crashes": self.poison_crashes,
            "dead_lettered": self.dead_lettered,
            "dead_lettered_errors": dict(self.dead_lettered_errors),
            "redriven": self.redriven,
            "seconds": round(self.seconds, 1),
        }


class LambdaContext:
    """What the handlers read of a Lambda context."""

    function_name = "fault-suite"
    memory_limit_in_mb = 512
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:fault-suite"
    aws_request_id = "fault-suite"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000


class Pipeline:
    def __init__(self, seed: int, rates: FaultRates = NO_FAULTS) -> None:
        self.clock = FakeClock()
        self.state_faults = Faults(
            seed, before={"state.*": rates.state_before}, after={"state.put_versioned": rates.state_after}
        )
        self.state = MemoryState(faults=self.state_faults)
        self.receipts = MemoryReceipts(faults=Faults(seed + 1, before={"*": rates.receipts}))
        self.archive_faults = Faults(seed + 2, before={"*": rates.archive})
        self.archive = MemoryArchive(clock=self.clock, faults=self.archive_faults)
        self.ingest_queue = SqsSimulator.from_template("IngestQueue", seed=seed + 3, clock=self.clock)
        self.crm_queue = SqsSimulator.from_template("CrmQueue", seed=seed + 4, clock=self.clock)
        self.bus_faults = Faults(seed + 5, before={"bus.publish": rates.bus})
        self.bus = MemoryBus(clock=self.clock, seed=seed + 6, faults=self.bus_faults)
        self.bus.route_crm_queue(self.crm_queue)
        self.crm = FaultyCrm(
            seed=seed + 7,
            rate_limited=rates.crm_rate_limited,
            server_error=rates.crm_server_error,
            timeout=rates.crm_timeout,
            effect_then_timeout=rates.crm_effect_then_timeout,
        )
        self.mapping = load_mapping("default")
        self.context = LambdaContext()
        self.poison_crashes = 0

    # --- the functions, on fakes ------------------------------------------------------------------------------
    def ingest_deps(self) -> IngestDeps:
        return IngestDeps(
            receipts=self.receipts.as_store(),
            archive=self.archive.as_store(),
            queue=self.ingest_queue.as_store(),
            secrets=lambda name: SECRETS[name],
            clock=self.clock,
        )

    def _dead_letterer(self, queue: SqsSimulator) -> DeadLetterer:
        assert queue.dlq is not None
        return DeadLetterer(
            dlq=queue.dlq.as_store(),
            source=queue.as_store(),
            policy=RetryPolicy(max_receive_count=queue.max_receive_count or 5),
            clock=lambda: datetime.fromtimestamp(self.clock.now, UTC),
        )

    @contextmanager
    def wired(self, paypal_pem: bytes, *, buggy_shopify: bool) -> Iterator[None]:
        """The handlers' AWS clients swapped for the fakes (and, optionally, the buggy Shopify converter)."""
        convert_deps = ConvertDeps(
            archive=self.archive.as_store(), state=self.state.as_store(), bus=self.bus.as_store()
        )
        writer_deps = WriterDeps(state=self.state.as_store(), crm=self.crm, mapping=self.mapping)
        real_order = shopify.order_to_canonical

        def buggy_order(order: shopify.ShopifyOrder, *, receipt_id: str) -> Any:
            if order.name.startswith(scenario.BUG_MARK):
                self.poison_crashes += 1
                raise ValueError(f"release 1.4.2 cannot convert order {order.name}")
            return real_order(order, receipt_id=receipt_id)

        clear_certificate_cache()
        with ExitStack() as stack:
            for module, name, value in (
                (convert_app, "deps", convert_deps),
                (writer_app, "deps", writer_deps),
                (convert_app, "dead_letterer", self._dead_letterer(self.ingest_queue)),
                (writer_app, "dead_letterer", self._dead_letterer(self.crm_queue)),
            ):
                stack.enter_context(mock.patch.object(module, name, return_value=value))
            stack.enter_context(
                mock.patch.dict(webhooks.SOURCES, {"paypal": PayPalWebhooks(fetch_cert=lambda _url: paypal_pem)})
            )
            if buggy_shopify:
                stack.enter_context(mock.patch.object(shopify, "order_to_canonical", buggy_order))
            previous = logger.log_level
            logger.setLevel("CRITICAL")  # thousands of injected failures: the report says what happened
            try:
                yield
            finally:
                logger.setLevel(previous)

    # --- driving ----------------------------------------------------------------------------------------------
    def deliver_all(self, plan: list[Delivery], paypal_key: Any, report: Report) -> None:
        """Every delivery of the plan; what is not answered 2xx is delivered again later, as senders do."""
        seen: set[str] = set()
        pending = [(delivery, 1) for delivery in plan]
        while pending:
            retry: list[tuple[Delivery, int]] = []
            for delivery, attempt in pending:
                report.deliveries += 1
                if attempt == 1 and delivery.event in seen:
                    report.duplicates_delivered += 1
                seen.add(delivery.event)
                headers = {
                    k.lower(): v for k, v in scenario.sign_for_delivery(delivery, paypal_key, self.clock.now).items()
                }
                request = WebhookRequest(source=delivery.source, headers=headers, body=delivery.body)
                try:
                    status = accept_webhook(request, self.ingest_deps()).status
                except Exception:  # what functions/ingest/app.py answers when storing failed (claim released)
                    status = 503
                report.answers[status] += 1
                if status >= 300:
                    if attempt >= MAX_SENDER_ATTEMPTS:
                        raise AssertionError(f"{delivery.event} never accepted: {status}")
                    report.sender_retries += 1
                    retry.append((delivery, attempt + 1))
            self.clock.advance(61)  # a held claim (a crashed ingest) expires before the sender's retry
            pending = retry

    def drain(self) -> None:
        """Both queues until empty (the CRM queue fills while convert runs)."""
        convert = self.ingest_queue.lambda_adapter(convert_app.lambda_handler, self.context)
        write = self.crm_queue.lambda_adapter(writer_app.lambda_handler, self.context)
        while self.ingest_queue.messages() or self.crm_queue.messages():
            self.ingest_queue.drain(convert)
            self.crm_queue.drain(write, batch_size=50)

    def redrive(self, report: Report) -> None:
        for name, queue in (("ingest-dlq", self.ingest_queue), ("crm-dlq", self.crm_queue)):
            assert queue.dlq is not None
            target = dlq.DeadLetterQueue(name, queue.dlq.as_store(), name.removesuffix("-dlq"), queue.as_store())
            while True:
                result = dlq.redrive(target, max_messages=1000)
                report.redriven += len(result.redriven)
                if not result.more:
                    break

    def faults_injected(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for name, faults in (
            ("state", self.state_faults),
            ("archive", self.archive_faults),
            ("bus", self.bus_faults),
            ("receipts", self.receipts.faults),
        ):
            if faults is not None:
                counts[name] += faults.total
        for kind, n in self.crm.faults_injected.items():
            counts[f"crm {kind}"] += n
        return counts


def run(
    world: World, plan: list[Delivery], *, seed: int, rates: FaultRates, paypal: tuple[bytes, Any]
) -> tuple[Pipeline, Report, list[str]]:
    """Deliver and drain with the buggy release; then deploy the fix and redrive until the DLQs are empty (an
    operator's loop: a record that ran out of attempts on injected faults is redriven too). Returns the pipeline,
    the report and the bodies the ingest DLQ held before the fix."""
    started = time.perf_counter()
    pipeline, report = Pipeline(seed, rates), Report(events=len(world.deliveries))
    pem, key = paypal
    with pipeline.wired(pem, buggy_shopify=bool(world.poisoned)):
        pipeline.deliver_all(plan, key, report)
        pipeline.drain()
    ingest_dlq, crm_dlq = pipeline.ingest_queue.dlq, pipeline.crm_queue.dlq
    assert ingest_dlq is not None
    assert crm_dlq is not None
    before_fix = [message.body for message in ingest_dlq.messages()]
    report.dead_lettered_errors = Counter(
        str(attribute.value) if (attribute := message.message_attributes.get(ERROR_TYPE)) else "none"
        for message in ingest_dlq.messages()
    )
    report.dead_lettered = {"ingest": len(before_fix), "crm": len(crm_dlq.messages())}
    report.poison_crashes = pipeline.poison_crashes
    report.deals_before_fix = {r.properties["crmsync_external_id"] for r in pipeline.crm.records("deals")}
    with pipeline.wired(pem, buggy_shopify=False):  # the fix is deployed
        for _ in range(5):
            if not ingest_dlq.messages() and not crm_dlq.messages():
                break
            pipeline.redrive(report)
            pipeline.drain()
    report.faults = pipeline.faults_injected()
    report.seconds = time.perf_counter() - started
    return pipeline, report, before_fix
