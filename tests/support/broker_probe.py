"""Run inside a subprocess whose BROKER_URL names the broker under test (the test process's
Celery app is bound to the test Redis): ``python -m tests.support.broker_probe CMD …``."""

from __future__ import annotations

import json
import sys

from tasks.app import celery_app
from tasks.dispatch import queue_depths


def main(argv: list[str]) -> None:
    cmd, *rest = argv
    if cmd == "depths":
        print(json.dumps(queue_depths(rest)))
    elif cmd == "send":  # send TASK QUEUE [ARG]
        task, queue, *args = rest
        celery_app.send_task(task, args=args, queue=queue)
        print("sent")
    else:
        raise SystemExit(f"unknown command {cmd}")


if __name__ == "__main__":
    main(sys.argv[1:])
