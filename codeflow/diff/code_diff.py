"""`diff_code`: the public entry point that runs the stages parse -> match -> classify -> regions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from codeflow.diff import classify as kinds
from codeflow.diff.line import line_diff
from codeflow.diff.match import match_sequences
from codeflow.diff.parse import ParsedCode, line_starts, parse_code
from codeflow.diff.regions import Side, lines_touched, node_spans, statement_spans, token_spans, widen

Span = tuple[int, int]
GRANULARITIES = ("statement", "node", "token", "line")
_SPANS_BY_GRANULARITY = {"statement": statement_spans, "node": node_spans, "token": token_spans}


@dataclass
class CodeDiff:
    """What changed between two versions of a Python source.

    `before_spans` (D-) and `after_spans` (D+) are sorted, non-overlapping (start, end) character offsets into
    the two texts; `before_lines` / `after_lines` are the 1-based lines they touch.
    """

    kind: str
    granularity: str
    before_spans: list[Span] = field(default_factory=list)
    after_spans: list[Span] = field(default_factory=list)
    before_lines: list[int] = field(default_factory=list)
    after_lines: list[int] = field(default_factory=list)
    parse_ok: bool = True
    fallback: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of `codeflow diff --json` (the pipeline stores it as is)."""
        return {
            "kind": self.kind,
            "granularity": self.granularity,
            "parse_ok": self.parse_ok,
            "fallback": self.fallback,
            "before": {"spans": [list(s) for s in self.before_spans], "lines": list(self.before_lines)},
            "after": {"spans": [list(s) for s in self.after_spans], "lines": list(self.after_lines)},
        }


def diff_code(before: str, after: str, granularity: str = "statement", context: int = 0) -> CodeDiff:
    """Diff two Python sources. Never raises on code that does not parse: it falls back to a line diff.

    Raises ValueError for an unknown granularity or a negative context.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}; choose one of {', '.join(GRANULARITIES)}")
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise ValueError(f"context must be a non-negative integer of lines, got {context!r}")
    if before == after:
        ok = parse_code(before).parse_ok
        return CodeDiff(kind=kinds.IDENTICAL, granularity=granularity, parse_ok=ok)

    parsed_before, parsed_after = parse_code(before), parse_code(after)
    parse_ok = parsed_before.parse_ok and parsed_after.parse_ok
    fallback = None
    if not parse_ok:
        kind = kinds.SEMANTIC  # without a tree we cannot tell comments and layout apart; say so via parse_ok
        before_spans, after_spans = line_diff(before, after)
        fallback = None if granularity == "line" else "line"
    else:
        matched = match_sequences(parsed_before.keys, parsed_after.keys)
        kind = kinds.classify(parsed_before, parsed_after, matched)
        if granularity == "line":
            before_spans, after_spans = line_diff(before, after)
        elif kind in (kinds.COMMENT_ONLY, kinds.WHITESPACE_ONLY):
            before_spans, after_spans = [], []
        else:
            spans_of = _SPANS_BY_GRANULARITY[granularity]
            before_side = Side(parsed_before, matched.before_changed, matched.before_partner)
            after_side = Side(parsed_after, matched.after_changed, matched.after_partner)
            before_spans = spans_of(before_side, after_side)
            after_spans = spans_of(after_side, before_side)
    return _finish(
        kind, granularity, parse_ok, fallback, parsed_before, parsed_after, before_spans, after_spans, context
    )


def _finish(
    kind: str,
    granularity: str,
    parse_ok: bool,
    fallback: str | None,
    parsed_before: ParsedCode,
    parsed_after: ParsedCode,
    before_spans: list[Span],
    after_spans: list[Span],
    context: int,
) -> CodeDiff:
    before_starts, after_starts = parsed_before.line_starts, parsed_after.line_starts
    before_spans = widen(before_spans, before_starts, len(parsed_before.text), context)
    after_spans = widen(after_spans, after_starts, len(parsed_after.text), context)
    return CodeDiff(
        kind=kind,
        granularity=granularity,
        before_spans=before_spans,
        after_spans=after_spans,
        before_lines=lines_touched(before_spans, before_starts),
        after_lines=lines_touched(after_spans, after_starts),
        parse_ok=parse_ok,
        fallback=fallback,
    )


__all__ = ["CodeDiff", "GRANULARITIES", "diff_code", "line_starts"]
