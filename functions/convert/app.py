"""Ingest-queue consumer: each record -> crmsync.convert.convert_message, with partial batch failures."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.convert import ConvertDeps, convert_message
from crmsync.fx import reporting_for
from crmsync.messages import IngestMessage
from crmsync.observability import logger, metrics
from crmsync.settings import Settings
from crmsync.store.archive import RawArchive
from crmsync.store.bus import EventBus
from crmsync.store.state import StateStore

processor = BatchProcessor(event_type=EventType.SQS)


def deps(settings: Settings) -> ConvertDeps:
    return ConvertDeps(
        archive=RawArchive(settings.archive_bucket),
        state=StateStore(settings.state_table),
        bus=EventBus(settings.event_bus_name),
        reporting=reporting_for(settings),
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    convert_deps = deps(Settings.from_env())

    def record_handler(record: SQSRecord) -> None:
        message = IngestMessage.model_validate_json(record.body)
        logger.append_keys(receipt_id=message.receipt_id, correlation_id=message.correlation_id)
        try:
            published = convert_message(message, convert_deps)
        except Exception:
            logger.exception("conversion failed", source=message.source, topic=message.topic)
            raise
        metrics.add_metric(name="EventsPublished", unit="Count", value=len(published))

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
