"""What the live pages (dispatch queue, escalations inbox, their event stream) need of the worker.

Handed over by the composition root (``handlers/composition.py``), so that the
pages reach neither into ``streams.processor`` nor into faust: the views of
this worker's customers and which customers those are, the other workers'
addresses and an HTTP client to ask them, the desk's secret for signing those
hops, the acknowledge function the API itself runs, the live feed's hub and
the reporting database.  The browser tests build one over plain dictionaries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
from aiohttp import web

from handlers.web.live_feed import LiveHub
from schemas.envelope import Event

#: (request, customer_id, kind, item_id, body) -> the published acknowledgement and whether the owner
#: checked its item: the API's own (``handlers/api/routes.py``), so a page adds no second way
Acknowledge = Callable[[web.Request, str, str, str, dict[str, Any]], Awaitable[tuple[Event, bool]]]


@dataclass(frozen=True)
class LiveDesk:
    hub: LiveHub
    #: (customer id, view) of the views this worker holds
    views: Callable[[], Iterable[tuple[str, Mapping[str, Any]]]]
    #: whether a customer's partition is this worker's now
    owns: Callable[[str], bool]
    #: the other workers' base URLs (``http://host:port``)
    peers: Callable[[], list[str]]
    http: Callable[[], aiohttp.ClientSession]
    hop_key: bytes
    acknowledge: Acknowledge
    #: runs a blocking function of the reporting database's engine in a thread: ``run(fn, *args)``
    run_sql: Callable[..., Awaitable[Any]]
    engine: Any
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(dt.UTC))


def local_time(instant: dt.datetime | str | None, zone: ZoneInfo) -> str:
    """An instant as the desk's staff read it: local date and time with the offset (stored in UTC)."""
    if instant is None:
        return ""
    if isinstance(instant, str):
        instant = dt.datetime.fromisoformat(instant)
    local = instant.astimezone(zone)
    offset = local.utcoffset() or dt.timedelta(0)
    hours, rest = divmod(int(offset.total_seconds()), 3600)
    suffix = f"UTC{hours:+d}" + (f":{rest // 60:02d}" if rest else "")
    return f"{local:%Y-%m-%d %H:%M:%S} ({suffix})"


def utc_text(instant: dt.datetime | str | None) -> str:
    """The instant for a ``<time datetime>`` attribute: RFC 3339 in UTC."""
    if instant is None:
        return ""
    if isinstance(instant, str):
        instant = dt.datetime.fromisoformat(instant)
    return instant.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def span(seconds: float | None) -> str:
    """A duration as ``H:MM:SS`` (hours past 24 too: no unit to translate), its sign left to the words."""
    if seconds is None:
        return ""
    hours, rest = divmod(int(abs(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"
