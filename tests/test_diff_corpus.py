"""The diff engine over real fix pairs of public projects (tests/diff_corpus), each check against an
independent reference; and the checks themselves catch the faults they are for."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from codeflow.diff import CodeDiff
from tests.diff_corpus import checks

CORPUS = Path(__file__).parent / "diff_corpus" / "pairs.jsonl.gz"


@pytest.fixture(scope="module")
def corpus_report() -> checks.CorpusReport:
    return checks.check_corpus(checks.load_pairs(CORPUS))


def test_corpus_has_real_fix_pairs_from_several_projects():
    rows = checks.load_pairs(CORPUS)
    assert len(rows) >= 300
    assert len({row["repo"] for row in rows}) >= 5
    assert all(row["commit"] and row["licence"] and row["before"] != row["after"] for row in rows)


def test_no_pair_raises(corpus_report):
    assert corpus_report.raised == 0, corpus_report.problems


def test_no_changed_code_line_is_missed(corpus_report):
    assert corpus_report.kinds["semantic"] >= 200
    assert corpus_report.untokenizable == 0
    assert corpus_report.missed_pairs == 0, corpus_report.problems


def test_no_unchanged_line_is_marked(corpus_report):
    assert corpus_report.unchanged_marked_pairs == 0, corpus_report.problems


def test_every_semantic_pair_has_d_minus_and_insertions_get_anchors(corpus_report):
    assert corpus_report.empty_d_minus == 0, corpus_report.problems
    assert corpus_report.anchored > 0  # fixes that only add code are in the corpus, and anchored


# -- the checks catch what they are for ----------------------------------------------------------------------

PAIR = {
    "repo": "example",
    "commit": "0" * 40,
    "function": "total",
    "before": "def total(items):\n    result = 0\n    for item in items:\n        result += item\n    return result\n",
    "after": "def total(items):\n    result = 0\n    for item in items:\n        result -= item\n    return result\n",
}


def _report_with(monkeypatch, diff: CodeDiff) -> checks.CorpusReport:
    monkeypatch.setattr(checks, "diff_code", lambda before, after, granularity="statement": diff)
    report = checks.CorpusReport()
    checks.check_pair(PAIR, report)
    return report


def _line_span(text: str, line: int) -> tuple[int, int]:
    lines = text.splitlines(keepends=True)
    start = sum(len(x) for x in lines[: line - 1])
    return start, start + len(lines[line - 1]) - 1


def test_missed_line_check_flags_an_engine_that_leaves_the_changed_line_unmarked(monkeypatch):
    wrong_line = _line_span(PAIR["before"], 2)
    diff = CodeDiff("semantic", "statement", [wrong_line], [_line_span(PAIR["after"], 4)], [2], [4])
    report = _report_with(monkeypatch, diff)
    assert report.missed_pairs == 1


def test_unchanged_line_check_flags_a_marked_unchanged_statement(monkeypatch):
    before_spans = [_line_span(PAIR["before"], 4), _line_span(PAIR["before"], 5)]
    diff = CodeDiff("semantic", "statement", before_spans, [_line_span(PAIR["after"], 4)], [4, 5], [4])
    report = _report_with(monkeypatch, diff)
    assert (report.missed_pairs, report.unchanged_marked_pairs) == (0, 1)


def test_empty_d_minus_check_flags_a_semantic_pair_without_d_minus(monkeypatch):
    diff = CodeDiff("semantic", "statement", [], [_line_span(PAIR["after"], 4)], [], [4])
    assert _report_with(monkeypatch, diff).empty_d_minus == 1


def test_a_correct_diff_passes_every_check(monkeypatch):
    diff = CodeDiff(
        "semantic", "statement", [_line_span(PAIR["before"], 4)], [_line_span(PAIR["after"], 4)], [4], [4]
    )
    report = _report_with(monkeypatch, diff)
    assert (report.missed_pairs, report.unchanged_marked_pairs, report.empty_d_minus) == (0, 0, 0)


def _lcs_length(a: list, b: list) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        diagonal = 0
        for j, y in enumerate(b, start=1):
            diagonal, row[j] = row[j], (diagonal + 1 if x == y else max(row[j], row[j - 1]))
    return row[-1]


def test_reference_lcs_is_exact_and_a_common_subsequence():
    rng = random.Random(3)
    for _ in range(200):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 30))]
        b = [rng.choice("abcd") for _ in range(rng.randint(0, 30))]
        keep_a, keep_b = checks.lcs_keep(a, b)
        assert [a[i] for i in sorted(keep_a)] == [b[j] for j in sorted(keep_b)]
        assert len(keep_a) == _lcs_length(a, b)


def test_weighted_alignment_decides_whether_required_items_can_all_be_matched():
    a, b = list("xay"), list("yax")
    assert checks.all_matchable(a, b, [False, True, False], [False, True, False])  # 'a' with 'a'
    assert not checks.all_matchable(a, b, [True, False, True], [False, False, False])  # x and y cross


def test_tokens_of_a_one_line_body_have_the_depth_of_a_block_and_f_strings_are_opened():
    one_line = checks.code_tokens("if ready: go()\n")
    split = checks.code_tokens("if ready:\n    go()\n")
    assert [key for key, _ in one_line] == [key for key, _ in split]
    keys = [key[1] for key, _ in checks.code_tokens('x = f"a {size + 1:>4} b"\n')]
    assert "size" in keys and "+" in keys and "1" in keys
