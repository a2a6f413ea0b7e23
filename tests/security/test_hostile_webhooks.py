"""Hostile input against POST /webhooks/{source}, through the real ingest handler on moto.

Every answer is a 4xx with a JSON reason (or the documented 200 of a duplicate, an ignored topic or WooCommerce's
ping), never a 5xx; nothing is stored or enqueued from a request that is not verified (each request's AWS writes are
recorded, and the account is counted when each test ends); a signed delivery sent twice is processed once."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
import zlib
from datetime import UTC, datetime, timedelta

from hypothesis import assume, given
from hypothesis import strategies as st

from crmsync.settings import Settings
from tests.security.stats import record
from tests.security.strategies import (
    CONTROL,
    fuzz,
    header_maps,
    header_values,
    hostile_bodies,
    json_values,
    unknown_sources,
)
from tests.security.webhooks import (
    SAMPLES,
    SIGNATURE_HEADERS,
    SOURCES,
    WEBHOOK_SECRETS,
    sign_headers,
    webhook_event,
    with_event_id,
)

# A reason is short prose (no @, quotes, braces or non-ASCII): it never carries an email or a body back to the caller.
REASON = re.compile(r"\A[A-Za-z0-9 ;:,./()_-]{3,120}\Z")
WEBHOOK_ANSWERS = {"accepted", "duplicate", "ignored"}
STORING = [
    "dynamodb.PutItem",
    "s3.PutObject",
    "sqs.SendMessage",
    "dynamodb.UpdateItem",
]  # claim, archive, queue, accept
BIND = "dynamodb.PutItem"  # PayPal: the transmission id bound to its body (crmsync.ingest)


def assert_refused(status: int, answer: dict, *sent: str) -> None:
    assert 400 <= status < 500, (status, answer)
    assert REASON.fullmatch(answer.get("error", "")), answer
    for value in sent:
        if len(value) >= 6:
            assert value not in answer["error"]


def fresh(source: str, paypal_key, **kwargs) -> tuple[bytes, dict[str, str]]:
    """A correctly signed delivery of the source's sample, with its own event id."""
    event_id = uuid.uuid4().hex
    body = with_event_id(source, SAMPLES[source], event_id)
    return body, sign_headers(source, body, paypal_key, event_id=event_id, **kwargs)


def outcome(writes, status: int, answer: dict, *, verified: bool) -> list[str]:
    """Record the request in the run's numbers; the AWS writes it made. An accepted delivery stores exactly once."""
    calls = writes.take()
    record(status, verified=verified, stored=bool(calls))
    if status == 200 and answer.get("status") == "accepted":
        # PayPal first binds the signed transmission id to the body's SHA-256 (one more receipts-table item)
        bound = calls == [BIND, *STORING]
        assert calls == STORING or bound, calls
        writes.expect(receipts=1 + bound, archived=1, queued=1)
    return calls


# ---- unverified requests --------------------------------------------------------------------------------------------


@fuzz(400)
@given(
    source=st.one_of(st.sampled_from(SOURCES), unknown_sources),
    body=hostile_bodies,
    headers=header_maps,
    base64_flag=st.sampled_from([None, True, False]),
)
def test_unverified_requests_get_a_4xx_reason_and_store_nothing(ingest, writes, source, body, headers, base64_flag):
    # Given any body with any headers, none of them a valid signature, posted to any source's endpoint
    status, answer = ingest(webhook_event(source, body, headers, base64_flag=base64_flag))
    # Then nothing is stored, and it is refused with a reason (only WooCommerce's unsigned ping is answered 200)
    assert outcome(writes, status, answer, verified=False) == []
    if source == "woocommerce" and answer == {"status": "ignored", "receipt_id": None}:
        assert status == 200
    else:
        assert_refused(status, answer, *[v for v in headers.values() if isinstance(v, str)])


