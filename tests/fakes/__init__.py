"""Fast, faithful in-memory fakes of crmsync's stores, queues, bus and CRM, for suites too big for moto.

Each store fake has the real class's public methods with the same semantics (proven against the real store on
moto by tests/integration/test_fakes_contract.py) and `as_store()`, which types it as the real class:

    clock = FakeClock()
    state, receipts, archive = MemoryState(), MemoryReceipts(), MemoryArchive(clock=clock)
    ingest_queue = SqsSimulator.from_template("IngestQueue", seed=1, clock=clock)
    crm_queue = SqsSimulator.from_template("CrmQueue", seed=2, clock=clock)
    bus = MemoryBus(clock=clock)
    bus.route_crm_queue(crm_queue)
    crm = FaultyCrm(seed=3, rate_limited=0.05, server_error=0.02, timeout=0.02, effect_then_timeout=0.02)
    IngestDeps(receipts=receipts.as_store(), archive=archive.as_store(), queue=ingest_queue.as_store(), ...)
    ConvertDeps(archive=archive.as_store(), state=state.as_store(), bus=bus.as_store())
    WriterDeps(state=state.as_store(), crm=crm, mapping=...)
    ingest_queue.drain(handler)  # handler(batch of QueueMessage) -> failed message ids, as Lambda's poller

Faults: `Faults(seed, before={...}, after={...})` given to any store fake fails "<fake>.<method>" operations with
InjectedStoreError (a StoreError), before or after the effect; FaultyCrm has its own rates and raises what the CRM
adapters raise (crmsync.crm.errors). tests/unit/test_fakes_pipeline.py drives the real functions through all of it.
"""

from crmsync.crm.errors import CrmError
from tests.fakes.archive import MemoryArchive
from tests.fakes.bus import MemoryBus, matches
from tests.fakes.crm import (
    CrmBadRequest,
    CrmCall,
    CrmNotFound,
    CrmRateLimited,
    CrmRecord,
    CrmServerError,
    CrmTimeout,
    FaultKind,
    FaultyCrm,
)
from tests.fakes.faults import FakeClock, Faults, InjectedStoreError
from tests.fakes.receipts import MemoryReceipts
from tests.fakes.sqs import DrainReport, QueuedMessage, SqsSimulator, receive_count
from tests.fakes.state import MemoryState, version_guard_allows

__all__ = [
    "CrmBadRequest",
    "CrmCall",
    "CrmError",
    "CrmNotFound",
    "CrmRateLimited",
    "CrmRecord",
    "CrmServerError",
    "CrmTimeout",
    "DrainReport",
    "FakeClock",
    "FaultKind",
    "Faults",
    "FaultyCrm",
    "InjectedStoreError",
    "MemoryArchive",
    "MemoryBus",
    "MemoryReceipts",
    "MemoryState",
    "QueuedMessage",
    "SqsSimulator",
    "matches",
    "receive_count",
    "version_guard_allows",
]
