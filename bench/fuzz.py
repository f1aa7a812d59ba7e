"""`make fuzz`: Schemathesis with every check and every phase, stateful included.

On a private stack (bench/stack.py: SecantusDB, a private redis-server, localstripe, one
worker, uvicorn on free loopback ports) started with the fuzz profile — rate limits raised
far above what a run sends, so a 429 never ends it early — the Schemathesis CLI runs twice
against /openapi.json: anonymous, then with a customer's bearer token. `--checks all` and
the default phases (examples, coverage, fuzzing, stateful: the stateful phase follows the
links of the schema, e.g. POST /api/orders → its Location). Prints and writes the figures
(cases, failures per check) to bench/results/fuzz.json; the JUnit and NDJSON reports of
each run go to bench/results/fuzz-<who>/. Exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.stack import Stack, StackConfig

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
# The fuzz profile: every limit far above a run's request rate (not off: the limiter runs).
FUZZ_ENV = {
    "RATE_LIMIT_DEFAULT": "1000000/minute",
    "RATE_LIMIT_LOGIN": "1000000/minute",
    "RATE_LIMIT_ORDERS": "1000000/minute",
}


SESSION_ENDING = ("logout_api_users_logout_post", "delete_profile_api_users_profile_delete")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n")[0])
    p.add_argument("--max-examples", type=int, default=50, help="cases per operation and phase")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--who", default="anonymous,customer", help="anonymous, customer or both")
    p.add_argument("--workers", default="1", help="Schemathesis workers (1 on a shared box)")
    p.add_argument("extra", nargs="*", help="more schemathesis run options (after --)")
    return p.parse_args(argv)


def customer_token(api_base: str) -> str:
    email = f"fuzz-{uuid.uuid4().hex[:10]}@example.com"
    body = {"email": email, "password": "fuzz-password-1", "firstName": "Fuzz", "lastName": "Me"}
    r = httpx.post(f"{api_base}/api/users/register", json=body, timeout=30)
    r.raise_for_status()
    return r.json()["data"]["token"]


def summary_figures(text: str) -> dict[str, Any]:
    """Cases and failures from the CLI's summary ("N generated, K found M unique failures",
    one "❌ ST103 Undocumented status code: 23" line per failing check)."""
    generated = re.search(r"(\d+) generated", text)
    unique = re.search(r"(\d+) unique failures?", text)
    failures = {
        f"{code} {name.strip()}": int(n)
        for code, name, n in re.findall(r"❌ (ST\d+) ([^:\n]+): (\d+)", text)
    }
    operations = sorted(set(re.findall(r"^_+ ([A-Z]+ \S+) _+$", text, flags=re.M)))
    return {
        "cases": int(generated.group(1)) if generated else None,
        "unique_failures": int(unique.group(1)) if unique else 0,
        "failures_by_check": failures,
        "failing_operations": operations,
    }


def run_schemathesis(
    api_base: str, who: str, token: str | None, args: argparse.Namespace
) -> dict[str, Any]:
    out = RESULTS / f"fuzz-{who}"
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(ROOT / "bench" / "schemathesis.toml"),
        "run",
        f"{api_base}/openapi.json",
        "--checks",
        "all",
        "--max-examples",
        str(args.max_examples),
        "--workers",
        args.workers,
        "--report",
        "junit,ndjson",
        "--report-dir",
        str(out),
        "--no-color",
        "--generation-database",
        "none",
        "--suppress-health-check",
        "all",
        "--request-timeout",
        "30",
    ]
    if args.seed is not None:
        cmd += ["--seed", str(args.seed)]
    if token:
        cmd += ["--header", f"Authorization: Bearer {token}"]
        # Logging out or closing the account would revoke the one token mid-run and turn
        # the rest into 401s; the anonymous run covers both operations.
        for op in SESSION_ENDING:
            cmd += ["--exclude-operation-id", op]
    cmd += args.extra
    started = time.monotonic()
    log = out / "output.txt"
    with log.open("w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT, check=False)
    text = log.read_text()
    figures = summary_figures(text)
    tail = text.splitlines()[-40:]
    return {
        "who": who,
        "exit_code": proc.returncode,
        "seconds": round(time.monotonic() - started, 1),
        **figures,
        "summary": tail,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    RESULTS.mkdir(parents=True, exist_ok=True)
    for old in RESULTS.glob("fuzz-*/*"):
        if old.is_file():
            old.unlink()
    runs = []
    load_before = os.getloadavg()
    with Stack(StackConfig(label="fuzz", env=FUZZ_ENV)) as stack:
        for who in [w.strip() for w in args.who.split(",") if w.strip()]:
            token = customer_token(stack.api_base) if who == "customer" else None
            print(f"[fuzz] {who}: schemathesis run (this takes a while)", flush=True)
            runs.append(run_schemathesis(stack.api_base, who, token, args))
            r = runs[-1]
            print(
                f"[fuzz] {who}: exit {r['exit_code']}, {r.get('cases', '?')} cases, "
                f"{r['unique_failures']} unique failures {r['failures_by_check']} "
                f"in {r['seconds']} s",
                flush=True,
            )
            print("\n".join(r["summary"][-25:]), flush=True)
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "max_examples": args.max_examples,
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "runs": runs,
    }
    (RESULTS / "fuzz.json").write_text(json.dumps(result, indent=2))
    return 0 if all(r["exit_code"] == 0 for r in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
