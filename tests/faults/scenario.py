"""A seeded world of shoppers and the webhooks their purchases cause, with the CRM it must end in (ground truth).

The truth is written from the generator's own intent (who bought what, which state each order ends in), never by
running crmsync code: phones are generated in E.164 and written in a national format, statuses are the generator's
own, amounts are integers of minor units formatted here. Every webhook is signed as its vendor signs it.

People:
- most have an email and buy on Shopify, WooCommerce and Stripe;
- some check out on WooCommerce as guests (name and phone, no email) and also have a Shopify account with that
  phone and an email, so identity resolution must join (and, in some delivery orders, merge) them;
- some only ever check out as WooCommerce guests (a contact without an email).
PayPal captures name nobody: each is a standalone deal without a contact.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from random import Random
from typing import Any

from crmsync.sources import shopify, stripe, woocommerce

SHOPIFY_SECRET = "fault-shopify-secret"
WOO_SECRET = "fault-woo-secret"
STRIPE_SECRET = "whsec_fault-stripe-secret"
PAYPAL_WEBHOOK_ID = "FAULT-PAYPAL-WEBHOOK"
PAYPAL_CERT_URL = "https://api.paypal.com/v1/notifications/certs/CERT-fault-suite"
SHOP = "faults.myshopify.com"
STORE = "https://faults.example/"
START = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)
BUG_MARK = "#BUG-"  # orders named so crash the "buggy release" of the Shopify converter (see the suite)

# HubSpot deal stages of the default mapping (config/mappings/default.yaml), by the generator's final status.
DEAL_STAGE = {"pending": "appointmentscheduled", "paid": "closedwon", "cancelled": "closedlost"}
FIRST = ("Ada", "Grace", "Alan", "Zoë", "Marie", "Niels", "Emmy", "Srinivasa", "Hedy", "Kurt", "Lise", "Chien")
LAST = ("Lovelace", "Hopper", "Turing", "Ødegård", "Curie", "Bohr", "Noether", "Ramanujan", "Lamarr", "Gödel")
AREA_CODES = ("212", "312", "415", "503", "617", "702", "808", "919")


@dataclass(frozen=True)
class Delivery:
    source: str
    topic: str
    body: bytes
    headers: dict[str, str]
    event: str  # one webhook event; redeliveries share it


@dataclass
class Person:
    index: int
    first: str
    last: str
    phone_e164: str
    phone_national: str
    email: str | None  # lower-case; None: known by phone only
    shopify_id: int | None = None

    @property
    def key(self) -> str:
        return self.email or f"phone:{self.phone_e164}"


@dataclass(frozen=True)
class ExpectedDeal:
    stage: str
    amount: str
    currency: str
    person: str | None  # Person.key of the contact it is associated with


@dataclass
class World:
    people: list[Person] = field(default_factory=list)
    events: list[list[Delivery]] = field(default_factory=list)  # each event: its versions' single delivery
    deals: dict[str, ExpectedDeal] = field(default_factory=dict)  # deal external id -> truth
    poisoned: set[str] = field(default_factory=set)  # deal external ids whose webhooks the buggy release crashes

    @property
    def deliveries(self) -> list[Delivery]:
        return [delivery for versions in self.events for delivery in versions]

    def contacts(self) -> dict[str, Person]:
        """The people who must each be exactly one contact (everyone here buys something with a contact)."""
        return {person.key: person for person in self.people}


def _amount(minor: int) -> str:
    return f"{minor // 100}.{minor % 100:02d}"


def _stamp(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _person(index: int, rng: Random, taken: set[str], *, email: bool) -> Person:
    while True:
        area, exchange, line = rng.choice(AREA_CODES), rng.randint(200, 989), rng.randint(0, 9999)
        if exchange == 555:
            continue
        e164 = f"+1{area}{exchange}{line:04d}"
        if e164 not in taken:
            taken.add(e164)
            break
    first, last = rng.choice(FIRST), rng.choice(LAST)
    return Person(
        index=index,
        first=first,
        last=last,
        phone_e164=e164,
        phone_national=f"({area}) {exchange}-{line:04d}",
        email=f"{first.lower()}.{index}@example.com" if email else None,
    )


def _shopify(topic: str, payload: dict[str, Any], event: str) -> Delivery:
    body = json.dumps(payload, ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": shopify.sign(body, SHOPIFY_SECRET),
        "X-Shopify-Shop-Domain": SHOP,
        "X-Shopify-Event-Id": event,
        "X-Shopify-Webhook-Id": f"wh-{event}",
    }
    return Delivery("shopify", topic, body, headers, event)


def _woo(topic: str, payload: dict[str, Any], event: str) -> Delivery:
    body = json.dumps(payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "X-WC-Webhook-Source": STORE,
        "X-WC-Webhook-Topic": topic,
        "X-WC-Webhook-Resource": topic.split(".")[0],
        "X-WC-Webhook-Event": topic.split(".")[1],
        "X-WC-Webhook-Signature": woocommerce.sign(body, WOO_SECRET),
        "X-WC-Webhook-ID": "7",
        "X-WC-Webhook-Delivery-ID": event,
    }
    return Delivery("woocommerce", topic, body, headers, event)


def _stripe(topic: str, payload: dict[str, Any], event: str) -> Delivery:
    body = json.dumps(payload, indent=2).encode()
    # Signed when delivered (Stripe refuses signatures older than 5 minutes): see sign_for_delivery.
    return Delivery("stripe", topic, body, {"Content-Type": "application/json"}, event)


def _paypal(topic: str, payload: dict[str, Any], event: str) -> Delivery:
    return Delivery("paypal", topic, json.dumps(payload).encode(), {"Content-Type": "application/json"}, event)


def sign_for_delivery(delivery: Delivery, paypal_key: Any, at: float | None = None) -> dict[str, str]:
    """Headers as the vendor sends them at delivery time `at` (epoch seconds, default now): Stripe and PayPal sign
    each delivery anew, and PayPal's signature covers the transmission time."""
    if delivery.source == "stripe":
        return {**delivery.headers, "Stripe-Signature": stripe.sign(delivery.body, STRIPE_SECRET, int(time.time()))}
    if delivery.source == "paypal":
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        sent = datetime.fromtimestamp(time.time() if at is None else at, UTC)
        transmission_id, transmission_time = f"tx-{delivery.event}", _stamp(sent)
        message = f"{transmission_id}|{transmission_time}|{PAYPAL_WEBHOOK_ID}|{zlib.crc32(delivery.body)}".encode()
        signature = paypal_key.sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {
            **delivery.headers,
            "PAYPAL-TRANSMISSION-ID": transmission_id,
            "PAYPAL-TRANSMISSION-TIME": transmission_time,
            "PAYPAL-TRANSMISSION-SIG": base64.b64encode(signature).decode(),
            "PAYPAL-CERT-URL": PAYPAL_CERT_URL,
            "PAYPAL-AUTH-ALGO": "SHA256withRSA",
        }
    return delivery.headers


