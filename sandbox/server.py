"""The warm fork server: one per worker, forks one isolated child per job and judges what comes back.

The server runs inside its own PID, network, mount, IPC and UTS namespaces (made by bubblewrap, or by unshare(2)
when bwrap is missing), with a read-only root (bwrap) and private /tmp. Untrusted code never runs in the server:
for each job it forks a child that drops to the worker's unprivileged uid, sets rlimits and NO_NEW_PRIVS, and
hands over to the trusted runner. When the job ends or times out, the server SIGKILLs every other process in its
PID namespace (orphans, daemons and bombs included) and wipes the private temporary directories, so one run
cannot affect the next.
"""

from __future__ import annotations

import fcntl
import gc
import hashlib
import json
import os
import random
import resource
import secrets
import select
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field

from sandbox import linux, runner, verdict
from sandbox.types import PRIVATE_TMPS, REQUEST_HEADER_BYTES, Limits

# The job's report and nonce descriptors get random numbers below RLIMIT_NOFILE, so nothing can rely on
# finding them at a fixed place.
FD_RANGE = (10, 250)
REPORT_CAP = 1 << 20
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
PRIVATE_RUN_DIR = "/tmp/run"
# Imported once here so each forked job starts warm (what most solutions and test files import).
PRELOAD = (
    "collections",
    "itertools",
    "functools",
    "math",
    "re",
    "heapq",
    "bisect",
    "string",
    "random",
    "typing",
    "hashlib",
    "fractions",
    "decimal",
    "statistics",
    "copy",
    "dataclasses",
    "datetime",
    "unittest",
    "io",
    "traceback",
)


# The watched namespaces as they were before any untrusted code existed (set in main()).
SNAPSHOT: list = []


@dataclass
class WorkerConfig:
    uid: int
    isolation: list[str] = field(default_factory=list)
    private_tmp: bool = False
    # True only when this server is alone in a PID namespace it owns: then kill(-1) reaches only its jobs.
    own_pid_namespace: bool = False
    # Read-only views of the Python install and the import path; those under a private temp dir (and the
    # directories leading to them) survive the wipe after each job.
    kept: tuple[str, ...] = ()


