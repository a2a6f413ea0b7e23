"""Privacy-queue consumer: erasure.requested (a person, or a whole shop) and data.requested (an export), each record
through crmsync.erasure with partial batch failures; a record that fails its last allowed attempt goes to the privacy
DLQ with its error (crmsync.failures). Every step is idempotent, so a retried record resumes where it stopped."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.erasure import PrivacyDeps, handle
from crmsync.failures import SqsRecord, dead_letterer, log_failure
from crmsync.messages import DomainEvent
from crmsync.observability import logger, metrics
from crmsync.settings import Settings
from crmsync.store.archive import RawArchive
from crmsync.store.queue import Queue
from crmsync.store.receipts import ReceiptStore
from crmsync.store.state import StateStore

TIME_RESERVE_SECONDS = 2.0
processor = BatchProcessor(event_type=EventType.SQS, raise_on_entire_batch_failure=False)


def deps(settings: Settings, context: LambdaContext | None = None) -> PrivacyDeps:
    from crmsync.crm.backends import crm_for
    from crmsync.mapping import load_mapping

    time_left = (lambda: context.get_remaining_time_in_millis() / 1000 - TIME_RESERVE_SECONDS) if context else None
    contacts = load_mapping(settings.mapping).contacts
    queue = Queue(settings.privacy_queue_url) if settings.privacy_queue_url else None
    return PrivacyDeps(
        state=StateStore(settings.state_table),
        archive=RawArchive(settings.archive_bucket),
        receipts=ReceiptStore(settings.receipts_table),
        crm=lambda: crm_for(settings, time_left=time_left),
        crm_backend=settings.crm_backend,
        crm_action=settings.erasure_crm_action,
        # Anonymising clears every mapped contact property but the external id (crmsync's own, not personal).
        contact_properties=[name for name, rule in contacts.properties.items() if rule.path != "external_id"],
        fan_out=queue.send if queue is not None else None,
    )


def parse(body: str) -> tuple[str, DomainEvent]:
    """(detail type, event) of a privacy-queue message: an EventBridge envelope, as the bus and the API send it."""
    envelope = json.loads(body)
    return str(envelope["detail-type"]), DomainEvent.model_validate(envelope["detail"])


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    settings = Settings.from_env()
    privacy_deps = deps(settings, context)
    failures = dead_letterer(settings, source_queue_url=settings.privacy_queue_url, dlq_url=settings.privacy_dlq_url)

    def handle_record(record: SQSRecord) -> None:
        try:
            detail_type, request = parse(record.body)
        except (ValueError, KeyError, TypeError) as exc:
            log_failure("not a privacy request", exc, message_id=record.message_id)
            raise
        try:
            outcome = handle(detail_type, request, privacy_deps)
        except Exception as exc:
            log_failure("privacy request failed", exc, detail_type=detail_type)
            raise
        metrics.add_metric(name="PrivacyRequestsDone", unit="Count", value=1)
        logger.info("privacy request done", detail_type=detail_type, status=outcome.get("status", "written"))

    def record_handler(record: SQSRecord) -> None:
        try:
            handle_record(record)
        except Exception as exc:
            if not failures.handle(SqsRecord.from_lambda(record.raw_event), exc):
                raise

    return process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
