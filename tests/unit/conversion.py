"""What the table-driven conversion suites share: fixture bodies, and a field-by-field comparison of a `Converted`.

Each suite keeps its cases in a module-level `CASES` list of `pytest.param(topic, fixture, expected Converted, id=...)`
(bench/accuracy.py reads those tables as data). The expectations are written by hand; these helpers only load the
fixture a case names and compare what the converter made with what the case says, naming the first field that differs.
"""

from datetime import UTC, datetime

from pydantic import BaseModel

from crmsync.models import Money, Order
from crmsync.sources.base import Converted, Entity
from tests.conftest import FIXTURES


def fixture_body(source: str, name: str) -> bytes:
    """Raw bytes of tests/fixtures/<source>/<name>, exactly as the convert function reads them from the archive."""
    return (FIXTURES / source / name).read_bytes()


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, micro: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, micro, tzinfo=UTC)


def usd(amount: int) -> Money:
    return Money(amount=amount, currency="USD")


def shown(entity: Entity) -> tuple[str, ...]:
    """How a CRM shows an entity: its external id, then its amount (an order's total and each line's unit price)
    with exactly the currency's ISO 4217 decimals."""
    if isinstance(entity, Order):
        prices = (item.unit_price.formatted() for item in entity.line_items)
        return (entity.external_id, entity.total.formatted(), *prices)
    return (entity.external_id, entity.amount.formatted() if entity.amount else "")


def assert_same_fields(actual: BaseModel | None, expected: BaseModel | None, what: str = "") -> None:
    """Field by field, so a failure names the field, then whole-object equality to catch anything missed."""
    if expected is None:
        assert actual is None, f"{what}: expected None, got {actual!r}"
        return
    assert actual is not None, f"{what}: expected {type(expected).__name__}, got None"
    assert type(actual) is type(expected), f"{what}: expected {type(expected).__name__}, got {type(actual).__name__}"
    for name in type(expected).model_fields:
        got, wanted = getattr(actual, name), getattr(expected, name)
        assert got == wanted, f"{what}.{name}: expected {wanted!r}, got {got!r}"
    assert actual == expected, what


def assert_same_conversion(actual: Converted, expected: Converted) -> None:
    """The customer, each entity with its domain event, and each notice, exactly as the case writes them."""
    assert_same_fields(actual.customer, expected.customer, "customer")
    assert [detail for detail, _ in actual.entities] == [detail for detail, _ in expected.entities], "domain events"
    for index, ((_, entity), (_, wanted)) in enumerate(zip(actual.entities, expected.entities, strict=True)):
        assert_same_fields(entity, wanted, f"entities[{index}]")
    assert actual.notices == expected.notices, "notices"
    assert actual == expected
