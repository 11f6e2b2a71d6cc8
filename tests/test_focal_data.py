"""focal_dpo.data and focal_dpo.config: rows -> token ids and weights, truncation, drops, bad rows, options."""

from __future__ import annotations

import argparse
import json

import pytest
import yaml

from focal_dpo.config import add_arguments, resolve
from focal_dpo.data import BadRowError, build_pairs, collate, load_rows, widen_spans

# r ** 3 -> r ** 2 in code with non-ASCII names and comments: byte-level BPE splits á, π, ·, ³ into 2 tokens each
REJECTED = "def área(r):\n    return 3.14 * r ** 3  # π·r³\n"
CHOSEN = "def área(r):\n    return 3.14 * r ** 2  # π·r²\n"
D_MINUS = [[36, 37], [44, 45]]  # the "3" of "** 3" and the "³"


def row(**overrides) -> dict:
    base = {"id": "r1", "prompt": "Area?", "chosen": CHOSEN, "rejected": REJECTED}
    base |= {"chosen_spans": D_MINUS, "rejected_spans": D_MINUS}
    return base | overrides


def weights_of(pair_list, mask_mode):
    batch = collate(pair_list, [0], mask_mode, pad_id=0)
    n_prompt = len(pair_list[0].prompt_ids)
    chosen = batch.weights[0, n_prompt - 1 : n_prompt - 1 + len(pair_list[0].chosen_ids)].tolist()
    rejected = batch.weights[1, n_prompt - 1 : n_prompt - 1 + len(pair_list[0].rejected_ids)].tolist()
    return chosen, rejected


def test_target_mask_weights_exactly_the_rejected_tokens_overlapping_spans(test_tokenizer):
    assert REJECTED[36] == "3" and REJECTED[44] == "³" and CHOSEN[44] == "²"
    pairs, _ = build_pairs([("t:1", row())], test_tokenizer)
    pair = pairs[0]
    _, rejected_w = weights_of(pairs, "target")
    weighted = [i for i, w in enumerate(rejected_w) if w]
    # hand-checked against the offset mapping: token 18 is "3" (36, 37), its neighbours are the spaces (35, 36)
    # and (37, 38); tokens 27 and 28 are the two bytes of "³" (44, 45), both in the mask; "π" and "·" are not
    assert weighted == [18, 27, 28]
    assert [pair.rejected_ids[i] for i in weighted] == [21, 129, 114]
    assert pair.rejected_ids[-1] == test_tokenizer.eos_token_id and rejected_w[-1] == 0.0


def test_target_mode_weights_every_chosen_token_including_eos(test_tokenizer):
    pairs, _ = build_pairs([("t:1", row())], test_tokenizer)
    chosen_w, _ = weights_of(pairs, "target")
    assert chosen_w == [1.0] * len(pairs[0].chosen_ids)
    assert pairs[0].chosen_ids[-1] == test_tokenizer.eos_token_id


def test_full_mode_weights_every_completion_token_on_both_sides(test_tokenizer):
    pairs, _ = build_pairs([("t:1", row())], test_tokenizer, mask_mode="full")
    chosen_w, rejected_w = weights_of(pairs, "full")
    assert chosen_w == [1.0] * len(pairs[0].chosen_ids) and rejected_w == [1.0] * len(pairs[0].rejected_ids)


def test_symmetric_mode_weights_d_plus_and_d_minus_only(test_tokenizer):
    pairs, _ = build_pairs([("t:1", row())], test_tokenizer, mask_mode="symmetric")
    chosen_w, rejected_w = weights_of(pairs, "symmetric")
    assert [i for i, w in enumerate(chosen_w) if w] == [i for i, d in enumerate(pairs[0].chosen_diff) if d]
    assert [i for i, w in enumerate(rejected_w) if w] == [18, 27, 28]


def test_hybrid_mode_is_full_for_the_first_half_of_a_batch_and_target_for_the_rest(test_tokenizer):
    pairs, _ = build_pairs([("t:1", row()), ("t:2", row())], test_tokenizer, mask_mode="hybrid")
    batch = collate(pairs, [0, 1], "hybrid", pad_id=0)
    n_rejected = len(pairs[0].rejected_ids)
    assert batch.weights[2].sum().item() == n_rejected  # pair 0 rejected: full
    assert batch.weights[3].sum().item() == 3  # pair 1 rejected: target (D- only)


