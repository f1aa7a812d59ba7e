"""deploy/kubernetes: the production overlay renders (kubectl kustomize) and the objects
keep the promises: probes on every long-running container, one beat, per-queue workers
scaled by KEDA on their own queues, no secret value in the manifests, Flower internal."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from core.settings import Settings
from devstack.processes import WORKER_LAYOUT

ROOT = Path(__file__).resolve().parents[2]
OVERLAY = ROOT / "deploy/kubernetes/overlays/production"
SECRET_KEYS = {
    "MONGODB_URL",
    "REDIS_URL",
    "BROKER_URL",
    "STRIPE_API_KEY",
    "STRIPE_WEBHOOK_SECRET",
    "JWT_SECRET",
    "DATA_KEYS",
    "ADMIN_PASSWORD",
    "FLOWER_BASIC_AUTH",
    "METRICS_TOKEN",
}


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "kubectl (with kustomize) is part of this machine's tools"
    out = subprocess.run(
        [kubectl, "kustomize", str(OVERLAY)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return [d for d in yaml.safe_load_all(out) if d]


def _by(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def _containers(obj: dict) -> list[dict]:
    return obj["spec"]["template"]["spec"]["containers"]


def test_every_long_running_container_has_a_liveness_probe(objects) -> None:
    deployments = _by(objects, "Deployment")
    assert deployments
    for name, dep in deployments.items():
        for c in _containers(dep):
            assert "livenessProbe" in c, f"{name}/{c['name']} has no liveness probe"
    api = _containers(deployments["oms-api"])[0]
    assert api["livenessProbe"]["httpGet"]["path"] == "/live"
    assert api["readinessProbe"]["httpGet"]["path"] == "/ready"


def test_beat_is_exactly_one_recreated_replica(objects) -> None:
    beat = _by(objects, "Deployment")["oms-beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"]["type"] == "Recreate"
    assert not [
        h
        for h in _by(objects, "HorizontalPodAutoscaler").values()
        if h["spec"]["scaleTargetRef"]["name"] == "oms-beat"
    ]


def test_one_worker_per_queue_group_scaled_by_keda_on_its_queues(objects) -> None:
    deployments = _by(objects, "Deployment")
    scaled = _by(objects, "ScaledObject")
    limit = Settings().task_time_limit
    for spec in WORKER_LAYOUT:
        dep = deployments[f"oms-worker-{spec.name}"]
        cmd = _containers(dep)[0]["command"]
        assert cmd[cmd.index("--queues") + 1] == spec.queues
        assert cmd[cmd.index("-P") + 1] == spec.pool
        assert dep["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] > limit
        so = scaled[f"oms-worker-{spec.name}"]
        assert so["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"]
        queues = {t["metadata"]["queueName"] for t in so["spec"]["triggers"]}
        assert queues == set(spec.queues.split(",")), so["spec"]["triggers"]
        for t in so["spec"]["triggers"]:
            assert t["type"] == "rabbitmq" and t["metadata"]["mode"] == "QueueLength"
            assert t["authenticationRef"]["name"] == "oms-broker"
    auth = _by(objects, "TriggerAuthentication")["oms-broker"]
    assert auth["spec"]["secretTargetRef"][0] == {
        "parameter": "host",
        "name": "oms-secrets",
        "key": "BROKER_URL",
    }


def test_api_scales_with_a_disruption_budget(objects) -> None:
    hpa = _by(objects, "HorizontalPodAutoscaler")["oms-api"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "oms-api"
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = _by(objects, "PodDisruptionBudget")["oms-api"]
    assert pdb["spec"]["minAvailable"] >= 1
    grace = _by(objects, "Deployment")["oms-api"]["spec"]["template"]["spec"]
    assert grace["terminationGracePeriodSeconds"] > int(
        _by(objects, "ConfigMap")["oms-config"]["data"]["SHUTDOWN_DRAIN_SECONDS"]
    )


def test_secrets_are_referenced_never_inlined(objects) -> None:
    assert not _by(objects, "Secret"), "no Secret objects: they are created out of band"
    config = _by(objects, "ConfigMap")["oms-config"]["data"]
    assert not SECRET_KEYS & set(config), SECRET_KEYS & set(config)
    text = yaml.safe_dump_all(objects)
    assert not re.search(r"(sk|rk)_(live|test)_|whsec_|amqp://\w+:\w+@|mongodb(\+srv)?://", text)
    for obj in objects:
        if obj["kind"] not in {"Deployment", "Job"}:
            continue
        for c in _containers(obj):
            refs = {e.get("secretRef", {}).get("name") for e in c.get("envFrom", [])}
            assert "oms-secrets" in refs, f"{obj['metadata']['name']} gets no secrets"
            for env in c.get("env", []):
                assert env["name"] not in SECRET_KEYS or "valueFrom" in env


def test_flower_is_internal_only(objects) -> None:
    svc = _by(objects, "Service")["oms-flower"]
    assert svc["spec"].get("type", "ClusterIP") == "ClusterIP"
    policy = _by(objects, "NetworkPolicy")["oms-flower-internal"]
    assert policy["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "flower"
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    assert all("podSelector" in src for rule in policy["spec"]["ingress"] for src in rule["from"])


def test_a_one_shot_job_makes_the_schema_and_the_admin(objects) -> None:
    job = _by(objects, "Job")["oms-migrate"]
    cmd = " ".join(_containers(job)[0]["command"])
    assert "manage.py schema" in cmd and "manage.py create-admin" in cmd
    assert job["spec"]["template"]["spec"]["restartPolicy"] in {"OnFailure", "Never"}
    assert all(o["metadata"].get("namespace") == "oms" for o in objects if o["kind"] != "Namespace")
