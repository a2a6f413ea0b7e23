"""Rule conditions and action templates: a small, typed, safe expression language (rule-engine; never eval).

A condition is parsed once, when its rule file loads, against the types of every symbol below, so a typo in a name,
an unknown attribute or a type mismatch rejects the file instead of failing on the first event.

Symbols a condition (and a `{template}`) may use:
- event (the detail type, "payment.failed"), entity ("order", "payment", "refund", "dispute", "customer", "notice"),
  key (the entity's external id, or the customer id), source, status, amount (major units, 0 when there is none),
  currency, test (a test-mode entity), customer_id
- data: the canonical entity as a mapping: data["failure_code"], data&["reason"] (null when missing)
- customer.<aggregate>: crmsync.rules.facts.CUSTOMER_ATTRIBUTES (lifetime_value, paid_orders, first_order_at, ...)
- deal.<field>: the deal the entity is about: key, status, amount, refunded, currency, fully_refunded
- risk.<field>: score (0-100), threshold, above_threshold, factors (names of the factors that scored), explanation

rule-engine takes about half a second to build its parser, so it is imported on first use: only the rules function
and the dry run pay for it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

TEMPLATE_FIELD = re.compile(r"\{([a-z_][a-z0-9_]*(?:\.[a-z_][a-z0-9_]*)*)\}")

SCALARS = ("event", "entity", "key", "source", "status", "currency", "customer_id")
DEAL_ATTRIBUTES = ("key", "status", "amount", "refunded", "currency", "fully_refunded")
RISK_ATTRIBUTES = ("score", "threshold", "above_threshold", "factors", "explanation")


class ConditionError(ValueError):
    """A condition that does not parse or does not type-check; the message says why."""


class EvaluationFailed(ValueError):
    """A condition failed on one event (a missing field in data, a null compared); the message says why."""


@functools.cache
def _context() -> Any:
    import rule_engine
    from rule_engine import DataType as T

    from crmsync.rules.facts import CUSTOMER_ATTRIBUTES

    def item(value: Any, name: str) -> Any:
        return value[name]

    customer_types: dict[str, Any] = dict.fromkeys(CUSTOMER_ATTRIBUTES, T.FLOAT)
    customer_types.update(
        id=T.STRING, currency=T.STRING, first_order_key=T.STRING, tags=T.SET(T.STRING),
        first_order_at=T.NULLABLE(T.DATETIME), last_order_at=T.NULLABLE(T.DATETIME),
    )  # fmt: skip
    customer = T.OBJECT("Customer", attributes=customer_types, accessor=item)
    deal = T.OBJECT(
        "Deal",
        attributes={
            "key": T.STRING, "status": T.STRING, "amount": T.FLOAT, "refunded": T.FLOAT, "currency": T.STRING,
            "fully_refunded": T.BOOLEAN,
        },
        accessor=item,
    )  # fmt: skip
    risk = T.OBJECT(
        "Risk",
        attributes={
            "score": T.FLOAT, "threshold": T.FLOAT, "above_threshold": T.BOOLEAN, "factors": T.ARRAY(T.STRING),
            "explanation": T.STRING,
        },
        accessor=item,
    )  # fmt: skip
    types: dict[str, Any] = dict.fromkeys(SCALARS, T.STRING)
    types.update(amount=T.FLOAT, test=T.BOOLEAN, data=T.MAPPING(T.STRING), customer=customer, deal=deal, risk=risk)
    return rule_engine.Context(
        resolver=rule_engine.resolve_item,
        type_resolver=rule_engine.type_resolver_from_dict(types),
        mapping_attribute_lookup=False,
    )


class Condition:
    """One compiled condition."""

    def __init__(self, text: str) -> None:
        import rule_engine

        self.text = text
        try:
            self._rule = rule_engine.Rule(text, context=_context())
        except rule_engine.errors.EngineError as exc:
            raise ConditionError(_message(exc)) from None

    def matches(self, facts: Mapping[str, Any]) -> bool:
        import rule_engine

        try:
            return bool(self._rule.matches(facts))
        except rule_engine.errors.EngineError as exc:
            raise EvaluationFailed(_message(exc)) from None
        except (KeyError, TypeError, ArithmeticError) as exc:
            raise EvaluationFailed(f"{exc.__class__.__name__}: {exc}") from None


def _message(exc: Exception) -> str:
    text = str(getattr(exc, "message", "") or exc)
    token = getattr(exc, "token", None)
    return f"{text} (at {token.value!r})" if token is not None and getattr(token, "value", None) else text


# --- templates ----------------------------------------------------------------------------------------------------
def template_problems(template: str) -> list[str]:
    """What is wrong with a template's {placeholders}: each must name a symbol (and a known attribute)."""
    from crmsync.rules.facts import CUSTOMER_ATTRIBUTES

    known = {"customer": set(CUSTOMER_ATTRIBUTES), "deal": set(DEAL_ATTRIBUTES), "risk": set(RISK_ATTRIBUTES)}
    problems = []
    for match in TEMPLATE_FIELD.finditer(template):
        root, _, rest = match[1].partition(".")
        if root in known:
            if rest.split(".")[0] not in known[root]:
                problems.append(f"unknown placeholder {{{match[1]}}}")
        elif root == "data":
            if not rest:
                problems.append("placeholder {data} needs a field, e.g. {data.reason}")
        elif root not in (*SCALARS, "amount", "test") or rest:
            problems.append(f"unknown placeholder {{{match[1]}}}")
    if "{" in TEMPLATE_FIELD.sub("", template):
        problems.append("a '{' that starts no placeholder ({name} or {name.field}, lower case)")
    return problems


def render(template: str, facts: Mapping[str, Any]) -> str:
    """Fill {name} and {name.field} placeholders with plain values (no attribute access on Python objects: rule files
    are user input); a missing value renders as nothing."""

    def value(match: re.Match[str]) -> str:
        current: Any = facts
        for part in match[1].split("."):
            if not isinstance(current, Mapping):
                return ""
            current = current.get(part)
        return text(current)

    return TEMPLATE_FIELD.sub(value, template).strip()


def text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, set | frozenset | list | tuple):
        return ", ".join(sorted(text(v) for v in value))
    return str(value)
