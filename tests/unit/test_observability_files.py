"""deploy/observability/: the alert rules, their unit tests, the Prometheus config and the
Grafana dashboard, checked with promtool (Debian's prometheus package; make test installs it).

That every metric these files query exists is checked against a live scrape in
tests/e2e/test_metrics_live.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tests.support.promtool import promtool

DIR = Path(__file__).resolve().parents[2] / "deploy" / "observability"


def _ok(result) -> None:
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_rules_are_valid() -> None:
    _ok(promtool("check", "rules", str(DIR / "alerts.yml")))


def test_alert_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", str(DIR / "alerts_test.yml"))
    _ok(result)
    assert "SUCCESS" in result.stdout


def test_prometheus_config_is_valid() -> None:
    _ok(promtool("check", "config", str(DIR / "prometheus.yml")))


def test_the_issues_alerts_exist_and_each_has_a_unit_test() -> None:
    rules = yaml.safe_load((DIR / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert alerts == {
        "OrdersStuck",
        "QueueMessageTooOld",
        "NeedsAttentionRising",
        "WebhookSignatureFailures",
        "PaymentFailureSpike",
        "NoWorkerHeartbeat",
    }
    tests = yaml.safe_load((DIR / "alerts_test.yml").read_text())["tests"]
    firing = {
        t["alertname"] for case in tests for t in case["alert_rule_test"] if t.get("exp_alerts")
    }
    quiet = {
        t["alertname"] for case in tests for t in case["alert_rule_test"] if not t.get("exp_alerts")
    }
    assert firing == alerts  # each alert is shown to fire...
    assert quiet == alerts  # ...and to stay quiet when it should


def test_dashboard_has_the_panels_and_valid_promql(tmp_path: Path) -> None:
    dash = json.loads((DIR / "grafana-dashboard.json").read_text())
    titles = " | ".join(p["title"] for p in dash["panels"]).lower()
    for topic in (
        "orders per minute by status",
        "end-to-end",
        "queue depth",
        "oldest message age",
        "retries",
        "needs attention",
        "payment failures by decline code",
        "outbox lag",
    ):
        assert topic in titles, topic
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
    # promtool parses PromQL in rule files: each panel query as a recording rule.
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:q{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump(rules))
    _ok(promtool("check", "rules", str(path)))