def test_labels_are_shifted_so_weights_sit_on_the_completion_tokens(test_tokenizer):
    pairs, _ = build_pairs([("t:1", row())], test_tokenizer)
    batch = collate(pairs, [0], "target", pad_id=0)
    labels = batch.input_ids[1, 1:][batch.weights[1] != 0].tolist()
    assert labels == [21, 129, 114]


def test_prompt_is_cut_from_the_left(test_tokenizer):
    prompt = "one two three four five six seven eight nine ten"
    full = test_tokenizer(prompt, add_special_tokens=False)["input_ids"]
    pairs, _ = build_pairs([("t:1", row(prompt=prompt))], test_tokenizer, max_prompt_length=4)
    assert pairs[0].prompt_ids.tolist() == full[-4:]


def test_pair_whose_d_minus_is_truncated_away_is_dropped_and_counted(test_tokenizer):
    rows = [("t:1", row()), ("t:2", row(id="r2", rejected_spans=[[44, 45]]))]
    pairs, report = build_pairs(rows, test_tokenizer, max_length=22, max_prompt_length=4)
    # 22 - 3 prompt tokens leaves 19 completion tokens: token 18 ("3") survives, tokens 27-28 ("³") do not
    assert [p.row_id for p in pairs] == ["r1"]
    assert report.dropped == {"no D- token after truncation": 1}
    assert any("dropped: 1 (no D- token after truncation)" in line for line in report.lines())


def test_pair_with_empty_rejected_spans_is_dropped_in_target_mode_but_kept_in_full_mode(test_tokenizer):
    rows = [("t:1", row(rejected_spans=[]))]
    assert build_pairs(rows, test_tokenizer)[1].dropped == {"no D- span (diff found no change)": 1}
    assert len(build_pairs(rows, test_tokenizer, mask_mode="full")[0]) == 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"chosen": None}, "missing or non-string field 'chosen'"),
        ({"rejected": ""}, "empty rejected completion"),
        ({"rejected_spans": [[40, 99]]}, "span [40, 99) is outside the string"),
    ],
)
def test_bad_row_error_names_the_row(test_tokenizer, bad, message):
    with pytest.raises(BadRowError, match=r"data\.jsonl:7: .*") as err:
        build_pairs([("data.jsonl:7", row(**bad))], test_tokenizer)
    assert message in str(err.value)


def test_skip_bad_skips_and_counts_bad_rows(test_tokenizer):
    pairs, report = build_pairs([("f:1", row(prompt=3)), ("f:2", row())], test_tokenizer, skip_bad=True)
    assert len(pairs) == 1 and report.bad_skipped == 1


def test_load_rows_names_the_line_of_invalid_json(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(row()) + "\n{not json\n")
    with pytest.raises(BadRowError, match=r"pairs\.jsonl:2: not valid JSON"):
        load_rows(path)


def test_context_widens_spans_to_whole_lines_plus_k():
    text = "a = 1\nb = 2\nc = 3\nd = 4\n"
    assert widen_spans(text, [(12, 13)], 1) == [(6, 24)]  # "c" on line 3 -> lines 2..4
    assert widen_spans(text, [(12, 13)], 0) == [(12, 13)]


def test_chat_template_wraps_the_prompt_as_a_user_message(test_tokenizer):
    pairs, _ = build_pairs([("t:1", row())], test_tokenizer, chat_template=True)
    text = test_tokenizer.decode(pairs[0].prompt_ids)
    assert text == "<|im_start|>user\nArea?<|im_end|>\n<|im_start|>assistant\n"


def test_data_report_counts_and_percentiles(test_tokenizer):
    pairs, report = build_pairs([("t:1", row()), ("t:2", row())], test_tokenizer)
    assert report.rows_read == 2 and report.pairs_kept == 2
    assert report.rejected_masked_mean == 3.0
    assert report.length_percentiles["max"] == len(pairs[0].prompt_ids) + len(pairs[0].chosen_ids)


