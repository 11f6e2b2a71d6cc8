"""Property tests (hypothesis): spans are in bounds, sorted, non-overlapping, empty for identical input;
line mode is an exact LCS; token masks agree with a naive overlap test."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codeflow.diff import diff_code, spans_to_token_mask
from codeflow.diff.code_diff import GRANULARITIES
from codeflow.diff.parse import line_starts
from codeflow.diff.regions import lines_touched

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = ["x", "total", "é", "数据", "item_2", "größe"]
EXPRESSIONS = ["{a} + {b}", "{a} < {b}", "{a}[{b}]", "len({a})", "'🌍 {a}'", "f({a}, {b})", "-{a}", "{a} * 2"]
SIMPLE = ["{a} = {e}", "return {e}", "{a} += 1", "print({e})", "pass", "# note {a} 世界", "break"]
HEADERS = ["if {e}:", "for {a} in {b}:", "while {e}:", "with open({a}) as {b}:"]


@st.composite
def programs(draw) -> str:
    """A small function with nested blocks, non-ASCII names, strings and comments (not always runnable)."""
    lines = ["def run(x, total):"]
    depth = 1
    for _ in range(draw(st.integers(1, 14))):
        a, b = draw(st.sampled_from(NAMES)), draw(st.sampled_from(NAMES))
        e = draw(st.sampled_from(EXPRESSIONS)).format(a=a, b=b)
        if depth < 4 and draw(st.booleans()):
            lines.append("    " * depth + draw(st.sampled_from(HEADERS)).format(a=a, b=b, e=e))
            depth += 1
            lines.append("    " * depth + draw(st.sampled_from(SIMPLE)).format(a=a, e=e))
        else:
            lines.append("    " * depth + draw(st.sampled_from(SIMPLE)).format(a=a, e=e))
        if depth > 1 and draw(st.integers(0, 3)) == 0:
            depth -= 1
    return "\n".join(lines) + "\n"


@st.composite
def edited(draw, program: str) -> str:
    """The program after a few line edits of the kinds a fix makes (some break the syntax on purpose)."""
    lines = program.splitlines(keepends=True)
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(lines) - 1))
        action = draw(
            st.sampled_from(["delete", "duplicate", "indent", "dedent", "operator", "comment", "space"])
        )
        line = lines[i]
        if action == "delete" and len(lines) > 1:
            del lines[i]
        elif action == "duplicate":
            lines.insert(i, line)
        elif action == "indent":
            lines[i] = "    " + line
        elif action == "dedent" and line.startswith("    "):
            lines[i] = line[4:]
        elif action == "operator":
            lines[i] = line.replace("<", "<=").replace("+", "-")
        elif action == "comment":
            lines[i] = line.rstrip("\n") + "  # 😀 changed\n"
        elif action == "space":
            lines[i] = line.replace(", ", " , ").replace(" = ", "  =  ")
    return "".join(lines)


@st.composite
def program_pairs(draw) -> tuple[str, str]:
    before = draw(programs())
    return before, draw(edited(before))


def assert_well_formed(spans: list[tuple[int, int]], lines: list[int], text: str) -> None:
    for start, end in spans:
        assert 0 <= start < end <= len(text)
    for (_, end), (next_start, _) in zip(spans, spans[1:], strict=False):
        assert end < next_start  # sorted, non-overlapping, touching spans merged
    assert lines == sorted({text.count("\n", 0, i) + 1 for start, end in spans for i in range(start, end)})


@SETTINGS
@given(program_pairs(), st.sampled_from(GRANULARITIES), st.integers(0, 2))
def test_spans_are_in_bounds_sorted_and_non_overlapping(pair, granularity, context):
    before, after = pair
    d = diff_code(before, after, granularity, context)
    assert_well_formed(d.before_spans, d.before_lines, before)
    assert_well_formed(d.after_spans, d.after_lines, after)
    assert (d.fallback == "line") == (not d.parse_ok and granularity != "line")


@SETTINGS
@given(st.text(max_size=80), st.text(max_size=80), st.sampled_from(GRANULARITIES))
def test_arbitrary_text_never_raises_and_spans_stay_in_bounds(before, after, granularity):
    d = diff_code(before, after, granularity)
    assert all(0 <= s < e <= len(before) for s, e in d.before_spans)
    assert all(0 <= s < e <= len(after) for s, e in d.after_spans)


@SETTINGS
@given(programs(), st.sampled_from(GRANULARITIES), st.integers(0, 2))
def test_identical_input_gives_no_spans(program, granularity, context):
    d = diff_code(program, program, granularity, context)
    assert d.kind == "identical"
    assert d.before_spans == d.after_spans == []


def lcs_length(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        previous_diagonal = 0
        for j, y in enumerate(b, start=1):
            previous_diagonal, row[j] = row[j], (previous_diagonal + 1 if x == y else max(row[j], row[j - 1]))
    return row[-1]


@SETTINGS
@given(program_pairs())
def test_line_mode_keeps_exactly_a_longest_common_subsequence_of_lines(pair):
    before, after = pair
    d = diff_code(before, after, "line")
    before_lines, after_lines = before.splitlines(), after.splitlines()
    # an anchor marks where inserted lines belong: the lines it covers are kept by the LCS
    changed = set(d.before_lines) - set(lines_touched(d.before_anchors, line_starts(before)))
    kept_before = [line for n, line in enumerate(before_lines, 1) if n not in changed]
    kept_after = [line for n, line in enumerate(after_lines, 1) if n not in d.after_lines]
    assert kept_before == kept_after  # a common subsequence ...
    assert len(kept_before) == lcs_length(before_lines, after_lines)  # ... of maximal length


def naive_mask(offsets, spans):
    return [e > s and any(s < se and ss < e for ss, se in spans) for s, e in offsets]


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 60), st.integers(0, 8)), max_size=40),
    st.lists(st.tuples(st.integers(0, 60), st.integers(1, 8)), max_size=8),
)
def test_token_mask_matches_a_naive_overlap_test(raw_offsets, raw_spans):
    offsets = [(s, s + w) for s, w in raw_offsets]
    spans, cursor = [], 0
    for gap, width in raw_spans:  # sorted, non-overlapping spans
        spans.append((cursor + gap, cursor + gap + width))
        cursor += gap + width
    assert spans_to_token_mask(offsets, spans) == naive_mask(offsets, spans)


@settings(max_examples=30, deadline=None)
@given(program_pairs())
def test_real_tokenizer_masks_cover_exactly_the_overlapping_tokens(test_tokenizer, pair):
    before, after = pair
    d = diff_code(before, after)
    for text, spans in ((before, d.before_spans), (after, d.after_spans)):
        offsets = test_tokenizer(text, return_offsets_mapping=True)["offset_mapping"]
        assert spans_to_token_mask(offsets, spans) == naive_mask(offsets, spans)


@SETTINGS
@given(
    st.lists(st.tuples(st.integers(0, 3), st.integers(0, 6)), max_size=60),
    st.lists(st.tuples(st.integers(0, 40), st.integers(1, 20)), max_size=6),
    st.booleans(),
)
def test_token_mask_of_tokens_in_text_order_matches_the_naive_test(pieces, raw_spans, specials):
    """Offsets as a tokenizer gives them: increasing, byte pieces sharing a range, (0, 0) specials at the ends."""
    offsets, cursor = [], 0
    for gap, width in pieces:
        repeats = 1 + gap % 3 if width else 1  # several byte-level pieces with one range
        offsets += [(cursor + gap, cursor + gap + width)] * repeats
        cursor += gap + width
    if specials:
        offsets = [(0, 0), *offsets, (0, 0)]
    spans, cursor = [], 0
    for gap, width in raw_spans:
        spans.append((cursor + gap, cursor + gap + width))
        cursor += gap + width
    assert spans_to_token_mask(offsets, spans) == naive_mask(offsets, spans)


@SETTINGS
@given(program_pairs())
def test_same_tree_agrees_with_comparing_ast_dumps(pair):
    import ast

    from codeflow.diff.classify import same_tree

    trees = []
    for text in pair:
        try:
            trees.append(ast.parse(text))
        except SyntaxError:
            return
    assert same_tree(*trees) == (ast.dump(trees[0]) == ast.dump(trees[1]))
    assert same_tree(trees[0], trees[0])
