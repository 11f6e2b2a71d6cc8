"""Command line: `python -m sandbox run CODE TESTS ...` and `python -m sandbox check`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

from sandbox.pool import PROTECTIONS, Sandbox, why_missing
from sandbox.types import ISOLATIONS, STYLES, Limits

# Each probe is hostile code whose tests only pass if the protection is missing.
PROBES = {
    "network blocked": "import socket\ns = socket.create_connection(('1.1.1.1', 53), timeout=2)",
    "/etc not writable": "open('/etc/sandbox-probe', 'w').write('x')",
    "fork bomb contained": "import os\nfor _ in range(10000):\n    os.fork()",
    "secrets unreadable": "open('/proc/1/environ').read()\nimport os\nos.listdir(os.path.expanduser('~root'))",
}

RUN_HELP = """\
Run CODE against TESTS in the sandbox and print the result; exit 0 if it passed, 1 if it did not, 2 for bad input.

TESTS by --style: script (assert lines, or HumanEval's check() followed by `check(entry_point)`, run with the
code's names in scope), unittest or pytest (a test module that imports the code from `solution`, e.g.
`from solution import add`; see --module-name), stdio (no TESTS: --stdin and --expected-stdout instead).
"""


class BadInput(Exception):
    """Input the user must fix: one line, exit status 2."""


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{what} file {path} does not exist") from None
    except IsADirectoryError:
        raise BadInput(f"{what} file {path} is a directory; give a file") from None
    except UnicodeDecodeError:
        raise BadInput(f"{what} file {path} is not UTF-8 text") from None
    except OSError as exc:
        raise BadInput(f"cannot read {what} file {path}: {exc.strerror}") from None


def cmd_run(args: argparse.Namespace) -> int:
    code = _read(args.code, "code")
    if args.style == "stdio":
        if args.expected_stdout is None:
            raise BadInput("--style stdio needs --expected-stdout FILE")
        tests = None
    elif args.tests is None:
        raise BadInput(f"--style {args.style} needs a TESTS file after CODE")
    else:
        tests = _read(args.tests, "tests")
    stdin = _read(args.stdin, "stdin") if args.stdin else None
    expected = _read(args.expected_stdout, "expected stdout") if args.expected_stdout else None
    try:
        limits = Limits(timeout_s=args.timeout, memory_mb=args.memory_mb, output_bytes=args.output_bytes)
    except ValueError as exc:
        raise BadInput(str(exc)) from None
    with Sandbox(workers=1, limits=limits, use_bwrap=False if args.no_bwrap else None) as sb:
        try:
            result = sb.run(code, tests, style=args.style, stdin=stdin, expected_stdout=expected,
                            coverage=args.coverage, module_name=args.module_name, isolation=args.isolation)  # fmt: skip
        except ValueError as exc:
            raise BadInput(str(exc)) from None
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"status: {result.status}")
        for name in ("error_type", "message", "failing_test"):
            if getattr(result, name):
                print(f"{name}: {getattr(result, name)}")
        print(f"tests: {result.tests_run} run, {result.tests_failed} failed; {result.wall_ms:.1f} ms wall; "
              f"decided by the {'judge' if result.isolation == 'judge' else 'solution process (in-process)'}")  # fmt: skip
        if args.coverage:
            print(_coverage_line(result))
        if result.traceback:
            print(result.traceback.rstrip())
        if result.stdout:
            print("--- stdout ---\n" + result.stdout.rstrip())
        if result.stderr:
            print("--- stderr ---\n" + result.stderr.rstrip())
    return 0 if result.passed else 1


def _coverage_line(result) -> str:
    if result.line_coverage is None:
        return "coverage: not measured (no report from the job, or the code does not compile)"
    missed = sorted(set(result.executable_lines) - set(result.covered_lines))
    text = f"coverage: {result.line_coverage:.1%} of {len(result.executable_lines)} executable lines"
    return text + (f"; lines not run: {', '.join(map(str, missed))}" if missed else "")


def cmd_check(args: argparse.Namespace) -> int:
    bwrap = shutil.which("bwrap") or "not installed"
    print(
        f"user: uid {os.geteuid()}; bubblewrap: {bwrap}{' (not used: --no-bwrap)' if args.no_bwrap else ''}"
    )
    with Sandbox(
        workers=1, limits=Limits(timeout_s=5), use_bwrap=False if args.no_bwrap else None, notice=False
    ) as sb:
        active = set(sb.protections)
        for name in PROTECTIONS:
            mark = "ok     " if name in active else "MISSING"
            print(f"  {mark} {name}" + ("" if name in active else f"  ({why_missing(name)})"))
        failures = 0
        for label, code in PROBES.items():
            r = sb.run(code, "assert True")
            ok = r.status != "passed"
            failures += not ok
            print(f"  {'ok     ' if ok else 'FAILED '} probe: {label} -> {r.status} {r.error_type or ''}")
    missing = [n for n in PROTECTIONS if n not in active]
    print(
        "all protections active"
        if not missing and not failures
        else f"reduced isolation: {', '.join(missing)}"
    )
    return 0 if not failures else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run CODE against TESTS and print the result", description=RUN_HELP,
                         formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    run.add_argument("code", help="file with the code under test")
    run.add_argument("tests", nargs="?", help="file with the tests (not for --style stdio)")
    run.add_argument(
        "--style", choices=STYLES, default="script", help="how TESTS are written (default: script)"
    )
    run.add_argument("--module-name", default="solution",
                     help="the module name unittest/pytest tests import the code as (default: solution)")  # fmt: skip
    run.add_argument("--isolation", choices=ISOLATIONS, default=None,
                     help="force the mode that decides (default: chosen from the tests, see docs/sandbox.md)")  # fmt: skip
    run.add_argument("--timeout", type=float, default=10.0, help="wall-clock seconds (default: 10)")
    run.add_argument("--memory-mb", type=int, default=2048, help="memory limit in MB (default: 2048)")
    run.add_argument(
        "--output-bytes", type=int, default=65536, help="cap on stdout and on stderr (default: 65536)"
    )
    run.add_argument("--stdin", help="file fed to stdin (stdio style; default: empty)")
    run.add_argument("--expected-stdout", help="file with the expected stdout (stdio style)")
    run.add_argument(
        "--json", action="store_true", help="print one JSON object (default: a readable summary)"
    )
    run.add_argument(
        "--coverage", action="store_true", help="also report the lines of CODE the tests ran (default: off)"
    )
    run.add_argument(
        "--no-bwrap", action="store_true", help="do not use bubblewrap even if installed (default: use it)"
    )
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="show which protections work on this machine")
    check.add_argument("--no-bwrap", action="store_true", help="check the fallback used without bubblewrap")
    check.set_defaults(func=cmd_check)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BadInput as exc:
        print(f"python -m sandbox {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"python -m sandbox {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