def _shopify_customer(person: Person) -> dict[str, Any]:
    return {
        "id": person.shopify_id,
        "email": person.email.upper() if person.email and person.index % 5 == 0 else person.email,
        "first_name": person.first,
        "last_name": person.last,
        "phone": person.phone_e164,
    }


def _shopify_order(world: World, rng: Random, person: Person, n: int, *, poisoned: bool) -> None:
    order_id = 5_000_000 + person.index * 10 + n
    minor = rng.randint(500, 90_000)
    placed = START + timedelta(minutes=person.index * 7 + n)
    cancelled = rng.random() < 0.15
    base = {
        "id": order_id,
        "name": f"{BUG_MARK}{order_id}" if poisoned else f"#{order_id}",
        "currency": "USD",
        "total_price": _amount(minor),
        "created_at": _stamp(placed),
        "email": person.email,
        "customer": _shopify_customer(person),
        "billing_address": {"first_name": person.first, "last_name": person.last, "country_code": "US"},
        "line_items": [{"id": order_id * 10, "title": "Widget", "quantity": 1, "price": _amount(minor)}],
    }
    versions = [
        ("orders/create", {"financial_status": "pending"}, 0),
        ("orders/paid", {"financial_status": "paid"}, 60),
        ("orders/fulfilled", {"financial_status": "paid", "fulfillment_status": "fulfilled"}, 120),
    ]
    if cancelled:
        versions.append(("orders/cancelled", {"financial_status": "voided", "cancelled_at": _stamp(placed)}, 180))
    world.events.append(
        [
            _shopify(
                topic, {**base, **change, "updated_at": _stamp(placed + timedelta(seconds=dt))}, f"sh-{order_id}-{i}"
            )
            for i, (topic, change, dt) in enumerate(versions)
        ]
    )
    external = f"shopify:order:{order_id}"
    world.deals[external] = ExpectedDeal(
        DEAL_STAGE["cancelled" if cancelled else "paid"], _amount(minor), "USD", person.key
    )
    if poisoned:
        world.poisoned.add(external)


