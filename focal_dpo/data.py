"""Preference rows -> token ids and per-token diff masks, with truncation, drop counting and a data report.

Masks come from the tokenizer's offset mapping (`codeflow.diff.spans_to_token_mask`), never from decoding and
re-encoding ids. Batching turns the diff masks into float weights for the chosen mask mode.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from codeflow.diff.fence import extract_code
from codeflow.diff.tokens import spans_to_token_mask
from focal_dpo.config import MASK_MODES


class BadRowError(ValueError):
    """A row that cannot be trained on; the message names the row."""


@dataclass
class TokenizedPair:
    row_id: str
    prompt_ids: list[int]
    chosen_ids: list[int]  # completion ids plus EOS
    rejected_ids: list[int]
    chosen_diff: list[bool]  # D+ tokens of the chosen completion (EOS never)
    rejected_diff: list[bool]  # D- tokens of the rejected completion (EOS never)
    rejected_had_diff: bool = True  # before truncation


@dataclass
class DataReport:
    rows_read: int = 0
    pairs_kept: int = 0
    bad_skipped: int = 0
    dropped: Counter = field(default_factory=Counter)
    rejected_masked_mean: float = 0.0
    length_percentiles: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"pairs read: {self.rows_read}, kept: {self.pairs_kept}, bad rows skipped: {self.bad_skipped}"]
        for reason, count in sorted(self.dropped.items()):
            out.append(f"dropped: {count} ({reason})")
        out.append(f"mean masked (D-) tokens per rejected completion: {self.rejected_masked_mean:.1f}")
        if self.length_percentiles:
            pct = ", ".join(f"{k} {v}" for k, v in self.length_percentiles.items())
            out.append(f"pair length in tokens (prompt + longer completion): {pct}")
        return out


def load_rows(path: str | Path) -> list[tuple[str, dict[str, Any]]]:
    """(where, row) for each row of a JSONL file, or of anything `datasets` loads (json, parquet, csv)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such data file")
    if path.suffix == ".jsonl":
        rows = []
        with path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append((f"{path}:{lineno}", json.loads(line)))
                except json.JSONDecodeError as err:
                    raise BadRowError(f"{path}:{lineno}: not valid JSON ({err})") from err
        return rows
    from datasets import load_dataset

    kind = {".json": "json", ".parquet": "parquet", ".csv": "csv"}.get(path.suffix, "json")
    dataset = load_dataset(kind, data_files=str(path), split="train")
    return [(f"{path} row {i}", dict(row)) for i, row in enumerate(dataset)]


def _check_spans(spans: Any, text: str, name: str, where: str) -> list[tuple[int, int]]:
    try:
        pairs = [(int(s), int(e)) for s, e in spans]
    except (TypeError, ValueError) as err:
        raise BadRowError(f"{where}: {name} must be a list of [start, end] pairs") from err
    for s, e in pairs:
        if not 0 <= s <= e <= len(text):
            raise BadRowError(f"{where}: {name} span [{s}, {e}) is outside the string (length {len(text)})")
    return _merge(sorted(pairs))


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for s, e in spans:
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(e, merged[-1][1]))
        else:
            merged.append((s, e))
    return merged


def widen_spans(text: str, spans: list[tuple[int, int]], lines: int) -> list[tuple[int, int]]:
    """Grow each span to whole lines plus `lines` lines of context on each side (`--context K`)."""
    if lines <= 0 or not spans:
        return spans
    starts = [0] + [i + 1 for i, ch in enumerate(text) if ch == "\n"]
    line_starts = np.asarray(starts)
    out = []
    for s, e in spans:
        first = max(int(np.searchsorted(line_starts, s, side="right")) - 1 - lines, 0)
        last = int(np.searchsorted(line_starts, max(e - 1, s), side="right")) - 1 + lines
        end = starts[last + 1] if last + 1 < len(starts) else len(text)
        out.append((starts[first], end))
    return _merge(out)


