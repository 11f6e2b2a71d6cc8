"""The diff engine: kinds, granularities, moved statements, non-ASCII offsets, fallback, context."""

from __future__ import annotations

import re

import pytest

from codeflow.diff import CodeDiff, diff_code

FIND = '''def find(items, target):
    """Return the index of target, or None."""
    for index, item in enumerate(items):  # scan left to right
        if item == target:
            return index
    return None
'''


def marked(text: str, spans: list[tuple[int, int]]) -> list[str]:
    return [text[s:e] for s, e in spans]


def test_identical_pair_has_kind_identical_and_no_spans():
    d = diff_code(FIND, FIND)
    assert d.kind == "identical"
    assert (d.before_spans, d.after_spans, d.before_lines, d.after_lines) == ([], [], [], [])
    assert d.parse_ok and d.fallback is None


@pytest.mark.parametrize("granularity", ["statement", "node", "token"])
def test_comment_edit_alone_is_comment_only_without_spans(granularity):
    after = FIND.replace("# scan left to right", "# first match wins")
    d = diff_code(FIND, after, granularity)
    assert d.kind == "comment_only"
    assert d.before_spans == d.after_spans == []


def test_docstring_edit_alone_is_comment_only():
    after = FIND.replace("Return the index of target, or None.", "Index of the first item equal to target.")
    d = diff_code(FIND, after)
    assert d.kind == "comment_only"
    assert d.before_spans == d.after_spans == []


def test_reindent_and_line_breaks_are_whitespace_only():
    two_spaces = FIND.replace("    ", "  ")
    assert diff_code(FIND, two_spaces).kind == "whitespace_only"
    split_call = FIND.replace("enumerate(items)", "enumerate(\n        items,\n    )")
    d = diff_code(FIND, split_call)
    assert (d.kind, d.after_spans) == ("whitespace_only", [])


def test_redundant_parentheses_and_quote_style_are_layout():
    before = "def f(x):\n    return x + 'a'\n"
    d = diff_code(before, 'def f(x):\n    return (x + "a")\n')
    assert (d.kind, d.before_spans, d.after_spans) == ("whitespace_only", [], [])


def test_comment_and_layout_noise_are_not_marked_in_a_semantic_pair():
    after = FIND.replace("# scan left to right", "# first match wins").replace(
        "item == target", "item  ==  target"
    )
    after = after.replace("return None", "return -1")
    d = diff_code(FIND, after)
    assert d.kind == "semantic"
    assert marked(FIND, d.before_spans) == ["return None"]
    assert marked(after, d.after_spans) == ["return -1"]
    assert d.before_lines == d.after_lines == [6]


def test_consistent_local_rename_is_rename_only():
    after = re.sub(r"\bitem\b", "element", FIND).replace("index", "position")
    assert "items" in after
    assert diff_code(FIND, after).kind == "rename_only"


def test_swapping_two_names_at_one_use_is_semantic():
    before = "def sub(a, b):\n    return a - b\n"
    d = diff_code(before, "def sub(a, b):\n    return b - a\n")
    assert d.kind == "semantic"
    assert marked(before, d.before_spans) == ["return a - b"]


def test_swapping_two_parameters_everywhere_is_semantic_as_callers_name_them():
    d = diff_code("def sub(a, b):\n    return a - b\n", "def sub(b, a):\n    return b - a\n")
    assert d.kind == "semantic"  # sub(a=5, b=3) now means 3 - 5
    assert d.before_lines == [1, 2]


def test_renaming_a_parameter_to_make_a_keyword_argument_work_is_semantic():
    before = "def fetch(url, wait=1.0):\n    return get(url, timeout=wait)\n"
    after = "def fetch(url, timeout=1.0):\n    return get(url, timeout=timeout)\n"
    d = diff_code(before, after, "token")
    assert d.kind == "semantic"
    assert marked(before, d.before_spans) == ["wait", "wait"]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("def f(a, /):\n    return a * 2\n", "def f(n, /):\n    return n * 2\n"),
        (
            "def f(*args, **kwargs):\n    return args, kwargs\n",
            "def f(*rest, **options):\n    return rest, options\n",
        ),
        (
            "def f(xs):\n    return sorted(xs, key=lambda item: -item)\n",
            "def f(xs):\n    return sorted(xs, key=lambda v: -v)\n",
        ),
    ],
)
def test_renaming_parameters_no_caller_can_name_is_rename_only(before, after):
    assert diff_code(before, after).kind == "rename_only"


