"""Dev-only launcher for the localstripe emulator (``python -m devstack.localstripe_launcher``).

localstripe is GPL-3: it runs as a separate process and this launcher is the only module of
the project that imports it. The stock ``localstripe`` command is unusable for us because:

* it always reads and rewrites ``/tmp/localstripe.pickle``, shared by every instance on the
  machine (tests, ``make up``, two test runs), and a truncated pickle crashes it at start;
* it re-pickles the whole store after every write (``Store.__setitem__``/``__delitem__`` and a
  middleware after each POST/PUT/DELETE), so it slows down as the store grows;
* it binds ``::`` (every interface) although ``/_config/*`` has no authentication.

So we patch ``localstripe.resources.Store`` before serving:

* ``--from-scratch``: nothing is loaded and ``dump_to_disk`` is a no-op (tests, benchmarks).
* ``--store PATH``: a private pickle, loaded at start (a corrupt or truncated file is logged,
  moved aside and the store starts empty), written atomically (temp file + ``os.replace``) and
  coalesced: a write marks the store dirty and one dump runs at most every 0.5 s, plus a final
  dump at shutdown (SIGINT/SIGTERM). A SIGKILL can lose the last 0.5 s of writes, never the file.

It reuses the aiohttp ``app`` of ``localstripe.server`` and binds only the given IPv4 host.
Webhook registrations live in memory only: register them again after every start
(``devstack.stripe_emulator.register_webhook``).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import pickle
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from aiohttp import web
from localstripe import resources
from localstripe import server as ls_server

log = logging.getLogger("devstack.localstripe")

DEFAULT_PORT = 8420
DEFAULT_HOST = "127.0.0.1"
# At most one full re-pickle of the store per interval, whatever the write rate.
DUMP_INTERVAL_SECONDS = 0.5


class StorePersistence:
    """Where and when the localstripe store goes to disk; ``path=None`` means never."""

    def __init__(self, path: Path | None, interval: float = DUMP_INTERVAL_SECONDS) -> None:
        self.path = path
        self.interval = interval
        self._dirty = False
        self._timer: asyncio.TimerHandle | None = None
        self.dumps = 0  # counted so a test or a log line can tell coalescing works

    # -- loading ------------------------------------------------------------------------
    def load_into(self, store: dict[str, Any]) -> int:
        """Fill ``store`` from the pickle; returns how many objects were loaded."""
        if self.path is None or not self.path.exists():
            return 0
        try:
            with self.path.open("rb") as f:
                # Our own private file, written only by this launcher: trusted input.
                old = pickle.load(f)  # noqa: S301
            if not isinstance(old, dict):
                raise TypeError(f"expected a dict, found {type(old).__name__}")
        except Exception as exc:  # any unpickling failure means the file is unusable
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            log.error(
                "store %s is unreadable (%s: %s); starting empty, moved it to %s",
                self.path,
                type(exc).__name__,
                exc,
                aside,
            )
            try:
                os.replace(self.path, aside)  # keep it for inspection, never overwrite it
            except OSError:
                log.exception("could not move the unreadable store aside")
            return 0
        # dict.clear/update bypass Store.__setitem__, so loading triggers no dump.
        dict.clear(store)
        dict.update(store, old)
        return len(old)

    # -- dumping ------------------------------------------------------------------------
    def mark_dirty(self) -> None:
        """Called instead of every dump; schedules one coalesced dump on the running loop."""
        if self.path is None:
            return
        self._dirty = True
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            # No loop (start-up or shutdown): the final flush after the server stops covers it.
            return
        self._timer = loop.call_later(self.interval, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def flush(self) -> None:
        """Write the store now if it changed; atomic, so a crash never truncates the file."""
        if self.path is None or not self._dirty:
            return
        # Cleared before pickling: a write racing the dump (same thread, so only via a
        # callback) marks it dirty again and gets its own dump.
        self._dirty = False
        try:
            data = pickle.dumps(resources.store, protocol=pickle.HIGHEST_PROTOCOL)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            self.dumps += 1
        except Exception:
            # Keep serving: the next write retries the dump.
            self._dirty = True
            log.exception("could not write the localstripe store to %s", self.path)


_persistence = StorePersistence(None)


def _patched_try_load_from_disk(self: resources.Store) -> None:
    if self is resources.store:
        _persistence.load_into(self)


def _patched_dump_to_disk(self: resources.Store) -> None:
    # Only the live store counts: pickle.load rebuilds a temporary Store item by item
    # through __setitem__, which would otherwise call us for every loaded object.
    if self is resources.store:
        _persistence.mark_dirty()


def install_persistence(path: Path | None) -> StorePersistence:
    """Point localstripe's store at ``path`` (None: no loading, no dumps) and load it."""
    global _persistence
    _persistence = StorePersistence(path)
    # Patched on the class (not the instance) so the pickled store carries no bound methods.
    resources.Store.try_load_from_disk = _patched_try_load_from_disk  # type: ignore[method-assign]
    resources.Store.dump_to_disk = _patched_dump_to_disk  # type: ignore[method-assign]
    if path is not None:
        resources.store.try_load_from_disk()
    return _persistence


def bind_ipv4(host: str, port: int) -> socket.socket:
    """A listening IPv4 socket on exactly ``host`` (never ``::``/all interfaces by surprise)."""
    infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
    if not infos:
        raise OSError(f"{host!r} has no IPv4 address")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(infos[0][4])
    sock.listen(128)
    return sock


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devstack.localstripe_launcher",
        description="Run localstripe on a private store, bound to one IPv4 host.",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--host", default=DEFAULT_HOST, help="IPv4 host to bind")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--store", type=Path, help="private pickle file, kept across restarts")
    mode.add_argument(
        "--from-scratch",
        action="store_true",
        help="start empty and never write to disk (the default without --store)",
    )
    parser.add_argument("--quiet", action="store_true", help="no per-request access log")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    store_path: Path | None = None if args.from_scratch else args.store
    if store_path is not None:
        store_path = store_path.resolve()
    persistence = install_persistence(store_path)
    loaded = len(resources.store)

    sock = bind_ipv4(args.host, args.port)
    host, port = sock.getsockname()[:2]

    access_log: logging.Logger | None = None
    if not args.quiet:
        # localstripe logs webhook deliveries on this logger too.
        access_log = logging.getLogger("aiohttp.access")
        access_log.setLevel(logging.DEBUG)

    async def _stop_timer(_app: web.Application) -> None:
        persistence.cancel_timer()

    ls_server.app.on_cleanup.append(_stop_timer)

    where = f"store {store_path} ({loaded} objects)" if store_path else "from scratch, no dumps"
    print(f"localstripe listening on http://{host}:{port} ({where})", flush=True)
    try:
        # run_app turns SIGINT/SIGTERM into a graceful exit, then we flush below.
        web.run_app(ls_server.app, sock=sock, access_log=access_log, print=None)
    finally:
        persistence.cancel_timer()
        persistence.flush()
        if store_path is not None:
            log.info("localstripe stopped; store written to %s", store_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
