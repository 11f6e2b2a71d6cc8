"""Pair filters as small pure functions: each looks at one candidate pair and keeps it or names why not.

The order is the funnel's order: syntax first (cheap and certain), then size, then the optional line coverage
of the chosen version (one sandbox run each), then the optional LLM judge (one model call each).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

# Diff kinds that do not change what the program computes: the paper drops them (its "AST identical" and
# "formatting / comments / names only" filters).
COSMETIC_KINDS = ("identical", "whitespace_only", "comment_only", "rename_only")
CHARS_PER_TOKEN = 3.0  # proxy without --tokenizer: code runs 3-4 characters a token in BPE vocabularies

TokenCounter = Callable[[str], int]


@dataclass
class FilterConfig:
    max_diff_lines: int = 20
    max_tokens: int = 2048


@dataclass
class Candidate:
    """A pair before filtering; `diff` is a `codeflow.diff.CodeDiff` of rejected -> chosen code."""

    problem_id: str
    chosen: str  # the exported texts (fenced code), which the token limit applies to
    rejected: str
    diff: object


def char_proxy_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def tokenizer_counter(name_or_path: str) -> TokenCounter:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    return lambda text: len(tokenizer(text, add_special_tokens=False)["input_ids"])


def check_parse(c: Candidate) -> str | None:
    return None if getattr(c.diff, "parse_ok", True) else "unparsable"


def check_kind(c: Candidate) -> str | None:
    return c.diff.kind if c.diff.kind in COSMETIC_KINDS else None


def rejected_diff_lines(diff: object) -> int:
    """D- lines as the paper counts them: the lines its line diff (Algorithm 1) marks in the rejected code,
    whatever granularity the spans use (a multi-line statement with one changed line counts one line)."""
    return diff.line_diff_lines[0]


def check_diff_size(c: Candidate, config: FilterConfig) -> str | None:
    return "diff_too_long" if rejected_diff_lines(c.diff) > config.max_diff_lines else None


def check_tokens(c: Candidate, config: FilterConfig, count: TokenCounter) -> str | None:
    return "too_many_tokens" if max(count(c.chosen), count(c.rejected)) > config.max_tokens else None


def check_coverage(fraction: float | None, min_coverage: float) -> str | None:
    """Drop a pair whose tests run less than `min_coverage` of the chosen code's lines (or were not measured:
    a pair whose tests cannot show what they exercise is not kept on trust)."""
    return "low_coverage" if fraction is None or fraction < min_coverage else None


def static_verdict(c: Candidate, config: FilterConfig, count: TokenCounter) -> str | None:
    """The first static filter that drops the pair, or None if it survives them all."""
    return check_parse(c) or check_kind(c) or check_diff_size(c, config) or check_tokens(c, config, count)


# Funnel stages in order, with the drop reasons that belong to each (reasons are verdict values in the DB).
FUNNEL = [
    ("syntax (unparsable, identical, whitespace, comment, rename)", ("unparsable", *COSMETIC_KINDS)),
    ("size (D- lines, tokens)", ("diff_too_long", "too_many_tokens")),
    ("coverage of the chosen code by its tests", ("low_coverage",)),
    ("LLM judge", ("judge_cosmetic", "judge_unclear")),
    ("decontamination", ("contaminated",)),
]