def _cover(covers: list[tuple[str, str]], keep: list[str]) -> None:
    """Mount an empty tmpfs on each (path, options) of `covers`, then show `keep` again, read-only (as bwrap does).

    Each kept path is pinned by an O_PATH descriptor before anything covers it and bind-mounted back through
    /proc/self/fd afterwards, so no staging directory is needed (every writable place is being covered).
    """
    pinned = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in keep]
    for path, options in covers:
        linux.mount("tmpfs", path, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, options)
    for path, fd in pinned:
        os.makedirs(path, mode=0o755, exist_ok=True)
        linux.mount(f"/proc/self/fd/{fd}", path, None, linux.MS_BIND | linux.MS_REC)
        # A bind remount changes only this new mount, in this private namespace.
        linux.mount(None, path, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
        os.close(fd)


def _enter_namespaces(config: WorkerConfig, hidden: list[str], keep: list[str]) -> None:
    """Without bwrap, as root: new namespaces for this server; the parent stays behind only to wait."""
    flags = (
        linux.CLONE_NEWNET | linux.CLONE_NEWNS | linux.CLONE_NEWIPC | linux.CLONE_NEWUTS | linux.CLONE_NEWPID
    )
    try:
        linux.unshare(flags)
    except OSError:
        return
    child = os.fork()  # the first child is PID 1 of the new PID namespace
    if child:
        _, status = os.waitpid(child, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    linux.mount(None, "/", None, linux.MS_REC | linux.MS_PRIVATE)
    linux.mount("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    tmps = [(path, "mode=1777,size=512m") for path in PRIVATE_TMPS if os.path.isdir(path)]
    _cover(tmps + [(home, "mode=755,size=1m") for home in hidden], keep)
    config.isolation += ["net_namespace", "pid_namespace", "private_tmp", "hidden_home"]
    config.private_tmp = True
    config.own_pid_namespace = True


def setup_worker(uid: int, launched_by_bwrap: bool, hidden: list[str], keep: list[str]) -> WorkerConfig:
    config = WorkerConfig(uid=uid, kept=tuple(keep))
    if launched_by_bwrap:
        config.isolation += ["net_namespace", "pid_namespace", "readonly_root", "private_tmp", "hidden_home"]
        config.private_tmp = True
        config.own_pid_namespace = os.getpid() <= 2
    elif os.geteuid() == 0:
        _enter_namespaces(config, hidden, keep)
    else:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.geteuid() == 0:
        config.isolation.append("unprivileged_uid")
    config.isolation += ["rlimits", "no_new_privs", "fd_capture"]
    return config


def _set_rlimits(limits: Limits) -> None:
    for which, value in (
        (resource.RLIMIT_AS, limits.memory_mb << 20),
        (resource.RLIMIT_CPU, int(limits.timeout_s) + 1),
        (resource.RLIMIT_FSIZE, limits.file_mb << 20),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_NPROC, limits.max_processes),
    ):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            # An unprivileged worker cannot raise a hard limit; lowering the soft one still contains the run.
            soft, hard = resource.getrlimit(which)
            if hard == resource.RLIM_INFINITY or value <= hard:
                resource.setrlimit(which, (value, hard))


def _job_child(spec: dict, limits: Limits, config: WorkerConfig, fds: dict) -> None:
    """Runs as the job process: finish isolating itself, then hand over to the trusted runner."""
    run_dir = spec["run_dir"]
    os.dup2(fds["stdin"], 0)
    os.dup2(fds["out_w"], 1)
    os.dup2(fds["err_w"], 2)
    result_fd, nonce_fd = fds["result_fd"], fds["nonce_fd"]
    # Park both above the range first (F_DUPFD takes the lowest free number >= its argument), so neither
    # dup2 below can overwrite the other's source.
    res_parked = fcntl.fcntl(fds["res_w"], fcntl.F_DUPFD, FD_RANGE[1])
    nonce_parked = fcntl.fcntl(fds["nonce_r"], fcntl.F_DUPFD, FD_RANGE[1])
    os.dup2(res_parked, result_fd)
    os.dup2(nonce_parked, nonce_fd)
    keep = sorted({0, 1, 2, result_fd, nonce_fd})
    for low, high in zip(keep, keep[1:] + [1 << 16], strict=True):
        os.closerange(low + 1, high)
    os.setsid()  # its own session, so a kill of "its process group" cannot reach the server
    _set_rlimits(limits)
    if os.geteuid() == 0:
        os.setgroups([])
        os.setgid(config.uid)
        os.setuid(config.uid)
    # NO_NEW_PRIVS was set in the server and is inherited. Without a PID namespace of our own, the job must
    # die with the server; inside one, the namespace's end kills it anyway.
    if not config.own_pid_namespace:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
    if os.environ.get("HOME") != run_dir:
        _set_job_environment(run_dir)  # the server set it once when the run dir is always the same
    os.chdir(run_dir)
    sys.path[0] = run_dir
    sys.path_importer_cache.pop(run_dir, None)  # cached as missing while the server had no run dir
    sys.argv = [spec["code_path"]]
    # sys.stdout/sys.stderr already write to fds 1 and 2 (now the job's pipes) and are empty: the server
    # flushes after every message. stdin is a new reader of the job's stdin (decoding errors replaced).
    sys.stdin = open(0, encoding="utf-8", errors="replace", closefd=False)
    # The runner keeps its own references; `import sandbox` now finds no live state.
    for name in fds["sandbox_modules"]:
        sys.modules.pop(name, None)
    runner.execute(spec, result_fd, nonce_fd, SNAPSHOT)


_MODULES_SEEN: list = [0, ()]  # (len(sys.modules) when last listed, the sandbox modules then)


def _sandbox_modules() -> tuple[str, ...]:
    """The `sandbox` package's modules, listed again only when sys.modules grew or shrank."""
    if _MODULES_SEEN[0] != len(sys.modules):
        names = tuple(m for m in sys.modules if m == "sandbox" or m.startswith("sandbox."))
        _MODULES_SEEN[:] = [len(sys.modules), names]
    return _MODULES_SEEN[1]


def _set_job_environment(run_dir: str) -> None:
    """The whole environment a job sees: nothing from the invoking user (no tokens, no CI variables)."""
    os.environ.clear()
    os.environ.update(PATH=SAFE_PATH, HOME=run_dir, LANG="C.UTF-8", TMPDIR=run_dir)


class _Capture:
    """A capped reader of one pipe."""

    def __init__(self, fd: int, cap: int) -> None:
        self.fd, self.cap, self.data, self.overflow, self.eof = fd, cap, bytearray(), False, False

    def read(self) -> None:
        chunk = os.read(self.fd, 1 << 16)
        if not chunk:
            self.eof = True
            return
        room = self.cap - len(self.data)
        self.data += chunk[: max(room, 0)]
        self.overflow = self.overflow or len(chunk) > room


def _prepare_run_dir(spec: dict, config: WorkerConfig) -> str:
    # A private /tmp is emptied after every job, so the same path serves each run (and keeps compiled tests
    # cacheable, since their file name is part of the code object).
    if config.private_tmp:
        run_dir = PRIVATE_RUN_DIR
        try:
            os.mkdir(run_dir, 0o700)
        except FileExistsError:  # only after a server error; normally wiped already
            shutil.rmtree(run_dir, ignore_errors=True)
            os.mkdir(run_dir, 0o700)
    else:
        run_dir = tempfile.mkdtemp(prefix="sandbox-run-")
    spec["run_dir"] = run_dir
    spec["code_path"] = os.path.join(run_dir, spec["module_name"] + ".py")
    spec["tests_path"] = os.path.join(run_dir, "test_" + spec["module_name"] + ".py")
    files = [(spec["code_path"], spec["code"])]
    if spec.get("tests") is not None:
        files.append((spec["tests_path"], spec["tests"]))
    if spec.get("tests") is not None and spec["style"] != "stdio":
        spec["compiled_tests"] = runner.compile_tests(spec["tests"], spec["tests_path"], spec["style"])
    owner = config.uid if os.geteuid() == 0 else None
    for path, text in files:
        _write_file(path, text, owner)
    if owner is not None:
        os.chown(run_dir, owner, owner)
    return run_dir


def _write_file(path: str, text: str, owner: int | None) -> None:
    # Plain descriptor calls rather than a text file object: the server pays a page fault for every object
    # it touches between forks, and io's layers touch many.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        data = memoryview(text.encode("utf-8"))
        while data:
            data = data[os.write(fd, data) :]
        if owner is not None:
            os.fchown(fd, owner, owner)
    finally:
        os.close(fd)


def kill_leftovers(config: WorkerConfig) -> None:
    """SIGKILL every process the job left behind and reap them."""
    if config.own_pid_namespace:
        try:
            os.kill(-1, signal.SIGKILL)  # everything in this namespace except PID 1 and the server itself
        except OSError:
            pass
    elif os.geteuid() == 0:
        # No PID namespace: kill everything running as this worker's uid, from a helper that has that uid.
        helper = os.fork()
        if helper == 0:
            try:
                os.setuid(config.uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(helper, 0)
    _reap()
    if config.own_pid_namespace:
        # kill() only queues the signal: wait until the namespace holds nobody but init and this server.
        me, deadline = os.getpid(), time.monotonic() + 5.0
        while time.monotonic() < deadline:
            alive = [p for p in os.listdir("/proc") if p.isdigit() and int(p) not in (1, me)]
            if not alive:
                break
            time.sleep(0.001)
            _reap()


def _reap() -> None:
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def wipe(run_dir: str, config: WorkerConfig) -> None:
    """Remove the run directory; with private tmpfs mounts, remove everything the job wrote there too."""
    _remove_run_dir(run_dir)
    if config.own_pid_namespace:
        linux.remove_sysv_ipc()  # the worker's IPC namespace is as private as its PID namespace
    if not config.private_tmp:
        return
    for base in PRIVATE_TMPS:
        try:
            entries = os.listdir(base)
        except OSError:
            continue
        base_dev = os.lstat(base).st_dev
        for name in entries:
            path = os.path.join(base, name)
            if os.lstat(path).st_dev != base_dev or os.path.ismount(path):
                continue  # never delete through a mount point
            if any(k == path or k.startswith(path + "/") for k in config.kept):
                continue  # leads to a read-only view of the Python install (e.g. a venv under /tmp)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass


def _remove_run_dir(run_dir: str) -> None:
    """Usually the run directory holds only the files the server wrote: unlink them; anything else (a
    subdirectory the job made) falls back to rmtree, which never follows links."""
    try:
        for name in os.listdir(run_dir):
            os.unlink(os.path.join(run_dir, name))
        os.rmdir(run_dir)
    except OSError:
        shutil.rmtree(run_dir, ignore_errors=True)


def _nonce_pipe() -> tuple[int, str]:
    """A pipe holding a fresh nonce, and the nonce's SHA-256.

    The runner reads the nonce only after the tests ran, and the server keeps only its hash: the job is a fork
    of the server, so a nonce in any of the server's frames would be in the job's memory too.
    """
    read_end, write_end = os.pipe()
    token = secrets.token_hex(16).encode()
    os.write(write_end, token)
    os.close(write_end)
    return read_end, hashlib.sha256(token).hexdigest()


def run_job(spec: dict, limits: Limits, config: WorkerConfig) -> dict:
    """Run one job in a fresh child and return the Result as a dict."""
    spec = dict(spec)
    expected = verdict.expected_tests(spec["style"], spec.get("tests"), spec["module_name"])
    run_dir = _prepare_run_dir(spec, config)
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    res_r, res_w = os.pipe()
    stdin = os.memfd_create("stdin")
    if spec.get("stdin"):
        os.write(stdin, spec["stdin"].encode())
        os.lseek(stdin, 0, os.SEEK_SET)
    nonce_r, nonce_hash = _nonce_pipe()
    fds = dict(out_w=out_w, err_w=err_w, res_w=res_w, stdin=stdin, nonce_r=nonce_r)
    # Chosen here rather than in the child: every object the child touches costs it a copy-on-write page.
    fds["result_fd"], fds["nonce_fd"] = random.sample(range(*FD_RANGE), 2)
    fds["sandbox_modules"] = _sandbox_modules()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            _job_child(spec, limits, config, fds)
        finally:
            os._exit(71)
    for fd in (out_w, err_w, res_w, stdin, nonce_r):
        os.close(fd)
    out, err = _Capture(out_r, limits.output_bytes), _Capture(err_r, limits.output_bytes)
    report = _Capture(res_r, REPORT_CAP)
    try:
        kill_reason, exit_status, cpu_ms = _supervise(start + limits.timeout_s, out, err, report, pid, config)
    finally:
        for fd in (out_r, err_r, res_r):
            os.close(fd)
        wipe(run_dir, config)
    wall_ms = (time.monotonic() - start) * 1000
    result = verdict.decide(
        style=spec["style"],
        report=bytes(report.data),
        report_overflow=report.overflow,
        nonce_hash=nonce_hash,
        exit_status=exit_status,
        kill_reason=kill_reason,
        expected=expected,
        stdout=bytes(out.data),
        expected_stdout=spec.get("expected_stdout"),
        module_name=spec["module_name"],
        coverage=bool(spec.get("coverage")),
    )
    result.update(
        stdout=out.data.decode("utf-8", "replace"),
        stderr=err.data.decode("utf-8", "replace"),
        stdout_truncated=out.overflow,
        stderr_truncated=err.overflow,
        wall_ms=round(wall_ms, 3),
        cpu_ms=round(cpu_ms, 3),
        isolation=sorted(config.isolation),
    )
    return result


def _supervise(deadline: float, out, err, report, pid: int, config: WorkerConfig):
    """Pump the pipes until the job exits; SIGKILL it on timeout or runaway output.

    Returns (why it was killed or None, its wait status, its CPU ms).
    """
    pidfd = os.pidfd_open(pid)
    kill_reason = None
    try:
        while True:
            open_pipes = [p for p in (out, err, report) if not p.eof]
            ready, _, _ = select.select(
                [pidfd] + [p.fd for p in open_pipes], [], [], max(deadline - time.monotonic(), 0)
            )
            for p in open_pipes:
                if p.fd in ready:
                    p.read()
            if pidfd in ready:
                break
            if out.overflow or err.overflow:
                kill_reason = "output_limit"
            elif report.overflow:
                kill_reason = "report_overflow"
            elif time.monotonic() >= deadline:
                kill_reason = "timeout"
            if kill_reason:
                os.kill(pid, signal.SIGKILL)  # our unreaped child: the pid cannot have been reused
                break
    finally:
        os.close(pidfd)
    _, status, usage = os.wait4(pid, 0)
    kill_leftovers(config)
    # Every writer is dead now (in a PID namespace); drain what they wrote, bounded in case one survived.
    drain_until = time.monotonic() + 0.5
    for p in (out, err, report):
        while (
            not p.eof
            and not p.overflow
            and select.select([p.fd], [], [], max(drain_until - time.monotonic(), 0))[0]
        ):
            p.read()
    if kill_reason is None and (out.overflow or err.overflow):
        kill_reason = "output_limit"  # it exited before the server noticed; the cap was still exceeded
    return kill_reason, status, (usage.ru_utime + usage.ru_stime) * 1000


def read_request(fd: int) -> bytes | None:
    """One request from the host: a fixed-size length header, then exactly that many bytes; None at EOF.

    Reading exactly one request, never more, keeps the next job (the host sends it while this one runs) in the
    pipe rather than in the server's memory, where the forked job could read it.
    """
    header = _read_exactly(fd, REQUEST_HEADER_BYTES)
    if header is None:
        return None
    return _read_exactly(fd, int(header))


def _read_exactly(fd: int, size: int) -> bytes | None:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def main() -> None:
    """Server entry point: a JSON config in argv[1], then framed JSON jobs on stdin, one result per line."""
    config_in = json.loads(sys.argv[1])
    config = setup_worker(config_in["uid"], config_in["bwrap"], config_in["hide"], config_in["keep"])
    # Done once here rather than in every job: inherited by each fork, and never undone.
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)
    if config.private_tmp:
        _set_job_environment(PRIVATE_RUN_DIR)
    # The job's sys.path[0] becomes its run directory; the rest is the interpreter's own (absolute) path.
    sys.path[:] = [PRIVATE_RUN_DIR] + [p for p in sys.path if p and os.path.isabs(p)]
    for name in PRELOAD:
        __import__(name)
    runner.install_unittest_guards()
    SNAPSHOT[:] = runner.take_snapshot()
    # Move everything imported so far out of the collector's reach: forked jobs then do not touch (and copy)
    # those pages when they collect garbage.
    gc.freeze()
    out = sys.stdout.buffer
    out.write(json.dumps({"ready": True, "isolation": config.isolation}).encode() + b"\n")
    out.flush()
    while (frame := read_request(0)) is not None:
        request = json.loads(frame)
        limits = Limits.from_dict(request["limits"])
        try:
            result = run_job(request["job"], limits, config)
        except Exception as exc:  # noqa: BLE001 - a server bug must become a result, not a dead worker
            result = {
                "status": "error",
                "error_type": "SandboxError",
                "message": f"{type(exc).__name__}: {exc}",
            }
        out.write(json.dumps(result).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    main()
