"""Checkpoints that resume exactly: model weights, optimizer, scheduler, RNG states and the data position."""

from __future__ import annotations

import random
import re
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch


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


def save(output: Path, model, tokenizer, optimizer, scheduler, position: Position) -> Path:
    """Write OUTPUT/checkpoint-STEP atomically (a temp dir renamed into place); returns its path."""
    final = output / f"checkpoint-{position.step}"
    tmp = output / f".checkpoint-{position.step}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    state = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "position": asdict(position),
    }
    torch.save(state, tmp / "trainer_state.pt")
    shutil.rmtree(final, ignore_errors=True)
    tmp.rename(final)
    return final


def latest(output: Path) -> Path | None:
    """The checkpoint with the highest step in `output`, or None."""
    found = []
    for path in output.glob("checkpoint-*"):
        match = re.fullmatch(r"checkpoint-(\d+)", path.name)
        if match and (path / "trainer_state.pt").exists():
            found.append((int(match.group(1)), path))
    return max(found)[1] if found else None


def load_state(path: Path, optimizer, scheduler) -> Position:
    """Restore optimizer, scheduler and RNG from a checkpoint (the model is loaded from `path` by the caller)."""
    state = torch.load(path / "trainer_state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return Position(**state["position"])
