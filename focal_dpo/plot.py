"""`focal-dpo plot OUTPUT`: a training run's curves (loss, reward margins and accuracy, eval) as one PNG."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

# (title, [(metric, label), ...]) per panel; a panel is drawn when the run logged any of its metrics
PANELS = [
    ("loss", [("loss", "loss (the objective)"), ("nll_loss", "nll_loss"), ("eval/loss", "eval/loss")]),
    ("reward margin", [("rewards/margins", "train"), ("eval/rewards/margins", "eval")]),
    ("reward accuracy", [("rewards/accuracies", "train"), ("eval/rewards/accuracies", "eval")]),
    ("rewards", [("rewards/chosen", "chosen"), ("rewards/rejected", "rejected")]),
    ("learning rate", [("learning_rate", "learning rate")]),
    ("gradient norm", [("grad_norm", "before clipping")]),
]


class PlotError(ValueError):
    """A run directory or metrics file that cannot be drawn; the message names it."""


def read_metrics(path: Path) -> list[dict]:
    """The lines of a metrics.jsonl, each a dict with a `step`; a bad line is a PlotError naming it."""
    rows = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise PlotError(f"{path}:{lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(row, dict) or not isinstance(row.get("step"), (int, float)):
            raise PlotError(f"{path}:{lineno}: expected an object with a numeric 'step'")
        rows.append(row)
    if not rows:
        raise PlotError(f"{path}: no metrics yet (the run has not finished a step)")
    return rows


def series(rows: list[dict], name: str) -> tuple[list[float], list[float]]:
    points = [(r["step"], r[name]) for r in rows if isinstance(r.get(name), (int, float))]
    points = [(s, v) for s, v in points if math.isfinite(v)]
    return [s for s, _ in points], [v for _, v in points]


def smooth(values: list[float], window: int) -> list[float]:
    """Trailing mean over `window` steps, so noisy per-step curves show their trend."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v - (values[i - window] if i >= window else 0.0)
        out.append(total / min(i + 1, window))
    return out


def plot(run: Path, out: Path, title: str | None = None) -> list[str]:
    """Draw `run`/metrics.jsonl to `out` (PNG); returns the panels drawn."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    rows = read_metrics(run / "metrics.jsonl")
    panels = [(t, m) for t, m in PANELS if any(series(rows, name)[0] for name, _ in m)]
    cols = 2 if len(panels) > 1 else 1
    fig, axes = plt.subplots(math.ceil(len(panels) / cols), cols, figsize=(6 * cols, 3.2 * math.ceil(len(panels) / cols)),
                             squeeze=False)  # fmt: skip
    for ax, (panel, metrics) in zip(axes.flat, panels, strict=False):
        for name, label in metrics:
            steps, values = series(rows, name)
            if not steps:
                continue
            if name.startswith("eval/"):
                ax.plot(steps, values, "o-", label=label)
            else:
                window = max(1, len(values) // 25)
                line = ax.plot(steps, values, alpha=0.3 if window > 1 else 1.0)[0]
                if window > 1:
                    ax.plot(
                        steps,
                        smooth(values, window),
                        color=line.get_color(),
                        label=f"{label} (mean of {window})",
                    )
                else:
                    line.set_label(label)
        ax.set_title(panel)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_visible(False)
    fig.suptitle(title or str(run))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return [p for p, _ in panels]


def register(subparsers: argparse._SubParsersAction) -> None:
    from focal_dpo.config import one_line_errors

    parser = subparsers.add_parser(
        "plot",
        help="draw a training run's metrics (loss, reward margins and accuracy, eval) to a PNG",
        description="Draw OUTPUT/metrics.jsonl of a `focal-dpo train` run to a PNG (matplotlib).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("output", metavar="OUTPUT", help="the run's output directory (holds metrics.jsonl)")
    parser.add_argument(
        "--out", metavar="FILE.png", default=None, help="image to write (default: OUTPUT/metrics.png)"
    )
    parser.add_argument("--title", default=None, help="figure title (default: the run directory)")
    one_line_errors(parser, "focal-dpo plot")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    run = Path(args.output)
    out = Path(args.out) if args.out else run / "metrics.png"
    try:
        if not run.is_dir():
            raise PlotError(f"{run}: no such run directory (give the --output of a focal-dpo train run)")
        if not (run / "metrics.jsonl").is_file():
            raise PlotError(f"{run}: no metrics.jsonl in it (is it a focal-dpo train --output directory?)")
        if out.suffix.lower() != ".png":
            raise PlotError(f"--out {out}: the image is a PNG: give a name ending in .png")
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise PlotError(
                "matplotlib is not installed: pip install matplotlib (or the [train] extra)"
            ) from None
        panels = plot(run, out, args.title)
    except PlotError as err:
        print(f"focal-dpo plot: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"focal-dpo plot: {out}: cannot write the image ({err.strerror or err})", file=sys.stderr)
        return 2
    print(f"wrote {out} ({', '.join(panels)})")
    return 0
