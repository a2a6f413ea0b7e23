"""The one place that picks the CRM adapter from the configuration (CRM_BACKEND=local|hubspot|salesforce).

Each adapter's modules are imported only when it is chosen, so a function never pays for a CRM it does not use.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from crmsync.crm.errors import CrmNotConfigured

if TYPE_CHECKING:
    from crmsync.crm.hubspot import HubSpotCrm
    from crmsync.crm.port import CrmPort
    from crmsync.settings import Settings

# What template.yaml puts in the HubSpot token secret until an operator stores the real token.
TOKEN_PLACEHOLDER = "unset"  # noqa: S105 - a placeholder, not a credential


def crm_for(settings: Settings, *, time_left: Callable[[], float] | None = None) -> CrmPort:
    """The CRM adapter the settings name. `time_left`: seconds the invocation has left (bounds waits on limits)."""
    if settings.crm_backend == "local":
        from crmsync.crm.local import LocalCrm
        from crmsync.store.crm_local import LocalCrmTable

        return LocalCrm(LocalCrmTable(settings.crm_local_table))
    if settings.crm_backend == "hubspot":
        return hubspot_crm(settings, time_left=time_left)
    if settings.crm_backend == "salesforce":
        from crmsync.crm.salesforce import SalesforceCrm

        return SalesforceCrm.from_settings(settings, time_left=time_left)
    raise CrmNotConfigured(f"unknown CRM backend {settings.crm_backend!r}")


def hubspot_token(settings: Settings) -> str:
    """HUBSPOT_ACCESS_TOKEN when set (local runs), else the secret HUBSPOT_TOKEN_SECRET_ID names (AWS)."""
    token = settings.hubspot_access_token.get_secret_value().strip()
    if not token and settings.hubspot_token_secret_id:
        from crmsync.store.secrets import secret_values

        values = secret_values(settings.hubspot_token_secret_id, max_age=settings.secret_max_age_seconds)
        token = values[0] if values else ""
    if not token or token == TOKEN_PLACEHOLDER:
        where = (
            f"the secret {settings.hubspot_token_secret_id} holds none"
            if settings.hubspot_token_secret_id
            else "HUBSPOT_TOKEN_SECRET_ID is unset"
        )
        raise CrmNotConfigured(
            f"no HubSpot access token (HUBSPOT_ACCESS_TOKEN is unset and {where}): store the private app's token"
            " in the stack's HubSpotTokenSecret, or set HUBSPOT_ACCESS_TOKEN for a local run"
        )
    return token


def hubspot_crm(settings: Settings, *, time_left: Callable[[], float] | None = None) -> HubSpotCrm:
    """HubSpotCrm over urllib, with the rate budget and id ledger in the state table."""
    from crmsync.crm.hubspot import HubSpotCrm
    from crmsync.crm.transport import UrllibTransport
    from crmsync.store.crm_ledger import CrmIdLedger
    from crmsync.store.rate_budget import RateBudget

    if not settings.state_table:
        raise CrmNotConfigured("the HubSpot backend keeps its rate budget and id ledger in STATE_TABLE, which is unset")
    return HubSpotCrm(
        transport=UrllibTransport(),
        token=hubspot_token(settings),
        ledger=CrmIdLedger(settings.state_table),
        budget=RateBudget(
            settings.state_table, limit=settings.hubspot_rate_limit, daily_limit=settings.hubspot_daily_limit
        ),
        base_url=settings.hubspot_base_url,
        time_left=time_left or (lambda: math.inf),
        request_timeout=settings.hubspot_timeout_seconds,
    )
