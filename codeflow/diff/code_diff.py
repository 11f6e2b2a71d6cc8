"""`diff_code`: the public entry point that runs the stages parse -> match -> classify -> regions."""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

from codeflow.diff import classify as kinds
from codeflow.diff.line import line_anchor_spans, line_diff, line_diff_counts
from codeflow.diff.match import match_code
from codeflow.diff.parse import ParsedCode, line_starts, parse_code
from codeflow.diff.regions import (
    Side,
    anchor_spans,
    lines_touched,
    node_spans,
    statement_spans,
    token_spans,
    widen,
)

Span = tuple[int, int]
GRANULARITIES = ("statement", "node", "token", "line")
_SPANS_BY_GRANULARITY = {"statement": statement_spans, "node": node_spans, "token": token_spans}


@dataclass
class CodeDiff:
    """What changed between two versions of a Python source.

    `before_spans` (D-) and `after_spans` (D+) are sorted, non-overlapping (start, end) character offsets into
    the two texts; `before_lines` / `after_lines` are the 1-based lines they touch. `before_anchors` are the
    D- spans that hold no changed code but mark where the fix inserted code (a display can show them apart);
    every one of them is also in `before_spans`. `line_diff_lines` is how many lines the paper's line diff
    (Algorithm 1) marks on each side, whatever the granularity: the size the paper filters pairs on.
    """

    kind: str
    granularity: str
    before_spans: list[Span] = field(default_factory=list)
    after_spans: list[Span] = field(default_factory=list)
    before_lines: list[int] = field(default_factory=list)
    after_lines: list[int] = field(default_factory=list)
    parse_ok: bool = True
    fallback: str | None = None
    before_anchors: list[Span] = field(default_factory=list)
    line_diff_lines: tuple[int, int] = (0, 0)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of `codeflow diff --json` (the pipeline stores it as is)."""
        return {
            "kind": self.kind,
            "granularity": self.granularity,
            "parse_ok": self.parse_ok,
            "fallback": self.fallback,
            "before": {
                "spans": [list(s) for s in self.before_spans],
                "lines": list(self.before_lines),
                "anchors": [list(s) for s in self.before_anchors],
                "line_diff_lines": self.line_diff_lines[0],
            },
            "after": {
                "spans": [list(s) for s in self.after_spans],
                "lines": list(self.after_lines),
                "line_diff_lines": self.line_diff_lines[1],
            },
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
        ok = parse_code(before, leaves=False).parse_ok
        return CodeDiff(kind=kinds.IDENTICAL, granularity=granularity, parse_ok=ok)

    parsed_before, parsed_after = parse_code(before, leaves=False), parse_code(after, leaves=False)
    parse_ok = parsed_before.parse_ok and parsed_after.parse_ok
    fallback = None
    changes: list[Span] = []  # D- spans of changed code, to tell the anchors among the final spans
    if not parse_ok:
        kind = kinds.SEMANTIC  # without a tree we cannot tell comments and layout apart; say so via parse_ok
        before_spans, after_spans = line_diff(before, after)
        changes = before_spans
        fallback = None if granularity == "line" else "line"
    else:
        matched = match_code(parsed_before, parsed_after)
        kind = kinds.classify(parsed_before, parsed_after, matched)
        before_side = Side(parsed_before, matched.before_changed, matched.before_partner)
        after_side = Side(parsed_after, matched.after_changed, matched.after_partner)
        if granularity == "line":
            before_spans, after_spans = line_diff(before, after)
            changes = before_spans
        elif kind in (kinds.COMMENT_ONLY, kinds.WHITESPACE_ONLY):
            before_spans, after_spans = [], []
        else:
            spans_of = _SPANS_BY_GRANULARITY[granularity]
            before_spans = spans_of(before_side, after_side)
            after_spans = spans_of(after_side, before_side)
            changes = token_spans(before_side, after_side)
        if kind == kinds.SEMANTIC and not before_spans and granularity != "line":
            before_spans = anchor_spans(before_side, after_side, granularity)
    if kind == kinds.SEMANTIC and not before_spans:
        # a line diff, or no code leaf to anchor on (the rejected side is only comments)
        before_spans = line_anchor_spans(before, after)
    return _finish(
        kind,
        granularity,
        parse_ok,
        fallback,
        parsed_before,
        parsed_after,
        before_spans,
        after_spans,
        changes,
        context,
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
    changes: list[Span],
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
        before_anchors=_without(before_spans, changes),
        line_diff_lines=line_diff_counts(parsed_before.text, parsed_after.text),
    )


def _without(spans: list[Span], changes: list[Span]) -> list[Span]:
    """The spans that overlap none of `changes` (both sorted and non-overlapping)."""
    if not changes:
        return list(spans)
    change_starts = [s for s, _ in changes]
    kept = []
    for start, end in spans:
        k = bisect_right(change_starts, start) - 1  # the last change starting at or before `start`
        overlaps = (k >= 0 and changes[k][1] > start) or (k + 1 < len(changes) and changes[k + 1][0] < end)
        if not overlaps:
            kept.append((start, end))
    return kept


__all__ = ["CodeDiff", "GRANULARITIES", "diff_code", "line_starts"]
