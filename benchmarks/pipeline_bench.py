"""Throughput of `codeflow build --llm simulate` and where its wall time goes, in one run and in 2 shards merged.

Generates N problems from the shipped examples (each copy gets its own id, hence its own bugs), builds them
with the simulate backend and the real sandbox, and prints problems/s and the share of wall time spent in the
sandbox, the backend, the diff engine and the database, and the share in which neither the sandbox nor the
backend was working (the pipeline's own overhead). The named alternatives, measured in the same run: the same
sandbox jobs (every executed attempt) sent straight to `Sandbox.run_many` in one batch, with no pipeline around
them; and the same problems built as 2 shards (one after the other on this machine) and merged, whose
pairs.jsonl must equal the one run's. Then a no-op rerun (resume) of the finished build.

    python benchmarks/pipeline_bench.py --problems 300
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

from codeflow.pipeline.build import BuildConfig, BuildResult, build
from codeflow.pipeline.problems import load_problems
from codeflow.pipeline.shards import merge

ROOT = Path(__file__).resolve().parent.parent


def make_problems(n: int, path: Path) -> None:
    examples = [json.loads(line) for line in (ROOT / "examples/problems.jsonl").read_text().splitlines()]
    examples = [e for e in examples if e.get("tests")]
    with path.open("w") as f:
        for i in range(n):
            row = dict(examples[i % len(examples)])
            row["id"] = f"{row['id']}_{i}"
            row["instruction"] = f"(variant {i}) " + row["instruction"]
            f.write(json.dumps(row) + "\n")


def bare_sandbox_seconds(run_dir: Path, problems_path: Path, timeout_s: float) -> tuple[float, int]:
    """Run every attempt the build executed again, straight through the sandbox, as one batch."""
    from sandbox import Limits, Sandbox

    problems = {p.id: p for p in load_problems(problems_path).problems}
    conn = sqlite3.connect(run_dir / "codeflow.db")
    rows = conn.execute("SELECT problem_id, code, tests FROM attempts WHERE answer_kind = 'code'").fetchall()
    conn.close()
    jobs = [job for pid, code, tests in rows for job in problems[pid].suite(json.loads(tests)).jobs(code)]
    with Sandbox(limits=Limits(timeout_s=timeout_s, memory_mb=1024)) as sb:
        t0 = time.perf_counter()
        sb.run_many(jobs)
        return time.perf_counter() - t0, len(jobs)


def idle_share(result: BuildResult) -> float:
    return result.timings["idle_engines"] / result.timings["wall"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=300)
    parser.add_argument("--exec-timeout", type=float, default=2.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        problems = tmp / "problems.jsonl"
        make_problems(args.problems, problems)
        common = dict(problems=str(problems), exec_timeout_s=args.exec_timeout, progress=False)
        config = BuildConfig(out=str(tmp / "run"), **common)
        result = build(config)
        conn = sqlite3.connect(tmp / "run" / "codeflow.db")
        executions = conn.execute("SELECT COUNT(*) FROM executions").fetchone()[0]
        conn.close()
        t0 = time.perf_counter()
        resumed = build(config)
        resume_s = time.perf_counter() - t0
        bare_s, bare_jobs = bare_sandbox_seconds(tmp / "run", problems, args.exec_timeout)
        shards = [build(BuildConfig(out=str(tmp / f"shard{k}"), shard=f"{k}/2", **common)) for k in range(2)]
        t0 = time.perf_counter()
        merged = merge([tmp / "shard0", tmp / "shard1"], tmp / "merged")
        merge_s = time.perf_counter() - t0
        same = merged.read_bytes() == (tmp / "run" / "pairs.jsonl").read_bytes()

    t = result.timings
    wall = t["wall"]
    load = os.getloadavg()
    print(f"load: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (1/5/15 min), {os.cpu_count()} CPUs")
    print(
        f"simulate build: {result.problems} problems, {result.pairs} pairs, {executions} attempt jobs + "
        f"{result.sandbox_jobs - executions} simulate bug-check and self-check jobs in {wall:.2f} s "
        f"= {result.problems / wall:.1f} problems/s"
    )
    print("  wall time with at least one ... in flight (these overlap: problems run concurrently)")
    print(f"    sandbox job      {t['sandbox']:7.2f} s  {t['sandbox'] / wall:6.1%}  (its start-up included)")
    print(f"    backend request  {t['backend']:7.2f} s  {t['backend'] / wall:6.1%}")
    print("  the pipeline's own work, on the event loop thread")
    print(f"    diff engine      {t['diff']:7.2f} s  {t['diff'] / wall:6.1%}")
    print(f"    database         {t['database']:7.2f} s  {t['database'] / wall:6.1%}")
    print(
        f"  neither sandbox nor backend working: {t['idle_engines']:.2f} s = {idle_share(result):.1%} of wall (goal < 5%)"
    )
    print(
        f"bare sandbox, same {bare_jobs} attempt jobs in one run_many: {bare_s:.2f} s "
        f"-> pipeline wall / bare sandbox = {wall / bare_s:.2f}x"
    )
    shard_wall = sum(s.timings["wall"] for s in shards)
    shard_idle = sum(s.timings["idle_engines"] for s in shards)
    print(
        f"2 shards, one after the other, then merged: {shards[0].problems} + {shards[1].problems} problems in "
        f"{shards[0].timings['wall']:.2f} + {shards[1].timings['wall']:.2f} s, merge {merge_s:.2f} s "
        f"-> {(shard_wall + merge_s) / wall:.2f}x the one run's wall"
    )
    print(
        f"  neither sandbox nor backend working: {shard_idle:.2f} s = {shard_idle / shard_wall:.1%} of the shards' "
        f"wall (one run: {idle_share(result):.1%}); merged pairs.jsonl identical to the one run's: {same}"
    )
    print(f"no-op resume of the finished build: {resume_s:.2f} s ({resumed.calls} model calls)")


if __name__ == "__main__":
    main()
