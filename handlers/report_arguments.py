"""The report's arguments as people type them: periods, instants, dimensions.

Shared by the CLI and the HTTP API, which both name the offending argument
(:class:`ReportArgumentError` carries it) instead of failing somewhere deeper.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import suppress
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

DIMENSIONS = ("tier", "customer", "priority", "kind", "region", "account_manager", "policy")


class ReportArgumentError(ValueError):
    """A report argument that cannot be used; ``field`` names it for the CLI and the API."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


def parse_period(from_text: str, to_text: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """``[from, to)`` as aware instants; dates are local midnights in ``zone``."""
    start, end = parse_bound(from_text, zone, "from"), parse_bound(to_text, zone, "to")
    if end <= start:
        raise ReportArgumentError("to", f"{to_text} must be after from ({from_text})")
    return start, end


def parse_bound(text: str, zone: ZoneInfo, name: str) -> datetime:
    """A local date (midnight in ``zone``) or an ISO instant with an offset, taken as is."""
    text = text.strip()
    with suppress(ValueError):
        return datetime.combine(date.fromisoformat(text), time(), tzinfo=zone)
    try:
        instant = datetime.fromisoformat(text)
    except ValueError:
        raise ReportArgumentError(name, f"{text!r} is neither a date (2026-11-01) nor an ISO "
                                        f"instant with an offset") from None
    if instant.utcoffset() is None:
        raise ReportArgumentError(name, f"{text!r} has no UTC offset; "
                                        f"give a date or e.g. 2026-11-01T00:00:00+08:00")
    return instant


def parse_group_by(text: str | Sequence[str] | None) -> tuple[str, ...]:
    """``"tier,customer"`` or a list of names, checked against :data:`DIMENSIONS`."""
    names = text.split(",") if isinstance(text, str) else list(text or ())
    names = [n.strip() for n in names if n.strip()]
    for name in names:
        if name not in DIMENSIONS:
            raise ReportArgumentError("group_by", f"unknown dimension {name!r}; "
                                                  f"use {', '.join(DIMENSIONS)}")
    if len(set(names)) != len(names):
        raise ReportArgumentError("group_by", f"a dimension is listed twice in "
                                              f"{','.join(names)}")
    return tuple(names)
