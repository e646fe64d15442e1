"""Business calendars: working time, holidays, 调休 make-up days, DST."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from sla_rules import BusinessCalendar, load_rules
from sla_rules.business_calendar import HOUR_US, MINUTE_US, from_us, to_us

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
RULES = load_rules()
CN = RULES.calendars["cn-business"]


def sh(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=SH)


def add(calendar: BusinessCalendar, start: dt.datetime, minutes: int) -> dt.datetime:
    _, reached = calendar.measure_until(to_us(start), None, minutes * MINUTE_US)
    return from_us(reached)


class TestShippedChinaCalendar:
    # (what, start (Asia/Shanghai), business minutes, expected deadline (Asia/Shanghai))
    CASES = [
        ("inside the morning span", sh(2026, 3, 2, 9, 0), 60, sh(2026, 3, 2, 10, 0)),
        ("lunch break 12:00-13:30 is skipped", sh(2026, 3, 2, 11, 30), 60, sh(2026, 3, 2, 14, 0)),
        ("deadline at the end of the day closes the span", sh(2026, 3, 2, 17, 0), 60, sh(2026, 3, 2, 18, 0)),
        ("evening start waits for the next morning", sh(2026, 3, 2, 20, 0), 30, sh(2026, 3, 3, 9, 30)),
        ("Friday evening rolls over the weekend", sh(2026, 3, 6, 17, 0), 120, sh(2026, 3, 9, 10, 0)),
        ("one full working day is 7h30m", sh(2026, 3, 2, 9, 0), 450, sh(2026, 3, 2, 18, 0)),
        ("Spring Festival holiday 2/15-2/23 is skipped", sh(2026, 2, 13, 17, 0), 120, sh(2026, 2, 14, 10, 0)),
        ("Sat 2/14 is a make-up working day (调休)", sh(2026, 2, 14, 9, 0), 60, sh(2026, 2, 14, 10, 0)),
        (
            "after the make-up Saturday the holiday follows",
            sh(2026, 2, 14, 17, 0),
            120,
            sh(2026, 2, 24, 10, 0),
        ),
        ("Sun 1/4 make-up day after 元旦", sh(2026, 1, 1, 10, 0), 60, sh(2026, 1, 4, 10, 0)),
        (
            "National Day week is skipped, Sat 10/10 worked",
            sh(2026, 9, 30, 17, 30),
            60,
            sh(2026, 10, 8, 9, 30),
        ),
        ("2027 statutory New Year's Day is a holiday", sh(2026, 12, 31, 17, 0), 120, sh(2027, 1, 4, 10, 0)),
    ]

    @pytest.mark.parametrize(("what", "start", "minutes", "expected"), CASES, ids=[c[0] for c in CASES])
    def test_adding_business_time(self, what, start, minutes, expected):
        """Adding business time on cn-business lands on the instant an operator would compute."""
        assert add(CN, start, minutes) == expected

    def test_working_time_between_two_instants(self):
        """A Mon 09:00 -> Wed 09:00 range holds two working days of 7h30m."""
        assert CN.working_time(to_us(sh(2026, 3, 2, 9)), to_us(sh(2026, 3, 4, 9))) == 15 * HOUR_US

    def test_makeup_and_holiday_flags(self):
        """Make-up Saturdays work, holiday weekdays do not."""
        assert CN.is_working(to_us(sh(2026, 2, 28, 10)))
        assert not CN.is_working(to_us(sh(2026, 2, 16, 10)))
        assert not CN.is_working(to_us(sh(2026, 3, 7, 10)))

    def test_far_deadline_jumps_days(self):
        """A 30-day target walks days, not minutes: few day computations for a long walk."""
        calendar = BusinessCalendar("c", time_zone="Asia/Shanghai", week={d: [(540, 1080)] for d in range(5)})
        _, reached = calendar.measure_until(to_us(sh(2026, 3, 2, 9)), None, 30 * 24 * HOUR_US)
        assert reached is not None
        assert len(calendar._days) < 200  # 80 working days + weekends, one entry each


class TestAlwaysOnCalendar:
    def test_seven_by_twenty_four(self):
        """On 7x24 business time equals wall time, weekends and holidays included."""
        assert add(RULES.calendars["24x7"], sh(2026, 2, 15, 23, 0), 120) == sh(2026, 2, 16, 1, 0)


class TestDaylightSavingTime:
    NIGHT = BusinessCalendar("night", time_zone="Europe/Berlin", week={d: [(0, 360)] for d in range(7)})

    def test_spring_forward_night_is_one_hour_shorter(self):
        """00:00-06:00 on the spring-forward night holds 5 real hours."""
        day = dt.date(2026, 3, 29)
        assert sum(b - a for a, b in self.NIGHT.day_intervals(day)) == 5 * HOUR_US

    def test_fall_back_night_is_one_hour_longer(self):
        """00:00-06:00 on the fall-back night holds 7 real hours (02:00-03:00 happens twice)."""
        day = dt.date(2026, 10, 25)
        assert sum(b - a for a, b in self.NIGHT.day_intervals(day)) == 7 * HOUR_US

    def test_span_inside_the_skipped_hour_is_empty(self):
        """A span 02:15-02:45 does not exist on the spring-forward day."""
        cal = BusinessCalendar("gap", time_zone="Europe/Berlin", week={6: [(135, 165)]})
        assert cal.day_intervals(dt.date(2026, 3, 29)) == ()

    def test_span_inside_the_repeated_hour_counts_twice(self):
        """A span 02:15-02:45 happens twice on the fall-back day: 60 real minutes."""
        cal = BusinessCalendar("rep", time_zone="Europe/Berlin", week={6: [(135, 165)]})
        assert sum(b - a for a, b in cal.day_intervals(dt.date(2026, 10, 25))) == 60 * MINUTE_US

    def test_business_day_deadline_keeps_local_hours(self):
        """09:00-17:00 Berlin: a Friday 16:00 + 2h deadline is Monday 10:00 local, across the DST change."""
        cal = BusinessCalendar("de", time_zone="Europe/Berlin", week={d: [(540, 1020)] for d in range(5)})
        got = add(cal, dt.datetime(2026, 3, 27, 16, tzinfo=BERLIN), 120)
        assert got == dt.datetime(2026, 3, 30, 10, tzinfo=BERLIN)
        assert got.astimezone(BERLIN).utcoffset() == dt.timedelta(hours=2)


class TestCalendarConstruction:
    def test_hours_without_time_zone_are_refused(self):
        """Working hours without a time zone are meaningless and rejected."""
        with pytest.raises(ValueError, match="no time zone"):
            BusinessCalendar("x", week={0: [(540, 600)]})

    def test_naive_datetimes_are_refused(self):
        """Naive datetimes cannot be placed in time and are rejected."""
        with pytest.raises(ValueError, match="naive"):
            to_us(dt.datetime(2026, 1, 1))
