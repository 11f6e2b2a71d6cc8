"""Memory counted per job across all of its processes and memfds: one cgroup v1 memory controller per worker.

The host creates the worker's cgroup under its own (`<own cgroup>/sandbox-<uid>`) and hands the server a descriptor
of that directory; the server sets the job's limit and resets the counters before each job, and every process of
the job joins the cgroup (through a descriptor the zygote passes it) before it drops to the job's uid. Pages the
job's processes touch and the files they write to tmpfs or memfds are all charged to it; past the limit the kernel
kills a process of the job, which the server reports as `memory_limit` (the cgroup's `oom_kill` count rose).
Only jobs join: the server, the zygote and the judge are never in the job's cgroup.
"""

from __future__ import annotations

import fcntl
import os
import time

ROOT = "/sys/fs/cgroup/memory"
PREFIX = "sandbox-"
_collected = [False]  # stale cgroups are looked for once per process
_FILES = (
    "memory.limit_in_bytes",
    "memory.memsw.limit_in_bytes",
    "memory.max_usage_in_bytes",
    "memory.failcnt",
)


def own_path() -> str | None:
    """This process's cgroup v1 memory directory, or None if there is no v1 memory controller."""
    try:
        with open("/proc/self/cgroup") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3 and "memory" in parts[1].split(","):
            path = os.path.join(ROOT, parts[2].lstrip("/"))
            return path if os.path.isfile(os.path.join(path, "memory.limit_in_bytes")) else None
    return None


def unavailable_reason() -> str | None:
    """Why no memory cgroup can be made here (None when one can)."""
    if own_path() is None:
        return "no cgroup v1 memory controller mounted at /sys/fs/cgroup/memory (cgroup v2 is not supported)"
    if os.geteuid() != 0:
        return "needs root to create a memory cgroup"
    return None


def create(name: str) -> int | None:
    """Create (or reuse) the cgroup `name` under this process's own; a descriptor of its directory, or None."""
    parent = own_path()
    if parent is None or os.geteuid() != 0:
        return None
    if not _collected[0]:
        _collected[0] = True
        remove_stale(parent)
    path = os.path.join(parent, name)
    try:
        os.mkdir(path, 0o755)
    except FileExistsError:
        pass  # left by a Sandbox that died; we hold its uid lock now, so nothing of it is still running
    except OSError:
        return None
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return None


def remove(fd: int, name: str) -> None:
    """Remove the cgroup made by create() and close its descriptor; the worker's processes may still be exiting,
    so a busy cgroup is tried again for a moment (one left behind is collected by a later Sandbox)."""
    parent = own_path()
    try:
        os.close(fd)
    except OSError:
        pass
    if parent is None:
        return
    deadline = time.monotonic() + 2.0
    while True:
        try:
            os.rmdir(os.path.join(parent, name))
            return
        except FileNotFoundError:
            return
        except OSError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.01)


def remove_stale(parent: str) -> None:
    """Remove the cgroups of workers whose Sandbox is gone (it died before it could): a cgroup is named for its
    worker's uid, and a uid whose lock nobody holds has no live worker."""
    from sandbox.uids import UID_BASE, UID_LOCK_DIR

    try:
        names = [n for n in os.listdir(parent) if n.startswith(PREFIX) and n[len(PREFIX) :].isdigit()]
    except OSError:
        return
    for name in names:
        slot = (int(name[len(PREFIX) :]) - UID_BASE) // 2
        try:
            lock = os.open(os.path.join(UID_LOCK_DIR, f"pair-{slot}"), os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            lock = None  # no lock file: nobody holds the uid
        try:
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rmdir(os.path.join(parent, name))
        except OSError:
            pass  # held by a live Sandbox, or still has processes
        finally:
            if lock is not None:
                os.close(lock)


class JobCgroup:
    """The server's side: the worker's cgroup directory descriptor, set up anew for every job."""

    def __init__(self, dir_fd: int) -> None:
        self.dir_fd = dir_fd
        self.has_swap_limit = self._exists("memory.memsw.limit_in_bytes")
        self.procs_fd = os.open("cgroup.procs", os.O_WRONLY | os.O_CLOEXEC, dir_fd=dir_fd)
        self._limit: int | None = None
        self._oom_kills = self.oom_kills()

    def _exists(self, name: str) -> bool:
        try:
            os.stat(name, dir_fd=self.dir_fd)
            return True
        except OSError:
            return False

    def _write(self, name: str, value: int) -> None:
        fd = os.open(name, os.O_WRONLY | os.O_CLOEXEC, dir_fd=self.dir_fd)
        try:
            os.write(fd, str(value).encode())
        finally:
            os.close(fd)

    def _read(self, name: str) -> str:
        fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC, dir_fd=self.dir_fd)
        try:
            return os.read(fd, 4096).decode()
        finally:
            os.close(fd)

    def oom_kills(self) -> int:
        fields = self._read("memory.oom_control").split()
        return int(fields[fields.index("oom_kill") + 1]) if "oom_kill" in fields else 0

    def prepare(self, limit_bytes: int) -> None:
        """Before a job: its limit, and counters that count only this job."""
        if limit_bytes != self._limit:
            names = ["memory.limit_in_bytes"] + (
                ["memory.memsw.limit_in_bytes"] if self.has_swap_limit else []
            )
            try:
                for name in names:
                    self._write(name, limit_bytes)
            except OSError:
                # memory + swap may never be below memory alone: when raising the limit, raise that one first.
                for name in reversed(names):
                    self._write(name, limit_bytes)
            self._limit = limit_bytes
        self._write("memory.max_usage_in_bytes", 0)
        self._oom_kills = self.oom_kills()

    def killed_for_memory(self) -> bool:
        """Did the kernel kill one of this job's processes for memory since prepare()?"""
        return self.oom_kills() > self._oom_kills

    def pids(self) -> list[int]:
        return [int(p) for p in self._read("cgroup.procs").split()]
