"""Match two leaf sequences with an exact longest common subsequence; report the leaves outside it."""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from rapidfuzz.distance import Indel


@dataclass
class LeafMatch:
    """The changed (unmatched) items of each side, ascending, and each item's partner on the other side.

    `before_partner[i]` is the index in `after` matched to `before[i]`, or -1 when `before[i]` changed.
    """

    before_changed: list[int]
    after_changed: list[int]
    before_partner: list[int]
    after_partner: list[int]


def match_sequences(before: Sequence[Hashable], after: Sequence[Hashable]) -> LeafMatch:
    """Items of `before` and `after` that are outside one longest common subsequence.

    rapidfuzz's Indel distance is an exact LCS (unlike difflib's autojunk, which skips frequent items on
    sequences over 200 items). Keys are interned to small ints first: rapidfuzz hashes arbitrary objects
    slower than ints.
    """
    if len(before) == len(after) and list(before) == list(after):
        return LeafMatch([], [], list(range(len(before))), list(range(len(after))))
    ids: dict[Hashable, int] = {}
    a = [ids.setdefault(k, len(ids)) for k in before]
    b = [ids.setdefault(k, len(ids)) for k in after]
    before_partner = [-1] * len(a)
    after_partner = [-1] * len(b)
    before_changed: list[int] = []
    after_changed: list[int] = []
    for tag, a0, a1, b0, b1 in Indel.opcodes(a, b):
        if tag == "equal":
            before_partner[a0:a1] = range(b0, b1)
            after_partner[b0:b1] = range(a0, a1)
        else:
            before_changed.extend(range(a0, a1))
            after_changed.extend(range(b0, b1))
    return LeafMatch(before_changed, after_changed, before_partner, after_partner)
