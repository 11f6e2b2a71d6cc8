"""The public entry point: a pool of warm fork servers, safe to share between threads."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict

from sandbox.coverage import executable_lines
from sandbox.types import PRIVATE_TMPS, REQUEST_HEADER_BYTES, Job, Limits, Result

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL_ISOLATION = (
    "net_namespace",
    "hidden_home",
    "readonly_root",
    "private_tmp",
    "pid_namespace",
    "unprivileged_uid",
    "rlimits",
    "no_new_privs",
    "fd_capture",
)
# Each worker runs its jobs as its own uid, claimed machine-wide with a lock file, so RLIMIT_NPROC and
# "kill everything of this uid" never touch another worker or another Sandbox running at the same time.
UID_BASE = 200000
UID_SLOTS = 50000
UID_LOCK_DIR = os.path.join(tempfile.gettempdir(), "sandbox-uid-locks")
# Extra seconds the host waits past the job's own timeout before declaring the worker itself hung.
HOST_GRACE_S = 15.0
# Jobs queued on each worker's server at once by run_many: one running, one waiting to start.
PIPELINE_DEPTH = 2
_warned = False
_warn_lock = threading.Lock()


def _warn_once(missing: list[str]) -> None:
    global _warned
    with _warn_lock:
        if _warned:
            return
        _warned = True
    warnings.warn(
        f"sandbox: reduced isolation on this machine, missing {', '.join(missing)} "
        "(run as root on Linux, and install bubblewrap for a read-only filesystem view)",
        RuntimeWarning,
        stacklevel=3,
    )


HOME_DIRS = ("/root", "/home")
# Sizes of a worker's private temporary filesystems (RAM-backed; emptied after every job).
TMP_BYTES = 512 << 20
SMALL_TMP_BYTES = 64 << 20


def _inside(path: str, parent: str) -> bool:
    return path == parent or path.startswith(parent.rstrip("/") + "/")


def _parents_between(home: str, path: str) -> list[str]:
    """Directories strictly between `home` and `path`, outermost first."""
    if not _inside(path, home) or path == home:
        return []
    parts, current = [], os.path.dirname(path)
    while current != home and _inside(current, home):
        parts.append(current)
        current = os.path.dirname(current)
    return parts[::-1]


def home_views() -> tuple[list[str], list[str]]:
    """(home directories to hide, paths inside them or inside the private temp dirs to show read-only again).

    Home directories hold the invoking user's secrets; they are replaced by empty directories, except for the
    Python installation, the import path and this package, which jobs need to read. The temp dirs become
    private tmpfs mounts, so a virtual environment or checkout under /tmp is shown again the same way.
    """
    hidden = [h for h in HOME_DIRS if os.path.isdir(h)]
    covered = hidden + [t for t in PRIVATE_TMPS if os.path.isdir(t)]
    wanted = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(sys.executable), PACKAGE_ROOT}
    wanted |= {p for p in sys.path if p and os.path.isabs(p)}
    keep = set()
    for path in wanted:
        real = os.path.realpath(path)
        if os.path.isdir(real) and any(_inside(real, c) for c in covered):
            keep.add(real)
    keep = {p for p in keep if not any(q != p and _inside(p, q) for q in keep)}
    return hidden, sorted(keep)


def bwrap_command() -> list[str] | None:
    """bubblewrap arguments for a worker: read-only root, private /tmp, no network; None if unavailable."""
    path = shutil.which("bwrap")
    if path is None:
        return None
    hidden, keep = home_views()
    homes = [arg for h in hidden for arg in ("--tmpfs", h)]
    # bwrap creates missing parent directories 0700; the job's uid must be able to walk through them.
    covered = hidden + list(PRIVATE_TMPS)
    parents = sorted({p for k in keep for c in covered for p in _parents_between(c, k)}, key=len)
    shown = [arg for d in parents for arg in ("--perms", "0755", "--dir", d)]
    shown += [arg for k in keep for arg in ("--ro-bind", k, k)]
    return [
        path,
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--perms", "1777", "--size", str(TMP_BYTES), "--tmpfs", "/tmp",
        "--perms", "1777", "--size", str(SMALL_TMP_BYTES), "--tmpfs", "/var/tmp",
        "--perms", "1777", "--size", str(SMALL_TMP_BYTES), "--tmpfs", "/dev/shm",
        *homes, *shown,
        "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-pid",
        "--die-with-parent",
        "--",
    ]  # fmt: skip


def claim_uid() -> tuple[int, int]:
    """(uid, lock fd): a job uid no other live worker on this machine holds; closing the fd releases it."""
    os.makedirs(UID_LOCK_DIR, exist_ok=True)
    try:
        os.chmod(UID_LOCK_DIR, 0o1777)
    except OSError:
        pass  # someone else's directory; it is already shared
    start = random.randrange(UID_SLOTS)
    for i in range(UID_SLOTS):
        slot = (start + i) % UID_SLOTS
        fd = os.open(os.path.join(UID_LOCK_DIR, str(slot)), os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return UID_BASE + slot, fd
        except OSError:
            os.close(fd)
    raise RuntimeError(f"all {UID_SLOTS} sandbox uids are in use (locks in {UID_LOCK_DIR})")


class _Worker:
    """One fork server process and the pipe protocol to it (JSON lines both ways)."""

    def __init__(self, index: int, use_bwrap: bool) -> None:
        self.index = index
        self.use_bwrap = use_bwrap
        self.isolation: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.uid, self._uid_lock = claim_uid()
        self.start()  # the caller waits with wait_ready()

    def start(self) -> None:
        prefix = bwrap_command() if self.use_bwrap else None
        hidden, keep = home_views()
        config = json.dumps({"uid": self.uid, "bwrap": prefix is not None, "hide": hidden, "keep": keep})
        boot = f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); from sandbox.server import main; main()"
        cmd = (prefix or []) + [sys.executable, "-I", "-c", boot, config]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd="/", start_new_session=True
        )
        os.set_blocking(self.proc.stdin.fileno(), False)  # see _exchange: writes never wait for the reader
        self._received = bytearray()  # result bytes read from the server and not yet returned
        self._command = cmd

    def wait_ready(self) -> None:
        """Wait for the server's hello (split from start() so that many workers boot in parallel)."""
        hello = self.receive(60.0)
        if hello is None:
            self.stop()
            raise RuntimeError(
                f"sandbox worker {self.index} failed to start: {' '.join(self._command[:3])} ..."
            )
        self.isolation = json.loads(hello)["isolation"]

    def send(self, job: Job, limits: Limits, timeout: float) -> None:
        """Queue one job on the server, which runs its jobs in order; raises OSError if the server is gone.

        While the request is written, results already on their way are read into a buffer, so a large request
        and a large result can never block each other. `timeout`: how long the server may take to get to it.
        """
        if self.proc is None or self.proc.poll() is not None:
            # Died between jobs (e.g. the thread that started it exited: its parent-death signal fired).
            self.restart()
        payload = json.dumps({"job": _job_spec(job), "limits": asdict(limits)}).encode()
        header = str(len(payload)).zfill(REQUEST_HEADER_BYTES - 1).encode() + b"\n"
        if not self._exchange(header + payload, timeout) == b"":
            raise OSError(f"sandbox worker {self.index} did not take the job within {timeout:.0f} s")

    def receive(self, timeout: float) -> bytes | None:
        """The server's next result line, or None if it died or sent nothing within `timeout` seconds."""
        return self._exchange(b"", timeout)

    def _exchange(self, request: bytes, timeout: float) -> bytes | None:
        """Write `request` (b"" when there is none); then return b"" if one was written, else the next line."""
        assert self.proc is not None and self.proc.stdin is not None and self.proc.stdout is not None
        in_fd, out_fd = self.proc.stdin.fileno(), self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        pending = memoryview(request)
        writing = bool(request)
        while True:
            if writing and not pending:
                return b""
            end = self._received.find(b"\n")
            if not writing and end >= 0:
                line = bytes(self._received[: end + 1])
                del self._received[: end + 1]
                return line
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            readable, writable, _ = select.select([out_fd], [in_fd] if pending else [], [], left)
            if readable:
                chunk = os.read(out_fd, 1 << 20)
                if not chunk:
                    return None
                self._received += chunk
            if writable:
                try:
                    pending = pending[os.write(in_fd, pending) :]
                except BlockingIOError:
                    pass

    def result(self, job: Job, line: bytes | None) -> Result:
        """The Result for `line` (None: the worker died or hung, and is restarted)."""
        if line is None:
            self.restart()
            return Result(
                status="error", error_type="SandboxError", message="the sandbox worker died; restarted"
            )
        result = Result.from_dict(json.loads(line))
        if job.coverage:
            result.executable_lines = executable_lines(job.code, job.module_name + ".py")
        return result

    def run(self, job: Job, limits: Limits) -> Result:
        try:
            self.send(job, limits, HOST_GRACE_S)
            line = self.receive(limits.timeout_s + HOST_GRACE_S)
        except (OSError, ValueError):
            line = None
        except BaseException:
            self.stop()  # e.g. KeyboardInterrupt: its result must never be read as the next job's
            raise
        return self.result(job, line)

    def run_stream(self, jobs: list[Job], todo: queue.SimpleQueue, default: Limits, done) -> None:
        """Run jobs whose indices come from `todo` until it is empty, calling done(index, Result) for each.

        Up to PIPELINE_DEPTH jobs are queued on the server at once, so it starts the next job as soon as one
        ends instead of waiting for this thread to read the result and send another.
        """
        in_flight: deque[int] = deque()  # sent, result not read yet, in the order the server runs them
        try:
            self._run_stream(jobs, todo, default, done, in_flight)
        except BaseException:
            if in_flight:
                self.stop()  # results still on their way must never be read as another job's
            raise

    def _run_stream(self, jobs, todo, default: Limits, done, in_flight: deque[int]) -> None:
        retry: deque[int] = deque()  # sent to a server that died before running them
        while True:
            while len(in_flight) < PIPELINE_DEPTH and (retry or not todo.empty()):
                try:
                    i = retry.popleft() if retry else todo.get_nowait()
                except queue.Empty:
                    break
                ahead = sum((jobs[j].limits or default).timeout_s for j in in_flight)
                try:
                    self.send(jobs[i], jobs[i].limits or default, ahead + HOST_GRACE_S)
                except (OSError, ValueError, RuntimeError) as exc:
                    self.stop()  # a half-written request must never be completed by the next one
                    if in_flight:
                        # The server stopped taking jobs: report the one it was running, send the rest again.
                        retry.extendleft(reversed([*list(in_flight)[1:], i]))
                        i = in_flight.popleft()
                        in_flight.clear()
                    done(i, _error_result(exc))
                    continue
                in_flight.append(i)
            if not in_flight:
                return
            i = in_flight.popleft()
            try:
                line = self.receive((jobs[i].limits or default).timeout_s + HOST_GRACE_S)
            except (OSError, ValueError):
                line = None
            if line is None:
                # The server runs jobs in order: those queued behind this one never started.
                retry.extendleft(reversed(in_flight))
                in_flight.clear()
            try:
                done(i, self.result(jobs[i], line))
            except RuntimeError as exc:  # the restart failed
                done(i, _error_result(exc))

    def restart(self) -> None:
        self.stop()
        self.start()
        self.wait_ready()

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass
        self.proc = None


