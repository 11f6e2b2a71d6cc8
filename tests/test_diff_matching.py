"""Two-level matching, anchors for insertions, strings cut per line and multi-line statements (issue 11)."""

from __future__ import annotations

import pytest

from codeflow.diff import diff_code
from codeflow.diff import match as matching
from codeflow.pipeline.filters import rejected_diff_lines


def marked(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[s:e] for s, e in spans]


# -- statements are matched first --------------------------------------------------------------------------

SCALE = """def scale(values, factor):
    if factor > 0:
        return [v * factor for v in values]
    return []
"""
SCALE_GUARDED = SCALE.replace(
    "    if factor > 0:", "    if factor is None:\n        return None\n    if factor > 0:"
)


@pytest.mark.parametrize("granularity", ["statement", "token", "node"])
def test_guard_inserted_above_a_similar_if_marks_the_guard_not_the_old_if(granularity):
    d = diff_code(SCALE, SCALE_GUARDED, granularity)
    assert d.after_lines == [2, 3]  # `if factor > 0:` (line 4 now) is not in D+
    assert "".join(marked(SCALE_GUARDED, d.after_spans)).replace(" ", "") == "iffactorisNone:returnNone"
    assert d.before_lines == [2] and d.before_anchors == d.before_spans  # an anchor, not a change


def test_statement_inserted_before_a_neighbour_sharing_its_prefix():
    before = "def __init__(self, x, y):\n    self.x = x\n    self.y = y\n"
    after = "def __init__(self, x, y):\n    self.x = x\n    self.z = 0\n    self.y = y\n"
    d = diff_code(before, after, "token")
    assert marked(after, d.after_spans) == ["self.z", "=", "0"]
    assert marked(before, d.before_spans) == ["self"] == marked(before, d.before_anchors)
    assert d.before_lines == [3]


def test_statement_inserted_after_a_neighbour_sharing_its_suffix():
    before = "def reset(self):\n    self.cache.clear()\n    return self\n"
    after = "def reset(self):\n    self.cache.clear()\n    self.index.clear()\n    return self\n"
    d = diff_code(before, after)
    assert marked(after, d.after_spans) == ["self.index.clear()"]
    assert marked(before, d.before_spans) == ["return self"]


def test_swapped_calls_mark_one_call_on_each_side():
    before = "def setup(app):\n    app.register(routes)\n    app.configure(settings)\n    return app\n"
    after = "def setup(app):\n    app.configure(settings)\n    app.register(routes)\n    return app\n"
    for granularity in ("statement", "token"):
        d = diff_code(before, after, granularity)
        assert len(d.before_lines) == len(d.after_lines) == 1
        assert marked(before, d.before_spans) == marked(after, d.after_spans)  # the moved call, whole


def test_inserted_if_slides_to_whole_statements_among_equal_alignments():
    before = "def pick(a, b):\n    if a:\n        return None\n    if b:\n        return None\n    return 1\n"
    after = before.replace("    if b:", "    if a and b:\n        return None\n    if b:")
    d = diff_code(before, after)
    # not `return None` of the first if + the new header: the new if with its own body
    assert marked(after, d.after_spans) == ["if a and b:", "return None"]
    assert d.after_lines == [4, 5]


def test_lone_punctuation_does_not_anchor_a_match_across_statements():
    before = "def run(job):\n    job.load(path).parse()\n    return job\n"
    after = "def run(job):\n    config.read(name).check()\n    return job\n"
    d = diff_code(before, after, "token")
    assert marked(before, d.before_spans) == ["job.load(path).parse()"]
    assert marked(after, d.after_spans) == ["config.read(name).check()"]


def test_large_stretches_drop_links_made_only_of_punctuation(monkeypatch):
    monkeypatch.setattr(matching, "PAIR_LIMIT", 0)  # force the one-LCS fallback
    before = "def run(job):\n    job.load(path).parse()\n    total = 1\n    return job\n"
    after = "def run(job):\n    config.read(name).check()\n    count = 2\n    return job\n"
    d = diff_code(before, after, "token")
    assert marked(before, d.before_spans)[0] == "job.load(path).parse()"
    assert marked(after, d.after_spans)[0] == "config.read(name).check()"


def test_statement_rewritten_in_place_keeps_its_unchanged_lines():
    before = (
        "def cases():\n    expected = [\n        ['a', 'b'],\n        ['c'],\n    ]\n    return expected\n"
    )
    after = "def cases():\n    expected = [\n        [1, 2, 3],\n    ]\n    return expected\n"
    d = diff_code(before, after)
    assert d.before_lines == [3, 4] and d.after_lines == [3]


