"""The API's one Redis subscription survives a Redis restart, and sockets catch up afterwards.

Runs against a private redis-server (started and restarted here), so the shared one is
never touched.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from core.bus import GAP, EventHub, events_channel, publish_events
from devstack import processes
from models.event import store_events
from tests.conftest import ARTIFACTS
from tests.factories import register
from workflows.events import EventType, make_event


class PrivateRedis:
    def __init__(self) -> None:
        self.port = processes.free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = processes.start_redis(self.port, ARTIFACTS / f"redis-{self.port}.log")

    def restart(self, down_s: float = 0.5) -> None:
        processes.stop(self.proc)
        time.sleep(down_s)
        self.proc = processes.start_redis(self.port, ARTIFACTS / f"redis-{self.port}.log")

    def stop(self) -> None:
        processes.stop(self.proc)


@pytest.fixture
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis()
    yield server
    server.stop()


async def _next(queue: asyncio.Queue, timeout: float = 10.0) -> Any:
    return await asyncio.wait_for(queue.get(), timeout)


def test_hub_resubscribes_after_redis_restart(private_redis: PrivateRedis) -> None:
    async def scenario() -> None:
        hub = EventHub(private_redis.url, events_channel(), idle_ping_s=0.5, max_backoff_s=0.5)
        sub = hub.subscribe()
        hub.start()
        try:
            assert await hub.wait_connected(5)
            assert await _next(sub.queue) is GAP  # subscribed after us: catch up once
            publish_events([{"eventId": "before"}], client=redis.Redis.from_url(private_redis.url))
            assert (await _next(sub.queue))["eventId"] == "before"

            await asyncio.to_thread(private_redis.restart)
            assert await _next(sub.queue, 15) is GAP  # resubscribed: whatever was missed
            assert hub.subscriptions_made >= 2
            publish_events([{"eventId": "after"}], client=redis.Redis.from_url(private_redis.url))
            assert (await _next(sub.queue))["eventId"] == "after"
        finally:
            await hub.stop()

    # A thread of its own: an earlier test may have left a loop running in this one.
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, scenario()).result()


def test_socket_catches_up_from_the_store_after_redis_restart(
    clean_data, private_redis: PrivateRedis
) -> None:
    from api.main import create_app
    from core.settings import get_settings

    # This app's live feed listens on the private Redis; nothing is published there, so an
    # event can only reach the socket through the catch-up that follows a resubscription.
    app = create_app(
        get_settings().model_copy(update={"redis_url": private_redis.url, "ws_resume_wait": 0.05})
    )
    with TestClient(app) as client:
        user = register(client)
        with client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "auth", "token": user["token"]})
            assert ws.receive_json()["type"] == "ready"
            time.sleep(0.5)  # the first subscription's catch-up is done
            missed = make_event(
                EventType.ORDER_CREATED,
                aggregate_id="ord-missed",
                aggregate_version=1,
                correlation_id="c-missed",
                user_id=user["user"]["id"],
            )
            store_events([missed])
            # Not published (and Redis is up), so nothing arrives yet...
            ws.send_json({"type": "ping"})
            assert ws.receive_json() == {"type": "pong"}
            time.sleep(0.5)
            ws.send_json({"type": "ping"})
            assert ws.receive_json() == {"type": "pong"}
            # ...until the feed resubscribes after a restart and reads what it may have missed.
            private_redis.restart()
            message = ws.receive_json()
            while message["type"] != "event" or message["event"]["aggregateId"] != "ord-missed":
                message = ws.receive_json()
            assert message["event"]["eventId"] == missed["eventId"]