def _error_result(exc: Exception) -> Result:
    return Result(status="error", error_type="SandboxError", message=f"{type(exc).__name__}: {exc}")


def _job_spec(job: Job) -> dict:
    return {
        "code": job.code,
        "tests": job.tests,
        "style": job.style,
        "stdin": job.stdin,
        "expected_stdout": job.expected_stdout,
        "module_name": job.module_name,
        "coverage": job.coverage,
    }


class Sandbox:
    """A pool of isolated workers. Use as a context manager, or call `close()`.

    `run` and `run_many` may be called from several threads at once; each job takes one idle worker.
    """

    def __init__(
        self, workers: int | None = None, limits: Limits | None = None, use_bwrap: bool | None = None
    ) -> None:
        self.limits = limits or Limits()
        count = workers or os.cpu_count() or 1
        self._use_bwrap = shutil.which("bwrap") is not None if use_bwrap is None else use_bwrap
        if self._use_bwrap and shutil.which("bwrap") is None:
            raise FileNotFoundError("use_bwrap=True but no `bwrap` on PATH: apt-get install bubblewrap")
        self._workers = [_Worker(i, self._use_bwrap) for i in range(count)]
        try:
            for worker in self._workers:
                worker.wait_ready()
        except RuntimeError:
            for worker in self._workers:
                worker.stop()
                os.close(worker._uid_lock)
            raise
        self._idle: queue.Queue[_Worker] = queue.Queue()
        for worker in self._workers:
            self._idle.put(worker)
        self._closed = False
        missing = self.missing_protections()
        if missing:
            _warn_once(missing)

    @property
    def isolation(self) -> list[str]:
        """The protections every job of this sandbox runs under."""
        return sorted(self._workers[0].isolation)

    @property
    def uids(self) -> list[int]:
        """The uids this sandbox's jobs run as (one per worker)."""
        return [w.uid for w in self._workers]

    def missing_protections(self) -> list[str]:
        return [p for p in FULL_ISOLATION if p not in self._workers[0].isolation]

    def run(
        self,
        code: str,
        tests: str | None = None,
        style: str = "script",
        stdin: str | None = None,
        expected_stdout: str | None = None,
        limits: Limits | None = None,
        module_name: str = "solution",
        coverage: bool = False,
    ) -> Result:
        job = Job(code, tests, style, stdin, expected_stdout, limits, module_name, coverage)
        return self.run_job(job)

    def run_job(self, job: Job) -> Result:
        if self._closed:
            raise RuntimeError("this Sandbox is closed")
        worker = self._idle.get()
        try:
            return worker.run(job, job.limits or self.limits)
        finally:
            self._idle.put(worker)

    def run_many(self, jobs: list[Job], progress: bool = False) -> list[Result]:
        """One Result per job, in input order, keeping every worker busy (each with its next job queued)."""
        results: list[Result | None] = [None] * len(jobs)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(jobs), desc="sandbox", unit="job")
        todo: queue.SimpleQueue[int] = queue.SimpleQueue()
        for i in range(len(jobs)):
            todo.put(i)

        def done(i: int, result: Result) -> None:
            results[i] = result
            if bar is not None:
                bar.update(1)

        def drive() -> None:
            if self._closed:
                raise RuntimeError("this Sandbox is closed")
            worker = self._idle.get()
            try:
                worker.run_stream(jobs, todo, self.limits, done)
            finally:
                self._idle.put(worker)

        threads = min(len(self._workers), len(jobs))
        failure: Exception = RuntimeError("the job was not run")
        with ThreadPoolExecutor(max_workers=max(threads, 1)) as pool:
            for future in [pool.submit(drive) for _ in range(threads)]:
                try:
                    future.result()
                except Exception as exc:  # noqa: BLE001 - e.g. a closed Sandbox: still one result per job
                    failure = exc
        if bar is not None:
            bar.close()
        return [r if r is not None else _error_result(failure) for r in results]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            worker.stop()
            os.close(worker._uid_lock)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
