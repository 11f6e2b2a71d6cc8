"""`codeflow diff BEFORE AFTER`: show what a fix changed, as highlighted text or one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from codeflow.diff.code_diff import GRANULARITIES, CodeDiff, diff_code
from codeflow.diff.parse import line_starts
from codeflow.diff.regions import lines_touched
from codeflow.diff.tokens import spans_to_token_mask

Span = tuple[int, int]
_RESET = "\x1b[0m"


class UsageError(Exception):
    """Bad input from the command line: reported as one line on stderr with exit code 2."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="show which characters and tokens a fix changed (AST-aware)",
        description="Diff two versions of a Python file: D- (what changed in BEFORE, the rejected code) and D+ "
        "(what changed in AFTER, the fixed code). Comments, docstrings and layout are not changes. Changed "
        "text is shown as [-...-] (D-) and {+...+} (D+), or in colour on a terminal; an anchor, where a fix "
        "only inserted code, is shown as [^...^].",
    )
    parser.add_argument("before", metavar="BEFORE", help="the earlier (failing) version, a Python file")
    parser.add_argument("after", metavar="AFTER", help="the later (fixed) version, a Python file")
    parser.add_argument(
        "--granularity",
        "-g",
        choices=GRANULARITIES,
        default="statement",
        help="what a change covers: the enclosing statement (its changed lines), the smallest syntax node, "
        "the changed tokens, or whole lines (the paper's Algorithm 1); default: %(default)s",
    )
    parser.add_argument(
        "--context",
        "-k",
        type=_non_negative_int,
        default=0,
        metavar="K",
        help="widen every marked region to whole lines, K more on each side (the paper's diff augmentation); "
        "default: %(default)s",
    )
    parser.add_argument(
        "--tokenizer",
        metavar="PATH",
        default=None,
        help="a tokenizer.json, or a folder holding one: also count the tokens in each mask; default: none "
        "(no token counts)",
    )
    parser.add_argument(
        "--show-tokens",
        action="store_true",
        help="mark each token of the masks, one bracket (or colour shade) per token, instead of the changed "
        "characters (needs --tokenizer); with --json, list the masked tokens' character ranges; default: off",
    )
    parser.add_argument(
        "--hunks",
        action="store_true",
        help="print only the marked lines, with --hunk-context lines around them (gaps shown as '...'); "
        "default: the whole files",
    )
    parser.add_argument(
        "--hunk-context",
        type=_non_negative_int,
        default=3,
        metavar="N",
        help="lines shown around the marked ones with --hunks; default: %(default)s",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print one JSON object (kind, spans, lines, anchors, line-diff counts) instead of the highlighted "
        "text; default: off",
    )
    parser.set_defaults(func=run)
    _report_errors_on_one_line(parser)


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of lines, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {number}")
    return number


def _report_errors_on_one_line(parser: argparse.ArgumentParser) -> None:
    """Make bad options print one stderr line and exit 2 (argparse's default prints the usage too)."""

    def error(message: str) -> None:  # type: ignore[misc]
        print(f"codeflow diff: error: {message}", file=sys.stderr)
        sys.exit(2)

    parse_known = parser.parse_known_args

    def parse_known_args(args=None, namespace=None):  # noqa: ANN001, ANN202 - argparse's own signature
        namespace, extras = parse_known(args, namespace)
        if extras:  # the top-level parser would report these with its usage text
            error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    parser.error = error  # type: ignore[method-assign]
    parser.parse_known_args = parse_known_args  # type: ignore[method-assign]


def run(args: argparse.Namespace) -> int:
    try:
        if args.show_tokens and not args.tokenizer:
            raise UsageError("--show-tokens needs --tokenizer PATH (the tokenizer whose tokens to mark)")
        before, after = _read(args.before), _read(args.after)
        tokenizer = _load_tokenizer(args.tokenizer) if args.tokenizer else None
    except UsageError as error:
        print(f"codeflow diff: error: {error}", file=sys.stderr)
        return 2
    diff = diff_code(before, after, granularity=args.granularity, context=args.context)
    masks = None
    if tokenizer is not None:
        masks = (
            _masked_tokens(tokenizer, before, diff.before_spans),
            _masked_tokens(tokenizer, after, diff.after_spans),
        )
    token_counts = (len(masks[0]), len(masks[1])) if masks is not None else None
    if args.json:
        result = _json_object(diff, token_counts)
        if args.show_tokens:
            result["before_masked_tokens"], result["after_masked_tokens"] = (
                [list(t) for t in m] for m in masks
            )
        print(json.dumps(result))
        return 0
    colour = sys.stdout.isatty()
    hunks = args.hunk_context if args.hunks else None
    sides = (
        (args.before, before, diff.before_spans, diff.before_anchors, "-", masks[0] if masks else None),
        (args.after, after, diff.after_spans, [], "+", masks[1] if masks else None),
    )
    for name, text, spans, anchors, marker, tokens in sides:
        print(f"{'---' if marker == '-' else '+++'} {name}")
        if args.show_tokens:
            shown = render(text, tokens, marker, colour, hunks=hunks, marked_lines=spans, each_apart=True)
        else:
            shown = render(text, spans, marker, colour, hunks=hunks, anchors=anchors)
        if shown:
            print(shown)
    print(summary(diff, token_counts, before))
    return 0


def _read(path: str) -> str:
    try:
        # bytes, then decode: keeps \r\n as is, so offsets are those of the file's own text
        return Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, expected a Python file") from None
    except UnicodeDecodeError as error:
        raise UsageError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise UsageError(f"{path}: cannot read ({error.strerror or error})") from None


