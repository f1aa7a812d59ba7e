"""Tables for the terminal (rich) from the bench and chaos result dicts."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

console = Console(width=130)


def _ms(d: dict[str, Any]) -> str:
    return f"{d.get('p50_ms')} / {d.get('p95_ms')} / {d.get('p99_ms')}"


def _pct_table(title: str, label: str, rows) -> Table:
    """A two-column table: a name and its share in %."""
    table = Table(title=title)
    table.add_column(label)
    table.add_column("%", justify="right")
    for name, pct in rows:
        table.add_row(name, str(pct))
    return table


def print_bench(r: dict[str, Any]) -> None:
    b, s, m = r["baseline"], r["service"], r["machine"]
    cfg = r["config"]
    t = Table(
        title=f"make bench — {cfg['orders']} orders, {cfg['clients']} clients, "
        f"{cfg['workers']}×{cfg['concurrency']} worker(s), broker {cfg['broker']}"
    )
    t.add_column("measure")
    t.add_column("value", justify="right")
    rows = [
        ("baseline: bare 4-task no-op chains/s", b["chains_per_s"]),
        ("baseline: worker CPU ms per chain", b.get("worker_cpu_ms_per_chain")),
        ("orders accepted (202)", f"{s['accepted']} / {s['orders']}"),
        ("orders shipped", s["completed"]),
        ("failures (not shipped)", s["failures"]),
        ("accept latency p50 / p95 / p99 ms", _ms(s["accept_latency"])),
        ("accept rate (orders/s)", s["accept_rate_per_s"]),
        ("POST → shipped p50 / p95 / p99 ms (under the load)", _ms(s["e2e_latency"])),
        (
            "POST → shipped p50 / max ms, one order at a time (idle)",
            f"{s['idle_e2e_latency']['p50_ms']} / {s['idle_e2e_latency']['max_ms']}",
        ),
        ("completed orders/s", s["orders_per_s"]),
        ("ratio orders/s ÷ chains/s", r["ratio"]),
        ("Mongo writes per order (server opcounters)", s["mongo_writes_per_order"]),
        (
            "Mongo ops per order (all)",
            ", ".join(f"{k} {v}" for k, v in s["mongo_ops_per_order"].items() if v),
        ),
    ]
    for role, ms in s["cpu_ms_per_order"].items():
        rows.append((f"CPU ms per order: {role}", ms))
    rows.append(("CPU ms per order: total", round(sum(s["cpu_ms_per_order"].values()), 1)))
    for role, rss in r["peak_rss_mib"].items():
        rows.append(
            (
                f"peak RSS MiB: {role} ({rss['processes']} proc)",
                f"{rss['tree']} (largest {rss['largest_process']})",
            )
        )
    rows.append(
        (
            "load average before → after",
            f"{m['load_before'][0]} → {m['load_after'][0]} ({m['cpus']} CPUs)",
        )
    )
    for k, v in rows:
        t.add_row(k, str(v))
    console.print(t)
    if r.get("tasks"):
        tt = Table(title="per task (pool children, whole run)")
        for c in ("task", "runs", "wall ms avg", "CPU ms avg"):
            tt.add_column(c, justify="right" if c != "task" else "left")
        for name, row in r["tasks"].items():
            tt.add_row(name, str(row["runs"]), str(row["wall_ms_avg"]), str(row["cpu_ms_avg"]))
        console.print(tt)
    prof = r.get("profile")
    if prof:
        title = f"where task time goes (pyinstrument, {prof['sampled_task_seconds']} s)"
        console.print(_pct_table(title, "category", prof["by_category_pct"].items()))
        ours = list(prof["ours_inclusive_pct"].items())[:15]
        console.print(_pct_table("our functions, inclusive % of task time", "function", ours))
    mp = r.get("mongo_server_profile")
    if mp:
        title = f"SecantusDB server: busy samples by command ({mp['busy_samples']})"
        console.print(_pct_table(title, "command handler", mp["handlers_pct"].items()))
        top = list(mp["self_pct"].items())[:12]
        console.print(_pct_table("SecantusDB server: self time, top functions", "function", top))
    if r.get("mongo_commands_by_workers"):
        console.print(
            "Mongo commands sent by the workers (whole run):", r["mongo_commands_by_workers"]
        )


def print_chaos(r: dict[str, Any]) -> None:
    t = Table(title="make chaos — each scenario on a fresh private stack, then check_all()")
    cols = (
        "scenario",
        "sub-\nmitted",
        "correct\nend",
        "resumed\nby beat",
        "needs\nattn",
        "lost",
        "dup\ncharges",
        "stock\ndrift",
        "invariant\nviolations",
        "settled s\nafter fault",
        "ok",
    )
    for c in cols:
        t.add_column(c, justify="left" if c == "scenario" else "right", no_wrap=c == "scenario")
    for s in r["scenarios"]:
        t.add_row(
            s["name"],
            str(s["submitted"]),
            str(s["correct_terminal"]),
            str(s["resumed_by_beat"]),
            str(s["needs_attention"]),
            str(s["lost"]),
            str(s["duplicate_charges"]),
            str(s["stock_drift"]),
            str(s["violations"]),
            "-" if s["settled_after_fault_s"] is None else str(s["settled_after_fault_s"]),
            "yes" if s["ok"] else "NO",
        )
    console.print(t)
    for s in r["scenarios"]:
        if s.get("notes"):
            console.print(f"[bold]{s['name']}[/bold]: " + "; ".join(s["notes"]))
