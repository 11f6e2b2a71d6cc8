"""Deciding a job's status, in the server and (for stdio) in the host, from evidence the solution cannot forge.

Inputs: the report of the process that ran the tests (the judge's, trusted; or the in-process job's stream of
records, which needs the job's nonce and gives the first outcome of each test), the exit statuses the zygote saw,
why the server cut the job short (if it did), whether the job's memory cgroup killed something, and the tests the
server itself found in the test source. A stdio program's output is compared by the host, which alone holds the
expected output (`compare_stdout`).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import signal

MEMORY_ERRORS = ("MemoryError",)
SYNTAX_ERRORS = ("SyntaxError", "IndentationError", "TabError")
RAN = "ran"  # a stdio program that exited normally: the host compares its output and sets the status


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def normalise_output(text: str) -> str:
    return "\n".join(line.rstrip() for line in text.rstrip().splitlines())


def tests_do_not_compile(error: dict) -> dict:
    return {
        "status": "error",
        "error_type": error.get("error_type"),
        "message": f"the tests do not compile: {error.get('message') or ''}",
        "traceback": error.get("traceback", ""),
    }


def _cut_short(kill_reason: str | None, memory_killed: bool) -> dict | None:
    if memory_killed:  # first: a job whose process the memory cgroup killed may then hang or lose its output
        return {"status": "memory_limit", "error_type": "MemoryLimit",
                "message": "the job's processes used more memory than its limit (killed by its memory cgroup)"}  # fmt: skip
    if kill_reason == "timeout":
        return {"status": "timeout", "error_type": "Timeout", "message": "wall-clock time limit exceeded"}
    if kill_reason == "output_limit":
        return {
            "status": "output_limit",
            "error_type": "OutputLimit",
            "message": "stdout/stderr limit exceeded",
        }
    if kill_reason == "report_overflow":
        return {"status": "tampering", "error_type": "Tampering", "message": "the result channel was flooded"}
    return None


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
    if not message and phase == "tests" and exc.get("failing_line"):
        message = exc["failing_line"]
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
    found = {k.removeprefix(prefix): v for k, v in (report.get("outcomes") or {}).items()}
    bad = {k: v for k, v in found.items() if v.get("outcome") not in ("ok", "skipped")}
    result = {"tests_run": len(found), "tests_failed": len(bad)}
    if bad:
        name, first = next(iter(bad.items()))  # the first test that failed, in the order they ran
        status = "failed" if first.get("outcome") == "failed" else "error"
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
    ran = {k.split("[", 1)[0] for k in found} if style == "pytest" else set(found)
    missing = sorted(set(expected["ids"]) - ran)
    if missing:
        message = f"{len(missing)} test(s) in the test file never ran: {', '.join(missing[:5])}"
        return dict(
            result, status="error", error_type="TestsNotRun", message=message, failing_test=missing[0]
        )
    if not found:
        return dict(result, status="error", error_type="NoTests", message="the test file defines no tests")
    return dict(result, status="passed")


def _judge_report(parsed: dict, style: str, expected: dict, module_name: str) -> dict:
    """The verdict from a genuine report (the judge's, or an in-process job's complete and signed one)."""
    exc, phase = parsed.get("exception"), parsed.get("phase", "")
    if parsed.get("tampering"):
        result = {"status": "tampering", "error_type": "Tampering",
                  "message": "; ".join(dict.fromkeys(parsed["tampering"]))[:300]}  # fmt: skip
        if exc and exc.get("error_type") == "TamperingDetected":
            result.update(traceback=exc.get("traceback", ""), failing_test=exc.get("failing_line"))
        return result
    if exc:
        return dict(_from_exception(exc, phase), tests_run=int(parsed.get("asserts", 0)), tests_failed=1)
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


def _exit_result(exit_status: int | None, what: str) -> dict:
    """A process that ended without a verdict: killed by a signal, or exited early."""
    if exit_status is None:
        return {"status": "crashed", "error_type": "Lost", "message": f"{what} ended without an exit status"}
    if os.WIFSIGNALED(exit_status):
        sig = os.WTERMSIG(exit_status)
        name = _signal_name(sig)
        if sig == signal.SIGXCPU:
            return {"status": "timeout", "error_type": name, "message": "CPU time limit exceeded"}
        if sig == signal.SIGXFSZ:
            return {"status": "output_limit", "error_type": name, "message": "file size limit exceeded"}
        return {"status": "crashed", "error_type": name, "message": f"{what} was killed by {name}"}
    code = os.WEXITSTATUS(exit_status)
    return {"status": "error", "error_type": "EarlyExit",
            "message": f"{what} exited with code {code} before the tests finished"}  # fmt: skip


def decide_judged(*, report: bytes, contestant_status: int | None, judge_status: int | None, expected: dict,
                  style: str, module_name: str, kill_reason: str | None, memory_killed: bool,
                  coverage: bool) -> dict:  # fmt: skip
    """The verdict of a judge-mode job: the judge's own report, with what the server saw of the processes."""
    cut = _cut_short(kill_reason, memory_killed)
    if cut is not None:
        return cut
    try:
        parsed = json.loads(report) if report else None
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict) or parsed.get("done") is not True:
        described = _exit_result(judge_status, "the judge")
        return {"status": "error", "error_type": "JudgeError",
                "message": f"the tests' process gave no verdict ({described['message']})"}  # fmt: skip
    if parsed.get("contestant_gone"):
        result = _exit_result(contestant_status, "the solution's process")
    else:
        result = _judge_report(parsed, style, expected, module_name)
    if coverage:
        result["covered_lines"] = _covered_lines(parsed)
    return result