def _woo_order(world: World, rng: Random, person: Person, *, guest: bool) -> None:
    order_id = 80_000 + person.index
    minor = rng.randint(500, 50_000)
    created = START + timedelta(minutes=person.index * 5, seconds=30)
    base = {
        "id": order_id,
        "number": str(order_id),
        "currency": "USD",
        "total": _amount(minor),
        "customer_id": 0 if guest else 900 + person.index,
        "billing": {
            "first_name": person.first,
            "last_name": person.last,
            "email": "" if guest else person.email,
            "phone": person.phone_national,
            "country": "US",
        },
        "date_created_gmt": created.replace(tzinfo=None).isoformat(timespec="seconds"),
        "line_items": [
            {"id": order_id * 10, "name": "Gadget", "quantity": 1, "subtotal": _amount(minor), "total": _amount(minor)}
        ],
    }

    def gmt(at: datetime) -> str:
        return at.replace(tzinfo=None).isoformat(timespec="seconds")

    paid = created + timedelta(seconds=40)
    completed = paid + timedelta(hours=2)
    versions = [
        ("order.created", {"status": "pending"}, created),
        ("order.updated", {"status": "processing", "date_paid_gmt": gmt(paid)}, paid),
        ("order.updated", {"status": "completed", "date_paid_gmt": gmt(paid), "date_completed_gmt": gmt(completed)},
         completed),
    ]  # fmt: skip
    world.events.append(
        [
            _woo(topic, {**base, **change, "date_modified_gmt": gmt(at)}, f"wc-{order_id}-{i}")
            for i, (topic, change, at) in enumerate(versions)
        ]
    )
    world.deals[f"woocommerce:order:{order_id}"] = ExpectedDeal(DEAL_STAGE["paid"], _amount(minor), "USD", person.key)


def _stripe_payment(world: World, rng: Random, person: Person) -> None:
    intent = f"pi_fault{person.index:06d}"
    minor = rng.randint(500, 30_000)
    created = int((START + timedelta(minutes=person.index * 3)).timestamp())
    charge = {
        "id": f"ch_fault{person.index:06d}",
        "object": "charge",
        "amount": minor,
        "currency": "usd",
        "created": created,
        "paid": True,
        "status": "succeeded",
        "payment_intent": intent,
        "billing_details": {
            "email": person.email,
            "name": f"{person.first} {person.last}",
            "phone": person.phone_e164,
            "address": {
                "country": "US",
                "city": None,
                "line1": None,
                "line2": None,
                "postal_code": None,
                "state": None,
            },
        },
    }
    payload = {
        "id": f"evt_fault{person.index:06d}",
        "object": "event",
        "api_version": "2020-08-27",
        "created": created + 2,
        "livemode": False,
        "type": "payment_intent.succeeded",
        "data": {
            "object": {
                "id": intent,
                "object": "payment_intent",
                "amount": minor,
                "amount_received": minor,
                "currency": "usd",
                "created": created,
                "status": "succeeded",
                "livemode": False,
                "receipt_email": person.email,
                "metadata": {},
                "charges": {"object": "list", "data": [charge], "has_more": False, "url": "/v1/charges"},
            }
        },
    }
    world.events.append([_stripe("payment_intent.succeeded", payload, f"evt_fault{person.index:06d}")])
    world.deals[f"stripe:payment:{intent}"] = ExpectedDeal(DEAL_STAGE["paid"], _amount(minor), "USD", person.key)


