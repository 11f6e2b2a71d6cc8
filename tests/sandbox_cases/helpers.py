"""Shared helpers for the sandbox tests: host-side observations the sandboxed code must not change."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sandbox import Limits, Sandbox

HONEST_CODE = "def add(a, b):\n    return a + b\n"
HONEST_TESTS = "assert add(1, 2) == 3\nassert add(-1, 1) == 0\n"
# A generous clock for jobs that end on their own: a loaded CI machine must not turn them into timeouts.
FAST = Limits(timeout_s=10, memory_mb=512, output_bytes=4096)


@contextmanager
def quiet_sandbox(
    workers: int = 2, limits: Limits = FAST, use_bwrap: bool | None = None
) -> Iterator[Sandbox]:
    """A sandbox for tests, without the reduced-isolation notice of machines that lack bubblewrap."""
    with Sandbox(workers=workers, limits=limits, use_bwrap=use_bwrap, notice=False) as box:
        yield box


def sandbox_processes(uids: list[int]) -> list[int]:
    """PIDs of live processes running as one of `uids` (a sandbox's job uids), seen from the host."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status") as f:
                status = f.read()
        except OSError:
            continue
        uid_line = next((line for line in status.splitlines() if line.startswith("Uid:")), "")
        state = next((line for line in status.splitlines() if line.startswith("State:")), "")
        uid_values = [int(u) for u in uid_line.split()[1:]]
        if any(u in uids for u in uid_values) and "Z" not in state.split()[1:2]:
            pids.append(int(name))
    return pids


def sandbox_processes_after_exit(uids: list[int], patience_s: float = 5.0) -> list[int]:
    """Like sandbox_processes, for processes killed asynchronously (a parent-death signal): waits for them."""
    deadline = time.monotonic() + patience_s
    while (alive := sandbox_processes(uids)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return alive
