"""Bench-only worker instrumentation, loaded with ``-I`` and switched on by BENCH_PROFILE_DIR.

* always (when the dir is set): per task name, how many ran, wall and CPU seconds of the
  pool child (``time.process_time``), written to ``tasks-<pid>.json`` every few seconds;
* BENCH_PYINSTRUMENT=1: a pyinstrument profiler running only while a task runs, written
  at the child's shutdown (a warm stop) as ``profile-<pid>.txt`` and ``samples-<pid>.json``;
* BENCH_COUNT_MONGO=1: every Mongo command the child sends, by command and collection.

The app never imports this; the bench reads the files after a run.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from celery.signals import task_postrun, task_prerun, worker_process_shutdown

OUT = os.environ.get("BENCH_PROFILE_DIR")
PYINSTRUMENT = OUT is not None and os.environ.get("BENCH_PYINSTRUMENT") == "1"
COUNT_MONGO = OUT is not None and os.environ.get("BENCH_COUNT_MONGO") == "1"

_tasks: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])  # n, wall, cpu
_started: dict[str, tuple[float, float]] = {}
_mongo: Counter[str] = Counter()
_last_dump = 0.0
_profiler: Any = None

if COUNT_MONGO:
    from pymongo import monitoring

    class _CommandCounter(monitoring.CommandListener):
        def started(self, event: monitoring.CommandStartedEvent) -> None:
            name = event.command_name
            coll = event.command.get(name)
            _mongo[f"{name} {coll}" if isinstance(coll, str) else name] += 1

        def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
            pass

        def failed(self, event: monitoring.CommandFailedEvent) -> None:
            pass

    # Registered in the parent before the fork: clients made in the children inherit it.
    monitoring.register(_CommandCounter())


def _dump(final: bool = False) -> None:
    global _last_dump
    if OUT is None:
        return
    now = time.monotonic()
    if not final and now - _last_dump < 2.0:
        return
    _last_dump = now
    out = Path(OUT)
    out.mkdir(parents=True, exist_ok=True)
    body = {"pid": os.getpid(), "tasks": dict(_tasks), "mongo": dict(_mongo)}
    tmp = out / f".tasks-{os.getpid()}.json"
    tmp.write_text(json.dumps(body))
    os.replace(tmp, out / f"tasks-{os.getpid()}.json")


@task_prerun.connect
def _before(task_id: str, **_: Any) -> None:
    global _profiler
    if OUT is None:
        return
    if PYINSTRUMENT:
        if _profiler is None:
            from pyinstrument import Profiler

            _profiler = Profiler(interval=0.0005, async_mode="disabled")
        if not _profiler.is_running:
            _profiler.start()
    _started[task_id] = (time.perf_counter(), time.process_time())


@task_postrun.connect
def _after(task_id: str, task: Any = None, **_: Any) -> None:
    if OUT is None:
        return
    if _profiler is not None and _profiler.is_running:
        _profiler.stop()
    begun = _started.pop(task_id, None)
    if begun is not None:
        row = _tasks[getattr(task, "name", "?")]
        row[0] += 1
        row[1] += time.perf_counter() - begun[0]
        row[2] += time.process_time() - begun[1]
    _dump()


@worker_process_shutdown.connect
def _at_exit(**_: Any) -> None:
    if OUT is None:
        return
    _dump(final=True)
    if _profiler is None or _profiler.last_session is None:
        return
    session = _profiler.last_session
    out = Path(OUT)
    # The summary first: rendering the text of a long session takes a while.
    (out / f"samples-{os.getpid()}.json").write_text(json.dumps(summarize(session.frame_records)))
    text = _profiler.output_text(unicode=False, color=False, show_all=False)
    (out / f"profile-{os.getpid()}.txt").write_text(text)


# Where a sample's time goes: the innermost frame that belongs to a library we can name
# (stdlib frames such as json or socket count for the library that called them).
CATEGORIES = (
    ("/pymongo/", "pymongo (client + waiting on the server)"),
    ("/mongoengine/", "mongoengine (ODM)"),
    ("/bson/", "bson"),
    ("/stripe/", "stripe SDK + HTTP (incl. waiting on the emulator)"),
    ("/requests/", "stripe SDK + HTTP (incl. waiting on the emulator)"),
    ("/urllib3/", "stripe SDK + HTTP (incl. waiting on the emulator)"),
    ("/kombu/", "kombu/redis (publishing, locks)"),
    ("/redis/", "kombu/redis (publishing, locks)"),
    ("/amqp/", "kombu/redis (publishing, locks)"),
    ("/celery/", "celery (task machinery)"),
    ("/billiard/", "celery (task machinery)"),
    ("/structlog/", "logging (structlog)"),
    ("/prometheus_client/", "prometheus metrics"),
    ("/pydantic", "pydantic"),
    ("/cryptography/", "crypto"),
)
OURS = ("/tasks/", "/models/", "/gateways/", "/core/", "/workflows/", "/monitoring/")


def _file_of(frame_id: str) -> tuple[str, str]:
    parts = frame_id.split("\x00")
    return (parts[1] if len(parts) > 1 else ""), parts[0]


def _category(path: str) -> str | None:
    if "site-packages" in path:
        for marker, name in CATEGORIES:
            if marker in path:
                return name
        return "other libraries"
    if any(marker in path for marker in OURS) and "/lib/python" not in path:
        return "our code (tasks, models, gateways, core, workflows, monitoring)"
    return None


def summarize(frame_records: list) -> dict[str, Any]:
    by_category: Counter[str] = Counter()
    ours_inclusive: Counter[str] = Counter()
    total = 0.0
    for stack, seconds in frame_records:
        total += seconds
        category = "stdlib / interpreter"
        for frame_id in reversed(stack):
            found = _category(_file_of(frame_id)[0])
            if found is not None:
                category = found
                break
        by_category[category] += seconds
        seen = set()
        for frame_id in stack:
            path, func = _file_of(frame_id)
            if _category(path) and _category(path).startswith("our code"):
                key = f"{'/'.join(path.split('/')[-2:])}:{func}"
                if key not in seen:
                    seen.add(key)
                    ours_inclusive[key] += seconds
    return {
        "seconds": total,
        "by_category": dict(by_category),
        "ours_inclusive": dict(ours_inclusive.most_common(40)),
    }