@fuzz(100)
@given(source=st.one_of(st.sampled_from(SOURCES), unknown_sources), text=st.text(max_size=200))
def test_a_body_flagged_base64_that_is_not_base64_is_refused(ingest, writes, source, text):
    # Given API Gateway's flag says base64 but the body is any text (a lie, or a proxy that decoded it already)
    status, answer = ingest(webhook_event(source, text, {"X-Shopify-Topic": "orders/create"}, base64_flag=True))
    assert outcome(writes, status, answer, verified=False) == []
    assert_refused(status, answer, text)


# ---- signed deliveries, tampered with -------------------------------------------------------------------------------

MUTATIONS = [
    "flip-bit",
    "append",
    "truncate",
    "wrong-secret",
    "other-source-secret",
    "other-source-headers",
    "drop-signature-header",
    "garbage-signature",
    "stale-or-early",
    "base64-text-as-body",
    "double-base64",
]


@fuzz(300)
@given(source=st.sampled_from(SOURCES), mutation=st.sampled_from(MUTATIONS), data=st.data())
def test_a_tampered_signed_delivery_is_refused_and_stores_nothing(ingest, writes, paypal_key, source, mutation, data):
    # Given a correctly signed delivery, changed after signing (or signed by someone else)
    body, headers = fresh(source, paypal_key)
    base64_flag: bool | None = None
    sent: bytes | str = body
    if mutation == "flip-bit":
        # (positions drawn independently of the length: the sample's length varies with its random event id)
        index, bit = data.draw(st.integers(0, 2**20)) % len(body), data.draw(st.integers(0, 7))
        sent = body[:index] + bytes([body[index] ^ (1 << bit)]) + body[index + 1 :]
    elif mutation == "append":
        sent = body + data.draw(st.binary(min_size=1, max_size=64))
    elif mutation == "truncate":
        sent = body[: data.draw(st.integers(0, 2**20)) % len(body)]
    elif mutation == "wrong-secret":
        secret = data.draw(st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != WEBHOOK_SECRETS[source]))
        assume(secret.strip())
        headers = sign_headers(source, body, paypal_key, secret=secret)
    elif mutation == "other-source-secret":
        other = data.draw(st.sampled_from([s for s in SOURCES if s != source]))
        headers = sign_headers(source, body, paypal_key, secret=WEBHOOK_SECRETS[other])
    elif mutation == "other-source-headers":
        other = data.draw(st.sampled_from([s for s in SOURCES if s != source]))
        headers = sign_headers(other, body, paypal_key)
    elif mutation == "drop-signature-header":
        name = data.draw(st.sampled_from(SIGNATURE_HEADERS[source]))
        headers = {k: v for k, v in headers.items() if k.lower() != name}
    elif mutation == "garbage-signature":
        # PayPal's transmission id and certificate URL are not secret: any id or allowed URL may be given; the time
        # is signed, so changing it must fail
        name = data.draw(st.sampled_from([n for n in SIGNATURE_HEADERS[source] if n not in _PAYPAL_UNSIGNED]))
        value = data.draw(header_values)
        old = {k.lower(): v for k, v in headers.items()}[name]
        assume(value.strip() != old)
        headers = {**{k: v for k, v in headers.items() if k.lower() != name}, name: value}
    elif mutation == "stale-or-early":
        if source == "paypal":  # a signed transmission time outside PayPal's window (4 days back, 15 minutes ahead)
            offset = data.draw(st.one_of(st.integers(4 * 86400 + 60, 10**7), st.integers(-(10**7), -960)))
            at = datetime.now(UTC) - timedelta(seconds=offset)
            event_id = headers["PAYPAL-TRANSMISSION-ID"]
            headers = sign_headers(source, body, paypal_key, event_id=event_id, paypal_time=at)
        elif source != "stripe":  # Shopify and WooCommerce sign no time: there, replay protection is dedupe
            sent = body + b" "
        else:
            from crmsync.sources.stripe import sign

            offset = data.draw(st.integers(301, 10**7)) * data.draw(st.sampled_from([-1, 1]))
            headers["Stripe-Signature"] = sign(body, WEBHOOK_SECRETS["stripe"], int(time.time()) + offset)
    elif mutation == "base64-text-as-body":
        sent, base64_flag = base64.b64encode(body).decode(), False
    elif mutation == "double-base64":
        sent = base64.b64encode(body)
    # When it is posted, Then it is refused with a reason and nothing is stored
    status, answer = ingest(webhook_event(source, sent, headers, base64_flag=base64_flag))
    assert outcome(writes, status, answer, verified=False) == []
    assert_refused(status, answer)


