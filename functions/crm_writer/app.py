"""CRM-queue consumer: a batch of domain events -> crmsync.writer.write_events, in one CRM flush; a record that
fails its last allowed attempt goes to the CRM DLQ with its error (crmsync.failures). With CRM_FLUSH_DELAY_SECONDS
> 0 the entities the events touch are marked dirty instead, for the flusher (crmsync.flusher) to write."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.crm.backends import crm_for
from crmsync.failures import DeadLetterer, SqsRecord, dead_letterer, log_failure
from crmsync.mapping import load_mapping
from crmsync.messages import DomainEvent
from crmsync.observability import logger, metrics
from crmsync.settings import Settings
from crmsync.store.dirty import DirtyStore
from crmsync.store.state import StateStore
from crmsync.writer import WriterDeps, write_events

# Seconds kept back from the Lambda's timeout: the CRM adapter stops waiting on rate limits before this.
TIME_RESERVE_SECONDS = 2.0


def deps(settings: Settings, context: LambdaContext | None = None) -> WriterDeps:
    """The writer's collaborators; with a context, the CRM adapter waits on rate limits only while there is time."""
    time_left = (lambda: context.get_remaining_time_in_millis() / 1000 - TIME_RESERVE_SECONDS) if context else None
    return WriterDeps(
        state=StateStore(settings.state_table),
        crm=crm_for(settings, time_left=time_left),
        mapping=load_mapping(settings.mapping, backend=settings.crm_backend),
    )


def dirty_store(settings: Settings) -> DirtyStore:
    """Where the entities to flush are marked (CRM_FLUSH_DELAY_SECONDS > 0)."""
    return DirtyStore(settings.state_table)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Hand-written instead of Powertools' BatchProcessor: the whole batch is flushed to the CRM in one set
    # of batch calls, which a per-record handler cannot express.
    settings = Settings.from_env()
    failures = dead_letterer(settings, source_queue_url=settings.crm_queue_url, dlq_url=settings.crm_dlq_url)
    records = [SqsRecord.from_lambda(raw) for raw in event.get("Records") or []]
    parsed: list[tuple[SqsRecord, DomainEvent]] = []
    failed: list[str] = []
    for record in records:
        try:
            parsed.append((record, DomainEvent.model_validate(json.loads(record.body)["detail"])))
        except (ValueError, KeyError, TypeError) as exc:
            log_failure("not a domain event", exc, message_id=record.message_id)
            if not failures.handle(record, exc):
                failed.append(record.message_id)
    if parsed and settings.crm_flush_delay_seconds > 0:
        parsed = _defer(parsed, settings, failures, failed)
    if parsed:
        try:
            writer_deps = deps(settings, context)
        except Exception as exc:  # e.g. a wrong mapping file: every record fails with that reason
            logger.exception("crm writer not configured", events=len(parsed))
            failed.extend(r.message_id for r, _ in parsed if not failures.handle(r, exc))
            return _answer(failed)
        try:
            write_events([e for _, e in parsed], writer_deps)
        except Exception:
            logger.exception("crm write failed; the batch will be retried", events=len(parsed))
            failed.extend(_after_batch_failure(parsed, writer_deps, failures))
        else:
            metrics.add_metric(name="CrmEventsWritten", unit="Count", value=len(parsed))
    return _answer(failed)


def _defer(
    parsed: list[tuple[SqsRecord, DomainEvent]], settings: Settings, failures: DeadLetterer, failed: list[str]
) -> list[tuple[SqsRecord, DomainEvent]]:
    """Mark the entities the flusher writes dirty (acknowledged only once marked); returns the events to write at
    once (customer.merged, notices: crmsync.flusher). A batch whose marks fail is retried, or dead-lettered on its
    last attempt, as a failed write is."""
    from crmsync.flusher import deferrable, touch_of

    later = [(r, e) for r, e in parsed if deferrable(e)]
    if later:
        try:
            dirty_store(settings).mark([touch_of(e, json.loads(r.body).get("detail-type")) for r, e in later])
        except Exception as exc:
            logger.exception("crm entities not marked dirty; the batch will be retried", events=len(later))
            failed.extend(r.message_id for r, _ in later if not failures.handle(r, exc))
        else:
            metrics.add_metric(name="CrmEventsDeferred", unit="Count", value=len(later))
    return [(r, e) for r, e in parsed if not deferrable(e)]


def _answer(failed: list[str]) -> dict[str, Any]:
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def _after_batch_failure(
    parsed: list[tuple[SqsRecord, DomainEvent]], writer_deps: WriterDeps, failures: DeadLetterer
) -> list[str]:
    """The message ids to report failed after the batch flush failed. Records with attempts left are retried as they
    are. A record on its last attempt is written alone first, so that one poison event in a batch never takes the
    good events of its batch with it into the DLQ: only what fails on its own is dead-lettered, with its own error."""
    failed: list[str] = []
    for record, domain_event in parsed:
        if not failures.policy.is_last_attempt(record.attempts):
            failures.back_off(record)
            failed.append(record.message_id)
            continue
        try:
            write_events([domain_event], writer_deps)
        except Exception as own:
            logger.exception("crm write of a single event failed on its last attempt", message_id=record.message_id)
            if not failures.handle(record, own):
                failed.append(record.message_id)
        else:
            metrics.add_metric(name="CrmEventsWritten", unit="Count", value=1)
    return failed
