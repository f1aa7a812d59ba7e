"""docker-compose.yml: no Docker engine here, so check the file's services and wiring."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_present() -> None:
    services = _compose()["services"]
    assert {"mongo", "redis", "migrate", "api", "proxy", "beat", "flower"} <= set(services)
    assert services["mongo"]["image"].startswith("mongo:7")
    assert services["redis"]["image"].startswith("redis:7")


def test_every_service_has_a_healthcheck() -> None:
    for name, svc in _compose()["services"].items():
        if name == "migrate":  # one-shot: the others wait for it to complete
            continue
        assert "healthcheck" in svc, f"{name} has no healthcheck"


def test_beat_is_a_single_replica_and_worker_scales() -> None:
    services = _compose()["services"]
    assert services["beat"]["deploy"]["replicas"] == 1
    for name in ("worker-orders", "worker-payments", "worker-events"):
        assert services[name].get("deploy", {}).get("replicas", 1) >= 1


def test_app_services_share_one_image_and_point_at_compose_infra() -> None:
    services = _compose()["services"]
    for name in ("api", "worker-orders", "worker-payments", "worker-events", "beat", "flower"):
        svc = services[name]
        assert svc["build"]["dockerfile"] == "Dockerfile", name
        env = svc["environment"]
        assert env["MONGODB_URL"].startswith("mongodb://mongo:27017/"), name
        assert env["REDIS_URL"].startswith("redis://redis:6379"), name
    assert "--basic-auth" in " ".join(services["flower"]["command"])


def test_dockerfile_installs_runtime_only() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "requirements.txt" in text
    assert "requirements-dev.txt" not in text


def _seconds(value: str) -> int:
    units = {"s": 1, "m": 60}
    return int(value[:-1]) * units[value[-1]]


def test_one_worker_service_per_queue_group_as_in_the_devstack_layout() -> None:
    from devstack.processes import WORKER_LAYOUT

    services = _compose()["services"]
    for spec in WORKER_LAYOUT:
        cmd = services[f"worker-{spec.name}"]["command"]
        assert cmd[cmd.index("--queues") + 1] == spec.queues, spec
        assert cmd[cmd.index("-P") + 1] == spec.pool, spec
        assert cmd[cmd.index("-c") + 1] == str(spec.concurrency), spec


def test_stop_grace_exceeds_the_task_time_limit_and_the_drain() -> None:
    from core.settings import Settings

    defaults = Settings()
    services = _compose()["services"]
    for name in ("worker-orders", "worker-payments", "worker-events"):
        assert _seconds(services[name]["stop_grace_period"]) > defaults.task_time_limit, name
    assert _seconds(services["api"]["stop_grace_period"]) > defaults.shutdown_drain_seconds + 10


def test_replica_set_initiated_with_a_resolvable_host_and_waits_for_primary() -> None:
    mongo = _compose()["services"]["mongo"]
    probe = " ".join(mongo["healthcheck"]["test"])
    assert "host: 'mongo:27017'" in probe and "myState !== 1" in probe
    assert mongo["hostname"] == "mongo"
    for name in ("mongo", "redis"):
        assert _compose()["services"][name]["restart"] == "unless-stopped"


def test_api_scales_behind_the_proxy() -> None:
    services = _compose()["services"]
    assert "ports" not in services["api"]  # a fixed host port would stop --scale api=N
    assert services["proxy"]["ports"] == ["8000:8000"]
    cfg = (ROOT / "deploy/compose/haproxy.cfg").read_text()
    assert "server-template api" in cfg and "GET /ready" in cfg
    assert services["migrate"]["restart"] == "no"
    assert services["api"]["depends_on"]["migrate"]["condition"] == (
        "service_completed_successfully"
    )