def diff_spans(
    chosen: str, rejected: str, context: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(chosen D+ spans, rejected D- spans) from the statement-level diff of the code in both answers."""
    from codeflow.diff import diff_code  # lazy: only rows without spans need the diff engine

    chosen_code, chosen_at = extract_code(chosen)
    rejected_code, rejected_at = extract_code(rejected)
    result = diff_code(rejected_code, chosen_code, granularity="statement", context=context)
    plus = [(s + chosen_at, e + chosen_at) for s, e in result.after_spans]
    minus = [(s + rejected_at, e + rejected_at) for s, e in result.before_spans]
    return _merge(sorted(plus)), _merge(sorted(minus))


def row_spans(
    row: dict[str, Any], where: str, context: int
) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """Validated (chosen_spans, rejected_spans) of a row: given ones (D- widened by `context` lines) or diffed."""
    for name in ("prompt", "chosen", "rejected"):
        if not isinstance(row.get(name), str):
            raise BadRowError(f"{where}: missing or non-string field {name!r}")
    for name in ("chosen", "rejected"):
        if not row[name]:
            raise BadRowError(f"{where}: empty {name} completion")
    if row.get("rejected_spans") is None:
        return diff_spans(row["chosen"], row["rejected"], context)
    chosen_spans = _check_spans(row.get("chosen_spans") or [], row["chosen"], "chosen_spans", where)
    rejected_spans = _check_spans(row["rejected_spans"], row["rejected"], "rejected_spans", where)
    return chosen_spans, widen_spans(row["rejected"], rejected_spans, context)


def prompt_ids(tokenizer: Any, prompt: str, chat_template: bool) -> list[int]:
    if chat_template:
        messages = [{"role": "user", "content": prompt}]
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
        return list(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    bos = tokenizer.bos_token_id
    return ([bos] if bos is not None and (not ids or ids[0] != bos) else []) + list(ids)


def completion_ids(tokenizer: Any, text: str, spans: list[tuple[int, int]]) -> tuple[list[int], list[bool]]:
    """Completion ids plus EOS, and the diff mask from the offset mapping (EOS is never a diff token)."""
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = spans_to_token_mask(enc["offset_mapping"], spans)
    return list(enc["input_ids"]) + [tokenizer.eos_token_id], list(mask) + [False]


def tokenize_row(
    row: dict[str, Any],
    where: str,
    tokenizer: Any,
    *,
    max_length: int,
    max_prompt_length: int,
    context: int = 0,
    chat_template: bool = False,
) -> TokenizedPair:
    """One row -> TokenizedPair; prompt cut from the left, completions from the right to `max_length` in all."""
    chosen_spans, rejected_spans = row_spans(row, where, context)
    prompt = prompt_ids(tokenizer, row["prompt"], chat_template)
    if not prompt:
        raise BadRowError(f"{where}: the prompt tokenizes to nothing, so no completion token can be scored")
    if max_prompt_length:
        prompt = prompt[-max_prompt_length:]  # keep the end of the prompt: it sits next to the answer
    chosen, chosen_diff = completion_ids(tokenizer, row["chosen"], chosen_spans)
    rejected, rejected_diff = completion_ids(tokenizer, row["rejected"], rejected_spans)
    room = max(max_length - len(prompt), 0)
    return TokenizedPair(
        row_id=str(row.get("id", where)),
        prompt_ids=prompt,
        chosen_ids=chosen[:room],
        rejected_ids=rejected[:room],
        chosen_diff=chosen_diff[:room],
        rejected_diff=rejected_diff[:room],
        rejected_had_diff=any(rejected_diff),
    )


def drop_reason(pair: TokenizedPair, mask_mode: str) -> str | None:
    """Why a pair must not be trained on, or None. A rejected side with no D- token would train on nothing."""
    if not pair.chosen_ids or not pair.rejected_ids:
        return "completion truncated away (prompt fills --max-length)"
    if mask_mode != "full" and not any(pair.rejected_diff):
        return (
            "no D- token after truncation" if pair.rejected_had_diff else "no D- span (diff found no change)"
        )
    return None


def build_pairs(
    rows: list[tuple[str, dict[str, Any]]],
    tokenizer: Any,
    *,
    mask_mode: str = "target",
    max_length: int = 1024,
    max_prompt_length: int = 512,
    context: int = 0,
    chat_template: bool = False,
    skip_bad: bool = False,
) -> tuple[list[TokenizedPair], DataReport]:
    """Tokenize every row; bad rows raise (or are counted with `skip_bad`), untrainable pairs are counted."""
    if mask_mode not in MASK_MODES:
        raise ValueError(f"unknown mask mode {mask_mode!r}: use one of {', '.join(MASK_MODES)}")
    report = DataReport(rows_read=len(rows))
    pairs = []
    for where, row in rows:
        try:
            if not isinstance(row, dict):
                raise BadRowError(f"{where}: a row must be a JSON object")
            pair = tokenize_row(
                row,
                where,
                tokenizer,
                max_length=max_length,
                max_prompt_length=max_prompt_length,
                context=context,
                chat_template=chat_template,
            )
        except BadRowError:
            if not skip_bad:
                raise
            report.bad_skipped += 1
            continue
        reason = drop_reason(pair, mask_mode)
        if reason:
            report.dropped[reason] += 1
            continue
        pairs.append(pair)
    report.pairs_kept = len(pairs)
    if pairs:
        report.rejected_masked_mean = float(np.mean([sum(p.rejected_diff) for p in pairs]))
        lengths = np.asarray([len(p.prompt_ids) + max(len(p.chosen_ids), len(p.rejected_ids)) for p in pairs])
        report.length_percentiles = {
            f"p{q}": int(np.percentile(lengths, q, method="higher")) for q in (50, 90, 99)
        } | {"max": int(lengths.max())}
    return pairs, report


@dataclass
class PairBatch:
    """A micro-batch: chosen rows [0, B), rejected rows [B, 2B); per-label tensors are [2B, T-1]."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    weights: torch.Tensor  # float DPO weight per label position
    completion: torch.Tensor  # bool: every completion label (chosen rows drive the NLL)
    pair_index: list[int]  # index of each pair in the dataset (the key of the reference cache)
    num_pairs: int

    def to(self, device: torch.device) -> PairBatch:
        return PairBatch(
            self.input_ids.to(device),
            self.attention_mask.to(device),
            self.weights.to(device),
            self.completion.to(device),
            self.pair_index,
            self.num_pairs,
        )

    @property
    def nll_mask(self) -> torch.Tensor:
        mask = self.completion.clone()
        mask[self.num_pairs :] = False
        return mask


def side_weights(diff: list[bool], mode: str, chosen: bool) -> list[float]:
    """Per-token DPO weight of one completion: the core primitive is a float so soft weightings can plug in."""
    if mode == "full" or (mode == "target" and chosen):
        return [1.0] * len(diff)
    return [1.0 if d else 0.0 for d in diff]


def collate(pairs: list[TokenizedPair], indices: list[int], mask_mode: str, pad_id: int) -> PairBatch:
    """Right-padded batch; in `hybrid` mode the first half of the batch is `full`, the rest `target`."""
    b = len(indices)
    sides = [(pairs[i].chosen_ids, pairs[i].chosen_diff, True, k) for k, i in enumerate(indices)]
    sides += [(pairs[i].rejected_ids, pairs[i].rejected_diff, False, k) for k, i in enumerate(indices)]
    width = max(len(pairs[indices[k]].prompt_ids) + len(ids) for ids, _, _, k in sides)
    input_ids = torch.full((2 * b, width), pad_id, dtype=torch.long)
    attention = torch.zeros((2 * b, width), dtype=torch.long)
    weights = torch.zeros((2 * b, width - 1), dtype=torch.float32)
    completion = torch.zeros((2 * b, width - 1), dtype=torch.bool)
    for row, (ids, diff, is_chosen, k) in enumerate(sides):
        prompt = pairs[indices[k]].prompt_ids
        mode = mask_mode if mask_mode != "hybrid" else ("full" if k < (b + 1) // 2 else "target")
        seq = prompt + ids
        input_ids[row, : len(seq)] = torch.tensor(seq)
        attention[row, : len(seq)] = 1
        # label column j predicts seq[j + 1]: completion token i sits at column len(prompt) + i - 1
        first = len(prompt) - 1
        weights[row, first : first + len(ids)] = torch.tensor(side_weights(diff, mode, is_chosen))
        completion[row, first : first + len(ids)] = True
    return PairBatch(input_ids, attention, weights, completion, list(indices), b)
