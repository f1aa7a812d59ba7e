"""Who may call what: every route of the app as anonymous, as another customer, as admin.

ROUTE_ACCESS must name every route of ``create_app()``: adding a route without a row
makes ``test_every_route_is_listed`` fail, and a row whose route is gone fails too.
Expected statuses follow API.md's "who" column:

    anyone       the same success for all three callers
    user         401 / 2xx / 2xx          (the caller's own data)
    owner/admin  401 / 404 / 2xx          (the resource belongs to ``world.owner``)
    admin        401 / 403 / 2xx

To add a route: one ROUTE_ACCESS row; a BODIES entry if it needs a valid body; a
PATH_PARAMS entry per path parameter; and, if it needs an owned resource, a SETUP_HOOKS
function that creates it as ``world.owner`` and stores its id in ``world.ids``.
WebSocket routes use method "WS": the probe sends ``{"type": "auth", "token": ...}`` and
records 200 if a message comes back, else the close code.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi.routing import APIWebSocketRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocketDisconnect

Expect = int | frozenset[int]
# Health answers 503 while a dependency (no worker runs in this test) is down; never 401.
OPS: Expect = frozenset({200, 503})

# (method, path) -> (anonymous, other customer, admin). Keep rows grouped by API.md section.
ROUTE_ACCESS: dict[tuple[str, str], tuple[Expect, Expect, Expect]] = {
    # Operations and docs: public.
    ("GET", "/health"): (OPS, OPS, OPS),
    ("GET", "/ready"): (200, 200, 200),
    ("GET", "/live"): (200, 200, 200),
    ("GET", "/metrics"): (200, 200, 200),
    ("GET", "/openapi.json"): (200, 200, 200),
    ("GET", "/api-docs"): (200, 200, 200),
    # Users.
    ("POST", "/api/users/register"): (201, 201, 201),
    ("POST", "/api/users/login"): (200, 200, 200),
    ("POST", "/api/users/logout"): (401, 200, 200),
    ("GET", "/api/users/profile"): (401, 200, 200),
    ("PATCH", "/api/users/profile"): (401, 200, 200),
    ("DELETE", "/api/users/profile"): (401, 200, 200),
    # Account links by email: anyone; a made-up token is a 400 for everyone.
    ("POST", "/api/users/password-reset"): (202, 202, 202),
    ("POST", "/api/users/password-reset/confirm"): (400, 400, 400),
    ("POST", "/api/users/verify-email"): (400, 400, 400),
    ("GET", "/api/dev/mail"): (401, 403, 200),
    # Catalog.
    ("GET", "/api/products"): (200, 200, 200),
    ("GET", "/api/products/{sku}"): (200, 200, 200),
    ("POST", "/api/products"): (401, 403, 201),
    ("PATCH", "/api/products/{sku}"): (401, 403, 200),
    # Orders (the chain may move the order while the matrix runs: later states answer 409).
    ("GET", "/api/orders"): (401, 403, 200),
    ("POST", "/api/orders"): (401, 202, 202),
    ("GET", "/api/orders/my-orders"): (401, 200, 200),
    ("GET", "/api/orders/stats"): (401, 200, 200),
    ("GET", "/api/orders/export"): (401, 403, 200),
    ("GET", "/api/orders/{order_id}"): (401, 404, 200),
    ("PATCH", "/api/orders/{order_id}"): (401, 404, frozenset({200, 409})),
    ("DELETE", "/api/orders/{order_id}"): (401, 404, frozenset({202, 409})),
    ("GET", "/api/orders/{order_id}/tracking"): (401, 404, 200),
    ("GET", "/api/orders/{order_id}/timeline"): (401, 404, 200),
    ("POST", "/api/orders/{order_id}/resume"): (401, 403, frozenset({202, 409})),
    # Returns (the matrix's order is not delivered: asking answers 409 to its owner/admin).
    ("POST", "/api/orders/{order_id}/returns"): (401, 404, 409),
    ("GET", "/api/orders/{order_id}/returns"): (401, 404, 200),
    ("POST", "/api/orders/{order_id}/returns/{return_id}/approve"): (401, 403, 200),
    ("POST", "/api/orders/{order_id}/returns/{return_id}/reject"): (401, 403, 200),
    ("POST", "/api/orders/{order_id}/returns/{return_id}/receive"): (401, 403, 409),
    ("GET", "/api/returns"): (401, 403, 200),
    # Payments.
    ("GET", "/api/payments/config"): (200, 200, 200),
    ("POST", "/api/payments/create-intent"): (401, 404, frozenset({200, 409})),
    ("POST", "/api/payments/confirm"): (401, 404, 404),
    ("GET", "/api/payments/payment-methods/{customer_id}"): (401, 404, 200),
    ("POST", "/api/payments/save-payment-method"): (401, 201, 201),
    ("POST", "/api/payments/refund"): (401, 404, 409),
    ("GET", "/api/payments/history/{customer_id}"): (401, 404, 200),
    ("POST", "/api/payments/webhook"): (400, 400, 400),
    # Events, notifications, /ws.
    ("GET", "/api/events"): (401, 200, 200),
    ("GET", "/api/events/stats"): (401, 403, 200),
    ("GET", "/api/events/health"): (OPS, OPS, OPS),
    ("GET", "/api/events/correlation/{correlation_id}"): (401, 404, 200),
    ("POST", "/api/events/replay"): (401, 403, 200),
    ("GET", "/api/events/dead-letters"): (401, 403, 200),
    ("POST", "/api/events/dead-letters/{dead_letter_id}/retry"): (401, 403, 202),
    ("GET", "/api/notifications"): (401, 200, 200),
    ("POST", "/api/notifications/read-all"): (401, 200, 200),
    # Notifications are personal: even an admin gets 404 for someone else's.
    ("POST", "/api/notifications/{notification_id}/read"): (401, 404, 404),
    ("WS", "/ws"): (4401, 200, 200),
    # API keys: admins only.
    ("POST", "/api/api-keys"): (401, 403, 201),
    ("GET", "/api/api-keys"): (401, 403, 200),
    ("DELETE", "/api/api-keys/{key_id}"): (401, 403, 200),
    # Outgoing webhook subscriptions: admins only.
    ("POST", "/api/webhook-subscriptions"): (401, 403, 201),
    ("GET", "/api/webhook-subscriptions"): (401, 403, 200),
    ("GET", "/api/webhook-subscriptions/{subscription_id}"): (401, 403, 200),
    ("PATCH", "/api/webhook-subscriptions/{subscription_id}"): (401, 403, 200),
    ("DELETE", "/api/webhook-subscriptions/{subscription_id}"): (401, 403, 200),
    ("GET", "/api/webhook-subscriptions/{subscription_id}/deliveries"): (401, 403, 200),
    (
        "POST",
        "/api/webhook-subscriptions/{subscription_id}/deliveries/{delivery_id}/redeliver",
    ): (401, 403, 202),
}

PASSWORD = "matrix-password-1"


@dataclass
class Account:
    email: str
    password: str
    token: str
    id: str


@dataclass
class World:
    owner: Account
    other: Account
    admin: Account
    ids: dict[str, str] = field(default_factory=dict)


# Valid bodies, so a 2xx is reachable; called once per request with the world and caller.
BODIES: dict[tuple[str, str], Callable[[World, Account | None], dict[str, Any]]] = {
    ("POST", "/api/users/register"): lambda w, caller: {
        "email": f"new-{uuid.uuid4().hex[:12]}@example.com",
        "password": PASSWORD,
        "firstName": "New",
        "lastName": "Person",
    },
    ("POST", "/api/users/login"): lambda w, caller: {
        "email": w.owner.email,
        "password": w.owner.password,
    },
    ("PATCH", "/api/users/profile"): lambda w, caller: {"firstName": "Renamed"},
    ("POST", "/api/users/password-reset"): lambda w, caller: {"email": w.owner.email},
    ("POST", "/api/users/password-reset/confirm"): lambda w, caller: {
        "token": "x" * 43,
        "password": "new-password-1",
    },
    ("POST", "/api/users/verify-email"): lambda w, caller: {"token": "y" * 43},
    ("POST", "/api/products"): lambda w, caller: {
        "sku": f"NEW-{uuid.uuid4().hex[:8].upper()}",
        "name": "New product",
        "priceCents": 100,
        "stock": 1,
    },
    ("PATCH", "/api/products/{sku}"): lambda w, caller: {"restock": 1},
    ("POST", "/api/orders"): lambda w, caller: {
        "items": [{"sku": w.ids["sku"], "quantity": 1}],
        "shippingAddress": {
            "name": "M X",
            "line1": "1 Road",
            "city": "Town",
            "postalCode": "12345",
            "country": "GB",
        },
    },
    ("PATCH", "/api/orders/{order_id}"): lambda w, caller: {"notes": "leave at the door"},
    ("POST", "/api/orders/{order_id}/returns"): lambda w, caller: {
        "lines": [{"sku": w.ids["sku"], "quantity": 1}],
        "reason": "matrix",
    },
    ("POST", "/api/orders/{order_id}/returns/{return_id}/reject"): lambda w, caller: {
        "reason": "matrix"
    },
    ("DELETE", "/api/orders/{order_id}"): lambda w, caller: {"reason": "matrix"},
    ("POST", "/api/payments/create-intent"): lambda w, caller: {"orderId": w.ids["order_id"]},
    ("POST", "/api/payments/confirm"): lambda w, caller: {
        "orderId": w.ids["order_id"],
        "paymentMethodId": "pm_doesnotexist",
    },
    ("POST", "/api/payments/save-payment-method"): lambda w, caller: {
        "paymentMethodId": _new_card()
    },
    ("POST", "/api/payments/refund"): lambda w, caller: {
        "orderId": w.ids["order_id"],
        "reason": "matrix",
    },
    ("POST", "/api/events/replay"): lambda w, caller: {"type": "order.*", "dryRun": True},
    ("POST", "/api/webhook-subscriptions"): lambda w, caller: {
        "url": "http://127.0.0.1:9/hooks",
        "eventTypes": ["order.*"],
    },
    ("POST", "/api/api-keys"): lambda w, caller: {"name": "matrix", "scopes": ["orders:read"]},
    ("PATCH", "/api/webhook-subscriptions/{subscription_id}"): lambda w, caller: {
        "description": "renamed"
    },
}


def _new_card() -> str:
    from tests.factories import stripe_client

    card = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2030, "cvc": "123"}
    return stripe_client().v1.payment_methods.create({"type": "card", "card": card}).id


def _owned_resources(client: TestClient, world: World) -> None:
    """A product, an order and a Stripe customer owned by world.owner."""
    sku = f"MTX-{uuid.uuid4().hex[:8].upper()}"
    admin = {"Authorization": f"Bearer {world.admin.token}"}
    owner = {"Authorization": f"Bearer {world.owner.token}"}
    r = client.post(
        "/api/products",
        json={"sku": sku, "name": "M", "priceCents": 100, "stock": 100},
        headers=admin,
    )
    assert r.status_code == 201, r.text
    world.ids["sku"] = sku
    r = client.post("/api/orders", json=BODIES[("POST", "/api/orders")](world, None), headers=owner)
    assert r.status_code == 202, r.text
    world.ids["order_id"] = r.json()["data"]["order"]["id"]
    r = client.post(
        "/api/payments/save-payment-method", json={"paymentMethodId": _new_card()}, headers=owner
    )
    assert r.status_code == 201, r.text
    world.ids["customer_id"] = r.json()["data"]["customerId"]


def _event_resources(client: TestClient, world: World) -> None:
    """An event, a notification and a dead letter belonging to world.owner."""
    from models.dead_letter import DeadLetter
    from models.event import store_events
    from models.notification import Notification
    from workflows.events import EventType, make_event

    correlation = f"mtx-{uuid.uuid4().hex[:12]}"
    event = make_event(
        EventType.ORDER_UPDATED,
        aggregate_id=world.ids.get("order_id", "mtx-order"),
        aggregate_version=1,
        correlation_id=correlation,
        user_id=world.owner.id,
    )
    store_events([event])
    world.ids["correlation_id"] = correlation
    Notification.add_many(
        [
            {
                "userId": world.owner.id,
                "eventId": event["eventId"],
                "type": event["type"],
                "title": "M",
            }
        ]
    )
    world.ids["notification_id"] = str(Notification.objects(event_id=event["eventId"]).first().id)
    dead = DeadLetter.for_handler("order_stats", event["eventId"], error="matrix", attempts=1)
    world.ids["dead_letter_id"] = str(dead.id)


def _return_resources(client: TestClient, world: World) -> None:
    """A requested return on world.owner's order (stored as the API would after delivery)."""
    from models.order_returns import request_return

    _, ret = request_return(
        world.ids["order_id"], [{"sku": world.ids["sku"], "quantity": 1}], "matrix", actor="m"
    )
    world.ids["return_id"] = ret["id"]


