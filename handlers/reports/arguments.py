"""The report's arguments as people type them: periods, instants, dimensions.

Shared by the CLI and the HTTP API, which both name the offending argument
(:class:`ReportArgumentError` carries it) instead of failing somewhere deeper.
Periods are bounded (``handlers/api/input_limits.py``): the report's cost grows with
the number of weeks in the period, and ``from=1000-01-01`` was 53,000 of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from handlers.api.input_limits import MAX_REPORT_DAYS, MAX_YEAR, MIN_YEAR

DIMENSIONS = ("tier", "customer", "priority", "kind", "region", "account_manager", "policy")
#: The report's formats and the media type each is answered with over HTTP.
REPORT_FORMATS = {
    "table": "text/plain; charset=utf-8",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
    "html": "text/html; charset=utf-8",
}


class ReportArgumentError(ValueError):
    """A report argument that cannot be used; ``field`` names it for the CLI and the API."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def parse_period(from_text: str, to_text: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """``[from, to)`` as aware instants; dates are local midnights in ``zone``.

    At most :data:`MAX_REPORT_DAYS` local days long (measured on the local
    clock, so a period across a DST change is not an hour too long).
    """
    start, end = parse_bound(from_text, zone, "from"), parse_bound(to_text, zone, "to")
    if end <= start:
        raise ReportArgumentError("to", f"{to_text[:40]} must be after from ({from_text[:40]})")
    if end.astimezone(zone) - start.astimezone(zone) > timedelta(days=MAX_REPORT_DAYS):
        raise ReportArgumentError(
            "to",
            f"the period is longer than {MAX_REPORT_DAYS} days; report a year at most, and several for more",
        )
    return start, end


def parse_bound(text: str, zone: ZoneInfo, name: str) -> datetime:
    """A local date (midnight in ``zone``) or an ISO instant with an offset, taken as is.

    Its year lies in :data:`MIN_YEAR`-:data:`MAX_YEAR`: near year 1 or 9999 a
    conversion to UTC or a step of a week overflows Python's datetime.
    """
    text = text.strip()
    instant = None
    with suppress(ValueError):
        instant = datetime.combine(date.fromisoformat(text), time(), tzinfo=zone)
    if instant is None:
        try:
            instant = datetime.fromisoformat(text)
        except ValueError:
            raise ReportArgumentError(
                name, f"{text[:40]!r} is neither a date (2026-11-01) nor an ISO instant with an offset"
            ) from None
        if instant.utcoffset() is None:
            raise ReportArgumentError(
                name, f"{text[:40]!r} has no UTC offset; give a date or e.g. 2026-11-01T00:00:00+08:00"
            )
    if not MIN_YEAR <= instant.year <= MAX_YEAR:
        raise ReportArgumentError(name, f"{text[:40]!r}: the year must lie in {MIN_YEAR}-{MAX_YEAR}")
    return instant


def parse_group_by(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"tier,customer"`` or a list of names, checked against :data:`DIMENSIONS`."""
    names = text.split(",") if isinstance(text, str) else list(text or ())
    names = [n.strip() for n in names if n.strip()]
    for name in names:
        if name not in DIMENSIONS:
            raise ReportArgumentError(
                "group_by", f"unknown dimension {name[:40]!r}; use {', '.join(DIMENSIONS)}"
            )
    if len(set(names)) != len(names):
        raise ReportArgumentError("group_by", "a dimension is listed twice")
    return tuple(names)
