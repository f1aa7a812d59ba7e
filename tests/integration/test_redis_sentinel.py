"""Redis failover through Sentinel: a master, a replica and three sentinels on loopback ports
started by the test, `SENTINEL FAILOVER` in the middle of a run of writes. The app's one
client factory (core.redis_client) follows the new master; kombu's sentinel transport (the
Celery broker for a redis+sentinel:// URL) moves messages before and after; a beat lock
that the failover lost is fenced."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis as redis_lib
from kombu import Connection

from core.redis_client import kombu_broker, make_redis, parse_sentinel_url
from devstack import processes
from tests.conftest import ARTIFACTS

SERVICE = "oms-test"


def _redis_server(args: list[str], log: Path) -> subprocess.Popen:
    binary = shutil.which("redis-server")
    assert binary, "redis-server is part of this machine's stack"
    return processes.spawn([binary, *args], log_path=log)


@pytest.fixture(scope="module")
def sentinel_cluster() -> Iterator[dict]:
    tmp = ARTIFACTS / f"sentinel-{time.monotonic_ns()}"
    tmp.mkdir()
    master, replica = processes.free_port(), processes.free_port()
    common = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    procs = [
        _redis_server(["--port", str(master), *common], tmp / "master.log"),
        _redis_server(
            ["--port", str(replica), "--replicaof", "127.0.0.1", str(master), *common],
            tmp / "replica.log",
        ),
    ]
    processes.wait_port(master, 10)
    processes.wait_port(replica, 10)
    sentinels = []
    for i in range(3):
        port = processes.free_port()
        conf = tmp / f"sentinel{i}.conf"
        conf.write_text(
            f"port {port}\nbind 127.0.0.1\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {master} 2\n"
            f"sentinel down-after-milliseconds {SERVICE} 1000\n"
            f"sentinel failover-timeout {SERVICE} 5000\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
        )
        procs.append(_redis_server([str(conf), "--sentinel"], tmp / f"sentinel{i}.log"))
        sentinels.append(port)
    for port in sentinels:
        processes.wait_port(port, 10)
    # The replica must be in sync before a failover can pick it.
    r = redis_lib.Redis(port=replica)
    deadline = time.monotonic() + 20
    while r.info("replication").get("master_link_status") != "up":
        assert time.monotonic() < deadline, "replica never synced"
        time.sleep(0.2)
    hosts = ",".join(f"127.0.0.1:{p}" for p in sentinels)
    yield {
        "url": f"redis+sentinel://{hosts}/{SERVICE}/0",
        "sentinels": sentinels,
        "ports": (master, replica),
    }
    for proc in procs:
        processes.stop(proc)


def _master_port(cluster: dict) -> int:
    s = redis_lib.Redis(port=cluster["sentinels"][0], decode_responses=True)
    return int(s.sentinel_get_master_addr_by_name(SERVICE)[1])


def _failover(cluster: dict) -> int:
    before = _master_port(cluster)
    redis_lib.Redis(port=cluster["sentinels"][0]).execute_command("SENTINEL", "FAILOVER", SERVICE)
    deadline = time.monotonic() + 30
    while _master_port(cluster) == before:
        assert time.monotonic() < deadline, "sentinel never promoted the replica"
        time.sleep(0.2)
    return _master_port(cluster)


def test_sentinel_url_parsing_and_kombu_broker() -> None:
    t = parse_sentinel_url("redis+sentinel://:pw@h1:26379,h2:26380/shop/3")
    assert t.sentinels == (("h1", 26379), ("h2", 26380)) and t.service == "shop" and t.db == 3
    assert t.password == "pw"
    broker, options = kombu_broker("redis+sentinel://:pw@h1:26379,h2:26380/shop/3")
    assert broker == "sentinel://:pw@h1:26379/3;sentinel://:pw@h2:26380/3"
    assert options["master_name"] == "shop" and options["sentinel_kwargs"] == {"password": "pw"}
    assert kombu_broker("redis://h:6379/0") == ("redis://h:6379/0", {})


def test_clients_follow_a_failover_mid_run(sentinel_cluster, clean_data) -> None:
    from tasks.reconcile import BeatLock, LockLost

    url = sentinel_cluster["url"]
    client = make_redis(url)
    broker, options = kombu_broker(url)
    conn = Connection(broker, transport_options=options)
    queue = conn.SimpleQueue("oms-test-failover")
    queue.put({"n": "before"})

    # A beat lock taken on the old master just before the failover.
    lock = BeatLock("sentinel-probe", 60, client=make_redis(url))
    assert lock.acquire()

    written: list[int] = []
    errors: list[str] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                client.rpush("oms-test:writes", n)
                written.append(n)
            except redis_lib.RedisError as exc:  # the switch itself: retried by the next loop
                errors.append(type(exc).__name__)
                time.sleep(0.1)
            time.sleep(0.01)

    t = threading.Thread(target=writer)
    t.start()
    time.sleep(1.0)
    old = _master_port(sentinel_cluster)
    new = _failover(sentinel_cluster)
    assert new != old
    # Until sentinel turns the old master into a replica, a connection already open to it
    # still writes there, and the resync drops those writes: Redis loses writes in a
    # failover by design (which is why event seqs live in Mongo and beat locks are fenced).
    demoted = redis_lib.Redis(port=old, decode_responses=True)
    deadline = time.monotonic() + 30
    while demoted.info("replication")["role"] != "slave":
        assert time.monotonic() < deadline, "the old master was never demoted"
        time.sleep(0.2)
    count_at_demotion = len(written)
    time.sleep(1.5)
    stop.set()
    t.join(10)

    # Writes went on after the demotion, to the new master (the client followed it).
    assert len(written) > count_at_demotion + 10, (len(written), errors[:5])
    on_new = redis_lib.Redis(port=new).lrange("oms-test:writes", -1, -1)
    assert on_new and int(on_new[0]) == written[-1]
    assert client.ping()

    # The broker through kombu's sentinel transport: both messages arrive.
    queue.put({"n": "after"})
    got = []
    for _ in range(2):
        message = queue.get(timeout=10)
        got.append(message.payload["n"])
        message.ack()
    assert "after" in got
    queue.close()
    conn.release()

    # If the failover lost the lock (the promoted replica never had it), a second beat takes
    # the job and the first run is fenced off; either way there is one valid holder.
    if not client.exists(lock.key):
        other = BeatLock("sentinel-probe", 60, client=client)
        assert other.acquire()
        with pytest.raises(LockLost):
            lock.check()
        other.release()
    else:
        lock.check()
        lock.release()
