"""Where a job's seconds go: named phases of this process, for manifests and evaluation records.

`startup` is the time from the operating system starting the process to the first `phase` (the
interpreter and `import lmmcl.cli`); each `with phase(name)` adds its seconds under `name`.
benchmarks/make_run_time.py reads them back to profile a whole run per job kind.
"""
from __future__ import annotations

import os
import time
from contextlib import contextmanager

_PHASES: dict[str, float] = {}
_STARTUP: list[float] = []


def process_age() -> float | None:
    """Seconds since this process started (Linux /proc), or None where that is not known."""
    try:
        with open("/proc/self/stat") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return max(0.0, uptime - start_ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


def mark_startup() -> None:
    """Record the start-up time once (the CLI calls this first thing)."""
    if not _STARTUP:
        age = process_age()
        _STARTUP.append(round(age, 3) if age is not None else float("nan"))


@contextmanager
def phase(name: str):
    t0 = time.perf_counter()
    try:
        yield
    finally:
        _PHASES[name] = round(_PHASES.get(name, 0.0) + time.perf_counter() - t0, 3)


def record() -> dict:
    """{"startup": s, <phase>: s, ...} of this process so far."""
    out = {"startup": _STARTUP[0]} if _STARTUP and _STARTUP[0] == _STARTUP[0] else {}
    return {**out, **_PHASES}
