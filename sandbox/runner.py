"""The trusted runner: executes untrusted code and its tests inside the forked child, then reports once.

The untrusted code shares this process, so the runner defends its verdict rather than trusting the process:
- everything it needs later (os.write, os._exit, json) is captured at import, before any untrusted code runs;
- the report carries a per-job nonce and is the only thing written to the result descriptor; garbage or a wrong
  nonce there is `tampering`, and a process that ends without a report never passes;
- comparisons in the tests are rewritten to a guard that rejects values whose comparison methods were written by
  the untrusted code (always-equal objects, lying `str` subclasses);
- builtins, unittest internals and trace hooks are snapshotted before the code runs and checked afterwards.
"""

from __future__ import annotations

import ast
import builtins
import json
import operator
import os
import sys
import threading
import traceback
import types
import unittest
from typing import Any, NoReturn

REPORT_MAGIC = b"SBX1"
TRACEBACK_CHARS = 2000
MESSAGE_CHARS = 300

_write = os.write
_close = os.close
_exit = os._exit
_getpid = os.getpid
_dumps = json.dumps
_gettrace = sys.gettrace
_getprofile = sys.getprofile
_type = type
_isinstance = isinstance
_id = id
_len = len
_RUNNER_FILE = __file__

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


class TamperingDetected(BaseException):
    """Raised by the guards; a BaseException so that `except Exception` in the tests cannot swallow it."""


class _State:
    """Per-run facts the guards need; lives in the runner module, reset in each child."""

    code_module = "solution"
    tampering: list[str] = []
    asserts_run = 0


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


def _is_plain(x: Any) -> bool:
    return all(_type(v) in _PLAIN_SCALARS or _type(v) in _CONTAINERS for v in _walk(x, [10000]))


def _is_foreign(x: Any) -> bool:
    """True if x holds a value whose class was defined by the untrusted code (it may lie when compared)."""
    return any(getattr(_type(v), "__module__", None) == _State.code_module for v in _walk(x, [10000]))


def check_operands(a: Any, b: Any) -> None:
    """Reject comparing a value built by the tests (plain data) with an object the code defined."""
    if (_is_foreign(a) and _is_plain(b)) or (_is_foreign(b) and _is_plain(a)):
        reason = f"compared a {_type(a).__name__} from the code with plain data; its comparison may lie"
        _State.tampering.append(reason)
        raise TamperingDetected(reason)


def guarded_compare(op_index: int, a: Any, b: Any) -> Any:
    check_operands(a, b)
    return _OP_FUNCS[op_index](a, b)


def count_assert() -> None:
    _State.asserts_run += 1


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


def _snapshot_targets() -> list[tuple[str, dict]]:
    mods = [
        builtins,
        unittest,
        unittest.case,
        unittest.result,
        unittest.suite,
        unittest.loader,
        sys.modules[__name__],
    ]
    targets = [(m.__name__, vars(m)) for m in mods]
    for cls in (
        unittest.TestCase,
        unittest.TestResult,
        unittest.TestSuite,
        unittest.TestLoader,
        _Recorder,
        _State,
    ):
        targets.append((cls.__qualname__, vars(cls)))
    return targets


def take_snapshot() -> list[tuple[str, dict, dict]]:
    return [(name, d, {k: _id(v) for k, v in list(d.items())}) for name, d in _snapshot_targets()]


def tampered(snapshot: list[tuple[str, dict, dict]]) -> list[str]:
    """Names changed since the snapshot (existing entries replaced or removed; additions are harmless)."""
    reasons = []
    for name, d, ids in snapshot:
        for key, ident in ids.items():
            if key in ("tampering", "asserts_run"):
                continue
            if key not in d or _id(d[key]) != ident:
                reasons.append(f"{name}.{key} was replaced")
    if _gettrace() is not None or _getprofile() is not None or threading._trace_hook is not None:
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
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename != _RUNNER_FILE]
        text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
        text += "".join(traceback.format_exception_only(_type(exc), exc))
        text = text.replace(os.getcwd() + os.sep, "")
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        test_frames = [f for f in frames if os.path.basename(f.filename).startswith("test")]
        line = (test_frames[-1].line or "").strip() if test_frames else None
    except BaseException as err:  # noqa: BLE001 - a hostile __str__ must not break the report
        text, message, line = f"<exception could not be formatted: {_type(err).__name__}>", "", None
    return {
        "errno": exc.errno if _isinstance(exc, OSError) else None,
        "error_type": _type(exc).__name__,
        "message": message[:MESSAGE_CHARS],
        "traceback": trim_traceback(text),
        "failing_line": line,
    }


