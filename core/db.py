"""MongoDB connection (mongoengine) with short timeouts so outages answer 503 fast."""

from __future__ import annotations

import os
import threading

import mongoengine
from pymongo import MongoClient
from pymongo.errors import PyMongoError

from core.settings import Settings, get_settings

_lock = threading.Lock()
_connected_url: str | None = None
_connected_pid: int | None = None


def connect_mongo(settings: Settings | None = None) -> MongoClient:
    """Connect mongoengine's default alias once per process.

    Safe from any thread (pymongo's client is thread-safe and shared by every thread of the
    process). A client inherited across a fork is never reused: the child connects its own
    (prefork children call this from ``worker_process_init``, other pools at worker init).
    """
    global _connected_url, _connected_pid
    settings = settings or get_settings()
    with _lock:
        if _connected_url != settings.mongodb_url or _connected_pid != os.getpid():
            mongoengine.disconnect()
            mongoengine.connect(
                host=settings.mongodb_url,
                serverSelectionTimeoutMS=settings.mongodb_server_selection_ms,
                connectTimeoutMS=settings.mongodb_server_selection_ms,
                socketTimeoutMS=max(10_000, settings.mongodb_server_selection_ms),
                tz_aware=True,
                uuidRepresentation="standard",
                connect=False,
            )
            _connected_url = settings.mongodb_url
            _connected_pid = os.getpid()
    return mongoengine.get_connection()


def disconnect_mongo() -> None:
    global _connected_url, _connected_pid
    with _lock:
        mongoengine.disconnect()
        _connected_url = None
        _connected_pid = None


def get_db():
    return mongoengine.get_db()


def ping_mongo(timeout_ms: int) -> None:
    """Ping with a dedicated short-lived client so a dead server fails within timeout_ms."""
    settings = get_settings()
    client: MongoClient = MongoClient(
        settings.mongodb_url,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=timeout_ms,
    )
    try:
        client.admin.command("ping")
    finally:
        client.close()


__all__ = ["PyMongoError", "connect_mongo", "disconnect_mongo", "get_db", "ping_mongo"]
