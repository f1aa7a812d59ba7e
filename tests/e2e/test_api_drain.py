"""SIGTERM on an API replica: /ready turns 503 at once while requests are still served, new
WebSockets are refused, open ones are closed with 1012 after the drain window (the client
resumes elsewhere), then uvicorn stops cleanly."""

from __future__ import annotations

import json
import signal
import time

import httpx
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from devstack import processes
from tests.conftest import ARTIFACTS
from tests.factories import register


def _ws(base: str, token: str):
    ws = connect(base.replace("http", "ws", 1) + "/ws", open_timeout=5)
    ws.send(json.dumps({"type": "auth", "token": token}))
    assert json.loads(ws.recv(timeout=5))["type"] == "ready"
    return ws


def test_sigterm_drains_before_stopping(services, clean_data) -> None:
    port = processes.free_port()
    proc = processes.spawn(
        processes.api_args(port, "--timeout-graceful-shutdown", "5"),
        env={"SHUTDOWN_DRAIN_SECONDS": "3"},
        log_path=ARTIFACTS / "drain-api.log",
    )
    try:
        processes.wait_port(port, 30, proc)
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=10) as http:
            assert http.get("/ready").status_code == 200
            customer = register(http)
            ws = _ws(base, customer["token"])

            proc.send_signal(signal.SIGTERM)
            t0 = time.monotonic()
            deadline = t0 + 2
            while http.get("/ready").status_code != 503:
                assert time.monotonic() < deadline, "/ready did not turn 503 on SIGTERM"
                time.sleep(0.05)
            assert http.get("/ready").json()["failing"] == ["draining"]
            # Still serving while the load balancer takes it out.
            assert http.get("/api/products").status_code == 200
            late = connect(base.replace("http", "ws", 1) + "/ws", open_timeout=5)
            try:
                late.recv(timeout=5)
                raise AssertionError("a new WebSocket was accepted while draining")
            except ConnectionClosed as exc:
                assert exc.rcvd is not None and exc.rcvd.code == 1012

            # The open socket is closed with 1012 after the drain window, not before.
            try:
                while True:
                    message = json.loads(ws.recv(timeout=10))
                    assert message["type"] in {"ping", "event"}
            except ConnectionClosed as exc:
                closed_after = time.monotonic() - t0
                assert exc.rcvd is not None and exc.rcvd.code == 1012, exc
            assert 2.5 <= closed_after <= 8, closed_after
        proc.wait(timeout=15)
        assert "api_drained" in (ARTIFACTS / "drain-api.log").read_text()
    finally:
        processes.stop(proc)
