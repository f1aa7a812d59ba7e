"""docker-compose.yml: no Docker engine here, so check the file's services and wiring."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_services_present() -> None:
    services = _compose()["services"]
    assert {"mongo", "redis", "api", "worker", "beat", "flower"} <= set(services)
    assert services["mongo"]["image"].startswith("mongo:7")
    assert services["redis"]["image"].startswith("redis:7")


def test_every_service_has_a_healthcheck() -> None:
    for name, svc in _compose()["services"].items():
        assert "healthcheck" in svc, f"{name} has no healthcheck"


def test_beat_is_a_single_replica_and_worker_scales() -> None:
    services = _compose()["services"]
    assert services["beat"]["deploy"]["replicas"] == 1
    assert "replicas" not in services["worker"].get("deploy", {}) or (
        services["worker"]["deploy"]["replicas"] >= 1
    )


def test_app_services_share_one_image_and_point_at_compose_infra() -> None:
    services = _compose()["services"]
    for name in ("api", "worker", "beat", "flower"):
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


def test_jaeger_is_optional_and_local_only() -> None:
    jaeger = _compose()["services"]["jaeger"]
    assert jaeger["profiles"] == ["tracing"]  # not started by a plain `docker compose up`
    assert all(str(p).startswith("127.0.0.1:") for p in jaeger["ports"])