def test_rows_without_spans_get_them_from_the_diff_engine(test_tokenizer):
    pytest.importorskip("codeflow.diff", reason="diff engine not present")
    from codeflow import diff

    if not hasattr(diff, "diff_code"):
        pytest.skip("codeflow.diff.diff_code has not landed yet")
    fenced = {"chosen": "Fixed:\n```python\n" + CHOSEN + "```", "rejected": "```python\n" + REJECTED + "```"}
    pairs, report = build_pairs([("t:1", {"prompt": "Area?", **fenced})], test_tokenizer)
    assert report.pairs_kept == 1
    enc = test_tokenizer(fenced["rejected"], add_special_tokens=False, return_offsets_mapping=True)
    diff = pairs[0].rejected_diff[:-1]  # the last token is EOS
    masked_text = [
        fenced["rejected"][s:e] for (s, e), d in zip(enc["offset_mapping"], diff, strict=True) if d
    ]
    assert any("3" in piece for piece in masked_text)  # the changed statement is in D-
    assert not any("def" in piece for piece in masked_text)  # the unchanged line is not


def test_config_yaml_fills_options_and_the_command_line_wins(tmp_path):
    config_file = tmp_path / "train.yaml"
    config_file.write_text(
        yaml.safe_dump({"model": "m", "data": "d.jsonl", "output": "o", "beta": 0.5, "mask": "full"})
    )
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = resolve(parser.parse_args(["--config", str(config_file), "--beta", "0.2", "--no-progress"]))
    assert (config.beta, config.mask, config.model, config.progress) == (0.2, "full", "m", False)
    assert config.rpo_alpha == 1.0  # the paper's default


def test_config_yaml_with_unknown_option_names_the_file(tmp_path):
    config_file = tmp_path / "train.yaml"
    config_file.write_text("model: m\nbetta: 0.2\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    with pytest.raises(ValueError, match=r"train\.yaml: unknown option\(s\) betta"):
        resolve(parser.parse_args(["--config", str(config_file)]))


def with_bos_added(tokenizer, bos="<|im_start|>"):
    """A copy of the tokenizer that puts `bos` before every text, as Llama-style tokenizers do."""
    import copy

    from tokenizers import processors

    tok = copy.deepcopy(tokenizer)
    bos_id = tok.convert_tokens_to_ids(bos)
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{bos} $A", special_tokens=[(bos, bos_id)]
    )
    tok.bos_token = bos
    return tok, bos_id


def test_bos_is_prepended_exactly_when_the_tokenizer_adds_one(test_tokenizer):
    import copy

    # GPT-2/StarCoder style: a BOS token is defined but the tokenizer never adds it
    gpt2_style = copy.deepcopy(test_tokenizer)
    gpt2_style.bos_token = "<|endoftext|>"
    assert gpt2_style("Area?")["input_ids"][0] != gpt2_style.bos_token_id
    plain = build_pairs([("t:1", row())], gpt2_style)[0][0]
    assert plain.prompt_ids.tolist() == gpt2_style("Area?", add_special_tokens=False)["input_ids"]
    # Llama style: the tokenizer adds it, so the prompt starts with exactly one
    llama_style, bos_id = with_bos_added(test_tokenizer)
    pair = build_pairs([("t:1", row())], llama_style)[0][0]
    assert pair.prompt_ids.tolist() == llama_style("Area?")["input_ids"]
    assert pair.prompt_ids[0] == bos_id and (pair.prompt_ids == bos_id).sum() == 1
    assert bos_id not in pair.chosen_ids.tolist()


def test_a_long_prompt_keeps_its_bos_and_chat_header_and_loses_the_start_of_its_content(test_tokenizer):
    prompt = " ".join(f"word{i}" for i in range(40))
    llama_style, bos_id = with_bos_added(test_tokenizer)
    pair = build_pairs([("t:1", row(prompt=prompt))], llama_style, max_prompt_length=6)[0][0]
    content = llama_style(prompt, add_special_tokens=False)["input_ids"]
    assert pair.prompt_ids.tolist() == [bos_id] + content[-5:]

    pair = build_pairs(
        [("t:1", row(prompt=prompt))], test_tokenizer, chat_template=True, max_prompt_length=20
    )
    ids = pair[0][0].prompt_ids.tolist()
    text = test_tokenizer.decode(ids)
    assert len(ids) == 20
    assert text.startswith("<|im_start|>user\n") and text.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert "word39" in text and "word0 " not in text


