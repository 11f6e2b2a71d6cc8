def merge_intervals(intervals):
    """Merge overlapping [start, end] intervals and return them sorted by start."""
    ordered = sorted(intervals, key=lambda pair: pair[0])
    merged = [list(ordered[0])]
    for start, end in ordered[1:]:
        last = merged[-1]
        # two intervals overlap when the next one starts before the last one ends
        if start < last[1]:
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
