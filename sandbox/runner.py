"""The trusted runner: executes untrusted code and its tests inside the forked child, then reports once.

The untrusted code shares this process, so the runner defends its verdict rather than trusting the process:
- everything it needs later (os.write, os._exit, json) is captured at import, before any untrusted code runs;
- the report carries a per-job nonce, read from a pipe only after the tests ran (so it is in no Python object
  while untrusted code runs), and is the only thing written to the result descriptor; garbage or a wrong
  nonce there is `tampering`, and a process that ends without a report never passes;
- comparisons in the tests are rewritten to a guard that rejects values whose comparison methods were written by
  the untrusted code (always-equal objects, lying `str` subclasses);
- builtins, unittest internals and trace hooks are snapshotted before the code runs and checked afterwards;
- with coverage on, the runner installs its own line tracer (limited to the solution's frames); the check
  accepts that one object and no other hook, and the covered lines travel in the nonce-signed report.
"""

from __future__ import annotations

import ast
import builtins
import ctypes
import functools
import gc
import json
import operator
import os
import sys
import threading
import traceback
import types
import unittest
from typing import Any, NoReturn

from sandbox import pytest_style

REPORT_MAGIC = b"SBX1"
TRACEBACK_CHARS = 2000
MESSAGE_CHARS = 300

_write = os.write
_exit = os._exit
_getpid = os.getpid
_read = os.read
_dumps = json.dumps
_gettrace = sys.gettrace
_getprofile = sys.getprofile
_settrace = sys.settrace
_thread_settrace = threading.settrace
_addaudithook = sys.addaudithook
_getframe = sys._getframe
# Auditing events raised whenever a trace or profile function is installed, from Python or from C.
_HOOK_EVENTS = frozenset({"sys.settrace", "sys.setprofile"})
_THREAD_BOOTSTRAP = threading.Thread._bootstrap_inner.__code__
_type = type
_isinstance = isinstance
_id = id
_len = len
_CO_NEWLOCALS = 0x2  # inspect.CO_NEWLOCALS: set on function code objects
_SANDBOX_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep  # the sandbox's own frames are not shown
_THIS_MODULE = sys.modules[__name__]  # jobs remove it from sys.modules; the watch list keeps it
# unittest's own frames say nothing about the code under test (unittest hides them from its reports too).
_UNITTEST_DIR = os.path.dirname(unittest.__file__) + os.sep

_COMPARE_OPS: dict[type, Any] = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
_OP_FUNCS = list(_COMPARE_OPS.values())
_OP_INDEX = {op: i for i, op in enumerate(_COMPARE_OPS)}
_PLAIN_SCALARS = (type(None), bool, int, float, complex, str, bytes)
_CONTAINERS = (list, tuple, set, frozenset, dict)
# pytest.approx(...) wraps plain expected values: the guard looks inside it as into a container.
_APPROX_TYPES = pytest_style.APPROX_TYPES
# What `import pytest` gives the tests and the code inside the sandbox (made once, in the fork server).
PYTEST_API = pytest_style.api()


class TamperingDetected(BaseException):
    """Raised by the guards; a BaseException so that `except Exception` in the tests cannot swallow it."""


# Per-run facts the guards need, reset in each child. A dict whose *contents* change, so that the watched
# module and class dictionaries themselves never change during an honest run.
_RUN: dict[str, Any] = {"code_module": "solution", "tampering": [], "asserts": 0}


def _walk(x: Any, budget: list[int]):
    """Yield x and the items inside builtin containers, up to a node budget (huge values stay cheap)."""
    stack = [x]
    while stack and budget[0] > 0:
        budget[0] -= 1
        v = stack.pop()
        yield v
        t = _type(v)
        if t is dict:
            stack.extend(v.keys())
            stack.extend(v.values())
        elif t in _CONTAINERS:
            stack.extend(v)
        elif t in _APPROX_TYPES:
            stack.append(v.expected)


def _is_plain(x: Any) -> bool:
    return all(
        _type(v) in _PLAIN_SCALARS or _type(v) in _CONTAINERS or _type(v) in _APPROX_TYPES
        for v in _walk(x, [10000])
    )


