"""The zygote: a warm interpreter that forks every process of every job and never receives anything of a job.

The server forks it at start-up, before reading any request. It imports what jobs need, takes the in-process
runner's snapshot, and then only answers two commands from the server on a socket: "spawn" (fork processes, each
with the descriptors sent along, a uid, limits and a role) and "reap" (wait for them; their status and CPU time).
Code, tests and expected output reach a job's processes through the descriptors only, after the fork, so no job
can find another job's tests (or its own, in the judge mode) in the memory it was forked from.

Each spawned process isolates itself before it runs anything of the job: its own session, the job's memory
cgroup, a new IPC namespace (SysV IPC and POSIX message queues), rlimits, the job's uid (the judge's for a judge),
empty keyrings, and a minimal environment.
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import resource
import select
import signal
import socket
import sys
from typing import NoReturn

from sandbox import linux

# Imported once here so each forked job starts warm (what most solutions and test files import). Nothing here
# imports `threading`: its after-fork hook alone costs every forked process about 100 page faults.
PRELOAD = ("collections", "itertools", "functools", "math", "re", "heapq", "bisect", "string", "random", "typing",
           "hashlib", "fractions", "decimal", "statistics", "copy", "dataclasses", "datetime", "unittest", "io",
           "traceback", "json", "operator")  # fmt: skip
SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_PARKED = 300  # received descriptors are moved at or above this before being placed


def import_path(run_dir: str) -> tuple[list[str], list[str]]:
    """(sys.path for jobs, the directories of the Python installation's own modules).

    The worker runs with -S, so site.main() and the import lines of .pth files never run in it (they import
    threading and more into every job); the site-packages directories and the directory lines of their .pth
    files are added here instead, so jobs import what the host's interpreter can.
    """
    import site
    import sysconfig

    install = [p for p in {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]} if p]
    site_dirs = [d for d in site.getsitepackages(_prefixes()) if os.path.isdir(d)]
    extra = []
    for directory in site_dirs:
        if not os.path.isdir(directory):
            continue
        extra.append(directory)
        for name in sorted(os.listdir(directory)):
            if not name.endswith(".pth"):
                continue
            try:
                with open(os.path.join(directory, name), encoding="utf-8") as f:
                    lines = f.read().splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            for line in lines:
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    path = os.path.join(directory, line)
                    if os.path.isdir(path):
                        extra.append(os.path.realpath(path))
    stdlib = [p for p in sys.path if p and os.path.isabs(p)]
    paths = [run_dir] + list(dict.fromkeys(stdlib + extra))
    return paths, install + site_dirs


def _prefixes() -> list[str]:
    """The prefixes whose site-packages jobs see: a virtual environment's (pyvenv.cfg, as site.venv() reads it)
    before the base installation's, unless the venv excludes the system site-packages."""
    exe_dir = os.path.dirname(os.path.abspath(sys.executable))
    venv_prefix = os.path.dirname(exe_dir)
    for conf in (os.path.join(exe_dir, "pyvenv.cfg"), os.path.join(venv_prefix, "pyvenv.cfg")):
        if os.path.isfile(conf):
            system_site = "true"
            with open(conf, encoding="utf-8") as f:
                for line in f:
                    key, _, value = line.partition("=")
                    if key.strip().lower() == "include-system-site-packages":
                        system_site = value.strip().lower()
            sys.prefix = sys.exec_prefix = venv_prefix
            return [venv_prefix] + ([sys.base_prefix] if system_site == "true" else [])
    return [sys.prefix]


class ZygoteClient:
    """The server's end of the socket to the zygote. The zygote reports each child's exit as it reaps it (no
    request needed): those reports are kept in `exits` as they are read."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self.sock, self.pid = sock, pid
        self.exits: dict[int, tuple[int | None, float]] = {}

    def _next(self, want_fds: int = 0) -> tuple[dict, list[int]]:
        data, fds, _, _ = socket.recv_fds(self.sock, 1 << 16, max(want_fds, 1))
        if not data:
            raise OSError("the zygote is gone")
        message = json.loads(data)
        for pid, status, cpu in message.get("exited", ()):
            self.exits[pid] = (status, cpu)
        return message, fds

    def spawn(self, processes: list[dict], fds: list[int]) -> list[tuple[int, int]]:
        """Fork one process per entry; [(pid, pidfd)]. Raises OSError if the zygote is gone."""
        socket.send_fds(self.sock, [json.dumps({"spawn": processes}).encode()], fds)
        while True:
            message, pidfds = self._next(len(processes))
            if "pids" in message:
                break
        pids = message["pids"]
        if len(pids) != len(processes) or len(pidfds) != len(processes):
            for fd in pidfds:
                os.close(fd)
            raise OSError(f"the zygote could not start the job's processes: {message.get('error')}")
        return list(zip(pids, pidfds, strict=True))

    def reap(self, pids: list[int]) -> dict[int, tuple[int | None, float]]:
        """Wait for the processes (killed or exiting) to be reported; pid -> (wait status, CPU ms)."""
        while not all(pid in self.exits for pid in pids):
            self._next()
        return {pid: self.exits.pop(pid) for pid in pids}


def start(config: dict) -> ZygoteClient:
    """Fork the zygote (from the server, before any job); it never returns in the child."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    pid = os.fork()
    if pid == 0:
        try:
            ours.close()
            main(theirs, config)
        finally:
            os._exit(70)
    theirs.close()
    return ZygoteClient(ours, pid)


def main(sock: socket.socket, config: dict) -> NoReturn:
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # dies with the server
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)  # the host's pipes belong to the server alone
    os.dup2(devnull, 1)
    os.close(devnull)
    paths, install = import_path(config["run_dir"])
    sys.path[:] = paths
    _job_environment(config["run_dir"])
    sys.stdin.reconfigure(errors="replace")  # a job's stdin is decoded leniently
    for name in PRELOAD:
        __import__(name)
    from sandbox import contestant, coverage, judge, runner  # noqa: F401 - imported here, warm for every job

    runner.prepare_zygote(install)
    # Everything imported so far moves out of the collector's reach: forked jobs then do not touch (and copy)
    # those pages when they collect garbage.
    gc.freeze()
    # Children are reaped as they exit and reported at once, so the server never has to ask.
    wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, _ignore)
    while True:
        ready, _, _ = select.select([sock, wake_r], [], [])
        if wake_r in ready:
            try:
                os.read(wake_r, 512)
            except BlockingIOError:
                pass
            _report_exits(sock)
        if sock not in ready:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(sock, 1 << 16, 64)
        except OSError:
            os._exit(0)
        if not data:
            os._exit(0)
        request = json.loads(data)
        if "spawn" in request:
            _spawn_all(sock, request["spawn"], fds, config)
        for fd in fds:
            os.close(fd)


