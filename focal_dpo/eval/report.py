"""summary.json from the per-sample results, the terminal summary, and the `--compare` table."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from focal_dpo.eval.passk import mean_pass_at_k, reported_ks
from focal_dpo.eval.problems import Problem
from focal_dpo.eval.results import SampleResult

TOP_ERROR_TYPES = 10


def summarize(
    problems: list[Problem], results: dict[tuple[str, int], SampleResult], n: int, run: dict[str, Any]
) -> dict[str, Any]:
    """Aggregate the first `n` samples of every problem. `run` (benchmark, model, ...) is copied in as is."""
    passed: dict[str, int] = {}
    statuses: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    missing = 0
    for p in problems:
        samples = [results.get((p.task_id, s)) for s in range(n)]
        missing += sum(r is None for r in samples)
        done = [r for r in samples if r is not None]
        passed[p.task_id] = sum(r.status == "passed" for r in done)
        statuses.update(r.status for r in done)
        errors.update(r.error_type or r.status for r in done if r.status != "passed")
    if missing:
        raise ValueError(f"{missing} of {len(problems) * n} samples have no result yet; rerun to finish them")
    counts = [(n, passed[p.task_id]) for p in problems]
    return {
        **run,
        "n": n,
        "num_problems": len(problems),
        "num_samples": len(problems) * n,
        "pass_at_k": {f"pass@{k}": mean_pass_at_k(counts, k) for k in reported_ks(n)},
        "status_counts": dict(statuses.most_common()),
        "top_error_types": dict(errors.most_common(TOP_ERROR_TYPES)),
        "problems_passed": passed,
    }


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['benchmark']}: model {summary['model']}, {summary['num_problems']} problems, "
        f"n={summary['n']}, temperature={summary['temperature']}"
    ]
    lines += [f"  {name:<8} {value:.4f}" for name, value in summary["pass_at_k"].items()]
    lines.append("  status   " + ", ".join(f"{k} {v}" for k, v in summary["status_counts"].items()))
    if summary["top_error_types"]:
        lines.append("  errors   " + ", ".join(f"{k} {v}" for k, v in summary["top_error_types"].items()))
    return "\n".join(lines)


def load_summary(path: str | Path) -> dict[str, Any]:
    """An eval's summary.json, given the file or its run directory; ValueError names the input."""
    path = Path(path)
    if path.is_dir():
        if not (path / "summary.json").exists():
            raise ValueError(
                f"{path}: no summary.json in this directory (is it a finished eval run's --out?)"
            )
        path = path / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"{path}: no such summary (pass OUT/summary.json of a finished eval run)") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from None
    for key in ("benchmark", "n", "pass_at_k", "problems_passed"):
        if key not in summary:
            raise ValueError(f"{path}: missing {key!r}; is this an eval summary.json?")
    return summary


@dataclass
class Comparison:
    fixed: list[str]  # solved by B, not by A
    broken: list[str]  # solved by A, not by B
    only_in_a: list[str]
    only_in_b: list[str]


def solved(passed: int, n: int) -> bool:
    """More than half of the samples pass; with n=1, the one sample passes."""
    return 2 * passed > n


def compare(a: dict[str, Any], b: dict[str, Any]) -> Comparison:
    pa, pb = a["problems_passed"], b["problems_passed"]
    common = [t for t in pa if t in pb]
    return Comparison(
        fixed=[t for t in common if not solved(pa[t], a["n"]) and solved(pb[t], b["n"])],
        broken=[t for t in common if solved(pa[t], a["n"]) and not solved(pb[t], b["n"])],
        only_in_a=[t for t in pa if t not in pb],
        only_in_b=[t for t in pb if t not in pa],
    )


def format_compare(a: dict[str, Any], b: dict[str, Any], name_a: str = "A", name_b: str = "B") -> str:
    """Side-by-side table: pass@k, status and error-type counts, then the problems fixed and broken."""
    rows: list[tuple[str, str, str, str]] = [
        ("benchmark", a["benchmark"], b["benchmark"], ""),
        ("model", str(a.get("model", "?")), str(b.get("model", "?")), ""),
        (
            "n / problems",
            f"{a['n']} / {len(a['problems_passed'])}",
            f"{b['n']} / {len(b['problems_passed'])}",
            "",
        ),
    ]
    for key in _union(a["pass_at_k"], b["pass_at_k"]):
        va, vb = a["pass_at_k"].get(key), b["pass_at_k"].get(key)
        delta = f"{vb - va:+.4f}" if va is not None and vb is not None else ""
        rows.append((key, _num(va), _num(vb), delta))
    for section in ("status_counts", "top_error_types"):
        ca, cb = a.get(section, {}), b.get(section, {})
        label = "status" if section == "status_counts" else "error"
        for key in _union(ca, cb):
            va, vb = ca.get(key, 0), cb.get(key, 0)
            rows.append((f"{label} {key}", str(va), str(vb), f"{vb - va:+d}"))
    width = [max(len(r[i]) for r in [("", name_a, name_b, "delta"), *rows]) for i in range(4)]
    header = ("", name_a, name_b, "delta")
    lines = [_row(header, width), _row(tuple("-" * w for w in width), width)]
    lines += [_row(r, width) for r in rows]
    c = compare(a, b)
    if a["benchmark"] != b["benchmark"]:
        lines.append(f"warning: different benchmarks ({a['benchmark']} vs {b['benchmark']})")
    lines.append(f"fixed in {name_b} ({len(c.fixed)}): {', '.join(c.fixed) or '-'}")
    lines.append(f"broken in {name_b} ({len(c.broken)}): {', '.join(c.broken) or '-'}")
    if c.only_in_a or c.only_in_b:
        lines.append(
            f"not compared: {len(c.only_in_a)} only in {name_a}, {len(c.only_in_b)} only in {name_b}"
        )
    return "\n".join(lines)


def _union(a: dict, b: dict) -> list[str]:
    return list(a) + [k for k in b if k not in a]


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _row(cells: tuple[str, ...], width: list[int]) -> str:
    first, *rest = cells
    return "  ".join(
        [first.ljust(width[0]), *(c.rjust(w) for c, w in zip(rest, width[1:], strict=True))]
    ).rstrip()
