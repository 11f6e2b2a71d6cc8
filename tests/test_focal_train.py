"""focal_dpo.train end to end on tiny random Qwen2 models: parity, learning, resume, reference modes, CLI."""

from __future__ import annotations

import json
import math
import shutil

import pytest
import torch
import yaml

from focal_dpo.cli import main as focal_dpo_main
from focal_dpo.config import TrainConfig
from focal_dpo.data import build_pairs, collate, load_rows
from focal_dpo.policy import Policy
from focal_dpo.reference import cached_batch_logps, precompute
from focal_dpo.synthetic import bug_pairs, write_jsonl
from focal_dpo.train import NonFiniteLossError, forward_pairs, load_model, split_indices, train
from tests.fixtures.tiny_model import load_test_tokenizer, make_tiny_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("focal_models")
    return {
        "policy": make_tiny_model(root / "policy", hidden_size=32, seed=0),
        "other": make_tiny_model(root / "other", hidden_size=32, seed=1),
    }


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory):
    return write_jsonl(bug_pairs(24, seed=3), tmp_path_factory.mktemp("focal_data") / "pairs.jsonl")


def config_for(models, pairs_file, output, **overrides) -> TrainConfig:
    base = dict(
        model=str(models["policy"]), data=str(pairs_file), output=str(output), batch_size=2, grad_accum=2,
        learning_rate=1e-3, warmup_ratio=0.2, max_length=96, max_prompt_length=48, seed=0, progress=False,
        logits_chunk=16,
    )  # fmt: skip
    return TrainConfig(**(base | overrides))


def losses(output) -> list[float]:
    lines = [json.loads(line) for line in (output / "metrics.jsonl").read_text().splitlines()]
    return [m["loss"] for m in lines if "loss" in m]


def naive_sequence_logps(model, prompt: list[int], completion: list[int]) -> float:
    """Sum of log p(completion | prompt) from the full logits of one unpadded sequence."""
    ids = torch.tensor([list(prompt) + list(completion)])
    logits = model(input_ids=ids).logits[0, :-1]
    token_logps = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None]).squeeze(-1)
    return token_logps[len(prompt) - 1 :].sum().item()


def test_full_mask_loss_equals_a_naive_full_log_softmax_computation(models, pairs_file, test_tokenizer):
    config = config_for(models, pairs_file, "unused", mask="full", rpo_alpha=0.0)
    pairs, _ = build_pairs(load_rows(pairs_file)[:3], test_tokenizer, mask_mode="full", max_length=96)
    policy, ref = (
        load_model(str(models["policy"]), torch.device("cpu")),
        load_model(str(models["other"]), "cpu"),
    )
    cache = precompute(Policy(ref, 16), pairs, 0, 2, torch.device("cpu"))
    batch = collate(pairs, [0, 1, 2], "full", pad_id=0)
    with torch.no_grad():
        out = forward_pairs(Policy(policy, 16), batch, cached_batch_logps(batch, cache), config)
        expected = []
        for p in pairs:
            margin = sum(
                sign
                * (
                    naive_sequence_logps(policy, p.prompt_ids, ids)
                    - naive_sequence_logps(ref, p.prompt_ids, ids)
                )
                for sign, ids in ((1, p.chosen_ids), (-1, p.rejected_ids))
            )
            expected.append(-math.log(1 / (1 + math.exp(-config.beta * margin))))
    torch.testing.assert_close(out.losses, torch.tensor(expected), atol=1e-5, rtol=1e-5)


def test_rpo_term_is_the_token_mean_cross_entropy_of_the_chosen_completions(
    models, pairs_file, test_tokenizer
):
    config = config_for(models, pairs_file, "unused")
    pairs, _ = build_pairs(load_rows(pairs_file)[:2], test_tokenizer, max_length=96)
    policy = load_model(str(models["policy"]), torch.device("cpu"))
    batch = collate(pairs, [0, 1], "target", pad_id=0)
    with torch.no_grad():
        out = forward_pairs(Policy(policy, 16), batch, torch.zeros(batch.weights.shape), config)
        ce, count = 0.0, 0
        for p in pairs:
            ce -= naive_sequence_logps(policy, p.prompt_ids, p.chosen_ids)
            count += len(p.chosen_ids)
    assert out.nll_sum.item() / batch.nll_mask.sum().item() == pytest.approx(ce / count, rel=1e-5)
    assert batch.nll_mask.sum().item() == count