def _ignore(*_: object) -> None:
    """SIGCHLD only needs to wake the loop (through the wakeup descriptor)."""


def _report_exits(sock: socket.socket) -> None:
    exited = []
    while True:
        try:
            pid, status, usage = os.wait4(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        exited.append([pid, status, (usage.ru_utime + usage.ru_stime) * 1000])
    if exited:
        sock.sendall(json.dumps({"exited": exited}).encode())


def _spawn_all(sock: socket.socket, processes: list[dict], fds: list[int], config: dict) -> None:
    pids, pidfds = [], []
    try:
        for process in processes:
            pid = os.fork()
            if pid == 0:
                try:
                    _become(process, fds, config)
                except BaseException:  # noqa: BLE001 - a set-up failure: shown in the job's stderr
                    import traceback

                    os.write(2, traceback.format_exc().encode())
                finally:
                    os._exit(71)
            pids.append(pid)
            pidfds.append(os.pidfd_open(pid))
    except OSError as exc:
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        for fd in pidfds:
            os.close(fd)
        sock.sendall(json.dumps({"pids": [], "error": str(exc)}).encode())
        return
    socket.send_fds(sock, [json.dumps({"pids": pids}).encode()], pidfds)
    for fd in pidfds:
        os.close(fd)


def _place(targets: dict[int, int]) -> None:
    """Put each received descriptor at its number (target -> source) and close every other one."""
    # Parked first (F_DUPFD takes the lowest free number at or above its argument), so that no dup2 below can
    # overwrite a source another target still needs.
    parked = {target: fcntl.fcntl(source, fcntl.F_DUPFD, _PARKED) for target, source in targets.items()}
    for target, source in parked.items():
        os.dup2(source, target)
    keep = sorted(targets)
    for low, high in zip([-1] + keep, keep + [1 << 16], strict=True):
        if low + 1 < high:  # os.closerange(n, n) would close everything from n on
            os.closerange(low + 1, high)


def _set_rlimits(limits: dict, judge: bool) -> None:
    memory = max(limits["memory_mb"], 2048) if judge else limits["memory_mb"]
    for which, value in (
        (resource.RLIMIT_AS, memory << 20),
        (resource.RLIMIT_CPU, int(limits["timeout_s"]) + 1),
        (resource.RLIMIT_FSIZE, limits["file_mb"] << 20),
        (resource.RLIMIT_CORE, 0),
        (resource.RLIMIT_NOFILE, 256),
        (resource.RLIMIT_NPROC, limits["max_processes"]),
    ):
        try:
            resource.setrlimit(which, (value, value))
        except (ValueError, OSError):
            # An unprivileged worker cannot raise a hard limit; lowering the soft one still contains the run.
            soft, hard = resource.getrlimit(which)
            if hard == resource.RLIM_INFINITY or value <= hard:
                resource.setrlimit(which, (value, hard))


def _become(process: dict, received: list[int], config: dict) -> NoReturn:
    """In the forked process: isolate, drop privileges, read the payload, then hand over to the role."""
    signal.set_wakeup_fd(-1)  # the zygote's SIGCHLD handling is not the job's
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    role = process["role"]
    targets = {int(t): received[i] for t, i in process["fds"].items()}
    _place(targets)
    os.setsid()  # its own session, so a kill of "its process group" cannot reach the server
    root = os.geteuid() == 0
    untrusted = role not in ("judge", "judge_server")
    cgroup_fd = process.get("cgroup_fd")
    if untrusted and cgroup_fd is not None:
        os.write(cgroup_fd, b"0")  # join the job's memory cgroup (the descriptor was opened by root)
        os.close(cgroup_fd)
    if untrusted and root:
        linux.unshare(linux.CLONE_NEWIPC)  # SysV IPC and POSIX message queues of this job only
    _set_rlimits(process["limits"], judge=not untrusted)
    uid = process["uid"]
    if root:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)
    if untrusted:
        try:
            linux.fresh_keyrings(clear_user_keyrings=root)
        except OSError:
            pass  # reported as a missing protection by the server's start-up probe
    if not config["own_pid_namespace"]:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)  # after the uid change, which clears it
    if not untrusted:
        linux.prctl(linux.PR_SET_DUMPABLE, 0)  # no other process of any uid may read the judge's memory
    os.umask(0o022)
    run_dir = process["run_dir"]
    if os.environ.get("HOME") != run_dir:
        _job_environment(run_dir)  # the zygote set it once when the run dir is always the same
    os.chdir(run_dir)
    sys.path[0] = run_dir
    sys.path_importer_cache.pop(run_dir, None)  # cached as missing while the zygote had no run dir
    # sys.stdin, sys.stdout and sys.stderr already read and write fds 0, 1 and 2 (now the job's) and hold nothing:
    # the zygote never reads or prints.
    if role == "judge_server":
        from sandbox import judge

        judge.serve(process["sock_fd"])
    payload, compiled = read_payload(process["payload_fd"])
    sys.argv = [payload.get("code_path", "")]
    if role == "contestant":
        from sandbox import contestant

        contestant.main(payload, process["calls_in"], process["calls_out"])
    elif role == "program":
        from sandbox import contestant

        contestant.run_program(payload, process["report_fd"])
    elif role == "judge":
        from sandbox import judge

        judge.run(payload, compiled, process["calls_in"], process["calls_out"], process["report_fd"])
    elif role == "in_process":
        from sandbox import runner

        runner.execute(payload, compiled, process["report_fd"], process["nonce_fd"])
    os._exit(72)


def _job_environment(run_dir: str) -> None:
    """The whole environment a job sees: nothing from the invoking user (no tokens, no CI variables)."""
    os.environ.clear()
    os.environ.update(PATH=SAFE_PATH, HOME=run_dir, LANG="C.UTF-8", TMPDIR=run_dir)


def read_payload(fd: int) -> tuple[dict, bytes]:
    """The job's payload from its memfd: a JSON line, then the marshalled test code (if any)."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    os.close(fd)
    data = b"".join(chunks)
    header, _, compiled = data.partition(b"\n")
    return json.loads(header), compiled


def write_payload(payload: dict, compiled: bytes = b"") -> int:
    """A memfd holding a job's payload for one of its processes (read by read_payload after the fork)."""
    fd = os.memfd_create("payload", os.MFD_CLOEXEC)
    data = memoryview(json.dumps(payload).encode() + b"\n" + compiled)
    while data:
        data = data[os.write(fd, data) :]
    return fd
