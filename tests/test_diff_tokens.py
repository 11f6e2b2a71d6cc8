"""Token masks from character spans, and finding the code inside an LLM answer."""

from __future__ import annotations

from codeflow.diff import diff_code, extract_code, spans_to_token_mask


def test_mask_marks_tokens_that_overlap_a_span():
    offsets = [(0, 3), (3, 4), (4, 9), (9, 10)]
    assert spans_to_token_mask(offsets, [(3, 5)]) == [False, True, True, False]


def test_mask_of_no_spans_or_no_tokens():
    assert spans_to_token_mask([(0, 2), (2, 4)], []) == [False, False]
    assert spans_to_token_mask([], [(0, 3)]) == []


def test_special_and_empty_tokens_are_never_in_the_mask():
    assert spans_to_token_mask([(0, 0), (0, 5), (5, 5), (0, 0)], [(0, 10)]) == [False, True, False, False]


def test_all_byte_pieces_of_an_emoji_are_in_the_mask(test_tokenizer):
    before = 'label = "ok 😀"\nx = 1\n'
    after = 'label = "ok 🌍"\nx = 1\n'
    d = diff_code(before, after, "token")
    assert [after[s:e] for s, e in d.after_spans] == ["ok 🌍"]
    encoding = test_tokenizer(after, return_offsets_mapping=True)
    offsets = encoding["offset_mapping"]
    emoji_at = after.index("🌍")
    emoji_tokens = [i for i, (s, e) in enumerate(offsets) if s <= emoji_at < e]
    assert len(emoji_tokens) >= 2  # byte-level BPE splits the emoji, each piece with the same range
    mask = spans_to_token_mask(offsets, d.after_spans)
    assert all(mask[i] for i in emoji_tokens)
    assert not any(m for m, (s, e) in zip(mask, offsets, strict=True) if e <= after.index("ok"))


def test_cjk_tokens_in_a_changed_identifier_are_masked(test_tokenizer):
    before, after = "数据 = 1\nx = 数据\n", "数值 = 1\nx = 数值\n"
    d = diff_code(before, after, "token")
    assert [after[s:e] for s, e in d.after_spans] == ["数值", "数值"]
    offsets = test_tokenizer(after, return_offsets_mapping=True)["offset_mapping"]
    mask = spans_to_token_mask(offsets, d.after_spans)
    masked_text = {after[s:e] for (s, e), m in zip(offsets, mask, strict=True) if m}
    assert masked_text and all(set(t.strip()) <= set("数值") for t in masked_text)
    assert sum(mask) >= 4  # two CJK characters of 3 UTF-8 bytes each, twice


def test_extract_code_prefers_the_python_block_and_keeps_its_offset():
    answer = "Here is the fix:\n```text\nnot code\n```\n```python\ndef f():\n    return 1\n```\nIt works."
    code, offset = extract_code(answer)
    assert code == "def f():\n    return 1\n"
    assert answer[offset : offset + len(code)] == code


def test_extract_code_takes_any_fence_then_the_whole_text():
    assert extract_code("```\nx = 1\n```") == ("x = 1\n", 4)
    assert extract_code("x = 1\n") == ("x = 1\n", 0)


def test_extract_code_runs_an_unclosed_fence_to_the_end():
    answer = "Sure:\n```python\ndef f():\n    return"
    code, offset = extract_code(answer)
    assert code == "def f():\n    return" and answer[offset:] == code


def test_extract_code_ignores_backticks_inside_a_code_line():
    answer = '```python\nfence = "```"\nx = 1\n```\n'
    assert extract_code(answer)[0] == 'fence = "```"\nx = 1\n'


def test_spans_in_extracted_code_shift_back_into_the_answer():
    answer_before = "Try:\n```python\nx = 1\ny = 2\n```"
    answer_after = "Fixed version below.\n```python\nx = 1\ny = 3\n```"
    (code_b, off_b), (code_a, off_a) = extract_code(answer_before), extract_code(answer_after)
    d = diff_code(code_b, code_a)
    assert [answer_after[s + off_a : e + off_a] for s, e in d.after_spans] == ["y = 3"]
    assert [answer_before[s + off_b : e + off_b] for s, e in d.before_spans] == ["y = 2"]


def test_pipeline_answers_are_parsed_with_the_same_fence_parser():
    from codeflow.pipeline.prompts import parse_answer

    answer = (
        '### solution.py\n```python\ndef fence():\n    return "```"\n```\n'
        '### test_solution.py\n~~~py3\nassert fence() == "```"\n~~~\n'
    )
    parsed = parse_answer(answer)
    assert parsed.solution == 'def fence():\n    return "```"\n'  # not cut at the backticks in the code
    assert parsed.tests == 'assert fence() == "```"\n'
    assert extract_code(answer)[0] == parsed.solution


def test_pipeline_answer_parsing_skips_blocks_in_other_languages():
    from codeflow.pipeline.prompts import parse_answer

    parsed = parse_answer("Run it:\n```bash\npython solution.py\n```\n```python3\nx = 1\n```\n")
    assert parsed.solution == "x = 1\n"
