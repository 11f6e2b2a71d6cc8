"""The options of `codeflow build`, declared once: `BuildConfig`'s fields are also its command-line flags."""

from __future__ import annotations

from dataclasses import dataclass, fields

from codeflow.cli import option
from codeflow.llm.registry import BACKENDS, LLMOptions, backend_summaries
from codeflow.pipeline.sources import PRESETS


@dataclass
class SelectionSettings:
    """What the selection stage (pairing, filters, decontamination) reads of the build's options."""

    negative: str
    seed: int
    granularity: str
    max_diff_lines: int
    max_tokens: int
    tokenizer: str | None
    min_coverage: float | None
    judge: bool
    decontam: list[str]
    ngram: int
    no_humaneval: bool


# Settings that decide the model's answers: a run directory cannot be resumed with different ones.
GENERATION_KEYS = ("llm", "model", "seed", "temperature", "max_new_tokens", "extra_body")
SIMULATE_SUMMARY = (
    "offline stand-in: bugs injected into each row's reference solution, fixed one per refinement"
)


def _fraction(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {text}")
    return value


def _positive_int(text: str) -> int:
    import argparse

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {text}")
    return value


@dataclass(kw_only=True)
class BuildConfig(LLMOptions):
    """Every option of `codeflow build`; the command line is made from these fields (see `codeflow.cli.option`)."""

    problems: str = option(
        "",
        "problems: a JSONL file in the problems schema, or with --format / --map a dataset (a .parquet, .arrow, "
        ".json, .jsonl or .csv file, a directory written by save_to_disk or holding data files, or a hub name)",
        flag="source",
    )
    out: str = option("", "run directory (holds codeflow.db and pairs.jsonl)", required=True)
    llm: str = option(
        "simulate",
        "who answers: " + backend_summaries({"simulate": SIMULATE_SUMMARY}),
        choices=("simulate", *BACKENDS),
    )
    format: str | None = option(
        None,
        "the schema of a dataset source: " + ", ".join(PRESETS),
        choices=tuple(PRESETS),
        metavar="PRESET",
    )
    map: list[str] = option(
        help="FIELD=COLUMN: read a problem field from a column (repeatable; overrides the preset), e.g. "
        "--map instruction=prompt --map tests=test",
        action="append",
        metavar="FIELD=COLUMN",
        default_factory=list,
    )
    split: str = option("train", "dataset split to read (datasets with several splits)")
    dataset_config: str | None = option(
        None, "dataset configuration (subset) name, for hub datasets that have one"
    )
    temperature: float = option(0.2, "sampling temperature", type=float)
    max_new_tokens: int = option(2048, "answer length limit per request", type=int)
    max_iterations: int = option(5, "refinements after the first attempt", type=int)
    negative: str = option(
        "random",
        "which failing version becomes the rejected side (random is seeded by --seed)",
        choices=("random", "first", "last"),
    )
    seed: int = option(0, "seeds sampling, simulate's bugs and --negative random", type=int)
    granularity: str = option(
        "statement",
        "what D+ / D- mark: changed statements, AST nodes, tokens or lines",
        choices=("statement", "node", "token", "line"),
    )
    max_diff_lines: int = option(20, "drop pairs whose D- spans more lines", type=int)
    max_tokens: int = option(2048, "drop pairs with a side over this many tokens", type=int)
    tokenizer: str | None = option(None, "tokenizer for --max-tokens (default: characters / 3)")
    judge: bool = option(False, "ask the LLM whether each difference is functional", action="store_true")
    min_coverage: float | None = option(
        None,
        "keep pairs whose tests run at least this fraction (0..1) of the chosen code's lines",
        type=_fraction,
        metavar="F",
    )
    decontam: list[str] = option(
        help="benchmark JSONL to decontaminate against (repeatable)",
        action="append",
        metavar="FILE",
        default_factory=list,
    )
    ngram: int = option(13, "words per n-gram for decontamination", type=int)
    no_humaneval: bool = option(False, "do not decontaminate against HumanEval", action="store_true")
    strict: bool = option(False, "stop at the first bad problem line or row", action="store_true")
    workers: int | None = option(None, "sandbox worker processes (default: one per core)", type=_positive_int)
    exec_timeout_s: float = option(10.0, "seconds per sandbox run", flag="--exec-timeout", type=float)
    memory_mb: int = option(1024, "memory limit per sandbox run, in MB", type=int)
    shard: str | None = option(
        None,
        "build only shard K of N (0-based; problems split by a stable hash of their id) into --out",
        metavar="K/N",
    )
    ray: str | None = option(
        None,
        "run --shards shards as Ray tasks on the cluster at ADDRESS (or `local` to start one here), then merge "
        "them into --out",
        metavar="ADDRESS",
    )
    shards: int = option(2, "number of shards for --ray", type=_positive_int)
    progress: bool = option(True, "no progress bars on stderr", flag="--no-progress", action="store_false")

    def selection_settings(self) -> SelectionSettings:
        return SelectionSettings(**{f.name: getattr(self, f.name) for f in fields(SelectionSettings)})
