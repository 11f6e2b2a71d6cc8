"""Match the leaves of two sources: whole statements first, then leaves only inside statements that differ.

1. Each statement (a simple statement, or a compound statement's header) is keyed by its kind, depth and
   text, and an exact longest common subsequence of those keys anchors the unchanged statements; leaves
   are collected only for the rest and their neighbours. Among the rest, an LCS of the statements' leaf
   keys anchors those that differ only in layout or comments.
2. A run of inserted or deleted units slides, among equally long alignments, to where it is a sequence of
   whole statements: a guard `if x is None: return` inserted above `if x > 0: return` is the guard, not
   `return` + `if`.
3. Between two anchored statements, similar statements are paired in order (maximising the summed dice
   similarity of their non-punctuation leaves, each pair at least `PAIR_SIMILARITY`), and leaves are matched
   by an exact LCS inside each pair only. Unpaired statements are wholly inserted or deleted, so a lone `(`
   or `.` never anchors a match across statements.
4. A stretch too large to pair statement by statement (more than `PAIR_LIMIT` candidate pairs) falls back to
   one LCS of its leaves, and drops the matches between two statements that share only punctuation.

rapidfuzz's Indel distance is an exact LCS (unlike difflib's autojunk, which skips frequent items on
sequences over 200 items). Keys are interned to small ints first: rapidfuzz hashes arbitrary objects slower
than ints.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from itertools import count

from rapidfuzz.distance import Indel
from rapidfuzz.process import cdist

from codeflow.diff.parse import ParsedCode

# Leaves that carry no content of their own: they say where things are, not what they are.
PUNCTUATION = frozenset(
    {"(", ")", "[", "]", "{", "}", ",", ".", ":", ";", "->", "string_start", "string_end", "\\"}
)
PAIR_SIMILARITY = 0.5  # GumTree's threshold for pairing two containers by their common descendants
PAIR_LIMIT = 2500


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
    """Items of `before` and `after` that are outside one longest common subsequence."""
    if len(before) == len(after) and list(before) == list(after):
        return LeafMatch([], [], list(range(len(before))), list(range(len(after))))
    a, b = _interned(before, after)
    before_partner = [-1] * len(a)
    after_partner = [-1] * len(b)
    _lcs_into(a, b, 0, 0, before_partner, after_partner)
    return _leaf_match(before_partner, after_partner)


def match_code(before: ParsedCode, after: ParsedCode) -> LeafMatch:
    """Match the code leaves of two parsed sources, statements first (see the module docstring).

    Collects the leaves of the statements it needs: those in a stretch that differs, and the equal ones on
    either side of it (where an insertion's neighbours and anchors are).
    """
    keys_a, keys_b = before.statement_keys, after.statement_keys
    if keys_a == keys_b:  # the same statements: no code leaf changed
        before.collect_leaves([])
        after.collect_leaves([])
        return LeafMatch([], [], [], [])
    ua, ub = _interned(keys_a, keys_b)
    blocks = _stretches(Indel.opcodes(ua, ub).as_list())
    _slide(blocks, ua, ub, before.statement_depths, after.statement_depths)

    # the leaves of the statements that differ, and the edge leaves of the equal ones around them
    wanted_a, wanted_b, edges_a, edges_b = set(), set(), set(), set()
    for equal, a0, a1, b0, b1 in blocks:
        if not equal:
            wanted_a.update(range(a0, a1))
            wanted_b.update(range(b0, b1))
            edges_a.update(k for k in (a0 - 1, a1) if 0 <= k < len(ua))
            edges_b.update(k for k in (b0 - 1, b1) if 0 <= k < len(ub))
    before.collect_leaves(sorted(wanted_a | edges_a), edges_a - wanted_a)
    after.collect_leaves(sorted(wanted_b | edges_b), edges_b - wanted_b)
    ids: dict[tuple[str, bytes, int], int] = {}
    a, b = _interned(before.keys, after.keys, ids)
    punctuation = {i for key, i in ids.items() if key[0] in PUNCTUATION}
    before_partner = [-1] * len(a)
    after_partner = [-1] * len(b)
    ranges_a, ranges_b = before.leaf_ranges, after.leaf_ranges

    for equal, a0, a1, b0, b1 in blocks:
        if equal:  # equal statements have equal leaves: matched one to one where they were collected
            for k in {0, a1 - a0 - 1}:  # only the edges of an equal block are collected (the neighbours)
                if a0 + k in ranges_a:
                    (s, e), (t, _) = ranges_a[a0 + k], ranges_b[b0 + k]
                    before_partner[s:e] = range(t, t + e - s)
                    after_partner[t : t + e - s] = range(s, e)
        elif a0 < a1 and b0 < b1:
            _match_stretch(
                before,
                after,
                a,
                b,
                [ranges_a[k] for k in range(a0, a1)],
                [ranges_b[k] for k in range(b0, b1)],
                punctuation,
                before_partner,
                after_partner,
            )
    return _leaf_match(before_partner, after_partner)


def _interned(
    before: Sequence[Hashable], after: Sequence[Hashable], ids: dict | None = None
) -> tuple[list[int], list[int]]:
    """Each key as a small int, equal ints for equal keys (`ids` gets the table).

    The ints are not consecutive (a key seen before keeps its id, and its counter value is skipped): only
    their equality matters, and `dict.setdefault` mapped over the keys with a counter runs in C.
    """
    ids = {} if ids is None else ids
    counter = count()
    return list(map(ids.setdefault, before, counter)), list(map(ids.setdefault, after, counter))


def _match_stretch(
    before: ParsedCode,
    after: ParsedCode,
    a: list[int],
    b: list[int],
    units_a: list[tuple[int, int]],
    units_b: list[tuple[int, int]],
    punctuation: set[int],
    before_partner: list[int],
    after_partner: list[int],
) -> None:
    """Match the leaves of a stretch of statements that differ in text between two equal ones.

    Statements whose text differs only in layout or comments have equal leaves: an LCS of the statements'
    leaf keys anchors those first; the rest are paired by similarity (or, in a stretch too large to pair,
    matched by one LCS of their leaves).
    """
    unit_ids: dict[tuple[int, ...], int] = {}
    ua = [unit_ids.setdefault(tuple(a[s:e]), len(unit_ids)) for s, e in units_a]
    ub = [unit_ids.setdefault(tuple(b[s:e]), len(unit_ids)) for s, e in units_b]
    for equal, a0, a1, b0, b1 in _stretches(Indel.opcodes(ua, ub).as_list()):
        if a0 == a1 or b0 == b1:
            continue  # wholly inserted or deleted statements: their leaves stay changed
        sa, ea, sb, eb = units_a[a0][0], units_a[a1 - 1][1], units_b[b0][0], units_b[b1 - 1][1]
        if equal:
            before_partner[sa:ea] = range(sb, eb)
            after_partner[sb:eb] = range(sa, ea)
        elif (a1 - a0) * (b1 - b0) > PAIR_LIMIT:
            _lcs_into(a[sa:ea], b[sb:eb], sa, sb, before_partner, after_partner)
            _drop_punctuation_only_links(before, after, a, sa, ea, punctuation, before_partner, after_partner)
        else:
            kinds_a = [_statement_kind(before, s) for s, _ in units_a[a0:a1]]
            kinds_b = [_statement_kind(after, t) for t, _ in units_b[b0:b1]]
            pairs = _pair_statements(a, b, units_a[a0:a1], units_b[b0:b1], kinds_a, kinds_b, punctuation)
            for unit_a, unit_b in pairs:
                _match_statement_pair(before, after, a, b, unit_a, unit_b, before_partner, after_partner)


def _statement_kind(parsed: ParsedCode, leaf: int) -> tuple[int, int]:
    """(kind id, depth) of the statement a leaf belongs to."""
    key = parsed.statement_keys[parsed.statement_of[leaf]]
    return key[0], key[1]


def _match_statement_pair(
    before: ParsedCode,
    after: ParsedCode,
    a: list[int],
    b: list[int],
    unit_a: tuple[int, int],
    unit_b: tuple[int, int],
    before_partner: list[int],
    after_partner: list[int],
) -> None:
    """Match the leaves of two paired statements; over several lines, unchanged lines first.

    Inside a statement spread over lines (a dict literal, a call with one argument a line), an LCS of its
    lines' leaf keys anchors the lines that stand unchanged, and leaves are matched by LCS only between
    them, so a deleted entry `"+": "x",` above an equal `"-": "y",` is that one line, not quotes and colons
    picked from both.
    """
    (s, e), (t, u) = unit_a, unit_b
    lines_a, lines_b = _line_units(before, s, e), _line_units(after, t, u)
    if len(lines_a) == 1 or len(lines_b) == 1:
        _lcs_into(a[s:e], b[t:u], s, t, before_partner, after_partner)
        return
    line_ids: dict[tuple[int, ...], int] = {}
    la = [line_ids.setdefault(tuple(a[i:j]), len(line_ids)) for i, j in lines_a]
    lb = [line_ids.setdefault(tuple(b[i:j]), len(line_ids)) for i, j in lines_b]
    for equal, a0, a1, b0, b1 in _stretches(Indel.opcodes(la, lb).as_list()):
        if a0 == a1 or b0 == b1:
            continue
        sa, ea, sb, eb = lines_a[a0][0], lines_a[a1 - 1][1], lines_b[b0][0], lines_b[b1 - 1][1]
        if equal:
            before_partner[sa:ea] = range(sb, eb)
            after_partner[sb:eb] = range(sa, ea)
        else:
            _lcs_into(a[sa:ea], b[sb:eb], sa, sb, before_partner, after_partner)


def _line_units(parsed: ParsedCode, start: int, end: int) -> list[tuple[int, int]]:
    """(first leaf, end leaf) of the runs of leaves start..end-1 that begin on the same line."""
    line_starts, starts = parsed.line_starts, parsed.starts
    if start == end:
        return []
    first_line = bisect_right(line_starts, starts[start])
    if first_line == bisect_right(line_starts, starts[end - 1]):
        return [(start, end)]
    units = []
    unit_start, unit_line = start, first_line
    for i in range(start + 1, end):
        line = bisect_right(line_starts, starts[i])
        if line != unit_line:
            units.append((unit_start, i))
            unit_start, unit_line = i, line
    units.append((unit_start, end))
    return units


def _leaf_match(before_partner: list[int], after_partner: list[int]) -> LeafMatch:
    return LeafMatch(
        [i for i, p in enumerate(before_partner) if p < 0],
        [j for j, p in enumerate(after_partner) if p < 0],
        before_partner,
        after_partner,
    )


def _lcs_into(
    a: Sequence[int],
    b: Sequence[int],
    a_at: int,
    b_at: int,
    before_partner: list[int],
    after_partner: list[int],
) -> None:
    """Record an exact LCS of a and b (offsets a_at, b_at into the whole sequences) as partners."""
    if len(a) == len(b) and a == b:
        before_partner[a_at : a_at + len(a)] = range(b_at, b_at + len(b))
        after_partner[b_at : b_at + len(b)] = range(a_at, a_at + len(a))
        return
    for tag, a0, a1, b0, b1 in Indel.opcodes(a, b).as_list():
        if tag == "equal":
            before_partner[a_at + a0 : a_at + a1] = range(b_at + b0, b_at + b1)
            after_partner[b_at + b0 : b_at + b1] = range(a_at + a0, a_at + a1)


def _stretches(opcodes: list[tuple[str, int, int, int, int]]) -> list[list]:
    """[equal, a0, a1, b0, b1] blocks: equal runs, and the changes between them merged into one stretch."""
    blocks: list[list] = []
    for tag, a0, a1, b0, b1 in opcodes:
        equal = tag == "equal"
        if blocks and not equal and not blocks[-1][0]:
            blocks[-1][2], blocks[-1][4] = a1, b1
        else:
            blocks.append([equal, a0, a1, b0, b1])
    return blocks


def _whole_statements(depths: list[int], start: int, end: int) -> bool:
    """Units start..end-1 are whole statements: none shallower than the first, and no block left open."""
    first = depths[start]
    return min(depths[start:end]) == first and (end == len(depths) or depths[end] <= first)


def _slide(
    blocks: list[list], ua: list[int], ub: list[int], depths_a: list[int], depths_b: list[int]
) -> None:
    """Move each purely inserted or deleted run between two equal blocks to a whole-statement position.

    Shifting a run by one unit keeps the alignment equally long when the unit it gives up equals the unit it
    takes in; among those positions the first that covers whole statements wins, nearest the original.
    """
    for index in range(1, len(blocks) - 1):
        before_block, block, after_block = blocks[index - 1], blocks[index], blocks[index + 1]
        if not (before_block[0] and after_block[0]) or block[0]:
            continue
        _, a0, a1, b0, b1 = block
        if a0 == a1:  # an insertion: the run lives on the after side
            keys, depths, start, end, low, high = ub, depths_b, b0, b1, before_block[3], after_block[4]
        elif b0 == b1:  # a deletion
            keys, depths, start, end, low, high = ua, depths_a, a0, a1, before_block[1], after_block[2]
        else:
            continue
        if _whole_statements(depths, start, end):
            continue
        shifts = []
        k = 1
        while start - k >= low and keys[start - k] == keys[end - k]:
            shifts.append(-k)
            k += 1
        k = 1
        while end + k - 1 < high and keys[start + k - 1] == keys[end + k - 1]:
            shifts.append(k)
            k += 1
        whole = [d for d in shifts if _whole_statements(depths, start + d, end + d)]
        if not whole:
            continue
        shift = min(whole, key=abs)
        # the equal blocks on both sides grow or shrink by the shift, on both sequences
        before_block[2] += shift
        before_block[4] += shift
        block[1:] = [a0 + shift, a1 + shift, b0 + shift, b1 + shift]
        after_block[1] += shift
        after_block[3] += shift


def _pair_statements(
    a: list[int],
    b: list[int],
    units_a: list[tuple[int, int]],
    units_b: list[tuple[int, int]],
    kinds_a: list[tuple[int, int]],
    kinds_b: list[tuple[int, int]],
    punctuation: set[int],
) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Pairs of similar units, in order.

    First an alignment (by DP) maximising the summed similarity of pairs at least `PAIR_SIMILARITY` alike;
    then, where exactly one unit on each side is left between two pairs, those two are paired when they are
    the same kind of statement at the same depth (`kinds_*`) and share some content: a statement rewritten
    in place (`expected = [...]` with every entry new) keeps its unchanged part.
    """
    content_a = [[x for x in a[s:e] if x not in punctuation] or a[s:e] for s, e in units_a]
    content_b = [[x for x in b[s:e] if x not in punctuation] or b[s:e] for s, e in units_b]
    rows, columns = len(units_a), len(units_b)
    if rows == columns == 1:
        similarity = [[Indel.normalized_similarity(content_a[0], content_b[0])]]
        kept = [(0, 0)] if similarity[0][0] >= PAIR_SIMILARITY else []
    else:
        similarity = cdist(content_a, content_b, scorer=Indel.normalized_similarity).tolist()
        kept = _best_alignment(similarity, rows, columns)
    # the gaps between aligned pairs (and before the first, after the last): pair a lone unit on each side
    in_place = []
    for (i0, j0), (i1, j1) in zip([(-1, -1), *kept], [*kept, (rows, columns)], strict=True):
        if i1 - i0 == 2 and j1 - j0 == 2:
            i, j = i0 + 1, j0 + 1
            if kinds_a[i] == kinds_b[j] and similarity[i][j] > 0:
                in_place.append((i, j))
    return [(units_a[i], units_b[j]) for i, j in sorted(kept + in_place)]


def _best_alignment(similarity: list[list[float]], rows: int, columns: int) -> list[tuple[int, int]]:
    """(row, column) pairs, in order, maximising the summed similarity of pairs at least PAIR_SIMILARITY."""
    # score[i][j]: the best total over the first i rows and j columns
    score = [[0.0] * (columns + 1) for _ in range(rows + 1)]
    for i in range(1, rows + 1):
        above, row, sims = score[i - 1], score[i], similarity[i - 1]
        for j in range(1, columns + 1):
            best = above[j] if above[j] >= row[j - 1] else row[j - 1]
            s = sims[j - 1]
            if s >= PAIR_SIMILARITY and above[j - 1] + s > best:
                best = above[j - 1] + s
            row[j] = best
    pairs = []
    i, j = rows, columns
    while i and j:
        s = similarity[i - 1][j - 1]
        if s >= PAIR_SIMILARITY and score[i][j] == score[i - 1][j - 1] + s:
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif score[i][j] == score[i - 1][j]:
            i -= 1
        else:
            j -= 1
    pairs.reverse()
    return pairs


def _drop_punctuation_only_links(
    before: ParsedCode,
    after: ParsedCode,
    a: list[int],
    start: int,
    end: int,
    punctuation: set[int],
    before_partner: list[int],
    after_partner: list[int],
) -> None:
    """Unmatch the leaves linking two statements when every leaf they share is punctuation."""
    links: dict[tuple[int, int], list[int]] = {}
    with_content: set[tuple[int, int]] = set()
    for i in range(start, end):
        j = before_partner[i]
        if j < 0:
            continue
        link = (before.statement_of[i], after.statement_of[j])
        links.setdefault(link, []).append(i)
        if a[i] not in punctuation:
            with_content.add(link)
    for link, leaves in links.items():
        if link not in with_content:
            for i in leaves:
                after_partner[before_partner[i]] = -1
                before_partner[i] = -1