def test_deleted_entry_of_a_dict_literal_is_its_own_line():
    before = 'TABLE = {\n    "0": "zero",\n    "+": "plus",\n    "-": "minus",\n}\n'
    after = 'TABLE = {\n    "0": "zero",\n    "-": "minus",\n}\n'
    d = diff_code(before, after)
    assert marked(before, d.before_spans) == ['"+": "plus",']
    assert d.after_spans == []  # whole lines left a statement: no line of the chosen side changed


# -- an error point for every insertion ----------------------------------------------------------------------

FIND = '''def find(items, target):
    """Return the index of target, or None."""
    for index, item in enumerate(items):
        if item == target:
            return index
    return None
'''


TOTAL = """def total(items):
    result = 0
    for item in items:
        result += item.price
    return result
"""


@pytest.mark.parametrize(
    ("after", "token_anchor", "statement_anchor"),
    [
        # at the start of a block: the first code leaf after the insertion point
        (
            TOTAL.replace("    result = 0\n", "    if not items:\n        return 0\n    result = 0\n"),
            "result",
            "result = 0",
        ),
        # in the middle: the first leaf of the statement that came instead
        (TOTAL.replace("    result = 0\n", "    result = 0\n    count = 0\n"), "for", "for item in items:"),
        # at the end of a block: the last leaf before it (what follows is outside the block)
        (
            TOTAL.replace("item.price\n", "item.price\n        count += 1\n"),
            "price",
            "result += item.price",
        ),
        (
            TOTAL.replace("    return result\n", "    return result\n    print(result)\n"),
            "result",
            "return result",
        ),
    ],
    ids=["start", "middle", "end-of-block", "end-of-function"],
)
def test_fix_that_only_inserts_code_marks_where_it_belonged(after, token_anchor, statement_anchor):
    token = diff_code(TOTAL, after, "token")
    statement = diff_code(TOTAL, after, "statement")
    assert token.kind == statement.kind == "semantic"
    assert marked(TOTAL, token.before_spans) == [token_anchor] == marked(TOTAL, token.before_anchors)
    assert marked(TOTAL, statement.before_spans) == [statement_anchor]
    assert statement.before_anchors == statement.before_spans


def test_insertion_at_the_end_of_a_loop_body_anchors_on_the_body_not_after_the_loop():
    before = "def total(items):\n    result = 0\n    for item in items:\n        price = item.price\n    return result\n"
    after = before.replace(
        "        price = item.price\n", "        price = item.price\n        result += price\n"
    )
    d = diff_code(before, after, "token")
    assert marked(before, d.before_spans) == ["price"]
    assert d.before_lines == [4]


def test_extension_of_a_statement_is_an_anchor_on_that_statement():
    d = diff_code(FIND, FIND.replace("return index", "return index + 1"))
    assert marked(FIND, d.before_spans) == ["return index"] == marked(FIND, d.before_anchors)
    token = diff_code(FIND, FIND.replace("return index", "return index + 1"), "token")
    assert marked(FIND, token.before_spans) == ["index"]


def test_changes_are_not_anchors():
    d = diff_code(FIND, FIND.replace("item == target", "item is target"))
    assert d.before_spans and d.before_anchors == []


def test_line_granularity_and_the_line_fallback_anchor_pure_insertions_too():
    after = FIND.replace("    return None\n", "    print(target)\n    return None\n")
    d = diff_code(FIND, after, "line")
    assert marked(FIND, d.before_spans) == ["    return None\n"] == marked(FIND, d.before_anchors)
    broken_before = FIND.replace("def find(items, target):", "def find(items, target)")
    broken_after = broken_before.replace("    return None\n", "    print(target)\n    return None\n")
    d = diff_code(broken_before, broken_after)
    assert (d.parse_ok, d.fallback) == (False, "line")
    assert marked(broken_before, d.before_spans) == ["    return None\n"]


