"""Ingest-queue consumer: each record -> crmsync.convert.convert_message, with partial batch failures; a record that
fails its last allowed attempt goes to the ingest DLQ with its error (crmsync.failures)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.convert import ConvertDeps, convert_message
from crmsync.failures import SqsRecord, dead_letterer, log_failure
from crmsync.fx import reporting_for
from crmsync.messages import IngestMessage
from crmsync.observability import logger, metrics
from crmsync.settings import Settings
from crmsync.store.archive import RawArchive
from crmsync.store.bus import EventBus
from crmsync.store.state import StateStore
from crmsync.store.sync_jobs import SyncStore

# A batch whose every record failed is answered like any other (each record reported failed), not raised as an
# invocation error: the backoff set per record then holds, and the function's error metric means a crash.
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def deps(settings: Settings) -> ConvertDeps:
    return ConvertDeps(
        archive=RawArchive(settings.archive_bucket),
        state=StateStore(settings.state_table),
        bus=EventBus(settings.event_bus_name),
        reporting=reporting_for(settings),
        stripe_customer_deleted=settings.stripe_customer_deleted,
        # Deletions told by webhooks (GONE#<source>): reconciliation skips them; no sync table, nothing recorded.
        sync=SyncStore(settings.sync_table) if settings.sync_table else None,
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings = Settings.from_env()
    convert_deps = deps(settings)
    failures = dead_letterer(settings, source_queue_url=settings.ingest_queue_url, dlq_url=settings.ingest_dlq_url)

    def convert_record(record: SQSRecord) -> None:
        try:
            message = IngestMessage.model_validate_json(record.body)
        except ValueError as exc:
            log_failure("not an ingest message", exc, message_id=record.message_id)
            raise
        logger.append_keys(receipt_id=message.receipt_id, correlation_id=message.correlation_id)
        try:
            published = convert_message(message, convert_deps)
        except Exception as exc:
            log_failure("conversion failed", exc, source=message.source, topic=message.topic)
            raise
        metrics.add_metric(name="EventsPublished", unit="Count", value=len(published))

    def record_handler(record: SQSRecord) -> None:
        try:
            convert_record(record)
        except Exception as exc:
            if not failures.handle(SqsRecord.from_lambda(record.raw_event), exc):
                raise  # reported failed: SQS delivers it again after the backoff
        finally:
            logger.remove_keys(["receipt_id", "correlation_id"])

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
