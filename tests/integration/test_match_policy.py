"""The CRM writer under the mapping's match policies: state on moto, the CRM in memory (FaultyCrm, LocalCrm's
semantics). A record update_only cannot find is skipped (not an error, so never retried); one create_only finds is
left as it is, its id still recorded and linked, and no lineage claims it shows crmsync's version."""

from __future__ import annotations

from crmsync.crm.port import UpsertInput
from crmsync.mapping import Mapping, load_mapping
from crmsync.store.state import StateStore
from crmsync.writer import WriterDeps, write_events
from tests.fakes import FaultyCrm
from tests.integration.test_salesforce import REFUND_NOTE, REFUND_ORDER, convert_only, crm_events
from tests.integration.test_sources import fixture, post, woo_headers  # noqa: F401 - post is a fixture

EXT = "crmsync_external_id"


def with_policies(contacts: str, deals: str) -> Mapping:
    mapping = load_mapping("default")
    return mapping.model_copy(update={
        "contacts": mapping.contacts.model_copy(update={"match_policy": contacts}),
        "deals": mapping.deals.model_copy(update={"match_policy": deals}),
    })  # fmt: skip


def test_update_only_contacts_and_create_only_deals(aws, post, lambda_context):  # noqa: F811
    # Given a WooCommerce order with a refund converted into state
    order = fixture("woocommerce", "order-partial-refund.json")
    assert post("woocommerce", order, woo_headers("order.updated", order))[0] == 200
    convert_only(aws, lambda_context)
    events = crm_events(aws)
    # And a CRM that has the order's deal already, renamed by a sales rep, and no contact for the buyer
    crm = FaultyCrm()
    [existing] = crm.upsert("deals", [UpsertInput(EXT, REFUND_ORDER, {EXT: REFUND_ORDER, "dealname": "Big account"})])
    state = StateStore(aws.env["STATE_TABLE"])

    # When the CRM writer writes the batch with contacts update_only and deals create_only
    summary = write_events(
        events, WriterDeps(state=state, crm=crm, mapping=with_policies("update_only", "create_only"))
    )

    # Then no contact is made: the customer is skipped, and nothing failed
    assert crm.records("contacts") == []
    assert summary.contacts == {}
    assert len(summary.skipped) == 1
    # And the deal keeps what the rep wrote, while its id is recorded and the refund's note is linked to it
    [deal] = crm.records("deals")
    assert (deal.id, deal.properties["dealname"]) == (existing.id, "Big account")
    assert (summary.deals, summary.unchanged) == ({REFUND_ORDER: deal.id}, [REFUND_ORDER])
    assert state.crm_ids(f"ORDER#{REFUND_ORDER}", crm.name) == {"deal": deal.id}
    [note] = crm.records("notes")
    assert note.associations == {"deals": [deal.id]}
    assert summary.notes == {REFUND_NOTE: note.id}
    # And no lineage entry claims the deal shows crmsync's version of the order
    assert not [e for e in state.lineage(f"ORDER#{REFUND_ORDER}") if e.get("step") == "crm"]
