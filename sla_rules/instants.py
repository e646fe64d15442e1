"""Instants and durations as integer microseconds, and back.

The engine computes on integers (exact sums, cheap comparisons) and converts
to ``datetime``/``timedelta`` only at its edges: the result objects and the
trace text. Those conversions turned out to be a large share of an
evaluation (one item yields dozens of instants, most of them repeated: event
times, the start of each clock, the deadline shared by a warning and the
breach), so the UTC datetime and the ISO-8601 text of an instant are
memoised, and so are durations. All are immutable values, so sharing them changes nothing; the
memos are bounded and simply start over when full.
"""

from __future__ import annotations

import datetime as dt

UTC = dt.UTC
EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
_NAIVE_EPOCH = dt.datetime(1970, 1, 1)
_ONE_US = dt.timedelta(microseconds=1)
_MEMO_LIMIT = 1 << 16

_datetimes: dict[int, dt.datetime] = {}
_microseconds: dict[tuple[dt.datetime, int], int] = {}
_iso_texts: dict[int, str] = {}
_iso_of_utc: dict[dt.datetime, str] = {}  # UTC datetimes only: equal instants elsewhere print differently
_timedeltas: dict[int, dt.timedelta] = {}


def to_us(instant: dt.datetime) -> int:
    """Aware datetime -> integer microseconds since the epoch (exact; memoised).

    The memo key includes ``fold``: two wall times in a repeated hour of the
    same zone compare (and hash) equal although they are different instants.
    Event times are converted again on every evaluation of an item, and with
    a named zone that conversion is the slow part.
    """
    key = (instant, instant.fold)
    us = _microseconds.get(key)
    if us is None:
        if instant.tzinfo is None or instant.utcoffset() is None:
            raise ValueError(f"naive datetime {instant!r}: SLA instants must be timezone-aware")
        if len(_microseconds) >= _MEMO_LIMIT:
            _microseconds.clear()
        us = _microseconds[key] = (instant - EPOCH) // _ONE_US
    return us


def from_us(us: int) -> dt.datetime:
    """Integer microseconds since the epoch -> aware UTC datetime (memoised)."""
    value = _datetimes.get(us)
    if value is None:
        if len(_datetimes) >= _MEMO_LIMIT:
            _datetimes.clear()
        value = _datetimes[us] = EPOCH + dt.timedelta(0, 0, us)
    return value


def iso_us(us: int) -> str:
    """ISO-8601 text of an instant in UTC with a Z suffix (memoised).

    Same text as ``from_us(us).isoformat().replace("+00:00", "Z")``: a naive
    UTC datetime prints without an offset, so "Z" is appended instead.
    """
    text = _iso_texts.get(us)
    if text is None:
        if len(_iso_texts) >= _MEMO_LIMIT:
            _iso_texts.clear()
        text = _iso_texts[us] = (_NAIVE_EPOCH + dt.timedelta(0, 0, us)).isoformat() + "Z"
    return text


def iso_instant(value: dt.datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z suffix (None stays None)."""
    if value is None:
        return None
    if value.tzinfo is not UTC:
        return value.isoformat().replace("+00:00", "Z")
    text = _iso_of_utc.get(value)
    if text is None:
        if len(_iso_of_utc) >= _MEMO_LIMIT:
            _iso_of_utc.clear()
        text = _iso_of_utc[value] = iso_us((value - EPOCH) // _ONE_US)
    return text


def td_us(delta: dt.timedelta) -> int:
    """timedelta -> integer microseconds."""
    return delta // _ONE_US


def us_td(us: int) -> dt.timedelta:
    """Integer microseconds -> timedelta (memoised: targets and zeros repeat)."""
    value = _timedeltas.get(us)
    if value is None:
        if len(_timedeltas) >= _MEMO_LIMIT:
            _timedeltas.clear()
        value = _timedeltas[us] = dt.timedelta(0, 0, us)
    return value
