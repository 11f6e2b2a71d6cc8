"""TransformersBackend end to end on the tiny random model: batching, stop strings, EOS, chat, sampling."""

from __future__ import annotations

import pytest

from codeflow.llm import TransformersBackend

# Different lengths, so batches need padding; 4 prompts in batches of 3 leave a ragged last batch.
PROMPTS = ["def add(a, b):\n", "x = 1", "class Stack:\n    def push(self, item):", "import os\n"]


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    import torch

    # One thread is plenty for a 2-layer model, and spinning worker threads crawl on a shared, loaded CPU.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield TransformersBackend(str(tiny_model_dir), batch_size=3, device="cpu")
    torch.set_num_threads(threads)


def test_batched_generation_matches_one_prompt_at_a_time(backend):
    batched = backend.generate(PROMPTS, max_new_tokens=8)
    single = [backend.generate([p], max_new_tokens=8)[0] for p in PROMPTS]
    # left padding must not change what a row generates, and answers come back in prompt order
    assert [r.text for r in batched] == [r.text for r in single]
    assert [r.usage["prompt_tokens"] for r in batched] == [
        len(backend.tokenizer(p)["input_ids"]) for p in PROMPTS
    ]
    for response in batched:
        assert response.finish_reason == "length"
        assert response.usage["completion_tokens"] == 8
        assert response.attempts == 1 and response.model == backend.model_name


def test_stop_string_cuts_the_answer_and_reports_stop(backend):
    full = backend.generate(PROMPTS, max_new_tokens=10)
    stop = full[0].text[3:5]
    assert stop, "the tiny model produced too little text to pick a stop string from"
    cut = backend.generate(PROMPTS, max_new_tokens=10, stop=[stop])
    for before, after in zip(full, cut, strict=True):
        if stop in before.text:
            assert after.text == before.text[: before.text.index(stop)]
            assert after.finish_reason == "stop"
        else:
            assert after.text == before.text and after.finish_reason == "length"
    assert cut[0].usage["completion_tokens"] < 10


def test_batch_ends_early_once_every_row_has_stopped(backend):
    full = backend.generate(PROMPTS[:2], max_new_tokens=8)
    stops = [r.text[1:3] for r in full]
    forward_calls = []
    hook = backend.model.register_forward_hook(lambda *args: forward_calls.append(1))
    try:
        cut = backend.generate(PROMPTS[:2], max_new_tokens=64, stop=stops)
    finally:
        hook.remove()
    assert [r.finish_reason for r in cut] == ["stop", "stop"]
    assert len(forward_calls) < 16  # one forward per new token: far fewer than the 64 allowed


def test_eos_token_ends_the_answer(backend):
    import torch

    ids = backend.tokenizer(PROMPTS[2], return_tensors="pt")["input_ids"]
    with torch.inference_mode():
        reference = backend.model.generate(ids, max_new_tokens=10, do_sample=False)[
            0, ids.shape[1] :
        ].tolist()
    end_token = reference[4]
    end = reference.index(end_token)
    saved = set(backend.eos_token_ids)
    backend.eos_token_ids.add(end_token)
    try:
        [response] = backend.generate([PROMPTS[2]], max_new_tokens=10)
    finally:
        backend.eos_token_ids.clear()
        backend.eos_token_ids.update(saved)
    assert response.finish_reason == "stop"
    assert response.text == backend.tokenizer.decode(reference[:end], skip_special_tokens=True)
    assert response.usage["completion_tokens"] == end + 1  # the end token itself was generated


def test_a_stop_string_that_is_a_special_token_ends_the_row_like_eos(backend):
    eos_text = backend.tokenizer.eos_token
    strings, token_ids = backend.split_stop_tokens([eos_text, "\n\n", ""])
    assert strings == ["\n\n"]
    assert token_ids == {backend.tokenizer.convert_tokens_to_ids(eos_text)}


def test_chat_applies_the_chat_template_with_a_generation_prompt(backend):
    conversation = [{"role": "user", "content": "Write add(a, b)."}]
    rendered = backend.tokenizer.apply_chat_template(conversation, tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|im_start|>assistant\n")
    [chat] = backend.chat([conversation], max_new_tokens=10)
    [raw] = backend.generate([rendered], max_new_tokens=10)
    assert chat.text == raw.text
    assert chat.usage == raw.usage


def test_sampling_is_reproducible_for_a_seed(backend):
    first = backend.generate(PROMPTS[:2], max_new_tokens=8, temperature=1.0, seed=3)
    again = backend.generate(PROMPTS[:2], max_new_tokens=8, temperature=1.0, seed=3)
    other = backend.generate(PROMPTS[:2], max_new_tokens=8, temperature=1.0, seed=4)
    assert [r.text for r in first] == [r.text for r in again]
    assert [r.text for r in first] != [r.text for r in other]


def test_bad_arguments_are_rejected_with_the_reason(backend, tiny_model_dir):
    with pytest.raises(ValueError, match="prompt 1 is empty"):
        backend.generate(["x", ""], max_new_tokens=4)
    with pytest.raises(ValueError, match="temperature"):
        backend.generate(["x"], temperature=-1.0)
    with pytest.raises(ValueError, match="dtype"):
        TransformersBackend(str(tiny_model_dir), dtype="float33")
