"""``/ws``: live events for the signed-in user (their own; admins everything), with resume.

Protocol: the client's first message is ``{"type": "auth", "token": ...}`` (it may carry
``"after": <eventId>``); the server answers ``{"type": "ready"}``. A ``{"type": "resume",
"after": <eventId>}`` (right after auth, or later) sends the stored events after that one,
oldest first, then live ones. The live subscription is taken *before* the store is read and
every event is deduplicated by ``eventId``, so nothing falls between the two and nothing
comes twice. ``{"type": "ping"}`` every ``ws_ping_interval`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections import OrderedDict, deque
from typing import Any

from fastapi import APIRouter, FastAPI, WebSocket, WebSocketDisconnect
from starlette.concurrency import run_in_threadpool

from api.customer_views import event_view
from api.deps import authenticate_token
from api.envelope import ApiError
from core.bus import DRAIN, GAP, EventHub, Subscription
from core.settings import Settings
from models.event import bus_message, events_after, latest_seq, seq_of
from models.user import User
from monitoring.metrics import WEBSOCKET_CONNECTIONS

router = APIRouter(tags=["real time"])

CLOSE_UNAUTHORIZED = 4401
CLOSE_AUTH_TIMEOUT = 4408
CLOSE_BAD_MESSAGE = 4400
CLOSE_TOO_BIG = 1009  # RFC 6455 "message too big"
CLOSE_TOO_MANY = 4429
# Events re-read around a gap: live events may arrive slightly out of store order.
GAP_SLACK = 200
BACKLOG_BATCH = 500
SEEN_MAX = 5000
_DISCONNECTED = object()


class MessageTooBig(Exception):
    """A client frame over ``ws_max_message_bytes``."""


async def receive_message(ws: WebSocket, max_bytes: int) -> Any:
    """The next client frame as JSON; MessageTooBig over the limit, ValueError if not JSON."""
    message = await ws.receive()
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    raw = message.get("text")
    data = raw.encode("utf-8", "surrogatepass") if raw is not None else message.get("bytes") or b""
    if len(data) > max_bytes:
        raise MessageTooBig
    return json.loads(data)


def _sockets(app: FastAPI) -> dict[str, int]:
    """Open authenticated sockets per user id, in this process."""
    counts = getattr(app.state, "ws_sockets", None)
    if counts is None:
        counts = app.state.ws_sockets = {}
    return counts


def event_hub(app: FastAPI) -> EventHub:
    """The process's one Redis subscription (per app), started on first use."""
    hub = getattr(app.state, "event_hub", None)
    if hub is None:
        settings = app.state.settings
        hub = EventHub(settings.redis_url, settings.events_channel)
        app.state.event_hub = hub
    hub.start()
    return hub


async def close_event_hub(app: FastAPI) -> None:
    hub = getattr(app.state, "event_hub", None)
    if hub is not None:
        await hub.stop()