def _webhook_resources(client: TestClient, world: World) -> None:
    """A subscription (to a closed port: nothing listens) and one delivery of it."""
    from models.outgoing_webhook import WebhookDelivery, WebhookSubscription

    sub, _ = WebhookSubscription.create(
        url="http://127.0.0.1:9/hooks", event_types=["order.*"], description="", created_by="m"
    )
    WebhookDelivery.add_many(
        [
            {
                "subscription_id": sub.id,
                "event_id": f"evt-{uuid.uuid4().hex}",
                "event_type": "order.created",
                "aggregate_id": world.ids.get("order_id", "mtx-order"),
                "payload": {"type": "order.created"},
            }
        ]
    )
    world.ids["subscription_id"] = sub.id
    from models.api_key import ApiKey

    world.ids["key_id"] = ApiKey.create("matrix", ["orders:read"], world.admin.id)[0].id
    world.ids["delivery_id"] = WebhookDelivery.objects(subscription_id=sub.id).first().id


# Path parameter name -> value naming world.owner's resource, e.g. {"id": lambda w: w.ids["order"]}.
PATH_PARAMS: dict[str, Callable[[World], str]] = {
    "sku": lambda w: w.ids["sku"],
    "order_id": lambda w: w.ids["order_id"],
    "customer_id": lambda w: w.ids["customer_id"],
    "correlation_id": lambda w: w.ids["correlation_id"],
    "notification_id": lambda w: w.ids["notification_id"],
    "dead_letter_id": lambda w: w.ids["dead_letter_id"],
    "subscription_id": lambda w: w.ids["subscription_id"],
    "delivery_id": lambda w: w.ids["delivery_id"],
    "return_id": lambda w: w.ids["return_id"],
    "key_id": lambda w: w.ids["key_id"],
}

