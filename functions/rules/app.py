"""Rules-queue consumer: each domain event -> crmsync.rules.automation.handle_event (aggregates, risk, rules, CRM
actions), with partial batch failures; a record that fails its last allowed attempt goes to the rules DLQ with its
error (crmsync.failures). Publishes automation efficiency per rule (dimension rule_id)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.typing import LambdaContext

from crmsync.failures import SqsRecord, dead_letterer
from crmsync.messages import DomainEvent
from crmsync.observability import logger, metrics
from crmsync.settings import Settings

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
    from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

    from crmsync.rules.automation import AutomationDeps, Outcome

processor = BatchProcessor(event_type=EventType.SQS)


# Seconds kept back from the Lambda's timeout: the CRM adapter stops waiting on rate limits before this.
TIME_RESERVE_SECONDS = 2.0


def deps(settings: Settings, context: LambdaContext | None = None) -> AutomationDeps:
    """The rules' collaborators; the CRM adapter is the one CRM_BACKEND names, as the CRM writer's."""
    from crmsync.crm.backends import crm_for
    from crmsync.mapping import load_mapping
    from crmsync.rules.automation import RULES_SOURCE, AutomationDeps, Reader
    from crmsync.rules.config import load_rules
    from crmsync.rules.properties import check_rule_properties
    from crmsync.store.aggregates import AggregateStore
    from crmsync.store.bus import EventBus
    from crmsync.store.decisions import DecisionStore
    from crmsync.store.state import StateStore

    time_left = (lambda: context.get_remaining_time_in_millis() / 1000 - TIME_RESERVE_SECONDS) if context else None
    mapping, rules = load_mapping(settings.mapping), load_rules(settings.rules)
    check_rule_properties(rules, mapping)  # every property a rule writes has its name in this backend
    return AutomationDeps(
        reader=Reader(
            state=StateStore(settings.state_table),
            aggregates=AggregateStore(settings.state_table),
            decisions=DecisionStore(settings.state_table),
            mapping=mapping,
            reporting_currency=settings.reporting_currency,
        ),
        crm=crm_for(settings, time_left=time_left),
        bus=EventBus(settings.event_bus_name, source=RULES_SOURCE),
        rules=rules,
    )


def publish_efficiency(outcomes: list[Outcome]) -> None:
    """E = actions taken automatically / events seen, per rule, with the two counts it is made of."""
    from aws_lambda_powertools.metrics import MetricUnit, single_metric

    from crmsync.rules.automation import summarise

    for rule_id, (seen, actions) in sorted(summarise(outcomes).items()):
        for name, unit, value in (
            ("RuleEventsSeen", MetricUnit.Count, float(seen)),
            ("RuleActionsTaken", MetricUnit.Count, float(actions)),
            ("AutomationEfficiency", MetricUnit.NoUnit, actions / seen if seen else 0.0),
        ):
            with single_metric(name=name, unit=unit, value=value) as metric:
                metric.add_dimension(name="rule_id", value=rule_id)


@logger.inject_lambda_context
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    from crmsync.rules.automation import handle_event

    settings = Settings.from_env()
    failures = dead_letterer(settings, source_queue_url=settings.rules_queue_url, dlq_url=settings.rules_dlq_url)
    outcomes: list[Outcome] = []
    configured: list[AutomationDeps] = []

    def record_handler(record: SQSRecord) -> None:
        try:
            envelope = json.loads(record.body)
            detail_type, domain_event = str(envelope["detail-type"]), DomainEvent.model_validate(envelope["detail"])
            logger.append_keys(receipt_id=domain_event.receipt_id, correlation_id=domain_event.correlation_id)
            if not configured:  # a bad rule file fails every record with its reason (file, rule id, what is wrong)
                configured.append(deps(settings, context))
            outcomes.append(handle_event(detail_type, domain_event, configured[0]))
        except Exception as exc:
            logger.exception("rules failed", message_id=record.message_id)
            if not failures.handle(SqsRecord.from_lambda(record.raw_event), exc):
                raise  # reported failed: SQS delivers it again after the backoff
        finally:
            logger.remove_keys(["receipt_id", "correlation_id"])

    answer = process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
    publish_efficiency(outcomes)
    return answer