@pytest.mark.parametrize("granularity", ["statement", "node", "token", "line"])
@pytest.mark.parametrize(
    ("before", "after"),
    [
        (FIND, FIND.replace("    return None\n", "    return None\n    print(target)\n")),
        ("x = 1\n", "x = 1\nif x:\n    y = 2\n"),
        ("# nothing yet\n", "x = 1\n"),
        ("def f(x):\n    return x\n", "def f(x):\n    return x\n\n\ndef g(y):\n    return y\n"),
        ("def f(x)\n    return x\n", "def f(x)\n    y = 1\n    return x\n"),
    ],
)
def test_semantic_pair_never_leaves_d_minus_empty(before, after, granularity):
    d = diff_code(before, after, granularity)
    assert d.kind == "semantic"
    assert d.before_spans
    if granularity != "line":  # Algorithm 1 marks the comment line replaced by code as changed
        assert d.before_anchors == d.before_spans


def test_anchors_are_in_the_json_object():
    after = FIND.replace("    return None\n", "    print(target)\n    return None\n")
    result = diff_code(FIND, after).to_dict()
    assert result["before"]["anchors"] == result["before"]["spans"]
    assert result["before"]["line_diff_lines"] == 0 and result["after"]["line_diff_lines"] == 1


# -- layout decided by AST equality --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("before", "after", "kind"),
    [
        (
            'msg = ("value must be "\n       "positive")\n',
            'msg = "value must be positive"\n',
            "whitespace_only",
        ),
        ('msg = ("value must be "\n       "positive")\n', 'msg = "value must be negative"\n', "semantic"),
        ('name = u"caf\\xe9"\n', 'name = "café"\n', "whitespace_only"),
        ('name = r"a\\b"\n', 'name = "a\\\\b"\n', "whitespace_only"),
        ('name = b"abc"\n', 'name = "abc"\n', "semantic"),
        ('name = f"{x}!"\n', 'name = f"{x}" "!"\n', "whitespace_only"),
    ],
    ids=["joined", "joined-and-changed", "u-prefix", "raw-prefix", "bytes-prefix", "f-string"],
)
def test_implicit_concatenation_and_string_prefixes_are_layout_when_the_ast_is_equal(before, after, kind):
    assert diff_code(before, after).kind == kind


# -- strings over several lines, statements over several lines ----------------------------------------------

PAGE = 'PAGE = """\n' + "\n".join(f"    <p>line {i} of the page</p>" for i in range(40)) + '\n"""\n'


@pytest.mark.parametrize("granularity", ["statement", "node", "token"])
def test_edit_of_one_line_of_a_long_literal_marks_that_line(granularity):
    after = PAGE.replace("line 20 of", "line twenty of")
    d = diff_code(PAGE, after, granularity)
    assert d.before_lines == d.after_lines == [22]
    assert marked(after, d.after_spans) == ["    <p>line twenty of the page</p>\n"]


def test_line_added_to_a_long_literal_is_one_line_of_d_plus():
    after = PAGE.replace("    <p>line 20 of the page</p>\n", "    <p>line 20 of the page</p>\n    <hr>\n")
    d = diff_code(PAGE, after)
    assert d.after_lines == [23] and d.before_lines == [23]  # the anchor: the line that came instead


HEADER = (
    "def configure(\n    self,\n"
    + "\n".join(f"    option_{i}: int = {i}," for i in range(16))
    + "\n) -> None:\n    self.ready = True\n"
)


@pytest.mark.parametrize("granularity", ["statement", "node"])
def test_parameter_added_to_a_long_header_marks_one_line(granularity):
    after = HEADER.replace("    option_7: int = 7,\n", "    option_7: int = 7,\n    verbose: bool = False,\n")
    d = diff_code(HEADER, after, granularity)
    assert marked(after, d.after_spans) == ["verbose: bool = False,"]
    assert d.before_lines == [11]  # the anchor: the parameter the model wrote instead
    assert d.line_diff_lines == (0, 1)


def test_changed_parameter_of_a_long_header_is_one_line_for_the_size_filter():
    after = HEADER.replace("option_7: int = 7", "option_7: float = 7.0")
    d = diff_code(HEADER, after)
    assert marked(HEADER, d.before_spans) == ["option_7: int = 7,"]
    assert rejected_diff_lines(d) == 1  # the 19-line header counted as the paper's line diff counts it


def test_size_filter_counts_the_paper_line_diff_whatever_the_granularity():
    before = "def f(x):\n    # add one\n    y = x + 1\n    return y\n"
    after = "def f(x):\n    # add two\n    y = x + 2\n    return y\n"
    for granularity in ("statement", "token", "node", "line"):
        assert rejected_diff_lines(diff_code(before, after, granularity)) == 2  # comment line included
