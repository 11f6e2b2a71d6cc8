"""`codeflow diff BEFORE AFTER`: show what a fix changed, as highlighted text or one JSON object."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from codeflow.diff.code_diff import GRANULARITIES, CodeDiff, diff_code
from codeflow.diff.parse import line_starts
from codeflow.diff.tokens import spans_to_token_mask

Span = tuple[int, int]
_RED, _GREEN, _RESET = "\x1b[1;31m", "\x1b[1;32m", "\x1b[0m"


class UsageError(Exception):
    """Bad input from the command line: reported as one line on stderr with exit code 2."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "diff",
        help="show which characters and tokens a fix changed (AST-aware)",
        description="Diff two versions of a Python file: D- (changed in BEFORE) and D+ (changed in AFTER).",
    )
    parser.add_argument("before", metavar="BEFORE", help="the earlier (failing) version")
    parser.add_argument("after", metavar="AFTER", help="the later (fixed) version")
    parser.add_argument(
        "--granularity",
        "-g",
        choices=GRANULARITIES,
        default="statement",
        help="what a change covers: the enclosing statement (default), the smallest node, the leaf tokens, "
        "or whole lines (the paper's Algorithm 1)",
    )
    parser.add_argument(
        "--context",
        "-k",
        type=_non_negative_int,
        default=0,
        help="widen every region by K lines on each side",
    )
    parser.add_argument(
        "--tokenizer",
        metavar="PATH",
        help="a tokenizer.json, or a folder holding one: also count masked tokens",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of the highlighted text"
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
        before, after = _read(args.before), _read(args.after)
        tokenizer = _load_tokenizer(args.tokenizer) if args.tokenizer else None
    except UsageError as error:
        print(f"codeflow diff: error: {error}", file=sys.stderr)
        return 2
    diff = diff_code(before, after, granularity=args.granularity, context=args.context)
    token_counts = None
    if tokenizer is not None:
        token_counts = (
            _masked_tokens(tokenizer, before, diff.before_spans),
            _masked_tokens(tokenizer, after, diff.after_spans),
        )
    if args.json:
        print(json.dumps(_json_object(diff, token_counts)))
    else:
        colour = sys.stdout.isatty()
        print(f"--- {args.before}")
        print(render(before, diff.before_spans, "-", colour))
        print(f"+++ {args.after}")
        print(render(after, diff.after_spans, "+", colour))
        print(summary(diff, token_counts))
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


def _masked_tokens(tokenizer: Any, text: str, spans: list[Span]) -> int:
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    return sum(spans_to_token_mask(offsets, spans))


def _json_object(diff: CodeDiff, token_counts: tuple[int, int] | None) -> dict[str, Any]:
    result = diff.to_dict()
    if token_counts is not None:
        result["before_tokens"], result["after_tokens"] = token_counts
    return result


def render(text: str, spans: list[Span], marker: str, colour: bool) -> str:
    """The text with a line-number gutter; changed lines get `marker`, changed characters are highlighted.

    Without colour, D- characters are shown as [-...-] and D+ characters as {+...+}.
    """
    if colour:
        open_mark, close_mark = (_RED, _RESET) if marker == "-" else (_GREEN, _RESET)
    else:
        open_mark, close_mark = ("[-", "-]") if marker == "-" else ("{+", "+}")
    starts = line_starts(text)
    bounds = starts + [len(text)] if starts[-1] != len(text) else starts
    out = []
    span_index = 0
    for number, (line_start, line_end) in enumerate(zip(bounds, bounds[1:], strict=False), start=1):
        content_end = line_start + len(text[line_start:line_end].rstrip("\r\n"))
        pieces, cursor, touched = [], line_start, False
        while span_index < len(spans) and spans[span_index][0] < line_end:
            start, end = max(spans[span_index][0], line_start), min(spans[span_index][1], line_end)
            touched = True
            lit_end = min(end, content_end)
            if lit_end > start:
                pieces += [text[cursor:start], open_mark, text[start:lit_end], close_mark]
                cursor = lit_end
            if spans[span_index][1] > line_end:
                break  # the span goes on in the next line
            span_index += 1
        pieces.append(text[cursor:content_end])
        out.append(f"{number:4} {marker if touched else ' '} {''.join(pieces)}")
    return "\n".join(out)


def summary(diff: CodeDiff, token_counts: tuple[int, int] | None) -> str:
    parts = [
        f"kind: {diff.kind}",
        f"granularity: {diff.granularity}",
        f"D-: {_lines(diff.before_lines)}",
        f"D+: {_lines(diff.after_lines)}",
    ]
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
