"""Rule files: the shipped ones load, and a file with any error is rejected whole, naming the file, the rule id and
what is wrong; conditions and templates evaluate safely."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from crmsync.rules.config import CONFIG_DIR, RuleFileError, load_rules, parse_rules_text
from crmsync.rules.engine import Condition, ConditionError, EvaluationFailed, render, template_problems

GOOD = """
rules:
  - id: ok
    version: 1
    when: [order.paid]
    condition: customer.paid_orders >= 1
    then: [{add_tags: [loyal]}]
"""


def rule(**fields: str) -> str:
    body = {"id": "broken", "version": "1", "when": "[order.paid]", "then": "[{add_tags: [x]}]", **fields}
    lines = "\n".join(f"    {name}: {value}" for name, value in body.items() if value != "")
    return GOOD + "  - " + lines.lstrip() + "\n"


def problems(text: str) -> str:
    with pytest.raises(RuleFileError) as raised:
        parse_rules_text(text, source="team.yaml")
    return str(raised.value)


def test_the_shipped_rule_sets_load():
    default = load_rules("default")
    assert [c.rule.id for c in default.rules] == [
        "first-paid-order", "vip", "payment-failed", "refund-issued", "refund-full", "dispute-opened",
        "early-fraud-warning", "high-risk",
    ]  # fmt: skip
    assert default.risk.threshold == 60
    assert load_rules("none").rules == ()
    assert {p.stem for p in CONFIG_DIR.glob("*.yaml")} == {"default", "none"}


def test_a_valid_file_is_used_whole():
    rules = parse_rules_text(GOOD, source="team.yaml")
    assert [c.rule.id for c in rules.for_event("order.paid")] == ["ok"]
    assert rules.for_event("order.placed") == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (rule(condition="custmer.paid_orders > 1"), "rule broken: condition: unknown symbol: 'custmer'"),
        (rule(condition="customer.lifetime > 1"), "rule broken: condition: unknown attribute: 'lifetime'"),
        (rule(condition="event > 1"), "rule broken: condition: data type mismatch"),
        (rule(condition="customer.paid_orders >="), "rule broken: condition: syntax error"),
        (rule(when="[order.shipped]"), "rule broken: when.0: Input should be 'customer.upserted'"),
        (rule(version="0"), "rule broken: version: Input should be greater than or equal to 1"),
        (rule(then="[{add_tags: [x], add_note: {body: hi}}]"), "rule broken: then.0: each action is exactly one of"),
        (rule(then="[{create_task: {subject: hi, priority: URGENT}}]"), "then.0.create_task.priority: Input should be"),
        (rule(then="[{add_note: {body: '{customer.lifetime}'}}]"), "then.0.add_note: unknown placeholder"),
        (rule(then="[{set_contact: {LifecycleStage: customer}}]"), "rule broken: then.0.set_contact.LifecycleStage"),
        (rule(then="[{launch_missiles: {}}]"), "then.0.launch_missiles: Extra inputs are not permitted"),
        (rule(id="ok"), "rule ok: duplicate rule id"),
        (rule(id=""), "rule #2 (no id): id: Field required"),
    ],
    ids=[
        "unknown-symbol", "unknown-attribute", "type-mismatch", "syntax", "unknown-event", "version", "two-actions",
        "priority", "placeholder", "property-name", "unknown-action", "duplicate-id", "no-id",
    ],
)  # fmt: skip
def test_a_bad_rule_rejects_the_file_naming_file_rule_and_reason(text, expected):
    message = problems(text)
    assert message.startswith("team.yaml: ")
    assert expected in message


def test_every_problem_of_a_file_is_named_and_no_rule_of_it_is_loaded():
    text = GOOD + (
        "  - {id: a, version: 1, when: [order.paid], condition: 'nope > 1', then: [{add_tags: [x]}]}\n"
        "  - {id: b, version: 1, when: [order.paid], then: []}\n"
    )
    with pytest.raises(RuleFileError) as raised:
        parse_rules_text(text, source="team.yaml")
    assert [rule_id for rule_id, _ in raised.value.problems] == ["a", "b"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rules: [\n", "team.yaml: not valid YAML at line 2"),
        ("- just a list\n", "team.yaml: expected a mapping with `rules:`"),
        ("rulez: []\n", "team.yaml: rulez: Extra inputs are not permitted"),
        ("risk: {threshold: 120}\nrules: []\n", "team.yaml: risk.threshold: Input should be less than or equal"),
    ],
)
def test_a_bad_file_as_a_whole_is_named(text, expected):
    assert problems(text).startswith(expected)


def test_an_unknown_rule_set_name_is_named(tmp_path: Path):
    with pytest.raises(RuleFileError, match=r"^nosuch\.yaml: no such rule file"):
        load_rules("nosuch", tmp_path)
    with pytest.raises(RuleFileError, match="lower-case"):
        load_rules("../etc/passwd", tmp_path)


# --- conditions and templates ---------------------------------------------------------------------------------------
FACTS = {
    "event": "payment.failed", "entity": "payment", "key": "stripe:payment:pi_1", "source": "stripe",
    "status": "failed", "amount": Decimal("12.50"), "currency": "EUR", "test": False, "customer_id": "cus_1",
    "data": {"failure_code": "card_declined", "nested": {"x": 1}},
    "customer": {"id": "cus_1", "currency": "EUR", "lifetime_value": Decimal("1200.00"), "lifetime_value_minor": 120000,
                 "unconverted": 0, "orders": 3, "paid_orders": 3, "first_order_at": None, "first_order_key": "k",
                 "last_order_at": None, "average_order_value": Decimal("400.00"), "failed_payments_24h": 2,
                 "failed_payments": 2, "refunds": 0, "disputes": 0, "open_disputes": 0, "lost_disputes": 0,
                 "fraud_warnings": 0, "tags": {"vip"}},
    "deal": {"key": "", "status": "", "amount": Decimal(0), "refunded": Decimal(0), "currency": "",
             "fully_refunded": False},
    "risk": {"score": 40, "threshold": 60, "above_threshold": False, "factors": ["radar"], "explanation": "x"},
}  # fmt: skip


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("customer.lifetime_value >= 1000 and 'vip' in customer.tags", True),
        ("amount > 12.5", False),
        ("data['failure_code'] == 'card_declined'", True),
        ("data&['missing'] == null", True),
        ("event =~ 'payment[.].*' and not risk.above_threshold", True),
        ("customer.first_order_at == null", True),
        ("'radar' in risk.factors", True),
    ],
)
def test_conditions_evaluate_over_the_facts(condition, expected):
    assert Condition(condition).matches(FACTS) is expected


def test_a_condition_that_fails_on_an_event_says_why_and_never_runs_code():
    with pytest.raises(EvaluationFailed):
        Condition("data['missing'] == 1").matches(FACTS)
    with pytest.raises(ConditionError):
        Condition("__import__('os').system('true')")


def test_templates_fill_plain_values_only():
    text = render("{key}: {amount} {currency}, {data.failure_code}, {customer.lifetime_value}, {customer.tags}, "
                  "{data.nested.x}, {data.nope}.", FACTS)  # fmt: skip
    assert text == "stripe:payment:pi_1: 12.50 EUR, card_declined, 1200.00, vip, 1, ."
    assert template_problems("{customer.__class__}") == ["unknown placeholder {customer.__class__}"]
    assert template_problems("{data}") == ["placeholder {data} needs a field, e.g. {data.reason}"]
    assert template_problems("{Key}") == ["a '{' that starts no placeholder ({name} or {name.field}, lower case)"]