def test_parallel_tokenization_gives_the_same_pairs_as_one_process(test_tokenizer):
    from focal_dpo.synthetic import bug_pairs

    rows = [(f"f:{i}", r) for i, r in enumerate(bug_pairs(40, seed=5))]
    rows += [("f:40", row()), ("f:41", row(prompt="Ünïcode π ³ " * 5)), ("f:42", row(rejected=""))]
    kwargs = dict(max_length=64, max_prompt_length=16, skip_bad=True)
    one, report_one = build_pairs(rows, test_tokenizer, workers=1, **kwargs)
    many, report_many = build_pairs(rows, test_tokenizer, workers=2, **kwargs)
    assert report_one == report_many and report_one.bad_skipped == 1
    assert len(one) == len(many) == 42
    for a, b in zip(one, many, strict=True):
        assert a.row_id == b.row_id
        for name in ("prompt_ids", "chosen_ids", "rejected_ids", "chosen_diff", "rejected_diff"):
            assert getattr(a, name).tolist() == getattr(b, name).tolist()


def test_batched_tokenization_matches_the_tokenizer_called_on_each_text(test_tokenizer):
    from focal_dpo.tokenize import TextEncoder

    texts = [CHOSEN, REJECTED, "  leading spaces\n\ttabs", "emoji 🙂 and CJK 漢字", "<|im_end|> special"]
    encoder = TextEncoder(test_tokenizer)
    for text, (ids, offsets) in zip(texts, encoder.encode(texts), strict=True):
        expected = test_tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        assert list(ids) == expected["input_ids"] and [tuple(o) for o in offsets] == [
            tuple(o) for o in expected["offset_mapping"]
        ]


def test_tokenized_pairs_are_cached_under_a_fingerprint_of_data_tokenizer_and_settings(
    test_tokenizer, tmp_path
):
    from focal_dpo.data import cached_pairs

    data = tmp_path / "pairs.jsonl"
    data.write_text(json.dumps(row()) + "\n" + json.dumps(row(id="r2")) + "\n")
    cache = tmp_path / "cache"
    first, report, hit = cached_pairs(data, test_tokenizer, cache, mask_mode="target", max_length=64)
    assert not hit and len(list(cache.iterdir())) == 1
    again, report_again, hit = cached_pairs(data, test_tokenizer, cache, mask_mode="target", max_length=64)
    assert hit and report_again == report
    assert [p.rejected_diff.tolist() for p in again] == [p.rejected_diff.tolist() for p in first]
    assert [p.row_id for p in again] == ["r1", "r2"]
    # another setting, another tokenizer, or other data bytes: another key
    cached_pairs(data, test_tokenizer, cache, mask_mode="target", max_length=32)
    llama_style, _ = with_bos_added(test_tokenizer)
    cached_pairs(data, llama_style, cache, mask_mode="target", max_length=64)
    data.write_text(json.dumps(row()) + "\n")
    cached_pairs(data, test_tokenizer, cache, mask_mode="target", max_length=64)
    assert len(list(cache.iterdir())) == 4


def test_skip_bad_counts_invalid_json_lines_with_the_other_bad_rows(test_tokenizer, tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(json.dumps(row()) + "\n{not json\n" + json.dumps(row(rejected="")) + "\n")
    pairs, report = build_pairs(load_rows(path, skip_bad=True), test_tokenizer, skip_bad=True)
    assert len(pairs) == 1 and report.bad_skipped == 2
    assert any("pairs.jsonl:2: not valid JSON" in line for line in report.lines())


def test_sft_rows_need_only_the_chosen_text_and_a_bare_text_starts_scoring_at_its_second_token(
    test_tokenizer,
):
    rows = [("t:1", {"prompt": "Area?", "chosen": CHOSEN}), ("t:2", {"text": "x = 1\n"})]
    pairs, report = build_pairs(rows, test_tokenizer, sft=True)
    assert report.pairs_kept == 2 and len(pairs[0].rejected_ids) == 0
    text_ids = test_tokenizer("x = 1\n", add_special_tokens=False)["input_ids"]
    assert pairs[1].prompt_ids.tolist() == text_ids[:1]
    assert pairs[1].chosen_ids.tolist() == text_ids[1:] + [test_tokenizer.eos_token_id]
    batch = collate(pairs, [0, 1], "target", pad_id=0, rejected=False)
    assert batch.input_ids.shape[0] == 2 and not batch.has_rejected
    assert batch.nll_mask.sum().item() == len(pairs[0].chosen_ids) + len(pairs[1].chosen_ids)
    with pytest.raises(BadRowError, match="t:3: missing, empty or non-string field 'chosen'"):
        build_pairs([("t:3", {"prompt": "p"})], test_tokenizer, sft=True)