def test_renaming_a_global_is_semantic():
    before = "import math\n\ndef f(x):\n    return math.sqrt(x)\n"
    after = "import cmath\n\ndef f(x):\n    return cmath.sqrt(x)\n"
    assert diff_code(before, after).kind == "semantic"


def test_renaming_one_of_two_uses_is_semantic():
    before = "def f(x):\n    y = x + 1\n    return y * y\n"
    after = "def f(x):\n    z = x + 1\n    return y * z\n"
    assert diff_code(before, after).kind == "semantic"


def test_statement_moved_into_loop_is_marked_on_both_sides():
    before = "def total(xs):\n    s = 0\n    for x in xs:\n        w = x * 2\n    s += w\n    return s\n"
    after = "def total(xs):\n    s = 0\n    for x in xs:\n        w = x * 2\n        s += w\n    return s\n"
    d = diff_code(before, after)
    assert d.kind == "semantic"
    assert marked(before, d.before_spans) == ["s += w"]
    assert marked(after, d.after_spans) == ["s += w"]
    assert (d.before_lines, d.after_lines) == ([5], [5])


def test_statement_moved_out_of_loop_is_marked():
    before = "def first(xs):\n    for x in xs:\n        if x:\n            break\n        return None\n    return x\n"
    after = (
        "def first(xs):\n    for x in xs:\n        if x:\n            break\n    return None\n    return x\n"
    )
    d = diff_code(before, after)
    assert marked(before, d.before_spans) == ["return None"]
    assert marked(after, d.after_spans) == ["return None"]


def test_statement_granularity_marks_the_clause_header_not_the_block():
    after = FIND.replace("item == target", "item is target")
    d = diff_code(FIND, after, "statement")
    assert marked(FIND, d.before_spans) == ["if item == target:"]
    assert marked(after, d.after_spans) == ["if item is target:"]


def test_statement_granularity_marks_only_the_changed_line_of_a_multiline_statement():
    before = "x = compute(a,\n            b,\n            c)\ny = 1\n"
    after = "x = compute(a,\n            b,\n            d)\ny = 1\n"
    d = diff_code(before, after)
    assert marked(before, d.before_spans) == ["c)"]
    assert marked(after, d.after_spans) == ["d)"]
    assert d.before_lines == d.after_lines == [3]


def test_statement_granularity_ignores_a_trailing_comment_on_the_header():
    after = FIND.replace("for index, item in enumerate(items)", "for index, item in enumerate(items[1:])")
    d = diff_code(FIND, after)
    assert marked(after, d.after_spans) == ["for index, item in enumerate(items[1:]):"]


def test_added_guard_anchors_d_minus_on_the_statement_it_precedes():
    after = FIND.replace(
        '    """Return the index of target, or None."""\n',
        '    """Return the index of target, or None."""\n    if not items:\n        return None\n',
    )
    d = diff_code(FIND, after)
    assert marked(FIND, d.before_spans) == ["for index, item in enumerate(items):"]
    assert d.before_anchors == d.before_spans  # an anchor, not a change
    assert marked(after, d.after_spans) == ["if not items:", "return None"]
    assert d.after_lines == [3, 4]


def test_insertion_inside_a_statement_marks_that_statement_on_both_sides():
    after = FIND.replace("return index", "return index + 1")
    d = diff_code(FIND, after)
    assert marked(FIND, d.before_spans) == ["return index"]
    assert marked(after, d.after_spans) == ["return index + 1"]


def test_node_granularity_marks_where_an_insertion_landed():
    d = diff_code("y = f(a)\n", "y = f(a, b)\n", "node")
    assert marked("y = f(a)\n", d.before_spans) == ["(a)"]
    assert marked("y = f(a, b)\n", d.after_spans) == ["(a, b)"]


def test_token_granularity_marks_only_changed_leaves():
    after = FIND.replace("item == target", "item != target")
    d = diff_code(FIND, after, "token")
    assert marked(FIND, d.before_spans) == ["=="]
    assert marked(after, d.after_spans) == ["!="]


def test_node_granularity_marks_the_smallest_named_node():
    after = FIND.replace("item == target", "item != target")
    d = diff_code(FIND, after, "node")
    assert marked(FIND, d.before_spans) == ["item == target"]
    assert marked(after, d.after_spans) == ["item != target"]


