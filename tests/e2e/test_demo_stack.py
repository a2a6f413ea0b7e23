"""`make demo-reconcile` on a real local stack: drift found and repaired against the local WooCommerce shop, and a
backfill of N records (CRMSYNC_E2E_BACKFILL_RECORDS, default 300: three source pages; the README's figure is
`make demo-reconcile`'s 2,000) that ends with exactly N orders in state and N deals in the local CRM, no duplicate.
The records/s figure is printed, never asserted (`pytest -s` shows it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from local.demo import BULK_OFFSET, FIELDS, RUN_IDS, LocalAws, bulk_emails
from tests.conftest import REPO

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1800)]

RECORDS = int(os.environ.get("CRMSYNC_E2E_BACKFILL_RECORDS", "300"))


def test_demo_repairs_drift_and_backfills_every_record_exactly_once(start_stack, tmp_path):
    # Given a stack of its own (thousands of records must not meet the other tests' CRM), When the demo runs on it
    stack = start_stack()
    results = tmp_path / "demo.json"
    command = [sys.executable, "-m", "local.demo", "--stack", stack.state["stack_name"], "--records", str(RECORDS),
               "--json", str(results)]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=1700)
    print(done.stdout)
    assert done.returncode == 0, done.stdout[-5000:] + done.stderr[-3000:]
    result = json.loads(results.read_text())

    # Then the first reconciliation found each drift made on purpose, and repaired it
    report = result["report"]
    assert report["status"] == "done"
    assert {name: report["objects"]["orders"][name] for name in FIELDS} == {
        "checked": 5,  # listed by the shop: #1-#4 and #6 (#5 deleted there)
        "missing": 2,  # #4 in state (webhook lost), #2's deal in the CRM (deleted by hand)
        "stale": 2,  # #6 in state (paid at the source, update lost), #3's deal amount in the CRM (edited by hand)
        "deleted": 1,  # #5
        "repaired": 5,
        "failed": 0,
    }
    run, base = result["run"], result["run"] * RUN_IDS
    assert result["crm"][f"woocommerce:order:{base + 3}"].endswith("73.50 USD, closedwon")
    assert result["crm"][f"woocommerce:order:{base + 6}"].endswith("64.00 USD, closedwon")
    # And a second run finds state and CRM in step: #5's deletion was reported and sent once, so it is no drift now
    second = result["second_report"]["objects"]["orders"]
    assert {name: second[name] for name in FIELDS} == {
        "checked": 5,
        "missing": 0,
        "stale": 0,
        "deleted": 0,
        "repaired": 0,
        "failed": 0,
    }

    # And the backfill put exactly N orders in state and N deals in the CRM: read back here, not taken from the demo
    aws = LocalAws(stack.state)
    wanted = {f"woocommerce:order:{base + BULK_OFFSET + i}" for i in range(RECORDS)}
    deals = aws.deals()
    assert wanted <= set(deals)
    assert sum(len(deals[key]) for key in wanted) == RECORDS  # one record per external id: no duplicate
    stored = aws.state_orders()
    assert wanted <= set(stored)
    emails = bulk_emails(run, RECORDS, max(1, RECORDS // 2))
    assert len({stored[key] for key in wanted}) == len(emails)  # one customer per buyer, never two
    contacts = aws.contacts_by_email()
    assert all(contacts.get(email) == 1 for email in emails)
    backfill = result["backfill"]
    assert backfill["ok"] is True
    print(
        f"\nbackfill on the local stack: {RECORDS:,} records from the shop's API to the local CRM in "
        f"{backfill['crm_seconds']} s = {backfill['records_per_second']} records/s end to end "
        f"(job {backfill['job_seconds']} s, state {backfill['state_seconds']} s; "
        f"{backfill['cores']} cores, load average {backfill['load_average']})"
    )
