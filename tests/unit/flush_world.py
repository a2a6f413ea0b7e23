"""A small world for the CRM flusher's tests, on the in-memory fakes: Shopify orders converted for real and written
to MemoryState as crmsync.convert writes them, the domain events convert publishes, the CRM writer's dirty marks
(what functions/crm_writer does with CRM_FLUSH_DELAY_SECONDS > 0), and the flusher over FaultyCrm with the CRM DLQ
as an SqsSimulator."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from crmsync.convert import epoch_ms
from crmsync.failures import DeadLetterer, RetryPolicy
from crmsync.flusher import FlusherDeps, FlushPolicy, FlushReport, flush, touch_of
from crmsync.mapping import load_mapping
from crmsync.messages import DomainEvent
from crmsync.sources.shopify import ShopifyWebhooks
from crmsync.store.state import Versioned
from crmsync.writer import WriterDeps
from tests.conftest import EVENTS
from tests.fakes import FakeClock, FaultyCrm, MemoryState, SqsSimulator
from tests.fakes.dirty import MemoryDirty

TEMPLATE = json.loads((EVENTS / "payloads" / "shopify-orders-create.json").read_text())
DELAY = 120.0
MAX_ATTEMPTS = 3
BACKOFF = 15
TOPICS = {"pending": "orders/create", "paid": "orders/paid", "fulfilled": "orders/fulfilled"}


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class World:
    clock: FakeClock = field(default_factory=FakeClock)
    state: MemoryState = field(default_factory=MemoryState)
    crm: FaultyCrm = field(default_factory=FaultyCrm)
    dirty: MemoryDirty = field(init=False)
    dlq: SqsSimulator = field(init=False)
    receipts: int = 0

    def __post_init__(self) -> None:
        self.dirty = MemoryDirty(clock=self.clock)
        self.dlq = SqsSimulator("CrmDlq", clock=self.clock, max_receive_count=None)

    # --- the shop and convert -------------------------------------------------------------------
    def order(
        self, order: int, status: str = "pending", *, customer: int | None = None
    ) -> list[tuple[str, DomainEvent]]:
        """One orders/* webhook of `order` by `customer` (default: the order's number), converted and written to
        state as crmsync.convert does, at the clock's time; returns (detail-type, event) as convert publishes."""
        customer = order if customer is None else customer
        self.receipts += 1
        receipt = f"rcpt-{self.receipts:04d}"
        email = f"buyer{customer:03d}@example.com"
        stamp = _iso(self.clock())
        body: dict[str, Any] = {
            **TEMPLATE,
            "id": 7_000_000_000 + order,
            "name": f"#{10_000 + order}",
            "order_number": 10_000 + order,
            "email": email,
            "contact_email": email,
            "updated_at": stamp,
            "financial_status": "paid" if status in ("paid", "fulfilled") else "pending",
            "fulfillment_status": "fulfilled" if status == "fulfilled" else None,
            "customer": {**TEMPLATE["customer"], "id": 6_000_000_000 + customer, "email": email, "updated_at": stamp},
        }
        converted = ShopifyWebhooks().convert(TOPICS[status], json.dumps(body).encode(), receipt_id=receipt)
        assert converted.customer is not None
        detail_type, entity = converted.entities[0]
        customer_id = f"cus_{customer:020x}"
        published: list[tuple[str, DomainEvent]] = []
        source_key = converted.customer.source_id or "-"
        if self.state.put_versioned(
            f"CUSTOMER#{customer_id}",
            f"SRC#shopify#{source_key}",
            Versioned(epoch_ms(converted.customer.source_version), 0, receipt),
            converted.customer.model_dump(mode="json"),
        ):
            published.append(("customer.upserted", self._event("customer", customer_id, customer_id, receipt)))
        if self.state.put_versioned(
            f"ORDER#{entity.external_id}",
            "STATE",
            Versioned(epoch_ms(entity.source_version), entity.rank, receipt),
            entity.model_dump(mode="json"),
            customer_id=customer_id,
        ):
            published.append((detail_type.value, self._event("order", entity.external_id, customer_id, receipt)))
        return published

    def _event(self, entity: str, key: str, customer_id: str, receipt: str) -> DomainEvent:
        return DomainEvent.model_validate(
            {
                "entity": entity,
                "key": key,
                "customer_id": customer_id,
                "source": "shopify",
                "source_id": key.rsplit(":", 1)[-1],
                "source_version": datetime.fromtimestamp(self.clock(), UTC),
                "receipt_id": receipt,
                "correlation_id": receipt,
            }
        )

    # --- the CRM writer (deferred) and the flusher ----------------------------------------------
    def mark(self, published: Sequence[tuple[str, DomainEvent]]) -> None:
        """What the CRM writer does with a batch when CRM_FLUSH_DELAY_SECONDS > 0."""
        self.dirty.mark([touch_of(event, detail_type) for detail_type, event in published])

    def deps(self, *, crm: Any = None) -> FlusherDeps:
        return FlusherDeps(
            writer=WriterDeps(state=self.state.as_store(), crm=crm or self.crm, mapping=load_mapping("default")),
            dirty=self.dirty.as_store(),
            failures=DeadLetterer(
                dlq=self.dlq.as_store(),
                source=None,
                policy=RetryPolicy(max_receive_count=MAX_ATTEMPTS, backoff_seconds=BACKOFF),
                clock=lambda: datetime.fromtimestamp(self.clock(), UTC),
                jitter=lambda: 1.0,
            ),
            clock=self.clock,
            source_queue="CrmQueue",
        )

    def flush(self, *, everything: bool = False, crm: Any = None, **policy: Any) -> FlushReport:
        return flush(self.deps(crm=crm), FlushPolicy(delay_seconds=DELAY, **policy), everything=everything)

    # --- what the CRM shows ---------------------------------------------------------------------
    def deal(self, order: int) -> dict[str, str]:
        record = self.crm.find("deals", "crmsync_external_id", f"shopify:order:{7_000_000_000 + order}")
        assert record is not None, f"no deal for order {order}"
        return record.properties

    def upserted(self, object_type: str) -> list[int]:
        """Sizes of the upsert requests of one object type, in order."""
        return [c.size for c in self.crm.calls if c.method == "upsert" and c.object_type == object_type]

    def expected_deal(self, order: int) -> dict[str, str]:
        """The deal properties the newest stored state of the order maps to."""
        from crmsync.views import order_view

        stored = self.state.get_order(f"shopify:order:{7_000_000_000 + order}")
        assert stored is not None
        return load_mapping("default").deals.apply(order_view(stored.data, stored.customer_id))
