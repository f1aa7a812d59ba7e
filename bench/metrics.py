"""What the bench measures besides latency: CPU and RSS of each process tree, Mongo ops."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from subprocess import Popen
from typing import Any

import psutil


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def summary_ms(values: list[float]) -> dict[str, float | None]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        "p50_ms": ms(percentile(values, 50)),
        "p95_ms": ms(percentile(values, 95)),
        "p99_ms": ms(percentile(values, 99)),
        "max_ms": ms(max(values) if values else None),
        "n": len(values),
    }


def _tree(proc: Popen | None) -> list[psutil.Process]:
    if proc is None or proc.poll() is not None:
        return []
    try:
        root = psutil.Process(proc.pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class ProcSampler:
    """Samples CPU seconds and RSS of every process of each role, in a background thread.

    CPU of a process that dies keeps its last sample; a process born during a window
    counts from zero. ``window()`` gives CPU seconds per role between two marks.
    """

    def __init__(self, roles: Callable[[], Iterable[tuple[str, Popen | None]]], interval=0.5):
        self.roles = roles
        self.interval = interval
        self.cpu: dict[str, dict[int, float]] = {}
        self.peak_rss: dict[str, float] = {}  # role -> peak of the tree's summed RSS (MiB)
        self.peak_proc_rss: dict[str, float] = {}  # role -> largest single process (MiB)
        self.procs: dict[str, int] = {}
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> ProcSampler:
        self.sample()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self) -> None:
        with self._lock:
            for role, proc in list(self.roles()):
                per_pid = self.cpu.setdefault(role, {})
                total_rss = 0.0
                tree = _tree(proc)
                for p in tree:
                    try:
                        with p.oneshot():
                            t = p.cpu_times()
                            rss = p.memory_info().rss / 2**20
                    except psutil.Error:
                        continue
                    per_pid[p.pid] = t.user + t.system
                    total_rss += rss
                    self.peak_proc_rss[role] = max(self.peak_proc_rss.get(role, 0.0), rss)
                if tree:
                    self.procs[role] = max(self.procs.get(role, 0), len(tree))
                self.peak_rss[role] = max(self.peak_rss.get(role, 0.0), total_rss)

    def mark(self) -> dict[str, dict[int, float]]:
        self.sample()
        with self._lock:
            return {role: dict(pids) for role, pids in self.cpu.items()}

    def window(self, start: dict[str, dict[int, float]]) -> dict[str, float]:
        end = self.mark()
        out = {}
        for role, pids in end.items():
            before = start.get(role, {})
            out[role] = sum(cpu - before.get(pid, 0.0) for pid, cpu in pids.items())
        return out

    def reset_peaks(self) -> None:
        with self._lock:
            self.peak_rss.clear()
            self.peak_proc_rss.clear()


def self_cpu() -> float:
    t = psutil.Process().cpu_times()
    return t.user + t.system


def mongo_opcounters(db: Any) -> dict[str, int]:
    """serverStatus opcounters (SecantusDB supports them); {} if the server does not."""
    try:
        status = db.client.admin.command("serverStatus")
    except Exception:  # not every server answers serverStatus
        return {}
    return {k: int(v) for k, v in (status.get("opcounters") or {}).items()}


def diff(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


def wait_until(check: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(interval)
    return check()