def test_node_granularity_does_not_grow_past_the_statement():
    before = "def f(a):\n    if a > 1:\n        return a\n    return 0\n"
    after = "def f(a):\n    if b > 1:\n        return a\n    return 0\n"
    d = diff_code(before, after, "node")
    assert marked(after, d.after_spans) == ["b"]


def test_line_granularity_is_algorithm_1_whole_lines_with_newline():
    after = FIND.replace("# scan left to right", "# scan").replace("return None", "return -1")
    d = diff_code(FIND, after, "line")
    assert marked(FIND, d.before_spans) == [
        "    for index, item in enumerate(items):  # scan left to right\n",
        "    return None\n",
    ]
    assert d.before_lines == d.after_lines == [3, 6]


def test_line_granularity_ignores_a_missing_final_newline():
    assert diff_code("a = 1\nb = 2\n", "a = 1\nb = 2", "line").before_spans == []


def test_context_widens_regions_by_whole_lines_and_clips_at_the_edges():
    after = FIND.replace("return index", "return index + 1")
    d = diff_code(FIND, after, context=1)
    assert d.before_lines == d.after_lines == [4, 5, 6]
    assert marked(FIND, d.before_spans) == [
        "        if item == target:\n            return index\n    return None\n"
    ]
    d = diff_code(FIND, after, context=10)
    assert d.before_spans == [(0, len(FIND))]
    assert d.before_lines == [1, 2, 3, 4, 5, 6]


def test_non_ascii_identifiers_strings_comments_emoji_and_cjk_offsets_are_characters():
    before = 'def 計算(größe):\n    # 注释 😀 comment\n    s = "héllo 🌍 世界"\n    return größe * 2\n'
    after = 'def 計算(größe):\n    # 注释 😀 changed\n    s = "héllo 🌍 世界!"\n    return größe * 3\n'
    d = diff_code(before, after, "token")
    assert d.kind == "semantic"
    assert marked(before, d.before_spans) == ["héllo 🌍 世界", "2"]
    assert marked(after, d.after_spans) == ["héllo 🌍 世界!", "3"]
    d = diff_code(before, after, "statement")
    assert marked(after, d.after_spans) == ['s = "héllo 🌍 世界!"', "return größe * 3"]
    assert d.after_lines == [3, 4]


def test_crlf_line_endings_keep_offsets_and_lines():
    before = "x = 1\r\ny = 2\r\nz = 3\r\n"
    after = "x = 1\r\ny = 5\r\nz = 3\r\n"
    d = diff_code(before, after)
    assert marked(after, d.after_spans) == ["y = 5"]
    assert d.after_lines == [2]
    assert diff_code(before, before.replace("\r\n", "\n")).kind == "whitespace_only"


def test_unparsable_code_falls_back_to_lines_and_never_raises():
    before = "def f(x):\n    return x + 1\n"
    after = "def f(x)\n    return x + 1\n"  # missing colon
    d = diff_code(before, after)
    assert (d.kind, d.parse_ok, d.fallback) == ("semantic", False, "line")
    assert marked(after, d.after_spans) == ["def f(x)\n"]
    assert diff_code(before, after, "line").fallback is None


@pytest.mark.parametrize(
    "garbage", ["", "\x00\x00", "(((", "def", "\ud800 lone surrogate", "    indented = 1\n"]
)
def test_odd_inputs_do_not_raise(garbage):
    d = diff_code(garbage, "x = 1\n")
    assert isinstance(d, CodeDiff)


def test_to_dict_has_the_json_shape():
    d = diff_code("x = 1\n", "x = 2\n").to_dict()
    assert d == {
        "kind": "semantic",
        "granularity": "statement",
        "parse_ok": True,
        "fallback": None,
        "before": {"spans": [[0, 5]], "lines": [1], "anchors": [], "line_diff_lines": 1},
        "after": {"spans": [[0, 5]], "lines": [1], "line_diff_lines": 1},
    }


@pytest.mark.parametrize("kwargs", [{"granularity": "word"}, {"context": -1}, {"context": 1.5}])
def test_bad_options_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        diff_code("x = 1\n", "x = 2\n", **kwargs)


def test_import_does_not_pull_torch_or_transformers():
    import subprocess
    import sys

    code = "import sys, codeflow.diff; print('torch' in sys.modules or 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_rename_of_a_local_that_is_also_an_attribute_name_is_rename_only():
    before = "def f(p):\n    x = p.x\n    return x + 1\n"
    after = "def f(p):\n    y = p.x\n    return y + 1\n"
    assert diff_code(before, after).kind == "rename_only"


