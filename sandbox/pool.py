"""The public entry point: a pool of workers, safe to share between threads."""

from __future__ import annotations

import os
import queue
import shutil
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

from sandbox.types import Job, Limits, Result
from sandbox.worker import Worker, error_result

PROTECTIONS = (
    "net_namespace",
    "hidden_home",
    "readonly_root",
    "private_tmp",
    "pid_namespace",
    "unprivileged_uid",
    "private_ipc",
    "fresh_keyring",
    "memory_cgroup",
    "rlimits",
    "no_new_privs",
    "fd_capture",
)
FULL_ISOLATION = PROTECTIONS  # the name this tuple had before there were two modes


def why_missing(protection: str) -> str:
    """What a missing protection needs, said for the user this process runs as."""
    root = os.geteuid() == 0
    bwrap = shutil.which("bwrap") is not None
    if protection == "memory_cgroup":
        from sandbox.cgroup import unavailable_reason

        return unavailable_reason() or "the worker's memory cgroup could not be set up"
    if protection == "readonly_root":
        if root:
            return "mount_setattr(2) failed (needs Linux 5.12 or later), or install bubblewrap"
        return (
            "needs bubblewrap (apt-get install -y bubblewrap)" if not bwrap else "bubblewrap failed to start"
        )
    if root:
        return (
            "the kernel refused the namespace or keyring call (python -m sandbox check --no-bwrap shows more)"
        )
    if protection in ("net_namespace", "pid_namespace", "hidden_home"):
        return "run as root, or install bubblewrap" if not bwrap else "run as root"
    return (
        "run as root"  # unprivileged_uid, private_ipc, private_tmp, fresh_keyring: a uid switch, namespaces
    )


_noticed = False
_notice_lock = threading.Lock()


def _notice_once(missing: list[str]) -> None:
    """One line on stderr per process: what is missing and how to get it."""
    global _noticed
    with _notice_lock:
        if _noticed:
            return
        _noticed = True
    hints = dict.fromkeys(why_missing(p) for p in missing)
    sys.stderr.write(f"sandbox: reduced isolation, missing {', '.join(missing)} ({'; '.join(hints)})\n")


class Sandbox:
    """A pool of isolated workers. Use as a context manager, or call `close()`.

    `run` and `run_many` may be called from several threads at once; each job takes one idle worker.
    `notice`: print one line on stderr (once per process) when protections are missing on this machine.
    """

    def __init__(self, workers: int | None = None, limits: Limits | None = None, use_bwrap: bool | None = None,
                 notice: bool = True) -> None:  # fmt: skip
        self.limits = limits or Limits()
        count = workers or os.cpu_count() or 1
        self._use_bwrap = shutil.which("bwrap") is not None if use_bwrap is None else use_bwrap
        if self._use_bwrap and shutil.which("bwrap") is None:
            raise FileNotFoundError("use_bwrap=True but no `bwrap` on PATH: apt-get install bubblewrap")
        self._workers: list[Worker] = []
        try:
            self._workers = [Worker(i, self._use_bwrap) for i in range(count)]
            for worker in self._workers:
                worker.wait_ready()
        except (RuntimeError, OSError):
            for worker in self._workers:
                worker.close()
            raise
        self._idle: queue.Queue[Worker] = queue.Queue()
        for worker in self._workers:
            self._idle.put(worker)
        self._closed = False
        missing = self.missing_protections()
        if missing and notice:
            _notice_once(missing)

    @property
    def protections(self) -> list[str]:
        """The protections every job of this sandbox runs under."""
        return sorted(self._workers[0].protections)

    @property
    def isolation(self) -> list[str]:
        """The protections (the name this property had before Result.isolation named the mode); use protections."""
        return self.protections

    @property
    def uids(self) -> list[int]:
        """The uids this sandbox's jobs run as (one per worker; the judges run as the next uid of each)."""
        return [w.uid for w in self._workers]

    @property
    def judge_uids(self) -> list[int]:
        return [w.judge_uid for w in self._workers]

    def missing_protections(self) -> list[str]:
        return [p for p in PROTECTIONS if p not in self._workers[0].protections]

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
        isolation: str | None = None,
    ) -> Result:
        job = Job(code, tests, style, stdin, expected_stdout, limits, module_name, coverage, isolation)
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
        return [r if r is not None else error_result(failure) for r in results]

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for worker in self._workers:
            worker.close()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
