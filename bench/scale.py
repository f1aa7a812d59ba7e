"""`make scale`: the scale-out test on one machine (loopback only, bounded in time).

Two API replicas behind HAProxy, three workers split by queue (devstack WORKER_LAYOUT:
payments on a threads pool), a private RabbitMQ node, beat and localstripe
(bench/scale_stack.py). During a steady order load it

1. SIGTERMs one API replica (it drains: /ready 503, WebSockets closed 1012) and starts it
   again;
2. SIGKILLs one whole worker host (the payments worker's process group) and starts it again;
3. restarts RabbitMQ (a clean stop of our node, 3 s down, start);

while WebSocket clients connected through the proxy record every event and resume after the
last one they saw whenever their socket closes. After the faults it waits until every order
settled, then runs the system invariants and the chaos audit (bench/chaos_scenarios.py) plus
the feed audit: for each client, every stored event of its user from its first received
event on arrived (no gap) and none twice (no duplicate).

``--throughput`` measures orders/s instead (no faults): 1 vs 2 API replicas with the split
workers, and 1 worker on every queue vs the 3 split workers with 2 replicas, same sitting.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.chaos_scenarios import SKU  # the audit reads this product

ROOT = Path(__file__).resolve().parent.parent
SETTLE_TARGET_S = 120


class FeedClient:
    """A browser's live feed through the proxy: reconnects and resumes after the last event."""

    def __init__(self, base: str, token: str, user_id: str) -> None:
        self.url = base.replace("http", "ws", 1) + "/ws"
        self.token, self.user_id = token, user_id
        self.received: list[str] = []
        self.reconnects = 0
        self.closes: list[int | None] = []
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> FeedClient:
        self.thread.start()
        return self

    def _run(self) -> None:
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        while not self._stop.is_set():
            try:
                with connect(self.url, open_timeout=5, close_timeout=2) as ws:
                    ws.send(json.dumps({"type": "auth", "token": self.token}))
                    ready = json.loads(ws.recv(timeout=10))
                    if ready.get("type") != "ready":
                        raise ConnectionError(f"not ready: {ready}")
                    if self.received:
                        ws.send(json.dumps({"type": "resume", "after": self.received[-1]}))
                    while not self._stop.is_set():
                        try:
                            msg = json.loads(ws.recv(timeout=1))
                        except TimeoutError:
                            continue
                        if msg.get("type") == "event":
                            self.received.append(msg["event"]["eventId"])
                        elif msg.get("type") == "ping":
                            ws.send(json.dumps({"type": "pong"}))
            except ConnectionClosed as exc:
                self.closes.append(exc.rcvd.code if exc.rcvd else None)
            except Exception:  # refused while draining, proxy switching: retry
                self.closes.append(None)
            if not self._stop.is_set():
                self.reconnects += 1
                time.sleep(0.5)

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(10)


def feed_audit(db: Any, clients: list[FeedClient]) -> dict[str, Any]:
    gaps = duplicates = checked = 0
    for c in clients:
        if not c.received:
            continue
        first = db.events.find_one({"_id": c.received[0]}, {"seq": 1})
        stored = [
            d["_id"]
            for d in db.events.find(
                {"userId": c.user_id, "seq": {"$gte": first["seq"]}}, {"_id": 1}
            ).sort("seq", 1)
        ]
        got = set(c.received)
        gaps += len([e for e in stored if e not in got])
        duplicates += len(c.received) - len(got)
        checked += len(stored)
    return {
        "feed_clients": len(clients),
        "feed_events_checked": checked,
        "feed_gaps": gaps,
        "feed_duplicates": duplicates,
        "feed_reconnects": sum(c.reconnects for c in clients),
        "feed_close_codes": sorted({str(code) for c in clients for code in c.closes}),
    }


