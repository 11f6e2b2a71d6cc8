"""Command line: `python -m sandbox run CODE TESTS ...` and `python -m sandbox check`."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

from sandbox.core import FULL_ISOLATION, Sandbox
from sandbox.types import STYLES, Limits

WHY_MISSING = {
    "readonly_root": "needs bubblewrap (apt-get install -y bubblewrap)",
    "net_namespace": "needs root or bubblewrap with user namespaces",
    "pid_namespace": "needs root or bubblewrap with user namespaces",
    "private_tmp": "needs root or bubblewrap",
    "unprivileged_uid": "needs root to switch to the per-worker uid",
}

# Each probe is hostile code whose tests only pass if the protection is missing.
PROBES = {
    "network blocked": "import socket\ns = socket.create_connection(('1.1.1.1', 53), timeout=2)",
    "/etc not writable": "open('/etc/sandbox-probe', 'w').write('x')",
    "fork bomb contained": "import os\nfor _ in range(10000):\n    os.fork()",
    "secrets unreadable": "open('/proc/1/environ').read()\nimport os\nos.listdir(os.path.expanduser('~root'))",
}


def _read(path: str, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SystemExit(f"cannot read {what} file {path}: {exc.strerror}") from None


def cmd_run(args: argparse.Namespace) -> int:
    code = _read(args.code, "code")
    tests = _read(args.tests, "tests") if args.tests else None
    stdin = _read(args.stdin, "stdin") if args.stdin else None
    expected = _read(args.expected_stdout, "expected stdout") if args.expected_stdout else None
    limits = Limits(timeout_s=args.timeout, memory_mb=args.memory_mb, output_bytes=args.output_bytes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if args.json else "default")
        with Sandbox(workers=1, limits=limits, use_bwrap=False if args.no_bwrap else None) as sb:
            result = sb.run(
                code, tests, style=args.style, stdin=stdin, expected_stdout=expected, coverage=args.coverage
            )
    if args.json:
        print(json.dumps(result.to_dict()))
    else:
        print(f"status: {result.status}")
        for name in ("error_type", "message", "failing_test"):
            if getattr(result, name):
                print(f"{name}: {getattr(result, name)}")
        print(f"tests: {result.tests_run} run, {result.tests_failed} failed; {result.wall_ms:.1f} ms wall")
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with Sandbox(workers=1, limits=Limits(timeout_s=5), use_bwrap=False if args.no_bwrap else None) as sb:
            active = set(sb.isolation)
            for name in FULL_ISOLATION:
                mark = "ok     " if name in active else "MISSING"
                print(f"  {mark} {name}" + ("" if name in active else f"  ({WHY_MISSING.get(name, '')})"))
            failures = 0
            for label, code in PROBES.items():
                r = sb.run(code, "assert True")
                ok = r.status != "passed"
                failures += not ok
                print(f"  {'ok     ' if ok else 'FAILED '} probe: {label} -> {r.status} {r.error_type or ''}")
    missing = [n for n in FULL_ISOLATION if n not in active]
    print(
        "all protections active"
        if not missing and not failures
        else f"reduced isolation: {', '.join(missing)}"
    )
    return 0 if not failures else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sandbox", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run CODE against TESTS and print the result")
    run.add_argument("code", help="file with the code under test")
    run.add_argument("tests", nargs="?", help="file with the tests (not needed for --style stdio)")
    run.add_argument("--style", choices=STYLES, default="script", help="how TESTS are written (default script)")
    run.add_argument("--timeout", type=float, default=10.0, help="wall-clock seconds (default 10)")
    run.add_argument("--memory-mb", type=int, default=2048)
    run.add_argument("--output-bytes", type=int, default=65536)
    run.add_argument("--stdin", help="file fed to stdin (stdio style)")
    run.add_argument("--expected-stdout", help="file with the expected stdout (stdio style)")
    run.add_argument("--json", action="store_true", help="print one JSON object")
    run.add_argument("--coverage", action="store_true", help="also report the lines of CODE the tests ran")
    run.add_argument("--no-bwrap", action="store_true", help="do not use bubblewrap even if installed")
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="show which protections work on this machine")
    check.add_argument("--no-bwrap", action="store_true", help="check the fallback used without bubblewrap")
    check.set_defaults(func=cmd_check)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
