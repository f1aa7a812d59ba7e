"""promtool (Debian's `prometheus` package; `make test` installs it) for metrics and rules."""

from __future__ import annotations

import shutil
import subprocess


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    path = shutil.which("promtool")
    assert path, "promtool is missing: `make test` installs Debian's prometheus package (root)"
    return subprocess.run(
        [path, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )
