"""Reference log-probs: precomputed once in a no-grad pass and cached on disk, or live from a frozen copy.

The cache keeps per-token log-probs of the completions (not weighted sums), computed only at the tokens the mask
mode weights, so the reference pass skips what the loss never reads. Its key is a fingerprint of the reference
weights, the tokenized data and the mask mode.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from focal_dpo.data import PairBatch, TokenizedPair, collate
from focal_dpo.loss import logps

CACHE_VERSION = 1


def backbone_hidden(model: torch.nn.Module, batch: PairBatch) -> torch.Tensor:
    """Last hidden states from the model body, skipping the LM head (no [batch, seq, vocab] logits)."""
    body = getattr(model, model.base_model_prefix)
    return body(
        input_ids=batch.input_ids, attention_mask=batch.attention_mask, use_cache=False
    ).last_hidden_state


def lm_head_weight(model: torch.nn.Module) -> torch.Tensor:
    head = model.get_output_embeddings()
    if getattr(head, "bias", None) is not None:
        raise ValueError("LM heads with a bias are not supported by the chunked log-prob path")
    return head.weight


def batch_token_logps(
    model: torch.nn.Module, batch: PairBatch, positions: torch.Tensor, chunk_size: int
) -> torch.Tensor:
    """fp32 [2B, T-1] log-probs at `positions` (zero elsewhere)."""
    return logps(backbone_hidden(model, batch), lm_head_weight(model), batch.input_ids, positions, chunk_size)


def fingerprint(model_dir: str, pairs: list[TokenizedPair], dtype: str, mask_mode: str = "full") -> str:
    """sha256 over the reference's config and weight files (size + head and tail bytes), every token id and
    the diff masks and mask mode, which decide the tokens the cache holds."""
    mode = "full" if mask_mode == "hybrid" else mask_mode
    digest = hashlib.sha256(f"v{CACHE_VERSION} {dtype} {mode}".encode())
    root = Path(model_dir)
    if root.is_dir():
        for path in sorted(root.glob("*.safetensors")) + sorted(root.glob("*.bin")) + [root / "config.json"]:
            if not path.exists():
                continue
            size = path.stat().st_size
            digest.update(f"{path.name} {size}".encode())
            with path.open("rb") as f:
                digest.update(f.read(1 << 20))
                f.seek(max(size - (1 << 20), 0))
                digest.update(f.read())
    else:
        digest.update(model_dir.encode())  # a hub name: its revision is cached locally under that name
    for p in pairs:
        digest.update(
            json.dumps([p.prompt_ids, p.chosen_ids, p.rejected_ids, p.chosen_diff, p.rejected_diff]).encode()
        )
    return digest.hexdigest()[:24]


@torch.no_grad()
def precompute(
    model: torch.nn.Module,
    pairs: list[TokenizedPair],
    pad_id: int,
    batch_size: int,
    chunk_size: int,
    device: torch.device,
    autocast_dtype: torch.dtype | None,
    progress: bool = False,
    mask_mode: str = "full",
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(chosen, rejected) per-token log-probs of each pair's completion tokens, in pair order.

    Only the tokens `mask_mode` weights are computed (zero elsewhere): in `target` mode that skips all but the
    D- tokens of the rejected side. `hybrid` needs every token.
    """
    mode = "full" if mask_mode == "hybrid" else mask_mode
    from tqdm import tqdm

    was_training = model.training
    model.eval()
    out: list[tuple[torch.Tensor, torch.Tensor]] = []
    starts = range(0, len(pairs), batch_size)
    for start in tqdm(starts, desc="reference log-probs", disable=not progress, leave=False):
        indices = list(range(start, min(start + batch_size, len(pairs))))
        batch = collate(pairs, indices, mode, pad_id).to(device)
        with torch.autocast(
            device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None
        ):
            token_logps = batch_token_logps(model, batch, batch.weights != 0, chunk_size).cpu()
        completion = batch.completion.cpu()
        b = batch.num_pairs
        for k in range(b):
            out.append((token_logps[k][completion[k]], token_logps[b + k][completion[b + k]]))
    model.train(was_training)
    return out


def load_or_precompute(cache_dir: Path, key: str, compute) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The cached reference log-probs for `key`, computing and saving them first when missing."""
    path = cache_dir / f"ref_logps-{key}.pt"
    if path.exists():
        return torch.load(path, weights_only=True)
    values = compute()
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(values, tmp)
    tmp.replace(path)  # atomic: a killed run never leaves a half-written cache
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
    return out.to(batch.completion.device)
