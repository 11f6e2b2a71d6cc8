"""Checkpoints that resume exactly: model weights (or the LoRA adapter), optimizer, scheduler, every rank's RNG
states and the data position; and the final model, saved in the training dtype with world-readable files.

checkpoint-N/ holds what `from_pretrained` reads (written by rank 0 from the full state dict) plus
trainer_state.pt (rank 0: scheduler, position, its RNG and optimizer state) and rank-R.pt for each other rank
(its RNG, and under FSDP its optimizer shard). A resume needs the same number of processes.
"""

from __future__ import annotations

import os
import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from focal_dpo.config import OptionError
from focal_dpo.distributed import (
    ONE_PROCESS,
    Ranks,
    barrier,
    full_state_dict,
    load_optimizer_state_local,
    optimizer_state_local,
)
from focal_dpo.policy import Policy


@dataclass
class Position:
    """Where training stands: optimizer steps done, and the next pair within the epoch's shuffled order."""

    step: int = 0
    epoch: int = 0
    offset: int = 0


def rng_state() -> dict[str, Any]:
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def make_world_readable(directory: Path) -> None:
    """Give saved files the mode any new file gets under the user's umask (save_pretrained writes 0600)."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [directory, *directory.rglob("*")]:
        os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def save_model(directory: Path, policy: Policy, strategy: str, tokenizer: Any, ranks: Ranks) -> None:
    """`save_pretrained` of the policy's model (a LoRA adapter for peft) in its own dtype, plus the tokenizer.
    Every rank calls it (FSDP gathers the shards); rank 0 writes."""
    state = full_state_dict(policy, strategy) if strategy == "fsdp" else None
    if ranks.main:
        directory.mkdir(parents=True, exist_ok=True)
        lm = policy.causal_lm
        lm.config.use_cache = True  # activation checkpointing turns it off while training
        if state is None:
            policy.model.save_pretrained(directory)
        else:
            policy.model.save_pretrained(directory, state_dict=state)
        tokenizer.save_pretrained(directory)
        make_world_readable(directory)


def merge_adapter(base: str, adapter_dir: Path, directory: Path, dtype: torch.dtype, tokenizer: Any) -> None:
    """Base model (unquantized, in `dtype`) + adapter -> one merged `save_pretrained` model in `directory`."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    merged = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    merged.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    make_world_readable(directory)


def save(
    output: Path,
    policy: Policy,
    strategy: str,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    position: Position,
    ranks: Ranks = ONE_PROCESS,
) -> Path:
    """Write OUTPUT/checkpoint-STEP atomically (a temp dir renamed into place once every rank wrote its part)."""
    final = output / f"checkpoint-{position.step}"
    tmp = output / f".checkpoint-{position.step}.tmp"
    if ranks.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    barrier(ranks)
    save_model(tmp, policy, strategy, tokenizer, ranks)
    optim = optimizer_state_local(optimizer) if strategy == "fsdp" else optimizer.state_dict()
    if ranks.main:
        state = {
            "optimizer": optim,
            "scheduler": scheduler.state_dict(),
            "rng": rng_state(),
            "position": asdict(position),
            "world": ranks.world,
        }
        torch.save(state, tmp / "trainer_state.pt")
    else:
        state = {"rng": rng_state()} | ({"optimizer": optim} if strategy == "fsdp" else {})
        torch.save(state, tmp / f"rank-{ranks.rank}.pt")
    barrier(ranks)
    if ranks.main:
        shutil.rmtree(final, ignore_errors=True)
        tmp.rename(final)
        make_world_readable(final)
    barrier(ranks)
    return final


def latest(output: Path) -> Path | None:
    """The checkpoint with the highest step in `output`, or None."""
    found = []
    for path in output.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and (path / "trainer_state.pt").exists():
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def load_state(
    path: Path,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    strategy: str = "single",
    ranks: Ranks = ONE_PROCESS,
) -> Position:
    """Restore optimizer, scheduler and RNG from a checkpoint (the model is loaded from `path` by the caller)."""
    shared = torch.load(path / "trainer_state.pt", weights_only=False)
    saved_world = shared.get("world", 1)
    if saved_world != ranks.world:
        raise OptionError(
            f"{path} was written by {saved_world} process(es); resume it with --nproc-per-node {saved_world}"
        )
    own = shared if ranks.main else torch.load(path / f"rank-{ranks.rank}.pt", weights_only=False)
    optim = own["optimizer"] if strategy == "fsdp" else shared["optimizer"]
    if strategy == "fsdp":
        load_optimizer_state_local(optimizer, optim)
    else:
        optimizer.load_state_dict(optim)
    scheduler.load_state_dict(shared["scheduler"])
    set_rng_state(own["rng"])
    return Position(**shared["position"])
