"""Preference rows -> tokenized pairs (in parallel, cached on disk) -> padded micro-batches.

`build_pairs` tokenizes with batched tokenizer calls, in a process pool for large files; `cached_pairs` keeps its
result under a fingerprint of the data file, the tokenizer and the settings, so a second run or a `--resume`
starts at once. Batching turns the diff masks into float weights for the chosen mask mode.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from focal_dpo.config import MASK_MODES
from focal_dpo.tokenize import (
    BadRowError,
    TextEncoder,
    TokenizedPair,
    TokenizeSettings,
    init_worker,
    render_prompt,
    tokenize_chunk,
    tokenize_rows,
    widen_spans,
)

__all__ = ["BadRowError", "DataReport", "PairBatch", "TokenizedPair", "build_pairs", "cached_pairs",
           "collate", "load_rows", "widen_spans"]  # fmt: skip

PARALLEL_MIN_ROWS = 4096  # below this a process pool costs more to start than it saves
CACHE_VERSION = 1


@dataclass
class DataReport:
    rows_read: int = 0
    pairs_kept: int = 0
    bad_skipped: int = 0
    dropped: Counter = field(default_factory=Counter)
    rejected_masked_mean: float = 0.0
    length_percentiles: dict[str, int] = field(default_factory=dict)
    bad_examples: list[str] = field(default_factory=list)  # the first few skipped rows' messages

    def lines(self) -> list[str]:
        out = [f"pairs read: {self.rows_read}, kept: {self.pairs_kept}, bad rows skipped: {self.bad_skipped}"]
        out += [f"skipped: {message}" for message in self.bad_examples]
        for reason, count in sorted(self.dropped.items()):
            out.append(f"dropped: {count} ({reason})")
        out.append(f"mean masked (D-) tokens per rejected completion: {self.rejected_masked_mean:.1f}")
        if self.length_percentiles:
            pct = ", ".join(f"{k} {v}" for k, v in self.length_percentiles.items())
            out.append(f"pair length in tokens (prompt + longer completion): {pct}")
        return out


def data_path(data: str | Path) -> Path:
    """`data` as a Path, or the error naming it: missing, or a directory."""
    path = Path(data)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such data file")
    if path.is_dir():
        raise IsADirectoryError(
            f"{path}: is a directory; --data takes a .jsonl (or .json/.parquet/.csv) file"
        )
    return path


def load_rows(path: str | Path, skip_bad: bool = False) -> list[tuple[str, Any]]:
    """(where, row) for each row of a JSONL file, or of anything `datasets` loads (json, parquet, csv).

    A line that is not valid JSON raises BadRowError naming it; with `skip_bad` it is kept as (where, the
    error) so `build_pairs` counts it with the other bad rows.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such data file")
    if path.is_dir():
        raise IsADirectoryError(
            f"{path}: is a directory; --data takes a .jsonl (or .json/.parquet/.csv) file"
        )
    if path.suffix == ".jsonl":
        rows: list[tuple[str, Any]] = []
        with path.open(encoding="utf-8", errors="replace") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                where = f"{path}:{lineno}"
                try:
                    rows.append((where, json.loads(line)))
                except json.JSONDecodeError as err:
                    bad = BadRowError(f"{where}: not valid JSON ({err.msg} at column {err.colno})")
                    if not skip_bad:
                        raise bad from err
                    rows.append((where, bad))
        return rows
    from datasets import load_dataset

    kind = {".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix, "json")
    dataset = load_dataset(kind, data_files=str(path), split="train")
    return [(f"{path} row {i}", dict(row)) for i, row in enumerate(dataset)]


def drop_reason(pair: TokenizedPair, mask_mode: str, sft: bool = False) -> str | None:
    """Why a pair must not be trained on, or None. A rejected side with no D- token would train on nothing."""
    if sft:
        return None if len(pair.chosen_ids) else "completion truncated away (prompt fills --max-length)"
    if not len(pair.chosen_ids) or not len(pair.rejected_ids):
        return "completion truncated away (prompt fills --max-length)"
    if mask_mode != "full" and not pair.rejected_diff.any():
        return (
            "no D- token after truncation" if pair.rejected_had_diff else "no D- span (diff found no change)"
        )
    return None


def build_pairs(
    rows: list[tuple[str, Any]],
    tokenizer: Any,
    *,
    mask_mode: str = "target",
    max_length: int = 1024,
    max_prompt_length: int = 512,
    context: int = 0,
    chat_template: bool = False,
    skip_bad: bool = False,
    sft: bool = False,
    workers: int = 0,
) -> tuple[list[TokenizedPair], DataReport]:
    """Tokenize every row; bad rows raise (or are counted with `skip_bad`), untrainable pairs are counted.

    `workers`: processes for tokenization (0: one per CPU, up to 8, for files of PARALLEL_MIN_ROWS rows or
    more; 1: this process only). The result is the same either way.
    """
    if mask_mode not in MASK_MODES:
        raise ValueError(f"unknown mask mode {mask_mode!r}: use one of {', '.join(MASK_MODES)}")
    settings = TokenizeSettings(mask_mode, max_length, max_prompt_length, context, chat_template, sft)
    encoder = TextEncoder(tokenizer)
    if chat_template:
        empty = encoder.encode([render_prompt(tokenizer, "")])[0][0]
        prompts = [render_prompt(tokenizer, r["prompt"]) if _has_text_prompt(r) else None for _, r in rows]
    else:
        empty, prompts = list(encoder.prefix_ids), [None] * len(rows)
    items = [(where, row, prompt) for (where, row), prompt in zip(rows, prompts, strict=True)]

    if workers == 0:
        workers = min(os.cpu_count() or 1, 8) if len(rows) >= PARALLEL_MIN_ROWS else 1
    results = None
    if workers > 1 and encoder.parallel_safe:
        size = max(256, min(4096, len(items) // (workers * 4) + 1))
        chunks = [items[i : i + size] for i in range(0, len(items), size)]
        # spawn: a fresh interpreter per worker, never a fork of a process holding torch or tokenizer threads
        context_ = multiprocessing.get_context("spawn")
        try:
            with ProcessPoolExecutor(workers, context_, init_worker, (encoder, settings, empty)) as pool:
                results = [r for chunk in pool.map(tokenize_chunk, chunks) for r in chunk]
        except BrokenProcessPool:  # e.g. a calling script without `if __name__ == "__main__":`
            results = None
    if results is None:
        results = tokenize_rows(items, encoder, settings, empty)

    report = DataReport(rows_read=len(rows))
    pairs = []
    for result in results:
        if isinstance(result, BadRowError):
            if not skip_bad:
                raise result
            report.bad_skipped += 1
            if len(report.bad_examples) < 3:
                report.bad_examples.append(str(result))
            continue
        reason = drop_reason(result, mask_mode, sft)
        if reason:
            report.dropped[reason] += 1
            continue
        pairs.append(result)
    report.pairs_kept = len(pairs)
    if pairs:
        if not sft:
            report.rejected_masked_mean = float(np.mean([p.rejected_diff.sum() for p in pairs]))
        lengths = np.asarray([len(p.prompt_ids) + max(len(p.chosen_ids), len(p.rejected_ids)) for p in pairs])
        report.length_percentiles = {
            f"p{q}": int(np.percentile(lengths, q, method="higher")) for q in (50, 90, 99)
        } | {"max": int(lengths.max())}
    return pairs, report


def _has_text_prompt(row: Any) -> bool:
    return isinstance(row, dict) and isinstance(row.get("prompt", ""), str)


# ---- the on-disk cache of tokenized pairs


def file_digest(path: str | Path, digest: Any = None) -> Any:
    """sha256 over every byte of the file (8 MiB reads)."""
    digest = digest or hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(8 << 20):
            digest.update(block)
    return digest


def pairs_cache_key(data: str | Path, tokenizer: Any, settings: dict[str, Any]) -> str:
    """Fingerprint of the data file's bytes, the tokenizer (vocabulary, merges, special tokens, chat template)
    and every setting that changes the pairs."""
    digest = hashlib.sha256(f"pairs v{CACHE_VERSION}".encode())
    file_digest(data, digest)
    encoder = TextEncoder(tokenizer)
    backend = encoder.json or repr(sorted(tokenizer.get_vocab().items()))
    chat = getattr(tokenizer, "chat_template", None) or ""
    digest.update(f"{backend}\0{encoder.prefix_ids}\0{encoder.eos_id}\0{chat}".encode())
    digest.update(json.dumps(settings, sort_keys=True).encode())
    return digest.hexdigest()[:24]


_FIELDS = ("prompt_ids", "chosen_ids", "rejected_ids", "chosen_diff", "rejected_diff")


def save_pairs(path: Path, pairs: list[TokenizedPair], report: DataReport) -> None:
    """One .npz: each field's arrays concatenated with their lengths, plus row ids and the report (atomic)."""
    arrays: dict[str, np.ndarray] = {}
    for name in _FIELDS:
        parts = [getattr(p, name) for p in pairs]
        arrays[name] = np.concatenate(parts) if parts else np.zeros(0)
        arrays[name + "_len"] = np.asarray([len(x) for x in parts], dtype=np.int64)
    arrays["had_diff"] = np.asarray([p.rejected_had_diff for p in pairs], dtype=bool)
    meta = {"row_ids": [p.row_id for p in pairs], "report": asdict(report)}
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        np.savez(f, **arrays)
    tmp.replace(path)


def load_pairs(path: Path) -> tuple[list[TokenizedPair], DataReport]:
    with np.load(path) as data:
        meta = json.loads(data["meta"].tobytes())
        split = {}
        for name in _FIELDS:
            lengths = data[name + "_len"]
            split[name] = np.split(data[name], np.cumsum(lengths)[:-1]) if len(lengths) else []
        had_diff = data["had_diff"]
    pairs = [
        TokenizedPair(row_id, *(split[name][i] for name in _FIELDS), rejected_had_diff=bool(had_diff[i]))
        for i, row_id in enumerate(meta["row_ids"])
    ]
    report_fields = meta["report"]
    report = DataReport(**(report_fields | {"dropped": Counter(report_fields["dropped"])}))
    return pairs, report


def cached_pairs(
    data: str | Path, tokenizer: Any, cache_dir: str | Path | None, **settings: Any
) -> tuple[list[TokenizedPair], DataReport, bool]:
    """`build_pairs(load_rows(data), tokenizer, **settings)`, read from `cache_dir` when an identical run
    built it before; returns (pairs, report, whether the cache was used)."""
    workers = settings.pop("workers", 0)
    if cache_dir is None:
        pairs, report = build_pairs(load_rows(data, settings.get("skip_bad", False)), tokenizer, workers=workers,
                                    **settings)  # fmt: skip
        return pairs, report, False
    path = data_path(data)
    cache = Path(cache_dir) / f"pairs-{pairs_cache_key(path, tokenizer, settings)}.npz"
    if cache.exists():
        pairs, report = load_pairs(cache)
        return pairs, report, True
    rows = load_rows(path, settings.get("skip_bad", False))
    pairs, report = build_pairs(rows, tokenizer, workers=workers, **settings)
    save_pairs(cache, pairs, report)
    return pairs, report, False


# ---- batches


@dataclass
class PairBatch:
    """A micro-batch: chosen rows [0, B), rejected rows [B, 2B) (none for SFT); per-label tensors are
    [rows, T-1]."""

    input_ids: Any  # torch.Tensor [rows, T]
    attention_mask: Any
    weights: Any  # float DPO weight per label position
    completion: Any  # bool: every completion label (chosen rows drive the NLL)
    pair_index: list[int]  # index of each pair in the dataset (the key of the reference cache)
    num_pairs: int

    def to(self, device: Any) -> PairBatch:
        return PairBatch(
            self.input_ids.to(device, non_blocking=True),
            self.attention_mask.to(device, non_blocking=True),
            self.weights.to(device, non_blocking=True),
            self.completion.to(device, non_blocking=True),
            self.pair_index,
            self.num_pairs,
        )

    @property
    def has_rejected(self) -> bool:
        return self.input_ids.shape[0] == 2 * self.num_pairs

    @property
    def nll_mask(self) -> Any:
        mask = self.completion.clone()
        mask[self.num_pairs :] = False
        return mask


def side_weights(diff: np.ndarray, mode: str, chosen: bool) -> np.ndarray:
    """Per-token DPO weight of one completion: the core primitive is a float so soft weightings can plug in."""
    if mode == "full" or (mode == "target" and chosen):
        return np.ones(len(diff), dtype=np.float32)
    return diff.astype(np.float32)


def collate(
    pairs: list[TokenizedPair], indices: list[int], mask_mode: str, pad_id: int, rejected: bool = True
) -> PairBatch:
    """Right-padded batch; in `hybrid` mode the first half of the batch is `full`, the rest `target`.
    `rejected=False` (SFT) leaves the rejected rows out."""
    import torch

    b = len(indices)
    sides = [(pairs[i].chosen_ids, pairs[i].chosen_diff, True, k) for k, i in enumerate(indices)]
    if rejected:
        sides += [(pairs[i].rejected_ids, pairs[i].rejected_diff, False, k) for k, i in enumerate(indices)]
    width = max(len(pairs[indices[k]].prompt_ids) + len(ids) for ids, _, _, k in sides)
    input_ids = np.full((len(sides), width), pad_id, dtype=np.int64)
    attention = np.zeros((len(sides), width), dtype=np.int64)
    weights = np.zeros((len(sides), width - 1), dtype=np.float32)
    completion = np.zeros((len(sides), width - 1), dtype=bool)
    for row, (ids, diff, is_chosen, k) in enumerate(sides):
        prompt = pairs[indices[k]].prompt_ids
        mode = mask_mode if mask_mode != "hybrid" else ("full" if k < (b + 1) // 2 else "target")
        n = len(prompt) + len(ids)
        input_ids[row, : len(prompt)] = prompt
        input_ids[row, len(prompt) : n] = ids
        attention[row, :n] = 1
        # label column j predicts seq[j + 1]: completion token i sits at column len(prompt) + i - 1
        first = len(prompt) - 1
        weights[row, first : first + len(ids)] = side_weights(diff, mode, is_chosen)
        completion[row, first : first + len(ids)] = True
    return PairBatch(
        torch.from_numpy(input_ids), torch.from_numpy(attention), torch.from_numpy(weights),
        torch.from_numpy(completion), list(indices), b,
    )  # fmt: skip
