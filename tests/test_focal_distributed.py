"""`torchrun --nproc-per-node 2 focal-dpo train --strategy ddp|fsdp` on CPU (gloo) against one process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from focal_dpo.config import TrainConfig
from focal_dpo.synthetic import bug_pairs, write_jsonl
from focal_dpo.train import train
from tests.fixtures.tiny_model import make_tiny_model

ROOT = Path(__file__).resolve().parents[1]
# 20 pairs, 4 per step: step 5 ends epoch 0, so the 6-step runs cross an epoch boundary
SETTINGS = dict(max_steps=6, learning_rate=1e-3, warmup_ratio=0.0, max_length=96, logits_chunk=16, seed=0)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("distributed")
    model = make_tiny_model(root / "model", hidden_size=32, seed=0)
    data = write_jsonl(bug_pairs(20, seed=4), root / "pairs.jsonl")
    # one process, the same global batch of 4 pairs: 2 per micro-batch, 2 micro-batches
    single = root / "single"
    train(TrainConfig(model=str(model), data=str(data), output=str(single), batch_size=2, grad_accum=2,
                      progress=False, **SETTINGS))  # fmt: skip
    return model, data, single


def torchrun(model: Path, data: Path, output: Path, strategy: str, *extra: str) -> None:
    args = [f"--{k.replace('_', '-')}={v}" for k, v in SETTINGS.items()] + list(extra)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           "-m", "focal_dpo.cli", "train", "--model", str(model), "--data", str(data), "--output", str(output),
           "--batch-size", "2", "--strategy", strategy, "--no-progress", *args]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]


def losses(output: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (output / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("strategy", ["ddp", "fsdp"])
def test_two_processes_match_one_process_on_the_same_global_batch(setup, tmp_path, strategy):
    model, data, single = setup
    out = tmp_path / strategy
    torchrun(model, data, out, strategy)
    assert losses(out)[0] == pytest.approx(losses(single)[0], abs=1e-5)
    assert losses(out) == pytest.approx(losses(single), abs=1e-5)
    ours, expected = (
        load_file(out / "final" / "model.safetensors"),
        load_file(single / "final" / "model.safetensors"),
    )
    assert set(ours) == set(expected)
    for name, tensor in expected.items():
        torch.testing.assert_close(ours[name], tensor, atol=1e-5, rtol=0, msg=name)
    reference = load_file(model / "model.safetensors")
    assert not torch.equal(
        reference["model.layers.0.mlp.up_proj.weight"], ours["model.layers.0.mlp.up_proj.weight"]
    )


def test_fsdp_resumed_from_what_a_killed_run_leaves_gives_the_same_losses(setup, tmp_path):
    model, data, _ = setup
    whole = tmp_path / "whole"
    torchrun(model, data, whole, "fsdp", "--save-steps=2")
    assert {p.name for p in (whole / "checkpoint-4").iterdir()} >= {"trainer_state.pt", "rank-1.pt"}
    # killed during step 5: the checkpoint of step 4 and the metrics logged up to step 4 (plus the cache)
    resumed = tmp_path / "resumed"
    resumed.mkdir()
    shutil.copytree(whole / "checkpoint-4", resumed / "checkpoint-4")
    (resumed / "metrics.jsonl").write_text(
        "".join((whole / "metrics.jsonl").read_text().splitlines(True)[:4])
    )
    torchrun(model, data, resumed, "fsdp", "--save-steps=2", "--resume")
    assert losses(resumed) == pytest.approx(losses(whole), abs=1e-6)
    assert len(losses(resumed)) == 6
