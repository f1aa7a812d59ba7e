"""`make chaos`: break the stack on purpose, then prove nothing was lost or charged twice.

Each scenario runs on a fresh private stack (bench/stack.py) with beat and short
thresholds, in its own subprocess (so every scenario's settings, ports and clients are its
own), and is bounded in time. After the fault, it waits for every order to settle, then
runs the system invariants (``tasks.invariants.check_all``) and its own audit:

submitted (202) / reached the correct terminal state / resumed by beat / needs attention /
lost / duplicate charges (succeeded intents per order, and money taken for an order that
did not ship) / stock drift / seconds from the end of the fault until all settled.

Results: a table and bench/results/chaos.json. Target: 0 lost, 0 duplicate charges, 0 drift,
settled within 120 s of the fault ending.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.chaos_scenarios import SCENARIOS

ROOT = Path(__file__).resolve().parent.parent
SETTLE_TARGET_S = 120


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.split("\n")[0])
    p.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated names")
    p.add_argument("--orders", type=int, default=None, help="orders per scenario (override)")
    p.add_argument("--kills", type=int, default=5, help="worker SIGKILLs in worker_kill")
    p.add_argument("--rate", type=float, default=None, help="orders/s submitted (override)")
    p.add_argument(
        "--stuck-seconds", type=int, default=30, help="STUCK_ORDER_SECONDS for beat's resume"
    )
    p.add_argument(
        "--capture",
        choices=("automatic", "manual"),
        default=None,
        help="PAYMENT_CAPTURE for every stack (default: the environment's, else automatic)",
    )
    p.add_argument(
        "--broker", default=None, help="e.g. amqp://guest:guest@127.0.0.1:5672// (private vhost)"
    )
    p.add_argument(
        "--layout",
        choices=("single", "split"),
        default="single",
        help="single: one worker on every queue; split: make up's worker per queue group",
    )
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/chaos.json")
    p.add_argument("--budget", type=float, default=585, help="seconds for the whole run")
    p.add_argument("--one", help=argparse.SUPPRESS)  # run one scenario in this process
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def run_one(args: argparse.Namespace) -> int:
    from bench.chaos_scenarios import run_scenario

    outcome = run_scenario(
        args.one,
        orders=args.orders,
        kills=args.kills,
        rate=args.rate,
        stuck=args.stuck_seconds,
        broker=args.broker,
        layout=args.layout,
    )
    args.result.write_text(json.dumps(outcome, indent=2, default=str))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.capture:
        os.environ["PAYMENT_CAPTURE"] = args.capture  # scenario processes inherit it
    if args.one:
        return run_one(args)
    names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        print(f"unknown scenario(s): {unknown}; known: {list(SCENARIOS)}")
        return 2
    load_before = os.getloadavg()
    started = time.monotonic()
    deadline = started + args.budget
    results: list[dict[str, Any]] = []
    for name in names:
        left = deadline - time.monotonic()
        if left < 30:
            results.append(_skipped(name, "time budget used up"))
            continue
        print(f"[chaos] {name} …", flush=True)
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            result_path = Path(f.name)
        cmd = [
            sys.executable,
            "-m",
            "bench.chaos",
            "--one",
            name,
            "--result",
            str(result_path),
            "--kills",
            str(args.kills),
            "--stuck-seconds",
            str(args.stuck_seconds),
            "--layout",
            args.layout,
        ]
        if args.broker:
            cmd += ["--broker", args.broker]
        if args.orders:
            cmd += ["--orders", str(args.orders)]
        if args.rate:
            cmd += ["--rate", str(args.rate)]
        t0 = time.monotonic()
        try:
            proc = subprocess.run(cmd, cwd=ROOT, timeout=left, start_new_session=False)
            body = result_path.read_text() if result_path.exists() else ""
            outcome = (
                json.loads(body)
                if body.strip()
                else _skipped(name, f"scenario process exited {proc.returncode} without a result")
            )
        except subprocess.TimeoutExpired:
            outcome = _skipped(name, "scenario exceeded the time budget")
        finally:
            result_path.unlink(missing_ok=True)
        outcome["wall_seconds"] = round(time.monotonic() - t0, 1)
        results.append(outcome)
        print(
            f"[chaos] {name}: {'ok' if outcome.get('ok') else 'NOT OK'} in "
            f"{outcome['wall_seconds']}s — submitted {outcome.get('submitted')}, "
            f"correct {outcome.get('correct_terminal')}, lost {outcome.get('lost')}, "
            f"dup charges {outcome.get('duplicate_charges')}, drift {outcome.get('stock_drift')}, "
            f"violations {outcome.get('violations')}, "
            f"settled {outcome.get('settled_after_fault_s')} s after the fault",
            flush=True,
        )
    report = {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.chaos " + " ".join(a for a in (argv or sys.argv[1:])),
        "machine": {
            "cpus": os.cpu_count(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "targets": {
            "lost": 0,
            "duplicate_charges": 0,
            "stock_drift": 0,
            "settled_within_s": SETTLE_TARGET_S,
        },
        "wall_seconds": round(time.monotonic() - started, 1),
        "scenarios": results,
        "all_ok": all(r.get("ok") for r in results),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str))
    from bench.report import print_chaos

    print_chaos(report)
    print(
        f"[chaos] {report['wall_seconds']}s; load {report['machine']['load_before'][0]} → "
        f"{report['machine']['load_after'][0]}; results: {args.out}"
    )
    return 0 if report["all_ok"] else 1


def _skipped(name: str, why: str) -> dict[str, Any]:
    return {
        "name": name,
        "submitted": 0,
        "correct_terminal": 0,
        "resumed_by_beat": 0,
        "needs_attention": 0,
        "lost": None,
        "duplicate_charges": None,
        "stock_drift": None,
        "violations": None,
        "settled_after_fault_s": None,
        "ok": False,
        "notes": [why],
    }


if __name__ == "__main__":
    sys.exit(main())
