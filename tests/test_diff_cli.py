"""`codeflow diff`: highlighted text, one JSON object, and one-line errors with exit code 2."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from codeflow.diff.cli import register

ROOT = Path(__file__).resolve().parents[1]
BEFORE, AFTER = ROOT / "examples/diff/before.py", ROOT / "examples/diff/after.py"


def codeflow_diff(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="codeflow")
    register(parser.add_subparsers())
    try:
        args = parser.parse_args(["diff", *argv])
    except SystemExit as exit_:
        return int(exit_.code)
    return args.func(args)


def test_example_pair_json_marks_the_fix_and_not_the_noise(capsys):
    assert codeflow_diff(str(BEFORE), str(AFTER), "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) == {"kind", "granularity", "parse_ok", "fallback", "before", "after"}
    assert (result["kind"], result["granularity"], result["parse_ok"], result["fallback"]) == (
        "semantic",
        "statement",
        True,
        None,
    )
    before, after = BEFORE.read_text(), AFTER.read_text()
    assert [before[s:e] for s, e in result["before"]["spans"]] == ["if start < last[1]:", "covered += width"]
    assert [after[s:e] for s, e in result["after"]["spans"]] == [
        "if not intervals:",
        "return []",
        "if start <= last[1]:",
        "covered += width",
    ]
    # the comment edit (line 7/10) and the call split over two lines (5-6) are not marked
    assert result["before"]["lines"] == [8, 20]
    assert result["after"]["lines"] == [3, 4, 11, 23]


def test_tokenizer_adds_masked_token_counts(capsys, tokenizer_dir):
    assert codeflow_diff(str(BEFORE), str(AFTER), "--json", "--tokenizer", str(tokenizer_dir)) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["before_tokens"] > 0 and result["after_tokens"] > result["before_tokens"]


def test_text_output_marks_changes_and_ends_with_a_summary(capsys):
    assert codeflow_diff(str(BEFORE), str(AFTER), "--granularity", "token") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"--- {BEFORE}"
    assert "   8 -         if start [-<-] last[1]:" in out
    assert "  11 +         if start {+<=+} last[1]:" in out
    assert out[-1].startswith("kind: semantic | granularity: token | D-: 2 lines (8, 20)")


def test_unparsable_input_says_it_fell_back(tmp_path, capsys):
    broken = tmp_path / "broken.py"
    broken.write_text("def f(x)\n    return x\n")
    good = tmp_path / "good.py"
    good.write_text("def f(x):\n    return x\n")
    assert codeflow_diff(str(broken), str(good)) == 0
    assert "fell back to a line diff" in capsys.readouterr().out.splitlines()[-1]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing.py", str(AFTER)], "missing.py: no such file"),
        ([str(BEFORE), str(ROOT / "examples")], "is a directory"),
        ([str(BEFORE), str(AFTER), "--granularity", "word"], "invalid choice"),
        ([str(BEFORE), str(AFTER), "--context", "-1"], "must be 0 or more"),
        ([str(BEFORE), str(AFTER), "--context", "two"], "whole number"),
        ([str(BEFORE), str(AFTER), "--bogus"], "unrecognized arguments: --bogus"),
        ([str(BEFORE)], "required"),
        ([str(BEFORE), str(AFTER), "--tokenizer", "nowhere"], "no tokenizer.json"),
    ],
)
def test_bad_input_prints_one_stderr_line_and_exits_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert codeflow_diff(*argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and message in lines[0]


def test_undecodable_file_is_a_usage_error(tmp_path, capsys):
    latin1 = tmp_path / "latin1.py"
    latin1.write_bytes("x = 'caf\xe9'\n".encode("latin-1"))
    assert codeflow_diff(str(latin1), str(AFTER)) == 2
    assert "not UTF-8" in capsys.readouterr().err


def test_readme_quickstart_command_runs_through_the_console_entry():
    result = subprocess.run(
        [sys.executable, "-m", "codeflow.cli", "diff", "examples/diff/before.py", "examples/diff/after.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("kind: semantic | granularity: statement")


def test_terminal_output_is_coloured_instead_of_bracketed(capsys, monkeypatch):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert codeflow_diff(str(BEFORE), str(AFTER), "--granularity", "token") == 0
    out = capsys.readouterr().out
    assert "\x1b[1;31m<\x1b[0m" in out and "\x1b[1;32m<=\x1b[0m" in out
    assert "[-<-]" not in out


def test_show_tokens_brackets_each_masked_token_so_boundaries_show(capsys, tokenizer_dir):
    argv = [
        str(BEFORE),
        str(AFTER),
        "--tokenizer",
        str(tokenizer_dir),
        "--show-tokens",
        "--granularity",
        "token",
    ]
    assert codeflow_diff(*argv) == 0
    out = capsys.readouterr().out.splitlines()
    line_8 = next(line for line in out if line.startswith("   8 -"))
    # `<` is one token of the mask, and so is each piece of `covered` on line 20
    assert "[- <-]" in line_8 and line_8.count("[-") == 1
    line_20 = next(line for line in out if line.startswith("  20 -"))
    assert line_20.count("[-") >= 3 and "-][-" in line_20  # neighbouring tokens, each in its own brackets
    assert f"tokens in mask: {line_8.count('[-') + line_20.count('[-')} D- /" in out[-1]


def test_show_tokens_on_a_terminal_alternates_two_shades(capsys, monkeypatch, tokenizer_dir):
    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert codeflow_diff(str(BEFORE), str(AFTER), "--tokenizer", str(tokenizer_dir), "--show-tokens") == 0
    out = capsys.readouterr().out
    assert "\x1b[1;31m" in out and "\x1b[1;41;97m" in out  # D- tokens in turn
    assert "\x1b[1;32m" in out and "\x1b[1;42;97m" in out
    assert "[- <-]" not in out


def test_show_tokens_with_json_lists_the_masked_token_ranges(capsys, tokenizer_dir):
    argv = [str(BEFORE), str(AFTER), "--tokenizer", str(tokenizer_dir), "--show-tokens", "--json"]
    assert codeflow_diff(*argv) == 0
    result = json.loads(capsys.readouterr().out)
    assert len(result["before_masked_tokens"]) == result["before_tokens"]
    before = BEFORE.read_text()
    assert "".join(before[s:e] for s, e in result["before_masked_tokens"]).startswith(" if start <")


def test_hunks_print_only_marked_lines_with_context(capsys):
    assert codeflow_diff(str(BEFORE), str(AFTER), "--hunks", "--hunk-context", "1") == 0
    out = capsys.readouterr().out.splitlines()
    numbers = [int(line[:4]) for line in out if line[:4].strip().isdigit()]
    assert numbers == [7, 8, 9, 19, 20, 21, 2, 3, 4, 5, 10, 11, 12, 22, 23, 24]
    assert out.count("   ...") == 5
    assert out[-1].startswith("kind: semantic")


def test_hunks_default_to_three_lines_of_context(capsys):
    assert codeflow_diff(str(BEFORE), str(AFTER), "--hunks") == 0
    out = capsys.readouterr().out.splitlines()
    numbers = [int(line[:4]) for line in out[: out.index(f"+++ {AFTER}")] if line[:4].strip().isdigit()]
    assert numbers == list(range(5, 12)) + list(range(17, 22))


def test_anchor_is_shown_apart_from_changes(tmp_path, capsys):
    before, after = tmp_path / "before.py", tmp_path / "after.py"
    before.write_text("def scale(values, factor):\n    return [v * factor for v in values]\n")
    after.write_text(
        "def scale(values, factor):\n    if factor is None:\n        return []\n"
        "    return [v * factor for v in values]\n"
    )
    assert codeflow_diff(str(before), str(after)) == 0
    out = capsys.readouterr().out.splitlines()
    assert "   2 -     [^return [v * factor for v in values]^]" in out
    assert out[-1].endswith("| anchor: line 2 (where the fix inserted code)")


def test_help_describes_every_option_and_shows_defaults(capsys):
    assert codeflow_diff("--help") == 0
    text = " ".join(capsys.readouterr().out.split())
    for option in (
        "--granularity",
        "--context",
        "--tokenizer",
        "--show-tokens",
        "--hunks",
        "--hunk-context",
        "--json",
    ):
        assert option in text
    assert "default: statement" in text and "default: 0" in text and "default: 3" in text
    assert "BEFORE the earlier" in text and "AFTER the later" in text


@pytest.mark.parametrize(
    "argv, message",
    [
        ([str(BEFORE), str(AFTER), "--show-tokens"], "--show-tokens needs --tokenizer"),
        ([str(BEFORE), str(AFTER), "--hunks", "--hunk-context", "-2"], "must be 0 or more"),
        ([str(BEFORE), str(AFTER), "--hunk-context", "x"], "whole number"),
    ],
)
def test_bad_display_options_print_one_stderr_line_and_exit_2(argv, message, capsys):
    assert codeflow_diff(*argv) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and len(captured.err.splitlines()) == 1 and message in captured.err
