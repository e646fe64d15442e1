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
    if len(intervals) == 1:  # the usual case: one running window, one pause
        a, b = intervals[0]
        if b is None:
            b = INF
        return [(a, b)] if b > a else []
    out: list[Interval] = []
    for a, b in sorted([(a, INF if b is None else b) for a, b in intervals]):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def subtract(base: Sequence[Interval], holes: Sequence[Interval]) -> list[Interval]:
    """``base`` minus ``holes`` (both normalised)."""
    if not holes:
        return list(base)  # the usual case: no pause touches this clock
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
    out: list[Interval] = []
    for a, b in intervals:
        if a < lo:
            a = lo
        if b > hi:
            b = hi
        if b > a:
            out.append((a, b))
    return out


def business_measure(calendar: BusinessCalendar, intervals: Sequence[Interval]) -> int:
    """Total working time inside finite intervals."""
    if calendar.always_on:
        return sum(b - a for a, b in intervals if b > a)
    return sum(calendar.working_time(a, b) for a, b in intervals)


def reach_instants(
    calendar: BusinessCalendar, running: Sequence[Interval], amounts: Sequence[int]
) -> list[int | None]:
    """Earliest instant at which running business time reaches each amount.

    ``amounts`` must be sorted ascending; None means "not reached": the
    running set ends (e.g. an open pause) before the amount is complete.
    """
    result: list[int | None] = []
    got = 0
    for a, b in running:
        needs = amounts if not result and not got else [amount - got for amount in amounts[len(result) :]]
        measured, reached = calendar.reach(a, None if b >= INF else b, needs)
        result += reached
        if len(result) == len(amounts):
            break
        got += measured
    return result + [None] * (len(amounts) - len(result))
