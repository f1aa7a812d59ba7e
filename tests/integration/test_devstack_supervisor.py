"""`make up`'s supervisor: a crashed worker is started again, within a budget."""

from __future__ import annotations

import sys
import time

from devstack import up


def _wait_exit(proc, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is not None


def test_a_crashed_worker_is_restarted_until_the_budget_is_spent() -> None:
    sup = up.Supervisor()
    crash = [sys.executable, "-c", "import sys; sys.exit(3)"]
    first = sup.run("worker", crash)
    try:
        for attempt in range(up.RESTART_LIMIT):
            _wait_exit(sup.children[0][1])
            assert sup.restart(0), attempt
            assert sup.children[0][1] is not first  # a new process took its place
        _wait_exit(sup.children[0][1])
        assert not sup.restart(0)  # crashing in a loop: the stack stops instead
    finally:
        sup.stop_all()


def test_infrastructure_is_not_restarted() -> None:
    sup = up.Supervisor()
    sup.run("api", [sys.executable, "-c", "import sys; sys.exit(1)"])
    try:
        _wait_exit(sup.children[0][1])
        assert not sup.restart(0)
    finally:
        sup.stop_all()
