"""The CRM flusher (CRM_FLUSH_DELAY_SECONDS > 0): on its schedule, or invoked on demand, writes the entities the CRM
writer marked dirty once they have been dirty for the delay, coalesced, in full CRM batches (crmsync.flusher).
`{"all": true}` writes every dirty entity whatever its age (but those waiting out a failed attempt's backoff): to
catch up now, e.g. after turning the delay off."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.crm.backends import crm_for
from crmsync.failures import dead_letterer
from crmsync.flusher import FlusherDeps, FlushPolicy, flush
from crmsync.mapping import load_mapping
from crmsync.observability import logger, metrics
from crmsync.settings import Settings
from crmsync.store.dirty import DirtyStore
from crmsync.store.state import StateStore
from crmsync.writer import WriterDeps

# Seconds kept back from the Lambda's timeout: the CRM adapter stops waiting on rate limits before this.
TIME_RESERVE_SECONDS = 2.0


def deps(settings: Settings, context: LambdaContext) -> FlusherDeps:
    """The flusher's collaborators: the CRM writer's (state, CRM adapter, mapping), the dirty set, the CRM DLQ."""

    def time_left() -> float:
        return context.get_remaining_time_in_millis() / 1000 - TIME_RESERVE_SECONDS

    writer = WriterDeps(
        state=StateStore(settings.state_table),
        crm=crm_for(settings, time_left=time_left),
        mapping=load_mapping(settings.mapping, backend=settings.crm_backend),
    )
    return FlusherDeps(
        writer=writer,
        dirty=DirtyStore(settings.state_table),
        failures=dead_letterer(settings, source_queue_url="", dlq_url=settings.crm_dlq_url),
        time_left=time_left,
        source_queue=settings.crm_queue_url.rsplit("/", 1)[-1],  # where a redrive of the CRM DLQ sends it
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    settings = Settings.from_env()
    # A wrong mapping or missing CRM credentials fail the invocation (its DLQ, its error metric); the dirty
    # entities wait, as they are, for the configuration to be fixed.
    report = flush(deps(settings, context), FlushPolicy.from_settings(settings), everything=bool(event.get("all")))
    metrics.add_metric(name="CrmEntitiesFlushed", unit="Count", value=report.written)  # DeadLettered: crmsync.failures
    return report.as_json()
