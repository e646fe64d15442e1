"""The text forms the wire contract fixes: event ids, instants, non-blank strings, size.

Each rule is written twice on purpose: once as a regular expression that the
published JSON Schema carries (:mod:`schemas.json_schema`), and once as the code
the decoder runs (:mod:`schemas.envelope`).  A schema pattern must work in every
validator, so it keeps to the portable subset of ECMA-262 that the JSON Schema
specification recommends (no lookarounds, no ``\\d`` or ``\\s``, whose meaning
differs between regex engines); the decoder uses :mod:`datetime` arithmetic.
``tests/schemas/test_wire_formats.py`` and ``test_schema_agreement.py`` check
that the two say the same.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

#: The longest customer, entity and actor id.
ID_MAX_LENGTH = 64

#: The largest message the decoder reads, in bytes of UTF-8 JSON text.  Every
#: event that satisfies the catalogue's bounds fits when written compactly (the
#: worst case, every character a control character escaped as ``\u0001``, is
#: computed by a test); half of Kafka's default 1 MiB message limit, so that any
#: accepted event can be re-published, with headers, to another topic.
MAX_EVENT_BYTES = 512 * 1024

#: The one spelling of an event id: a UUID as ``str(uuid.UUID(...))`` writes it.
#: Other spellings of the same UUID (upper case, no hyphens, braces, ``urn:uuid:``)
#: are refused, because the id is compared as a string to apply each event once.
EVENT_ID_PATTERN = "^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"

# Whitespace as Python's str.isspace() and ECMA-262's \s understand it, together:
# the two differ (U+001C..U+001F, U+0085 for Python; U+FEFF for ECMA), so the
# class is spelled out and means the same to every validator and to the decoder.
_WHITESPACE = (
    "\\t\\n\\v\\f\\r \\x1c-\\x1f\\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000\\ufeff"
)
#: A string that is not blank: it has at least one character that is not whitespace.
NON_BLANK_PATTERN = f"[^{_WHITESPACE}]"
_NON_BLANK = re.compile(NON_BLANK_PATTERN)

#: The range of instants.  The bound is on the date as written: the decoder never
#: reads a year it cannot hold, and a Kafka timestamp taken from an instant is
#: never negative.  On the first day an offset east of UTC, and on the last day
#: one west of it, would carry the instant out of the range in UTC, so there an
#: instant must be written in UTC or on the inner side of it.
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2999, 12, 31)


def _instant_pattern() -> str:
    """RFC 3339 ``date-time`` limited to FIRST_DAY..LAST_DAY, calendar included."""
    day31, day30 = "(0[1-9]|[12][0-9]|3[01])", "(0[1-9]|[12][0-9]|30)"
    short_months = f"(0[469]|11)-{day30}|02-(0[1-9]|1[0-9]|2[0-8])"
    # month-day of any year but 29 February; of the boundary years, without the boundary day
    any_day = f"((0[13578]|1[02])-{day31}|{short_months})"
    not_jan_1 = f"(01-(0[2-9]|[12][0-9]|3[01])|(0[3578]|1[02])-{day31}|{short_months})"
    not_dec_31 = f"((0[13578]|10)-{day31}|12-(0[1-9]|[12][0-9]|30)|{short_months})"
    inner_years = "(197[1-9]|19[89][0-9]|2[0-8][0-9][0-9]|29[0-8][0-9]|299[0-8])"
    # every fourth year, but of the century years only those divisible by 400: 2000, 2400, 2800
    leap_years = "(19(7[26]|8[048]|9[26])|2[0-9](0[48]|[2468][048]|[13579][26])|2000|2400|2800)"
    inner_dates = f"({inner_years}-{any_day}|1970-{not_jan_1}|2999-{not_dec_31}|{leap_years}-02-29)"
    time = "[Tt]([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?"
    hours_minutes = "([01][0-9]|2[0-3]):[0-5][0-9]"
    any_offset = f"([Zz]|[+-]{hours_minutes})"
    utc_or_west = f"([Zz]|\\+00:00|-{hours_minutes})"
    utc_or_east = f"([Zz]|-00:00|\\+{hours_minutes})"
    return f"^({inner_dates}{time}{any_offset}|1970-01-01{time}{utc_or_west}|2999-12-31{time}{utc_or_east})$"


#: What the schema says an instant is; the decoder's :func:`read_instant` agrees.
INSTANT_PATTERN = _instant_pattern()

# The decoder's own reading: the shape, then datetime checks the calendar and clock.
_LOCAL_SHAPE = "[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,9})?"
_INSTANT_SHAPE = re.compile(_LOCAL_SHAPE + "([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])")
_NAIVE_SHAPE = re.compile(_LOCAL_SHAPE)
_NO_OFFSET = timedelta(0)


_EVENT_ID = re.compile(EVENT_ID_PATTERN)


def is_event_id(value: str) -> bool:
    """Whether ``value`` is an event id in its one canonical spelling."""
    return _EVENT_ID.fullmatch(value) is not None


def is_blank(value: str) -> bool:
    """Whether ``value`` is empty or only whitespace (in the sense of ``NON_BLANK_PATTERN``)."""
    return _NON_BLANK.search(value) is None


def read_instant(value: str) -> datetime:
    """The UTC instant an RFC 3339 ``date-time`` string names; ``ValueError`` says why not.

    Accepted exactly as ``INSTANT_PATTERN`` says: ``T`` or ``t``, seconds required,
    1-9 fractional digits (kept to the microsecond, the rest cut off, never
    rounded up into the next second), ``Z``, ``z`` or an offset ``+HH:MM``/``-HH:MM``.
    """
    if _INSTANT_SHAPE.fullmatch(value) is None:
        if _NAIVE_SHAPE.fullmatch(value):
            raise ValueError("has no UTC offset; send e.g. 2026-11-23T09:00:00+08:00")
        raise ValueError(
            "not an ISO-8601 instant in RFC 3339 form, "
            "such as 2026-11-23T09:00:00+08:00 or 2026-11-23T01:00:00.5Z"
        )
    try:
        # fromisoformat (3.11) reads T or t and any number of fraction digits, but not "z"
        written = datetime.fromisoformat(value[:-1] + "Z" if value[-1] == "z" else value)
    except ValueError as exc:  # 30 February, 24:00:00, second 60
        raise ValueError(f"not a real date and time: {exc}") from None
    check_range(written)
    return written.astimezone(UTC)


def check_range(written: datetime) -> None:
    """Refuse an aware instant outside FIRST_DAY..LAST_DAY as written (see FIRST_DAY)."""
    day, offset = written.date(), written.utcoffset() or _NO_OFFSET
    if not FIRST_DAY <= day <= LAST_DAY:
        raise ValueError(f"outside the supported range: dates {FIRST_DAY} to {LAST_DAY}")
    if day == FIRST_DAY and offset > _NO_OFFSET:
        raise ValueError(
            f"on {FIRST_DAY} write the instant in UTC or west of it "
            "(Z, +00:00 or -HH:MM), so that it stays in range in UTC"
        )
    if day == LAST_DAY and offset < _NO_OFFSET:
        raise ValueError(
            f"on {LAST_DAY} write the instant in UTC or east of it "
            "(Z, -00:00 or +HH:MM), so that it stays in range in UTC"
        )
