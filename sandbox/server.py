"""The worker's server: reads jobs from the host, has the zygote fork their processes, supervises them, decides.

The server runs inside its own PID, network, mount, IPC and UTS namespaces (made by bubblewrap, or by unshare(2)
when bwrap is missing, with the root then remounted read-only), and never runs a job's code or tests itself. For
each job it makes fresh temporary directories (sandbox/scratch.py), sets the job's memory cgroup, and has the
zygote fork the job's processes: in the judge mode a contestant (the solution, the worker's job uid) and a judge
(the tests, the worker's judge uid), talking over two pipes; in-process one process running both; for stdio one
program whose output goes back to the host, which alone holds the expected output. When the job ends or times out,
every process it left in the namespace is killed, and a worker whose clean-up fails exits so the host replaces it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
import select
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from sandbox import isolation, linux, verdict, zygote
from sandbox.cgroup import JobCgroup
from sandbox.scratch import RUN_DIR, CleanupFailed, Scratch
from sandbox.testcode import compile_tests, expected_tests
from sandbox.types import REQUEST_HEADER_BYTES, Limits

REPORT_CAP = 1 << 20
FD_RANGE = (10, 250)  # the in-process job's report and nonce descriptors get random numbers in this range
LEFTOVER_PATIENCE_S = 5.0


@dataclass
class Worker:
    uid: int  # the contestants' (and in-process jobs') uid
    judge_uid: int
    protections: list[str] = field(default_factory=list)
    private_tmp: bool = False
    # True only when this server is alone in a PID namespace it owns: then every other process there is a job's.
    own_pid_namespace: bool = False
    scratch: Scratch | None = None
    zygote: zygote.ZygoteClient | None = None
    cgroup: JobCgroup | None = None
    broken: str | None = None  # why the worker must be replaced (its clean-up failed)
    judge: PersistentJudge | None = None


# The judge kept for many jobs: no CPU limit (it would add up over jobs; the server's clock bounds each job).
JUDGE_LIMITS = {"memory_mb": 4096, "timeout_s": 1_000_000, "file_mb": 64, "max_processes": 64}


@dataclass
class PersistentJudge:
    """A judge process that runs the tests of many jobs (see judge.serve); replaced after any job it did not end."""

    pid: int
    pidfd: int
    sock: socket.socket

    @classmethod
    def start(cls, worker: Worker) -> PersistentJudge:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        devnull = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        try:
            process = {"role": "judge_server", "uid": worker.judge_uid, "limits": JUDGE_LIMITS, "run_dir": "/",
                       "fds": {"0": 0, "1": 0, "2": 0, "3": 1}, "sock_fd": 3}  # fmt: skip
            ((pid, pidfd),) = worker.zygote.spawn([process], [devnull, theirs.fileno()])
        finally:
            os.close(devnull)
            theirs.close()
        return cls(pid, pidfd, ours)

    def alive(self) -> bool:
        return not select.select([self.pidfd], [], [], 0)[0]

    def give(self, run_dir: str, fds: list[int]) -> None:
        socket.send_fds(self.sock, [json.dumps({"run_dir": run_dir}).encode()], fds)

    def stop(self, worker: Worker) -> None:
        try:
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if worker.zygote is not None:
            worker.zygote.reap([self.pid])
        os.close(self.pidfd)
        self.sock.close()


def _cover_homes(hidden: list[str], keep: list[str]) -> None:
    """Empty tmpfs mounts over the home directories; the kept paths inside them shown again, read-only."""
    pinned = [(path, os.open(path, os.O_PATH | os.O_DIRECTORY)) for path in keep if any(
        path == h or path.startswith(h + "/") for h in hidden)]  # fmt: skip
    for home in hidden:
        linux.mount("tmpfs", home, "tmpfs", linux.MS_NOSUID | linux.MS_NODEV, "mode=755,size=1m")
    for path, fd in pinned:
        os.makedirs(path, mode=0o755, exist_ok=True)
        linux.mount(f"/proc/self/fd/{fd}", path, None, linux.MS_BIND | linux.MS_REC)
        linux.mount(None, path, None, linux.MS_REMOUNT | linux.MS_BIND | linux.MS_RDONLY)
        os.close(fd)


def _enter_namespaces(worker: Worker, hidden: list[str], keep: list[str]) -> None:
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
    try:
        linux.make_tree_readonly("/")  # every mount of the host, in this namespace only
        worker.protections.append("readonly_root")
    except OSError:
        pass
    linux.mount("proc", "/proc", "proc", linux.MS_NOSUID | linux.MS_NODEV | linux.MS_NOEXEC)
    _cover_homes(hidden, keep)
    worker.protections += ["net_namespace", "pid_namespace", "private_tmp", "hidden_home"]
    worker.private_tmp = True
    worker.own_pid_namespace = True


def setup_worker(config: dict) -> Worker:
    worker = Worker(uid=config["uid"], judge_uid=config["judge_uid"])
    root = os.geteuid() == 0
    if config["bwrap"]:
        worker.protections += ["net_namespace", "pid_namespace", "readonly_root", "hidden_home"]
        worker.own_pid_namespace = os.getpid() <= 2
        worker.private_tmp = root  # the tmpfs mounts are made here, per job, which needs root
        if root:
            worker.protections.append("private_tmp")
    elif root:
        _enter_namespaces(worker, config["hide"], config["keep"])
    else:
        linux.prctl(linux.PR_SET_PDEATHSIG, signal.SIGKILL)
    if root:
        worker.protections += ["unprivileged_uid", "private_ipc"]
    try:
        linux.fresh_keyrings(
            clear_user_keyrings=False
        )  # the server, and so the zygote, leave the host's keyring
        if root:
            worker.protections.append("fresh_keyring")
    except OSError:
        pass
    worker.protections += ["rlimits", "no_new_privs", "fd_capture"]
    return worker


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


class _Fds:
    """Descriptors made for one job; whatever is left open is closed at the end, however the job went."""

    def __init__(self) -> None:
        self.open: set[int] = set()

    def pipe(self) -> tuple[int, int]:
        r, w = os.pipe2(os.O_CLOEXEC)
        self.open |= {r, w}
        return r, w

    def add(self, fd: int) -> int:
        self.open.add(fd)
        return fd

    def close(self, *fds: int) -> None:
        for fd in fds:
            if fd in self.open:
                self.open.discard(fd)
                os.close(fd)

    def close_all(self) -> None:
        self.close(*list(self.open))


def _stdin_fd(fds: _Fds, text: str | None) -> int:
    fd = fds.add(os.memfd_create("stdin", os.MFD_CLOEXEC))
    if text:
        data = memoryview(text.encode())
        while data:
            data = data[os.write(fd, data) :]
        os.lseek(fd, 0, os.SEEK_SET)
    return fd


def _nonce_pipe(fds: _Fds) -> tuple[int, str]:
    """A pipe holding a fresh nonce, and the nonce's SHA-256 (the only thing the server keeps of it)."""
    read_end, write_end = fds.pipe()
    token = secrets.token_hex(16).encode()
    os.write(write_end, token)
    fds.close(write_end)
    return read_end, hashlib.sha256(token).hexdigest()


