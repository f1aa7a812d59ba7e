"""SIGTERM on a payments worker in the middle of confirm_payment: the step runs to
completion (warm shutdown) or its message is handed back and redelivered, and the card is
never charged twice. Stripe's confirm call is held by a delaying proxy in front of
localstripe so the signal lands while the task is inside it."""

from __future__ import annotations

import signal
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.conftest import Worker
from tests.factories import customer_with_card, intents_for, place_order, wait_status


class DelayingStripeProxy:
    """Forwards everything to localstripe; holds each intent confirm ``delay`` seconds."""

    def __init__(self, upstream: str, delay: float) -> None:
        self.confirms = 0
        self.confirm_started = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                if self.command == "POST" and self.path.endswith("/confirm"):
                    proxy.confirms += 1
                    proxy.confirm_started.set()
                    time.sleep(delay)
                headers = {
                    k: v
                    for k, v in self.headers.items()
                    if k.lower() not in {"host", "content-length"}
                }
                r = httpx.request(
                    self.command, upstream + self.path, headers=headers, content=body, timeout=30
                )
                self.send_response(r.status_code)
                for k, v in r.headers.items():
                    if k.lower() not in {
                        "content-length",
                        "transfer-encoding",
                        "connection",
                        "content-encoding",
                    }:
                        self.send_header(k, v)
                self.send_header("content-length", str(len(r.content)))
                self.end_headers()
                self.wfile.write(r.content)

            do_GET = do_POST = do_DELETE = _forward

            def log_message(self, *_: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


@pytest.mark.parametrize("pool", ["threads", "prefork"])
def test_sigterm_mid_confirm_never_charges_twice(client, worker, services, pool) -> None:
    from tasks.app import celery_app

    proxy = DelayingStripeProxy(services["stripe"]["url"], delay=3.0)
    celery_app.control.cancel_consumer("payments", destination=[worker.name], reply=True)
    payments = Worker(
        f"worker-sigterm-{pool}-{uuid.uuid4().hex[:6]}",
        4,
        queues="payments",
        pool=pool,
        env={"STRIPE_API_BASE": proxy.url, "STRIPE_TIMEOUT_SECONDS": "10"},
    ).start()
    replacement = None
    try:
        customer, pm = customer_with_card(client, f"SKU-TERM-{pool.upper()}", stock=3)
        r = place_order(client, customer["token"], [(f"SKU-TERM-{pool.upper()}", 1)], pm)
        assert r.status_code == 202, r.text
        order_id = r.json()["data"]["order"]["id"]
        assert proxy.confirm_started.wait(60), "confirm_payment never reached Stripe"
        payments.proc.send_signal(signal.SIGTERM)  # the worker parent: Celery's warm shutdown
        t0 = time.monotonic()
        payments.proc.wait(timeout=60)
        stopped_in = time.monotonic() - t0
        assert payments.proc.returncode == 0, payments.log()[-3000:]
        # The warm shutdown waited for the step inside Stripe (3 s), not the whole grace.
        assert 2.0 <= stopped_in < 30, stopped_in

        # Another payments worker takes over whatever was handed back.
        replacement = Worker(
            f"worker-sigterm-next-{uuid.uuid4().hex[:6]}", 4, queues="payments", pool=pool
        ).start()
        done = wait_status(client, customer["token"], order_id, {"shipped", "failed"}, timeout=90)
        assert done["status"] == "shipped", done.get("statusReason")
        succeeded = [i for i in intents_for(order_id) if i.status == "succeeded"]
        assert len(succeeded) == 1, [(i.id, i.status) for i in intents_for(order_id)]
        assert done["paidCents"] == done["totalCents"] == succeeded[0].amount
        assert proxy.confirms == 1  # the step finished inside the warm shutdown: no re-run
    finally:
        if payments.proc.poll() is None:
            payments.kill()
        if replacement is not None:
            replacement.stop()
        celery_app.control.add_consumer("payments", destination=[worker.name], reply=True)
        proxy.close()