_COMPARISONS = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__contains__")


def _foreign_class(x: Any) -> str | None:
    """The class of a value in x whose comparisons were written by the untrusted code (they may lie)."""
    module = _RUN["code_module"]
    for v in _walk(x, [10000]):
        for klass in _type(v).__mro__:
            if getattr(klass, "__module__", None) == module and any(m in vars(klass) for m in _COMPARISONS):
                return _type(v).__name__
    return None


def check_operands(a: Any, b: Any) -> None:
    """Reject comparing a value built by the tests (plain data) with an object the code defined."""
    for suspect, other in ((a, b), (b, a)):
        name = _foreign_class(suspect)
        if name is not None and _is_plain(other):
            reason = f"an object of class {name} defined by the code was compared with plain data"
            _RUN["tampering"].append(reason)
            raise TamperingDetected(reason)


def guarded_compare(op_index: int, a: Any, b: Any) -> Any:
    check_operands(a, b)
    return _OP_FUNCS[op_index](a, b)


def count_assert() -> None:
    _RUN["asserts"] += 1


class _GuardTests(ast.NodeTransformer):
    """Route single comparisons through `guarded_compare` and count every executed assert."""

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if _len(node.ops) != 1 or _type(node.ops[0]) not in _OP_INDEX:
            return node
        call = ast.Call(
            func=ast.Name("__sandbox_compare__", ast.Load()),
            args=[ast.Constant(_OP_INDEX[_type(node.ops[0])]), node.left, node.comparators[0]],
            keywords=[],
        )
        return ast.copy_location(call, node)

    def visit_Assert(self, node: ast.Assert) -> list[ast.stmt]:
        self.generic_visit(node)
        tick = ast.Expr(ast.Call(ast.Name("__sandbox_count_assert__", ast.Load()), [], []))
        return [ast.copy_location(tick, node), node]


def guard_tests(tree: ast.Module) -> ast.Module:
    return ast.fix_missing_locations(_GuardTests().visit(tree))


def _install_guard_names(namespace: dict) -> None:
    namespace["__sandbox_compare__"] = guarded_compare
    namespace["__sandbox_count_assert__"] = count_assert


_GUARDED_ASSERTS = (
    "assertEqual",
    "assertNotEqual",
    "assertAlmostEqual",
    "assertNotAlmostEqual",
    "assertIn",
    "assertNotIn",
    "assertCountEqual",
    "assertSequenceEqual",
    "assertListEqual",
    "assertTupleEqual",
    "assertSetEqual",
    "assertDictEqual",
    "assertMultiLineEqual",
    "assertGreater",
    "assertGreaterEqual",
    "assertLess",
    "assertLessEqual",
)


def _guarded_assert(original):
    def method(self, first, second, *args, **kwargs):
        check_operands(first, second)
        return original(self, first, second, *args, **kwargs)

    method.__name__ = original.__name__
    method.__sandbox_guard__ = True
    return method


def install_unittest_guards() -> None:
    """Wrap TestCase's comparing asserts once, in the fork server, before any untrusted code exists."""
    for name in _GUARDED_ASSERTS:
        original = getattr(unittest.TestCase, name)
        if not getattr(original, "__sandbox_guard__", False):
            setattr(unittest.TestCase, name, _guarded_assert(original))


def _watched_dicts() -> list[tuple[str, dict]]:
    """The namespaces whose change means tampering: builtins, unittest's machinery and this runner."""
    mods = [
        builtins,
        unittest.case,
        unittest.result,
        unittest.suite,
        unittest.loader,
        _THIS_MODULE,
        pytest_style,
    ]
    targets = [(m.__name__, vars(m)) for m in mods] + [("pytest", vars(PYTEST_API))]
    watched_classes = (
        unittest.TestCase,
        unittest.TestResult,
        unittest.TestSuite,
        unittest.TestLoader,
        _Recorder,
    )
    pytest_classes = tuple(
        v
        for v in vars(pytest_style).values()
        if isinstance(v, type) and v.__module__ == pytest_style.__name__
    )
    for cls in watched_classes + pytest_classes:
        # A class's attributes live in a real dict behind its read-only mappingproxy.
        targets.append((cls.__qualname__, gc.get_referents(cls.__dict__)[0]))
    return targets


