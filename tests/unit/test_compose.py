"""docker-compose.yml: no Docker engine here, so check the file's services and wiring."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit as _urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def urlsplit(value: str):
    """Split a URL after compose-style interpolation (${VAR:?message} → a placeholder)."""
    return _urlsplit(re.sub(r"\$\{[^}]*\}", "secret", value))


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
    for name in ("worker-orders", "worker-payments", "worker-events", "worker-outbound"):
        assert services[name].get("deploy", {}).get("replicas", 1) >= 1


def test_app_services_share_one_image_and_point_at_compose_infra() -> None:
    services = _compose()["services"]
    for name in ("api", "worker-orders", "worker-payments", "worker-events", "beat", "flower"):
        svc = services[name]
        assert svc["build"]["dockerfile"] == "Dockerfile", name
        env = svc["environment"]
        mongo, redis_url = urlsplit(env["MONGODB_URL"]), urlsplit(env["REDIS_URL"])
        assert (mongo.scheme, mongo.hostname, mongo.port) == ("mongodb", "mongo", 27017), name
        assert (redis_url.scheme, redis_url.hostname, redis_url.port) == ("redis", "redis", 6379)
    assert "--basic-auth" in " ".join(services["flower"]["command"])


def test_dockerfile_installs_runtime_only() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "requirements.txt" in text
    assert "requirements-dev.txt" not in text


def test_mongo_and_redis_require_credentials() -> None:
    services = _compose()["services"]
    mongo = services["mongo"]
    assert "--auth" in mongo["command"] and "--keyFile" in mongo["command"]
    assert "MONGO_INITDB_ROOT_PASSWORD" in mongo["environment"]
    assert any("docker-entrypoint-initdb.d" in v for v in mongo["volumes"])
    init = (ROOT / "deploy/mongo-init/01-app-user.js").read_text()
    assert "createUser" in init and '"readWrite"' in init and "MONGO_APP_PASSWORD" in init
    assert "--requirepass" in services["redis"]["command"]
    for name in (
        "api",
        "worker-orders",
        "worker-payments",
        "worker-events",
        "worker-outbound",
        "beat",
        "flower",
    ):
        env = services[name]["environment"]
        mongo_url, redis_url = urlsplit(env["MONGODB_URL"]), urlsplit(env["REDIS_URL"])
        assert mongo_url.username == "oms" and mongo_url.password, name
        assert "authSource=oms" in mongo_url.query, name
        assert redis_url.password and urlsplit(env["BROKER_URL"]).password, name


def test_image_runs_as_non_root_that_cannot_write_its_code() -> None:
    lines = [ln.strip() for ln in (ROOT / "Dockerfile").read_text().splitlines()]
    base = next(ln for ln in lines if ln.startswith("FROM "))
    tag = base.split()[1].split(":", 1)[1]
    assert tag[0].isdigit() and tag.count(".") >= 2, f"base image not pinned: {base}"
    user = [ln for ln in lines if ln.startswith("USER ")][-1]
    assert user.split()[1].split(":")[0] not in ("root", "0")
    text = "\n".join(lines)
    assert "chown" not in text  # the code stays root's
    assert "chmod -R a-w /app" in text


def test_dockerignore_keeps_secrets_and_local_state_out() -> None:
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".env", ".git", ".venv", ".data", "tests"} <= ignored


def test_jaeger_is_optional_and_local_only() -> None:
    jaeger = _compose()["services"]["jaeger"]
    assert jaeger["profiles"] == ["tracing"]  # not started by a plain `docker compose up`
    assert all(str(p).startswith("127.0.0.1:") for p in jaeger["ports"])


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
    for name in ("worker-orders", "worker-payments", "worker-events", "worker-outbound"):
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
