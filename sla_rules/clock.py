"""Clock arithmetic: business time over running windows minus pauses.

A clock is described by plain intervals (integer microseconds, UTC):

- *windows* when it runs (one per cycle leg: start -> met, reopen -> ...),
- *pauses* when the item sat in a pausing status,
- ``measured_from``, the instant its current target counts from.

The running set is ``windows - pauses`` clipped to ``measured_from``; elapsed
time is its business measure on the calendar, and every threshold (warning,
breach, escalation step) is the earliest instant at which the elapsed time
reaches an amount. All thresholds are found in one forward walk that jumps
over calendar intervals (see ``BusinessCalendar.measure_until``).
"""

from __future__ import annotations

from collections.abc import Sequence

from .business_calendar import BusinessCalendar

INF = 1 << 62  # "open" end of an interval (not yet closed by an event)
Interval = tuple[int, int]


def normalise(intervals: Sequence[tuple[int, int | None]]) -> list[Interval]:
    """Sort, replace open ends by INF and merge overlapping/adjacent intervals."""
    out: list[Interval] = []
    for a, b in sorted((a, INF if b is None else b) for a, b in intervals):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def subtract(base: Sequence[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """``base`` minus ``holes`` (both normalised)."""
    out: list[Interval] = []
    j = 0
    for a, b in base:
        cur = a
        while j < len(holes) and holes[j][1] <= cur:
            j += 1
        k = j
        while k < len(holes) and holes[k][0] < b:
            ha, hb = holes[k]
            if ha > cur:
                out.append((cur, ha))
            cur = max(cur, hb)
            if cur >= b:
                break
            k += 1
        if cur < b:
            out.append((cur, b))
    return out


def intersect(xs: Sequence[Interval], ys: Sequence[Interval]) -> list[Interval]:
    """Intersection of two normalised interval lists."""
    out: list[Interval] = []
    i = j = 0
    while i < len(xs) and j < len(ys):
        a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
        if a < b:
            out.append((a, b))
        if xs[i][1] < ys[j][1]:
            i += 1
        else:
            j += 1
    return out


def clip(intervals: Sequence[Interval], lo: int, hi: int) -> list[Interval]:
    """Intervals restricted to [lo, hi)."""
    return [(max(a, lo), min(b, hi)) for a, b in intervals if min(b, hi) > max(a, lo)]


def business_measure(calendar: BusinessCalendar, intervals: Sequence[Interval]) -> int:
    """Total working time inside finite intervals."""
    return sum(calendar.working_time(a, b) for a, b in intervals)


def reach_instants(calendar: BusinessCalendar, running: Sequence[Interval], amounts: Sequence[int]) -> list[int | None]:
    """Earliest instant at which running business time reaches each amount.

    ``amounts`` must be sorted ascending; None means "not reached": the
    running set ends (e.g. an open pause) before the amount is complete.
    """
    result: list[int | None] = []
    got = 0
    i = 0
    for a, b in running:
        pos = a
        while i < len(amounts):
            measured, reached = calendar.measure_until(pos, None if b >= INF else b, amounts[i] - got)
            if reached is None:
                got += measured
                break
            got += measured
            result.append(reached)
            pos = reached
            i += 1
        if i == len(amounts):
            break
    return result + [None] * (len(amounts) - len(result))