def _load_tokenizer(path: str) -> Any:
    """A `tokenizers.Tokenizer` (no transformers needed) from a tokenizer.json or a folder holding one."""
    from tokenizers import Tokenizer

    file = Path(path) / "tokenizer.json" if Path(path).is_dir() else Path(path)
    if not file.is_file():
        raise UsageError(
            f"{path}: no tokenizer.json there (give a Hugging Face fast tokenizer's file or folder)"
        )
    try:
        return Tokenizer.from_file(str(file))
    except Exception as error:  # tokenizers raises plain Exception subclasses for malformed files
        raise UsageError(f"{file}: not a tokenizer.json ({str(error).splitlines()[0]})") from None


def _masked_tokens(tokenizer: Any, text: str, spans: list[Span]) -> list[Span]:
    """The character ranges of the tokens in the mask of `spans`, once each (byte-level pieces of one
    character share a range)."""
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    mask = spans_to_token_mask(offsets, spans)
    return sorted({tuple(offset) for offset, masked in zip(offsets, mask, strict=True) if masked})


def _json_object(diff: CodeDiff, token_counts: tuple[int, int] | None) -> dict[str, Any]:
    result = diff.to_dict()
    if token_counts is not None:
        result["before_tokens"], result["after_tokens"] = token_counts
    return result


def render(
    text: str,
    spans: list[Span],
    marker: str,
    colour: bool,
    hunks: int | None = None,
    anchors: list[Span] = (),
    marked_lines: list[Span] | None = None,
    each_apart: bool = False,
) -> str:
    """The text with a line-number gutter; marked lines get `marker`, marked characters are highlighted.

    Without colour, D- characters are shown as [-...-], D+ characters as {+...+} and anchors (spans listed
    in `anchors`) as [^...^]. `each_apart` marks every span on its own (tokens: `[-if-][- x-]`), and on a
    terminal alternates two shades so that neighbouring tokens stay apart. With `hunks`, only the marked
    lines (those of `marked_lines` if given) and `hunks` lines around them are shown, gaps as `...`.
    """
    anchor_set = set(anchors)
    starts = line_starts(text)
    bounds = starts + [len(text)] if starts[-1] != len(text) else starts
    out = []
    span_index = 0
    touched_lines = set(lines_touched(marked_lines if marked_lines is not None else spans, starts))
    for number, (line_start, line_end) in enumerate(zip(bounds, bounds[1:], strict=False), start=1):
        content_end = line_start + len(text[line_start:line_end].rstrip("\r\n"))
        pieces, cursor = [], line_start
        while span_index < len(spans) and spans[span_index][0] < line_end:
            start, end = max(spans[span_index][0], line_start), min(spans[span_index][1], line_end)
            lit_end = min(end, content_end)
            if lit_end > start:
                open_mark, close_mark = _marks(
                    marker, colour, spans[span_index] in anchor_set, each_apart, span_index
                )
                pieces += [text[cursor:start], open_mark, text[start:lit_end], close_mark]
                cursor = lit_end
            if spans[span_index][1] > line_end:
                break  # the span goes on in the next line
            span_index += 1
        pieces.append(text[cursor:content_end])
        out.append(f"{number:4} {marker if number in touched_lines else ' '} {''.join(pieces)}")
    if hunks is None:
        return "\n".join(out)
    shown = sorted(
        {n for line in touched_lines for n in range(line - hunks, line + hunks + 1) if 1 <= n <= len(out)}
    )
    lines: list[str] = []
    for previous, number in zip([0, *shown], shown, strict=False):
        if number != previous + 1:
            lines.append("   ...")
        lines.append(out[number - 1])
    if shown and shown[-1] != len(out):
        lines.append("   ...")
    return "\n".join(lines)


_MARKS = {"-": ("[-", "-]"), "+": ("{+", "+}"), "^": ("[^", "^]")}
# terminal colours: D- red, D+ green, anchors yellow; a second shade tells neighbouring tokens apart
_COLOURS = {
    "-": ("\x1b[1;31m", "\x1b[1;41;97m"),
    "+": ("\x1b[1;32m", "\x1b[1;42;97m"),
    "^": ("\x1b[1;33m",) * 2,
}


def _marks(marker: str, colour: bool, anchor: bool, each_apart: bool, index: int) -> tuple[str, str]:
    kind = "^" if anchor else marker
    if colour:
        return _COLOURS[kind][index % 2 if each_apart else 0], _RESET
    return _MARKS[kind]


def summary(diff: CodeDiff, token_counts: tuple[int, int] | None, before_text: str | None = None) -> str:
    parts = [
        f"kind: {diff.kind}",
        f"granularity: {diff.granularity}",
        f"D-: {_lines(diff.before_lines)}",
        f"D+: {_lines(diff.after_lines)}",
    ]
    if diff.before_anchors:
        anchored = (
            lines_touched(diff.before_anchors, line_starts(before_text)) if before_text is not None else []
        )
        label = "line" if len(anchored) == 1 else "lines"
        parts.append(f"anchor: {label} {', '.join(map(str, anchored))} (where the fix inserted code)")
    if token_counts is not None:
        parts.append(f"tokens in mask: {token_counts[0]} D- / {token_counts[1]} D+")
    if not diff.parse_ok:
        parts.append("parse failed (tree-sitter found syntax errors): fell back to a line diff")
    return " | ".join(parts)


def _lines(numbers: list[int]) -> str:
    if not numbers:
        return "no lines"
    label = "line" if len(numbers) == 1 else "lines"
    return f"{len(numbers)} {label} ({', '.join(map(str, numbers))})"
