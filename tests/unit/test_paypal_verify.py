"""PayPal webhook signatures: RSA-SHA256 over "<transmission id>|<time>|<webhook id>|<crc32(body)>", checked with
the certificate PayPal serves at PAYPAL-CERT-URL (only from PayPal's hosts), for any configured webhook id; and the
postback alternative, with fakes for every download and API call (sockets are off in unit tests)."""

from __future__ import annotations

import base64
import io
import json
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from crmsync.sources import paypal
from crmsync.sources.base import SignatureError
from crmsync.sources.paypal import (
    HANDLED_TOPICS,
    PayPalWebhooks,
    clear_certificate_cache,
    fetch_certificate,
    postback_verifier,
    signed_message,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "paypal"
WEBHOOK_ID = "1JE4291016473214C"  # the app's current webhook id (the dashboard's "Webhook ID")
OLD_WEBHOOK_ID = "8PT597110X687430LKGECATA"
CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-360caa42-fca2a594-1d93a270"
TRANSMISSION_ID = "69cd13f0-d67a-11e5-baa3-778b53f4ae55"
TRANSMISSION_TIME = "2024-05-01T00:30:02Z"


# ---- a signing certificate of our own, served through a fake download ---------------------------------------------


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def certificate_pem(key: rsa.RSAPrivateKey, not_before: datetime, not_after: datetime) -> bytes:
    """A self-signed certificate for the key, named like PayPal's, valid between the two times."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.paypal.com")])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    return certificate.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope="module")
def valid_pem(key: rsa.RSAPrivateKey) -> bytes:
    now = datetime.now(UTC)
    return certificate_pem(key, now - timedelta(days=1), now + timedelta(days=365))


class FakeDownloads:
    """Serves PEM bytes by URL and remembers every URL asked for."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.fetched: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        if url not in self.files:
            raise OSError("404")
        return self.files[url]


@pytest.fixture(autouse=True)
def _fresh_certificate_cache() -> Iterator[None]:
    clear_certificate_cache()
    yield
    clear_certificate_cache()


@pytest.fixture
def downloads(valid_pem: bytes) -> FakeDownloads:
    return FakeDownloads({CERT_URL: valid_pem})


@pytest.fixture
def source(downloads: FakeDownloads) -> PayPalWebhooks:
    return PayPalWebhooks(fetch_cert=downloads)


@pytest.fixture
def body() -> bytes:
    return (FIXTURES / "PAYMENT.CAPTURE.COMPLETED.json").read_bytes()


def sign(key: rsa.RSAPrivateKey, body: bytes, webhook_id: str, transmission_id: str = TRANSMISSION_ID) -> str:
    """PAYPAL-TRANSMISSION-SIG as PayPal computes it, written out here without the module."""
    message = f"{transmission_id}|{TRANSMISSION_TIME}|{webhook_id}|{zlib.crc32(body)}".encode()
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def headers_for(signature: str, cert_url: str = CERT_URL, algo: str = "SHA256withRSA") -> dict[str, str]:
    return {
        "paypal-transmission-id": TRANSMISSION_ID,
        "paypal-transmission-time": TRANSMISSION_TIME,
        "paypal-transmission-sig": signature,
        "paypal-cert-url": cert_url,
        "paypal-auth-algo": algo,
        "content-type": "application/json",
    }


type Signed = Callable[..., dict[str, str]]


@pytest.fixture
def signed(key: rsa.RSAPrivateKey, body: bytes) -> Signed:
    """Headers of a delivery of `body` signed for a webhook id (WEBHOOK_ID unless told)."""

    def make(webhook_id: str = WEBHOOK_ID, **overrides: str) -> dict[str, str]:
        return headers_for(sign(key, body, webhook_id), **overrides)

    return make


# ---- the signed text -----------------------------------------------------------------------------------------------


def test_signed_message_is_pipe_joined_with_the_unsigned_crc32() -> None:
    # Given a body whose CRC32 has the top bit set (a signed 32-bit integer would print it negative)
    # When the signed text is built / Then the CRC is the unsigned decimal 3904355907 (0xE8B7BE43)
    assert signed_message("tid", "2024-05-01T00:30:02Z", "WH1", b"a") == b"tid|2024-05-01T00:30:02Z|WH1|3904355907"
    assert signed_message("t", "x", "W", b"hello") == b"t|x|W|907060870"


# ---- offline verification ------------------------------------------------------------------------------------------


def test_valid_signature_passes(source: PayPalWebhooks, body: bytes, signed: Signed, downloads: FakeDownloads) -> None:
    # Given a delivery signed for our webhook id with the key of the certificate at PAYPAL-CERT-URL
    # When verified / Then nothing is raised, and the certificate was downloaded from that URL
    source.verify(body, signed(), [WEBHOOK_ID])
    assert downloads.fetched == [CERT_URL]


def test_header_names_are_matched_in_any_case(source: PayPalWebhooks, body: bytes, signed: Signed) -> None:
    # Given the headers as PayPal spells them (upper case) / When verified / Then it passes
    source.verify(body, {name.upper(): value for name, value in signed().items()}, [WEBHOOK_ID])


def test_signature_for_another_webhook_id_fails(source: PayPalWebhooks, body: bytes, signed: Signed) -> None:
    # Given a delivery meant for some other app's webhook / Then it does not verify for ours
    with pytest.raises(SignatureError, match="signature mismatch"):
        source.verify(body, signed("5GP028458E2496506"), [WEBHOOK_ID])


def test_rotated_webhook_ids_second_in_the_list_matches(source: PayPalWebhooks, body: bytes, signed: Signed) -> None:
    # Given a rotation in progress (new id first) and a delivery still signed for the old webhook
    # When verified against both / Then it passes
    source.verify(body, signed(OLD_WEBHOOK_ID), [WEBHOOK_ID, OLD_WEBHOOK_ID])


def test_dropped_webhook_id_no_longer_verifies(source: PayPalWebhooks, body: bytes, signed: Signed) -> None:
    with pytest.raises(SignatureError, match="signature mismatch"):
        source.verify(body, signed(OLD_WEBHOOK_ID), [WEBHOOK_ID])


def test_tampered_body_fails(source: PayPalWebhooks, body: bytes, signed: Signed) -> None:
    # Given a valid signature over the original bytes / When the amount in the body changes
    headers = signed()
    tampered = body.replace(b'"value": "2.51"', b'"value": "9.51"', 1)
    assert zlib.crc32(tampered) != zlib.crc32(body)

    # Then the CRC in the signed text changes and the signature no longer fits
    with pytest.raises(SignatureError, match="signature mismatch"):
        source.verify(tampered, headers, [WEBHOOK_ID])


def test_signature_from_a_key_other_than_the_certificates_fails(source: PayPalWebhooks, body: bytes) -> None:
    # Given a delivery signed by an attacker's own key while pointing at PayPal's certificate
    forged = sign(rsa.generate_private_key(public_exponent=65537, key_size=2048), body, WEBHOOK_ID)

    # Then PayPal's public key rejects it
    with pytest.raises(SignatureError, match="signature mismatch"):
        source.verify(body, headers_for(forged), [WEBHOOK_ID])


@pytest.mark.parametrize("garbage", ["not base64 at all!", "ü" * 8, "QUJD"])
def test_signature_that_is_not_base64_of_a_signature_fails(source: PayPalWebhooks, body: bytes, garbage: str) -> None:
    with pytest.raises(SignatureError, match="signature mismatch"):
        source.verify(body, headers_for(garbage), [WEBHOOK_ID])


@pytest.mark.parametrize(
    "header",
    [
        "paypal-transmission-id",
        "paypal-transmission-time",
        "paypal-transmission-sig",
        "paypal-cert-url",
        "paypal-auth-algo",
    ],
)
@pytest.mark.parametrize("blank", [None, "", "  "])
def test_missing_header_fails_without_fetching(
    source: PayPalWebhooks, body: bytes, signed: Signed, downloads: FakeDownloads, header: str, blank: str | None
) -> None:
    # Given a delivery lacking one of the five headers (absent or blank)
    headers = signed()
    if blank is None:
        del headers[header]
    else:
        headers[header] = blank

    # When verified / Then it says the signature is missing, and nothing was downloaded
    with pytest.raises(SignatureError, match="missing signature"):
        source.verify(body, headers, [WEBHOOK_ID])
    assert downloads.fetched == []


@pytest.mark.parametrize("algo", ["SHA1withRSA", "SHA256withECDSA", "sha256withrsa", "none"])
def test_unsupported_algorithm_fails_without_fetching(
    source: PayPalWebhooks, body: bytes, signed: Signed, downloads: FakeDownloads, algo: str
) -> None:
    with pytest.raises(SignatureError, match="unsupported algorithm"):
        source.verify(body, signed(algo=algo), [WEBHOOK_ID])
    assert downloads.fetched == []


@pytest.mark.parametrize(
    "cert_url",
    [
        "https://evil.example.com/cert.pem",
        "http://api.paypal.com/v1/notifications/certs/CERT-1",  # plain HTTP could be swapped on the way
        "https://api.paypal.com.evil.example.com/cert.pem",
        "https://evil.example.com/api.paypal.com/cert.pem",
        "https://api.paypal.com@evil.example.com/cert.pem",  # user info: the host is evil.example.com
        "https://www.paypal.com/cert.pem",  # PayPal's, but not an API host
        "https://api.paypal.com:8443/cert.pem",
        "ftp://api.paypal.com/cert.pem",
        "file:///etc/ssl/cert.pem",
        "https://[::1/cert.pem",  # not even a URL
    ],
)
def test_certificate_from_a_host_outside_the_allow_list_is_refused_without_fetching(
    key: rsa.RSAPrivateKey, body: bytes, cert_url: str
) -> None:
    # Given a delivery whose certificate URL points anywhere but PayPal's API hosts, served a matching certificate
    now = datetime.now(UTC)
    downloads = FakeDownloads({cert_url: certificate_pem(key, now - timedelta(days=1), now + timedelta(days=1))})
    source = PayPalWebhooks(fetch_cert=downloads)

    # When verified / Then it is refused before anything is downloaded, however well it is signed
    with pytest.raises(SignatureError, match="certificate host not allowed"):
        source.verify(body, headers_for(sign(key, body, WEBHOOK_ID), cert_url=cert_url), [WEBHOOK_ID])
    assert downloads.fetched == []


@pytest.mark.parametrize(
    "host", ["api.paypal.com", "api-m.paypal.com", "api.sandbox.paypal.com", "api-m.sandbox.paypal.com"]
)
def test_every_paypal_api_host_is_allowed(
    key: rsa.RSAPrivateKey, valid_pem: bytes, body: bytes, signed: Signed, host: str
) -> None:
    url = f"https://{host}/v1/notifications/certs/CERT-1"
    PayPalWebhooks(fetch_cert=FakeDownloads({url: valid_pem})).verify(body, signed(cert_url=url), [WEBHOOK_ID])


def test_extra_cert_hosts_extend_the_allow_list_for_tests_only(valid_pem: bytes, body: bytes, signed: Signed) -> None:
    # Given a local fake PayPal (the test-only setting; never set in AWS)
    url = "https://paypal-fake.test/certs/CERT-1"
    downloads = FakeDownloads({url: valid_pem})

    # Then its certificates are refused by default, and accepted once its host is added
    with pytest.raises(SignatureError, match="certificate host not allowed"):
        PayPalWebhooks(fetch_cert=downloads).verify(body, signed(cert_url=url), [WEBHOOK_ID])
    PayPalWebhooks(fetch_cert=downloads, extra_cert_hosts=frozenset({"paypal-fake.test"})).verify(
        body, signed(cert_url=url), [WEBHOOK_ID]
    )


def test_expired_certificate_is_refused(key: rsa.RSAPrivateKey, body: bytes, signed: Signed) -> None:
    # Given a correctly signed delivery whose certificate expired yesterday
    now = datetime.now(UTC)
    expired = certificate_pem(key, now - timedelta(days=400), now - timedelta(days=1))
    source = PayPalWebhooks(fetch_cert=FakeDownloads({CERT_URL: expired}))

    # When verified / Then the certificate's dates are what refuses it
    with pytest.raises(SignatureError, match="certificate expired"):
        source.verify(body, signed(), [WEBHOOK_ID])


def test_certificate_not_yet_valid_is_refused(key: rsa.RSAPrivateKey, body: bytes, signed: Signed) -> None:
    now = datetime.now(UTC)
    future = certificate_pem(key, now + timedelta(days=1), now + timedelta(days=400))
    source = PayPalWebhooks(fetch_cert=FakeDownloads({CERT_URL: future}))
    with pytest.raises(SignatureError, match="certificate not yet valid"):
        source.verify(body, signed(), [WEBHOOK_ID])


def test_certificate_is_downloaded_once_per_url(
    source: PayPalWebhooks, key: rsa.RSAPrivateKey, body: bytes, downloads: FakeDownloads
) -> None:
    # Given two deliveries pointing at the same certificate
    first = headers_for(sign(key, body, WEBHOOK_ID))
    second = headers_for(sign(key, body, WEBHOOK_ID, transmission_id="0b0f7a40-d67b-11e5-8b6b-11b6a2b2c9f4"))
    second["paypal-transmission-id"] = "0b0f7a40-d67b-11e5-8b6b-11b6a2b2c9f4"

    # When both are verified (even by another instance, as a warm container makes per request)
    source.verify(body, first, [WEBHOOK_ID])
    PayPalWebhooks(fetch_cert=downloads).verify(body, second, [WEBHOOK_ID])

    # Then the certificate was fetched once
    assert downloads.fetched == [CERT_URL]


def test_failed_download_is_not_cached(valid_pem: bytes, body: bytes, signed: Signed) -> None:
    # Given PayPal's certificate server failing once
    downloads = FakeDownloads({})
    source = PayPalWebhooks(fetch_cert=downloads)
    with pytest.raises(SignatureError, match="certificate could not be fetched"):
        source.verify(body, signed(), [WEBHOOK_ID])

    # When it recovers / Then the next delivery downloads again and passes
    downloads.files[CERT_URL] = valid_pem
    source.verify(body, signed(), [WEBHOOK_ID])
    assert downloads.fetched == [CERT_URL, CERT_URL]


@pytest.mark.parametrize("served", [b"", b"<html>503 Service Unavailable</html>", b"-----BEGIN CERTIFICATE-----\nAA"])
def test_something_that_is_not_a_certificate_counts_as_not_fetched(body: bytes, signed: Signed, served: bytes) -> None:
    source = PayPalWebhooks(fetch_cert=FakeDownloads({CERT_URL: served}))
    with pytest.raises(SignatureError, match="certificate could not be fetched"):
        source.verify(body, signed(), [WEBHOOK_ID])


@pytest.mark.parametrize("secrets", [[], [""], ["", "  "]])
def test_no_webhook_id_configured_is_refused(source: PayPalWebhooks, body: bytes, signed: Signed, secrets: list[str]):
    with pytest.raises(SignatureError, match="no secret configured"):
        source.verify(body, signed(), secrets)


def test_a_single_string_is_one_webhook_id_not_many(source: PayPalWebhooks, body: bytes, signed: Signed) -> None:
    # Given a caller passing a bare string / Then it is one id, and a one-character "id" is not among them
    source.verify(body, signed(), WEBHOOK_ID)
    with pytest.raises(SignatureError, match="signature mismatch"):
        source.verify(body, signed("1"), WEBHOOK_ID)


def test_error_messages_never_contain_a_webhook_id(source: PayPalWebhooks, body: bytes, signed: Signed) -> None:
    for headers in (signed("5GP028458E2496506"), {}, signed(algo="MD5withRSA")):
        with pytest.raises(SignatureError) as caught:
            source.verify(body, headers, [WEBHOOK_ID, OLD_WEBHOOK_ID])
        assert WEBHOOK_ID not in str(caught.value)
        assert OLD_WEBHOOK_ID not in str(caught.value)


def test_default_download_refuses_plain_http_before_any_network() -> None:
    # Given the production downloader / When asked for an http:// URL / Then it refuses outright
    with pytest.raises(ValueError, match="https"):
        fetch_certificate("http://api.paypal.com/v1/notifications/certs/CERT-1")


def test_default_downloader_is_the_production_one() -> None:
    assert PayPalWebhooks().fetch_cert is fetch_certificate
    assert PayPalWebhooks().extra_cert_hosts == frozenset()
    assert PayPalWebhooks().mode == "offline"


def test_certificate_cache_is_bounded(valid_pem: bytes, body: bytes, key: rsa.RSAPrivateKey) -> None:
    # Given more certificate URLs than the cache holds, all verified in turn
    urls = [f"https://api.paypal.com/v1/notifications/certs/CERT-{n}" for n in range(paypal.CERT_CACHE_SIZE + 5)]
    downloads = FakeDownloads(dict.fromkeys(urls, valid_pem))
    source = PayPalWebhooks(fetch_cert=downloads)
    for url in urls:
        source.verify(body, headers_for(sign(key, body, WEBHOOK_ID), cert_url=url), [WEBHOOK_ID])

    # Then only the newest stay cached: the first URL is downloaded again, the last is not
    source.verify(body, headers_for(sign(key, body, WEBHOOK_ID), cert_url=urls[0]), [WEBHOOK_ID])
    source.verify(body, headers_for(sign(key, body, WEBHOOK_ID), cert_url=urls[-1]), [WEBHOOK_ID])
    assert downloads.fetched == [*urls, urls[0]]


# ---- postback verification -----------------------------------------------------------------------------------------


class FakePostback:
    """PayPal's verify-webhook-signature as a function: answers from a table of webhook ids."""

    def __init__(self, accepts: set[str], error: Exception | None = None) -> None:
        self.accepts = accepts
        self.error = error
        self.requests: list[dict[str, Any]] = []

    def __call__(self, request: dict[str, Any]) -> bool:
        self.requests.append(request)
        if self.error is not None:
            raise self.error
        return request["webhook_id"] in self.accepts


def test_postback_mode_asks_paypal_for_each_webhook_id_until_one_verifies(body: bytes) -> None:
    # Given postback mode, a rotation in progress, and PayPal vouching for the old id only
    postback = FakePostback({OLD_WEBHOOK_ID})
    downloads = FakeDownloads({})
    source = PayPalWebhooks(mode="postback", postback=postback, fetch_cert=downloads)
    headers = headers_for("c2lnbmF0dXJl")

    # When verified / Then it passes, having asked with exactly PayPal's request fields and the parsed event
    source.verify(body, headers, [WEBHOOK_ID, OLD_WEBHOOK_ID])
    expected = {
        "auth_algo": "SHA256withRSA",
        "cert_url": CERT_URL,
        "transmission_id": TRANSMISSION_ID,
        "transmission_sig": "c2lnbmF0dXJl",
        "transmission_time": TRANSMISSION_TIME,
        "webhook_event": json.loads(body),
    }
    assert postback.requests == [
        {**expected, "webhook_id": WEBHOOK_ID},
        {**expected, "webhook_id": OLD_WEBHOOK_ID},
    ]
    # And no certificate was downloaded here: PayPal checks it
    assert downloads.fetched == []


def test_postback_mode_refuses_when_paypal_says_failure(body: bytes) -> None:
    source = PayPalWebhooks(mode="postback", postback=FakePostback(set()))
    with pytest.raises(SignatureError, match="signature mismatch"):
        source.verify(body, headers_for("c2ln"), [WEBHOOK_ID])


def test_postback_mode_refuses_when_paypal_cannot_be_asked(body: bytes) -> None:
    # Given PayPal unreachable / Then the delivery is not accepted (PayPal retries it later)
    source = PayPalWebhooks(mode="postback", postback=FakePostback({WEBHOOK_ID}, error=TimeoutError("timed out")))
    with pytest.raises(SignatureError, match="signature could not be verified"):
        source.verify(body, headers_for("c2ln"), [WEBHOOK_ID])


def test_postback_mode_still_requires_the_headers_and_algorithm(body: bytes) -> None:
    postback = FakePostback({WEBHOOK_ID})
    source = PayPalWebhooks(mode="postback", postback=postback)
    with pytest.raises(SignatureError, match="missing signature"):
        source.verify(body, {}, [WEBHOOK_ID])
    with pytest.raises(SignatureError, match="unsupported algorithm"):
        source.verify(body, headers_for("c2ln", algo="SHA1withRSA"), [WEBHOOK_ID])
    with pytest.raises(SignatureError, match="signature mismatch"):
        source.verify(b"not json", headers_for("c2ln"), [WEBHOOK_ID])
    assert postback.requests == []


def test_mode_is_checked_when_the_source_is_built() -> None:
    with pytest.raises(ValueError, match="postback verifier"):
        PayPalWebhooks(mode="postback")
    with pytest.raises(ValueError, match="mode"):
        PayPalWebhooks(mode="online")


class FakePayPalApi:
    """An `opener` that answers PayPal's token and verify endpoints and keeps every request."""

    def __init__(self, status: str = "SUCCESS") -> None:
        self.status = status
        self.requests: list[Any] = []

    def __call__(self, request: Any, *, timeout: float) -> io.BytesIO:
        self.requests.append((request, timeout))
        if request.full_url.endswith("/v1/oauth2/token"):
            return io.BytesIO(
                b'{"scope": "...", "access_token": "A21AAFake", "token_type": "Bearer", "expires_in": 32400}'
            )
        return io.BytesIO(json.dumps({"verification_status": self.status}).encode())


def test_postback_verifier_gets_a_token_then_asks_paypal() -> None:
    # Given the default postback verifier against the sandbox, with a fake network
    api = FakePayPalApi()
    verify = postback_verifier("https://api-m.sandbox.paypal.com/", "client-id", "client-secret", opener=api)
    request = {"webhook_id": WEBHOOK_ID, "webhook_event": {"id": "WH-1", "summary": "Zoë"}}

    # When it verifies twice
    assert verify(request) is True
    assert verify(request) is True

    # Then one OAuth client-credentials token request was made, then the two verify calls, 5 s timeouts each
    token_request, token_timeout = api.requests[0]
    assert token_request.full_url == "https://api-m.sandbox.paypal.com/v1/oauth2/token"
    assert token_request.get_method() == "POST"
    assert (
        token_request.get_header("Authorization") == "Basic Y2xpZW50LWlkOmNsaWVudC1zZWNyZXQ="
    )  # client-id:client-secret
    assert token_request.data == b"grant_type=client_credentials"
    assert token_timeout == 5
    assert len(api.requests) == 3
    for verify_request, timeout in api.requests[1:]:
        assert verify_request.full_url == "https://api-m.sandbox.paypal.com/v1/notifications/verify-webhook-signature"
        assert verify_request.get_method() == "POST"
        assert verify_request.get_header("Authorization") == "Bearer A21AAFake"
        assert verify_request.get_header("Content-type") == "application/json"
        assert json.loads(verify_request.data) == request
        assert timeout == 5


def test_postback_verifier_is_false_on_failure() -> None:
    verify = postback_verifier("https://api-m.paypal.com", "id", "secret", opener=FakePayPalApi("FAILURE"))
    assert verify({"webhook_id": WEBHOOK_ID}) is False


def test_postback_verifier_refuses_a_non_https_api() -> None:
    with pytest.raises(ValueError, match="https"):
        postback_verifier("http://api-m.paypal.com", "id", "secret", opener=FakePayPalApi())


def test_postback_verifier_plugs_into_the_source(body: bytes) -> None:
    # Given the real postback verifier wired into the source, over the fake network
    api = FakePayPalApi()
    source = PayPalWebhooks(mode="postback", postback=postback_verifier("https://api-m.paypal.com", "i", "s", api))

    # When a delivery is verified / Then PayPal's SUCCESS accepts it
    source.verify(body, headers_for("c2ln"), [WEBHOOK_ID])
    assert json.loads(api.requests[-1][0].data)["webhook_event"]["id"] == "WH-58D329510W468432D-8HN650336L201105X"


# ---- what ingest reads from a delivery -----------------------------------------------------------------------------


def test_ingest_view_of_a_delivery(source: PayPalWebhooks, body: bytes) -> None:
    # Given the published capture event, parsed as ingest parses it
    payload = json.loads(body)

    # Then topic, account, receipt id and ping are read from the envelope
    assert source.name == "paypal"
    assert source.secret_setting == "paypal_secret_id"
    assert source.topic({}, payload) == "PAYMENT.CAPTURE.COMPLETED"
    assert source.account({}, payload) is None
    assert source.receipt_id({}, payload, body) == "paypal:WH-58D329510W468432D-8HN650336L201105X"
    assert source.is_ping(body, {}) is False
    assert (
        source.handled_topics
        == HANDLED_TOPICS
        == {
            "PAYMENT.CAPTURE.COMPLETED",
            "PAYMENT.CAPTURE.DENIED",
            "PAYMENT.CAPTURE.REFUNDED",
            "PAYMENT.CAPTURE.REVERSED",
            "CHECKOUT.ORDER.APPROVED",
            "CUSTOMER.DISPUTE.CREATED",
            "CUSTOMER.DISPUTE.UPDATED",
            "CUSTOMER.DISPUTE.RESOLVED",
        }
    )


@pytest.mark.parametrize("payload", [{"event_type": "X"}, {"id": ""}, [1, 2], "WH-1"])
def test_receipt_id_without_an_event_id_falls_back_to_the_body_hash(source: PayPalWebhooks, payload: Any) -> None:
    # sha256(b"{}") written out: 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a
    expected = "paypal:sha256-44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert source.receipt_id({}, payload, b"{}") == expected


@pytest.mark.parametrize("payload", [{}, {"event_type": ""}, {"event_type": 7}, [], None])
def test_topic_is_none_when_the_body_names_no_event_type(source: PayPalWebhooks, payload: Any) -> None:
    assert source.topic({}, payload) is None
