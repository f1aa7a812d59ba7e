"""Kills a bench stack's process groups if the bench process dies without cleaning up.

``python -m bench.watchdog PARENT_PID PGID_FILE``: every 0.5 s, checks the parent; when
it is gone (even SIGKILLed), reads the process-group ids listed in PGID_FILE and kills
them (SIGCONT first, for a frozen emulator), then exits. A normal stop kills this first.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def main() -> int:
    parent, pgid_file = int(sys.argv[1]), Path(sys.argv[2])
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the bench, not us
    while _alive(parent) and os.getppid() == parent:
        time.sleep(0.5)
    try:
        pgids = {int(x) for x in pgid_file.read_text().split() if x.strip()}
    except OSError:
        pgids = set()
    for sig in (signal.SIGCONT, signal.SIGKILL):
        for pgid in pgids:
            try:
                os.killpg(pgid, sig)
            except (ProcessLookupError, PermissionError):
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