def test_reward_accuracy_on_held_out_pairs_rises_in_a_few_steps(models, tmp_path):
    data = write_jsonl(bug_pairs(48, seed=7), tmp_path / "bugs.jsonl")
    config = config_for(
        models, data, tmp_path / "run", max_steps=6, batch_size=8, grad_accum=1, learning_rate=1e-3,
        warmup_ratio=0.0, eval_fraction=0.25, eval_steps=3, logits_chunk=0,
    )  # fmt: skip
    result = train(config)
    lines = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    # step 1 is computed before its update: policy == reference, zero margins, no pair "won"
    assert (
        lines[0]["step"] == 1 and lines[0]["rewards/margins"] == 0.0 and lines[0]["rewards/accuracies"] == 0.0
    )
    evals = [m for m in lines if "eval/rewards/accuracies" in m]
    assert [m["step"] for m in evals] == [3, 6] and evals[0]["eval/pairs"] == 12
    assert 0 < evals[0]["eval/rewards/margins"] < evals[1]["eval/rewards/margins"]
    assert result.eval_metrics["eval/rewards/accuracies"] >= 0.9


@pytest.mark.long
def test_learning_reaches_heldout_reward_accuracy_on_one_edit_bug_pairs(models, tmp_path):
    data = write_jsonl(bug_pairs(200, seed=7), tmp_path / "bugs.jsonl")
    config = config_for(
        models, data, tmp_path / "run", max_steps=200, batch_size=8, grad_accum=1, learning_rate=3e-4,
        warmup_ratio=0.05, eval_fraction=0.2,
    )  # fmt: skip
    result = train(config)
    assert result.eval_metrics["eval/pairs"] == 40
    assert result.eval_metrics["eval/rewards/accuracies"] >= 0.9
    first = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0])
    # the first line is step 1, computed before its update: policy == reference, so the loss is log 2
    assert first["step"] == 1 and first["rewards/margins"] == pytest.approx(0.0, abs=1e-6)


def test_resume_from_a_checkpoint_gives_the_same_losses_as_an_uninterrupted_run(models, pairs_file, tmp_path):
    # 24 pairs, 4 per step: steps 1-6 are epoch 0, 7-8 epoch 1, so the resumed run must restore the data position
    whole = train(config_for(models, pairs_file, tmp_path / "whole", max_steps=8, save_steps=5))
    assert whole.steps == 8
    resumed_dir = tmp_path / "resumed"
    resumed_dir.mkdir()
    # what an interrupted run leaves: its checkpoint (the reference cache is recomputed from the initial model)
    shutil.copytree(tmp_path / "whole" / "checkpoint-5", resumed_dir / "checkpoint-5")
    train(config_for(models, pairs_file, resumed_dir, max_steps=8, save_steps=5, resume=True))
    assert losses(resumed_dir)[-3:] == pytest.approx(losses(tmp_path / "whole")[-3:], abs=1e-6)
    assert len(losses(resumed_dir)) == 3


def test_precomputed_and_live_reference_give_the_same_losses(models, pairs_file, tmp_path):
    common = dict(max_steps=3, ref_model=str(models["other"]), rpo_alpha=0.5)
    train(config_for(models, pairs_file, tmp_path / "pre", ref="precompute", **common))
    train(config_for(models, pairs_file, tmp_path / "live", ref="live", **common))
    pre, live = losses(tmp_path / "pre"), losses(tmp_path / "live")
    assert len(pre) == 3 and pre == pytest.approx(live, abs=1e-5)
    # another model as reference: rewards are non-zero from step 1, so the comparison is not trivially log 2
    first = json.loads((tmp_path / "pre" / "metrics.jsonl").read_text().splitlines()[0])
    assert abs(first["rewards/margins"]) > 1e-3