def run_faults(args: argparse.Namespace) -> dict[str, Any]:
    from bench import actors
    from bench.chaos_scenarios import CHAOS_ENV, Scenario, _wait_outboxes, _wait_settled, audit_run
    from bench.scale_stack import ScaleStack
    from bench.stack import StackConfig
    from core.db import connect_mongo, get_db
    from models.product import Product

    sc = Scenario("scale_out", orders=args.orders, rate=args.rate, clients=args.clients)
    cfg = StackConfig(
        layout="split",
        beat=False,
        env={**CHAOS_ENV, "STUCK_ORDER_SECONDS": "30"},
        label="scale",
        supervise=True,
    )
    log: list[str] = []
    with ScaleStack(cfg, apis=2) as stack:
        connect_mongo()
        db = get_db()
        stock = args.orders + 100
        Product.create(sku=SKU, name="Scale item", price_cents=1000, currency="usd", stock=stock)
        customers = actors.make_customers(stack.api_base, stack.stripe_base, 6)
        stack.start_beat()
        feeds = [FeedClient(stack.api_base, c.token, c.user_id).start() for c in customers[:4]]
        time.sleep(1.0)
        since = datetime.now(UTC) - timedelta(seconds=2)
        window: dict[str, float] = {}
        count = {"n": 0}
        go = threading.Event()

        def on_submit(_sub: Any) -> None:
            count["n"] += 1
            if count["n"] >= args.orders * 0.2:
                go.set()

        def faults() -> None:
            try:
                if not go.wait(600):
                    return
                window["start"] = time.monotonic()
                took = stack.sigterm_api(1)
                log.append(f"SIGTERM api2: drained and exited in {took:.1f}s")
                stack.start_api_replica(1)
                time.sleep(4)
                i = next(n for n, s in enumerate(stack.worker_specs) if s.name == "payments")
                stack.kill_worker(i)
                log.append("SIGKILL the payments worker host (main + pool)")
                time.sleep(2)
                stack.start_worker(i)
                log.append("payments worker started again")
                time.sleep(4)
                t = time.monotonic()
                stack.restart_rabbitmq(down_seconds=3)
                log.append(f"RabbitMQ restarted ({time.monotonic() - t:.1f}s incl. 3 s down)")
                window["end"] = time.monotonic()
            except Exception as exc:  # report, never hang the run
                log.append(f"fault failed: {type(exc).__name__}: {exc}"[:300])
                window.setdefault("end", time.monotonic())

        ft = threading.Thread(target=faults, daemon=True)
        ft.start()
        t0 = time.monotonic()
        subs = actors.submit_orders(
            stack.api_base,
            customers,
            args.orders,
            args.clients,
            SKU,
            on_submit=on_submit,
            rate=args.rate,
        )
        submit_s = time.monotonic() - t0
        ft.join(300)
        end = window.get("end", time.monotonic())
        settled_at = _wait_settled(db, since, SETTLE_TARGET_S + 30)
        settle_s = None if settled_at is None else round(max(0.0, settled_at - end), 1)
        _wait_outboxes(db, 20)
        time.sleep(2)  # the last events reach the feeds
        for f in feeds:
            f.stop()
        audit = audit_run(db, sc, subs, since, stock)
        audit.update(feed_audit(db, feeds))
        audit.update(
            name="scale_out",
            submit_seconds=round(submit_s, 1),
            settled_after_fault_s=settle_s,
            fault_seconds=round(end - window.get("start", end), 1),
        )
        audit["notes"] = log + stack.restarts + audit["notes"]
        audit["ok"] = bool(
            audit["lost"] == 0
            and audit["duplicate_charges"] == 0
            and audit["charged_not_shipped"] == 0
            and audit["stock_drift"] == 0
            and audit["violations"] == 0
            and audit["feed_gaps"] == 0
            and audit["feed_duplicates"] == 0
            and settle_s is not None
            and settle_s <= SETTLE_TARGET_S
        )
        return audit


def run_throughput(args: argparse.Namespace) -> list[dict[str, Any]]:
    import tempfile

    from bench.scale_stack import PrivateRabbit

    rows = []
    # One RabbitMQ node for every sitting: the same broker for each, and this process's
    # Celery app (which pings the workers) keeps the broker URL it was first built with.
    rabbit_dir = Path(tempfile.mkdtemp(prefix="oms-scale-tp-rabbitmq-"))
    rabbit = PrivateRabbit(rabbit_dir, rabbit_dir / "rabbitmq.log")
    rabbit.start()
    try:
        return _sittings(args, rabbit, rows)
    finally:
        rabbit.stop()
        import shutil

        shutil.rmtree(rabbit_dir, ignore_errors=True)


def _sittings(args: argparse.Namespace, rabbit: Any, rows: list) -> list[dict[str, Any]]:
    from bench import actors
    from bench.chaos_scenarios import CHAOS_ENV, _wait_settled
    from bench.scale_stack import ScaleStack
    from bench.stack import StackConfig
    from core.db import connect_mongo, disconnect_mongo, get_db
    from core.settings import Settings
    from models.product import Product

    for apis, layout in ((1, "split"), (2, "split"), (2, "single")):
        cfg = StackConfig(
            layout=layout, workers=1, concurrency=2, env=dict(CHAOS_ENV), label="scale-tp"
        )
        with ScaleStack(cfg, apis=apis, rabbit=rabbit) as stack:
            disconnect_mongo()
            connect_mongo(Settings())  # this sitting's Mongo (get_settings() is cached)
            db = get_db()
            Product.create(
                sku=SKU, name="Scale item", price_cents=1000, currency="usd", stock=10**6
            )
            customers = actors.make_customers(stack.api_base, stack.stripe_base, 10)
            since = datetime.now(UTC) - timedelta(seconds=1)
            t0 = time.monotonic()
            subs = actors.submit_orders(stack.api_base, customers, args.orders, args.clients, SKU)
            accept_s = time.monotonic() - t0
            done = _wait_settled(db, since, 300)
            total_s = (done or time.monotonic()) - t0
            shipped = db.orders.count_documents(
                {"status": "shipped", "created_at": {"$gte": since}}
            )
            rows.append(
                {
                    "apis": apis,
                    "workers": "3 split" if layout == "split" else "1 (all queues, prefork x2)",
                    "accepted": sum(1 for s in subs if s.order_id),
                    "shipped": shipped,
                    "accepted_per_s": round(len(subs) / accept_s, 1),
                    "completed_per_s": round(shipped / total_s, 2),
                }
            )
            print(f"[scale] {rows[-1]}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--orders", type=int, default=240)
    p.add_argument("--rate", type=float, default=3.0, help="orders/s during the fault run")
    p.add_argument("--clients", type=int, default=6)
    p.add_argument(
        "--throughput", action="store_true", help="orders/s: 1 vs 2 APIs, 1 vs 3 workers"
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/scale.json")
    args = p.parse_args(argv)
    started = time.monotonic()
    if args.throughput:
        result: Any = {"throughput": run_throughput(args)}
        ok = True
    else:
        result = run_faults(args)
        ok = result["ok"]
    result = {"result": result, "seconds": round(time.monotonic() - started, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