def _paypal_capture(world: World, rng: Random, index: int) -> None:
    capture = f"FAULT{index:06d}CAPTURE"
    minor = rng.randint(500, 20_000)
    at = _stamp(START + timedelta(minutes=index))
    payload = {
        "id": f"WH-FAULT-{index:06d}",
        "event_version": "1.0",
        "create_time": at,
        "resource_type": "capture",
        "resource_version": "2.0",
        "event_type": "PAYMENT.CAPTURE.COMPLETED",
        "summary": "Payment completed",
        "resource": {
            "id": capture,
            "status": "COMPLETED",
            "amount": {"currency_code": "USD", "value": _amount(minor)},
            "create_time": at,
            "update_time": at,
            "links": [{"href": f"https://api.paypal.com/v2/payments/captures/{capture}", "rel": "self"}],
        },
        "links": [
            {"href": f"https://api.paypal.com/v1/notifications/webhooks-events/WH-FAULT-{index:06d}", "rel": "self"}
        ],
    }
    world.events.append([_paypal("PAYMENT.CAPTURE.COMPLETED", payload, f"WH-FAULT-{index:06d}")])
    world.deals[f"paypal:capture:{capture}"] = ExpectedDeal(DEAL_STAGE["paid"], _amount(minor), "USD", None)


def build_world(people: int, seed: int, *, paypal_captures: int | None = None, poison_every: int = 0) -> World:
    """`people` shoppers and their webhooks; with poison_every=n, every n-th Shopify order is named to crash."""
    rng, world, taken = Random(seed), World(), set[str]()  # noqa: S311 - test data, not secrets
    shopify_orders = 0
    for index in range(people):
        kind = rng.random()
        if kind < 0.7:  # an email customer on several sources
            person = _person(index, rng, taken, email=True)
            person.shopify_id = 7_000_000 + index
            for n in range(rng.choice((1, 1, 2))):
                shopify_orders += 1
                _shopify_order(
                    world, rng, person, n, poisoned=bool(poison_every) and shopify_orders % poison_every == 0
                )
            if rng.random() < 0.6:
                _woo_order(world, rng, person, guest=False)
            if rng.random() < 0.5:
                _stripe_payment(world, rng, person)
        elif kind < 0.85:  # a WooCommerce guest (phone only) who also has a Shopify account with that phone
            person = _person(index, rng, taken, email=True)
            person.shopify_id = 7_000_000 + index
            _woo_order(world, rng, person, guest=True)
            _shopify_order(world, rng, person, 0, poisoned=False)
        else:  # only ever a WooCommerce guest
            person = _person(index, rng, taken, email=False)
            _woo_order(world, rng, person, guest=True)
        world.people.append(person)
    for index in range(people // 4 if paypal_captures is None else paypal_captures):
        _paypal_capture(world, rng, index)
    return world


def delivery_plan(world: World, seed: int, *, max_copies: int = 3) -> list[Delivery]:
    """Every delivery 1 to max_copies times, all shuffled: redeliveries and out-of-order versions."""
    rng = Random(seed)  # noqa: S311 - test data, not secrets
    plan = [delivery for delivery in world.deliveries for _ in range(rng.randint(1, max_copies))]
    rng.shuffle(plan)
    return plan


def paypal_signer() -> tuple[bytes, Any]:
    """A key and a PayPal-shaped certificate (PEM): the suite signs PayPal webhooks as PayPal would."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "messageverificationcerts.paypal.com")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30)).sign(key, hashes.SHA256())
    )  # fmt: skip
    return cert.public_bytes(serialization.Encoding.PEM), key