def run_job(request: dict, worker: Worker) -> dict:
    """Run one job and return its Result fields as a dict."""
    spec, limits, mode = request["job"], Limits.from_dict(request["limits"]), request["isolation"]
    style, name, tests = spec["style"], spec["module_name"], spec.get("tests")
    tests_name = f"test_{name}.py"
    if style != "stdio":
        compiled, error = compile_tests(tests, tests_name, style, mode == "in_process")
        if error is not None:
            return verdict.tests_do_not_compile(error)
    assert worker.scratch is not None and worker.zygote is not None
    run_dir = worker.scratch.fresh()
    code_path = worker.scratch.write(f"{name}.py", spec["code"])
    if worker.cgroup is not None:
        worker.cgroup.prepare(limits.memory_mb << 20)
    fds = _Fds()
    try:
        return _run(
            spec,
            limits,
            mode,
            worker,
            fds,
            run_dir,
            code_path,
            tests_name,
            compiled if style != "stdio" else b"",
        )
    finally:
        fds.close_all()
        try:
            worker.scratch.done()
        except CleanupFailed as exc:
            worker.broken = str(exc)


def _run(spec: dict, limits: Limits, mode: str, worker: Worker, fds: _Fds, run_dir: str, code_path: str,
         tests_name: str, compiled: bytes) -> dict:  # fmt: skip
    style, name = spec["style"], spec["module_name"]
    out_r, out_w = fds.pipe()
    err_r, err_w = fds.pipe()
    rep_r, rep_w = fds.pipe()
    limits_dict = {"memory_mb": limits.memory_mb, "timeout_s": limits.timeout_s, "file_mb": limits.file_mb,
                   "max_processes": limits.max_processes}  # fmt: skip
    sent: list[int] = []  # descriptors passed to the zygote, by index

    def passing(fd: int) -> int:
        sent.append(fd)
        return len(sent) - 1

    job = {"uid": worker.uid, "limits": limits_dict, "run_dir": run_dir}
    keeper: PersistentJudge | None = None
    judge_fds: list[int] = []
    cgroup = {"6": passing(worker.cgroup.procs_fd)} if worker.cgroup is not None else {}
    std = {"0": passing(_stdin_fd(fds, spec.get("stdin"))), "1": passing(out_w), "2": passing(err_w)}
    coverage = bool(spec.get("coverage"))
    nonce_hash = None
    if style == "stdio":
        payload = fds.add(
            zygote.write_payload({"code": spec["code"], "code_path": code_path, "coverage": coverage})
        )
        processes = [dict(job, role="program", fds={**std, "5": passing(payload), "7": passing(rep_w), **cgroup},
                          payload_fd=5, report_fd=7, cgroup_fd=6 if cgroup else None)]  # fmt: skip
    elif mode == "judge":
        to_contestant_r, to_contestant_w = fds.pipe()
        to_judge_r, to_judge_w = fds.pipe()
        contestant_payload = {"code": spec["code"], "module_name": name, "code_path": code_path, "style": style,
                              "coverage": coverage}  # fmt: skip
        judge_payload = {"style": style, "module_name": name, "tests": spec["tests"], "tests_path": tests_name,
                         "coverage": coverage}  # fmt: skip
        cpay = fds.add(zygote.write_payload(contestant_payload))
        jpay = fds.add(zygote.write_payload(judge_payload, compiled))
        devnull = fds.add(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        if not isolation.needs_fresh_judge(style, spec["tests"]):
            keeper = worker.judge if worker.judge is not None and worker.judge.alive() else None
            if keeper is None:
                if worker.judge is not None:
                    worker.judge.stop(worker)
                keeper = worker.judge = PersistentJudge.start(worker)
            judge_fds = [to_judge_r, to_contestant_w, out_w, err_w, rep_w, jpay]
        processes = [
            dict(job, role="contestant", fds={**std, "3": passing(to_contestant_r), "4": passing(to_judge_w),
                 "5": passing(cpay), **cgroup}, calls_in=3, calls_out=4, payload_fd=5, cgroup_fd=6 if cgroup else None),
            dict(job, role="judge", uid=worker.judge_uid, fds={"0": passing(devnull), "1": std["1"], "2": std["2"],
                 "3": passing(to_judge_r), "4": passing(to_contestant_w), "5": passing(jpay), "6": passing(rep_w)},
                 calls_in=3, calls_out=4, payload_fd=5, report_fd=6),
        ]  # fmt: skip
        if keeper is not None:
            processes.pop()  # the worker's kept judge runs the tests; only the contestant is forked
    else:
        nonce_r, nonce_hash = _nonce_pipe(fds)
        report_fd, nonce_fd = random.sample(range(*FD_RANGE), 2)
        payload = fds.add(zygote.write_payload(
            {"code": spec["code"], "module_name": name, "code_path": code_path, "style": style, "coverage": coverage,
             "tests": spec["tests"], "tests_path": tests_name}, compiled))  # fmt: skip
        worker.scratch.write(tests_name, spec["tests"])
        processes = [dict(job, role="in_process", fds={**std, "5": passing(payload), str(report_fd): passing(rep_w),
                          str(nonce_fd): passing(nonce_r), **cgroup}, payload_fd=5, report_fd=report_fd,
                          nonce_fd=nonce_fd, cgroup_fd=6 if cgroup else None)]  # fmt: skip
    start = time.monotonic()
    # Only the descriptors of the processes actually forked go to the zygote (the kept judge gets its own).
    used = sorted({i for p in processes for i in p["fds"].values()})
    renumber = {old: new for new, old in enumerate(used)}
    for p in processes:
        p["fds"] = {t: renumber[i] for t, i in p["fds"].items()}
    spawned = worker.zygote.spawn(processes, [sent[i] for i in used])
    if keeper is not None:
        keeper.give(run_dir, judge_fds)
    for fd in set(sent) | set(judge_fds):
        if fd not in (out_r, err_r, rep_r) and not (worker.cgroup and fd == worker.cgroup.procs_fd):
            fds.close(fd)
    pids = [pid for pid, _ in spawned]
    pidfds = [fds.add(pidfd) for _, pidfd in spawned]
    out, err = _Capture(out_r, limits.output_bytes), _Capture(err_r, limits.output_bytes)
    report = _Capture(rep_r, REPORT_CAP)
    # The job is over when the process that decides (the judge, or the only process) has exited, or the kept
    # judge has written and closed the report.
    decider = None if keeper is not None else pidfds[-1]
    try:
        kill_reason = _supervise(start + limits.timeout_s, out, err, report, decider)
        if kill_reason is None:
            # Once the tests are done the contestant's channel is closed and it ends by itself: give it a moment,
            # so that a process that ended on its own is not reported as killed.
            _wait_for_exit(pidfds, min(time.monotonic() + 0.5, start + limits.timeout_s), out, err)
    finally:
        for pidfd in pidfds:
            try:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        statuses = worker.zygote.reap(pids)
        if keeper is not None and not report.eof:
            keeper.stop(worker)  # it did not finish this job: a new one for the next
            worker.judge = None
        kill_leftovers(worker)
    _drain(out, err, report)
    wall_ms = (time.monotonic() - start) * 1000
    if kill_reason is None and (out.overflow or err.overflow):
        kill_reason = "output_limit"  # it exited before the server noticed; the cap was still exceeded
    status_of = [statuses.get(pid, (None, 0.0)) for pid in pids]
    memory = worker.cgroup is not None and worker.cgroup.killed_for_memory()
    common = dict(kill_reason=kill_reason, memory_killed=memory, style=style, coverage=coverage)
    if style == "stdio":
        result = verdict.decide_program(report=bytes(report.data), exit_status=status_of[0][0], **common)
    elif mode == "judge":
        result = verdict.decide_judged(
            report=bytes(report.data), contestant_status=status_of[0][0],
            judge_status=status_of[1][0] if len(status_of) > 1 else None,
            expected=expected_tests(style, spec["tests"]), module_name=name, **common,
        )  # fmt: skip
    else:
        result = verdict.decide_in_process(
            records=bytes(report.data), report_overflow=report.overflow, nonce_hash=nonce_hash,
            exit_status=status_of[0][0], expected=expected_tests(style, spec["tests"]), module_name=name, **common,
        )  # fmt: skip
    result.update(
        stdout=out.data.decode("utf-8", "replace"),
        stderr=err.data.decode("utf-8", "replace"),
        stdout_truncated=out.overflow,
        stderr_truncated=err.overflow,
        wall_ms=round(wall_ms, 3),
        cpu_ms=round(sum(cpu for _, cpu in status_of), 3),
        protections=sorted(worker.protections),
    )
    return result


def _supervise(
    deadline: float, out: _Capture, err: _Capture, report: _Capture, decider: int | None
) -> str | None:
    """Pump the pipes until the deciding process exits (`decider`, a pidfd) or, without one, until the report
    ends; why the job was cut short, or None."""
    while True:
        open_pipes = [p for p in (out, err, report) if not p.eof]
        watched = ([decider] if decider is not None else []) + [p.fd for p in open_pipes]
        ready, _, _ = select.select(watched, [], [], max(deadline - time.monotonic(), 0))
        for p in open_pipes:
            if p.fd in ready:
                p.read()
        if (decider is not None and decider in ready) or (decider is None and report.eof):
            return None
        if out.overflow or err.overflow:
            return "output_limit"
        if report.overflow:
            return "report_overflow"
        if time.monotonic() >= deadline:
            return "timeout"


def _wait_for_exit(pidfds: list[int], until: float, *captures: _Capture) -> None:
    waiting = list(pidfds)
    while waiting and time.monotonic() < until:
        open_pipes = [c for c in captures if not c.eof]
        ready, _, _ = select.select(
            waiting + [c.fd for c in open_pipes], [], [], max(until - time.monotonic(), 0)
        )
        for c in open_pipes:
            if c.fd in ready:
                c.read()
        waiting = [p for p in waiting if p not in ready]


def _drain(*captures: _Capture) -> None:
    """After every writer is dead (in a PID namespace): what they wrote, bounded in case one survived."""
    until = time.monotonic() + 0.5
    for p in captures:
        while (
            not p.eof
            and not p.overflow
            and select.select([p.fd], [], [], max(until - time.monotonic(), 0))[0]
        ):
            p.read()


def kill_leftovers(worker: Worker) -> None:
    """SIGKILL every process the job left behind, and wait until they are gone (or mark the worker broken)."""
    if worker.own_pid_namespace:
        keep = {
            1,
            os.getpid(),
            worker.zygote.pid if worker.zygote else -1,
            worker.judge.pid if worker.judge else -1,
        }
        deadline = time.monotonic() + LEFTOVER_PATIENCE_S
        while True:
            alive = [
                pid for pid in _namespace_pids() if pid not in keep and _state(pid) not in ("Z", "X", None)
            ]
            _reap_orphans()
            if not alive:
                return
            for pid in alive:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if time.monotonic() > deadline:
                worker.broken = f"{len(alive)} process(es) of the job could not be killed"
                return
            time.sleep(0.001)
    elif os.geteuid() == 0:
        # No PID namespace: kill everything running as the job's uid, from a helper that has that uid.
        for uid in (worker.uid,):
            helper = os.fork()
            if helper == 0:
                try:
                    os.setuid(uid)
                    os.kill(-1, signal.SIGKILL)
                finally:
                    os._exit(0)
            os.waitpid(helper, 0)


def _namespace_pids() -> list[int]:
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except (OSError, IndexError):
        return None


def _reap_orphans() -> None:
    """As PID 1 (without bwrap), orphans of the job are this server's children: reap them."""
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return
        except ChildProcessError:
            return


def read_request(fd: int) -> bytes | None:
    """One request from the host: a fixed-size length header, then exactly that many bytes; None at EOF."""
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


def _write_line(data: bytes) -> None:
    view = memoryview(data + b"\n")
    while view:
        view = view[os.write(1, view) :]


def main() -> None:
    """Server entry point: a JSON config in argv[1], then framed JSON jobs on stdin, one result per line."""
    # A host that dies (SIGTERM, Ctrl-C) closes the pipes: this process then ends quietly, never with a traceback.
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    try:
        _serve(json.loads(sys.argv[1]))
    except (BrokenPipeError, ConnectionResetError, KeyboardInterrupt):
        pass
    os._exit(0)


def _serve(config: dict) -> None:
    worker = setup_worker(config)
    linux.prctl(linux.PR_SET_NO_NEW_PRIVS, 1)  # done once here, inherited by every process forked later
    worker.scratch = Scratch(worker.private_tmp, config["keep"])
    if worker.private_tmp:
        worker.scratch.mount()  # the host's temporary directories are never seen by any job
    if config.get("cgroup_fd") is not None:
        try:
            worker.cgroup = JobCgroup(config["cgroup_fd"])
            worker.protections.append("memory_cgroup")
        except OSError:
            worker.cgroup = None
    worker.zygote = zygote.start({"run_dir": RUN_DIR if worker.private_tmp else "/tmp",
                                  "own_pid_namespace": worker.own_pid_namespace})  # fmt: skip
    _write_line(json.dumps({"ready": True, "protections": worker.protections}).encode())
    while (frame := read_request(0)) is not None:
        request = json.loads(frame)
        try:
            result = run_job(request, worker)
        except Exception as exc:  # noqa: BLE001 - a server bug must become a result, not a dead worker
            result = {
                "status": "error",
                "error_type": "SandboxError",
                "message": f"{type(exc).__name__}: {exc}",
            }
            worker.broken = worker.broken or f"{type(exc).__name__}: {exc}"
        if worker.broken:
            result["worker_replaced"] = worker.broken
        _write_line(json.dumps(result).encode())
        if worker.broken:
            return  # the host starts a new worker for the next job