def _send(fd: int, nonce: str, report: dict, owner: int) -> NoReturn:
    if _getpid() != owner:
        _exit(0)  # a process the code forked finished the tests too; only the job itself reports
    report["nonce"] = nonce
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


def _run_script(spec: dict, report: dict) -> None:
    namespace = {"__name__": spec["module_name"], "__builtins__": builtins, "__file__": spec["code_path"]}
    if not _exec_code(spec["code"], spec["code_path"], namespace, report):
        return
    report["phase"] = "tests"
    try:
        tree = ast.parse(spec["tests"], spec["tests_path"])
    except SyntaxError as exc:
        report.update(phase="tests_compile", exception=describe_exception(exc))
        return
    # One top-level statement at a time, so the report says how far the tests got.
    for statement in tree.body:
        _install_guard_names(namespace)
        try:
            exec(compile(guard_tests(ast.Module([statement], [])), spec["tests_path"], "exec"), namespace)
        except BaseException as exc:  # noqa: BLE001 - a failing or hostile test is a result
            report["exception"] = describe_exception(exc)
            return
        report["statements"] += 1


def _load_module(name: str, source: str, path: str, tree: ast.Module | None, report: dict) -> Any:
    module = types.ModuleType(name)
    module.__file__ = path
    sys.modules[name] = module
    if tree is None:
        return module if _exec_code(source, path, vars(module), report) else None
    _install_guard_names(vars(module))
    exec(compile(tree, path, "exec"), vars(module))
    return module


def _run_unittest(spec: dict, report: dict) -> None:
    if _load_module(spec["module_name"], spec["code"], spec["code_path"], None, report) is None:
        return
    report["phase"] = "tests"
    try:
        tree = guard_tests(ast.parse(spec["tests"], spec["tests_path"]))
    except SyntaxError as exc:
        report.update(phase="tests_compile", exception=describe_exception(exc))
        return
    try:
        module = _load_module("test_" + spec["module_name"], spec["tests"], spec["tests_path"], tree, report)
        suite = unittest.TestLoader().loadTestsFromModule(module)
        recorder = _Recorder()
        suite.run(recorder)
    except BaseException as exc:  # noqa: BLE001
        report["exception"] = describe_exception(exc)
        return
    report["unittest"] = recorder.outcomes
    report["statements"] = _len(tree.body)


def _run_stdio(spec: dict, report: dict) -> None:
    namespace = {"__name__": "__main__", "__builtins__": builtins, "__file__": spec["code_path"]}
    _exec_code(spec["code"], spec["code_path"], namespace, report, exit_ok=True)


_STYLE_RUNNERS = {"script": _run_script, "unittest": _run_unittest, "stdio": _run_stdio}


def execute(spec: dict, result_fd: int) -> NoReturn:
    """Run one job in this (already isolated) child and report to `result_fd`; never returns."""
    nonce = spec.pop("nonce")
    owner = _getpid()
    _State.code_module = spec["module_name"]
    _State.tampering = []
    _State.asserts_run = 0
    report: dict = {"phase": "start", "statements": 0, "exception": None}
    snapshot = take_snapshot()
    try:
        _STYLE_RUNNERS[spec["style"]](spec, report)
    except BaseException as exc:  # noqa: BLE001 - e.g. KeyboardInterrupt raised inside a guard
        report["exception"] = describe_exception(exc)
    _flush_std()
    report["tampering"] = _State.tampering + tampered(snapshot)
    report["asserts"] = _State.asserts_run
    report["done"] = True
    _send(result_fd, nonce, report, owner)
