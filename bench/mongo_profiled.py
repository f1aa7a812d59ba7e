"""SecantusDB with a sampling profiler (bench-only, ``make bench`` with ``--profile``).

``python -m bench.mongo_profiled <secantusd-py arguments>``: runs the server in this
process and samples every thread's stack every 2 ms. A connection thread blocked reading
the next request is idle and not counted; every other sample is attributed to the innermost
function (self) and to every SecantusDB function on the stack (inclusive). At exit (the
server turns SIGTERM into a normal exit) the summary is written to BENCH_MONGO_PROFILE.
Sampling is wall-clock: with the GIL contended, a thread waiting for it counts as busy, so
read the shares as "where the server's work is", not as exact CPU.
"""

from __future__ import annotations

import atexit
import json
import os
import sys
import threading
import time
from collections import Counter

INTERVAL_S = 0.002
# A connection thread waiting for its next request sits in one of these.
IDLE_FUNCTIONS = {"read_message", "_readable", "_recv_exact", "accept", "wait", "select", "poll"}

self_time: Counter[str] = Counter()
inclusive: Counter[str] = Counter()
commands: Counter[str] = Counter()
busy_samples = 0
idle_samples = 0


def _where(frame) -> str:
    path = frame.f_code.co_filename
    short = path.split("site-packages/")[-1] if "site-packages/" in path else path.split("/")[-1]
    return f"{short}:{frame.f_code.co_name}"


def _sample_forever() -> None:
    global busy_samples, idle_samples
    me = threading.get_ident()
    while True:
        time.sleep(INTERVAL_S)
        for tid, frame in sys._current_frames().items():
            if tid == me:
                continue
            stack = []
            f = frame
            while f is not None:
                stack.append(f)
                f = f.f_back
            names = {fr.f_code.co_name for fr in stack}
            if "_handle_client" not in names:
                continue  # accept loop, background jobs: reported by their CPU elsewhere
            if names & IDLE_FUNCTIONS:
                idle_samples += 1
                continue
            busy_samples += 1
            self_time[_where(stack[0])] += 1
            seen = set()
            for fr in stack:
                if "secantus" in fr.f_code.co_filename:
                    key = _where(fr)
                    if key not in seen:
                        seen.add(key)
                        inclusive[key] += 1
            # commands.py's ``dispatch`` calls the command's handler (_find, _update, …).
            handler = next(
                (
                    fr
                    for fr in reversed(stack)
                    if fr.f_code.co_filename.endswith("commands.py")
                    and fr.f_code.co_name != "dispatch"
                ),
                None,
            )
            commands[handler.f_code.co_name if handler else "(outside a command)"] += 1


def _write() -> None:
    out = os.environ.get("BENCH_MONGO_PROFILE")
    if not out or not busy_samples:
        return
    pct = 100 / busy_samples
    body = {
        "busy_samples": busy_samples,
        "idle_samples": idle_samples,
        "self_pct": {k: round(v * pct, 1) for k, v in self_time.most_common(25)},
        "inclusive_pct": {k: round(v * pct, 1) for k, v in inclusive.most_common(30)},
        "handlers_pct": {k: round(v * pct, 1) for k, v in commands.most_common(15)},
    }
    with open(out, "w") as f:
        json.dump(body, f, indent=1)


def main() -> int:
    from secantus.cli import main as secantus_main

    atexit.register(_write)
    threading.Thread(target=_sample_forever, daemon=True).start()
    sys.argv = ["secantusd-py", *sys.argv[1:]]
    try:
        return int(secantus_main() or 0)
    finally:
        _write()


if __name__ == "__main__":
    sys.exit(main())
