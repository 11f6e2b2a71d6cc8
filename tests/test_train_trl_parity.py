"""Loss parity with TRL's DPOTrainer on the full mask (vanilla DPO): the same numbers, step for step."""

from __future__ import annotations

import json

import pytest

from focal_dpo.config import TrainConfig
from focal_dpo.synthetic import bug_pairs, write_jsonl
from focal_dpo.train import train
from tests.fixtures.tiny_model import make_tiny_model

pytest.importorskip("trl")


def test_full_mask_losses_equal_trl_dpo_trainer_with_the_same_reference_and_batches(tmp_path):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    policy = make_tiny_model(tmp_path / "policy", hidden_size=32, seed=0)
    ref = make_tiny_model(tmp_path / "ref", hidden_size=32, seed=1)  # not the policy: step 1 is not log 2
    # prompts end in a newline so no token merges across the prompt/answer boundary (TRL tokenizes them
    # together, as one text; this trainer tokenizes them apart, as a server does at inference)
    rows = [dict(r, prompt=r["prompt"] + "\n") for r in bug_pairs(8, seed=3)]
    data = write_jsonl(rows, tmp_path / "pairs.jsonl")
    common = dict(learning_rate=1e-3, max_length=256)
    train(TrainConfig(model=str(policy), data=str(data), output=str(tmp_path / "ours"), ref_model=str(ref),
                      mask="full", rpo_alpha=0.0, batch_size=4, max_steps=2, warmup_ratio=0.0,
                      max_prompt_length=0, progress=False, seed=0, **common))  # fmt: skip
    ours = [
        json.loads(line)["loss"] for line in (tmp_path / "ours" / "metrics.jsonl").read_text().splitlines()
    ]

    config = DPOConfig(
        output_dir=str(tmp_path / "trl"), per_device_train_batch_size=4, beta=0.1, loss_type=["sigmoid"],
        max_steps=2, lr_scheduler_type="cosine", warmup_steps=0, logging_steps=1, save_strategy="no",
        report_to="none", bf16=False, use_cpu=True, seed=0, dataloader_num_workers=0, disable_tqdm=True, **common,
    )  # fmt: skip
    dataset = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(policy), args=config, train_dataset=dataset,
                         ref_model=AutoModelForCausalLM.from_pretrained(ref),
                         processing_class=AutoTokenizer.from_pretrained(policy))  # fmt: skip
    trainer.train()
    theirs = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert ours[0] == theirs[0]  # bitwise, before any update
    assert ours[1] == pytest.approx(theirs[1], abs=1e-6)  # after one AdamW step on the same batch
