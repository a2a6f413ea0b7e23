"""Settings of every function, read from the environment and validated at invocation, never at import."""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ENV_NAMES = {"mapping": "CRMSYNC_MAPPING"}


class Settings(BaseModel):
    """Resource names and knobs; template.yaml sets them in Globals, tests set them with monkeypatch."""

    model_config = ConfigDict(frozen=True)

    receipts_table: str = ""
    state_table: str = ""
    crm_local_table: str = ""
    archive_bucket: str = ""
    ingest_queue_url: str = ""
    event_bus_name: str = ""
    crm_backend: Literal["local"] = "local"
    receipt_retention_days: int = Field(default=35, ge=30)
    claim_seconds: int = Field(default=60, ge=5)
    max_body_bytes: int = Field(default=1024 * 1024, ge=1)
    shopify_secret_id: str = ""
    stripe_secret_id: str = ""
    woocommerce_secret_id: str = ""
    paypal_secret_id: str = ""
    api_key_secret_id: str = ""
    secret_max_age_seconds: int = Field(default=300, ge=0)
    mapping: str = "default"
    # Reporting currency of every amount ("" = off), and where its FX rates come from (crmsync.fx.rate_source).
    reporting_currency: str = Field(default="", pattern=r"^([A-Z]{3})?$")
    fx_rates: str = Field(default="static", pattern=r"^(static|ecb-file:.+)$")

    @field_validator("reporting_currency", mode="before")
    @classmethod
    def _upper_currency(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @classmethod
    def from_env(cls) -> Settings:
        values = {}
        for name in cls.model_fields:
            env = ENV_NAMES.get(name, name.upper())
            if env in os.environ:
                values[name] = os.environ[env]
        return cls.model_validate(values)
