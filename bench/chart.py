"""docs/bench-latency.png: latency distributions and completed orders over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def latency_chart(result: dict[str, Any], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("[bench] matplotlib is not installed: no chart")
        return None
    series = result["service"]["series"]
    accept = sorted(v * 1000 for v in series["accept_latency_s"])
    e2e = sorted(v * 1000 for v in series["e2e_s"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for values, label in ((accept, "accept (POST → 202)"), (e2e, "end to end (POST → shipped)")):
        if values:
            n = len(values)
            left.step(values, [(i + 1) / n for i in range(n)], where="post", label=label)
    left.set_xscale("log")
    left.set_xlabel("latency, ms (log)")
    left.set_ylabel("fraction of orders")
    left.set_title("latency distribution (CDF)")
    left.grid(True, which="both", alpha=0.3)
    left.legend(loc="lower right")
    done = series["completed_at_s"]
    acc = series["accepted_at_s"]
    right.plot(acc, range(1, len(acc) + 1), label="accepted (answered)")
    right.plot(done, range(1, len(done) + 1), label="shipped")
    right.set_xlabel("seconds since the first POST")
    right.set_ylabel("orders")
    right.set_title(f"completed over time ({result['service']['orders_per_s']} orders/s)")
    right.grid(True, alpha=0.3)
    right.legend(loc="lower right")
    cfg = result["config"]
    fig.suptitle(
        f"{cfg['orders']} orders, {cfg['clients']} clients, {cfg['workers']}×{cfg['concurrency']}"
        f" worker, {cfg['broker']} broker, {result['machine']['cpus']} CPUs"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
