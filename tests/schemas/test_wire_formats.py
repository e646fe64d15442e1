"""Instants, event ids and blank strings: the schema patterns and the decoder's code agree.

The patterns are read as ECMA-262 reads them (tests/schemas/published_schemas.py)
and, for instants, also through jsonschema's ``date-time`` format check, which
must never refuse what the pattern allows.
"""

from __future__ import annotations

import calendar
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.wire_formats import (
    EVENT_ID_PATTERN,
    FIRST_DAY,
    INSTANT_PATTERN,
    LAST_DAY,
    NON_BLANK_PATTERN,
    is_blank,
    is_event_id,
    read_instant,
)
from tests.schemas.near_misses import event_ids, instants
from tests.schemas.published_schemas import FORMATS, ecma_regex

PATTERN = ecma_regex(INSTANT_PATTERN)


def pattern_allows(text: str) -> bool:
    return PATTERN.search(text) is not None


def decoder_allows(text: str) -> bool:
    try:
        read_instant(text)
    except ValueError:
        return False
    return True


class TestInstants:
    def test_every_day_of_every_year_near_the_range_agrees(self):
        """Each month's last days, 29 February, day 0 and 32, month 0 and 13, 1969-3000."""
        disagreements = []
        for year in range(1969, 3001):
            for month in range(0, 14):
                for day in (0, 1, 28, 29, 30, 31, 32):
                    text = f"{year:04d}-{month:02d}-{day:02d}T12:00:00Z"
                    if pattern_allows(text) != decoder_allows(text):
                        disagreements.append(text)
        assert disagreements == []

    def test_the_calendar_is_the_gregorian_one(self):
        """The pattern alone knows leap years: 2000, 2400 and 2800 are, 2100 is not."""
        for year in (1972, 1996, 2000, 2024, 2100, 2400, 2500, 2800, 2900, 2996):
            assert pattern_allows(f"{year}-02-29T00:00:00Z") == calendar.isleap(year)

    @pytest.mark.parametrize(
        "day",
        [
            FIRST_DAY - timedelta(1),
            FIRST_DAY,
            FIRST_DAY + timedelta(1),
            LAST_DAY - timedelta(1),
            LAST_DAY,
            LAST_DAY + timedelta(1),
        ],
    )
    def test_every_offset_on_the_days_around_each_bound_agrees(self, day):
        """On the boundary days an offset that would leave the range in UTC is refused."""
        for minutes in range(-(24 * 60 - 1), 24 * 60, 7):
            sign, (hours, rest) = "-" if minutes < 0 else "+", divmod(abs(minutes), 60)
            for clock in ("00:00:00", "23:59:59.999999999"):
                text = f"{day.isoformat()}T{clock}{sign}{hours:02d}:{rest:02d}"
                assert pattern_allows(text) == decoder_allows(text), text
                if decoder_allows(text):
                    utc = read_instant(text)
                    assert FIRST_DAY <= utc.date() <= LAST_DAY, text

    @settings(max_examples=600, deadline=None)
    @given(text=instants())
    def test_instant_shaped_strings_agree(self, text):
        """Separators, missing seconds, fraction digits, offsets, case of T and Z: one verdict."""
        allowed = pattern_allows(text)
        assert allowed == decoder_allows(text)
        if allowed:
            assert FORMATS.conforms(text, "date-time")

    @settings(max_examples=200, deadline=None)
    @given(
        moment=st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2999, 12, 30)),
        minutes=st.integers(-(24 * 60 - 1), 24 * 60 - 1),
    )
    def test_an_instant_reads_back_as_itself_in_utc(self, moment, minutes):
        """Whatever the offset, the decoder holds the same instant, to the microsecond."""
        written = moment.replace(tzinfo=UTC).astimezone(timezone(timedelta(minutes=minutes)))
        text = written.isoformat(timespec="microseconds")
        assert pattern_allows(text)
        assert read_instant(text) == moment.replace(tzinfo=UTC)

    def test_extra_fraction_digits_are_cut_not_rounded(self):
        """Nanoseconds from Java or Go keep their microseconds and never roll into the next day."""
        assert read_instant("2999-12-31T23:59:59.999999999Z") == datetime(
            2999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC
        )

    def test_the_bound_is_stated_in_the_pattern_and_the_code(self):
        """Dates as written run from 1970-01-01 to 2999-12-31."""
        assert (FIRST_DAY, LAST_DAY) == (date(1970, 1, 1), date(2999, 12, 31))
        assert pattern_allows("1970-01-01T00:00:00Z") and pattern_allows("2999-12-31T23:59:59Z")
        assert not pattern_allows("1969-12-31T23:59:59Z")
        assert not pattern_allows("3000-01-01T00:00:00Z")


class TestEventIds:
    @settings(max_examples=200, deadline=None)
    @given(text=event_ids())
    def test_only_the_canonical_spelling_is_an_event_id(self, text):
        """Upper case, no hyphens, braces, urn:uuid: are refused by the pattern and the decoder."""
        canonical = ecma_regex(EVENT_ID_PATTERN).search(text) is not None
        assert canonical == is_event_id(text)
        try:
            written_as_python_writes_it = text == str(uuid.UUID(text))
        except ValueError:
            written_as_python_writes_it = False
        assert canonical == written_as_python_writes_it


class TestBlankStrings:
    @settings(max_examples=300, deadline=None)
    @given(text=st.text(st.characters(codec="utf-8"), max_size=4))
    def test_blank_means_the_same_to_the_schema_and_the_decoder(self, text):
        """Only whitespace (as Python and ECMA-262 both count it) is blank."""
        assert (ecma_regex(NON_BLANK_PATTERN).search(text) is None) == is_blank(text)

    def test_whitespace_of_either_regex_engine_is_blank(self):
        """U+001C (Python's whitespace) and U+FEFF (ECMA's) are both blank."""
        spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()] + ["\ufeff"]
        assert all(is_blank(c) for c in spaces)
        assert not is_blank("\u200b") and not is_blank("x")
