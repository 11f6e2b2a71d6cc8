"""Optimizers the CLI offers (`--optim`), one registry, and what their training state costs per parameter.

bf16 weights (`--param-dtype bf16`) need updates that do not vanish: lr * update is often below half a bf16
step of the weight (2**-9 relative), so round-to-nearest drops it every time. Every optimizer here writes bf16
weights with stochastic rounding (round up with probability equal to the remainder), which keeps each update
unbiased; a fp32 master copy would do the same at 4 more bytes per parameter, giving back what bf16 saved.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from focal_dpo.config import OptionError

OPTIMIZERS = {
    "adamw": "AdamW; fp32 weights: torch.optim.AdamW (fused on CUDA); bf16 weights: bf16 moments, stochastically rounded",
    "adamw8bit": "torchao AdamW8bit: 8-bit block-quantized moments; bf16 weights stochastically rounded",
    "adamw4bit": "torchao AdamW4bit: 4-bit block-quantized moments; bf16 weights stochastically rounded",
    "bnb-adamw8bit": "bitsandbytes AdamW8bit (fp32 weights or LoRA adapters)",
    "bnb-paged-adamw8bit": "bitsandbytes PagedAdamW8bit: moments page to CPU memory under pressure (CUDA)",
}  # fmt: skip


def stochastic_round_bf16(x: torch.Tensor) -> torch.Tensor:
    """fp32 -> bf16, rounding up with probability equal to the dropped fraction (unbiased: E[out] == x)."""
    bits = x.contiguous().view(torch.int32)
    noise = torch.randint_like(bits, 0, 1 << 16)
    # adding noise below the kept 16 bits carries into them with the right probability; then truncate
    rounded = (bits + noise) & -65536
    return rounded.view(torch.float32).to(torch.bfloat16)


def _write(target: torch.Tensor, value: torch.Tensor) -> None:
    target.copy_(stochastic_round_bf16(value) if target.dtype == torch.bfloat16 else value)


class StochasticRoundingAdamW(torch.optim.Optimizer):
    """AdamW with fp32 math whose bf16 weights and bf16 moments are written with stochastic rounding.

    Moments live in the weight's dtype (8 bytes per parameter with bf16 weights and grads); fp32 parameters
    (LoRA adapters beside a bf16 base) get exact fp32 AdamW.
    """

    def __init__(
        self,
        params: Iterable[torch.nn.Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for param in group["params"]:
                if param.grad is None:
                    continue
                p, grad = _local(param), _local(param.grad)
                state = self.state[param]
                if not state:
                    state["step"] = torch.tensor(0.0)
                    state["exp_avg"] = torch.zeros_like(p)
                    state["exp_avg_sq"] = torch.zeros_like(p)
                state["step"] += 1
                step = state["step"].item()
                g = grad.float()
                exp_avg = state["exp_avg"].float().lerp_(g, 1 - beta1)
                exp_avg_sq = state["exp_avg_sq"].float().lerp_(g.square(), 1 - beta2)
                _write(state["exp_avg"], exp_avg)
                _write(state["exp_avg_sq"], exp_avg_sq)
                denom = (exp_avg_sq / (1 - beta2**step)).sqrt_().add_(group["eps"])
                value = p.float().mul_(1 - group["lr"] * group["weight_decay"])
                value.addcdiv_(exp_avg, denom, value=-group["lr"] / (1 - beta1**step))
                _write(p, value)


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """The shard a rank owns under FSDP2 (elementwise updates need no communication)."""
    return tensor.to_local() if hasattr(tensor, "to_local") else tensor


def build_optimizer(
    name: str,
    params: list[torch.nn.Parameter],
    learning_rate: float,
    weight_decay: float,
    device: torch.device,
) -> torch.optim.Optimizer:
    """The optimizer `--optim NAME` names, for these parameters; a wrong pairing is an OptionError saying why."""
    bf16 = any(p.dtype == torch.bfloat16 for p in params)
    common = dict(lr=learning_rate, weight_decay=weight_decay)
    if name == "adamw":
        if bf16:
            return StochasticRoundingAdamW(params, **common)
        return torch.optim.AdamW(params, fused=device.type == "cuda", **common)
    if name in ("adamw8bit", "adamw4bit"):
        try:
            import torchao.optim
        except ImportError as err:
            raise OptionError(f"--optim {name} needs torchao: pip install torchao") from err
        cls = torchao.optim.AdamW8bit if name == "adamw8bit" else torchao.optim.AdamW4bit
        return cls(params, bf16_stochastic_round=bf16, **common)
    if name in ("bnb-adamw8bit", "bnb-paged-adamw8bit"):
        if bf16:
            raise OptionError(
                f"--optim {name} rounds bf16 weights to nearest, so small updates vanish: "
                "use --optim adamw8bit (torchao, stochastic rounding) or --param-dtype fp32"
            )
        try:
            import bitsandbytes as bnb
        except ImportError as err:
            raise OptionError(f"--optim {name} needs bitsandbytes: pip install bitsandbytes") from err
        cls = bnb.optim.AdamW8bit if name == "bnb-adamw8bit" else bnb.optim.PagedAdamW8bit
        return cls(params, **common)
    raise OptionError(f"--optim {name!r}: use one of {', '.join(OPTIMIZERS)}")


def tensor_bytes(value: object, seen: set[tuple[int, int]] | None = None) -> int:
    """Bytes held by the tensors in `value` (nested dicts/lists, tensor subclasses such as torchao's 8-bit
    states), each storage counted once."""
    seen = set() if seen is None else seen
    if isinstance(value, dict):
        return sum(tensor_bytes(v, seen) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v, seen) for v in value)
    if not isinstance(value, torch.Tensor):
        return 0
    if hasattr(value, "to_local"):
        value = value.to_local()
    if hasattr(value, "__tensor_flatten__"):
        names, _ = value.__tensor_flatten__()
        return sum(tensor_bytes(getattr(value, n), seen) for n in names)
    if value.device.type == "meta":
        return 0
    storage = value.untyped_storage()
    key = (storage.data_ptr(), storage.nbytes())
    if key in seen:
        return 0
    seen.add(key)
    return storage.nbytes()


def training_state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Weights, gradients and optimizer state in bytes (call after a step, before zero_grad), and the count
    of parameters (frozen included), so bytes/parameter = total / parameters."""
    seen: set[tuple[int, int]] = set()
    params = list(model.parameters())
    out = {
        "weights": sum(tensor_bytes(p.data, seen) for p in params),
        "grads": sum(tensor_bytes(p.grad, seen) for p in params if p.grad is not None),
        "optimizer": tensor_bytes(list(optimizer.state.values()), seen),
        "parameters": sum(p.numel() for p in params),
    }
    # a 4-bit base stores two weights per byte; count its parameters as the model's, not the packed bytes
    quantized = getattr(model, "is_loaded_in_4bit", False)
    if quantized:
        out["parameters"] = sum(p.numel() * (2 if p.dtype == torch.uint8 else 1) for p in params)
    return out


def cosine_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int):
    """Linear warmup from 0, then cosine decay to 0 (Hugging Face's `get_cosine_schedule_with_warmup`, the
    same values, without importing transformers' trainer utilities and peft with them)."""
    import math

    def factor(step: int) -> float:
        if step < warmup_steps:
            return step / max(1, warmup_steps)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
