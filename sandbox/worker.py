"""The host's side of one worker: its process (bwrap or unshare around the server), its uids, its memory cgroup,
and the pipe protocol to it (length-framed JSON requests, one JSON result line each)."""

from __future__ import annotations

import json
import os
import queue
import select
import signal
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict

from sandbox import cgroup, isolation, verdict
from sandbox.coverage import executable_lines
from sandbox.hostfs import PACKAGE_ROOT, bwrap_command, home_views
from sandbox.types import REQUEST_HEADER_BYTES, Job, Limits, Result
from sandbox.uids import claim_uids

# Extra seconds the host waits past the job's own timeout before declaring the worker itself hung.
HOST_GRACE_S = 15.0
# Jobs queued on each worker's server at once by run_many: one running, one waiting to start.
PIPELINE_DEPTH = 2


def job_request(job: Job, limits: Limits) -> tuple[bytes, str]:
    """The framed request for `job`, and the mode that will decide it. The expected stdout stays here."""
    mode = isolation.choose(job.style, job.tests, job.isolation, job.module_name)
    spec = {"code": job.code, "tests": job.tests, "style": job.style, "stdin": job.stdin,
            "module_name": job.module_name, "coverage": job.coverage}  # fmt: skip
    payload = json.dumps({"job": spec, "limits": asdict(limits), "isolation": mode}).encode()
    return str(len(payload)).zfill(REQUEST_HEADER_BYTES - 1).encode() + b"\n" + payload, mode


