"""Stripe webhook signatures, checked against the official `stripe` library; and how ingest names a delivery.

Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>], v1 = hex(HMAC-SHA256(secret, f"{t}." + raw body)).
"""

import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest
import stripe
import stripe._webhook as stripe_webhook

from crmsync.sources.base import SignatureError
from crmsync.sources.stripe import StripeWebhooks, parse_signature_header, sign, signature, verify

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "stripe"
SECRET = "whsec_current_0123456789abcdef"
OLD_SECRET = "whsec_previous_fedcba9876543210"
NOW = 1_730_419_200  # 2024-11-01T00:00:00Z: both our check and stripe's see this as the current time
TOLERANCE = 300


def payload(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


@pytest.fixture
def body() -> bytes:
    return payload("payment_intent.succeeded.json")


@pytest.fixture
def stripe_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """Freeze the clock stripe's verify_header reads (its module's `time.time()`), and nothing else."""
    monkeypatch.setattr(stripe_webhook, "time", SimpleNamespace(time=lambda: float(NOW)))


def ours_accepts(body: bytes, header: str | None, secret: str) -> bool:
    try:
        verify(body, header, [secret], now=NOW, tolerance_seconds=TOLERANCE)
    except SignatureError:
        return False
    return True


def stripe_accepts(body: bytes, header: str | None, secret: str) -> bool:
    try:
        stripe.WebhookSignature.verify_header(body, header, secret, TOLERANCE)
    except stripe.SignatureVerificationError:
        return False
    return True


def v1(body: bytes, secret: str, timestamp: int) -> str:
    """Independent of the module: Stripe's documented computation."""
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


# ---- signing -----------------------------------------------------------------------------------------------------


def test_signature_matches_a_known_vector() -> None:
    # Given a fixed body, key and time / Then v1 is the value from:
    #   printf '1700000000.{"id":"evt_1"}' | openssl dgst -sha256 -hmac whsec_test
    assert signature(b'{"id":"evt_1"}', "whsec_test", 1_700_000_000) == (
        "c89214b5b5da833daed6f0b8c5bb6bd58cea9022bd80ccc78230f3942d632925"
    )


@pytest.mark.parametrize(
    "name", ["payment_intent.succeeded.json", "checkout.session.completed.json", "customer.updated.json"]
)
def test_sign_builds_the_header_stripe_builds(name: str) -> None:
    # Given a body (two of them with non-ASCII text, which stripe signs as UTF-8 text and we sign as bytes)
    raw = payload(name)

    # When both sides build the header for the same secret and time / Then they are identical
    expected = stripe.WebhookSignature.generate_signature_header(raw.decode("utf-8"), SECRET, timestamp=NOW)
    assert sign(raw, SECRET, NOW) == expected == f"t={NOW},v1={v1(raw, SECRET, NOW)}"


@pytest.mark.parametrize(
    "name",
    sorted(path.name for path in FIXTURES.glob("*.json")),
)
def test_headers_generated_by_stripe_are_accepted(name: str) -> None:
    # Given every fixture body signed by the stripe library, as Stripe's servers would sign it
    raw = payload(name)
    header = stripe.WebhookSignature.generate_signature_header(raw.decode("utf-8"), SECRET, timestamp=NOW - 5)

    # When we verify it / Then it passes
    verify(raw, header, [SECRET], now=NOW)


# ---- our verdict against stripe's --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    header: Callable[[bytes], str | None]  # the Stripe-Signature value for the original body
    reason: str | None  # our SignatureError message; None when we accept
    body: Callable[[bytes], bytes] = lambda original: original  # what actually arrives
    stripe_agrees: bool = True


def _good(timestamp: int = NOW, secret: str = SECRET) -> Callable[[bytes], str]:
    return lambda raw: f"t={timestamp},v1={v1(raw, secret, timestamp)}"


CASES: dict[str, Case] = {
    "valid": Case(_good(), None),
    "valid, signed 300 s ago (the edge)": Case(_good(NOW - TOLERANCE), None),
    "valid, with a v0 beside it": Case(lambda raw: f"{_good()(raw)},v0={'0' * 64}", None),
    "wrong secret": Case(_good(secret="whsec_someone_else"), "signature mismatch"),
    "tampered body": Case(
        _good(), "signature mismatch", body=lambda raw: raw.replace(b'"amount": 2000', b'"amount": 1')
    ),
    "re-serialised JSON": Case(
        _good(), "signature mismatch", body=lambda raw: json.dumps(json.loads(raw), separators=(",", ":")).encode()
    ),
    "signed time changed after signing": Case(
        lambda raw: f"t={NOW - 1},v1={v1(raw, SECRET, NOW)}", "signature mismatch"
    ),
    "upper-case hex": Case(lambda raw: f"t={NOW},v1={v1(raw, SECRET, NOW).upper()}", "signature mismatch"),
    "expired: 301 s old": Case(_good(NOW - TOLERANCE - 1), "timestamp outside the tolerance"),
    "expired: a day old": Case(_good(NOW - 86_400), "timestamp outside the tolerance"),
    "expired and forged": Case(_good(NOW - 86_400, "whsec_someone_else"), "signature mismatch"),
    # stripe's SDKs only look backwards; a timestamp this far ahead is no clock Stripe runs, so we refuse it.
    "future beyond tolerance": Case(_good(NOW + TOLERANCE + 1), "timestamp outside the tolerance", stripe_agrees=False),
    "future within tolerance": Case(_good(NOW + TOLERANCE), None),
    "two v1, the second valid (rotation)": Case(
        lambda raw: f"t={NOW},v1={v1(raw, OLD_SECRET, NOW)},v1={v1(raw, SECRET, NOW)}", None
    ),
    "two v1, the first valid": Case(
        lambda raw: f"t={NOW},v1={v1(raw, SECRET, NOW)},v1={v1(raw, OLD_SECRET, NOW)}", None
    ),
    "two v1, neither valid": Case(
        lambda raw: f"t={NOW},v1={v1(raw, OLD_SECRET, NOW)},v1={'f' * 64}", "signature mismatch"
    ),
    "only a v0 that would match": Case(lambda raw: f"t={NOW},v0={v1(raw, SECRET, NOW)}", "no v1 signature"),
    "no signature at all": Case(lambda raw: f"t={NOW}", "no v1 signature"),
    "missing header": Case(lambda raw: None, "missing signature"),
    "empty header": Case(lambda raw: "", "missing signature"),
    "garbage header": Case(lambda raw: "garbage", "malformed signature header"),
    "no timestamp": Case(lambda raw: f"v1={v1(raw, SECRET, NOW)}", "malformed signature header"),
    "timestamp not a number": Case(lambda raw: f"t=yesterday,v1={v1(raw, SECRET, NOW)}", "malformed signature header"),
    "hex value of another body": Case(lambda raw: f"t={NOW},v1={v1(b'{}', SECRET, NOW)}", "signature mismatch"),
}


@pytest.mark.usefixtures("stripe_now")
@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_our_verdict_matches_the_stripe_library(body: bytes, case: Case) -> None:
    # Given a delivery as it arrives
    header = case.header(body)
    arrived = case.body(body)

    # When we verify it / Then the outcome (and its reason) is as written
    if case.reason is None:
        verify(arrived, header, [SECRET], now=NOW, tolerance_seconds=TOLERANCE)
    else:
        with pytest.raises(SignatureError, match=f"^{case.reason}$"):
            verify(arrived, header, [SECRET], now=NOW, tolerance_seconds=TOLERANCE)

    # And stripe's own verify_header, at the same frozen time, reaches the same verdict (one documented exception)
    assert stripe_accepts(arrived, header, SECRET) is (
        ours_accepts(arrived, header, SECRET) if case.stripe_agrees else not ours_accepts(arrived, header, SECRET)
    )


# ---- secrets -------------------------------------------------------------------------------------------------------


def test_rotated_secret_second_in_the_list_matches(body: bytes) -> None:
    # Given a rotation in progress (new secret first) and a delivery still signed with the old one
    # When verified against both / Then it passes
    verify(body, sign(body, OLD_SECRET, NOW), [SECRET, OLD_SECRET], now=NOW)


def test_rotated_secret_no_longer_listed_fails(body: bytes) -> None:
    # Given the old secret has been dropped from the list / Then its signatures stop working
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(body, sign(body, OLD_SECRET, NOW), [SECRET], now=NOW)


@pytest.mark.parametrize("secrets", [[], [""], ["", "  "]])
def test_no_usable_secret_is_refused(body: bytes, secrets: list[str]) -> None:
    # Given nothing to verify with (a blank key would let anyone sign) / Then verification refuses
    with pytest.raises(SignatureError, match="no secret configured"):
        verify(body, sign(body, "", NOW), secrets, now=NOW)


def test_a_single_string_is_one_secret_not_many(body: bytes) -> None:
    # Given a caller passing a bare string / When a one-character key signs / Then it does not match
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(body, sign(body, "w", NOW), SECRET, now=NOW)
    verify(body, sign(body, SECRET, NOW), SECRET, now=NOW)


def test_every_secret_and_every_v1_is_compared_even_after_a_match(body: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given two secrets, three v1 values, and the very first comparison already a match
    header = f"t={NOW},v1={v1(body, SECRET, NOW)},v1={'a' * 64},v1={'b' * 64}"
    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)

    # When verified
    verify(body, header, [SECRET, OLD_SECRET], now=NOW)

    # Then all 2 x 3 comparisons ran: no early exit tells a timing observer which one matched
    assert len(compared) == 6


def test_error_messages_never_contain_a_secret(body: bytes) -> None:
    # Given every failure mode / Then no message reveals a configured secret
    for header, secrets in [
        (None, [SECRET]),
        ("garbage", [SECRET]),
        (f"t={NOW},v1=bad", [SECRET, OLD_SECRET]),
        (sign(body, SECRET, NOW - 3600), [SECRET]),
        ("t=1,v1=bad", []),
    ]:
        with pytest.raises(SignatureError) as caught:
            verify(body, header, secrets, now=NOW)
        assert SECRET not in str(caught.value)
        assert OLD_SECRET not in str(caught.value)


# ---- header parsing (ours only) ------------------------------------------------------------------------------------


def test_header_parts_are_read_in_any_order_with_spaces_tolerated(body: bytes) -> None:
    # Given a proxy that reordered and padded the header parts
    header = f" v0={'0' * 64} , v1={v1(body, SECRET, NOW)} , t={NOW} "

    # When parsed and verified / Then the timestamp and the one v1 are found and it passes
    assert parse_signature_header(header) == (NOW, [v1(body, SECRET, NOW)])
    verify(body, header, [SECRET], now=NOW)


@pytest.mark.parametrize(
    "header",
    [
        f"t={NOW},t={NOW},v1=00",  # two timestamps: which one was signed?
        "t=+1730419200,v1=00",
        "t= 1730419200,v1=00",
        "t=1_730_419_200,v1=00",
        "t=\uff11\uff17\uff13\uff10,v1=00",  # full-width digits, which int() would accept
        "t=" + "9" * 5000 + ",v1=00",  # more digits than int() takes
        f"t={NOW},v1=00,",  # an empty part
        f"t={NOW};v1=00",
    ],
)
def test_malformed_headers_are_refused(body: bytes, header: str) -> None:
    with pytest.raises(SignatureError, match=r"^malformed signature header$"):
        verify(body, header, [SECRET], now=NOW)


def test_non_ascii_signature_is_a_mismatch_not_a_crash(body: bytes) -> None:
    # Given garbage where the hex should be / When verified / Then it is an ordinary mismatch
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(body, f"t={NOW},v1={'ü' * 64}", [SECRET], now=NOW)


# ---- the WebhookSource -----------------------------------------------------------------------------------------------


def test_source_reads_the_lower_cased_header_and_its_injected_clock(body: bytes) -> None:
    # Given a source whose clock reads NOW, and a delivery signed 299 s before
    source = StripeWebhooks(clock=lambda: float(NOW))
    headers = {"stripe-signature": sign(body, SECRET, NOW - 299), "content-type": "application/json"}

    # When verified / Then it passes; and with a 60 s tolerance the same delivery is stale
    source.verify(body, headers, [SECRET])
    with pytest.raises(SignatureError, match="timestamp outside the tolerance"):
        StripeWebhooks(tolerance_seconds=60, clock=lambda: float(NOW)).verify(body, headers, [SECRET])
    # And without the header it is missing
    with pytest.raises(SignatureError, match="missing signature"):
        source.verify(body, {"content-type": "application/json"}, [SECRET])


def test_source_defaults() -> None:
    source = StripeWebhooks()
    assert (source.name, source.secret_setting, source.tolerance_seconds) == ("stripe", "stripe_secret_id", 300)
    assert source.handled_topics == {
        "payment_intent.succeeded",
        "payment_intent.payment_failed",
        "charge.succeeded",
        "charge.failed",
        "charge.refunded",
        "charge.refund.updated",
        "charge.dispute.created",
        "charge.dispute.updated",
        "charge.dispute.closed",
        "radar.early_fraud_warning.created",
        "customer.created",
        "customer.updated",
        "customer.deleted",
        "invoice.paid",
        "invoice.payment_failed",
        "checkout.session.completed",
    }
    assert source.is_ping(b"{}", {}) is False


def test_topic_account_and_receipt_id_come_from_the_event() -> None:
    # Given a Connect event (it names the connected account) and an event of the platform itself
    source = StripeWebhooks()
    connect_body = payload("payment_intent.succeeded.jpy-live.json")
    connect = json.loads(connect_body)
    own_body = payload("charge.refunded.json")
    own = json.loads(own_body)

    # Then topic and account are the event's, and the receipt is keyed on account and event id
    assert source.topic({}, connect) == "payment_intent.succeeded"
    assert source.account({}, connect) == "acct_1JpShop0000001"
    assert source.receipt_id({}, connect, connect_body) == "stripe:acct_1JpShop0000001:evt_3PJpyLive0000000000001"
    assert source.topic({}, own) == "charge.refunded"
    assert source.account({}, own) is None
    assert source.receipt_id({}, own, own_body) == "stripe:self:evt_000000000000000000000000"


def test_receipt_id_falls_back_to_the_body_hash_without_an_event_id() -> None:
    # Given JSON that carries no event id (nor a type)
    raw = b'{"object": "event"}'

    # Then there is no topic, and the receipt is the body's digest
    source = StripeWebhooks()
    assert source.topic({}, json.loads(raw)) is None
    assert source.receipt_id({}, json.loads(raw), raw) == (
        "stripe:self:sha256-" + "c92a8c9dd45fc82f81bc96636d28315996723c1246c6de6cf138f18acac736c5"
    )


@pytest.mark.parametrize("parsed", [[1, 2], "text", 7, None, {"type": 5, "id": ["x"], "account": {}}])
def test_json_that_is_no_object_has_no_topic_or_account(parsed: object) -> None:
    source = StripeWebhooks()
    assert source.topic({}, parsed) is None
    assert source.account({}, parsed) is None
    assert source.receipt_id({}, parsed, b"x").startswith("stripe:self:sha256-")
