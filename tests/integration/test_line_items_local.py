"""The mapping's opt-in `line_items:` and `companies:` sections on the local CRM backend (LocalCrm on the DynamoDB
table, state on moto): a WooCommerce order's lines are line items on its deal, its billing company a company on
the contact; written again, nothing is duplicated."""

from __future__ import annotations

from crmsync.crm.backends import crm_for
from crmsync.crm.local import LocalCrm
from crmsync.mapping import parse_mapping_text
from crmsync.mapping.fields import CONFIG_DIR
from crmsync.settings import Settings
from crmsync.store.state import StateStore
from crmsync.writer import WriterDeps, write_events
from tests.integration.test_salesforce import company_order_events
from tests.integration.test_sources import post  # noqa: F401 - a fixture

# The opt-in sections on top of the shipped default mapping (the HubSpot writer test uses them too).
LINE_ITEMS_AND_COMPANIES = """
line_items:
  id_property: crmsync_external_id
  properties:
    name: name
    quantity: quantity
    price: price
    hs_sku: sku
    crmsync_external_id: external_id
companies:
  id_property: crmsync_external_id
  properties:
    name: name
    crmsync_external_id: external_id
"""


def test_line_items_and_companies_on_the_local_crm(aws, post, lambda_context):  # noqa: F811
    # Given the default mapping with both sections, and a WooCommerce order of two lines (3 socks for 10.00, a rain
    # jacket at 50.00 less 5.00) whose billing address names the buyer's company, converted into state
    text = (CONFIG_DIR / "default.yaml").read_text() + LINE_ITEMS_AND_COMPANIES
    mapping = parse_mapping_text(text, source="local.yaml")
    events = company_order_events(aws, post, lambda_context)
    crm = crm_for(Settings.from_env())
    assert isinstance(crm, LocalCrm)
    deps = WriterDeps(StateStore(aws.env["STATE_TABLE"]), crm, mapping)
    # When the CRM writer writes the batch, twice (a redelivery)
    summary = write_events(events, deps)
    write_events(events, deps)
    # Then each line is one line item on the deal, with its mapped properties
    table = crm.records
    deal_id = summary.deals["woocommerce:order:7310"]
    items = {key: table.get("line_items", item_id) for key, item_id in summary.line_items.items()}
    shown = {key: record.properties if record else None for key, record in items.items()}
    assert shown == {
        "woocommerce:order:7310:line:9101": {
            "name": "Sock 3-for-10 bundle", "quantity": "3", "price": "3.33", "hs_sku": "SOCK-3",
            "crmsync_external_id": "woocommerce:order:7310:line:9101",
        },
        "woocommerce:order:7310:line:9102": {
            "name": "Rain jacket", "quantity": "1", "price": "50.00", "hs_sku": "JACKET-RAIN",
            "crmsync_external_id": "woocommerce:order:7310:line:9102",
        },
    }  # fmt: skip
    deal = table.get("deals", deal_id)
    assert deal is not None
    assert sorted(deal.associations["line_items"]) == sorted(summary.line_items.values())
    # And the company is one company, associated with the contact
    [(company_key, company_id)] = summary.companies.items()
    assert company_key == "company:rivera design"
    [contact_id] = summary.contacts.values()
    contact = table.get("contacts", contact_id)
    assert contact is not None
    assert contact.associations["companies"] == [company_id]
    # And nothing was created twice: each key names the one record written
    for key, record in items.items():
        assert record is not None
        assert table.find_id("line_items", "crmsync_external_id", key) == record.id
    assert table.find_id("companies", "crmsync_external_id", "company:rivera design") == company_id
