"""Several processes (`torchrun --nproc-per-node N focal-dpo train ... --strategy ddp|fsdp`), one place.

Rank awareness comes from torchrun's environment (RANK, LOCAL_RANK, WORLD_SIZE); one process is the same code
with world size 1 and every helper here a no-op. DDP replicates the policy and all-reduces gradients; FSDP2
(`fully_shard`) shards each decoder layer and then the root, with a bf16 mixed-precision policy when asked.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from focal_dpo.config import OptionError
from focal_dpo.policy import Policy, decoder_layers


@dataclass(frozen=True)
class Ranks:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0 logs, prints and writes the files every rank shares."""
        return self.rank == 0


ONE_PROCESS = Ranks()


def ranks_from_env() -> Ranks:
    env = os.environ
    return Ranks(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


def strategy_for(requested: str, ranks: Ranks) -> str:
    """'single', 'ddp' or 'fsdp' (`auto`: ddp under a multi-process launch)."""
    if requested == "auto":
        return "ddp" if ranks.world > 1 else "single"
    if "WORLD_SIZE" not in os.environ:
        raise OptionError(
            f"--strategy {requested} needs a launcher: torchrun --nproc-per-node N focal-dpo train ..."
        )
    return requested


def start(ranks: Ranks) -> torch.device:
    """Join the process group (NCCL on CUDA, gloo on CPU) and return this process's device."""
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", ranks.local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if ranks.world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if cuda else "gloo", device_id=device if cuda else None)
    return device


def stop() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def wrap(policy: Policy, strategy: str, device: torch.device, compute_dtype: torch.dtype | None) -> Any:
    """The module the training loop calls: the policy itself, DDP around it, or the policy sharded in place."""
    if strategy == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(policy, device_ids=[device.index] if device.type == "cuda" else None)
    if strategy == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        mp = MixedPrecisionPolicy(param_dtype=compute_dtype, reduce_dtype=torch.float32)
        for layer in decoder_layers(policy.causal_lm):  # bottom-up, the root last
            fully_shard(layer, mp_policy=mp)
        fully_shard(policy, mp_policy=mp)
    return policy


def gradient_sync(wrapped: Any, strategy: str, sync: bool):
    """Context for one micro-batch's backward: gradients are reduced only on the step's last micro-batch."""
    if strategy == "ddp" and not sync:
        return wrapped.no_sync()
    if strategy == "fsdp":
        wrapped.set_requires_gradient_sync(sync)
    return nullcontext()


def all_reduce_sum(tensor: torch.Tensor, ranks: Ranks) -> torch.Tensor:
    if ranks.world > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_gather_objects(value: Any, ranks: Ranks) -> list[Any]:
    if ranks.world == 1:
        return [value]
    out: list[Any] = [None] * ranks.world
    dist.all_gather_object(out, value)
    return out


def broadcast_object(value: Any, ranks: Ranks) -> Any:
    """Rank 0's `value` on every rank."""
    if ranks.world == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier(ranks: Ranks) -> None:
    if ranks.world > 1:
        dist.barrier()


def everyone(flag: bool, ranks: Ranks) -> bool:
    """True when `flag` is true on every rank."""
    if ranks.world == 1:
        return flag
    return bool(all_gather_objects(flag, ranks).count(False) == 0)


def full_state_dict(policy: Policy, strategy: str) -> dict[str, torch.Tensor]:
    """The policy's model weights as plain CPU tensors keyed like `policy.model.state_dict()`, gathered from
    the shards under FSDP (every rank must call it; ranks other than 0 get an empty dict)."""
    if strategy != "fsdp":
        return policy.model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    state = get_model_state_dict(policy, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    # a tied weight (embeddings = LM head) comes back under both names: keep the one save_pretrained keeps
    kept = {name for name, _ in policy.model.named_parameters()} | {
        n for n, _ in policy.model.named_buffers()
    }
    state = {key.removeprefix("model."): value for key, value in state.items()}
    return {key: value for key, value in state.items() if key in kept}


@contextmanager
def main_first(ranks: Ranks):
    """Rank 0 runs the body first (e.g. builds a cache the others then read); the others follow."""
    if not ranks.main:
        barrier(ranks)
    yield
    if ranks.main:
        barrier(ranks)


def optimizer_state_local(optimizer: torch.optim.Optimizer) -> dict:
    """optimizer.state_dict() with each FSDP2 DTensor replaced by the shard this rank holds."""
    state = optimizer.state_dict()

    def local(value: Any) -> Any:
        return value.to_local() if hasattr(value, "to_local") else value

    state["state"] = {k: {n: local(v) for n, v in s.items()} for k, s in state["state"].items()}
    return state


def load_optimizer_state_local(optimizer: torch.optim.Optimizer, state: dict) -> None:
    """Inverse of `optimizer_state_local`: rebuild DTensors around the saved shards, then load."""
    from torch.distributed.tensor import DTensor

    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, entries in state["state"].items():
        param = params[int(index)]
        if not isinstance(param, DTensor):
            continue
        for name, value in entries.items():
            if isinstance(value, torch.Tensor) and value.shape == param.to_local().shape:
                entries[name] = DTensor.from_local(
                    value.to(param.device), param.device_mesh, param.placements, run_check=False,
                    shape=param.shape, stride=param.stride(),
                )  # fmt: skip
    optimizer.load_state_dict(state)
