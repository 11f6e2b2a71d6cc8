"""Deciding a job's status in the server, from evidence the untrusted code cannot forge alone.

Inputs: the report bytes (must carry the job's nonce), the exit status the keeper saw, why the server killed the
job (if it did), and the tests the server itself found in the test source.
"""

from __future__ import annotations

import ast
import errno
import functools
import hashlib
import json
import os
import signal

from sandbox.pytest_style import test_ids as pytest_test_ids
from sandbox.runner import REPORT_MAGIC

MEMORY_ERRORS = ("MemoryError",)
SYNTAX_ERRORS = ("SyntaxError", "IndentationError", "TabError")


def _base_names(node: ast.ClassDef) -> list[str]:
    names = []
    for base in node.bases:
        names.append(ast.unparse(base).rsplit(".", 1)[-1])
    return names


def unittest_test_ids(tests: str) -> set[str]:
    """`Class.test_method` for each test the source defines, following base classes within the module."""
    try:
        tree = ast.parse(tests)
    except SyntaxError:
        return set()
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}

    def methods(name: str, seen: frozenset = frozenset()) -> set[str]:
        node = classes.get(name)
        if node is None or name in seen:
            return set()
        own = {f.name for f in node.body if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)}
        found = {m for m in own if m.startswith("test")}
        for base in _base_names(node):
            found |= methods(base, seen | {name})
        return found

    def is_test_case(name: str, seen: frozenset = frozenset()) -> bool:
        node = classes.get(name)
        if node is None or name in seen:
            return name.endswith("TestCase")
        return any(is_test_case(b, seen | {name}) for b in _base_names(node))

    return {f"{c}.{m}" for c in classes if is_test_case(c) for m in methods(c)}


@functools.lru_cache(maxsize=512)
def expected_tests(style: str, tests: str | None, module_name: str) -> dict:
    """What the parent requires to have run: top-level test statements, or named unittest tests."""
    if style == "script":
        try:
            return {"statements": len(ast.parse(tests or "").body)}
        except SyntaxError:
            return {"statements": -1}
    if style == "unittest":
        return {"ids": sorted(unittest_test_ids(tests or ""))}
    if style == "pytest":
        return {"ids": sorted(pytest_test_ids(tests or ""))}
    return {}


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _parse_report(data: bytes, nonce_hash: str) -> tuple[dict | None, str | None]:
    """(report, None), (None, None) for no report, or (None, reason) for a forged or corrupt one."""
    if not data:
        return None, None
    if not data.startswith(REPORT_MAGIC):
        return None, "unexpected bytes on the result channel"
    try:
        report = json.loads(data[len(REPORT_MAGIC) :])
    except ValueError:
        return None, "the result channel carried more than one report or a corrupt one"
    nonce = report.get("nonce") if isinstance(report, dict) else None
    if not isinstance(nonce, str) or hashlib.sha256(nonce.encode()).hexdigest() != nonce_hash:
        return None, "a report with the wrong nonce was written to the result channel"
    if report.get("done") is not True:
        return None, "an incomplete report was written to the result channel"
    return report, None


