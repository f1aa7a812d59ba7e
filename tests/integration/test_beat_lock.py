"""Beat job locks: outlive the task's hard time limit, release atomically (never another
run's lock), and carry a Mongo fencing token so a run whose Redis lock was lost stops."""

from __future__ import annotations

import pytest

from core.redis_client import get_redis
from core.settings import get_settings
from tasks.reconcile import BeatLock, LockLost, job_lock_ttl, run_job, still_held


def test_lock_outlives_the_hard_time_limit(clean_data) -> None:
    lock = BeatLock("ttl-probe", job_lock_ttl())
    assert lock.acquire()
    try:
        assert get_redis().pttl(lock.key) > get_settings().task_time_limit * 1000
    finally:
        lock.release()


def test_a_lost_lock_is_fenced_and_not_released_by_its_old_holder(clean_data) -> None:
    first = BeatLock("fence-probe", 60)
    assert first.acquire()
    first.check()
    # Redis forgets the lock (expired, or a failover to a replica that never had it) and a
    # second beat takes the job.
    get_redis().delete(first.key)
    second = BeatLock("fence-probe", 60)
    assert second.acquire()
    assert second.fence > first.fence
    with pytest.raises(LockLost):
        first.check()
    first.release()  # compare-and-delete: the second run's lock stays
    assert get_redis().exists(second.key)
    second.check()
    second.release()
    assert not get_redis().exists(second.key)


def test_run_job_stops_a_run_that_lost_its_lock(clean_data) -> None:
    actions: list[str] = []

    def job() -> dict[str, int]:
        actions.append("first")
        still_held()
        get_redis().delete("oms:lock:beat:lost-probe")
        usurper = BeatLock("lost-probe", 60)
        assert usurper.acquire()
        still_held()  # raises: a newer run holds the fence
        actions.append("second")
        return {"done": 1}

    result = run_job("lost-probe", job)
    assert result == {"job": "lost-probe", "skipped": "lock lost"}
    assert actions == ["first"]