def test_reference_cache_is_reused_by_fingerprint(models, pairs_file, tmp_path):
    cache = tmp_path / "cache"
    train(config_for(models, pairs_file, tmp_path / "a", max_steps=1, ref_cache=str(cache)))
    files = list(cache.iterdir())
    train(config_for(models, pairs_file, tmp_path / "b", max_steps=1, ref_cache=str(cache)))
    assert list(cache.iterdir()) == files and len(files) == 1
    train(
        config_for(
            models,
            pairs_file,
            tmp_path / "c",
            max_steps=1,
            ref_cache=str(cache),
            ref_model=str(models["other"]),
        )
    )
    assert len(list(cache.iterdir())) == 2  # another reference model, another key


def test_nan_loss_stops_the_run_naming_the_step_and_rows(models, pairs_file, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(models["policy"], broken)
    model = load_model(str(broken), torch.device("cpu"))
    with torch.no_grad():
        model.model.norm.weight.fill_(float("nan"))
    model.save_pretrained(broken)
    with pytest.raises(NonFiniteLossError, match=r"at step 1 \(rows: synthetic-\d+, synthetic-\d+\)"):
        train(config_for(models, pairs_file, tmp_path / "out", model=str(broken), max_steps=2))
    assert not (tmp_path / "out" / "final").exists()


def test_cli_train_reads_yaml_writes_config_metrics_and_a_loadable_final_model(models, pairs_file, tmp_path):
    from transformers import AutoModelForCausalLM

    config_file = tmp_path / "train.yaml"
    config_file.write_text(
        yaml.safe_dump({"mask": "symmetric", "max_steps": 2, "batch_size": 2, "max_length": 96})
    )
    out = tmp_path / "out"
    argv = ["train", "--model", str(models["policy"]), "--data", str(pairs_file), "--output", str(out)]
    assert focal_dpo_main([*argv, "--config", str(config_file), "--beta", "0.3", "--no-progress"]) == 0
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert (resolved["mask"], resolved["beta"], resolved["max_steps"]) == ("symmetric", 0.3, 2)
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    for key in ("loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins",
                "logps/chosen", "logps/rejected", "nll_loss", "grad_norm", "learning_rate", "tokens_per_s",
                "peak_memory_mb"):  # fmt: skip
        assert key in first
    assert AutoModelForCausalLM.from_pretrained(out / "final").config.hidden_size == 32
    assert (out / "final" / "model.safetensors").exists() and (out / "final" / "tokenizer.json").exists()


def test_cli_train_reports_a_bad_row_by_file_and_line(models, tmp_path, capsys):
    data = tmp_path / "bad.jsonl"
    data.write_text(json.dumps({"prompt": "p", "chosen": "a", "rejected": ""}) + "\n")
    argv = ["train", "--model", str(models["policy"]), "--data", str(data), "--output", str(tmp_path / "o")]
    assert focal_dpo_main([*argv, "--no-progress"]) == 2  # bad input
    assert "bad.jsonl:1: empty rejected completion" in capsys.readouterr().err


def test_gradient_checkpointing_gives_the_same_losses(models, pairs_file, tmp_path):
    train(config_for(models, pairs_file, tmp_path / "plain", max_steps=3))
    train(config_for(models, pairs_file, tmp_path / "ckpt", max_steps=3, gradient_checkpointing=True))
    assert losses(tmp_path / "ckpt") == pytest.approx(losses(tmp_path / "plain"), abs=1e-5)
    assert losses(tmp_path / "plain")[2] != pytest.approx(
        losses(tmp_path / "plain")[0], abs=1e-4
    )  # it trains


@pytest.mark.parametrize(
    ("mask", "loss"), [("symmetric", "sigmoid"), ("hybrid", "sigmoid"), ("target", "ipo")]
)
def test_every_mask_mode_and_ipo_train_with_finite_losses(models, pairs_file, tmp_path, mask, loss):
    result = train(config_for(models, pairs_file, tmp_path / "run", mask=mask, loss=loss, max_steps=2))
    assert result.steps == 2 and all(math.isfinite(x) for x in losses(tmp_path / "run"))


def test_bf16_autocast_stays_close_to_fp32(models, pairs_file, tmp_path):
    # the GPU path's autocast, exercised on CPU: the first step's loss (before any update) within bf16 precision
    train(config_for(models, pairs_file, tmp_path / "fp32", max_steps=1, ref_model=str(models["other"])))
    train(
        config_for(
            models, pairs_file, tmp_path / "bf16", max_steps=1, ref_model=str(models["other"]), bf16=True
        )
    )
    assert losses(tmp_path / "bf16")[0] == pytest.approx(losses(tmp_path / "fp32")[0], rel=2e-2)


def test_building_the_command_line_does_not_import_torch():
    # `focal-dpo --help` and `focal-dpo eval --backend openai` should not pay for torch, nor break with the loop
    import subprocess
    import sys

    probe = (
        "import sys\nfrom focal_dpo.cli import main\n"
        "try:\n    main(['train', '--help'])\nexcept SystemExit:\n    pass\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "--mask" in out.stdout


def test_reference_fingerprint_changes_when_any_single_weight_changes(models, tmp_path):
    from safetensors.torch import load_file, save_file

    from focal_dpo.reference import weights_digest

    copy = tmp_path / "ref"
    shutil.copytree(models["other"], copy)
    before = weights_digest(str(copy))
    tensors = load_file(copy / "model.safetensors")
    name = "model.layers.0.mlp.up_proj.weight"  # far from the file's first and last MiB
    tensors[name][7, 5] += 1e-3
    size = (copy / "model.safetensors").stat().st_size
    save_file(tensors, copy / "model.safetensors", metadata={"format": "pt"})
    assert (copy / "model.safetensors").stat().st_size == size
    assert weights_digest(str(copy)) != before

    # so a retrained reference at the same path never reuses stale reference log-probs
    cache = tmp_path / "cache"
    train(config_for(models, models_pairs(tmp_path), tmp_path / "a", max_steps=1, ref_model=str(copy),
                     ref_cache=str(cache)))  # fmt: skip
    tensors[name][7, 5] -= 1e-3
    save_file(tensors, copy / "model.safetensors", metadata={"format": "pt"})
    train(config_for(models, models_pairs(tmp_path), tmp_path / "b", max_steps=1, ref_model=str(copy),
                     ref_cache=str(cache)))  # fmt: skip
    assert len(list(cache.iterdir())) == 2


def models_pairs(tmp_path):
    path = tmp_path / "pairs.jsonl"
    return path if path.exists() else write_jsonl(bug_pairs(8, seed=3), path)


def test_sft_loss_is_the_chosen_nll_with_no_reference_pass(models, tmp_path):
    data = tmp_path / "sft.jsonl"
    rows = [{"prompt": r["prompt"], "chosen": r["chosen"]} for r in bug_pairs(16, seed=1)]
    rows += [{"text": "def add(a, b):\n    return a + b\n"}] * 4  # bare texts: pre-training rows
    write_jsonl(rows, data)
    out = tmp_path / "sft"
    # 16 train pairs in one micro-batch: step 1 sees all of them
    config = config_for(models, data, out, loss="sft", max_steps=4, warmup_ratio=0.0, eval_fraction=0.2,
                        batch_size=16, grad_accum=1)  # fmt: skip
    result = train(config)
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in lines if "loss" in m]
    assert all(m["loss"] == m["nll_loss"] for m in steps) and "rewards/margins" not in steps[0]
    assert steps[-1]["loss"] < steps[0]["loss"]
    assert not (out / "ref_cache").exists()
    assert result.eval_metrics["eval/pairs"] == 4 and math.isfinite(result.eval_metrics["eval/loss"])
    # step 1's loss is the token-mean NLL of the train pairs' chosen completions under the initial model
    pairs, _ = build_pairs(
        load_rows(data), load_test_tokenizer(), sft=True, max_length=96, max_prompt_length=48
    )
    train_indices, _ = split_indices(len(pairs), 0.2, config.seed)
    model = load_model(str(models["policy"]), torch.device("cpu"))
    with torch.no_grad():
        total = sum(
            -naive_sequence_logps(model, pairs[i].prompt_ids, pairs[i].chosen_ids) for i in train_indices
        )
    count = sum(len(pairs[i].chosen_ids) for i in train_indices)
    assert steps[0]["loss"] == pytest.approx(total / count, rel=1e-5)
