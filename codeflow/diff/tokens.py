"""Character spans -> token masks, from a Hugging Face fast tokenizer's offset mapping."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def spans_to_token_mask(offsets: Sequence[Sequence[int]], spans: Sequence[Sequence[int]]) -> list[bool]:
    """True for each token whose character range [s, e) overlaps one of `spans`.

    `offsets` come from `tokenizer(..., return_offsets_mapping=True)`; `spans` are sorted, non-overlapping
    (start, end) character offsets. Zero-width tokens, the (0, 0) of special tokens included, are never in
    the mask. Byte-level BPE gives the pieces of one character (an emoji is 4 tokens) the same range, so
    all of them are in the mask together.
    """
    if len(offsets) == 0:
        return []
    off = np.asarray(offsets, dtype=np.int64).reshape(-1, 2)
    if len(spans) == 0:
        return [False] * len(off)
    sp = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    starts, ends = off[:, 0], off[:, 1]
    # first span that ends after the token starts; the token overlaps it iff that span starts before the token ends
    idx = np.searchsorted(sp[:, 1], starts, side="right")
    inside = idx < len(sp)
    span_start = sp[np.minimum(idx, len(sp) - 1), 0]
    mask = inside & (span_start < ends) & (ends > starts)
    return mask.tolist()
