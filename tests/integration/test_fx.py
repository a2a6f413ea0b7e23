"""Reporting currency through the whole pipeline: convert stores each amount restated with its rate and date."""

from __future__ import annotations

import json

import pytest

from tests.integration.test_pipeline import ORDER, deliver, local_crm

__all__ = ["deliver"]  # the pipeline's fixture, imported (not copied) so pytest finds it in this module


def stored(aws, pk: str) -> dict:
    item = aws.client("dynamodb").get_item(
        TableName=aws.env["STATE_TABLE"], Key={"pk": {"S": pk}, "sk": {"S": "STATE"}}
    )["Item"]
    return json.loads(item["data"]["S"])


def test_with_a_reporting_currency_the_order_state_carries_the_total_in_it(
    aws, deliver, lambda_context, monkeypatch: pytest.MonkeyPatch
):
    # Given reporting in EUR from the static table (1 EUR = 1.1537 USD, of 2026-11-20)
    monkeypatch.setenv("REPORTING_CURRENCY", "EUR")
    monkeypatch.setenv("FX_RATES", "static")
    # When a USD 225.40 Shopify order flows through the pipeline
    assert deliver(ORDER)["status"] == "accepted"
    # Then its state holds the total in EUR: 225.40 x (1 / 1.1537 = 0.866776458351) = 195.3714... -> 195.37
    data = stored(aws, "ORDER#shopify:order:5678901234567")
    assert data["total"] == {"amount": 22540, "currency": "USD"}
    assert data["reporting"]["total"] == {
        "amount": {"amount": 19537, "currency": "EUR"},
        "rate": "0.866776458351",
        "rate_date": "2026-11-20",
        "rate_source": "static table (ECB reference rates of 2026-11-20)",
    }
    # And every other amount of the order at the same rate (subtotal 199.00 -> 172.488515... -> 172.49)
    assert data["reporting"]["subtotal"]["amount"] == {"amount": 17249, "currency": "EUR"}
    assert {r["rate"] for r in data["reporting"].values()} == {"0.866776458351"}
    # And the deal in the CRM still shows the shop amount
    [deal] = local_crm(lambda_context, "deals")
    assert (deal["properties"]["amount"], deal["properties"]["deal_currency_code"]) == ("225.40", "USD")


def test_without_a_reporting_currency_the_state_has_none(aws, deliver, monkeypatch: pytest.MonkeyPatch):
    # Given no reporting currency, When the order flows through, Then its state has no reporting amounts
    monkeypatch.delenv("REPORTING_CURRENCY", raising=False)
    deliver(ORDER)
    assert stored(aws, "ORDER#shopify:order:5678901234567")["reporting"] is None