_PAYPAL_UNSIGNED = ("paypal-transmission-id", "paypal-cert-url")


def test_a_signature_of_one_source_sent_to_another_is_refused(ingest, writes, paypal_key):
    for origin in SOURCES:
        for target in SOURCES:
            # Given a delivery correctly signed by one source
            body, headers = fresh(origin, paypal_key)
            # When it is posted to another source's endpoint, Then 401 and nothing stored (to its own: accepted)
            status, answer = ingest(webhook_event(target, body, headers))
            calls = outcome(writes, status, answer, verified=origin == target)
            if origin == target:
                assert (status, answer["status"]) == (200, "accepted")
            else:
                assert (status, calls) == (401, []), (origin, target, answer)
                assert_refused(status, answer)


def test_unknown_sources_are_404_even_when_signed(ingest, writes, paypal_key):
    body, headers = fresh("shopify", paypal_key)
    for name in ("Shopify", "shopify/", "../shopify", "hubspot", "", "__class__"):
        status, answer = ingest(webhook_event(name, body, headers))
        assert outcome(writes, status, answer, verified=False) == []
        assert (status, answer) == (404, {"error": "unknown webhook source"})


# ---- signed deliveries with hostile content -------------------------------------------------------------------------


def envelope(source: str, payload: object, event_id: str) -> object:
    """Stripe and PayPal name the topic in the body: put hostile data where their objects go, so it gets past
    "missing topic" into receipts and the queue."""
    if source == "stripe":
        return {"id": event_id, "type": "payment_intent.succeeded", "data": {"object": payload}}
    if source == "paypal":
        return {"id": event_id, "event_type": "PAYMENT.CAPTURE.COMPLETED", "resource": payload}
    return payload


@fuzz(120)
@given(source=st.sampled_from(SOURCES), body=hostile_bodies, value=json_values, wrap=st.booleans())
def test_signed_hostile_bodies_are_never_a_5xx(
    aws, ingest, writes, lambda_context, paypal_key, source, body, value, wrap
):
    # Given a correctly signed body that is anything: not JSON, not UTF-8, deep, huge numbers, wrong types
    event_id = uuid.uuid4().hex
    if wrap:
        body = json.dumps(envelope(source, value, event_id)).encode()
    headers = sign_headers(source, body, paypal_key, event_id=event_id)
    # When it is posted
    status, answer = ingest(webhook_event(source, body, headers))
    calls = outcome(writes, status, answer, verified=True)
    # Then it is acknowledged (a signed body that is JSON is the source's: 200) or refused as not JSON, never a 5xx
    if status == 200:
        assert answer["status"] in WEBHOOK_ANSWERS
    else:
        assert_refused(status, answer)
        # A hostile body can also be a big one (a deep nesting of a million bytes): that is the 413 of the limit
        assert (status, calls) == (413 if len(body) > Settings().max_body_bytes else 400, [])
    # And conversion of whatever was accepted fails (or succeeds) record by record, never the whole batch
    messages = aws.receive_all(aws.env["INGEST_QUEUE_URL"])
    if messages:
        from convert import app as convert_app

        writes.expect(queued=-len(messages))
        result = convert_app.lambda_handler(aws.sqs_event(messages, "ingest"), lambda_context)
        assert set(result) == {"batchItemFailures"}
        writes.take()


HEADERS_BY_ROLE = {
    "topic": {"shopify": "X-Shopify-Topic", "woocommerce": "X-WC-Webhook-Topic"},
    "delivery": {"shopify": "X-Shopify-Event-Id", "woocommerce": "X-WC-Webhook-Resource"},
    "account": {"shopify": "X-Shopify-Shop-Domain", "woocommerce": "X-WC-Webhook-Source"},
    "signature": {s: SIGNATURE_HEADERS[s][0] for s in SOURCES},
}


