"""Sync collaborators built from Settings: the same for the API (jobs, progress) and the sync function."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from crmsync.messages import DomainEvent
from crmsync.settings import Settings
from crmsync.store.archive import RawArchive
from crmsync.store.errors import StoreError
from crmsync.store.queue import OutgoingMessage, Queue
from crmsync.store.state import StateStore
from crmsync.store.sync_jobs import SyncStore
from crmsync.sync.clients import RateLimiter, SourceClient, SourceCredentials, client_for
from crmsync.sync.jobs import SyncDeps

IMPORT_PREFIX = "imports/"


def credentials(settings: Settings) -> SourceCredentials:
    if settings.source_api_secret_id:
        from aws_lambda_powertools.utilities import parameters  # lazily: it imports boto3

        raw = parameters.get_secret(settings.source_api_secret_id, max_age=settings.secret_max_age_seconds)
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        try:
            values = json.loads(text) if text.strip() else {}
        except ValueError:
            values = {}
        if isinstance(values, dict) and values:
            return SourceCredentials.from_mapping(values)
    return SourceCredentials(
        shopify_shop_domain=settings.shopify_shop_domain,
        shopify_access_token=settings.shopify_access_token.get_secret_value(),
        woocommerce_base_url=settings.woocommerce_base_url,
        woocommerce_consumer_key=settings.woocommerce_consumer_key.get_secret_value(),
        woocommerce_consumer_secret=settings.woocommerce_consumer_secret.get_secret_value(),
        stripe_api_key=settings.stripe_api_key.get_secret_value(),
        paypal_client_id=settings.paypal_client_id,
        paypal_client_secret=settings.paypal_client_secret.get_secret_value(),
        paypal_base_url=settings.paypal_api_base_url,
    )


@lru_cache(maxsize=8)
def _limiter(source: str, rate: float) -> RateLimiter:
    """One limiter per source and warm container, shared by every page it processes."""
    return RateLimiter(rate, burst=max(1, int(rate)))


def clients_for(settings: Settings) -> Any:
    def client(source: str) -> SourceClient:
        made = client_for(source, credentials(settings))
        if settings.source_api_rate:
            made.limiter = _limiter(source, settings.source_api_rate)  # type: ignore[attr-defined]
        return made

    return client


def import_rows(archive: RawArchive) -> Any:
    def rows(job_id: str, chunk: int) -> list[dict[str, Any]]:
        text = archive.get(f"{IMPORT_PREFIX}{job_id}/{chunk:05d}.jsonl").decode()
        return [json.loads(line) for line in text.splitlines() if line.strip()]

    return rows


def sync_deps(settings: Settings) -> SyncDeps:
    archive = RawArchive(settings.archive_bucket)
    return SyncDeps(
        store=SyncStore(settings.sync_table),
        queue=Queue(settings.backfill_queue_url),
        state=StateStore(settings.state_table),
        archive=archive,
        ingest_queue=Queue(settings.ingest_queue_url),
        client=clients_for(settings),
        rows=import_rows(archive),
    )


def crm_queue_sender(settings: Settings) -> Any:
    """CRM repairs as the bus would deliver them to the CRM queue: {"detail-type", "detail"}."""
    from crmsync.sync.reconcile import detail_type

    queue = Queue(settings.crm_queue_url)

    def send(events: list[DomainEvent]) -> None:
        messages = [
            OutgoingMessage(
                str(i),
                json.dumps(
                    {"detail-type": detail_type(e), "source": "crmsync.reconcile", "detail": e.model_dump(mode="json")}
                ),
            )
            for i, e in enumerate(events)
        ]
        _, refused = queue.send_batch(messages)
        if refused:
            raise StoreError(f"the CRM queue refused {len(refused)} repairs")

    return send


def state_keys(state: StateStore) -> Any:
    """Every entity pk under a prefix: a paginated Scan of the state table (reconciliation's deletion check)."""
    from crmsync.store import clients

    def keys(prefix: str) -> list[str]:
        ddb = state.client or clients.dynamodb()
        found: list[str] = []
        kwargs: dict[str, Any] = {
            "TableName": state.table,
            "FilterExpression": "begins_with(pk, :p) AND sk = :s",
            "ExpressionAttributeValues": {":p": {"S": prefix}, ":s": {"S": "STATE"}},
            "ProjectionExpression": "pk",
        }
        while True:
            page = ddb.scan(**kwargs)
            found.extend(item["pk"]["S"] for item in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    return keys
