"""Business calendars: the instants at which an SLA clock is allowed to run.

A calendar is either always on (7x24) or a week of local working spans in a
time zone, corrected by public holidays and make-up working days (调休: a
Saturday or Sunday that is a working day in China).

The definition of "working instant" is deliberately the naive one an
operations person would give, because the tests compare against it with a
brute-force walk: an instant is working when its *local* date is a working
day and its *local* wall-clock time lies in one of that day's spans. Around a
DST transition that set is computed exactly, segment by segment of constant
UTC offset, so a skipped hour is never counted and a repeated hour is counted
twice when the span covers it.

Time is handled as integer microseconds since the Unix epoch (UTC) so that
sums of durations are exact. Every walk jumps over whole working spans and
whole days (with a per-day cache); nothing here steps minute by minute.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from zoneinfo import ZoneInfo

from .instants import EPOCH, UTC, from_us, td_us, to_us, us_td  # noqa: F401  (re-exported)

US = 1_000_000
MINUTE_US = 60 * US
HOUR_US = 60 * MINUTE_US
DAY_US = 24 * HOUR_US
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
#: A walk towards a deadline that never comes (a calendar with no working
#: time left) gives up after this many local days and reports "no deadline".
MAX_WALK_DAYS = 4000

Span = tuple[int, int]  # minutes of the local day, half-open [start, end)


_EPOCH_ORDINAL = 719163  # dt.date(1970, 1, 1).toordinal()


def _naive_us(day: dt.date) -> int:
    """Local midnight of ``day`` read as if it were UTC (wall-clock arithmetic)."""
    return (day.toordinal() - 719163) * DAY_US  # 719163 = date(1970, 1, 1).toordinal()


class BusinessCalendar:
    """Working time of one calendar; see the module docstring for the definition.

    ``week`` maps weekday number (0 = Monday) to the local spans of that
    weekday; ``None`` makes the calendar 7x24. A make-up day uses
    ``makeup_spans`` (by default Monday's spans): it replaces a weekend, so it
    gets a normal working day's hours.
    """

    def __init__(
        self,
        calendar_id: str,
        *,
        time_zone: str | None = None,
        week: Mapping[int, Iterable[Span]] | None = None,
        holidays: Iterable[dt.date] = (),
        makeup_days: Iterable[dt.date] = (),
        makeup_spans: Iterable[Span] | None = None,
        description: str = "",
    ) -> None:
        self.id = calendar_id
        self.description = description
        self.always_on = week is None
        self.time_zone = time_zone
        self.tz = ZoneInfo(time_zone) if time_zone else None
        if not self.always_on and self.tz is None:
            raise ValueError(f"calendar {calendar_id!r} has working hours but no time zone")
        self.week: dict[int, tuple[Span, ...]] = {
            wd: tuple(sorted(spans)) for wd, spans in (week or {}).items()
        }
        self.holidays = frozenset(holidays)
        self.makeup_days = frozenset(makeup_days)
        self.makeup_spans = tuple(sorted(makeup_spans)) if makeup_spans is not None else self.week.get(0, ())
        # local date ordinal -> (utc working intervals, total, utc start of the local day)
        self._days: dict[int, tuple[tuple[tuple[int, int], ...], int, int]] = {}

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.id!r})"

    # ----------------------------------------------------------------- days
    def spans_for(self, day: dt.date) -> tuple[Span, ...]:
        """Local working spans of ``day`` after holidays and make-up days."""
        if self.always_on:
            return ((0, 24 * 60),)
        if day in self.makeup_days:
            return self.makeup_spans
        if day in self.holidays:
            return ()
        return self.week.get(day.weekday(), ())

    def local_date(self, us: int) -> dt.date:
        """Local calendar date of an instant."""
        instant = from_us(us)
        return instant.astimezone(self.tz).date() if self.tz else instant.date()

    def _offset_at(self, us: int) -> int:
        # not through the from_us memo: these probes are never seen again
        offset = (EPOCH + dt.timedelta(0, 0, us)).astimezone(self.tz).utcoffset()
        assert offset is not None  # astimezone() gives an aware instant, which has an offset
        return td_us(offset)

    def _day(self, day: dt.date) -> tuple[tuple[tuple[int, int], ...], int, int]:
        return self._days.get(day.toordinal()) or self._compute_day(day.toordinal())

    def _compute_day(self, ordinal: int) -> tuple[tuple[tuple[int, int], ...], int, int]:
        """The cache entry of a local date (by ordinal: walks step days as plain ints)."""
        if len(self._days) > 50_000:
            self._days.clear()
        day = dt.date.fromordinal(ordinal)
        base = _naive_us(day)
        # Probes bracket the UTC image of the local day for any offset in -14h..+14h.
        lo_probe, hi_probe = base - 16 * HOUR_US, base + 40 * HOUR_US
        o1, o2 = self._offset_at(lo_probe), self._offset_at(hi_probe)
        segments: list[tuple[int | None, int | None, int]]  # (from, to, UTC offset), None: open
        if o1 == o2:
            segments = [(None, None, o1)]
        else:
            # Binary search (whole seconds) for the one transition in the window.
            lo, hi = lo_probe // US, hi_probe // US
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if self._offset_at(mid * US) == o1:
                    lo = mid
                else:
                    hi = mid
            cut = hi * US
            segments = [(None, cut, o1), (cut, None, o2)]
        pieces: list[tuple[int, int]] = []
        for seg_lo, seg_hi, off in segments:
            for start, end in self.spans_for(day):
                a, b = base + start * MINUTE_US - off, base + end * MINUTE_US - off
                if seg_lo is not None:
                    a = max(a, seg_lo)
                if seg_hi is not None:
                    b = min(b, seg_hi)
                if a < b:
                    pieces.append((a, b))
        pieces.sort()
        merged: list[tuple[int, int]] = []
        for a, b in pieces:
            if merged and a <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], b))
            else:
                merged.append((a, b))
        day_start = min((base - o for _, _, o in segments))
        result = (tuple(merged), sum(b - a for a, b in merged), day_start)
        self._days[ordinal] = result
        return result

    def day_intervals(self, day: dt.date) -> tuple[tuple[int, int], ...]:
        """UTC working intervals (microseconds) of one local date."""
        return self._day(day)[0]

    # ---------------------------------------------------------------- walks
    def measure_until(self, a: int, b: int | None, need: int | None) -> tuple[int, int | None]:
        """Walk working time forward from ``a`` (bounded by ``b``; None = open).

        Returns ``(measured, reached_at)``: if ``need`` microseconds of working
        time are found before ``b``, ``reached_at`` is the earliest instant at
        which they are complete (so it closes a working interval, never sits
        inside a non-working one) and ``measured == need``; otherwise
        ``reached_at`` is None and ``measured`` is all the working time in
        [a, b). ``need=None`` means "measure everything" and needs a finite ``b``.
        """
        if need is not None and need <= 0:
            return 0, a
        if need is None:
            if b is None:
                raise ValueError("measure_until needs a bound or an amount")
            # Working time in [a, b) never exceeds b - a: this amount is never
            # reached, so the walk measures all of [a, b).
            need = b - a + 1
        measured, reached = self.reach(a, b, (need,))
        return (need, reached[0]) if reached else (measured, None)

    def reach(self, a: int, b: int | None, needs: Sequence[int]) -> tuple[int, list[int]]:
        """``measure_until`` for several amounts (ascending) in one forward walk.

        Returns ``(measured, reached)``: the instants at which the working
        time from ``a`` completes each of ``needs``, as far as they are
        reached before ``b``, and the working time walked (all of [a, b) when
        some need is not reached). Same instants as one ``measure_until`` per
        amount, each starting where the previous one was reached, but the
        days are walked once: thresholds of one clock (warnings, breach,
        escalation steps) are a handful of amounts close together.
        """
        reached: list[int] = []
        k, n = 0, len(needs)
        while k < n and needs[k] <= 0:
            reached.append(a)
            k += 1
        if k == n:
            return (needs[-1] if needs else 0), reached
        if b is not None and b <= a:
            return 0, reached
        need = needs[k]
        if self.always_on:
            while b is None or need <= b - a:
                reached.append(a + need)
                k += 1
                if k == n:
                    return need, reached
                need = needs[k]
            return b - a, reached
        got = 0
        # The walk starts one local day before a's local date, as far as the
        # result goes. It actually starts from the UTC date two days before
        # (never later, since offsets stay within a day), which needs no
        # time-zone conversion: the extra days end before ``a`` and are skipped.
        # The walk limit is counted from a's local date, found only if a walk
        # gets that far.
        days, compute_day = self._days, self._compute_day
        ordinal = _EPOCH_ORDINAL + a // DAY_US - 2
        limit, exact_limit = ordinal + MAX_WALK_DAYS - 3, False
        while True:
            if ordinal >= limit:
                if exact_limit:
                    break
                limit, exact_limit = self.local_date(a).toordinal() - 1 + MAX_WALK_DAYS, True
                continue
            intervals, total, day_start = days.get(ordinal) or compute_day(ordinal)
            if b is not None and day_start >= b:
                break
            if intervals:
                first, last = intervals[0][0], intervals[-1][1]
                if last <= a:
                    pass
                elif first >= a and (b is None or last <= b) and need - got > total:
                    got += total  # the whole day counts: jump over it
                else:
                    for s, e in intervals:
                        if s < a:
                            s = a
                        if b is not None and e > b:
                            e = b
                        if e <= s:
                            continue
                        while got + (e - s) >= need:  # complete: go on from there for the next amount
                            s += need - got
                            got = need
                            reached.append(s)
                            k += 1
                            if k == n:
                                return got, reached
                            need = needs[k]
                        got += e - s
            ordinal += 1
        if reached and reached[-1] > a:
            # The walk gave up (MAX_WALK_DAYS). One walk per amount would have
            # given each amount its own allowance from where the previous one
            # was reached: do exactly that for the rest.
            done = needs[k - 1]
            more, rest = self.reach(reached[-1], b, [x - done for x in needs[k:]])
            return done + more, reached + rest
        return got, reached

    def working_time(self, a: int, b: int) -> int:
        """Working microseconds in [a, b)."""
        return self.measure_until(a, b, None)[0] if b > a else 0

    def is_working(self, us: int) -> bool:
        """True when the instant lies in a working interval."""
        if self.always_on:
            return True
        return any(s <= us < e for s, e in self.day_intervals(self.local_date(us)))

    def describe(self) -> str:
        """One line for explanations."""
        if self.always_on:
            return f"{self.id} (7x24{': ' + self.description if self.description else ''})"
        hours = ", ".join(
            f"{WEEKDAYS[wd]} "
            + " ".join(f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in spans)
            for wd, spans in sorted(self.week.items())
            if spans
        )
        return (
            f"{self.id} ({self.time_zone}; {hours}; {len(self.holidays)} holidays, "
            f"{len(self.makeup_days)} make-up working days"
            f"{'; ' + self.description if self.description else ''})"
        )