@fuzz(150)
@given(
    source=st.sampled_from(SOURCES),
    role=st.sampled_from([*HEADERS_BY_ROLE, "content-type"]),
    value=st.one_of(header_values, st.text(min_size=1, max_size=8192)),
    inject=st.sampled_from(["", *CONTROL]),
)
def test_hostile_header_values_on_signed_deliveries_are_never_a_5xx(
    ingest, writes, paypal_key, source, role, value, inject
):
    # Given a signed delivery one of whose headers (signed or not) carries a hostile value, maybe a CR/LF injection
    body, headers = fresh(source, paypal_key)
    name = HEADERS_BY_ROLE.get(role, {}).get(source, "Content-Type")
    headers = {**{k: v for k, v in headers.items() if k.lower() != name.lower()}, name: value + inject + value}
    status, answer = ingest(webhook_event(source, body, headers))
    calls = outcome(writes, status, answer, verified=status == 200)
    # Then a control character is refused before anything else; otherwise the answer is a 200 or a 4xx, never a 5xx
    if re.search(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]", value + inject):
        assert (status, answer) == (400, {"error": "header value with a control or invalid character"})
    if status == 200:
        assert answer["status"] in WEBHOOK_ANSWERS
    else:
        assert_refused(status, answer, value)
        assert calls == []


# ---- replays --------------------------------------------------------------------------------------------------------


@fuzz(40)
@given(source=st.sampled_from(SOURCES), copies=st.integers(2, 4), resign=st.booleans())
def test_a_replayed_signed_delivery_is_a_duplicate_and_processed_once(
    ingest, writes, paypal_key, source, copies, resign
):
    # Given a signed delivery, accepted once
    body, headers = fresh(source, paypal_key)
    status, answer = ingest(webhook_event(source, body, headers))
    outcome(writes, status, answer, verified=True)
    assert (status, answer["status"]) == (200, "accepted")
    # When the same signed bytes arrive again (as captured, or freshly signed by the sender's retry)
    for _ in range(copies - 1):
        if resign:
            delivery = headers.get("X-Shopify-Event-Id") or headers.get("PAYPAL-TRANSMISSION-ID")
            headers = sign_headers(source, body, paypal_key, event_id=delivery)
        again, duplicate = ingest(webhook_event(source, body, headers))
        # Then each is a duplicate of the first, and stores nothing (PayPal: the same binding is put again first)
        expected = [BIND, "dynamodb.PutItem"] if source == "paypal" else ["dynamodb.PutItem"]  # the refused claim
        assert outcome(writes, again, duplicate, verified=True) == expected
        assert (again, duplicate) == (200, {"status": "duplicate", "receipt_id": answer["receipt_id"]})


# ---- size limits ----------------------------------------------------------------------------------------------------


def test_a_body_over_one_mebibyte_is_413_for_every_source(ingest, writes, paypal_key):
    # Given a body one byte over the 1 MiB limit, signed or not
    body = b'{"pad":"' + b"x" * (1024 * 1024 - 9) + b'"}'
    for source in SOURCES:
        for headers in (sign_headers(source, body, paypal_key), {"Content-Type": "application/json"}):
            # When posted, Then 413 with a reason, nothing stored
            status, answer = ingest(webhook_event(source, body, headers))
            assert outcome(writes, status, answer, verified=False) == []
            assert (status, answer) == (413, {"error": "body larger than 1048576 bytes"})


@fuzz(60)
@given(source=st.sampled_from(SOURCES), size=st.integers(1000, 1100))
def test_the_body_limit_is_exact(ingest, writes, paypal_key, monkeypatch, source, size):
    # Given a limit of 1024 bytes (MAX_BODY_BYTES), and a signed JSON body of about that size
    monkeypatch.setenv("MAX_BODY_BYTES", "1024")
    body = json.dumps({"id": uuid.uuid4().hex, "pad": "x" * (size - 54)}).encode()
    status, answer = ingest(webhook_event(source, body, sign_headers(source, body, paypal_key)))
    outcome(writes, status, answer, verified=len(body) <= 1024)
    # Then over it is 413, and up to it never is
    assert (status == 413) == (len(body) > 1024), (len(body), status, answer)


