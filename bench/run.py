"""`make bench`: the ceiling of this design on this box, and how close the service gets.

In one run, on one private stack (bench/stack.py) and the same worker settings:

1. baseline: bare Celery 4-task no-op chains per second (the physical ceiling);
2. the service: N concurrent HTTP clients submit M orders paid with saved 4242 cards;
   accept latency, POST → shipped latency, completed orders per second, failures;
3. orders/s ÷ chains/s, CPU seconds per order of each process tree, peak RSS, Mongo
   operations per order (serverStatus opcounters) and CPU per task.

Prints a table, writes bench/results/latest.json and docs/bench-latency.png.
``--profile`` adds a pyinstrument profile of the worker's tasks and Mongo commands counted
by pymongo in the workers (slower: use it to look, not to quote throughput).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.stack import Stack, StackConfig

ROOT = Path(__file__).resolve().parent.parent
SKU = "BENCH-SKU"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--orders", type=int, default=500)
    p.add_argument("--clients", type=int, default=20)
    p.add_argument("--users", type=int, default=20, help="customers registered beforehand")
    p.add_argument("--workers", type=int, default=1, help="Celery worker processes")
    p.add_argument("--concurrency", type=int, default=2, help="pool size of each worker")
    p.add_argument("--broker", default=None, help="e.g. amqp://guest:guest@127.0.0.1:5672//")
    p.add_argument(
        "--layout",
        choices=("single", "split"),
        default="single",
        help="split: make up's worker per queue group (payments on threads); ignores --workers",
    )
    p.add_argument("--chains", type=int, default=None, help="baseline chains (default: orders)")
    p.add_argument("--profile", action="store_true", help="pyinstrument + Mongo command counts")
    p.add_argument("--out", type=Path, default=ROOT / "bench/results/latest.json")
    p.add_argument("--chart", type=Path, default=ROOT / "docs/bench-latency.png")
    p.add_argument("--no-chart", action="store_true")
    p.add_argument("--timeout", type=float, default=420, help="bound on the service phase (s)")
    p.add_argument(
        "--tracing",
        action="store_true",
        help="OpenTelemetry on in every process, exported over OTLP to a local sink",
    )
    return p.parse_args(argv)


# -- phases ---------------------------------------------------------------------------------
def run_baseline(count: int, timeout: float) -> dict[str, Any]:
    from bench.celery_tasks import DONE_KEY, send_chains
    from bench.metrics import wait_until
    from core.redis_client import get_redis

    r = get_redis()

    def done() -> int:
        return int(r.get(DONE_KEY) or 0)

    r.set(DONE_KEY, 0)
    send_chains(10)  # warm the pool children and connections
    if not wait_until(lambda: done() >= 10, 60):
        raise RuntimeError("baseline warm-up chains did not finish")
    r.set(DONE_KEY, 0)
    started = time.perf_counter()
    sender = threading.Thread(target=send_chains, args=(count,), daemon=True)
    sender.start()
    finished = wait_until(lambda: done() >= count, timeout, interval=0.02)
    seconds = time.perf_counter() - started
    sender.join(10)
    return {
        "chains": count,
        "completed": done(),
        "seconds": round(seconds, 3),
        "chains_per_s": round(done() / seconds, 1) if seconds else None,
        "finished": finished,
    }


def wait_drained(db: Any, timeout: float) -> bool:
    """Every outbox empty (so the trailing event work is inside the CPU window)."""
    from bench.metrics import wait_until

    def empty() -> bool:
        return all(
            db[name].count_documents({"outbox.0": {"$exists": True}}) == 0
            for name in ("orders", "users")  # product events wait for beat's sweep
        )

    ok = wait_until(empty, timeout, interval=0.5)
    time.sleep(1.0)
    return ok


def run_service(stack: Stack, args: argparse.Namespace, sampler: Any) -> dict[str, Any]:
    from bench import actors
    from bench.metrics import diff, mongo_opcounters, self_cpu, summary_ms, wait_until
    from core.db import get_db

    db = get_db()
    customers = actors.make_customers(stack.api_base, stack.stripe_base, args.users)
    # Warm-up orders (not measured): the API and every pool child load their code paths.
    warm = actors.submit_orders(stack.api_base, customers, max(2, min(6, args.orders // 4)), 3, SKU)
    warm_ids = [s.order_id for s in warm if s.order_id]
    wait_until(lambda: len(_finished(db, warm_ids)) == len(warm_ids), 60)
    wait_drained(db, 30)
    idle = idle_e2e(stack, customers[0], db, probes=5 if args.orders >= 50 else 2)

    phase_start = datetime.now(UTC) - timedelta(seconds=1)
    ops_before = mongo_opcounters(db)
    cpu_mark = sampler.mark()
    bench_cpu = self_cpu()
    sampler.reset_peaks()
    t_wall0 = time.time()
    subs = actors.submit_orders(stack.api_base, customers, args.orders, args.clients, SKU)
    accept_seconds = time.time() - t_wall0
    ids = [s.order_id for s in subs if s.order_id]
    wait_until(lambda: actors.count_finished(db, phase_start) >= len(ids), args.timeout, 0.5)
    drained = wait_drained(db, 60)
    cpu = sampler.window(cpu_mark)
    ops = diff(mongo_opcounters(db), ops_before)
    bench_cpu = self_cpu() - bench_cpu

    states = actors.order_states(db, ids)
    started = {s.order_id: s.started for s in subs if s.order_id}
    e2e, completed_at = [], []
    for oid, doc in states.items():
        if doc.get("status") in ("shipped", "delivered") and doc.get("shipped_at"):
            shipped = doc["shipped_at"].replace(tzinfo=doc["shipped_at"].tzinfo or UTC).timestamp()
            e2e.append(shipped - started[oid])
            completed_at.append(shipped - t_wall0)
    completed = len(e2e)
    span = max(completed_at) if completed_at else None
    by_status: dict[str, int] = {}
    for doc in states.values():
        by_status[doc.get("status", "?")] = by_status.get(doc.get("status", "?"), 0) + 1
    http_errors: dict[str, int] = {}
    for s in subs:
        if s.status != 202:
            http_errors[str(s.status)] = http_errors.get(str(s.status), 0) + 1
    writes = sum(ops.get(k, 0) for k in ("insert", "update", "delete"))
    per_order = completed or 1
    return {
        "orders": args.orders,
        "clients": args.clients,
        "accepted": len(ids),
        "completed": completed,
        "by_status": by_status,
        "http_errors": http_errors,
        "failures": args.orders - completed,
        "drained": drained,
        "accept_seconds": round(accept_seconds, 2),
        "accept_rate_per_s": round(len(ids) / accept_seconds, 1) if accept_seconds else None,
        "accept_latency": summary_ms([s.latency for s in subs if s.status == 202]),
        "e2e_latency": summary_ms(e2e),
        "idle_e2e_latency": summary_ms(idle),
        "seconds_to_last_shipped": round(span, 2) if span else None,
        "orders_per_s": round(completed / span, 1) if span else None,
        "cpu_seconds": {k: round(v, 2) for k, v in cpu.items()},
        "cpu_ms_per_order": {k: round(v * 1000 / per_order, 2) for k, v in cpu.items()},
        "bench_clients_cpu_s": round(bench_cpu, 2),
        "mongo_ops": ops,
        "mongo_ops_per_order": {k: round(v / per_order, 2) for k, v in ops.items()},
        "mongo_writes_per_order": round(writes / per_order, 2),
        "series": {
            "accept_latency_s": [round(s.latency, 5) for s in subs if s.status == 202],
            "e2e_s": [round(v, 4) for v in e2e],
            "completed_at_s": sorted(round(v, 3) for v in completed_at),
            "accepted_at_s": sorted(round(s.started + s.latency - t_wall0, 3) for s in subs),
        },
    }


def idle_e2e(stack: Stack, customer: Any, db: Any, probes: int) -> list[float]:
    """POST → shipped of single orders on an otherwise idle stack, one after the other."""
    import httpx
    from bson import ObjectId

    from bench.actors import place_order

    out = []
    with httpx.Client(base_url=stack.api_base, timeout=30) as http:
        for _ in range(probes):
            sub = place_order(http, customer, SKU)
            if not sub.order_id:
                continue
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                doc = db.orders.find_one({"_id": ObjectId(sub.order_id)}, {"shipped_at": 1})
                if doc and doc.get("shipped_at"):
                    out.append(doc["shipped_at"].timestamp() - sub.started)
                    break
                time.sleep(0.02)
    wait_drained(db, 30)
    return out


def _finished(db: Any, ids: list[str]) -> list[str]:
    from bench.actors import TERMINAL, order_states

    return [i for i, d in order_states(db, ids).items() if d.get("status") in TERMINAL]


def read_worker_files(profile_dir: Path) -> dict[str, Any]:
    """Per-task CPU/wall and (with --profile) the samples and Mongo commands of all children."""
    tasks: dict[str, list[float]] = {}
    mongo: dict[str, int] = {}
    categories: dict[str, float] = {}
    ours: dict[str, float] = {}
    sampled = 0.0
    texts = []
    for f in sorted(profile_dir.glob("tasks-*.json")):
        body = json.loads(f.read_text())
        for name, (n, wall, cpu) in body["tasks"].items():
            row = tasks.setdefault(name, [0, 0.0, 0.0])
            row[0] += n
            row[1] += wall
            row[2] += cpu
        for k, v in body.get("mongo", {}).items():
            mongo[k] = mongo.get(k, 0) + v
    for f in sorted(profile_dir.glob("samples-*.json")):
        body = json.loads(f.read_text())
        sampled += body["seconds"]
        for k, v in body["by_category"].items():
            categories[k] = categories.get(k, 0.0) + v
        for k, v in body["ours_inclusive"].items():
            ours[k] = ours.get(k, 0.0) + v
    for f in sorted(profile_dir.glob("profile-*.txt")):
        texts.append(f.read_text())
    out: dict[str, Any] = {
        "tasks": {
            name: {
                "runs": int(n),
                "wall_ms_avg": round(wall * 1000 / n, 2) if n else None,
                "cpu_ms_avg": round(cpu * 1000 / n, 2) if n else None,
            }
            for name, (n, wall, cpu) in sorted(tasks.items())
        }
    }
    if mongo:
        out["mongo_commands_by_workers"] = dict(sorted(mongo.items(), key=lambda kv: -kv[1]))
    if sampled:
        out["profile"] = {
            "sampled_task_seconds": round(sampled, 2),
            "by_category_pct": {
                k: round(100 * v / sampled, 1)
                for k, v in sorted(categories.items(), key=lambda kv: -kv[1])
            },
            "ours_inclusive_pct": {
                k: round(100 * v / sampled, 1)
                for k, v in sorted(ours.items(), key=lambda kv: -kv[1])[:25]
            },
            "text": texts[0][:20000] if texts else "",
        }
    return out


# -- main -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    started = time.monotonic()
    profile_dir = Path(tempfile.mkdtemp(prefix="oms-bench-profile-"))
    env = {"BENCH_PYINSTRUMENT": "1", "BENCH_COUNT_MONGO": "1"} if args.profile else {}
    sink = None
    if args.tracing:
        from bench.otlp_sink import OtlpSink

        sink = OtlpSink().start()
        env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
    mongo_profile = profile_dir / "mongo-server.json"
    cfg = StackConfig(
        workers=args.workers,
        concurrency=args.concurrency,
        layout=args.layout,
        broker=args.broker,
        env=env,
        profile_dir=str(profile_dir),
        mongo_profile=str(mongo_profile) if args.profile else None,
        label="bench",
    )
    result: dict[str, Any] = {}
    try:
        with Stack(cfg) as stack:
            print(
                f"[bench] stack up in {time.monotonic() - started:.1f}s "
                f"(broker {stack.broker_url.split('@')[-1]})",
                flush=True,
            )
            from bench.metrics import ProcSampler
            from core.db import connect_mongo
            from models.product import Product

            connect_mongo()
            Product.create(
                sku=SKU,
                name="Bench item",
                price_cents=1000,
                currency="usd",
                stock=args.orders + 1000,
            )
            from tasks.dispatch import enqueue_outbox

            enqueue_outbox("products", SKU)
            sampler = ProcSampler(stack.roles).start()
            chains = args.chains or args.orders
            print(f"[bench] baseline: {chains} bare 4-task chains…", flush=True)
            base_mark = sampler.mark()
            baseline = run_baseline(chains, timeout=max(60.0, chains / 5))
            base_cpu = sampler.window(base_mark)
            baseline["worker_cpu_ms_per_chain"] = round(
                1000
                * sum(v for k, v in base_cpu.items() if k.startswith("worker"))
                / max(1, baseline["completed"]),
                2,
            )
            baseline["redis_cpu_ms_per_chain"] = round(
                1000 * base_cpu.get("redis", 0) / max(1, baseline["completed"]), 2
            )
            print(
                f"[bench] baseline {baseline['chains_per_s']} chains/s; service: "
                f"{args.orders} orders from {args.clients} clients…",
                flush=True,
            )
            service = run_service(stack, args, sampler)
            sampler.stop()
            for i in range(len(stack.workers)):
                stack.stop_worker_warm(i, timeout=180 if args.profile else 30)
            workers = read_worker_files(profile_dir)
            result = assemble(args, baseline, service, sampler, workers, load_before)
        if sink is not None:  # after the stack stopped: every process flushed its spans
            result["tracing"] = sink.stop()
            print(f"[bench] tracing: {result['tracing']}", flush=True)
        if mongo_profile.exists():  # written when the server stopped with the stack
            result["mongo_server_profile"] = json.loads(mongo_profile.read_text())
    finally:
        shutil.rmtree(profile_dir, ignore_errors=True)
    result["machine"]["load_after"] = [round(x, 2) for x in os.getloadavg()]
    result["wall_seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    from bench.report import print_bench

    print_bench(result)
    if not args.no_chart:
        from bench.chart import latency_chart

        where = latency_chart(result, args.chart)
        print(f"[bench] chart: {where}")
    print(f"[bench] results: {args.out}")
    return 0 if result["service"]["completed"] == args.orders else 1


def assemble(args, baseline, service, sampler, workers, load_before) -> dict[str, Any]:
    ratio = None
    if service.get("orders_per_s") and baseline.get("chains_per_s"):
        ratio = round(service["orders_per_s"] / baseline["chains_per_s"], 3)
    return {
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python -m bench.run " + " ".join(sys.argv[1:]),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "load_before": [round(x, 2) for x in load_before],
        },
        "config": {
            "orders": args.orders,
            "clients": args.clients,
            "users": args.users,
            "workers": args.workers,
            "concurrency": args.concurrency,
            "broker": "amqp" if args.broker else "redis",
            "profile": args.profile,
            "tracing": args.tracing,
        },
        "baseline": baseline,
        "service": service,
        "ratio": ratio,
        "peak_rss_mib": {
            role: {
                "tree": round(sampler.peak_rss.get(role, 0), 1),
                "largest_process": round(sampler.peak_proc_rss.get(role, 0), 1),
                "processes": sampler.procs.get(role, 0),
            }
            for role in sampler.peak_rss
        },
        **workers,
    }


if __name__ == "__main__":
    sys.exit(main())
