"""`make hubspot-setup` / `python -m crmsync.crm.hubspot_setup`: create the custom properties crmsync writes in a
HubSpot portal, idempotently (run it again any time: what exists is left alone).

- contacts and deals `crmsync_external_id`: text, unique (`hasUniqueValue`), the id deals are upserted by
  (and contacts without an e-mail);
- deals `crmsync_payment_status` (text) and `crmsync_refunded_amount` (number);
- any other `crmsync_*` property the mapping (CRMSYNC_MAPPING) writes on contacts or deals: text;
- with the mapping's opt-in `line_items:` / `companies:` sections: that object's `crmsync_external_id` (text,
  unique: line items and companies are upserted by it) and its other `crmsync_*` properties (text).

It reads the portal's properties first (`GET /crm/v3/properties/{type}`; this is not the write path) and creates
only the missing ones in one `POST /crm/v3/properties/{type}/batch/create` per object type. A property that exists
without the uniqueness crmsync needs is reported (HubSpot cannot make an existing property unique), and the command
exits 1. Deals use the default pipeline's stages (appointmentscheduled ... closedwon / closedlost), which every
portal has, so no pipeline is created.

Token and URL as the CRM writer's: HUBSPOT_ACCESS_TOKEN or HUBSPOT_TOKEN_SECRET_ID, and HUBSPOT_BASE_URL.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from crmsync.crm.errors import CrmError, CrmNotConfigured, CrmRejected, RecordError

if TYPE_CHECKING:
    from crmsync.crm.hubspot import HubSpotCrm
    from crmsync.mapping import Mapping

SCOPES = "crm.objects.contacts.write, crm.objects.deals.write, crm.schemas.contacts.write, crm.schemas.deals.write"
# With line items or companies mapped, also crm.objects.line_items.write / crm.objects.companies.write and
# crm.schemas.line_items.write / crm.schemas.companies.write.
GROUPS = {
    "contacts": "contactinformation",
    "deals": "dealinformation",
    "line_items": "lineiteminformation",
    "companies": "companyinformation",
}


@dataclass(frozen=True)
class PropertySpec:
    object_type: str
    name: str
    label: str
    type: str = "string"
    field_type: str = "text"
    unique: bool = False
    description: str = "Written by crmsync."

    def as_input(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "fieldType": self.field_type,
            "groupName": GROUPS.get(self.object_type, f"{self.object_type[:-1]}information"),
            "hasUniqueValue": self.unique,
            "description": self.description,
        }


REQUIRED = (
    PropertySpec("contacts", "crmsync_external_id", "crmsync external id", unique=True,
                 description="crmsync's id of the customer (crmsync:customer:<id>)."),
    PropertySpec("deals", "crmsync_external_id", "crmsync external id", unique=True,
                 description="crmsync's id of the order or payment (shopify:order:<id>, stripe:payment:<id>, ...)."),
    PropertySpec("deals", "crmsync_payment_status", "crmsync payment status",
                 description="The payment status crmsync last saw for this deal."),
    PropertySpec("deals", "crmsync_refunded_amount", "crmsync refunded amount", "number", "number",
                 description="The amount refunded so far, in the deal's currency."),
)  # fmt: skip
# Only when the mapping has the object's (opt-in) section.
OPTIONAL = (
    PropertySpec("line_items", "crmsync_external_id", "crmsync external id", unique=True,
                 description="crmsync's id of the order line (<order external id>:line:<line id>)."),
    PropertySpec("companies", "crmsync_external_id", "crmsync external id", unique=True,
                 description="crmsync's id of the company (company:<name>)."),
)  # fmt: skip


def required_properties(mapping: Mapping | None = None) -> list[PropertySpec]:
    """REQUIRED, plus every other crmsync_* property the mapping writes on contacts or deals (as text); with line
    items or companies mapped, their OPTIONAL id property and crmsync_* properties too."""
    wanted = list(REQUIRED)
    if mapping is not None:
        objects = (
            ("contacts", mapping.contacts), ("deals", mapping.deals),
            ("line_items", mapping.line_items), ("companies", mapping.companies),
        )  # fmt: skip
        for object_type, rules in objects:
            if rules is None:
                continue
            wanted.extend(p for p in OPTIONAL if p.object_type == object_type)
            for name in rules.properties:
                if name.startswith("crmsync_") and not any(
                    p.object_type == object_type and p.name == name for p in wanted
                ):
                    wanted.append(PropertySpec(object_type, name, name.replace("_", " ")))
    return wanted


@dataclass
class SetupReport:
    created: list[str] = field(default_factory=list)  # "<type>.<name>"
    existing: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def setup(crm: HubSpotCrm, wanted: Sequence[PropertySpec], *, dry_run: bool = False) -> SetupReport:
    """Create the wanted properties that the portal lacks; report what exists and what cannot be fixed here."""
    report = SetupReport()
    for object_type in dict.fromkeys(p.object_type for p in wanted):
        answer = crm.request("GET", f"/crm/v3/properties/{object_type}", operation=f"list {object_type} properties")
        if answer.status in (401, 403):
            raise CrmNotConfigured(f"HubSpot refused the access token ({answer.status}); scopes needed: {SCOPES}")
        if answer.status != 200:
            raise CrmRejected(f"list {object_type} properties", [_error(object_type, answer.status, answer.json())])
        have = {p["name"]: p for p in (answer.json() or {}).get("results") or [] if isinstance(p, dict) and "name" in p}
        missing = []
        for spec in (p for p in wanted if p.object_type == object_type):
            found = have.get(spec.name)
            if found is None:
                missing.append(spec)
                continue
            report.existing.append(f"{object_type}.{spec.name}")
            if spec.unique and not found.get("hasUniqueValue"):
                report.problems.append(
                    f"{object_type}.{spec.name} exists but is not unique; HubSpot cannot make an existing property"
                    " unique: delete it (or archive it) in HubSpot and run the setup again"
                )
        if not missing or dry_run:
            report.created.extend(f"{object_type}.{p.name}" + (" (dry run)" if dry_run else "") for p in missing)
            continue
        body = {"inputs": [p.as_input() for p in missing]}
        answer = crm.request(
            "POST", f"/crm/v3/properties/{object_type}/batch/create", body, operation=f"create {object_type} properties"
        )
        payload = answer.json() or {}
        if answer.status in (200, 201, 207):
            made = {r.get("name") for r in payload.get("results") or [] if isinstance(r, dict)}
            report.created.extend(f"{object_type}.{p.name}" for p in missing if p.name in made)
            report.problems.extend(
                f"{object_type}: {e.get('message', '')}" for e in payload.get("errors") or [] if isinstance(e, dict)
            )
        elif answer.status == 409:  # created meanwhile by someone else: as wanted
            report.existing.extend(f"{object_type}.{p.name}" for p in missing)
        else:
            report.problems.append(f"{object_type}: {answer.status} {_error(object_type, answer.status, payload)}")
    return report


def _error(object_type: str, status: int, payload: Any) -> RecordError:
    message = payload.get("message", "") if isinstance(payload, dict) else ""
    category = payload.get("category", "") if isinstance(payload, dict) else ""
    return RecordError(object_type, str(message) or f"HTTP {status}", status, str(category))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Create the HubSpot properties crmsync needs (idempotent).")
    parser.add_argument("--dry-run", action="store_true", help="say what would be created, create nothing")
    args = parser.parse_args(argv)

    from crmsync.crm.backends import hubspot_token
    from crmsync.crm.hubspot import HubSpotCrm
    from crmsync.crm.transport import UrllibTransport
    from crmsync.mapping import load_mapping
    from crmsync.settings import Settings

    settings = Settings.from_env()
    try:
        crm = HubSpotCrm(UrllibTransport(), hubspot_token(settings), base_url=settings.hubspot_base_url)
        report = setup(crm, required_properties(load_mapping(settings.mapping)), dry_run=args.dry_run)
    except CrmError as exc:
        print(f"hubspot-setup failed: {exc}", file=sys.stderr)
        return 1
    for name in report.created:
        print(f"created   {name}")
    for name in report.existing:
        print(f"exists    {name}")
    for problem in report.problems:
        print(f"PROBLEM   {problem}", file=sys.stderr)
    print(f"{settings.hubspot_base_url}: {len(report.created)} created, {len(report.existing)} already there")
    return 1 if report.problems else 0


if __name__ == "__main__":
    sys.exit(main())