def normalise_output(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def _from_exception(exc: dict, phase: str) -> dict:
    error_type = exc.get("error_type")
    status = "error"
    if exc.get("errno") == errno.EFBIG:
        status = "output_limit"  # a file grew past Limits.file_mb (Python ignores SIGXFSZ)
    elif error_type in MEMORY_ERRORS:
        status = "memory_limit"
    elif phase == "compile" and error_type in SYNTAX_ERRORS:
        status = "syntax_error"
    elif error_type == "TamperingDetected":
        status = "tampering"
    elif phase == "tests" and error_type == "AssertionError":
        status = "failed"
    message = exc.get("message") or ""
    if phase == "tests_compile":
        message = f"the tests do not compile: {message}"
    return {
        "status": status,
        "error_type": error_type,
        "message": message,
        "traceback": exc.get("traceback", ""),
        "failing_test": exc.get("failing_line") if phase == "tests" else None,
    }


def _outcomes_verdict(report: dict, expected: dict, module_name: str, style: str) -> dict:
    """The verdict of a unittest or pytest run from its per-test outcomes and the ids the source defines.

    A parametrized pytest test (`test_add[1-2]`) counts for the function it comes from (`test_add`).
    """
    prefix = f"test_{module_name}."
    outcomes = {k.removeprefix(prefix): v for k, v in (report.get("outcomes") or {}).items()}
    bad = {k: v for k, v in outcomes.items() if v["outcome"] not in ("ok", "skipped")}
    result = {"tests_run": len(outcomes), "tests_failed": len(bad)}
    if bad:
        name, first = next(iter(bad.items()))  # the first test that failed, in the order they ran
        status = "failed" if first["outcome"] == "failed" else "error"
        if first.get("error_type") in MEMORY_ERRORS:
            status = "memory_limit"
        elif first.get("error_type") == "TamperingDetected":
            status = "tampering"
        return dict(
            result,
            status=status,
            error_type=first.get("error_type"),
            message=first.get("message") or first.get("failing_line") or "",
            traceback=first.get("traceback", ""),
            failing_test=name,
        )
    ran = {k.split("[", 1)[0] for k in outcomes} if style == "pytest" else set(outcomes)
    missing = sorted(set(expected["ids"]) - ran)
    if missing:
        message = f"{len(missing)} test(s) in the test file never ran: {', '.join(missing[:5])}"
        return dict(
            result, status="error", error_type="TestsNotRun", message=message, failing_test=missing[0]
        )
    if not outcomes:
        return dict(result, status="error", error_type="NoTests", message="the test file defines no tests")
    return dict(result, status="passed")


def decide(
    *,
    style: str,
    report: bytes,
    report_overflow: bool,
    nonce_hash: str,
    exit_status: int | None,
    kill_reason: str | None,
    expected: dict,
    stdout: bytes,
    expected_stdout: str | None,
    module_name: str,
    coverage: bool = False,
) -> dict:
    """The Result fields that depend on the outcome (capture and timing fields are added by the caller).

    With `coverage`, `covered_lines` comes from the signed report only (None without one); it never changes
    the status.
    """
    if kill_reason == "timeout":
        return {"status": "timeout", "error_type": "Timeout", "message": "wall-clock time limit exceeded"}
    if kill_reason == "output_limit":
        return {
            "status": "output_limit",
            "error_type": "OutputLimit",
            "message": "stdout/stderr limit exceeded",
        }
    if report_overflow:
        return {"status": "tampering", "error_type": "Tampering", "message": "the result channel was flooded"}
    parsed, forged = _parse_report(report, nonce_hash)
    if forged:
        return {"status": "tampering", "error_type": "Tampering", "message": forged}
    if parsed is None:
        return _no_report(style, exit_status, stdout, expected_stdout)
    result = _judge_report(parsed, style, expected, stdout, expected_stdout, module_name)
    if coverage:
        result["covered_lines"] = _covered_lines(parsed)
    return result


def _covered_lines(report: dict) -> list[int] | None:
    lines = report.get("covered_lines")
    if not isinstance(lines, list) or not all(type(n) is int for n in lines):
        return None
    return lines


def _judge_report(
    parsed: dict, style: str, expected: dict, stdout: bytes, expected_stdout: str | None, module_name: str
) -> dict:
    """The verdict from a genuine (nonce-signed, complete) report."""
    exc, phase = parsed.get("exception"), parsed.get("phase", "")
    # A stdio verdict comes from the output the server captured, which no patch inside the program can change;
    # patching builtins (`builtins.input = sys.stdin.readline`) is a common, harmless speed trick there.
    if parsed.get("tampering") and style != "stdio":
        result = {
            "status": "tampering",
            "error_type": "Tampering",
            "message": "; ".join(dict.fromkeys(parsed["tampering"]))[:300],
        }
        if exc and exc.get("error_type") == "TamperingDetected":
            result.update(traceback=exc.get("traceback", ""), failing_test=exc.get("failing_line"))
        return result
    if exc:
        return dict(_from_exception(exc, phase), tests_run=int(parsed.get("asserts", 0)), tests_failed=1)
    if style == "stdio":
        return _compare_stdout(stdout, expected_stdout)
    if style in ("unittest", "pytest"):
        return _outcomes_verdict(parsed, expected, module_name, style)
    if parsed.get("statements") != expected["statements"]:
        message = f"the tests stopped after {parsed.get('statements')} of {expected['statements']} statements"
        return {"status": "error", "error_type": "TestsNotRun", "message": message}
    if not parsed.get("asserts"):
        # Nothing was checked: typically HumanEval tests passed without their `check(entry_point)` line.
        message = "no assert statement ran (HumanEval-style tests need a final `check(entry_point)` line)"
        return {"status": "error", "error_type": "NoTests", "message": message}
    return {"status": "passed", "tests_run": int(parsed.get("asserts", 0))}


def _compare_stdout(stdout: bytes, expected_stdout: str | None) -> dict:
    got = normalise_output(stdout.decode("utf-8", "replace"))
    want = normalise_output(expected_stdout or "")
    if got == want:
        return {"status": "passed", "tests_run": 1}
    got_lines, want_lines = got.splitlines(), want.splitlines()
    for i in range(max(len(got_lines), len(want_lines))):
        g = got_lines[i] if i < len(got_lines) else "<missing>"
        w = want_lines[i] if i < len(want_lines) else "<missing>"
        if g != w:
            message = f"line {i + 1}: expected {w[:100]!r}, got {g[:100]!r}"
            break
    return {
        "status": "failed",
        "error_type": "WrongAnswer",
        "message": message,
        "tests_run": 1,
        "tests_failed": 1,
    }


def _no_report(style: str, exit_status: int | None, stdout: bytes, expected_stdout: str | None) -> dict:
    if exit_status is None:
        return {"status": "crashed", "error_type": "Lost", "message": "the job ended without an exit status"}
    if os.WIFSIGNALED(exit_status):
        sig = os.WTERMSIG(exit_status)
        name = _signal_name(sig)
        if sig == signal.SIGXCPU:
            return {"status": "timeout", "error_type": name, "message": "CPU time limit exceeded"}
        if sig == signal.SIGXFSZ:
            return {"status": "output_limit", "error_type": name, "message": "file size limit exceeded"}
        return {"status": "crashed", "error_type": name, "message": f"the process was killed by {name}"}
    code = os.WEXITSTATUS(exit_status)
    if style == "stdio" and code == 0:
        return _compare_stdout(stdout, expected_stdout)
    message = f"the process exited with code {code} before the tests finished"
    return {"status": "error", "error_type": "EarlyExit", "message": message}
