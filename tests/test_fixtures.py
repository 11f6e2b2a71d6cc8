"""The shared fixtures themselves: the tokenizer loads offline and the tiny model round-trips."""

from __future__ import annotations


def test_tokenizer_is_byte_level_with_offsets(test_tokenizer):
    text = "x = '😀'\n"
    enc = test_tokenizer(text, return_offsets_mapping=True, add_special_tokens=False)
    assert test_tokenizer.decode(enc["input_ids"]) == text
    # the emoji is several byte-level tokens that share one character range
    emoji = text.index("😀")
    assert sum(1 for s, e in enc["offset_mapping"] if s <= emoji < e) > 1


def test_tiny_model_loads_and_runs(tiny_model_dir, test_tokenizer):
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([test_tokenizer("def f():\n    return 1\n")["input_ids"]])
    logits = model(ids).logits
    assert logits.shape == (1, ids.shape[1], len(test_tokenizer))
    assert torch.isfinite(logits).all()


def test_tokenizer_loads_the_same_alone_and_beside_the_tiny_model(test_tokenizer, tiny_model_dir):
    # transformers picks the tokenizer class from a model's config; masks built with the fixture tokenizer must
    # line up with the ids the model directory's tokenizer produces.
    from transformers import AutoTokenizer

    beside_model = AutoTokenizer.from_pretrained(tiny_model_dir)
    text = "def f(a, b=12345):\n    return a + b  # naïve 😀 中文\n"
    alone = test_tokenizer(text, return_offsets_mapping=True)
    loaded = beside_model(text, return_offsets_mapping=True)
    assert type(beside_model) is type(test_tokenizer)
    assert alone["input_ids"] == loaded["input_ids"]
    assert alone["offset_mapping"] == loaded["offset_mapping"]
