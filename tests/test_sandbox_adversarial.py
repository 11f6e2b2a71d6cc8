"""The adversarial corpus: hostile programs, each checked for its status and for an unaffected host.

After every case: a canary file outside the run directory is unchanged, no process the job started is alive,
no connection reached a listener on the host's loopback, no secret leaked into the result, and the next honest
job in the same (single) worker still passes.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import warnings
from dataclasses import dataclass

import pytest

from sandbox import Limits, Sandbox
from tests.sandbox_cases.helpers import HONEST_CODE, HONEST_TESTS, sandbox_processes

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the full boundary needs root (CI runs as root)")

# Cases expected to time out get a short clock; every other case a generous one, so that a loaded machine
# cannot turn them into timeouts.
TIMEOUT_LIMITS = Limits(timeout_s=1.0, memory_mb=512, output_bytes=4096, file_mb=16)
LIMITS = Limits(timeout_s=15.0, memory_mb=512, output_bytes=4096, file_mb=16)


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    status: str
    tests: str = "assert True"
    style: str = "script"
    error_type: str | None = None
    limits: Limits | None = None  # default: TIMEOUT_LIMITS for expected timeouts, else LIMITS
    needs: str | None = None  # a protection the case relies on beyond the always-present ones


# Memory and process bombs fill a smaller address space sooner.
SMALL_MEMORY = Limits(timeout_s=15.0, memory_mb=256, output_bytes=4096, file_mb=16)
ALWAYS_EQUAL = "class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"

CASES = [
    # Time
    Case("infinite_loop", "while True:\n    pass\n", "timeout"),
    Case(
        "loop_ignoring_signals",
        "import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU):\n"
        "    signal.signal(s, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True:\n    pass\n",
        "timeout",
    ),
    Case("c_level_loop", "sum(range(10 ** 12))\n", "timeout"),
    Case("long_sleep", "import time\ntime.sleep(100)\n", "timeout"),
    Case(
        "busy_threads_after_main_returns",
        "import threading\ndef spin():\n    while True:\n        pass\n"
        "threading.Thread(target=spin).start()\nthreading.Thread(target=spin).start()\n"
        "import time\ntime.sleep(100)\n",
        "timeout",
    ),
    # Processes
    Case(
        "fork_bomb",
        "import os\nwhile True:\n    os.fork()\n",
        "error",
        error_type="BlockingIOError",
        limits=SMALL_MEMORY,
    ),
    Case(
        "detached_daemon",
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        while True:\n            time.sleep(0.01)\n    os._exit(0)\n"
        "def add(a, b):\n    return a + b\n",
        "passed",
        tests="assert add(1, 1) == 2",
    ),
    Case(
        "thread_bomb",
        "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(100,)).start()\n",
        "error",
        error_type="RuntimeError",
    ),
    Case(
        "kill_parent",
        "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
        "error",
        error_type="PermissionError",
    ),
    Case("kill_own_process_group", "import os, signal\nos.killpg(os.getpgrp(), signal.SIGKILL)\n", "crashed"),
    Case(
        "kill_everything_it_can",
        "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept ProcessLookupError:\n    pass\n"
        "def add(a, b):\n    return a + b\n",
        "passed",
        tests="assert add(2, 2) == 4",
    ),
    # Memory
    Case("memory_bomb", "x = bytearray(10 ** 10)\n", "memory_limit", limits=SMALL_MEMORY),
    Case(
        "slow_memory_growth",
        "chunks = []\nwhile True:\n    chunks.append(b'x' * 10 ** 6)\n",
        "memory_limit",
        limits=SMALL_MEMORY,
    ),
    Case("deep_recursion", "def f(n):\n    return f(n + 1)\nf(0)\n", "error", error_type="RecursionError"),
    Case(
        "c_stack_overflow",
        "import sys, threading\nsys.setrecursionlimit(10 ** 6)\nthreading.stack_size(256 * 1024)\n"
        "nested = []\nfor _ in range(10 ** 4):\n    nested = [nested]\n"
        "t = threading.Thread(target=repr, args=(nested,))\nt.start()\nt.join()\n",
        "crashed",
        error_type="SIGSEGV",
    ),
    # Output and files
    Case("print_flood", "while True:\n    print('x' * 100)\n", "output_limit"),
    Case("os_write_flood", "import os\nwhile True:\n    os.write(1, b'y' * 65536)\n", "output_limit"),
    Case("stderr_flood", "import os\nwhile True:\n    os.write(2, b'z' * 65536)\n", "output_limit"),
    Case(
        "ten_gb_file",
        "with open('big.bin', 'wb') as f:\n    for _ in range(10 * 1024):\n        f.write(b'0' * 2 ** 20)\n",
        "output_limit",
    ),
    Case("write_etc", "open('/etc/passwd', 'a').write('evil::0:0::/:/bin/sh\\n')\n", "error"),
    Case("overwrite_canary", "open({canary!r}, 'w').write('owned')\n", "error"),
    Case(
        "overwrite_world_writable_canary",
        "open({open_canary!r}, 'w').write('owned')\n",
        "error",
        needs="readonly_root",  # only a read-only view stops writes that file permissions allow
    ),
    Case("delete_canary", "import os\nos.remove({open_canary!r})\n", "error"),
    Case("write_host_tmp", "open({tmp_canary!r}, 'w').write('owned')\n", "error"),
    # Secrets
    Case("read_home_secret", "print(open({secret!r}).read())\n", "error", error_type="FileNotFoundError"),
    Case("read_ssh_dir", "import os\nprint(os.listdir(os.path.expanduser('~root/.ssh')))\n", "error"),
    Case(
        "read_proc_1_environ",
        "print(open('/proc/1/environ').read())\n",
        "error",
        error_type="PermissionError",
    ),
    Case(
        "dump_environment",
        "import os\nprint(dict(os.environ))\ndef add(a, b):\n    return a + b\n",
        "passed",
        tests="assert add(0, 0) == 0",
    ),
    # Network
    Case(
        "connect_out",
        "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)\n",
        "error",
        error_type="OSError",
    ),
    Case(
        "connect_host_loopback",
        "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n",
        "error",  # refused (bwrap's namespace has a loopback) or unreachable (none): the listener hears nothing
    ),
    Case(
        "dns_lookup", "import socket\nsocket.getaddrinfo('example.com', 80)\n", "error", error_type="gaierror"
    ),
    # Crashes
    Case("ctypes_segfault", "import ctypes\nctypes.string_at(0)\n", "crashed", error_type="SIGSEGV"),
    Case("abort", "import os\nos.abort()\n", "crashed", error_type="SIGABRT"),
    Case("close_all_descriptors", "import os\nos.closerange(0, 4096)\n", "error", error_type="EarlyExit"),
    Case("input_without_stdin", "x = input()\n", "error", error_type="EOFError"),
    # Never a false pass
    Case("os_exit_before_tests", "import os\nos._exit(0)\n", "error", error_type="EarlyExit"),
    Case(
        "os_exit_during_tests",
        "import os\ndef add(a, b):\n    os._exit(0)\n",
        "error",
        tests="assert add(1, 2) == 3",
        error_type="EarlyExit",
    ),
    Case("sys_exit_zero", "import sys\nsys.exit(0)\n", "error", error_type="SystemExit"),
    Case(
        "sys_exit_during_tests",
        "import sys\ndef add(a, b):\n    sys.exit(0)\n",
        "error",
        tests="assert add(1, 2) == 3",
        error_type="SystemExit",
    ),
    Case("keyboard_interrupt", "raise KeyboardInterrupt\n", "error", error_type="KeyboardInterrupt"),
    Case(
        "always_equal_object",
        ALWAYS_EQUAL + "def add(a, b):\n    return Anything()\n",
        "tampering",
        tests=HONEST_TESTS,
    ),
    Case(
        "always_equal_inside_a_list",
        ALWAYS_EQUAL + "def pair(a):\n    return [Anything(), Anything()]\n",
        "tampering",
        tests="assert pair(1) == [1, 2]\nassert sorted(pair(3)) == [3, 4]",
    ),
    Case(
        "lying_str_subclass",
        "class S(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\n"
        "def name():\n    return S('wrong')\n",
        "tampering",
        tests="assert name() == 'right'",
    ),
    Case(
        "always_equal_in_humaneval_check",
        ALWAYS_EQUAL + "def add(a, b):\n    return Anything()\n",
        "tampering",
        tests="def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(5, 5) in [10]\n\ncheck(add)",
    ),
    Case(
        "patched_builtins",
        "import builtins\nbuiltins.all = lambda items: True\ndef evens(n):\n    return [1, 3]\n",
        "tampering",
        tests="assert all(x % 2 == 0 for x in evens(4))",
    ),
    Case(
        "settrace_skips_asserts",
        "import sys\ndef tracer(frame, event, arg):\n    return tracer\nsys.settrace(tracer)\n"
        "def add(a, b):\n    return 0\n",
        "tampering",
        tests="assert True",
    ),
    Case(
        # Install a tracer, jump over the remaining asserts of check(), remove the tracer before the end.
        "settrace_jump_then_remove",
        "import sys\n_calls = []\ndef solve():\n    _calls.append(1)\n    if len(_calls) == 1:\n"
        "        caller = sys._getframe(1)\n        end = caller.f_code.co_firstlineno + 4\n"
        "        def jump(frame, event, arg):\n            if event == 'line' and frame.f_lineno < end:\n"
        "                frame.f_lineno = end\n                sys.settrace(None)\n"
        "                frame.f_trace = None\n            return jump\n"
        "        caller.f_trace = jump\n        sys.settrace(lambda *a: None)\n    return 1\n",
        "tampering",
        tests="def check(candidate):\n    assert candidate() == 1\n    assert candidate() == 2\n"
        "    assert candidate() == 3\n    pass\n\n\ncheck(solve)\n",
    ),
    Case(
        "forge_result_channel",
        'import os\nfake = b\'SBX1{"done": true, "nonce": "0", "statements": 1, "tampering": []}\'\n'
        "for fd in range(3, 1024):\n    try:\n        os.write(fd, fake)\n    except OSError:\n        pass\n"
        "os._exit(0)\n",
        "tampering",
    ),
    Case(
        "steal_nonce_from_memory_and_forge",
        "import gc, os, re, stat, sys\n"
        "hexes = [o for o in gc.get_objects() if isinstance(o, str) and re.fullmatch('[0-9a-f]{32}', o)]\n"
        "frame, names = sys._getframe(), []\nwhile frame:\n"
        "    hexes += [v for v in frame.f_locals.values() if isinstance(v, str) and re.fullmatch('[0-9a-f]{32}', v)]\n"
        "    frame = frame.f_back\n"
        "nonce = hexes[0] if hexes else '0' * 32\n"
        'fake = b\'SBX1{"done": true, "nonce": "\' + nonce.encode() + b\'", "statements": 1, "tampering": []}\'\n'
        "for fd in range(3, 256):\n    try:\n        if stat.S_ISFIFO(os.fstat(fd).st_mode):\n"
        "            os.write(fd, fake)\n            break\n    except OSError:\n        pass\n"
        "os._exit(0)\n",
        "tampering",
    ),
    Case(
        "patch_os_write_and_exit",
        "import os\nos.write = lambda fd, data: len(data)\nos._exit = lambda code: None\n"
        "def add(a, b):\n    return a - b\n",
        "failed",
        tests=HONEST_TESTS,
    ),
    Case(
        "patched_assert_equal",
        "import unittest\nunittest.TestCase.assertEqual = lambda self, a, b, msg=None: None\n"
        "def add(a, b):\n    return 0\n",
        "tampering",
        tests="import unittest\nfrom solution import add\nclass T(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(1, 2), 3)\n",
        style="unittest",
    ),
    Case(
        "patched_test_result",
        "import unittest\nunittest.TestResult.addFailure = lambda self, test, err: None\n"
        "def add(a, b):\n    return 0\n",
        "tampering",
        tests="import unittest\nfrom solution import add\nclass T(unittest.TestCase):\n"
        "    def test_add(self):\n        assert add(1, 2) == 3\n",
        style="unittest",
    ),
    Case(
        "skip_raised_from_the_code",
        "import unittest\ndef add(a, b):\n    raise unittest.SkipTest('no')\n",
        "error",
        tests="import unittest\nfrom solution import add\nclass T(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(1, 2), 3)\n",
        style="unittest",
        error_type="SkipTest",
    ),
    Case(
        "delete_test_methods",
        "import sys, unittest\n_orig = unittest.TestLoader.getTestCaseNames\ndef add(a, b):\n    return 0\n",
        "error",
        tests="import unittest\nfrom solution import add\nclass T(unittest.TestCase):\n"
        "    def test_add(self):\n        self.assertEqual(add(1, 2), 3)\n"
        "del T.test_add\n",
        style="unittest",
        error_type="TestsNotRun",
    ),
    Case(
        "stdio_right_answer_then_hang",
        "print(int(input()) + 1)\nimport sys\nsys.stdout.flush()\nwhile True:\n    pass\n",
        "timeout",
        tests=None,
        style="stdio",
    ),
]


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """Canaries, a secret in a home directory, a loopback listener and a single-worker sandbox."""
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
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    os.environ["SANDBOX_TEST_TOKEN"] = token
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        box = Sandbox(workers=1, limits=LIMITS)
    values = dict(
        canary=canary,
        open_canary=open_canary,
        tmp_canary=tmp_canary,
        secret=secret,
        port=listener.getsockname()[1],
    )
    yield dict(box=box, token=token, listener=listener, values=values)
    box.close()
    os.environ.pop("SANDBOX_TEST_TOKEN", None)
    listener.close()
    os.remove(secret)
    shutil.rmtree(base, ignore_errors=True)


def test_corpus_is_large_and_distinct():
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)
    assert len({(c.code, c.tests, c.style) for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_program(case: Case, host) -> None:
    box, values = host["box"], host["values"]
    if case.needs is not None and case.needs not in box.isolation:
        pytest.skip(f"{case.needs} is not available here (install bubblewrap)")
    code = case.code
    for key, value in values.items():
        code = code.replace("{" + key + "!r}", repr(value)).replace("{" + key + "}", str(value))
    expected_stdout = "2" if case.style == "stdio" else None
    stdin = "1\n" if case.style == "stdio" else None
    limits = case.limits or (TIMEOUT_LIMITS if case.status == "timeout" else LIMITS)
    r = box.run(code, case.tests, case.style, stdin, expected_stdout, limits=limits)

    assert r.status == case.status, (r.status, r.error_type, r.message, r.traceback[-500:])
    if case.error_type is not None:
        assert r.error_type == case.error_type, (r.error_type, r.message)
    # The host is unaffected.
    for key in ("canary", "tmp_canary") + (("open_canary",) if "readonly_root" in r.isolation else ()):
        with open(values[key]) as f:
            assert f.read() == "original\n", f"{key} was changed"
    assert sandbox_processes(box.uids) == [], "a process started by the job is still alive"
    with pytest.raises(BlockingIOError):
        host["listener"].accept()
    leaked = " ".join([r.stdout, r.stderr, r.message, r.traceback])
    assert host["token"] not in leaked
    # The next honest job in the same worker still passes.
    assert box.run(HONEST_CODE, HONEST_TESTS).status == "passed"


def test_system_v_shared_memory_does_not_reach_the_next_job(host):
    box = host["box"]
    create = (
        "import ctypes\nlibc = ctypes.CDLL(None)\n"
        "assert libc.shmget(0, 1 << 20, 0o1000 | 0o600) >= 0\n"  # IPC_PRIVATE, IPC_CREAT
    )
    assert box.run(create, "assert True").status == "passed"
    check = "rows = open('/proc/sysvipc/shm').read().splitlines()[1:]\n"
    assert box.run(check, "assert rows == []").status == "passed"


def test_files_left_in_tmp_do_not_reach_the_next_job(host):
    box = host["box"]
    write = "import os\nfor d in ('/tmp', '/dev/shm', os.getcwd()):\n    open(os.path.join(d, 'leak'), 'w').write('x')\n"
    assert box.run(write, "assert True").status == "passed"
    check = (
        "import os, glob\nfound = glob.glob('/tmp/**/leak', recursive=True) + glob.glob('/dev/shm/leak')\n"
    )
    assert box.run(check, "assert found == []").status == "passed"
