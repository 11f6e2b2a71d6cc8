"""The adversarial corpus (tests/sandbox_cases/corpus.py): hostile programs, each checked for its status and for an
unaffected host, judged and in-process, with bubblewrap and in the fallback without it.

After every case: canaries outside the run directory are unchanged (a root-owned directory included, for jobs
that plant symlinks), nothing appeared in the host's /run/lock or /dev/shm, no process the job started is alive,
no connection reached a listener on the host's loopback, no secret leaked into the result (an environment token,
a key in the host's session keyring), and the next honest job in the same (single) worker still passes.
"""

from __future__ import annotations

import ctypes
import os
import secrets
import shutil
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from sandbox import Sandbox
from tests.sandbox_cases.corpus import CASES, LIMITS, TIMEOUT_LIMITS, Case
from tests.sandbox_cases.helpers import HONEST_CODE, HONEST_TESTS, quiet_sandbox, sandbox_processes

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the full boundary needs root (CI runs as root)")

SETUPS = ["bwrap", "fallback"] if shutil.which("bwrap") else ["fallback"]
# Every case in both modes where bubblewrap is installed; in the fallback (no bubblewrap), every case in the
# default mode, the judge (the in-process mode adds nothing there that the bubblewrap runs do not cover).
RUNS = [(case, mode, setup) for case in CASES for mode in case.modes() for setup in SETUPS
        if setup == SETUPS[0] or mode == "judge"]  # fmt: skip


