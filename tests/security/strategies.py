"""Hypothesis strategies for hostile HTTP input: bodies, header maps, path segments and query strings."""

from __future__ import annotations

import json
import os
import string

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.security.webhooks import OPERATOR_KEY, SIGNATURE_HEADERS, SOURCES

# `make test` replays the same examples on every run, so a red CI run is a change's fault and not a new draw;
# `make fuzz` (CRMSYNC_FUZZ=explore) draws fresh ones, ten times as many, to find what the fixed draw does not.
EXPLORE = os.environ.get("CRMSYNC_FUZZ") == "explore"


def fuzz(examples: int) -> settings:
    """Bounded, reproducible from the printed blob, no example database written into the repository; the moto
    account of the function-scoped `aws` fixture is shared by the examples (each checks what it changed)."""
    return settings(
        max_examples=examples * 10 if EXPLORE else examples,
        derandomize=not EXPLORE,
        deadline=None,
        database=None,
        print_blob=True,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )


# Characters HTTP cannot carry in a header value (CR/LF end a header, NUL is refused): header injection.
CONTROL = ["\r", "\n", "\r\n", "\x00", "\x0b", "\x1b", "\x7f"]
INJECTIONS = [
    "x\r\nX-Shopify-Topic: customers/redact",
    "x\r\n\r\n{}",
    "x\nSet-Cookie: a=b",
    "\x00",
    "orders/create\r\n",
    "\u2028",
    "\ufeffshopify",
    "\udcff",
]
KNOWN_HEADERS = sorted(
    {name for names in SIGNATURE_HEADERS.values() for name in names}
    | {
        "x-shopify-topic",
        "x-shopify-shop-domain",
        "x-shopify-event-id",
        "x-shopify-webhook-id",
        "x-wc-webhook-topic",
        "x-wc-webhook-source",
        "x-wc-webhook-resource",
        "content-type",
        "content-length",
        "x-api-key",
        "authorization",
        "host",
    }
)
header_names = st.one_of(
    st.sampled_from(KNOWN_HEADERS),
    st.sampled_from(KNOWN_HEADERS).map(str.upper),
    st.text(alphabet=string.ascii_letters + string.digits + "-_", min_size=1, max_size=24),
)
header_values = st.one_of(
    st.text(max_size=64),
    st.sampled_from(INJECTIONS),
    st.text(max_size=8).map(lambda s: s + "\r\n" + s),
    st.from_regex(r"\At=[0-9]{1,16},v1=[0-9a-f]{0,64}(,v0=[0-9a-f]{0,8})?\Z"),
    st.from_regex(r"\A[A-Za-z0-9+/]{0,60}={0,2}\Z"),
    st.integers(min_value=1, max_value=8192).map(lambda n: "A" * n),
    st.sampled_from(
        [
            "https://api.paypal.com/v1/notifications/certs/x",
            "http://api.paypal.com/cert",
            "https://api.paypal.com.evil.example/cert",
            "https://user@api.paypal.com/cert",
            "https://api.paypal.com:8443/cert",
            "SHA256withRSA",
            "SHA1withRSA",
            OPERATOR_KEY,
        ]
    ),
)
header_maps = st.dictionaries(header_names, header_values, max_size=8)

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**18, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=24),
)
json_values = st.recursive(
    _scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=16,
)


def _nested(depth: int, kind: str) -> bytes:
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


HUGE_NUMBERS = [
    b"1e999999",
    b"-1e-999999",
    b"9" * 5000,  # over Python's 4300-digit int limit
    b'{"amount": ' + b"9" * 4301 + b"}",
    b'{"amount": 1.7976931348623157e309}',
    b'{"amount": NaN, "total": Infinity}',
    b'{"id": 18446744073709551616, "total_price": "1e400"}',
]
hostile_bodies = st.one_of(
    st.binary(max_size=512),
    st.text(max_size=256).map(lambda s: s.encode("utf-8", "surrogatepass")),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.tuples(st.integers(min_value=2, max_value=200_000), st.sampled_from(["array", "object"])).map(
        lambda t: _nested(*t)
    ),
    st.sampled_from(HUGE_NUMBERS),
    st.binary(max_size=32).map(lambda b: b'{"email": "' + b"\xff\xfe\xc3" + b + b'"}'),  # invalid UTF-8
    st.sampled_from(
        [b'{"a": "\\ud800"}', b"\xef\xbb\xbf{}", b"", b" ", b"null", b"webhook_id=12", b"webhook_id=1&x=2"]
    ),
)

# Names that are not a source: near misses, traversal, case, encodings, empty.
unknown_sources = st.one_of(
    st.sampled_from(
        [
            "",
            "Shopify",
            "SHOPIFY",
            "shopify ",
            " stripe",
            "shopify/",
            "../shopify",
            "stripe%00",
            "paypal\n",
            "__class__",
        ]
    ),
    st.text(max_size=24),
).filter(lambda name: name not in SOURCES)

path_segments = st.one_of(
    st.text(alphabet=string.ascii_letters + string.digits + "-_.:", min_size=1, max_size=40),
    st.sampled_from(["..", "%2e%2e", "contacts", "deals", "999", "cus_" + "0" * 30, "a" * 2048, "%00", "\u00e9"]),
)
query_maps = st.dictionaries(
    st.one_of(st.sampled_from(["email", "limit", "queue", "x-api-key", "country"]), st.text(max_size=12)),
    st.one_of(st.text(max_size=40), st.sampled_from(["-1", "0", "1", "1e9", "99999999999999999999", "ingest-dlq"])),
    max_size=4,
)