def _version_reader():
    """CPython keeps a version tag in every dict (PEP 509) that changes on each modification.

    Reading it touches no object in the watched dicts, so the forked child stays cheap (no copy-on-write
    faults). The layout is checked on a probe dict first; None if this interpreter does not behave so.
    """
    try:
        offset = 3 * ctypes.sizeof(ctypes.c_ssize_t)  # after ob_refcnt, ob_type, ma_used
        views: dict[int, Any] = {}

        def read(d: dict) -> int:
            # One ctypes view per watched dict, made in the server: the child only reads it.
            view = views.get(_id(d))
            if view is None:
                view = views[_id(d)] = ctypes.c_uint64.from_address(_id(d) + offset)
            return view.value

        probe, other = {"a": 1}, {}
        before = read(probe)
        probe["a"] = 2
        after = read(probe)
        other["b"] = 1
        if sys.implementation.name == "cpython" and before != after and read(probe) == after:
            return read
    except (AttributeError, ValueError, OSError):
        pass
    return None


_read_version = _version_reader()


def take_snapshot() -> list[tuple[str, dict, int | None, dict[str, int]]]:
    """(name, namespace, version tag, identities of its values), taken once in the fork server."""
    return [
        (name, d, _read_version(d) if _read_version is not None else None, {k: _id(v) for k, v in d.items()})
        for name, d in _watched_dicts()
    ]


def tampered(
    snapshot: list[tuple[str, dict, int | None, dict[str, int]]], own_tracer: Any = None
) -> list[str]:
    """Watched names whose value was replaced or removed since the snapshot, and installed trace hooks.

    `own_tracer` is the runner's coverage tracer (or None): the one hook allowed to remain. Any other object
    (a wrapper around it included) is tampering; a removed tracer only lowers the coverage.

    An unchanged version tag proves nothing changed without touching any value; only a namespace that was
    written to is compared value by value, so a patch that was undone (`mock.patch("builtins.input")` in a
    unittest test) is not tampering, while one left in place is.
    """
    reasons = []
    for name, d, version, ids in snapshot:
        if version is not None and _read_version(d) == version:
            continue
        changed = [k for k, ident in ids.items() if k not in d or _id(d[k]) != ident]
        if changed:
            reasons.append(f"{name}.{changed[0]} was replaced")
    trace, thread_trace = _gettrace(), threading._trace_hook
    if (
        (trace is not None and trace is not own_tracer)
        or (thread_trace is not None and thread_trace is not own_tracer)
        or _getprofile() is not None
    ):
        reasons.append("a trace or profile hook was installed")
    return reasons


class _Recorder(unittest.TestResult):
    """Records each test's outcome by id; our own class so patching TextTestResult changes nothing."""

    def __init__(self) -> None:
        super().__init__()
        self.outcomes: dict[str, dict] = {}

    def _record(self, test, outcome: str, err=None) -> None:
        entry = {"outcome": outcome}
        if err is not None:
            entry.update(describe_exception(err[1]))
            if sum(e["outcome"] != "ok" for e in self.outcomes.values()) >= 5:
                entry["traceback"] = ""  # keep the report small however many tests fail
        self.outcomes.setdefault(test.id(), entry)
        if outcome != "ok":
            self.outcomes[test.id()] = entry

    def addSuccess(self, test):
        self._record(test, "ok")

    def addFailure(self, test, err):
        self._record(test, "failed", err)

    def addError(self, test, err):
        self._record(test, "error", err)

    def addSkip(self, test, reason):
        # A skip raised from inside the code (not a decorator) would let wrong code "pass".
        method = getattr(test, getattr(test, "_testMethodName", ""), None)
        declared = getattr(test, "__unittest_skip__", False) or getattr(method, "__unittest_skip__", False)
        self._record(test, "skipped" if declared else "error", None)
        if not declared:
            self.outcomes[test.id()].update(
                error_type="SkipTest", message=f"skipped from inside the code: {reason}"
            )

    def addExpectedFailure(self, test, err):
        self._record(test, "ok")

    def addUnexpectedSuccess(self, test):
        self._record(test, "failed")

    def addSubTest(self, test, subtest, err):
        if err is not None:
            failed = issubclass(err[0], test.failureException)
            self._record(test, "failed" if failed else "error", err)


