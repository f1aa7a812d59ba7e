"""The chaos scenarios and the audit that judges each (run by bench/chaos.py, one per process)."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from bench.stack import Stack, StackConfig

SKU = "CHAOS-SKU"
SETTLE_TARGET_S = 120
# Short thresholds so beat repairs within seconds; stuck > the queueing delay at `rate`.
CHAOS_ENV = {
    "STUCK_ORDER_SECONDS": "30",
    "PAYMENT_WINDOW_SECONDS": "600",
    "BEAT_RECONCILE_INTERVAL": "5",
    "BEAT_OUTBOX_INTERVAL": "1",
    "OUTBOX_SWEEP_MIN_AGE": "1",
    "ORPHAN_INTENT_GRACE_SECONDS": "5",
    "BROKER_VISIBILITY_TIMEOUT": "30",
    "RETRY_BACKOFF_CAP": "2",
    "STRIPE_TIMEOUT_SECONDS": "3",
}


@dataclass
class Scenario:
    name: str
    orders: int
    rate: float | None  # orders/s submitted; None = as fast as the clients go
    clients: int = 5
    stock: int | None = None  # None: plenty
    mongo_storage: str = ":memory:"
    beats: int = 1
    cards: tuple[str, ...] = ("4242424242424242",)
    fault_at: float = 0.3  # fraction of the orders submitted when the fault starts
    barrier: bool = False
    webhooks_to_recorder: bool = False
    notes: list[str] = field(default_factory=list)


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("worker_kill", orders=200, rate=1.6, fault_at=0.1),
        Scenario("redis_restart", orders=40, rate=2),
        Scenario("mongo_restart", orders=40, rate=2, mongo_storage="dir"),
        Scenario("stripe_freeze", orders=40, rate=2),
        Scenario(
            "webhooks_twice_reversed",
            orders=30,
            rate=5,
            cards=("4242424242424242", "4000002500003155", "4000000000000341"),
            webhooks_to_recorder=True,
            fault_at=1.0,
        ),
        Scenario(
            "oversell_100_for_10",
            orders=100,
            rate=None,
            clients=50,
            stock=10,
            barrier=True,
            fault_at=1.0,
        ),
        Scenario("two_beats", orders=40, rate=2, beats=2),
    )
}


class WebhookRecorder:
    """A second webhook endpoint: keeps every signed body the emulator sends, answers 200."""

    def __init__(self) -> None:
        self.captured: list[tuple[bytes, str]] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                recorder.captured.append((body, self.headers.get("Stripe-Signature") or ""))
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


# -- faults -----------------------------------------------------------------------------
def fault_worker_kill(stack: Stack, kills: int, span_s: float, log: list[str]) -> None:
    """SIGKILL a worker (a random one of the split layout) at random moments over ``span_s``
    seconds, restarting it each time."""
    rng = random.Random()
    for n in range(kills):
        time.sleep(rng.uniform(0.5, max(1.0, span_s / kills)))
        i = rng.randrange(len(stack.workers))
        stack.kill_worker(i)
        time.sleep(rng.uniform(0.2, 1.5))
        t = time.monotonic()
        stack.start_worker(i)
        log.append(
            f"kill {n + 1}: worker {stack.worker_specs[i].name} back in {time.monotonic() - t:.1f}s"
        )


def fault_redis(stack: Stack, log: list[str]) -> None:
    stack.restart_redis(down_seconds=2)
    log.append("redis-server restarted after 2 s down (broker queues and locks lost)")


def fault_mongo(stack: Stack, log: list[str]) -> None:
    stack.restart_mongo(down_seconds=2)
    log.append("SecantusDB restarted after 2 s down (storage on disk kept)")


def fault_stripe(stack: Stack, log: list[str]) -> None:
    stack.freeze_stripe(10)
    log.append("localstripe frozen 10 s (SIGSTOP/SIGCONT)")


def replay_webhooks(stack: Stack, recorder: WebhookRecorder, log: list[str]) -> None:
    import httpx

    captured = list(recorder.captured)
    answers: Counter[str] = Counter()
    with httpx.Client(base_url=stack.api_base, timeout=30) as http:
        for _round in range(2):
            for body, signature in reversed(captured):
                r = http.post(
                    "/api/payments/webhook",
                    content=body,
                    headers={"Stripe-Signature": signature, "Content-Type": "application/json"},
                )
                data = r.json().get("data") or {} if r.status_code == 200 else {}
                answers[f"{r.status_code}{' duplicate' if data.get('duplicate') else ''}"] += 1
    log.append(f"replayed {len(captured)} captured webhooks twice, newest first: {dict(answers)}")


def complete_3ds(stack: Stack, db: Any, ids: list[str], customers: dict[str, Any]) -> int:
    """What the browser does for 3-D Secure: authenticate each requires_action intent."""
    import httpx

    from bench.actors import order_states
    from core.settings import get_settings
    from devstack.stripe_emulator import authenticate_3ds

    done = 0
    key = get_settings().stripe_api_key
    with httpx.Client(base_url=stack.api_base, timeout=30) as http:
        for oid, doc in order_states(db, ids).items():
            if doc.get("status") != "requires_action":
                continue
            owner = customers[oid]
            r = http.post(
                "/api/payments/create-intent", json={"orderId": oid}, headers=owner.headers
            )
            if r.status_code != 200:
                continue
            data = r.json()["data"]
            authenticate_3ds(
                stack.stripe_base, data["paymentIntentId"], data["clientSecret"], True, key
            )
            done += 1
    return done


# -- the run --------------------------------------------------------------------------------
def run_scenario(
    name: str,
    *,
    orders: int | None,
    kills: int,
    rate: float | None,
    stuck: int = 30,
    broker: str | None = None,
    layout: str = "single",
) -> dict:
    sc = SCENARIOS[name]
    n_orders = orders or sc.orders
    pace = rate or sc.rate
    # Beat starts after the setup (see _run), before the first order.
    cfg = StackConfig(
        workers=1,
        concurrency=2,
        layout=layout,
        broker=broker,
        beat=False,
        mongo_storage=sc.mongo_storage,
        env={**CHAOS_ENV, "STUCK_ORDER_SECONDS": str(stuck)},
        label=f"chaos-{name[:10]}",
        supervise=True,
    )
    log: list[str] = []
    with Stack(cfg) as stack:
        return _run(stack, sc, n_orders, pace, kills, log)


def _run(
    stack: Stack, sc: Scenario, n_orders: int, pace: float | None, kills: int, log: list[str]
) -> dict:
    from bench import actors
    from core.db import connect_mongo, get_db
    from models.product import Product

    connect_mongo()
    db = get_db()
    stock = sc.stock if sc.stock is not None else n_orders + 100
    Product.create(sku=SKU, name="Chaos item", price_cents=1000, currency="usd", stock=stock)
    recorder = None
    if sc.webhooks_to_recorder:
        recorder = WebhookRecorder()
        stack.register_webhook(recorder.url)  # replaces the API's hook: the API gets replays only
    customers = actors.make_customers(stack.api_base, stack.stripe_base, min(5, n_orders), sc.cards)
    # Beat only after the setup: its first outbox sweep once raced the API's first User
    # write over the outbox index (a 500 at register); the setup is not what we test.
    for _ in range(sc.beats):
        stack.start_beat()
    card_for: Callable[[int], str] = lambda i: sc.cards[i % len(sc.cards)]  # noqa: E731
    submitted = threading.Event()
    count = {"n": 0}
    fault_window: dict[str, float] = {}
    fault_started = threading.Event()

    def on_submit(_sub: Any) -> None:
        count["n"] += 1
        if count["n"] >= max(1, int(sc.fault_at * n_orders)) and sc.fault_at < 1.0:
            fault_started.set()

    def fault() -> None:
        try:
            inject()
        except Exception as exc:  # the stack may be stopping (a signal): say so, do not hang
            log.append(f"fault injection failed: {type(exc).__name__}: {exc}"[:300])

    def inject() -> None:
        if not fault_started.wait(600):
            return
        fault_window["start"] = time.monotonic()
        if sc.name == "worker_kill":
            span = n_orders / (pace or 10) * 0.7
            fault_worker_kill(stack, kills, span, log)
        elif sc.name == "redis_restart":
            fault_redis(stack, log)
        elif sc.name == "mongo_restart":
            fault_mongo(stack, log)
        elif sc.name == "stripe_freeze":
            fault_stripe(stack, log)
        elif sc.name == "two_beats":
            time.sleep(1)
            stack.kill_worker(0)
            time.sleep(1)
            stack.start_worker(0)
            log.append("two beat processes throughout; the worker SIGKILLed once mid-run")
        fault_window["end"] = time.monotonic()

    fault_thread = threading.Thread(target=fault, daemon=True)
    fault_thread.start()
    since = datetime.now(UTC) - timedelta(seconds=2)
    t0 = time.monotonic()
    subs = actors.submit_orders(
        stack.api_base,
        customers,
        n_orders,
        sc.clients,
        SKU,
        card_for=card_for,
        on_submit=on_submit,
        rate=pace,
        barrier=sc.barrier,
    )
    submitted.set()
    fault_started.set()  # scenarios whose fault comes after the submissions
    fault_thread.join(300)
    owner_of: dict[str, Any] = {}
    for sub in subs:
        if sub.order_id:
            owner_of[sub.order_id] = next(
                c for c in customers if c.cards.get(sub.card) and _owns(db, c, sub.order_id)
            )
    accepted = [s.order_id for s in subs if s.order_id]
    if sc.name == "webhooks_twice_reversed":
        _wait_settled(db, since, 60, allow={"requires_action"})
        log.append(f"3-D Secure completed for {complete_3ds(stack, db, accepted, owner_of)} orders")
        _wait_settled(db, since, 60)
        time.sleep(3)  # the emulator sends webhooks ~1 s after the event
        fault_window["start"] = time.monotonic()
        replay_webhooks(stack, recorder, log)  # type: ignore[arg-type]
        fault_window["end"] = time.monotonic()
    if "end" not in fault_window:
        fault_window = {"start": time.monotonic(), "end": time.monotonic()}
        if sc.fault_at < 1.0:
            log.append("the fault never started")
    settled_at = _wait_settled(db, since, SETTLE_TARGET_S + 30)
    settle_s = None if settled_at is None else round(max(0.0, settled_at - fault_window["end"]), 1)
    _wait_outboxes(db, 20)
    audit = audit_run(db, sc, subs, since, stock)
    if recorder is not None:
        recorder.close()
    audit.update(
        name=sc.name,
        orders=n_orders,
        rate=pace,
        settled_after_fault_s=settle_s,
        fault_seconds=round(fault_window["end"] - fault_window["start"], 1),
        run_seconds=round(time.monotonic() - t0, 1),
    )
    audit["notes"] = log + stack.restarts + audit["notes"]
    audit["worker_crashes"] = len(stack.restarts)  # restarted by the stack's supervisor
    audit["ok"] = bool(
        audit["lost"] == 0
        and audit["duplicate_charges"] == 0
        and audit["charged_not_shipped"] == 0
        and audit["stock_drift"] == 0
        and audit["violations"] == 0
        and settle_s is not None
        and settle_s <= SETTLE_TARGET_S
        and audit["correct_terminal"] == audit["orders_in_db"]
    )
    return audit


def _owns(db: Any, customer: Any, order_id: str) -> bool:
    from bson import ObjectId

    doc = db.orders.find_one({"_id": ObjectId(order_id)}, {"user_id": 1})
    return bool(doc) and doc.get("user_id") == customer.user_id


UNSETTLED = ("pending", "reserved", "payment_pending", "confirmed", "requires_action")


def _wait_settled(db: Any, since: datetime, timeout: float, allow: set[str] | None = None):
    """Monotonic time when no order of this run is mid-chain any more (None: timed out)."""
    waiting = [s for s in UNSETTLED if s not in (allow or set())]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            left = db.orders.count_documents(
                {"status": {"$in": waiting}, "created_at": {"$gte": since}}
            )
        except Exception:  # the server may be restarting
            left = -1
        if left == 0:
            return time.monotonic()
        time.sleep(0.5)
    return None


def _wait_outboxes(db: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(
            db[k].count_documents({"outbox.0": {"$exists": True}}) == 0
            for k in ("orders", "products", "users")
        ):
            return
        time.sleep(0.5)


def _expected(doc: dict[str, Any], card: str, oversell: bool) -> bool:
    status = doc.get("status")
    reason = doc.get("status_reason") or ""
    if card == "4000000000000341":
        return status == "failed" and "declin" in reason
    if oversell and status == "failed":
        return "out of stock" in reason
    return status in ("shipped", "delivered")


def audit_run(db: Any, sc: Scenario, subs: list, since: datetime, stock: int) -> dict[str, Any]:
    from bench.actors import order_states
    from gateways.stripe_gateway import get_gateway
    from tasks.invariants import check_all

    accepted = {s.order_id: s for s in subs if s.order_id}
    all_ids = [str(d["_id"]) for d in db.orders.find({"created_at": {"$gte": since}}, {"_id": 1})]
    states = order_states(db, all_ids)
    notes: list[str] = []
    missing = [oid for oid in accepted if oid not in states]
    unsettled = [oid for oid in states if states[oid].get("status") in UNSETTLED]
    # Lost: accepted but gone, or never reaching an end state by the deadline.
    lost = missing + [oid for oid in unsettled if oid in accepted]
    if missing:
        notes.append(f"{len(missing)} accepted order(s) missing from Mongo")
    if unsettled:
        why = Counter(
            str(states[o].get("attention_reason") or states[o].get("status")) for o in unsettled
        )
        notes.append(f"{len(unsettled)} not settled by the deadline: {dict(why.most_common(3))}")
    extra = [oid for oid in states if oid not in accepted]
    if extra:
        notes.append(f"{len(extra)} order(s) in Mongo whose POST the client saw fail")
    rejected = Counter(str(s.status) for s in subs if not s.order_id)
    if rejected:
        notes.append(f"answers other than 202: {dict(rejected)}")
    correct = 0
    for oid, doc in states.items():
        card = accepted[oid].card if oid in accepted else "4242424242424242"
        if _expected(doc, card, sc.stock is not None):
            correct += 1
    resumed = sum(
        1
        for d in states.values()
        if (d.get("resume_count") or 0) > 0
        or any(str(h.get("actor", "")).startswith("beat:") for h in d.get("history") or [])
    )
    attention = sum(1 for d in states.values() if d.get("needs_attention"))
    # Charges: succeeded intents per order, and money taken for an order that did not ship.
    intents = get_gateway().list_intents(limit=100_000)
    succeeded = Counter(i.order_id for i in intents if i.order_id and i.status == "succeeded")
    per_order = Counter(i.order_id for i in intents if i.order_id)
    duplicates = sum(1 for n in succeeded.values() if n > 1)
    # Money kept for an order that ended without goods (a paid order still mid-chain is
    # counted as unsettled instead).
    charged_not_shipped = [
        oid
        for oid in succeeded
        if oid in states
        and states[oid].get("status") in ("failed", "cancelled")
        and not _refunded(db, oid)
    ]
    if charged_not_shipped:
        notes.append(f"charged for an order that ended unshipped: {charged_not_shipped[:5]}")
    # Stock: conservation, sold == units of shipped orders, holds only for unsettled orders
    # and exactly their quantity (a hold of a finished order is a leak).
    product = db.products.find_one({"_id": SKU}) or {}
    holds = {k: int(q) for k, q in (product.get("holds") or {}).items()}
    held = sum(holds.values())
    expected_holds = {
        oid: sum(int(i.get("quantity", 0)) for i in d.get("items") or [] if i.get("sku") == SKU)
        for oid, d in states.items()
        if d.get("status") in ("reserved", "payment_pending", "requires_action", "confirmed")
    }
    wrong_holds = sum(
        abs(holds.get(oid, 0) - expected_holds.get(oid, 0))
        for oid in set(holds) | set(expected_holds)
    )
    shipped_units = sum(
        int(i.get("quantity", 0))
        for d in states.values()
        if d.get("status") in ("shipped", "delivered")
        for i in d.get("items") or []
        if i.get("sku") == SKU
    )
    drift = abs(
        int(product.get("stocked_total", 0))
        + int(product.get("returned") or 0)
        - (int(product.get("available", 0)) + held + int(product.get("sold", 0)))
    )
    drift += abs(int(product.get("sold", 0)) - shipped_units) + wrong_holds
    if stock != int(product.get("stocked_total", 0)):
        drift += abs(stock - int(product.get("stocked_total", 0)))
    violations = check_all()
    n_violations = sum(len(v) for v in violations.values())
    for check, items in violations.items():
        if items:
            notes.append(f"{check}: {len(items)} e.g. {items[0].subject} {items[0].detail}")
    statuses = Counter(d.get("status") for d in states.values())
    return {
        "submitted": len(accepted),
        "orders_in_db": len(states),
        "statuses": dict(statuses),
        "correct_terminal": correct,
        "resumed_by_beat": resumed,
        "needs_attention": attention,
        "lost": len(lost),
        "missing": len(missing),
        "unsettled": len(unsettled),
        "duplicate_charges": duplicates,
        "max_intents_per_order": max(per_order.values()) if per_order else 0,
        "orders_with_extra_intents": sum(1 for n in per_order.values() if n > 1),
        "charged_not_shipped": len(charged_not_shipped),
        "stock": {
            "stocked": product.get("stocked_total"),
            "available": product.get("available"),
            "held": held,
            "sold": product.get("sold"),
            "shipped_units": shipped_units,
        },
        "stock_drift": drift,
        "violations": n_violations,
        "violations_by_check": {k: len(v) for k, v in violations.items()},
        "notes": notes,
    }


def _refunded(db: Any, order_id: str) -> bool:
    from bson import ObjectId

    doc = db.orders.find_one({"_id": ObjectId(order_id)}, {"refunded_cents": 1, "paid_cents": 1})
    return bool(doc) and (doc.get("refunded_cents") or 0) >= (doc.get("paid_cents") or 0) > 0
