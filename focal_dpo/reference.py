"""Reference log-probs: precomputed once in a no-grad pass (split across ranks) and cached on disk.

The cache keeps per-token log-probs of the completions (not weighted sums), computed only at the tokens the mask
mode weights, so the reference pass skips what the loss never reads. Its key is a fingerprint over every byte of
the reference's weight files, the tokenized data, the compute dtype and the mask mode.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from focal_dpo.data import PairBatch, TokenizedPair, collate, file_digest
from focal_dpo.distributed import ONE_PROCESS, Ranks, all_gather_objects

CACHE_VERSION = 2
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def model_files_dir(source: str) -> Path | None:
    """The directory holding `source`'s files: itself when local, the hub cache's snapshot for a hub name."""
    if Path(source).is_dir():
        return Path(source)
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception:  # not a cached hub model: the caller hashes the loaded tensors instead
        return None


def weights_digest(source: str, model: torch.nn.Module | None = None) -> str:
    """sha256 over every byte of the weight files and config.json of `source` (so a retrained or merged
    checkpoint at the same path gets a new key); without files, over the loaded model's tensors."""
    digest = hashlib.sha256()
    root = model_files_dir(source)
    files = sorted(p for p in root.iterdir() if p.suffix in WEIGHT_SUFFIXES) if root else []
    if files:
        for path in files + [root / "config.json"]:
            if path.exists():
                digest.update(f"{path.name}\0".encode())
                file_digest(path, digest)
        return digest.hexdigest()
    if model is None:
        raise ValueError(f"{source}: no weight files found to fingerprint the reference")
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def reference_key(weights: str, pairs: list[TokenizedPair], compute: str, mask_mode: str) -> str:
    """Cache key: the reference weights, every token id and diff mask in pair order, dtype and mask mode."""
    mode = "full" if mask_mode == "hybrid" else mask_mode
    digest = hashlib.sha256(f"v{CACHE_VERSION} {compute} {mode} {weights}".encode())
    for p in pairs:
        for array in (p.prompt_ids, p.chosen_ids, p.rejected_ids, p.chosen_diff, p.rejected_diff):
            digest.update(len(array).to_bytes(8, "little"))
            digest.update(array.tobytes())
    return digest.hexdigest()[:24]


@torch.no_grad()
def precompute(
    policy: Any,
    pairs: list[TokenizedPair],
    pad_id: int,
    batch_size: int,
    device: torch.device,
    autocast: Callable[[], Any] = nullcontext,
    progress: bool = False,
    mask_mode: str = "full",
    ranks: Ranks = ONE_PROCESS,
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(chosen, rejected) per-token log-probs of each pair's completion tokens, in pair order.

    `policy` is a Policy (or what wraps it); its `reference()` context gives the reference (the adapter off
    for LoRA). Only the tokens `mask_mode` weights are computed (zero elsewhere): in `target` mode that skips
    all but the D- tokens of the rejected side; `hybrid` needs every token. With several ranks each computes
    every world-th pair (the same number of batches on every rank, as FSDP needs) and all gather the result.
    """
    from tqdm import tqdm

    mode = "full" if mask_mode == "hybrid" else mask_mode
    per_rank = math.ceil(len(pairs) / ranks.world)
    mine = list(range(ranks.rank, len(pairs), ranks.world))
    padded = mine + [mine[0] if mine else 0] * (per_rank - len(mine))  # repeats, dropped below
    inner = getattr(policy, "module", policy)  # under DDP the reference pass needs no gradient sync
    was_training = inner.training
    inner.eval()
    local: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    starts = range(0, len(padded), batch_size)
    with inner.reference():
        for start in tqdm(starts, desc="reference log-probs", disable=not progress, leave=False):
            indices = padded[start : start + batch_size]
            batch = collate(pairs, indices, mode, pad_id).to(device)
            with autocast():
                token_logps = inner(batch.input_ids, batch.attention_mask, batch.weights != 0).cpu()
            completion = batch.completion.cpu()
            b = batch.num_pairs
            for k, index in enumerate(indices):
                local[index] = (token_logps[k][completion[k]], token_logps[b + k][completion[b + k]])
    inner.train(was_training)
    if hasattr(inner, "reshard"):  # FSDP2 keeps the root unsharded after a forward without backward
        inner.reshard()
    for index in set(padded) - set(mine):
        local.pop(index, None)
    merged: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}
    for part in all_gather_objects(local, ranks):
        merged.update(part)
    return [merged[i] for i in range(len(pairs))]


def load_or_precompute(cache_dir: Path, key: str, compute, ranks: Ranks = ONE_PROCESS) -> list:
    """The cached reference log-probs for `key`, computing and saving them (rank 0) first when missing."""
    from focal_dpo.distributed import barrier, everyone

    path = cache_dir / f"ref_logps-{key}.pt"
    if everyone(path.exists(), ranks):
        return torch.load(path, weights_only=True)
    values = compute()
    if ranks.main:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(values, tmp)
        tmp.replace(path)  # atomic: a killed run never leaves a half-written cache
    barrier(ranks)
    return values


def cached_batch_logps(batch: PairBatch, cache: list[tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
    """Place cached per-token reference log-probs into the batch's [2B, T-1] label layout."""
    out = torch.zeros(batch.completion.shape, dtype=torch.float32)
    completion = batch.completion.cpu()
    b = batch.num_pairs
    for k, index in enumerate(batch.pair_index):
        chosen, rejected = cache[index]
        out[k][completion[k]] = chosen
        out[b + k][completion[b + k]] = rejected
    return out.to(batch.completion.device, non_blocking=True)
