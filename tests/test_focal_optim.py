"""focal_dpo.optim: the --optim registry, stochastic rounding that keeps bf16 updates, bytes per parameter."""

from __future__ import annotations

import json

import pytest
import torch

from focal_dpo.config import OPTIMIZER_NAMES, TrainConfig
from focal_dpo.optim import (
    OPTIMIZERS,
    StochasticRoundingAdamW,
    build_optimizer,
    stochastic_round_bf16,
    training_state_bytes,
)

CPU = torch.device("cpu")


def test_every_optimizer_the_cli_offers_is_built_by_the_registry():
    assert tuple(OPTIMIZERS) == OPTIMIZER_NAMES


def test_stochastic_rounding_is_unbiased_and_lands_on_a_neighbouring_bf16_value():
    torch.manual_seed(0)
    low = torch.tensor(1.0, dtype=torch.bfloat16)
    high = torch.nextafter(low, torch.tensor(2.0, dtype=torch.bfloat16))
    x = torch.full((20000,), float(low) + 0.3 * (float(high) - float(low)))
    rounded = stochastic_round_bf16(x)
    assert set(rounded.float().unique().tolist()) == {float(low), float(high)}
    assert rounded.float().mean().item() == pytest.approx(x[0].item(), abs=0.02 * (float(high) - float(low)))
    assert torch.equal(stochastic_round_bf16(torch.tensor([0.0, -2.5, 1e30])).float(),
                       torch.tensor([0.0, -2.5, 1e30]).bfloat16().float())  # fmt: skip


def test_bf16_updates_below_half_a_bf16_step_survive_only_with_stochastic_rounding():
    # lr 1e-4 on weights of 1.0: each update is 1e-4, under half a bf16 step at 1.0 (2**-8 / 2 = 0.002)
    torch.manual_seed(1)
    steps, lr = 50, 1e-4

    def final_mean(make):
        weight = torch.nn.Parameter(torch.ones(1024, dtype=torch.bfloat16))
        optimizer = make([weight])
        for _ in range(steps):
            weight.grad = torch.ones_like(weight)  # Adam's normalised update is lr per step
            optimizer.step()
        return weight.float().mean().item()

    plain = final_mean(lambda p: torch.optim.AdamW(p, lr=lr, weight_decay=0.0))
    ours = final_mean(lambda p: StochasticRoundingAdamW(p, lr=lr))
    assert plain == 1.0  # round-to-nearest drops every update
    assert ours == pytest.approx(1.0 - steps * lr, abs=0.1 * steps * lr)


def test_stochastic_rounding_adamw_equals_torch_adamw_on_fp32_weights():
    torch.manual_seed(2)
    a = torch.nn.Parameter(torch.randn(64))
    b = torch.nn.Parameter(a.detach().clone())
    ours, theirs = (
        StochasticRoundingAdamW([a], lr=1e-2, weight_decay=0.1),
        torch.optim.AdamW([b], lr=1e-2, weight_decay=0.1),
    )
    for _ in range(5):
        grad = torch.randn(64)
        a.grad, b.grad = grad.clone(), grad.clone()
        ours.step(), theirs.step()
    torch.testing.assert_close(a.detach(), b.detach(), atol=1e-6, rtol=1e-6)


def test_optimizers_that_round_bf16_to_nearest_are_refused_naming_the_fix():
    weight = torch.nn.Parameter(torch.ones(8, dtype=torch.bfloat16))
    with pytest.raises(ValueError, match="use --optim adamw8bit"):
        build_optimizer("bnb-adamw8bit", [weight], 1e-3, 0.0, CPU)
    assert isinstance(build_optimizer("adamw", [weight], 1e-3, 0.0, CPU), StochasticRoundingAdamW)
    fp32 = torch.nn.Parameter(torch.ones(8))
    assert type(build_optimizer("adamw", [fp32], 1e-3, 0.0, CPU)) is torch.optim.AdamW


def measured_bytes_per_parameter(name: str, dtype: torch.dtype) -> float:
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(256, 512), torch.nn.Linear(512, 256)).to(dtype)
    optimizer = build_optimizer(name, list(model.parameters()), 1e-3, 0.0, CPU)
    model(torch.randn(4, 256, dtype=dtype)).sum().backward()
    optimizer.step()
    state = training_state_bytes(model, optimizer)
    return (state["weights"] + state["grads"] + state["optimizer"]) / state["parameters"]


def test_training_state_bytes_per_parameter_of_the_fast_setups():
    assert measured_bytes_per_parameter("adamw", torch.float32) == pytest.approx(16.0, abs=0.01)
    assert measured_bytes_per_parameter("adamw", torch.bfloat16) == pytest.approx(8.0, abs=0.01)
    pytest.importorskip("bitsandbytes")
    # fp32 weights and grads, two 8-bit moments and their block scales
    assert measured_bytes_per_parameter("bnb-adamw8bit", torch.float32) == pytest.approx(10.0, abs=0.1)


@pytest.mark.slow
def test_torchao_8bit_and_4bit_moments_cost_one_and_a_half_bytes_per_parameter():
    pytest.importorskip("torchao")  # compiles its update kernel on first use (about 30 s on CPU)
    assert measured_bytes_per_parameter("adamw8bit", torch.bfloat16) == pytest.approx(6.0, abs=0.1)
    assert measured_bytes_per_parameter("adamw4bit", torch.bfloat16) == pytest.approx(5.0, abs=0.1)


def test_bf16_training_updates_the_weights_and_saves_bf16_files_anyone_can_read(tiny_model_dir, tmp_path):
    import os
    import stat

    from safetensors import safe_open

    from focal_dpo.synthetic import bug_pairs, write_jsonl
    from focal_dpo.train import train

    data = write_jsonl(bug_pairs(8, seed=1), tmp_path / "pairs.jsonl")
    out = tmp_path / "run"
    old_umask = os.umask(0o022)
    try:
        train(TrainConfig(model=str(tiny_model_dir), data=str(data), output=str(out), param_dtype="bf16",
                          max_steps=3, warmup_ratio=0.0, batch_size=4, learning_rate=1e-3, max_length=96, progress=False))  # fmt: skip
    finally:
        os.umask(old_umask)
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 3 and losses[2] < losses[0]
    with safe_open(out / "final" / "model.safetensors", "pt") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
    assert {t.dtype for t in tensors.values()} == {torch.bfloat16}
    with safe_open(tiny_model_dir / "model.safetensors", "pt") as f:
        before = f.get_tensor("model.layers.0.mlp.up_proj.weight")
    assert not torch.equal(before.bfloat16(), tensors["model.layers.0.mlp.up_proj.weight"])
    for path in (out / "final").iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name