class LiveSession:
    """One authenticated socket: backlog on resume, then live events, pings, dedupe."""

    def __init__(
        self, ws: WebSocket, user: User, token: str, hub: EventHub, sub: Subscription
    ) -> None:
        self.ws = ws
        self.user = user
        self.user_id = str(user.id)
        self.token = token
        self.hub = hub
        self.sub = sub
        self.settings: Settings = ws.app.state.settings
        self.seen: OrderedDict[str, None] = OrderedDict()
        self.position = 0  # the highest store position this session has caught up to
        self.floor = 0  # where this session's feed starts: a gap catch-up never goes below
        self.control: asyncio.Queue[Any] = asyncio.Queue()
        self.resumes: deque[float] = deque()

    # -- sending ---------------------------------------------------------------------------
    def visible(self, event: dict[str, Any]) -> bool:
        return self.user.is_admin or event.get("userId") == self.user_id

    async def send_event(self, event: dict[str, Any]) -> None:
        event_id = event.get("eventId")
        if not event_id or event_id in self.seen or not self.visible(event):
            return
        seq = event.get("seq")
        if isinstance(seq, int):
            self.position = max(self.position, seq)
        # Customers get their events without internals (customer_views); admins all of it.
        public = event_view(
            {k: v for k, v in event.items() if k != "seq"}, admin=self.user.is_admin
        )
        if public is None:
            return
        await self.ws.send_json({"type": "event", "event": public})
        self.seen[event_id] = None
        if len(self.seen) > SEEN_MAX:
            self.seen.popitem(last=False)

    async def catch_up(self, after_seq: int) -> None:
        """Send every stored event after ``after_seq`` this user may see, oldest first."""
        owner = None if self.user.is_admin else self.user_id
        cursor = after_seq
        while True:
            docs = await run_in_threadpool(events_after, cursor, owner, BACKLOG_BATCH)
            for doc in docs:
                await self.send_event(bus_message(doc))
            if len(docs) < BACKLOG_BATCH:
                return
            cursor = int(docs[-1]["seq"])

    async def resume(self, after: Any) -> None:
        seq = await run_in_threadpool(seq_of, after) if isinstance(after, str) else None
        if seq is None:
            await self.ws.send_json(
                {"type": "error", "code": "UNKNOWN_EVENT", "message": "cannot resume after it"}
            )
            return
        self.floor = min(self.floor, seq)
        await self.catch_up(seq)

    # -- receiving ---------------------------------------------------------------------------
    async def read_messages(self) -> None:
        try:
            while True:
                try:
                    message = await receive_message(self.ws, self.settings.ws_max_message_bytes)
                    await self.control.put(message)
                except ValueError:
                    await self.control.put({"type": "_malformed"})
        except MessageTooBig:
            with contextlib.suppress(Exception):
                await self.ws.close(CLOSE_TOO_BIG, "message too big")
            await self.control.put(_DISCONNECTED)
        except Exception:  # closed, or a frame we cannot read: either way the session ends
            await self.control.put(_DISCONNECTED)

    def resume_allowed(self) -> bool:
        """At most ``ws_resume_per_minute`` resumes per socket (each one reads the store)."""
        limit = self.settings.ws_resume_per_minute
        if limit <= 0:
            return True
        now = time.monotonic()
        while self.resumes and now - self.resumes[0] > 60:
            self.resumes.popleft()
        if len(self.resumes) >= limit:
            return False
        self.resumes.append(now)
        return True

    async def handle(self, message: Any) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "ping":
            await self.ws.send_json({"type": "pong"})
        elif kind == "resume":
            if not self.resume_allowed():
                await self.ws.send_json(
                    {"type": "error", "code": "RATE_LIMITED", "message": "too many resumes"}
                )
                return
            await self.resume(message.get("after"))
        elif kind not in ("pong", "auth"):
            await self.ws.send_json(
                {"type": "error", "code": "UNKNOWN_MESSAGE", "message": "unknown message type"}
            )

    async def still_authorized(self) -> bool:
        # A revoked token or a closed account ends the live feed at the next ping.
        try:
            await run_in_threadpool(
                authenticate_token, self.token, self.settings, self.ws.app.state.revocations
            )
        except ApiError:
            return False
        return True

    # -- the loop ----------------------------------------------------------------------------
    async def run(self, after: Any) -> None:
        await self.ws.send_json(
            {
                "type": "ready",
                "userId": self.user_id,
                "role": self.user.role,
                "pingInterval": self.settings.ws_ping_interval,
            }
        )
        await self.hub.wait_connected(3.0)
        self.position = self.floor = await run_in_threadpool(latest_seq)
        reader = asyncio.create_task(self.read_messages())
        try:
            if after is None:
                with contextlib.suppress(TimeoutError):
                    first = await asyncio.wait_for(self.control.get(), self.settings.ws_resume_wait)
                    if first is _DISCONNECTED:
                        return
                    await self.handle(first)
            else:
                await self.resume(after)
            await self.pump()
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader

    async def pump(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.settings.ws_ping_interval
        next_ping = loop.time() + interval
        live = asyncio.create_task(self.sub.queue.get())
        control = asyncio.create_task(self.control.get())
        try:
            while True:
                done, _ = await asyncio.wait(
                    {live, control},
                    timeout=max(0.0, next_ping - loop.time()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if not done:
                    if not await self.still_authorized():
                        await self.ws.close(CLOSE_UNAUTHORIZED, "token no longer valid")
                        return
                    await self.ws.send_json({"type": "ping"})
                    next_ping = loop.time() + interval
                    continue
                if live in done:
                    item = live.result()
                    if item is DRAIN:  # SIGTERM (api/lifecycle.py): resume on another replica
                        await self.ws.close(1012, "server restarting: reconnect and resume")
                        return
                    live = asyncio.create_task(self.sub.queue.get())
                    if item is GAP or self.sub.lost:
                        self.sub.lost = False
                        await self.catch_up(max(self.floor, self.position - GAP_SLACK))
                    if item is not GAP:
                        await self.send_event(item)
                if control in done:
                    message = control.result()
                    if message is _DISCONNECTED:
                        return
                    control = asyncio.create_task(self.control.get())
                    await self.handle(message)
        finally:
            live.cancel()
            control.cancel()


async def _authenticate(ws: WebSocket) -> tuple[User, str, Any] | None:
    settings: Settings = ws.app.state.settings
    try:
        first = await asyncio.wait_for(
            receive_message(ws, settings.ws_max_message_bytes), settings.ws_auth_timeout
        )
    except TimeoutError:
        await ws.close(CLOSE_AUTH_TIMEOUT, "send an auth message first")
        return None
    except MessageTooBig:
        await ws.close(CLOSE_TOO_BIG, "message too big")
        return None
    except ValueError:
        await ws.close(CLOSE_BAD_MESSAGE, "messages are JSON objects")
        return None
    token = first.get("token") if isinstance(first, dict) else None
    if not isinstance(first, dict) or first.get("type") != "auth" or not isinstance(token, str):
        await ws.close(CLOSE_UNAUTHORIZED, "first message must be {type: auth, token}")
        return None
    try:
        user, _ = await run_in_threadpool(
            authenticate_token, token, settings, ws.app.state.revocations
        )
    except ApiError as exc:
        await ws.close(CLOSE_UNAUTHORIZED, exc.message[:100])
        return None
    return user, token, first.get("after")


@router.websocket("/ws")
async def live_events(ws: WebSocket) -> None:
    await ws.accept()
    if getattr(ws.app.state, "draining", False):  # SIGTERM: the load balancer is moving us out
        await ws.close(1012, "server restarting: reconnect and resume")
        return
    WEBSOCKET_CONNECTIONS.inc()
    try:
        auth = await _authenticate(ws)
        if auth is None:
            return
        user, token, after = auth
        sockets = _sockets(ws.app)
        user_id = str(user.id)
        limit = ws.app.state.settings.ws_max_sockets_per_user
        if limit > 0 and sockets.get(user_id, 0) >= limit:
            await ws.close(CLOSE_TOO_MANY, f"at most {limit} live connections per user")
            return
        sockets[user_id] = sockets.get(user_id, 0) + 1
        try:
            hub = event_hub(ws.app)
            sub = hub.subscribe()  # before any store read: nothing published from now on is missed
            try:
                await LiveSession(ws, user, token, hub, sub).run(after)
            finally:
                hub.unsubscribe(sub)
        finally:
            sockets[user_id] -= 1
            if sockets[user_id] <= 0:
                sockets.pop(user_id, None)
    except (WebSocketDisconnect, RuntimeError, OSError):
        # The client went away mid-send (each server and Starlette version says it differently).
        return
    finally:
        WEBSOCKET_CONNECTIONS.dec()
