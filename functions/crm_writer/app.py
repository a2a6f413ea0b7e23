"""CRM-queue consumer: a batch of domain events -> crmsync.writer.write_events, in one CRM flush."""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.crm.local import LocalCrm
from crmsync.mapping import load_mapping
from crmsync.messages import DomainEvent
from crmsync.observability import logger, metrics
from crmsync.settings import Settings
from crmsync.store.crm_local import LocalCrmTable
from crmsync.store.state import StateStore
from crmsync.writer import WriterDeps, write_events


def deps(settings: Settings) -> WriterDeps:
    return WriterDeps(
        state=StateStore(settings.state_table),
        crm=LocalCrm(LocalCrmTable(settings.crm_local_table)),
        mapping=load_mapping(settings.mapping),
    )


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Hand-written instead of Powertools' BatchProcessor: the whole batch is flushed to the CRM in one set
    # of batch calls, which a per-record handler cannot express.
    records = event.get("Records") or []
    parsed: list[tuple[str, DomainEvent]] = []
    failures: list[dict[str, str]] = []
    for record in records:
        try:
            envelope = json.loads(record["body"])
            parsed.append((record["messageId"], DomainEvent.model_validate(envelope["detail"])))
        except (ValueError, KeyError, TypeError):
            logger.exception("not a domain event", message_id=record.get("messageId"))
            failures.append({"itemIdentifier": record["messageId"]})
    if parsed:
        try:
            write_events([e for _, e in parsed], deps(Settings.from_env()))
        except Exception:
            logger.exception("crm write failed; the batch will be retried", events=len(parsed))
            failures.extend({"itemIdentifier": message_id} for message_id, _ in parsed)
        else:
            metrics.add_metric(name="CrmEventsWritten", unit="Count", value=len(parsed))
    return {"batchItemFailures": failures}