# ---- PayPal signs CRC32(body), not the body --------------------------------------------------------------------------


def forge_crc32(text: bytes, slot: int, width: int, crc: int) -> bytes:
    """`text` with its bytes [slot, slot + width) set to characters in "`".."~" (and DEL) so that its CRC32 is `crc`.
    CRC32 is affine over GF(2): the 5 low bits of each slot byte give 5 * width columns; solve for the target."""
    base = bytearray(text)
    base[slot : slot + width] = b"`" * width
    start = zlib.crc32(bytes(base))
    basis: dict[int, tuple[int, set[tuple[int, int]]]] = {}  # pivot bit -> (vector, the flips that make it)
    for i in range(width):
        for bit in range(5):
            flipped = bytearray(base)
            flipped[slot + i] ^= 1 << bit
            vector, flips = zlib.crc32(bytes(flipped)) ^ start, {(i, bit)}
            for pivot in sorted(basis, reverse=True):
                if vector >> pivot & 1:
                    vector, flips = vector ^ basis[pivot][0], flips ^ basis[pivot][1]
            if vector:
                basis[vector.bit_length() - 1] = (vector, flips)
    wanted, chosen = crc ^ start, set[tuple[int, int]]()
    for pivot in sorted(basis, reverse=True):
        if wanted >> pivot & 1:
            wanted, chosen = wanted ^ basis[pivot][0], chosen ^ basis[pivot][1]
    assert wanted == 0
    for i, bit in chosen:
        base[slot + i] ^= 1 << bit
    return bytes(base)


def test_a_paypal_body_forged_to_a_captured_deliverys_crc32_is_refused(aws, ingest, paypal_key):
    # PayPal's offline scheme signs transmission id|time|webhook id|CRC32(body): whoever holds one signed delivery can
    # send any body with the same CRC32 under it. Ingest binds each transmission id to its body's SHA-256, and refuses
    # transmission times older than PAYPAL_TRANSMISSION_MAX_AGE_SECONDS (so a binding outlives every usable signature).
    # Given a genuine PayPal delivery, accepted, and its headers in someone else's hands
    body, headers = fresh("paypal", paypal_key)
    assert ingest(webhook_event("paypal", body, headers))[1]["status"] == "accepted"
    # When they send another event under the same headers, its CRC32 made equal to the genuine body's
    document = json.loads(body)
    document["id"], document["resource"]["amount"]["value"], document["note"] = "WH-FORGED", "9999.00", "`" * 8
    text = json.dumps(document).encode()
    forged = forge_crc32(text, text.index(b'"note": "') + 9, 8, zlib.crc32(body))
    assert zlib.crc32(forged) == zlib.crc32(body)
    assert json.loads(forged)["resource"]["amount"]["value"] == "9999.00"
    # Then it is refused, with nothing stored for it
    assert ingest(webhook_event("paypal", forged, headers)) == (
        401,
        {"error": "transmission already used for another body"},
    )


def test_a_captured_paypal_delivery_ages_out_of_the_window(aws, ingest, paypal_key, monkeypatch):
    # Given a PayPal delivery signed 4 days and a minute ago (PayPal's retries span 3 days: no genuine retry is older)
    body, headers = fresh("paypal", paypal_key)
    old = datetime.now(UTC) - timedelta(days=4, minutes=1)
    headers = sign_headers("paypal", body, paypal_key, event_id=headers["PAYPAL-TRANSMISSION-ID"], paypal_time=old)
    # Then it is refused; and the window is a setting
    assert ingest(webhook_event("paypal", body, headers)) == (
        401,
        {"error": "transmission time outside the accepted window"},
    )
    monkeypatch.setenv("PAYPAL_TRANSMISSION_MAX_AGE_SECONDS", str(5 * 86400))
    assert ingest(webhook_event("paypal", body, headers))[1]["status"] == "accepted"
