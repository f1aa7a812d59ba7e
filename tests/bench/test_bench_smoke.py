"""The benchmark and chaos harnesses still run end to end (tiny sizes; behaviour, not speed).

Each spawns its own private stack (bench/stack.py) in a subprocess, exactly as `make bench`
and `make chaos` do; no figure is asserted, only that the harness completes, prints its
table, writes its JSON, and that the invariants hold after a fault.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_bench_run_completes_and_writes_results(tmp_path: Path) -> None:
    out, chart = tmp_path / "latest.json", tmp_path / "chart.png"
    proc = _run(
        [
            "-m",
            "bench.run",
            "--orders",
            "10",
            "--clients",
            "3",
            "--users",
            "3",
            "--chains",
            "20",
            "--out",
            str(out),
            "--chart",
            str(chart),
        ],
        timeout=180,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "make bench" in proc.stdout
    result = json.loads(out.read_text())
    assert result["baseline"]["completed"] == 20
    assert result["service"]["accepted"] == 10
    assert result["service"]["completed"] == 10
    assert result["service"]["failures"] == 0
    assert result["ratio"] is not None
    assert result["service"]["mongo_writes_per_order"] > 0
    assert {"api", "worker1", "mongo", "redis", "localstripe"} <= set(result["peak_rss_mib"])
    assert "orders.reserve_inventory" in result["tasks"]
    assert chart.exists() and chart.stat().st_size > 0


def test_chaos_worker_kill_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "chaos.json"
    proc = _run(
        [
            "-m",
            "bench.chaos",
            "--scenarios",
            "worker_kill",
            "--orders",
            "10",
            "--kills",
            "1",
            "--stuck-seconds",
            "6",
            "--out",
            str(out),
        ],
        timeout=240,
    )
    assert out.exists(), proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(out.read_text())
    (scenario,) = report["scenarios"]
    assert scenario["name"] == "worker_kill"
    # On failure show everything: the scenario's notes and the harness's own output.
    context = f"{json.dumps(scenario, indent=1)}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    assert scenario["submitted"] == 10, context
    assert scenario["lost"] == 0, context
    assert scenario["duplicate_charges"] == 0, context
    assert scenario["stock_drift"] == 0, context
    assert scenario["violations"] == 0, context
    assert scenario["correct_terminal"] == scenario["orders_in_db"], context
    assert "make chaos" in proc.stdout
    assert proc.returncode == 0, proc.stdout[-3000:]
