"""Stopping without dropping anyone: SIGTERM drains the API before uvicorn stops it.

On the first SIGTERM (Kubernetes, compose, `make scale`, a supervisor) the process

1. turns ``/ready`` to 503 (``app.state.draining``) and refuses new WebSockets with 1012
   ("service restart"), while it keeps answering every other request: the load balancer
   needs a few health checks to take the replica out, and requests it still sends succeed;
2. after ``SHUTDOWN_DRAIN_SECONDS``, closes every open WebSocket with 1012, so the browsers
   reconnect through the load balancer to another replica and resume after the last event
   they saw (the ``after`` of their auth message: no gap, no duplicate);
3. hands over to uvicorn's own SIGTERM handling: it stops accepting, lets in-flight requests
   finish (``--timeout-graceful-shutdown``) and runs the lifespan shutdown.

A second SIGTERM (or SIGINT) during the drain stops at once, as before. Outside uvicorn's
signal handling (the test client) nothing is installed.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from fastapi import FastAPI

from monitoring.logging import get_logger

CLOSE_SERVICE_RESTART = 1012
log = get_logger(__name__)


def is_draining(app: Any) -> bool:
    return bool(getattr(app.state, "draining", False))


def install_sigterm_drain(app: FastAPI, drain_seconds: float) -> bool:
    """Wrap the server's SIGTERM handler with the drain; False if there is none to wrap."""
    app.state.draining = False
    if threading.current_thread() is not threading.main_thread():
        return False  # the test client runs the app in a thread: no signals there
    original = signal.getsignal(signal.SIGTERM)
    if not callable(original):
        return False
    loop = asyncio.get_running_loop()
    handler: Callable[[int, FrameType | None], Any] = original

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if app.state.draining:
            handler(sig, frame)  # a second SIGTERM: stop now
            return
        app.state.draining = True
        loop.call_soon_threadsafe(lambda: loop.create_task(_drain(app, drain_seconds, sig)))

    async def _drain(app: FastAPI, seconds: float, sig: int) -> None:
        log.info("api_draining", drain_seconds=seconds)
        await asyncio.sleep(seconds)
        hub = getattr(app.state, "event_hub", None)
        closing = hub.drain() if hub is not None else 0
        log.info("api_drained", websockets_closed=closing)
        await asyncio.sleep(0.2)  # let the sockets send their close frames
        handler(sig, None)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
