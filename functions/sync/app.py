"""Backfill-queue consumer and reconciliation schedule: each record is a backfill page, an import chunk or a
reconciliation request (crmsync.sync.jobs.handle_message); a scheduled event {"reconcile": {"source"}} runs one
reconciliation (crmsync.sync.reconcile.run). A record failing its last attempt goes to the backfill DLQ with
its error."""

from __future__ import annotations

import uuid
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.deadline import Deadline
from crmsync.failures import SqsRecord, dead_letterer, log_failure
from crmsync.observability import logger, metrics
from crmsync.settings import Settings
from crmsync.sync.jobs import handle_message
from crmsync.sync.wiring import crm_queue_sender, state_keys, sync_deps

processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)
RESERVE_SECONDS = 20.0


def reconcile(settings: Settings, context: LambdaContext, source: str, run_id: str, full: bool) -> dict[str, Any]:
    from crmsync.crm.backends import crm_for
    from crmsync.mapping import load_mapping
    from crmsync.sync.reconcile import ReconcileDeps, run

    deps = sync_deps(settings)
    remaining = context.get_remaining_time_in_millis() / 1000 - RESERVE_SECONDS
    reconcile_deps = ReconcileDeps(
        sync=deps, crm=crm_for(settings), mapping=load_mapping(settings.mapping, backend=settings.crm_backend),
        repair_crm=crm_queue_sender(settings), known_keys=state_keys(deps.state), deadline=Deadline(max(remaining, 1)),
    )  # fmt: skip
    return run(source, reconcile_deps, run_id=run_id, full=full)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> Any:
    settings = Settings.from_env()
    if "reconcile" in event:  # the EventBridge schedule of one source
        source = str(event["reconcile"].get("source", ""))
        return reconcile(settings, context, source, f"rc_{uuid.uuid4().hex[:20]}", False)["status"]
    deps = sync_deps(settings)
    failures = dead_letterer(settings, source_queue_url=settings.backfill_queue_url, dlq_url=settings.backfill_dlq_url)

    def on_reconcile(message: dict[str, Any]) -> None:
        reconcile(settings, context, str(message["source"]), str(message["run_id"]), bool(message.get("full")))

    def record_handler(record: SQSRecord) -> None:
        try:
            handle_message(record.body, deps, on_reconcile)
        except Exception as exc:
            log_failure("sync message failed", exc, message_id=record.message_id)
            if not failures.handle(SqsRecord.from_lambda(record.raw_event), exc):
                raise

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
