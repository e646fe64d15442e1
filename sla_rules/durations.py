"""Durations as operations people write them: '15m', '4h', '1d12h'.

A day is 24 hours of *business* time on the policy's calendar; on a
business-hours calendar one working day is therefore written '7h30m'. Keeping
the unit literal avoids a second, calendar-dependent meaning of "day".
"""

from __future__ import annotations

import datetime as dt
import re
from functools import lru_cache
from typing import Any

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$")


def parse_duration(text: Any) -> dt.timedelta:
    """'1d4h30m' style duration (d = 24 h of business time) -> timedelta."""
    if not isinstance(text, str):
        raise ValueError(f"duration must be a string like '4h' or '1d2h30m', got {text!r}")
    s = text.strip().replace(" ", "")
    if s.startswith("-"):
        raise ValueError(f"negative duration {text!r}")
    m = _DURATION.match(s)
    if not s or not m:
        raise ValueError(f"bad duration {text!r} (write e.g. '15m', '4h', '1d12h')")
    d, h, mi = (int(g) if g else 0 for g in m.groups())
    return dt.timedelta(days=d, hours=h, minutes=mi)


@lru_cache(maxsize=4096)
def format_duration(delta: dt.timedelta) -> str:
    """timedelta -> '1d4h30m' (seconds shown only when present).

    Memoised: traces print the same few targets over and over.
    """
    total = int(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    d, rest = divmod(total, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    out = "".join(f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m"), (s, "s")) if v)
    return sign + (out or "0m")