def trim_traceback(text: str) -> str:
    if _len(text) <= TRACEBACK_CHARS:
        return text
    head = TRACEBACK_CHARS // 4
    return text[:head] + "\n  ...\n" + text[-(TRACEBACK_CHARS - head) :]


def describe_exception(exc: BaseException) -> dict:
    """Type, one-line message, trimmed traceback (runner frames and run-dir paths removed), failing line."""
    try:
        frames = [
            f
            for f in traceback.extract_tb(exc.__traceback__)
            if not f.filename.startswith(_SANDBOX_DIR) and not f.filename.startswith(_UNITTEST_DIR)
        ]
        text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
        text += "".join(traceback.format_exception_only(_type(exc), exc))
        text = text.replace(os.getcwd() + os.sep, "")
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        test_frames = [f for f in frames if f.filename == _RUN.get("tests_path")]
        line = (test_frames[-1].line or "").strip() if test_frames else None
        code = exc.errno if _isinstance(exc, OSError) and _type(exc.errno) is int else None
    except BaseException as err:  # noqa: BLE001 - a hostile __str__ must not break the report
        text, message, line = f"<exception could not be formatted: {_type(err).__name__}>", "", None
        code = None
    return {
        "errno": code,
        "error_type": _type(exc).__name__,
        "message": message[:MESSAGE_CHARS],
        "traceback": trim_traceback(text),
        "failing_line": line,
    }


def _send(fd: int, nonce_fd: int, report: dict, owner: int) -> NoReturn:
    if _getpid() != owner:
        _exit(0)  # a process the code forked finished the tests too; only the job itself reports
    try:
        report["nonce"] = _read(nonce_fd, 64).decode()
    except OSError:
        report["nonce"] = ""  # the code closed or drained it: the server will see a wrong nonce
    data = REPORT_MAGIC + _dumps(report, default=str).encode()
    try:
        while data:
            data = data[_write(fd, data) :]
    finally:
        _exit(0)


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 - the code may have replaced or closed the stream
            pass


def _exec_code(code: str, path: str, namespace: dict, report: dict, exit_ok: bool = False) -> bool:
    """Compile and run the solution; False (with the report filled in) when it fails.

    `exit_ok`: a program (stdio style) may end itself with sys.exit(0); a module under test may not.
    """
    try:
        compiled = compile(code, path, "exec")
    except (SyntaxError, ValueError) as exc:
        report.update(phase="compile", exception=describe_exception(exc))
        return False
    report["phase"] = "code"
    try:
        exec(compiled, namespace)
    except SystemExit as exc:
        if exit_ok and exc.code in (0, None):
            return True
        report["exception"] = describe_exception(exc)
        return False
    except BaseException as exc:  # noqa: BLE001 - everything the code raises is a result
        if _isinstance(exc, MemoryError):
            namespace.clear()  # free what the code holds, so the report can still be written
        report["exception"] = describe_exception(exc)
        return False
    return True


@functools.lru_cache(maxsize=512)
def compile_tests(tests: str, path: str, style: str) -> tuple[tuple, dict | None]:
    """The guarded test code, compiled once per distinct test source in the fork server.

    Script tests become one code object per top-level statement, so the report can say how far they got.
    Returns (code objects, None) or ((), description of the SyntaxError).
    """
    try:
        tree = ast.parse(tests, path)
    except SyntaxError as exc:
        return (), describe_exception(exc)
    if style in ("unittest", "pytest"):
        return (compile(guard_tests(tree), path, "exec"),), None
    return tuple(compile(guard_tests(ast.Module([s], [])), path, "exec") for s in tree.body), None


