"""`make bench-auth`: a burst of sign-ups and logins while an order is placed.

On a private stack (bench/stack.py: SecantusDB in memory, a private redis-server,
localstripe, one worker, uvicorn; rate limits off, free loopback ports), N clients start
together; each registers a new account and then logs in with it. Meanwhile a customer
registered before the clock places one order paid with a saved 4242 card. Reports the
register / login latency percentiles, the burst's wall time, the order's accept latency
and its POST → shipped time, and what one argon2 hash with our parameters costs here.
Writes bench/results/auth.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from bench.stack import Stack, StackConfig

ROOT = Path(__file__).resolve().parent.parent
SKU = "AUTH-BENCH-SKU"
PASSWORD = "bench-password-9"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.auth_load", description=__doc__.split("\n")[0]
    )
    p.add_argument("--users", type=int, default=50, help="concurrent register + login clients")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "auth.json"))
    return p.parse_args(argv)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def summary(values: list[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": pct(values, 50),
        "p95": pct(values, 95),
        "p99": pct(values, 99),
        "max": max(values) if values else float("nan"),
        "mean": statistics.fmean(values) if values else float("nan"),
    }


def argon2_cost(rounds: int = 20) -> dict[str, float]:
    """Wall and CPU ms of one hash and one verify with the service's parameters, here."""
    import core.security as security
    from core.security import hash_password, verify_password

    # An older tree (for a before/after run) has no ARGON2_PARAMS: argon2-cffi's defaults.
    defaults = {"time_cost": 3, "memory_cost": 65536, "parallelism": 4}
    params = getattr(security, "ARGON2_PARAMS", defaults)

    stored = hash_password("measure-me-1")
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        hash_password("measure-me-1")
    hash_wall = (time.perf_counter() - wall) / rounds * 1000
    hash_cpu = (time.process_time() - cpu) / rounds * 1000
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(rounds):
        verify_password("measure-me-1", stored)
    return {
        **{k: float(v) for k, v in params.items()},
        "hash_wall_ms": hash_wall,
        "hash_cpu_ms": hash_cpu,
        "verify_wall_ms": (time.perf_counter() - wall) / rounds * 1000,
        "verify_cpu_ms": (time.process_time() - cpu) / rounds * 1000,
    }


async def one_user(http: httpx.AsyncClient, start: asyncio.Event, i: int) -> dict[str, Any]:
    email = f"auth{i}-{uuid.uuid4().hex[:8]}@example.com"
    await start.wait()
    out: dict[str, Any] = {}
    t0 = time.perf_counter()
    r = await http.post(
        "/api/users/register",
        json={"email": email, "password": PASSWORD, "firstName": "Bench", "lastName": f"U{i}"},
    )
    out["register_s"] = time.perf_counter() - t0
    out["register_status"] = r.status_code
    t1 = time.perf_counter()
    r = await http.post("/api/users/login", json={"email": email, "password": PASSWORD})
    out["login_s"] = time.perf_counter() - t1
    out["login_status"] = r.status_code
    out["total_s"] = time.perf_counter() - t0
    return out


async def one_order(
    http: httpx.AsyncClient, start: asyncio.Event, token: str, pm: str
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    body = {
        "items": [{"sku": SKU, "quantity": 1}],
        "shippingAddress": {
            "name": "Bench",
            "line1": "1 Road",
            "city": "Town",
            "postalCode": "12345",
            "country": "US",
        },
        "paymentMethodId": pm,
    }
    await start.wait()
    await asyncio.sleep(0.05)  # the burst is under way
    t0 = time.perf_counter()
    r = await http.post("/api/orders", json=body, headers=headers)
    accepted = time.perf_counter() - t0
    if r.status_code != 202:
        return {"status_code": r.status_code, "error": r.text[:200], "accept_s": accepted}
    order_id = r.json()["data"]["order"]["id"]
    status = "pending"
    while time.perf_counter() - t0 < 120 and status not in ("shipped", "failed", "cancelled"):
        await asyncio.sleep(0.05)
        got = await http.get(f"/api/orders/{order_id}", headers=headers)
        status = got.json()["data"]["order"]["status"]
    return {
        "status_code": 202,
        "accept_s": accepted,
        "final_status": status,
        "shipped_s": time.perf_counter() - t0 if status == "shipped" else None,
    }


async def burst(api_base: str, users: int, token: str, pm: str) -> dict[str, Any]:
    limits = httpx.Limits(max_connections=users + 10, max_keepalive_connections=users + 10)
    async with httpx.AsyncClient(base_url=api_base, timeout=60, limits=limits) as http:
        start = asyncio.Event()
        tasks = [asyncio.create_task(one_user(http, start, i)) for i in range(users)]
        order = asyncio.create_task(one_order(http, start, token, pm))
        await asyncio.sleep(0.2)
        t0 = time.perf_counter()
        start.set()
        results = await asyncio.gather(*tasks)
        wall = time.perf_counter() - t0
        return {"users": results, "order": await order, "burst_wall_s": wall}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_before = os.getloadavg()
    with Stack(StackConfig(label="auth")) as stack:
        from bench.actors import register, save_card
        from core.db import connect_mongo
        from models.product import Product

        connect_mongo()
        Product.create(sku=SKU, name="Auth bench item", price_cents=1000, currency="usd", stock=10)
        with httpx.Client(base_url=stack.api_base, timeout=30) as http:
            customer = register(http, "auth-order")
            pm = save_card(http, stack.stripe_base, customer, "4242424242424242")
        cost = argon2_cost()
        run = asyncio.run(burst(stack.api_base, args.users, customer.token, pm))
    users = run["users"]
    failures = [u for u in users if u["register_status"] != 201 or u["login_status"] != 200]
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "load_before": load_before,
        "load_after": os.getloadavg(),
        "users": args.users,
        "argon2": cost,
        "register_s": summary([u["register_s"] for u in users]),
        "login_s": summary([u["login_s"] for u in users]),
        "register_plus_login_s": summary([u["total_s"] for u in users]),
        "burst_wall_s": run["burst_wall_s"],
        "failures": len(failures),
        "order": run["order"],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    ms = lambda s: f"{s * 1000:.0f}"  # noqa: E731
    print(f"\n{args.users} concurrent register + login (load before {load_before[0]:.1f})")
    print(
        f"argon2id {cost['memory_cost']:.0f} KiB, t={cost['time_cost']:.0f}, "
        f"p={cost['parallelism']:.0f}: hash "
        f"{cost['hash_wall_ms']:.1f} ms wall / {cost['hash_cpu_ms']:.1f} ms CPU, verify "
        f"{cost['verify_wall_ms']:.1f} / {cost['verify_cpu_ms']:.1f} ms"
    )
    for name in ("register_s", "login_s", "register_plus_login_s"):
        s = result[name]
        print(
            f"{name:>22}: p50 {ms(s['p50'])} ms  p95 {ms(s['p95'])} ms  p99 {ms(s['p99'])} ms"
            f"  max {ms(s['max'])} ms"
        )
    print(f"burst wall time {run['burst_wall_s']:.2f} s, failures {len(failures)}")
    o = run["order"]
    shipped = f"{o['shipped_s']:.2f} s" if o.get("shipped_s") else "not shipped"
    print(
        f"order placed meanwhile: accepted in {o['accept_s'] * 1000:.0f} ms "
        f"({o['status_code']}), {o.get('final_status')} after {shipped}"
    )
    print(f"wrote {out}")
    return 0 if not failures and o.get("final_status") == "shipped" else 1


if __name__ == "__main__":
    raise SystemExit(main())
