"""Settings of every function, read from the environment and validated at invocation, never at import."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

ENV_NAMES = {"mapping": "CRMSYNC_MAPPING", "rules": "CRMSYNC_RULES"}


class Settings(BaseModel):
    """Resource names and knobs; template.yaml sets them in Globals, tests set them with monkeypatch."""

    model_config = ConfigDict(frozen=True)

    receipts_table: str = ""
    state_table: str = ""
    crm_local_table: str = ""
    archive_bucket: str = ""
    ingest_queue_url: str = ""
    ingest_dlq_url: str = ""
    crm_queue_url: str = ""
    crm_dlq_url: str = ""
    events_dlq_url: str = ""
    event_bus_name: str = ""
    # The consuming function's queue: its redrive policy's maxReceiveCount (the last attempt dead-letters the record
    # itself, with the error), and the backoff between attempts (0 = the queue's own visibility timeout).
    max_receive_count: int = Field(default=5, ge=1, le=1000)
    retry_backoff_seconds: int = Field(default=0, ge=0, le=43200)
    retry_backoff_max_seconds: int = Field(default=900, ge=0, le=43200)
    crm_backend: Literal["local", "hubspot", "salesforce"] = "local"
    # 0: the CRM writer writes what each batch touched at once. > 0: it marks the entities dirty and the flusher
    # (crmsync.flusher) writes each one once it has been dirty this long, coalescing its events: fewer CRM calls.
    crm_flush_delay_seconds: int = Field(default=0, ge=0, le=86400)
    receipt_retention_days: int = Field(default=35, ge=30)
    claim_seconds: int = Field(default=60, ge=5)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    # PayPal signs only CRC32(body): a delivery whose PAYPAL-TRANSMISSION-TIME is older than this is refused, and each
    # transmission id is bound to its body's SHA-256 for as long (crmsync.ingest). 4 days: PayPal retries a delivery
    # up to 25 times over 3 days, so even a retry that kept its first signature still gets in.
    paypal_transmission_max_age_seconds: int = Field(default=4 * 86400, ge=300, le=30 * 86400)
    shopify_secret_id: str = ""
    stripe_secret_id: str = ""
    woocommerce_secret_id: str = ""
    paypal_secret_id: str = ""
    api_key_secret_id: str = ""
    secret_max_age_seconds: int = Field(default=300, ge=0)
    mapping: str = "default"
    # Erasure and export (crmsync.erasure): the privacy queue; what erasure does to the CRM contact (delete, or clear
    # its personal properties); what a Stripe customer.deleted does (keep the person, or erase them as a redact would).
    privacy_queue_url: str = ""
    privacy_dlq_url: str = ""
    erasure_crm_action: Literal["delete", "anonymise"] = "delete"
    stripe_customer_deleted: Literal["keep", "anonymise"] = "keep"
    # Automation rule set: config/rules/<name>.yaml ("none" = no automation), and the rules function's queues.
    rules: str = Field(default="default", pattern=r"^[a-z0-9_-]+$")
    rules_queue_url: str = ""
    rules_dlq_url: str = ""
    # Reporting currency of every amount ("" = off), and where its FX rates come from (crmsync.fx.rate_source).
    reporting_currency: str = Field(default="", pattern=r"^([A-Z]{3})?$")
    fx_rates: str = Field(default="static", pattern=r"^(static|ecb-file:.+)$")
    # HubSpot (CRM_BACKEND=hubspot; crmsync.crm.hubspot, README "HubSpot"): the private app token from a Secrets
    # Manager secret, else HUBSPOT_ACCESS_TOKEN (local runs); the API's base URL; the rate budget every Lambda shares.
    hubspot_token_secret_id: str = ""
    hubspot_access_token: SecretStr = SecretStr("")
    hubspot_base_url: str = Field(default="https://api.hubapi.com", pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    hubspot_rate_limit: int = Field(default=100, ge=1, le=1000)  # requests per 10 s: the portal's tier (100 or 190)
    hubspot_daily_limit: int = Field(default=0, ge=0)  # requests per UTC day crmsync may use; 0 = no cap of its own
    hubspot_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    # Salesforce (CRM_BACKEND=salesforce; crmsync.crm.salesforce, README "Salesforce"): a Secrets Manager secret (JSON:
    # JWT bearer, username-password or instance_url + access_token), else SALESFORCE_INSTANCE_URL + _ACCESS_TOKEN.
    salesforce_secret_id: str = ""
    salesforce_instance_url: str = ""
    salesforce_access_token: SecretStr = SecretStr("")
    salesforce_api_version: str = Field(default="62.0", pattern=r"^\d{2,3}\.0$")
    salesforce_bulk_threshold: int = Field(default=2000, ge=1)  # above this many records: Bulk API 2.0
    salesforce_api_usage_slow: float = Field(default=0.8, gt=0, le=1)  # share of the daily allowance: slow down
    salesforce_api_usage_stop: float = Field(default=0.95, gt=0, le=1)  # ... and stop calling

    # Backfill, import and reconciliation (crmsync.sync, README "Backfill, import and reconciliation"): the sync table
    # and queue; source API credentials from a Secrets Manager secret (JSON, crmsync.sync.clients.SourceCredentials),
    # else SHOPIFY_SHOP_DOMAIN / SHOPIFY_ACCESS_TOKEN / WOOCOMMERCE_BASE_URL / WOOCOMMERCE_CONSUMER_KEY /
    # WOOCOMMERCE_CONSUMER_SECRET / STRIPE_API_KEY / PAYPAL_CLIENT_ID / PAYPAL_CLIENT_SECRET / PAYPAL_API_BASE_URL
    # (local runs); requests per second to each source's API (0 = the vendor's documented default).
    sync_table: str = ""
    backfill_queue_url: str = ""
    backfill_dlq_url: str = ""
    source_api_secret_id: str = ""
    shopify_shop_domain: str = ""
    shopify_access_token: SecretStr = SecretStr("")
    woocommerce_base_url: str = ""
    woocommerce_consumer_key: SecretStr = SecretStr("")
    woocommerce_consumer_secret: SecretStr = SecretStr("")
    stripe_api_key: SecretStr = SecretStr("")
    paypal_client_id: str = ""
    paypal_client_secret: SecretStr = SecretStr("")
    paypal_api_base_url: str = "https://api-m.paypal.com"  # https://api-m.sandbox.paypal.com for a sandbox app
    source_api_rate: float = Field(default=0.0, ge=0, le=100)

    @field_validator("reporting_currency", mode="before")
    @classmethod
    def _upper_currency(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @model_validator(mode="before")
    @classmethod
    def _salesforce_mapping(cls, values: object) -> object:
        """CRM_BACKEND=salesforce without CRMSYNC_MAPPING maps with config/mappings/salesforce.yaml (the default
        mapping's HubSpot property names would be refused by Salesforce as unknown fields)."""
        if isinstance(values, dict) and values.get("crm_backend") == "salesforce" and "mapping" not in values:
            return {**values, "mapping": "salesforce"}
        return values

    @classmethod
    def from_env(cls) -> Settings:
        values = {}
        for name in cls.model_fields:
            env = ENV_NAMES.get(name, name.upper())
            if env in os.environ:
                values[name] = os.environ[env]
        return cls.model_validate(values)