def test_renaming_a_called_global_function_is_semantic():
    before = "def f(xs):\n    return sorted(xs)\n"
    after = "def f(xs):\n    return reversed(xs)\n"
    assert diff_code(before, after).kind == "semantic"


def test_rename_inside_a_comprehension_and_of_a_nested_function_is_rename_only():
    before = "def f(xs):\n    def g(v):\n        return v * 2\n    return [g(i) for i in xs]\n"
    after = "def f(xs):\n    def double(v):\n        return v * 2\n    return [double(k) for k in xs]\n"
    assert diff_code(before, after).kind == "rename_only"
    # the nested function's parameter is its interface too (it may be returned and called by keyword)
    renamed_parameter = after.replace("(v)", "(w)").replace("v * 2", "w * 2")
    assert diff_code(before, renamed_parameter).kind == "semantic"


@pytest.mark.parametrize(
    "before",
    [
        "def f(xs):\n    for item in xs:\n        print(item)\n",
        "def f(path):\n    with open(path) as item:\n        return item.read()\n",
        "def f(g):\n    try:\n        g()\n    except ValueError as item:\n        print(item)\n",
        "def f(xs):\n    return sorted(xs, key=lambda item: -item)\n",
        "def f(xs):\n    if (item := len(xs)) > 2:\n        return item\n",
        "def f(*item, **kw):\n    return item, kw\n",
        "def f(xs):\n    first, *item = xs\n    return item\n",
        "def f():\n    import numpy as item\n    return item.zeros(2)\n",
    ],
)
def test_renaming_a_local_bound_in_any_way_is_rename_only(before):
    assert "item" in before
    assert diff_code(before, before.replace("item", "entry")).kind == "rename_only"


def test_diff_code_gives_the_same_results_from_many_threads():
    from concurrent.futures import ThreadPoolExecutor

    pairs = [(FIND, FIND.replace("item == target", f"item == target + {n}")) for n in range(40)]
    sequential = [diff_code(b, a).to_dict() for b, a in pairs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        threaded = list(pool.map(lambda pair: diff_code(*pair).to_dict(), pairs))
    assert threaded == sequential


def test_package_docstring_example_holds():
    import doctest

    import codeflow.diff

    result = doctest.testmod(codeflow.diff)
    assert result.attempted >= 2 and result.failed == 0


def test_same_tree_tells_apart_what_ast_dump_tells_apart():
    import ast

    from codeflow.diff.classify import same_tree

    for a, b, same in [
        ("x = 1", "x = 1.0", False),  # equal values, different reprs
        ("x = 0.0", "x = -0.0", False),
        ("f(a, b)", "f(a,\n  b)", True),  # layout only
        ("f(a, b)", "f(b, a)", False),
        ("f(a)", "f(a, *())", False),  # a list of another length
        ("x = (1)", "x = 1", True),
    ]:
        trees = ast.parse(a), ast.parse(b)
        assert (ast.dump(trees[0]) == ast.dump(trees[1])) == same, (a, b)
        assert same_tree(*trees) == same, (a, b)


def test_same_tree_compares_nesting_deeper_than_the_recursion_limit():
    import ast
    import sys

    from codeflow.diff.classify import same_tree

    depth = sys.getrecursionlimit() + 100
    deep = ast.parse("x = 1")
    deep.body[0].value = ast.Constant(value=1)
    node = deep.body[0]
    for _ in range(depth):  # x = -(-(...-(1)))
        node.value = ast.UnaryOp(op=ast.USub(), operand=node.value)
    other = ast.parse("x = 1")
    assert not same_tree(deep, other)
    assert same_tree(deep, deep)


def test_diff_code_leaves_no_reference_cycles_behind():
    """Nothing of a diff outlives it waiting for the garbage collector (a cycle through tree-sitter nodes
    would keep both syntax trees in memory until the collector runs)."""
    import gc

    gc.collect()
    gc.disable()
    try:
        for granularity in ("statement", "node", "token", "line"):
            diff_code(FIND, FIND.replace("item == target", "item is target"), granularity)
            diff_code(FIND, FIND.replace("    return None\n", ""), granularity)
        found = gc.collect()
    finally:
        gc.enable()
    assert found == 0
