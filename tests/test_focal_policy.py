"""focal_dpo.policy: the one module wrappers wrap (LoRA inside, compile on its layers), dropout off."""

from __future__ import annotations

import json

import pytest
import torch

from focal_dpo.config import TrainConfig
from focal_dpo.data import build_pairs, collate, load_rows
from focal_dpo.policy import Policy, add_lora, compile_layers, load_model
from focal_dpo.synthetic import bug_pairs, write_jsonl
from focal_dpo.train import forward_pairs, train
from tests.fixtures.tiny_model import make_tiny_model

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("policy_model") / "m", hidden_size=32, seed=0)


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_jsonl(bug_pairs(16, seed=2), tmp_path_factory.mktemp("policy_data") / "pairs.jsonl")


@pytest.fixture(scope="module")
def batch(pairs_file, test_tokenizer):
    pairs, _ = build_pairs(load_rows(pairs_file)[:3], test_tokenizer, mask_mode="full", max_length=96)
    return collate(pairs, [0, 1, 2], "full", pad_id=0)


def naive_token_logps(model, batch) -> torch.Tensor:
    """log softmax of the model's own full logits (what peft and transformers compute), at every label."""
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
    picked = torch.log_softmax(logits.float(), -1).gather(-1, batch.input_ids[:, 1:, None]).squeeze(-1)
    return picked * batch.completion


def perturbed_lora(model_dir, targets="all-linear"):
    """A LoRA model whose adapter is not the identity (B is zero at init), so the tests can tell it apart."""
    model = add_lora(load_model(str(model_dir)), r=4, alpha=8, dropout=0.0, target_modules=targets)
    torch.manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    return model


@pytest.mark.parametrize("targets", ["all-linear", "q_proj,v_proj,lm_head"])
def test_lora_policy_log_probs_equal_the_peft_models_own_logits(model_dir, batch, targets):
    peft_model = perturbed_lora(model_dir, targets)
    policy = Policy(peft_model, chunk_size=16)
    with torch.no_grad():
        ours = policy(batch.input_ids, batch.attention_mask, batch.completion)
        expected = naive_token_logps(peft_model, batch)
        base = naive_token_logps(load_model(str(model_dir)), batch)
    torch.testing.assert_close(ours, expected, atol=1e-5, rtol=1e-5)
    assert (ours - base).abs().max() > 1e-3  # the adapter (on lm_head too) is in the numbers


def test_lora_loss_equals_a_naive_dpo_computation_on_the_peft_model(model_dir, batch):
    config = TrainConfig(mask="full", rpo_alpha=0.0, beta=0.1)
    peft_model = perturbed_lora(model_dir)
    ref = torch.zeros(batch.weights.shape)
    with torch.no_grad():
        out = forward_pairs(Policy(peft_model, 16), batch, ref, config)
        seq = naive_token_logps(peft_model, batch).sum(-1)
    b = batch.num_pairs
    expected = -torch.nn.functional.logsigmoid(0.1 * (seq[:b] - seq[b:]))
    torch.testing.assert_close(out.losses, expected, atol=1e-5, rtol=1e-5)


def test_adapter_disabled_reference_equals_the_base_models_log_probs(model_dir, batch):
    policy = Policy(perturbed_lora(model_dir), chunk_size=16)
    with torch.no_grad():
        with policy.reference():
            ref = policy(batch.input_ids, batch.attention_mask, batch.completion)
        adapted = policy(batch.input_ids, batch.attention_mask, batch.completion)
        base = naive_token_logps(load_model(str(model_dir)), batch)
    torch.testing.assert_close(ref, base, atol=1e-5, rtol=1e-5)
    assert (adapted - ref).abs().max() > 1e-3  # the context really switched the adapter off, then on again


def test_lora_training_changes_only_adapter_weights_and_a_merged_final_loads_and_generates(
    model_dir, pairs_file, tmp_path
):
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = tmp_path / "run"
    config = TrainConfig(
        model=str(model_dir), data=str(pairs_file), output=str(out), lora_r=4, lora_alpha=8,
        lora_target_modules="q_proj,v_proj,up_proj", max_steps=3, batch_size=2, grad_accum=2,
        learning_rate=5e-3, max_length=96, progress=False, merge=True, save_steps=2,
    )  # fmt: skip
    result = train(config)
    assert result.steps == 3
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert first["rewards/margins"] == 0.0  # step 1: adapter B = 0, so policy == adapter-free reference

    adapter = load_file(out / "adapter" / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    assert any(t.abs().max() > 0 for name, t in adapter.items() if "lora_B" in name)  # it trained
    assert (out / "checkpoint-2" / "adapter_model.safetensors").exists()

    base = load_model(str(model_dir)).state_dict()
    merged_model = AutoModelForCausalLM.from_pretrained(out / "final")
    merged = merged_model.state_dict()
    assert set(merged) == set(base)
    changed = {name for name in base if not torch.equal(base[name], merged[name])}
    assert changed and all(any(t in name for t in ("q_proj", "v_proj", "up_proj")) for name in changed)
    generated = merged_model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=4, do_sample=False)
    assert generated.shape == (1, 7)
    assert not (out / "final" / "adapter_config.json").exists()


def test_resumed_lora_run_gives_the_same_losses(model_dir, pairs_file, tmp_path):
    import shutil

    def config(out, **extra):
        return TrainConfig(
            model=str(model_dir), data=str(pairs_file), output=str(out), lora_r=4, lora_alpha=8, max_steps=4,
            batch_size=2, grad_accum=1, learning_rate=5e-3, max_length=96, progress=False, save_steps=2, **extra,
        )  # fmt: skip

    train(config(tmp_path / "whole"))
    (tmp_path / "resumed").mkdir()
    shutil.copytree(tmp_path / "whole" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    train(config(tmp_path / "resumed", resume=True))

    def losses(out):
        return [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]

    assert losses(tmp_path / "resumed") == losses(tmp_path / "whole")[2:]


def test_dropout_is_off_so_two_training_mode_passes_agree(tmp_path, batch):
    from transformers import AutoConfig, AutoModelForCausalLM

    path = make_tiny_model(tmp_path / "m", hidden_size=32)
    config = AutoConfig.from_pretrained(path)
    config.attention_dropout = 0.5
    AutoModelForCausalLM.from_config(config).save_pretrained(path)
    model = load_model(str(path)).train()
    assert model.config.attention_dropout == 0.0
    assert all(getattr(m, "attention_dropout", 0.0) == 0.0 for m in model.modules())
    policy = Policy(model, 16)
    with torch.no_grad():
        a = policy(batch.input_ids, batch.attention_mask, batch.completion)
        b = policy(batch.input_ids, batch.attention_mask, batch.completion)
    assert torch.equal(a, b)


def test_compiled_decoder_layers_give_the_same_log_probs_and_gradients(model_dir, batch):
    eager, compiled = Policy(load_model(str(model_dir)), 16), Policy(load_model(str(model_dir)), 16)
    compile_layers(compiled, backend="eager")  # traced by dynamo; no C++ build in tests
    results = []
    for policy in (eager, compiled):
        out = policy(batch.input_ids, batch.attention_mask, batch.completion)
        out.sum().backward()
        results.append((out.detach(), policy.model.model.layers[0].mlp.up_proj.weight.grad))
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(results[0][1], results[1][1], atol=1e-5, rtol=1e-5)