class Worker:
    """One worker process and the pipe protocol to it."""

    def __init__(self, index: int, use_bwrap: bool) -> None:
        self.index = index
        self.use_bwrap = use_bwrap
        self.protections: list[str] = []
        self.proc: subprocess.Popen | None = None
        self.lease = claim_uids()
        self.uid, self.judge_uid = self.lease.contestant, self.lease.judge
        self.cgroup_name = f"{cgroup.PREFIX}{self.uid}"
        self.cgroup_fd = cgroup.create(self.cgroup_name)
        self.start()  # the caller waits with wait_ready()

    def start(self) -> None:
        prefix = bwrap_command() if self.use_bwrap else None
        hidden, keep = home_views()
        config = json.dumps({"uid": self.uid, "judge_uid": self.judge_uid, "bwrap": prefix is not None,
                             "hide": hidden, "keep": keep, "cgroup_fd": self.cgroup_fd})  # fmt: skip
        boot = f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); from sandbox.server import main; main()"
        # -S: no site.main(), so .pth files import nothing into the worker (see zygote.import_path).
        cmd = (prefix or []) + [sys.executable, "-I", "-S", "-c", boot, config]
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd="/", start_new_session=True,
            pass_fds=(self.cgroup_fd,) if self.cgroup_fd is not None else (),
        )  # fmt: skip
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
        self.protections = json.loads(hello)["protections"]

    def send(self, job: Job, limits: Limits, timeout: float) -> str:
        """Queue one job on the server, which runs its jobs in order; its mode. OSError if the server is gone.

        While the request is written, results already on their way are read into a buffer, so a large request
        and a large result can never block each other. `timeout`: how long the server may take to get to it.
        """
        if self.proc is None or self.proc.poll() is not None:
            # Died between jobs (e.g. the thread that started it exited: its parent-death signal fired).
            self.restart()
        request, mode = job_request(job, limits)
        if self._exchange(request, timeout) != b"":
            raise OSError(f"sandbox worker {self.index} did not take the job within {timeout:.0f} s")
        return mode

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

    def result(self, job: Job, mode: str, line: bytes | None) -> Result:
        """The Result for `line` (None: the worker died or hung, and is restarted)."""
        if line is None:
            self.restart()
            return Result(status="error", error_type="SandboxError", message="the sandbox worker died; restarted",
                          isolation=mode, protections=sorted(self.protections))  # fmt: skip
        fields = json.loads(line)
        replaced = fields.pop("worker_replaced", None)
        if fields.get("status") == verdict.RAN:  # a stdio program: only the host holds its expected output
            fields.update(verdict.compare_stdout(fields.get("stdout", ""), job.expected_stdout))
        result = Result.from_dict(dict(fields, isolation=mode))
        if job.coverage:
            result.executable_lines = executable_lines(job.code, job.module_name + ".py")
        if replaced:
            self.restart()  # its clean-up failed: a new worker before the next job
        return result

    def run(self, job: Job, limits: Limits) -> Result:
        mode = isolation.choose(job.style, job.tests, job.isolation, job.module_name)
        try:
            mode = self.send(job, limits, HOST_GRACE_S)
            line = self.receive(limits.timeout_s + HOST_GRACE_S)
        except (OSError, ValueError):
            line = None
        except BaseException:
            self.stop()  # e.g. KeyboardInterrupt: its result must never be read as the next job's
            raise
        return self.result(job, mode, line)

    def run_stream(self, jobs: list[Job], todo: queue.SimpleQueue, default: Limits,
                   done: Callable[[int, Result], None]) -> None:  # fmt: skip
        """Run jobs whose indices come from `todo` until it is empty, calling done(index, Result) for each.

        Up to PIPELINE_DEPTH jobs are queued on the server at once, so it starts the next job as soon as one
        ends instead of waiting for this thread to read the result and send another.
        """
        in_flight: deque[tuple[int, str]] = (
            deque()
        )  # sent, result not read yet, in the order the server runs them
        try:
            self._run_stream(jobs, todo, default, done, in_flight)
        except BaseException:
            if in_flight:
                self.stop()  # results still on their way must never be read as another job's
            raise

    def _run_stream(self, jobs: list[Job], todo: queue.SimpleQueue, default: Limits, done: Callable,
                    in_flight: deque) -> None:  # fmt: skip
        retry: deque[int] = deque()  # sent to a server that died before running them
        while True:
            while len(in_flight) < PIPELINE_DEPTH and (retry or not todo.empty()):
                try:
                    i = retry.popleft() if retry else todo.get_nowait()
                except queue.Empty:
                    break
                ahead = sum((jobs[j].limits or default).timeout_s for j, _ in in_flight)
                try:
                    mode = self.send(jobs[i], jobs[i].limits or default, ahead + HOST_GRACE_S)
                except (OSError, ValueError, RuntimeError) as exc:
                    self.stop()  # a half-written request must never be completed by the next one
                    if in_flight:
                        # The server stopped taking jobs: report the one it was running, send the rest again.
                        retry.extendleft(reversed([j for j, _ in list(in_flight)[1:]] + [i]))
                        i, mode = in_flight.popleft()
                        in_flight.clear()
                        done(i, error_result(exc, mode))
                    else:
                        done(
                            i,
                            error_result(
                                exc,
                                isolation.choose(
                                    jobs[i].style, jobs[i].tests, jobs[i].isolation, jobs[i].module_name
                                ),
                            ),
                        )
                    continue
                in_flight.append((i, mode))
            if not in_flight:
                return
            i, mode = in_flight.popleft()
            try:
                line = self.receive((jobs[i].limits or default).timeout_s + HOST_GRACE_S)
            except (OSError, ValueError):
                line = None
            if line is None or b'"worker_replaced"' in line:
                # The server runs jobs in order: those queued behind this one never started (or will be lost).
                retry.extendleft(reversed([j for j, _ in in_flight]))
                in_flight.clear()
            try:
                done(i, self.result(jobs[i], mode, line))
            except RuntimeError as exc:  # the restart failed
                done(i, error_result(exc, mode))

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

    def close(self) -> None:
        self.stop()
        if self.cgroup_fd is not None:
            cgroup.remove(self.cgroup_fd, self.cgroup_name)
            self.cgroup_fd = None
        self.lease.release()


def error_result(exc: BaseException, mode: str = "") -> Result:
    return Result(
        status="error", error_type="SandboxError", message=f"{type(exc).__name__}: {exc}", isolation=mode
    )
