"""Character spans -> token masks, from a Hugging Face fast tokenizer's offset mapping."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence


def spans_to_token_mask(offsets: Sequence[Sequence[int]], spans: Sequence[Sequence[int]]) -> list[bool]:
    """True for each token whose character range [s, e) overlaps one of `spans`.

    `offsets` come from `tokenizer(..., return_offsets_mapping=True)` (a list of pairs, or an (n, 2) array);
    `spans` are sorted, non-overlapping (start, end) character offsets. Zero-width tokens, the (0, 0) of special
    tokens included, are never in the mask. Byte-level BPE gives the pieces of one character (an emoji is 4
    tokens) the same range, so all of them are in the mask together.
    """
    if hasattr(offsets, "tolist"):  # numpy arrays and tensors
        offsets = offsets.tolist()
    mask = [False] * len(offsets)
    if not offsets or not spans:
        return mask
    starts, ends = (list(column) for column in zip(*offsets, strict=True))
    if starts == sorted(starts) and ends == sorted(ends):
        # the usual case: tokens in text order, so each span covers one contiguous run of tokens
        for span_start, span_end in spans:
            for i in range(bisect_right(ends, span_start), bisect_left(starts, span_end)):
                mask[i] = ends[i] > starts[i]
        return mask
    # special tokens in the middle (a (0, 0) after text tokens): test each token on its own
    span_starts = [s for s, _ in spans]
    span_ends = [e for _, e in spans]
    for i, (start, end) in enumerate(offsets):
        # the first span that ends after the token starts overlaps it iff it also starts before the token ends
        k = bisect_right(span_ends, start)
        mask[i] = end > start and k < len(spans) and span_starts[k] < end
    return mask
