"""The adversarial corpus: hostile programs and the status each must get, judged and in-process.

`status` is the verdict in the judge mode (the default for these tests), `in_process` the verdict when the same
job is forced in-process, where it differs. A forgery the judge simply fails (its handle equals nothing) is
usually caught in-process as `tampering`. `beaten_in_process` marks the few forgeries that get through in-process:
they are documented limits of that mode (docs/sandbox.md), asserted here so that a change in them is noticed.
Placeholders in {braces} are filled by the test with host paths and ports.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandbox import Limits
from tests.sandbox_cases.helpers import HONEST_TESTS

# Cases expected to time out get a short clock; every other case a generous one, so that a loaded machine
# cannot turn them into timeouts.
TIMEOUT_LIMITS = Limits(timeout_s=0.6, memory_mb=512, output_bytes=4096, file_mb=16)
LIMITS = Limits(timeout_s=15.0, memory_mb=512, output_bytes=4096, file_mb=16)
SMALL_MEMORY = Limits(timeout_s=15.0, memory_mb=256, output_bytes=4096, file_mb=16)


@dataclass(frozen=True)
class Case:
    id: str
    code: str
    status: str
    tests: str | None = "assert True"
    style: str = "script"
    error_type: str | None = None
    in_process: str | None = None  # the in-process status, where it differs
    beaten_in_process: bool = False  # a documented limit: the forgery passes in-process
    limits: Limits | None = None  # default: TIMEOUT_LIMITS for expected timeouts, else LIMITS
    stdin: str = "1\n"  # stdio only
    expected_stdout: str = "2"  # stdio only

    def expected(self, mode: str) -> str:
        return self.in_process if mode == "in_process" and self.in_process else self.status

    def modes(self) -> tuple[str, ...]:
        return ("judge",) if self.style == "stdio" else ("judge", "in_process")


ALWAYS_EQUAL = "class Anything:\n    def __eq__(self, other):\n        return True\n    __hash__ = None\n"
ADD_TESTS_UNIT = (
    "import unittest\nfrom solution import add\nclass T(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(1, 2), 3)\n"
)
TWO_TESTS_UNIT = (
    "import unittest\nfrom solution import add\nclass T(unittest.TestCase):\n"
    "    def test_a(self):\n        self.assertEqual(add(1, 2), 3)\n"
    "    def test_b(self):\n        self.assertEqual(add(2, 2), 4)\n"
)
RECORD_WRITER = (  # writes a record claiming a pass to every descriptor that takes it
    "import os\n"
    "def _forge():\n"
    '    fake = b\'R00000017["o", "0", "ok"]\' + b\'R00000008["a", 1]\'\n'
    "    for fd in range(3, 256):\n"
    "        try:\n            os.write(fd, fake)\n        except OSError:\n            pass\n"
)

OLD_CASES = [
    # Time
    Case("infinite_loop", "while True:\n    pass\n", "timeout"),
    Case("loop_ignoring_signals",
         "import signal\nfor s in (signal.SIGALRM, signal.SIGTERM, signal.SIGINT, signal.SIGXCPU):\n"
         "    signal.signal(s, signal.SIG_IGN)\nsignal.alarm(1)\nwhile True:\n    pass\n", "timeout"),
    Case("c_level_loop", "sum(range(10 ** 12))\n", "timeout"),
    Case("long_sleep", "import time\ntime.sleep(100)\n", "timeout"),
    Case("busy_threads_after_main_returns",
         "import threading\ndef spin():\n    while True:\n        pass\n"
         "threading.Thread(target=spin).start()\nthreading.Thread(target=spin).start()\n"
         "import time\ntime.sleep(100)\n", "timeout"),
    # Processes
    Case("fork_bomb", "import os\nwhile True:\n    os.fork()\n", "error", error_type="BlockingIOError",
         limits=SMALL_MEMORY),
    Case("detached_daemon",
         "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
         "        while True:\n            time.sleep(0.01)\n    os._exit(0)\n"
         "def add(a, b):\n    return a + b\n", "passed", tests="assert add(1, 1) == 2"),
    Case("thread_bomb",
         "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(100,)).start()\n",
         "error", error_type="RuntimeError"),
    Case("kill_parent", "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", "error",
         error_type="PermissionError"),
    Case("kill_own_process_group", "import os, signal\nos.killpg(os.getpgrp(), signal.SIGKILL)\n", "crashed"),
    Case("kill_everything_it_can",
         "import os, signal\ntry:\n    os.kill(-1, signal.SIGKILL)\nexcept ProcessLookupError:\n    pass\n"
         "def add(a, b):\n    return a + b\n", "passed", tests="assert add(2, 2) == 4"),
    # Memory
    Case("memory_bomb", "x = bytearray(10 ** 10)\n", "memory_limit", limits=SMALL_MEMORY),
    Case("slow_memory_growth", "chunks = []\nwhile True:\n    chunks.append(b'x' * 10 ** 6)\n", "memory_limit",
         limits=SMALL_MEMORY),
    Case("deep_recursion", "def f(n):\n    return f(n + 1)\nf(0)\n", "error", error_type="RecursionError"),
    Case("c_stack_overflow",
         "import sys, threading\nsys.setrecursionlimit(10 ** 6)\nthreading.stack_size(256 * 1024)\n"
         "nested = []\nfor _ in range(10 ** 4):\n    nested = [nested]\n"
         "t = threading.Thread(target=repr, args=(nested,))\nt.start()\nt.join()\n", "crashed",
         error_type="SIGSEGV"),
    # Output and files
    Case("print_flood", "while True:\n    print('x' * 100)\n", "output_limit"),
    Case("os_write_flood", "import os\nwhile True:\n    os.write(1, b'y' * 65536)\n", "output_limit"),
    Case("stderr_flood", "import os\nwhile True:\n    os.write(2, b'z' * 65536)\n", "output_limit"),
    Case("ten_gb_file",
         "with open('big.bin', 'wb') as f:\n    for _ in range(10 * 1024):\n        f.write(b'0' * 2 ** 20)\n",
         "output_limit"),
    Case("write_etc", "open('/etc/passwd', 'a').write('evil::0:0::/:/bin/sh\\n')\n", "error"),
    Case("overwrite_canary", "open({canary!r}, 'w').write('owned')\n", "error"),
    Case("overwrite_world_writable_canary", "open({open_canary!r}, 'w').write('owned')\n", "error"),
    Case("delete_canary", "import os\nos.remove({open_canary!r})\n", "error"),
    Case("write_host_tmp", "open({tmp_canary!r}, 'w').write('owned')\n", "error"),
    # Secrets
    Case("read_home_secret", "print(open({secret!r}).read())\n", "error", error_type="FileNotFoundError"),
    Case("read_ssh_dir", "import os\nprint(os.listdir(os.path.expanduser('~root/.ssh')))\n", "error"),
    Case("read_proc_1_environ", "print(open('/proc/1/environ').read())\n", "error", error_type="PermissionError"),
    Case("dump_environment", "import os\nprint(dict(os.environ))\ndef add(a, b):\n    return a + b\n", "passed",
         tests="assert add(0, 0) == 0"),
    # Network
    Case("connect_out", "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=1)\n", "error",
         error_type="OSError"),
    Case("connect_host_loopback", "import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=1)\n",
         "error"),
    Case("dns_lookup", "import socket\nsocket.getaddrinfo('example.com', 80)\n", "error", error_type="gaierror"),
    # Crashes
    Case("ctypes_segfault", "import ctypes\nctypes.string_at(0)\n", "crashed", error_type="SIGSEGV",
         in_process="tampering"),  # in-process, ctypes' raw memory reads are refused before they run
    Case("abort", "import os\nos.abort()\n", "crashed", error_type="SIGABRT"),
    Case("close_all_descriptors", "import os\nos.closerange(0, 4096)\n", "error", error_type="EarlyExit"),
    Case("input_without_stdin", "x = input()\n", "error", error_type="EOFError"),
    # Never a false pass
    Case("os_exit_before_tests", "import os\nos._exit(0)\n", "error", error_type="EarlyExit"),
    Case("os_exit_during_tests", "import os\ndef add(a, b):\n    os._exit(0)\n", "error",
         tests="assert add(1, 2) == 3", error_type="EarlyExit"),
    Case("sys_exit_zero", "import sys\nsys.exit(0)\n", "error", error_type="SystemExit"),
    Case("sys_exit_during_tests", "import sys\ndef add(a, b):\n    sys.exit(0)\n", "error",
         tests="assert add(1, 2) == 3", error_type="SystemExit"),
    Case("keyboard_interrupt", "raise KeyboardInterrupt\n", "error", error_type="KeyboardInterrupt"),
    Case("always_equal_object", ALWAYS_EQUAL + "def add(a, b):\n    return Anything()\n", "failed",
         tests=HONEST_TESTS, in_process="tampering"),
    Case("always_equal_inside_a_list", ALWAYS_EQUAL + "def pair(a):\n    return [Anything(), Anything()]\n",
         "failed", tests="assert pair(1) == [1, 2]\nassert sorted(pair(3)) == [3, 4]", in_process="tampering"),
    Case("lying_str_subclass",
         "class S(str):\n    def __eq__(self, other):\n        return True\n    __hash__ = str.__hash__\n"
         "def name():\n    return S('wrong')\n", "failed", tests="assert name() == 'right'",
         in_process="tampering"),
    Case("always_equal_in_humaneval_check", ALWAYS_EQUAL + "def add(a, b):\n    return Anything()\n", "failed",
         tests="def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(5, 5) in [10]\n\ncheck(add)",
         in_process="tampering"),
    Case("patched_builtins", "import builtins\nbuiltins.all = lambda items: True\ndef evens(n):\n    return [1, 3]\n",
         "failed", tests="assert all(x % 2 == 0 for x in evens(4))", in_process="tampering"),
    Case("settrace_skips_asserts",
         "import sys\ndef tracer(frame, event, arg):\n    return tracer\nsys.settrace(tracer)\n"
         "def add(a, b):\n    return 0\n", "failed", tests=HONEST_TESTS, in_process="tampering"),
    Case("settrace_jump_then_remove",
         "import sys\n_calls = []\ndef solve():\n    _calls.append(1)\n    if len(_calls) == 1:\n"
         "        caller = sys._getframe(1)\n        end = caller.f_code.co_firstlineno + 4\n"
         "        def jump(frame, event, arg):\n            if event == 'line' and frame.f_lineno < end:\n"
         "                frame.f_lineno = end\n                sys.settrace(None)\n"
         "                frame.f_trace = None\n            return jump\n"
         "        caller.f_trace = jump\n        sys.settrace(lambda *a: None)\n    return 1\n", "failed",
         tests="def check(candidate):\n    assert candidate() == 1\n    assert candidate() == 2\n"
         "    assert candidate() == 3\n    pass\n\n\ncheck(solve)\n", in_process="tampering"),
    Case("forge_result_channel",
         'import os\nfake = b\'SBX1{"done": true, "nonce": "0", "statements": 1, "tampering": []}\'\n'
         "for fd in range(3, 1024):\n    try:\n        os.write(fd, fake)\n    except OSError:\n        pass\n"
         "os._exit(0)\n", "tampering"),
    Case("steal_nonce_from_memory_and_forge",
         "import gc, os, re, stat, sys\n"
         "hexes = [o for o in gc.get_objects() if isinstance(o, str) and re.fullmatch('[0-9a-f]{32}', o)]\n"
         "nonce = hexes[0] if hexes else '0' * 32\n"
         "fake = b'E' + nonce.encode()\n"
         "for fd in range(3, 256):\n    try:\n        if stat.S_ISFIFO(os.fstat(fd).st_mode):\n"
         "            os.write(fd, fake)\n    except OSError:\n        pass\n"
         "os._exit(0)\n", "tampering", in_process="tampering"),  # judged: garbage on the channel; in-process: gc walk refused
    Case("patch_os_write_and_exit",
         "import os\nos.write = lambda fd, data: len(data)\nos._exit = lambda code: None\n"
         "def add(a, b):\n    return a - b\n", "failed", tests=HONEST_TESTS, in_process="tampering"),
    Case("patched_assert_equal",
         "import unittest\nunittest.TestCase.assertEqual = lambda self, a, b, msg=None: None\n"
         "def add(a, b):\n    return 0\n", "failed", tests=ADD_TESTS_UNIT, style="unittest", in_process="tampering"),
    Case("patched_test_result",
         "import unittest\nunittest.TestResult.addFailure = lambda self, test, err: None\n"
         "def add(a, b):\n    return 0\n", "failed",
         tests="import unittest\nfrom solution import add\nclass T(unittest.TestCase):\n"
         "    def test_add(self):\n        assert add(1, 2) == 3\n", style="unittest", in_process="tampering"),
    Case("skip_raised_from_the_code", "import unittest\ndef add(a, b):\n    raise unittest.SkipTest('no')\n",
         "error", tests=ADD_TESTS_UNIT, style="unittest", error_type="SkipTest"),
    Case("delete_test_methods", "def add(a, b):\n    return 0\n", "error",
         tests=ADD_TESTS_UNIT + "del T.test_add\n", style="unittest", error_type="TestsNotRun"),
    Case("stdio_right_answer_then_hang",
         "print(int(input()) + 1)\nimport sys\nsys.stdout.flush()\nwhile True:\n    pass\n", "timeout",
         tests=None, style="stdio"),
]  # fmt: skip

NEW_CASES = [
    # False passes through comparisons
    Case("liar_claiming_module_builtins",
         "class Int:\n    __module__ = 'builtins'\n    def __eq__(self, other):\n        return True\n"
         "    __hash__ = None\ndef add(a, b):\n    return Int()\n", "failed", tests=HONEST_TESTS, in_process="tampering"),
    Case("mock_any_returned", "from unittest import mock\ndef add(a, b):\n    return mock.ANY\n", "failed",
         tests=HONEST_TESTS, in_process="tampering"),
    Case("magicmock_returned",
         "from unittest import mock\ndef add(a, b):\n    m = mock.MagicMock()\n    m.__eq__.return_value = True\n"
         "    return m\n", "failed", tests=HONEST_TESTS, in_process="tampering"),
    Case("liar_in_tuple_subclass",
         "class T(tuple):\n    def __eq__(self, other):\n        return True\n    __hash__ = tuple.__hash__\n"
         "def pair(a):\n    return T((0, 0))\n", "failed", tests="assert pair(1) == (1, 2)", in_process="tampering"),
    Case("liar_inside_userstring",
         "from collections import UserString\nclass S(str):\n    def __eq__(self, other):\n        return True\n"
         "    __hash__ = str.__hash__\ndef name():\n    return UserString(S('wrong'))\n", "failed",
         tests="assert name() == 'right'", in_process="tampering"),
    Case("liar_made_with_types_new_class",
         "import types\nLiar = types.new_class('Liar', (), {}, lambda ns: ns.update(__eq__=lambda s, o: True, "
         "__hash__=None))\ndef add(a, b):\n    return Liar()\n", "failed", tests=HONEST_TESTS, in_process="tampering"),
    Case("liar_in_chained_comparison",
         "class Mid:\n    def __lt__(self, o):\n        return True\n    def __gt__(self, o):\n        return True\n"
         "def ratio():\n    return Mid()\n", "error", tests="x = ratio()\nassert 0.24 < x < 0.26",
         in_process="tampering"),  # judged: a handle has no order (TypeError)
    Case("liar_float_subclass_arithmetic",
         "class F(float):\n    def __sub__(self, o):\n        return 0.0\n    def __eq__(self, o):\n        return True\n"
         "    __hash__ = float.__hash__\ndef area():\n    return F(9.0)\n", "failed",
         tests="assert abs(area() - 1.5) < 1e-6\nassert area() == 1.5", in_process="tampering"),
    Case("liar_dict_subclass",
         "class D(dict):\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n"
         "def counts(s):\n    return D()\n", "failed", tests="assert counts('aab') == {'a': 2, 'b': 1}",
         in_process="tampering"),
    Case("liar_dataclass",
         "from dataclasses import dataclass\n@dataclass(eq=False)\nclass P:\n    x: int = 0\n"
         "    def __eq__(self, o):\n        return True\ndef point():\n    return P()\n", "failed",
         tests="assert point() == (1, 2)", in_process="tampering"),
    Case("liar_ne_false",
         "class N:\n    def __ne__(self, o):\n        return False\n    def __eq__(self, o):\n        return True\n"
         "    __hash__ = None\ndef add(a, b):\n    return N()\n", "failed", tests="assert not (add(1, 2) != 3)",
         in_process="tampering"),
    Case("liars_yielded_by_a_generator", ALWAYS_EQUAL + "def gen():\n    yield Anything()\n    yield Anything()\n",
         "failed", tests="assert list(gen()) == [1, 2]", in_process="tampering"),
    Case("liar_nested_in_dict_value", ALWAYS_EQUAL + "def table():\n    return {'a': [Anything()]}\n", "failed",
         tests="assert table() == {'a': [1]}", in_process="tampering"),
    Case("liar_with_isclose_float",
         "class F:\n    def __float__(self):\n        return float('nan')\n    def __eq__(self, o):\n        return True\n"
         "    __hash__ = None\ndef f():\n    return F()\n", "failed",
         tests="import math\nassert math.isclose(f(), 0.25)\nassert f() == 0.25"),  # its float is NaN: fails
    # False passes through shared state
    Case("patch_math_isclose", "import math\nmath.isclose = lambda *a, **k: True\ndef f():\n    return 0.3\n",
         "failed", tests="import math\nassert math.isclose(f(), 0.25)", in_process="tampering"),
    Case("patch_random_randint_to_trivialise_inputs",
         "import random\nrandom.randint = lambda a, b: 0\ndef encode(s):\n    return s[::-1]\ndef decode(s):\n    return s\n",
         "failed", tests="import random\nfor _ in range(20):\n    s = 'x' * random.randint(1, 10) + 'yz'\n"
         "    assert decode(encode(s)) == s", in_process="tampering"),
    Case("replace_sys_modules_unittest",
         "import sys, types\nfake = types.ModuleType('unittest')\n"
         "class TestCase:\n    def assertEqual(self, *a):\n        pass\nfake.TestCase = TestCase\n"
         "fake.TestLoader = __import__('unittest').TestLoader\nsys.modules['unittest'] = fake\n"
         "def add(a, b):\n    return 0\n", "failed", tests=ADD_TESTS_UNIT, style="unittest", in_process="tampering"),
    Case("patch_unittest_outcome",
         "import unittest.case\nclass Quiet(unittest.case._Outcome):\n    def testPartExecutor(self, *a, **k):\n"
         "        import contextlib\n        return contextlib.nullcontext()\nunittest.case._Outcome = Quiet\n"
         "def add(a, b):\n    return 0\n", "failed", tests=ADD_TESTS_UNIT, style="unittest", in_process="tampering"),
    Case("patch_contextlib_exit_to_swallow",
         "import contextlib\n_orig = contextlib._GeneratorContextManager.__exit__\n"
         "contextlib._GeneratorContextManager.__exit__ = lambda self, *a: True\ndef add(a, b):\n    return 0\n",
         "failed", tests="import contextlib\n@contextlib.contextmanager\ndef quiet():\n    yield\n"
         "with quiet():\n    assert add(1, 2) == 3\n", in_process="tampering"),
    Case("add_unittest_skip_attribute",
         "import unittest\nunittest.TestCase.__unittest_skip__ = True\nunittest.TestCase.__unittest_skip_why__ = 'x'\n"
         "def add(a, b):\n    return 0\n", "failed", tests=ADD_TESTS_UNIT, style="unittest", in_process="tampering"),
    Case("meta_path_finder_serving_a_fake_module",
         "import sys, types\nclass Finder:\n    def find_spec(self, name, path=None, target=None):\n"
         "        if name == 'colorsys':\n            import importlib.util\n"
         "            return importlib.util.spec_from_loader(name, self)\n    def create_module(self, spec):\n"
         "        m = types.ModuleType(spec.name)\n        m.rgb_to_hsv = lambda *a: (0.0, 0.0, 0.0)\n        return m\n"
         "    def exec_module(self, module):\n        pass\nsys.meta_path.insert(0, Finder())\n"
         "def hsv(r, g, b):\n    return (0.0, 0.0, 0.0)\n", "failed",
         tests="import colorsys\nassert hsv(1, 0, 0) == colorsys.rgb_to_hsv(1, 0, 0)\nassert hsv(1, 0, 0) == (0.0, 1.0, 1.0)",
         in_process="tampering"),
    Case("swap_code_of_a_test_function",
         "import sys\ndef add(a, b):\n    frame = sys._getframe(1)\n"
         "    for name, value in list(frame.f_globals.items()):\n"
         "        if name.startswith('check_'):\n            value.__code__ = (lambda: None).__code__\n    return 0\n",
         "failed", tests="def check_more():\n    assert add(2, 2) == 4\nassert add(1, 2) == 0 or True\ncheck_more()\n",
         in_process="tampering"),
    Case("swap_code_of_a_stdlib_function",
         "import statistics\nstatistics.mean.__code__ = (lambda data: 0).__code__\ndef average(xs):\n    return 0\n",
         "failed", tests="import statistics\nassert average([1, 2, 3]) == statistics.mean([1, 2, 3])",
         in_process="tampering"),
    Case("rewrite_report_from_del", RECORD_WRITER + "class Ghost:\n    def __del__(self):\n        _forge()\n"
         "def add(a, b):\n    Ghost()\n    return 0\n", "tampering", tests=HONEST_TESTS),
    Case("rewrite_report_from_thread", RECORD_WRITER + "import threading, time\n"
         "def loop():\n    for _ in range(200):\n        _forge()\n        time.sleep(0.005)\n"
         "threading.Thread(target=loop, daemon=True).start()\ndef add(a, b):\n    time.sleep(0.2)\n    return 0\n",
         "tampering", tests=HONEST_TESTS),
    Case("rewrite_report_from_sigalrm", RECORD_WRITER + "import signal\n"
         "signal.signal(signal.SIGALRM, lambda *a: _forge())\nsignal.setitimer(signal.ITIMER_REAL, 0.01, 0.01)\n"
         "def add(a, b):\n    import time\n    time.sleep(0.1)\n    return 0\n", "tampering", tests=HONEST_TESTS),
    Case("rewrite_report_from_gc_callback", RECORD_WRITER + "import gc\ngc.callbacks.append(lambda *a: _forge())\n"
         "def add(a, b):\n    junk = [[] for _ in range(100000)]\n    gc.collect()\n    return 0\n", "tampering",
         tests=HONEST_TESTS),
    Case("patch_json_encoder_to_report_a_pass",
         "import json\njson.JSONEncoder.encode = lambda self, o: '{\"done\": true, \"statements\": 2, \"asserts\": 2}'\n"
         "def add(a, b):\n    return 0\n", "tampering", tests=HONEST_TESTS),  # judged: its own replies break too
    Case("patch_stdout_flush_to_rewrite", RECORD_WRITER + "import sys\n"
         "class Out:\n    def write(self, s):\n        return len(s)\n    def flush(self):\n        _forge()\n"
         "sys.stdout = Out()\ndef add(a, b):\n    return 0\n", "tampering", tests=HONEST_TESTS),
    Case("replace_the_next_test_method",
         "import sys\ndef add(a, b):\n    test_class = sys._getframe(1).f_locals['self'].__class__\n"
         "    test_class.test_b = lambda self: None\n    return 3\n", "failed", tests=TWO_TESTS_UNIT,
         style="unittest", in_process="tampering"),
    Case("probe_a_callback_that_checks_the_answer",
         "def solve(check):\n    for guess in range(100):\n        try:\n            check(guess)\n            return guess\n"
         "        except AssertionError:\n            pass\n", "failed",
         tests="def check(x):\n    assert x == 42\nassert solve(check) == 42", in_process="passed",
         beaten_in_process=True),  # in-process the probing is the code's own business: documented
    Case("read_the_tests_from_memory",
         "import gc\ndef secret():\n    for o in gc.get_objects():\n        if isinstance(o, dict):\n"
         "            for v in o.values():\n                if isinstance(v, str) and v.startswith('SECRET-'):\n"
         "                    return v\n    return None\n", "failed",
         tests="assert secret() == 'SECRET-' + '2f9c'", in_process="tampering"),
    Case("read_the_tests_from_the_filesystem",
         "import os\ndef secret():\n    for name in os.listdir('.'):\n        if name.startswith('test_'):\n"
         "            text = open(name).read()\n            return text.split(\"'\")[1] + text.split(\"'\")[3]\n"
         "    return None\n", "failed", tests="assert secret() == 'SECRET-' + '77ab'", in_process="passed",
         beaten_in_process=True),  # in-process the test file is the job's own: documented
    Case("raise_pytest_skip_from_the_code",
         "def add(a, b):\n    import pytest\n    pytest.skip('nothing to see')\n", "error",
         tests="from solution import add\ndef test_add():\n    assert add(1, 2) == 3\n", style="pytest"),
    Case("raise_a_skiptest_subclass",
         "import unittest\nclass Nope(unittest.SkipTest):\n    pass\ndef add(a, b):\n    raise Nope('x')\n", "error",
         tests=ADD_TESTS_UNIT, style="unittest"),
    # The answers are inside the job
    Case("stdio_reads_its_own_memory_for_the_answer",
         "import re\nfound = b''\nfor line in open('/proc/self/maps'):\n    parts = line.split()\n"
         "    if 'r' not in parts[1]:\n        continue\n    start, end = (int(x, 16) for x in parts[0].split('-'))\n"
         "    try:\n        with open('/proc/self/mem', 'rb') as mem:\n            mem.seek(start)\n"
         "            m = re.search(rb'EXPECTED-[0-9a-f]{8}', mem.read(min(end - start, 1 << 24)))\n"
         "            found = found or (m.group() if m else b'')\n    except (OSError, ValueError, OverflowError):\n"
         "        pass\nprint(found.decode() or 'nothing')\n", "failed", tests=None, style="stdio",
         expected_stdout="EXPECTED-{token8}"),
    Case("stdio_searches_the_filesystem_for_the_answer",
         "import os\nhits = []\nfor root in ('/tmp', '/var/tmp', '/dev/shm', os.getcwd()):\n"
         "    for d, _, files in os.walk(root):\n        for f in files:\n            try:\n"
         "                if 'EXPECTED-' in open(os.path.join(d, f), errors='ignore').read():\n"
         "                    hits.append(f)\n            except OSError:\n                pass\nprint(hits or 'nothing')\n",
         "failed", tests=None, style="stdio", expected_stdout="EXPECTED-{token8}"),
    # The host, the judge and the next job
    Case("replace_run_dir_with_symlink_to_host_dir",
         "import os\nos.chdir('/')\ntry:\n    os.rename('/tmp/run', '/tmp/old')\nexcept OSError:\n    pass\n"
         "for d in ('/tmp', '/var/tmp', '/dev/shm'):\n    try:\n        os.symlink({canary_dir!r}, d + '/run')\n"
         "    except OSError:\n        pass\n    try:\n        os.symlink({canary_dir!r}, d + '/link')\n    except OSError:\n"
         "        pass\ndef add(a, b):\n    return a + b\n", "passed", tests=HONEST_TESTS),
    Case("deep_directory_tree",
         "import os\nfor base in ('/tmp', '/dev/shm', '.'):\n    fd = os.open(base, os.O_RDONLY)\n"
         "    for i in range(1200):\n        os.mkdir('d', dir_fd=fd)\n        nfd = os.open('d', os.O_RDONLY, dir_fd=fd)\n"
         "        os.close(fd)\n        fd = nfd\n    os.close(fd)\ndef add(a, b):\n    return a + b\n", "passed",
         tests=HONEST_TESTS),
    Case("many_files_and_symlinks",
         "import os\nos.makedirs('/tmp/many', exist_ok=True)\nfor i in range(5000):\n"
         "    open(f'/tmp/many/{i}', 'w').close()\n    if i % 10 == 0:\n        os.symlink('/etc', f'/tmp/many/l{i}')\n"
         "def add(a, b):\n    return a + b\n", "passed", tests=HONEST_TESTS),
    Case("fill_tmp", "with open('/tmp/fill', 'wb') as f:\n    for _ in range(700):\n        f.write(b'0' * 2 ** 20)\n",
         "memory_limit", limits=Limits(timeout_s=15.0, memory_mb=256, output_bytes=4096, file_mb=1024)),
    Case("write_run_lock", "open('/run/lock/sandbox-' + {token8!r}, 'w').write('x' * (8 << 20))\n", "error"),
    Case("write_host_dev_shm", "open('/dev/shm/sandbox-' + {token8!r}, 'w').write('x')\ndef add(a, b):\n    return a + b\n",
         "passed", tests=HONEST_TESTS),  # lands in the worker's private /dev/shm; the test checks the host's
    Case("read_session_keyring",
         "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.syscall.restype = ctypes.c_long\n"
         "out = []\nfor ring in (-3, -4, -5, -2, -1):\n    buf = ctypes.create_string_buffer(4096)\n"
         "    n = libc.syscall(250, 11, ring, buf, 4096)\n    out.append(buf.raw[:max(n, 0)])\n"
         "for line in open('/proc/keys'):\n    key = int(line.split()[0], 16)\n    buf = ctypes.create_string_buffer(4096)\n"
         "    n = libc.syscall(250, 11, key, buf, 4096)\n    if n > 0:\n        out.append(buf.raw[:n])\n"
         "print(out)\ndef add(a, b):\n    return a + b\n", "passed", tests=HONEST_TESTS),
    Case("memfd_growth",
         "import os\nfd = os.memfd_create('x')\nfor _ in range(600):\n    os.write(fd, b'x' * (1 << 20))\n",
         "memory_limit", limits=Limits(timeout_s=15.0, memory_mb=256, output_bytes=4096, file_mb=1024)),
    Case("children_together_over_the_limit",
         "import os, time\nkids = []\nfor _ in range(4):\n    pid = os.fork()\n    if pid == 0:\n"
         "        block = bytearray(150 << 20)\n        for i in range(0, len(block), 4096):\n            block[i] = 1\n"
         "        time.sleep(30)\n        os._exit(0)\n    kids.append(pid)\ntime.sleep(30)\n", "memory_limit",
         limits=Limits(timeout_s=10.0, memory_mb=256, output_bytes=4096, file_mb=16)),
    Case("ptrace_or_read_the_judge",
         "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nseen = []\n"
         "for pid in [p for p in os.listdir('/proc') if p.isdigit()]:\n    if int(pid) == os.getpid():\n        continue\n"
         "    if libc.ptrace(16, int(pid), 0, 0) == 0:\n        seen.append(('attached', pid))\n"
         "    for what in ('mem', 'environ', 'cmdline'):\n        try:\n"
         "            seen.append((what, open(f'/proc/{pid}/{what}', 'rb').read(64)))\n        except OSError:\n"
         "            pass\n    try:\n        seen.append(('fd', os.listdir(f'/proc/{pid}/fd')))\n    except OSError:\n        pass\n"
         "def add(a, b):\n    return 0 if not [s for s in seen if s[0] in ('attached', 'mem', 'fd')] else a + b\n",
         "failed", tests=HONEST_TESTS, in_process="failed"),
    Case("kill_the_judge_and_everything",
         "import os, signal\nfor pid in [int(p) for p in os.listdir('/proc') if p.isdigit()]:\n"
         "    for sig in (signal.SIGSTOP, signal.SIGKILL):\n        try:\n            os.kill(pid, sig)\n"
         "        except OSError:\n            pass\ndef add(a, b):\n    return 0\n", "timeout"),  # it stops itself too
    Case("garbage_on_the_judges_channel",
         "import os\ndef add(a, b):\n    for fd in range(3, 20):\n        try:\n            os.write(fd, b'\\xff' * 64)\n"
         "        except OSError:\n            pass\n    return a + b\n", "tampering", tests=HONEST_TESTS,
         in_process="passed"),  # in-process its report descriptor is elsewhere: the honest sum passes
    Case("reply_before_being_asked",
         "import os, json, struct\ndef _say(msg):\n    data = json.dumps(msg).encode()\n"
         "    os.write(4, struct.pack('>I', len(data)) + data)\n_say(['ret', 3, []])\n_say(['ret', 0, []])\n"
         "def add(a, b):\n    return 0\n", "tampering", tests=HONEST_TESTS, in_process="error"),
    Case("refer_to_objects_of_the_judge_it_was_never_given",
         "import os, json, struct\ndef add(a, b):\n    data = json.dumps(['call', {'j': 999}, [], {'d': []}]).encode()\n"
         "    os.write(4, struct.pack('>I', len(data)) + data)\n    return 0\n", "tampering", tests=HONEST_TESTS,
         in_process="error"),
    Case("read_the_globals_of_a_callback",
         "def apply(key, xs):\n    leaks = []\n    for name in ('__globals__', '__closure__', '__code__', '__self__'):\n"
         "        try:\n            leaks.append(getattr(key, name))\n        except AttributeError:\n            pass\n"
         "    return 'EXPECTED' if leaks else sorted(xs, key=key)\n", "passed",
         tests="expected = [3, 2, 1]\nassert apply(lambda v: -v, [1, 2, 3]) == expected",
         in_process="failed"),  # judged, it cannot read them; in-process it can (and then answers wrongly)
    Case("huge_return_value", "def f():\n    return 'x' * 70_000_000\n", "error", error_type="OverflowError",
         tests="assert len(f()) == 70_000_000", limits=Limits(timeout_s=30.0, memory_mb=2048, output_bytes=4096),
         in_process="passed"),  # judged: over the 64 MiB a message may carry
    Case("deeply_nested_return",
         "def f():\n    x = []\n    for _ in range(5000):\n        x = [x]\n    return x\n", "failed",
         tests="x = f()\nfor _ in range(5000):\n    assert len(x) == 1\n    x = x[0]\nassert x == 1\n"),
    Case("hostile_repr_in_failure_message",
         "class R:\n    def __repr__(self):\n        return 'R' * (100 << 20)\ndef add(a, b):\n    return R()\n", "failed",
         tests="import unittest\nfrom solution import add\nclass T(unittest.TestCase):\n    def test_add(self):\n"
         "        self.assertEqual(add(1, 2), 3)\n", style="unittest",
         limits=Limits(timeout_s=30.0, memory_mb=1024, output_bytes=4096)),
]  # fmt: skip

CASES = OLD_CASES + NEW_CASES