def _run_script(spec: dict, report: dict) -> None:
    namespace = {"__name__": spec["module_name"], "__builtins__": builtins, "__file__": spec["code_path"]}
    if not _exec_code(spec["code"], spec["code_path"], namespace, report):
        return
    report["phase"] = "tests"
    statements, error = spec["compiled_tests"]
    if error is not None:
        report.update(phase="tests_compile", exception=error)
        return
    for statement in statements:
        _install_guard_names(namespace)
        try:
            exec(statement, namespace)
        except BaseException as exc:  # noqa: BLE001 - a failing or hostile test is a result
            report["exception"] = describe_exception(exc)
            return
        report["statements"] += 1


def _load_module(name: str, path: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    return module


def _run_unittest(spec: dict, report: dict) -> None:
    solution = _load_module(spec["module_name"], spec["code_path"])
    if not _exec_code(spec["code"], spec["code_path"], vars(solution), report):
        return
    report["phase"] = "tests"
    compiled, error = spec["compiled_tests"]
    if error is not None:
        report.update(phase="tests_compile", exception=error)
        return
    try:
        module = _load_module("test_" + spec["module_name"], spec["tests_path"])
        _install_guard_names(vars(module))
        exec(compiled[0], vars(module))
        suite = unittest.TestLoader().loadTestsFromModule(module)
        recorder = _Recorder()
        suite.run(recorder)
    except BaseException as exc:  # noqa: BLE001
        report["exception"] = describe_exception(exc)
        return
    report["outcomes"] = recorder.outcomes


def _run_pytest(spec: dict, report: dict) -> None:
    solution = _load_module(spec["module_name"], spec["code_path"])
    if not _exec_code(spec["code"], spec["code_path"], vars(solution), report):
        return
    report["phase"] = "tests"
    compiled, error = spec["compiled_tests"]
    if error is not None:
        report.update(phase="tests_compile", exception=error)
        return
    outcomes: dict[str, dict] = {}

    def record(test_id: str, outcome: str, exc: BaseException | None) -> None:
        entry = {"outcome": outcome}
        if exc is not None and outcome in ("failed", "error"):
            entry.update(describe_exception(exc))
            if sum(e["outcome"] in ("failed", "error") for e in outcomes.values()) >= 5:
                entry["traceback"] = ""  # keep the report small however many tests fail
        outcomes.setdefault(test_id, entry)
        if outcome in ("failed", "error"):
            outcomes[test_id] = entry

    try:
        module = _load_module("test_" + spec["module_name"], spec["tests_path"])
        _install_guard_names(vars(module))
        exec(compiled[0], vars(module))
        pytest_style.run_module(module, record)
    except BaseException as exc:  # noqa: BLE001 - an error while collecting is the run's error
        report["exception"] = describe_exception(exc)
        return
    report["outcomes"] = outcomes


def _run_stdio(spec: dict, report: dict) -> None:
    namespace = {"__name__": "__main__", "__builtins__": builtins, "__file__": spec["code_path"]}
    _exec_code(spec["code"], spec["code_path"], namespace, report, exit_ok=True)


_STYLE_RUNNERS = {
    "script": _run_script,
    "unittest": _run_unittest,
    "pytest": _run_pytest,
    "stdio": _run_stdio,
}


def _line_tracer(unseen: set[int], record) -> Any:
    """The local tracer of one solution code object: records each line, and once every line of the code has
    been seen, turns line events off for the frame (hot loops then run at almost full speed)."""

    def trace_lines(frame, event, arg):
        if event == "line":
            line = frame.f_lineno
            record(line)
            unseen.discard(line)
            if not unseen:
                frame.f_trace_lines = False
        return trace_lines

    return trace_lines


def start_coverage(code_path: str) -> tuple[Any, set[int]]:
    """Install a line tracer for this thread and threads started later; (the tracer, the lines it records).

    Only frames whose code was compiled from `code_path` (the solution) get a line tracer; every other frame
    (tests, runner, stdlib) costs one call event. A code object whose lines have all been seen gets no line
    tracer any more: a function's first line is left out of that test, because its own frame never reports
    its `def` line (the enclosing frame, which ran the `def`, did). Code that compiles other text under the
    solution's file name, or reaches into the set, can inflate its own coverage: that matters to a coverage
    filter only, since coverage never changes the verdict.
    """
    covered: set[int] = set()
    record = covered.add
    tracers: dict[int, tuple[Any, set[int], Any]] = {}  # id(code) -> (code, its unseen lines, its tracer)

    def trace_calls(frame, event, arg):
        code = frame.f_code
        if code.co_filename != code_path:
            return None
        entry = tracers.get(_id(code))
        if entry is None or entry[0] is not code:
            unseen = {line for _, _, line in code.co_lines() if line is not None and line > 0}
            if code.co_flags & _CO_NEWLOCALS:  # a function, lambda or comprehension, not a module
                unseen.discard(code.co_firstlineno)
            entry = tracers[_id(code)] = (code, unseen, _line_tracer(unseen, record))
        return entry[2] if entry[1] else None

    _thread_settrace(trace_calls)
    _settrace(trace_calls)
    return trace_calls, covered


def forbid_trace_hooks(own_tracer: Any, found: list[str]) -> None:
    """Refuse, from now until the job exits, every trace or profile function the code tries to install.

    A tracer can set `f_lineno` on a test's frame and jump over its asserts, then remove itself before the
    end-of-run tamper check looks: so installing one is blocked when it happens (the call raises) and recorded in
    `found`. An audit hook cannot be removed. Allowed: new threads installing the runner's own coverage tracer
    (`own_tracer`), and the runner's `stop_coverage` removing it.
    """
    allowed_callers = {stop_coverage.__code__}

    def audit(event: str, args: tuple) -> None:
        if event not in _HOOK_EVENTS:
            return
        caller = _getframe(1).f_code
        if caller in allowed_callers:
            return
        if (
            own_tracer is not None
            and caller is _THREAD_BOOTSTRAP
            and event == "sys.settrace"
            and threading._trace_hook is own_tracer
        ):
            return
        found.append(f"a trace or profile hook was installed (the code called {event})")
        raise RuntimeError("the sandbox does not allow trace or profile functions")

    _addaudithook(audit)


def stop_coverage(covered: set[int]) -> list[int] | None:
    """Remove the tracers and return the covered lines as sorted ints (the code may have added junk)."""
    _settrace(None)
    _thread_settrace(None)
    try:
        return sorted(v for v in covered if _type(v) is int)
    except BaseException:  # noqa: BLE001 - e.g. a set made huge by the code: no coverage, still a report
        return None


def execute(spec: dict, result_fd: int, nonce_fd: int, snapshot: list) -> NoReturn:
    """Run one job in this (already isolated) child and report to `result_fd`; never returns.

    The report is signed with the nonce read from `nonce_fd` only after the tests ran. `snapshot` is
    `take_snapshot()` from the fork server, before any untrusted code existed.
    """
    owner = _getpid()
    sys.modules["pytest"] = (
        PYTEST_API  # the tests and the code get the sandbox's pytest subset, never a plugin host
    )
    _RUN.update(code_module=spec["module_name"], tests_path=spec.get("tests_path"), tampering=[], asserts=0)
    report: dict = {"phase": "start", "statements": 0, "exception": None}
    # A local, not in _RUN: the code cannot swap the object the tamper check accepts as the runner's tracer.
    tracer, covered = start_coverage(spec["code_path"]) if spec.get("coverage") else (None, None)
    hooks_found: list[str] = []
    forbid_trace_hooks(tracer, hooks_found)
    try:
        _STYLE_RUNNERS[spec["style"]](spec, report)
    except BaseException as exc:  # noqa: BLE001 - e.g. KeyboardInterrupt raised inside a guard
        report["exception"] = describe_exception(exc)
    _flush_std()
    report["tampering"] = _RUN["tampering"] + hooks_found[:1] + tampered(snapshot, tracer)
    if covered is not None:
        report["covered_lines"] = stop_coverage(covered)
    report["asserts"] = _RUN["asserts"]
    report["done"] = True
    _send(result_fd, nonce_fd, report, owner)
