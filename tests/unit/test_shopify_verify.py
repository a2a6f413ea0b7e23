"""Shopify webhook signatures: base64(HMAC-SHA256(secret, raw body)), any of the configured secrets."""

import base64
import hashlib
import hmac
from collections.abc import Callable

import pytest

from crmsync.sources.base import SignatureError
from crmsync.sources.shopify import sign, verify

SECRET = "shpss_current_secret"
OLD_SECRET = "shpss_previous_secret"


@pytest.fixture
def body(shopify_payload: Callable[[str], bytes]) -> bytes:
    return shopify_payload("orders-create.json")


def test_sign_matches_an_independent_computation(body: bytes) -> None:
    # Given the algorithm Shopify documents, computed here without the module
    expected = base64.b64encode(hmac.new(SECRET.encode(), body, hashlib.sha256).digest()).decode()

    # When the module signs / Then it produces the same header value
    assert sign(body, SECRET) == expected


def test_sign_matches_a_known_vector() -> None:
    # Given a fixed body and key / Then the header is the value from:
    #   printf '{"id":1}' | openssl dgst -sha256 -hmac hush -binary | base64
    assert sign(b'{"id":1}', "hush") == "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY="


def test_valid_signature_passes(body: bytes) -> None:
    # Given a body signed with the configured secret / When verified / Then nothing is raised
    verify(body, sign(body, SECRET), [SECRET])


def test_surrounding_whitespace_in_the_header_is_tolerated(body: bytes) -> None:
    # Given a proxy that padded the header / When verified / Then it still passes
    verify(body, f"  {sign(body, SECRET)} ", [SECRET])


def test_wrong_secret_fails(body: bytes) -> None:
    # Given a body signed with some other key / When verified / Then it is a mismatch
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(body, sign(body, "not-the-secret"), [SECRET])


def test_tampered_body_fails(body: bytes) -> None:
    # Given a valid signature over the original bytes / When one byte of the body changes
    signature = sign(body, SECRET)
    tampered = body.replace(b"409.94", b"009.94")

    # Then the signature no longer fits
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(tampered, signature, [SECRET])


def test_reserialised_json_fails(body: bytes) -> None:
    # Given the same JSON with different whitespace / Then it is different bytes, so not the signed body
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(body.replace(b": ", b":"), sign(body, SECRET), [SECRET])


@pytest.mark.parametrize("header", [None, "", "   "])
def test_missing_header_fails(body: bytes, header: str | None) -> None:
    # Given no signature at all / When verified / Then it says the signature is missing
    with pytest.raises(SignatureError, match="missing signature"):
        verify(body, header, [SECRET])


def test_non_ascii_header_is_a_mismatch_not_a_crash(body: bytes) -> None:
    # Given garbage in the header / When verified / Then it is an ordinary mismatch
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(body, "ü" * 44, [SECRET])


def test_rotated_secret_second_in_the_list_matches(body: bytes) -> None:
    # Given a rotation in progress (new secret first) and a delivery still signed with the old one
    signature = sign(body, OLD_SECRET)

    # When verified against both / Then it passes
    verify(body, signature, [SECRET, OLD_SECRET])


def test_rotated_secret_no_longer_listed_fails(body: bytes) -> None:
    # Given the old secret has been dropped from the list / Then its signatures stop working
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(body, sign(body, OLD_SECRET), [SECRET])


@pytest.mark.parametrize("secrets", [[], [""], ["", "  "]])
def test_no_usable_secret_is_refused(body: bytes, secrets: list[str]) -> None:
    # Given nothing to verify with (blank keys would let anyone sign) / Then verification refuses
    with pytest.raises(SignatureError, match="no secret configured"):
        verify(body, sign(body, ""), secrets)


def test_a_single_string_is_one_secret_not_many(body: bytes) -> None:
    # Given a caller passing a bare string / When a one-character key signs / Then it does not match
    with pytest.raises(SignatureError, match="signature mismatch"):
        verify(body, sign(body, "s"), SECRET)
    verify(body, sign(body, SECRET), SECRET)


def test_error_messages_never_contain_a_secret(body: bytes) -> None:
    # Given every failure mode / Then no message reveals a configured secret
    for header, secrets in [(None, [SECRET]), ("bad", [SECRET, OLD_SECRET]), ("bad", [])]:
        with pytest.raises(SignatureError) as caught:
            verify(body, header, secrets)
        assert SECRET not in str(caught.value)
        assert OLD_SECRET not in str(caught.value)