# Called after the three accounts exist, to create resources owned by world.owner.
SETUP_HOOKS: list[Callable[[TestClient, World], None]] = [
    _owned_resources,
    _event_resources,
    _webhook_resources,
    _return_resources,
]


def app_routes(app: Any) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, WebSockets as "WS"; static mounts excluded.

    FastAPI 0.165 keeps included routers as one nested entry of ``app.routes``;
    ``iter_route_contexts`` flattens them with their effective (prefixed) paths.
    """
    found: set[tuple[str, str]] = set()
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, (APIWebSocketRoute, WebSocketRoute)):
            found.add(("WS", context.path))
        elif isinstance(route, Route):
            for method in context.methods or ():
                if method not in ("HEAD", "OPTIONS"):
                    found.add((method, context.path))
    return found


def _account(client: TestClient, role: str) -> Account:
    from core.security import create_access_token
    from models.user import User

    email = f"{role}-{uuid.uuid4().hex[:10]}@example.com"
    if role == "admin":
        admin, _ = User.ensure_admin(email, PASSWORD)
        token, _ = create_access_token(str(admin.id), admin.role)
        return Account(email, PASSWORD, token, str(admin.id))
    r = client.post(
        "/api/users/register",
        json={"email": email, "password": PASSWORD, "firstName": "M", "lastName": "X"},
    )
    assert r.status_code == 201, r.text
    data = r.json()["data"]
    return Account(email, PASSWORD, data["token"], data["user"]["id"])


def _world(client: TestClient) -> World:
    world = World(_account(client, "owner"), _account(client, "other"), _account(client, "admin"))
    for hook in SETUP_HOOKS:
        hook(client, world)
    return world


def _path(template: str, world: World) -> str:
    path = template
    for name, value in PATH_PARAMS.items():
        path = path.replace("{" + name + "}", value(world))
    assert "{" not in path, f"add a PATH_PARAMS entry for {template}"
    return path


def _call(client: TestClient, method: str, path: str, world: World, caller: Account | None) -> int:
    token = caller.token if caller else None
    if method == "WS":
        try:
            with client.websocket_connect(path) as ws:
                ws.send_json({"type": "auth", "token": token or ""})
                ws.receive_json()
                return 200
        except WebSocketDisconnect as exc:
            return exc.code
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body_factory = BODIES.get((method, path))
    url = _path(path, world)
    body = body_factory(world, caller) if body_factory else None
    return client.request(method, url, headers=headers, json=body).status_code


def test_every_route_is_listed(app) -> None:
    routes = app_routes(app)
    missing = sorted(routes - set(ROUTE_ACCESS))
    stale = sorted(set(ROUTE_ACCESS) - routes)
    assert not missing, f"routes without a ROUTE_ACCESS row (add them): {missing}"
    assert not stale, f"ROUTE_ACCESS rows for routes that no longer exist: {stale}"


@pytest.mark.parametrize(("method", "path"), sorted(ROUTE_ACCESS), ids=lambda v: str(v))
def test_route_access(client: TestClient, stripe_server, method: str, path: str) -> None:
    world = _world(client)
    expected = ROUTE_ACCESS[(method, path)]
    callers = (("anonymous", None), ("other customer", world.other), ("admin", world.admin))
    got: dict[str, int] = {}
    for (label, caller), want in zip(callers, expected, strict=True):
        status = _call(client, method, path, world, caller)
        got[label] = status
        allowed = want if isinstance(want, frozenset) else frozenset({want})
        assert status in allowed, f"{method} {path} as {label}: {status}, expected {want}; {got}"
