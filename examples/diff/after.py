def merge_intervals(intervals):
    """Merge overlapping [start, end] intervals and return them sorted by start."""
    if not intervals:
        return []
    ordered = sorted(intervals,
                     key=lambda pair: pair[0])
    merged = [list(ordered[0])]
    for start, end in ordered[1:]:
        last = merged[-1]
        # touching intervals ([1, 2] and [2, 3]) overlap too
        if start <= last[1]:
            last[1] = max(last[1], end)
        else:
            merged.append([start, end])
    return merged


def total_covered(intervals):
    """Length of the line covered by at least one interval."""
    covered = 0
    for start, end in merge_intervals(intervals):
        width = end - start
        covered += width
    return covered
