"""`codeflow stats`: what a run did, read from its database (works on a run in progress too)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from codeflow.pipeline.db import read_run_db
from codeflow.pipeline.filters import FUNNEL


def pass_rate_by_iteration(first_pass: list[int | None], attempted: int, max_iteration: int) -> list[float]:
    """Cumulative share of attempted problems passing at or before each iteration (the paper's Figure 6)."""
    if attempted == 0:
        return [0.0] * (max_iteration + 1)
    return [
        sum(1 for it in first_pass if it is not None and it <= i) / attempted
        for i in range(max_iteration + 1)
    ]


def funnel(verdicts: Counter, judge: bool = True, min_coverage: float | None = None) -> list[dict]:
    """Pair candidates through each filter stage; every stage's input = its drops + its output.

    `judge` / `min_coverage` say whether those optional stages ran (min_coverage None: off)."""
    remaining = sum(n for reason, n in verdicts.items() if reason not in ("first_try", "no_failing_code"))
    rows = [{"stage": "pair candidates (passed after a failure)", "count": remaining, "dropped": {}}]
    for stage, reasons in FUNNEL:
        dropped = {r: verdicts[r] for r in reasons if verdicts.get(r)}
        remaining -= sum(dropped.values())
        off = ""
        if stage == "LLM judge" and not judge:
            off = " (off: --judge not given)"
        elif stage.startswith("coverage"):
            off = " (off: --min-coverage not given)" if min_coverage is None else f" >= {min_coverage:g}"
        rows.append({"stage": f"after {stage}{off}", "count": remaining, "dropped": dropped})
    return rows


def collect(run_dir: str | Path, timings: bool = True) -> dict:
    """Everything `codeflow stats` shows, as plain data. The same problems give the same numbers in the same
    order whether built in one run or in shards merged, apart from measured seconds (the run's timings and the
    sandbox jobs' wall and CPU time), which `timings=False` leaves out."""
    db = read_run_db(run_dir)
    try:
        config = db.get_meta("config") or {}
        outcomes = db.outcomes()
        verdict_rows = db.verdicts()
        pairs = [json.loads(r) for r in db.pair_records()]
        llm = db.llm_usage_by_stage()
        executions = db.execution_summary("executions")
        coverage = db.execution_summary("coverage_runs")
        attempt_kinds = db.attempt_kinds()
        seconds = db.timings()
        bad_rows = db.bad_rows()
    finally:
        db.close()
    statuses = Counter(o["status"] for o in outcomes)
    attempted = sum(n for s, n in statuses.items() if s != "skipped")
    first_pass = [o["final_iteration"] for o in outcomes if o["status"] == "passed"]
    max_it = int(config.get("max_iterations", 5))
    verdicts = Counter(r["stage"] for r in verdict_rows)
    contaminated = Counter(r["reason"].split(":")[0] for r in verdict_rows if r["stage"] == "contaminated")
    stats = {
        "run_dir": str(run_dir),
        "backend": config.get("llm"),
        "model": config.get("model"),
        "seed": config.get("seed"),
        "problems": len(outcomes),
        "bad_rows": len(bad_rows),
        "bad_row_examples": [f"{where}: {reason}" for where, reason in bad_rows[:3]],
        "outcomes": _sorted(statuses),
        # why problems did not pass, most common first (an llm_error reason keeps the error kind and count)
        "outcome_reasons": [
            {"status": status, "reason": reason, "problems": n}
            for (status, reason), n in sorted(
                Counter(
                    (o["status"], (o["reason"] or "").split(": ")[0])
                    for o in outcomes
                    if o["status"] != "passed"
                ).items(),
                key=lambda item: (-item[1], item[0]),
            )[:10]
        ],
        "pass_rate_by_iteration": pass_rate_by_iteration(first_pass, attempted, max_it),
        "attempts": attempt_kinds,
        "funnel": funnel(verdicts, judge=bool(config.get("judge")), min_coverage=config.get("min_coverage")),
        "no_pair": {k: verdicts[k] for k in ("first_try", "no_failing_code") if verdicts.get(k)},
        "contaminated_by_benchmark": _sorted(contaminated),
        "pairs": len(pairs),
        "rejected_status": _sorted(Counter(p["rejected_status"] for p in pairs)),
        "rejected_error_type": _sorted(Counter(p["rejected_error_type"] or "-" for p in pairs)),
        # calls: answers asked of the model; requests: the HTTP requests they took (0 without HTTP)
        "llm": llm,
        "executions": {
            "count": executions["count"],
            "sandbox_wall_s": executions["wall_ms"] / 1000,
            "sandbox_cpu_s": executions["cpu_ms"] / 1000,
            "status": executions["status"],
            # sandbox runs of chosen versions with line coverage (--min-coverage), not counted above
            "coverage_runs": coverage["count"],
            "coverage_wall_s": coverage["wall_ms"] / 1000,
        },
        "timings_s": seconds,
    }
    if not timings:
        del stats["timings_s"]
        for key in ("sandbox_wall_s", "sandbox_cpu_s", "coverage_wall_s"):
            del stats["executions"][key]
    return stats


def _sorted(counts: Counter) -> dict:
    return dict(sorted(counts.items()))


def render(s: dict) -> str:
    """The text of `codeflow stats`; measured seconds are shown when `s` has them (see `collect`)."""
    lines = [f"run {s['run_dir']}  backend={s['backend']} model={s['model'] or '-'} seed={s['seed']}", ""]
    lines.append(
        f"problems: {s['problems']}  " + "  ".join(f"{k}={v}" for k, v in sorted(s["outcomes"].items()))
    )
    if s.get("bad_rows"):
        lines.append(f"  {s['bad_rows']:>7}  source rows skipped (could not be read), e.g.")
        lines += [f"           {example}" for example in s["bad_row_examples"]]
    for r in s["outcome_reasons"]:
        lines.append(f"  {r['problems']:>7}  {r['status']}: {r['reason']}")
    lines.append("\npass rate by iteration (cumulative):")
    for i, rate in enumerate(s["pass_rate_by_iteration"]):
        lines.append(f"  iter {i}  {rate:6.1%}  {'#' * round(rate * 40)}")
    lines.append("\nfilter funnel:")
    for row in s["funnel"]:
        dropped = ", ".join(f"{k} {v}" for k, v in row["dropped"].items())
        lines.append(f"  {row['count']:>7}  {row['stage']}" + (f"   (dropped: {dropped})" if dropped else ""))
    if s["no_pair"]:
        lines.append("  no pair: " + ", ".join(f"{k} {v}" for k, v in s["no_pair"].items()))
    if s["contaminated_by_benchmark"]:
        lines.append(
            "  contaminated: " + ", ".join(f"{k} {v}" for k, v in s["contaminated_by_benchmark"].items())
        )
    lines.append(f"\nrejected versions ({s['pairs']} pairs):")
    lines.append("  status:     " + ", ".join(f"{k} {v}" for k, v in sorted(s["rejected_status"].items())))
    lines.append(
        "  error type: " + ", ".join(f"{k} {v}" for k, v in sorted(s["rejected_error_type"].items()))
    )
    lines.append("\nLLM calls by stage (requests: HTTP requests, retries included):")
    for stage, u in sorted(s["llm"].items()):
        lines.append(
            f"  {stage:<9} calls {u['calls']:>6}  errors {u['errors']:>4}  truncated {u['truncated']:>4}  "
            f"requests {u['requests']:>6}  tokens in {u['prompt_tokens']:>9} out {u['completion_tokens']:>9}"
        )
    e = s["executions"]
    measured = "sandbox_wall_s" in e
    seconds = (
        f"  sandbox wall {e['sandbox_wall_s']:.1f} s  cpu {e['sandbox_cpu_s']:.1f} s" if measured else ""
    )
    lines.append(
        f"\nexecutions: {e['count']}{seconds}  "
        + ", ".join(f"{k} {v}" for k, v in sorted(e["status"].items()))
    )
    if e.get("coverage_runs"):
        seconds = f"  sandbox wall {e['coverage_wall_s']:.1f} s" if measured else ""
        lines.append(f"coverage runs (--min-coverage): {e['coverage_runs']}{seconds}")
    if s.get("timings_s"):
        lines.append(
            "time (s, all runs): " + "  ".join(f"{k} {v:.2f}" for k, v in sorted(s["timings_s"].items()))
        )
    return "\n".join(lines)