def decide_program(*, report: bytes, exit_status: int | None, kill_reason: str | None, memory_killed: bool,
                   style: str, coverage: bool) -> dict:  # fmt: skip
    """A stdio program: RAN (the host then compares the output) after a normal exit, else why it failed.

    The program's report only explains a failure (and carries coverage); a pass needs a normal exit and the
    expected output, which never entered the worker.
    """
    cut = _cut_short(kill_reason, memory_killed)
    if cut is not None:
        return cut
    try:
        parsed = json.loads(report) if report else {}
    except ValueError:
        parsed = {}
    parsed = parsed if isinstance(parsed, dict) else {}
    if exit_status is not None and os.WIFEXITED(exit_status) and os.WEXITSTATUS(exit_status) == 0:
        result = {"status": RAN}
    elif exit_status is not None and os.WIFEXITED(exit_status) and isinstance(parsed.get("exception"), dict):
        exc = parsed["exception"]
        result = _from_exception(exc, exc.get("phase", "code"))
    else:
        result = _exit_result(exit_status, "the program")
        if result["error_type"] == "EarlyExit":
            result["message"] = f"the program exited with code {os.WEXITSTATUS(exit_status)}"
    if coverage:
        result["covered_lines"] = _covered_lines(parsed)
    return result


def parse_records(data: bytes, nonce_hash: str) -> tuple[dict, bool, str | None]:
    """(report, whether it was ended with the job's nonce, why the stream is forged or corrupt, or None).

    Each test's first outcome stands; a second, different outcome for a test means something wrote to the
    result channel besides the runner.
    """
    report: dict = {"phase": "tests", "exception": None, "tampering": [], "asserts": 0, "outcomes": {}}
    order: list[str] = []
    pos, ended = 0, False
    while pos < len(data):
        tag = data[pos : pos + 1]
        if tag == b"E":
            rest = data[pos + 1 :]
            if hashlib.sha256(rest).hexdigest() != nonce_hash:
                return report, False, "a report with the wrong nonce was written to the result channel"
            ended = True
            break
        size = data[pos + 1 : pos + 9]
        if tag != b"R" or len(size) != 8 or not size.isdigit():
            return report, False, "unexpected bytes on the result channel"
        end = pos + 9 + int(size)
        try:
            record = json.loads(data[pos + 9 : end])
        except ValueError:
            return report, False, "a corrupt record on the result channel"
        pos = end
        if not isinstance(record, list) or not record:
            return report, False, "a corrupt record on the result channel"
        kind = record[0]
        if kind == "o" and len(record) == 3:
            _, test_id, outcome = record
            known = report["outcomes"].get(test_id)
            if known is None:
                report["outcomes"][test_id] = {"outcome": outcome}
                order.append(test_id)
            elif known["outcome"] != outcome:
                return report, False, f"two different outcomes were written for test {test_id}"
        elif kind == "d" and len(record) == 3 and isinstance(record[2], dict):
            entry = report["outcomes"].get(record[1])
            if entry is not None and entry["outcome"] in ("failed", "error") and len(entry) == 1:
                entry.update({k: v for k, v in record[2].items() if k != "outcome"})
        elif kind == "x" and len(record) == 3 and isinstance(record[2], dict):
            if report["exception"] is None:
                report["phase"], report["exception"] = record[1], record[2]
        elif kind == "t" and len(record) == 2:
            report["tampering"].append(str(record[1]))
        elif kind == "c" and len(record) == 2:
            report["covered_lines"] = record[1]
        elif kind == "a" and len(record) == 2 and type(record[1]) is int:
            report["asserts"] = record[1]
        else:
            return report, False, "an unknown record on the result channel"
    report["order"] = order
    return report, ended, None


def decide_in_process(*, records: bytes, report_overflow: bool, nonce_hash: str, exit_status: int | None,
                      expected: dict, style: str, module_name: str, kill_reason: str | None, memory_killed: bool,
                      coverage: bool) -> dict:  # fmt: skip
    cut = (
        _cut_short(kill_reason, memory_killed or False)
        if not report_overflow
        else _cut_short("report_overflow", False)
    )
    if cut is not None:
        return cut
    report, ended, forged = parse_records(records, nonce_hash)
    if forged:
        return {"status": "tampering", "error_type": "Tampering", "message": forged}
    if report["tampering"]:
        return _judge_report(report, style, expected, module_name)
    if not ended:
        return _exit_result(exit_status, "the process")
    if style == "script":
        failed = next((i for i in report["order"] if report["outcomes"][i]["outcome"] != "ok"), None)
        report["statements"] = sum(o["outcome"] == "ok" for o in report["outcomes"].values())
        if failed is not None and report["exception"] is None:
            entry = report["outcomes"][failed]
            report["exception"] = {k: v for k, v in entry.items() if k != "outcome"} or {"error_type": None}
            report["phase"] = "tests"
    result = _judge_report(report, style, expected, module_name)
    if coverage:
        result["covered_lines"] = _covered_lines(report)
    return result


def _covered_lines(report: dict) -> list[int] | None:
    lines = report.get("covered_lines")
    if not isinstance(lines, list) or not all(type(n) is int for n in lines):
        return None
    return lines


def compare_stdout(stdout: str, expected_stdout: str | None) -> dict:
    """The host's verdict for a stdio program that ran to a normal end (its output against the expected)."""
    got = normalise_output(stdout)
    want = normalise_output(expected_stdout or "")
    if got == want:
        return {"status": "passed", "tests_run": 1, "tests_failed": 0}
    got_lines, want_lines = got.splitlines(), want.splitlines()
    message = "the output differs"
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