def _add_session_key(description: str, secret: str) -> int:
    """Put a key in this (the host's) session keyring, as a user's login session might hold one."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    data = secret.encode()
    return libc.syscall(
        248, b"user", description.encode(), data, len(data), -3
    )  # add_key, KEY_SPEC_SESSION_KEYRING


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """Canaries, secrets (a home file, an environment token, a session key), a loopback listener, sandboxes."""
    base = f"/var/lib/sandbox-canary-{os.getpid()}"
    os.makedirs(base, mode=0o755, exist_ok=True)
    canary = os.path.join(base, "canary.txt")
    open_canary = os.path.join(base, "world-writable.txt")
    for path in (canary, open_canary):
        with open(path, "w") as f:
            f.write("original\n")
    os.chmod(open_canary, 0o666)
    tmp_canary = str(tmp_path_factory.mktemp("canary") / "host-tmp.txt")
    with open(tmp_canary, "w") as f:
        f.write("original\n")
    os.chmod(os.path.dirname(tmp_canary), 0o777)
    os.chmod(tmp_canary, 0o666)
    token = secrets.token_hex(16)
    home = os.path.expanduser("~")
    secret = os.path.join(home, f".sandbox-test-secret-{os.getpid()}")
    with open(secret, "w") as f:
        f.write(token)
    os.chmod(secret, 0o644)  # readable by anyone who can see it: only hiding the home protects it
    key_token = secrets.token_hex(16)
    _add_session_key(f"sandbox-test-{os.getpid()}", key_token)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    os.environ["SANDBOX_TEST_TOKEN"] = token
    contexts, boxes = [], {}
    for setup in SETUPS:
        for _ in range(2):  # two single-worker sandboxes per setup: the corpus runs on both at once
            context = quiet_sandbox(workers=1, limits=LIMITS, use_bwrap=setup == "bwrap")
            contexts.append(context)
            boxes.setdefault(setup, []).append(context.__enter__())
    values = dict(canary=canary, open_canary=open_canary, tmp_canary=tmp_canary, secret=secret,
                  port=listener.getsockname()[1], canary_dir=base, token8=token[:8])  # fmt: skip
    yield dict(boxes=boxes, token=token, key_token=key_token, listener=listener, values=values, base=base)
    for context in contexts:
        context.__exit__(None, None, None)
    os.environ.pop("SANDBOX_TEST_TOKEN", None)
    listener.close()
    os.remove(secret)
    shutil.rmtree(base, ignore_errors=True)


def _fill(text: str | None, values: dict) -> str | None:
    if text is None:
        return None
    for key, value in values.items():
        text = text.replace("{" + key + "!r}", repr(value)).replace("{" + key + "}", str(value))
    return text


def _host_findings(host: dict, box: Sandbox) -> list[str]:
    """What a job changed on the host, or left running."""
    found, values = [], host["values"]
    for key in ("canary", "tmp_canary", "open_canary"):
        with open(values[key]) as f:
            if f.read() != "original\n":
                found.append(f"{key} was changed")
    if sorted(os.listdir(host["base"])) != ["canary.txt", "world-writable.txt"]:
        found.append(f"files appeared in {host['base']}")
    for leftover in (f"/run/lock/sandbox-{values['token8']}", f"/dev/shm/sandbox-{values['token8']}"):
        if os.path.exists(leftover):
            found.append(f"{leftover} reached the host")
    if sandbox_processes(box.uids):
        found.append("a process started by the job is still alive")
    return found


def _run_one(case: Case, mode: str, box: Sandbox, host: dict) -> dict:
    values = host["values"]
    limits = case.limits or (TIMEOUT_LIMITS if case.expected(mode) == "timeout" else LIMITS)
    stdio = case.style == "stdio"
    result = box.run(
        _fill(case.code, values), _fill(case.tests, values), case.style,
        case.stdin if stdio else None, _fill(case.expected_stdout, values) if stdio else None,
        limits=limits, isolation=mode if not stdio else None,
    )  # fmt: skip
    findings = _host_findings(host, box)
    try:
        host["listener"].accept()
        findings.append("a connection reached the host's loopback listener")
    except BlockingIOError:
        pass
    honest = box.run(HONEST_CODE, HONEST_TESTS, isolation=mode if not stdio else None)
    return {"result": result, "findings": findings, "honest": honest}


@pytest.fixture(scope="module")
def outcomes(host):
    """Every run of the corpus, each followed by an honest job in the same worker; two workers per setup."""
    done: dict[tuple[str, str, str], dict] = {}
    for setup in SETUPS:
        runs = [(case, mode) for case, mode, s in RUNS if s == setup]
        lanes = [runs[0::2], runs[1::2]]

        def lane(i: int, lanes: list = lanes, setup: str = setup) -> None:
            box = host["boxes"][setup][i]
            for case, mode in lanes[i]:
                done[(case.id, mode, setup)] = _run_one(case, mode, box, host)

        with ThreadPoolExecutor(max_workers=2) as pool:
            list(pool.map(lane, range(2)))
    return done


def test_corpus_is_large_distinct_and_covers_both_modes():
    assert len(CASES) >= 100
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({(c.code, c.tests, c.style) for c in CASES}) == len(CASES)
    assert sum(c.style == "stdio" for c in CASES) >= 3 and sum(c.style == "unittest" for c in CASES) >= 8


@pytest.mark.parametrize(("case", "mode", "setup"), RUNS, ids=[f"{c.id}-{m}-{s}" for c, m, s in RUNS])
def test_hostile_program(case: Case, mode: str, setup: str, host, outcomes) -> None:
    run = outcomes[(case.id, mode, setup)]
    r = run["result"]
    assert r.status == case.expected(mode), (
        r.status,
        r.error_type,
        r.message,
        r.traceback[-800:],
        r.stderr[-800:],
    )
    assert r.isolation == mode
    if case.error_type is not None and (mode == "judge" or case.in_process is None):
        assert r.error_type == case.error_type, (r.error_type, r.message)
    # The host is unaffected, nothing of the job is left, no secret leaked.
    assert run["findings"] == []
    leaked = " ".join([r.stdout, r.stderr, r.message, r.traceback])
    assert host["token"] not in leaked and host["key_token"] not in leaked
    # The next honest job in the same worker still passes.
    honest = run["honest"]
    assert honest.status == "passed", (honest.status, honest.message, honest.stderr[-500:])


@pytest.mark.parametrize("setup", SETUPS)
def test_ipc_objects_and_keys_of_a_job_do_not_reach_the_next_job(setup, host):
    box = host["boxes"][setup][0]
    plant = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n"
        "assert libc.shmget(0, 1 << 20, 0o1000 | 0o600) >= 0\n"  # SysV shared memory (IPC_PRIVATE, IPC_CREAT)
        "libc.mq_open.restype = ctypes.c_int\nq = libc.mq_open(b'/sandbox-carry', 0o100 | 0o2, 0o666, None)\n"
        "assert q >= 0\nassert libc.mq_send(q, b'left for the next job', 21, 0) == 0\n"
        "data = b'left for the next job'\n"
        "for ring in (-4, -5):\n"  # the uid's keyrings
        "    assert libc.syscall(248, b'user', b'carry-%d' % -ring, data, len(data), ring) > 0\n"
    )
    for mode in ("judge", "in_process"):
        r = box.run(plant, "assert True", isolation=mode)
        assert r.status == "passed", (r.message, r.traceback)
        look = (
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n"
            "shm = open('/proc/sysvipc/shm').read().splitlines()[1:]\n"
            "queue = libc.mq_open(b'/sandbox-carry', 0o2)\n"
            "found = [libc.syscall(249, b'user', b'carry-%d' % n, None, 0) for n in (4, 5)]\n"
        )
        r = box.run(look, "assert shm == []\nassert queue == -1\nassert found == [-1, -1]\n", isolation=mode)
        assert r.status == "passed", (r.message, r.traceback)


@pytest.mark.parametrize("setup", SETUPS)
def test_files_left_in_tmp_do_not_reach_the_next_job(setup, host):
    box = host["boxes"][setup][0]
    write = "import os\nfor d in ('/tmp', '/var/tmp', '/dev/shm', os.getcwd()):\n    open(os.path.join(d, 'leak'), 'w').write('x')\n"
    assert box.run(write, "assert True").status == "passed"
    check = "import os, glob\nfound = glob.glob('/tmp/**/leak', recursive=True) + glob.glob('/dev/shm/leak') + glob.glob('/var/tmp/leak')\n"
    assert box.run(check, "assert found == []").status == "passed"


@pytest.mark.parametrize("setup", SETUPS)
def test_no_earlier_jobs_tests_in_a_later_jobs_memory(setup, host):
    """Another job's tests (and a stdio job's expected output) are never in the memory a job is forked from."""
    box = host["boxes"][setup][0]
    marker = "MARK-" + secrets.token_hex(8)
    scan = (
        "import re\nhits = []\nfor line in open('/proc/self/maps'):\n    parts = line.split()\n"
        "    if 'r' not in parts[1]:\n        continue\n    start, end = (int(x, 16) for x in parts[0].split('-'))\n"
        "    try:\n        with open('/proc/self/mem', 'rb') as mem:\n            mem.seek(start)\n"
        "            hits += re.findall(rb'MARK-[0-9a-f]{16}', mem.read(min(end - start, 1 << 26)))\n"
        "    except (OSError, ValueError, OverflowError):\n        pass\nprint(sorted(set(hits)))\n"
    )
    honest = "def add(a, b):\n    return a + b\n"
    for mode in ("judge", "in_process"):
        assert box.run(honest, f"assert add(1, 2) == 3  # {marker}\n", isolation=mode).status == "passed"
        assert box.run(honest, style="stdio", stdin="", expected_stdout=marker).status == "failed"
        r = box.run(scan, "assert True", isolation=mode)
        assert r.status == "passed" and marker not in r.stdout, r.stdout[-500:]
