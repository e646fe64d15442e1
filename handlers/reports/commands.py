"""Entry points of the compliance report: ``keydesk report compliance`` and its HTTP route.

Both read the same arguments (``from``, ``to``, ``group_by``, ``as_of``,
``format``) through :func:`report_request`, so the command line and the API
accept and refuse exactly the same things, and name the culprit the same way.
The report reads the reporting database directly; no worker or broker is needed.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

import orjson
import structlog
from sqlalchemy import Engine, event
from sqlalchemy.exc import OperationalError

from handlers.api.http_guard import BadRequest, Slots, error_body
from handlers.api.input_limits import (
    MAX_CONCURRENT_REPORTS,
    MAX_REPORT_BREACHES,
    REPORT_RETRY_AFTER_SECONDS,
    REPORT_TIME_LIMIT_SECONDS,
)
from handlers.api.operations import operation
from handlers.identity.guard import identity_of
from handlers.identity.roles import ReportScope, report_scope
from handlers.reports.arguments import (
    DIMENSIONS,
    REPORT_FORMATS,
    ReportArgumentError,
    parse_bound,
    parse_group_by,
    parse_period,
)
from handlers.reports.model import ComplianceReport
from handlers.reports.output import as_csv, as_html, as_json, as_table
from handlers.reports.queries import compliance_report
from schemas.reporting_db import current_revision, open_engine
from streams.settings import Settings

_RENDER: dict[str, Callable[[ComplianceReport, ZoneInfo], str]] = {
    "table": as_table,
    "csv": lambda report, zone: as_csv(report),
    "json": lambda report, zone: as_json(report),
    "html": as_html,
}
T = TypeVar("T")
#: format -> (media type, renderer)
FORMATS: dict[str, tuple[str, Callable[[ComplianceReport, ZoneInfo], str]]] = {
    name: (media, _RENDER[name]) for name, media in REPORT_FORMATS.items()
}
OPTIONS = {
    "from": "--from",
    "to": "--to",
    "group_by": "--group-by",
    "as_of": "--as-of",
    "format": "--format",
    "breaches": "--breaches",
}  # the CLI's spelling of each field


#: Breaches listed unless asked otherwise: a report is read by people; an export of
#: every breach is ``--breaches 0``. The figures always count all of them.
DEFAULT_BREACHES = 200


class ReportUnavailable(Exception):
    """The reporting database has no tables yet: nothing was ever projected into it."""


@dataclass(frozen=True)
class ReportRequest:
    """What to report, checked: aware instants, known dimensions, a known format."""

    period_start: datetime
    period_end: datetime
    as_of: datetime
    group_by: tuple[str, ...]
    format: str
    breach_limit: int | None = DEFAULT_BREACHES


def report_request(
    values: Mapping[str, str | None], zone: ZoneInfo, now: datetime, max_breaches: int | None = None
) -> ReportRequest:
    """Check the raw arguments; :class:`ReportArgumentError` names the first bad one.

    ``max_breaches``: the most breaches that may be listed (the HTTP API's
    bound); ``None`` lets ``breaches=0`` list them all (the CLI).
    """
    for required in ("from", "to"):
        if not values.get(required):
            raise ReportArgumentError(
                required, "is required: a local date such as 2026-11-01 or an ISO instant with an offset"
            )
    start, end = parse_period(values["from"], values["to"], zone)
    as_of = parse_bound(values["as_of"], zone, "as_of") if values.get("as_of") else now
    fmt = values.get("format") or "json"
    if fmt not in FORMATS:
        raise ReportArgumentError("format", f"{fmt[:20]!r}: use one of {', '.join(FORMATS)}")
    return ReportRequest(
        start,
        end,
        as_of,
        parse_group_by(values.get("group_by")),
        fmt,
        _breach_limit(values.get("breaches"), max_breaches),
    )


def _breach_limit(text: str | None, most: int | None = None) -> int | None:
    """How many breaches to list: a whole number, 0 = all; default :data:`DEFAULT_BREACHES`."""
    if text is None or text == "":
        return DEFAULT_BREACHES
    text = str(text).strip()
    # ASCII digits only ("²".isdigit() holds), and few: int() refuses 4,300 of them.
    if not (text.isascii() and text.isdigit()) or len(text) > 12:
        raise ReportArgumentError("breaches", f"{text[:20]!r}: a whole number of breaches to list, 0 for all")
    if most is not None and not 1 <= int(text) <= most:
        raise ReportArgumentError(
            "breaches", f"from 1 to {most} over HTTP (keydesk report compliance --breaches 0 lists all)"
        )
    return int(text) or None


def build_report(
    engine: Engine, request: ReportRequest, zone: ZoneInfo, customers: ReportScope | None = None
) -> ComplianceReport:
    """The report (of ``customers`` only, if given), or :class:`ReportUnavailable` for a database
    the sink never migrated."""
    if current_revision(engine) is None:
        raise ReportUnavailable(
            f"the reporting database {engine.url.render_as_string()} has "
            f"no tables yet; the sink creates them when it starts"
        )
    return compliance_report(
        engine,
        period_start=request.period_start,
        period_end=request.period_end,
        as_of=request.as_of,
        group_by=request.group_by,
        zone=zone,
        breach_limit=request.breach_limit,
        customers=customers,
    )


# -- command line ----------------------------------------------------------------------


def add_report_parser(subparsers) -> None:
    """Add ``report compliance ...`` to the ``keydesk`` command's subparsers."""
    report = subparsers.add_parser("report", help="reports from the reporting database")
    kinds = report.add_subparsers(dest="report", required=True)
    compliance = kinds.add_parser("compliance", help=run_report.__doc__)
    compliance.add_argument(
        "--from",
        dest="from_",
        required=True,
        metavar="DATE",
        help="first local date (or ISO instant) of the opening period",
    )
    compliance.add_argument("--to", required=True, metavar="DATE", help="end of the period, exclusive")
    compliance.add_argument(
        "--group-by", default="", metavar="DIM,...", help=f"any of {', '.join(DIMENSIONS)}"
    )
    compliance.add_argument(
        "--as-of", metavar="INSTANT", help="instant the figures are true at (default now)"
    )
    compliance.add_argument("--format", choices=list(FORMATS), default="table")
    compliance.add_argument(
        "--breaches",
        metavar="N",
        help=f"list the first N breaches by deadline (default "
        f"{DEFAULT_BREACHES}; 0 = all); the counts are always complete",
    )
    compliance.add_argument("--output", metavar="FILE", help="write here instead of stdout")
    compliance.set_defaults(run=run_report)


def run_report(
    args: argparse.Namespace, settings: Settings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> int:
    """SLA compliance of the items opened in a period, grouped, in the chosen format."""
    values = {
        "from": args.from_,
        "to": args.to,
        "group_by": args.group_by,
        "as_of": args.as_of,
        "format": args.format,
        "breaches": args.breaches,
    }
    try:
        request = report_request(values, settings.zone, clock())
    except ReportArgumentError as exc:
        print(f"keydesk: {OPTIONS[exc.field]}: {exc.reason}", file=sys.stderr)
        return 2
    engine = open_engine(settings.database_url)
    try:
        report = build_report(engine, request, settings.zone)
    except ReportUnavailable as exc:
        print(f"keydesk: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    text = FORMATS[request.format][1](report, settings.zone)
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


# -- HTTP --------------------------------------------------------------------------------

log = structlog.get_logger("keydesk.reports")


class QueryDeadline:
    """The instant (``time.monotonic()``) after which the report's queries are interrupted.

    Installed on the HTTP route's own engine: SQLite checks it in a progress
    handler, PostgreSQL gets the time left as ``statement_timeout`` before each
    statement.  ``math.inf`` (between reports) interrupts nothing.
    """

    def __init__(self, engine: Engine) -> None:
        self.at = math.inf
        if engine.dialect.name == "sqlite":

            @event.listens_for(engine, "connect")
            def _progress(dbapi_connection, record) -> None:
                dbapi_connection.set_progress_handler(self._passed, 20_000)
        elif engine.dialect.name == "postgresql":

            @event.listens_for(engine, "before_cursor_execute")
            def _timeout(connection, cursor, statement, parameters, context, many) -> None:
                if self.at != math.inf:
                    left_ms = max(1, int((self.at - time.monotonic()) * 1000))
                    cursor.execute(f"SET LOCAL statement_timeout = {left_ms}")

    def _passed(self) -> int:
        return int(time.monotonic() > self.at)

    def passed(self) -> bool:
        return bool(self._passed())


def checked_report(
    engine: Engine,
    query: Mapping[str, str],
    zone: ZoneInfo,
    now: datetime,
    deadline: QueryDeadline | None = None,
    time_limit: float = REPORT_TIME_LIMIT_SECONDS,
    customers: ReportScope | None = None,
) -> tuple[ReportRequest, ComplianceReport]:
    """The checked request and its report for ``GET /api/reports/compliance?...`` (blocking).

    The query is read through the operation's declaration first (its bounds are
    what ``/api/openapi.json`` publishes), then as the CLI reads its options.
    ``customers``: the caller's scope (``roles.report_scope``: a manager's own customers).
    Every refusal is a :class:`BadRequest` naming the field; the web desk's
    report page (``handlers/web/reports_page.py``) calls this too.
    """
    operation("get_compliance_report").read_values(query)
    try:
        request = report_request(query, zone, now, max_breaches=MAX_REPORT_BREACHES)
        if deadline is not None:
            deadline.at = time.monotonic() + time_limit
        try:
            report = build_report(engine, request, zone, customers)
        finally:
            if deadline is not None:
                timed_out, deadline.at = deadline.passed(), math.inf
    except ReportArgumentError as exc:
        raise BadRequest(422, exc.field, exc.reason) from None
    except ReportUnavailable as exc:
        raise BadRequest(503, None, str(exc)) from None
    except OperationalError as exc:
        if deadline is not None and timed_out:
            raise BadRequest(
                422,
                "to",
                f"the report did not finish within {time_limit:g} s "
                f"over HTTP; ask for a shorter period, or use "
                f"keydesk report compliance",
            ) from None
        log.warning("report.database_unavailable", error=str(exc).splitlines()[0][:300])
        raise BadRequest(503, None, "the reporting database did not answer; retry later") from None
    return request, report


def report_response(
    engine: Engine,
    query: Mapping[str, str],
    zone: ZoneInfo,
    now: datetime,
    deadline: QueryDeadline | None = None,
    time_limit: float = REPORT_TIME_LIMIT_SECONDS,
    customers: ReportScope | None = None,
) -> tuple[int, str, bytes]:
    """Status, content type and body for ``GET /api/reports/compliance?...`` (blocking)."""
    try:
        request, report = checked_report(engine, query, zone, now, deadline, time_limit, customers)
    except BadRequest as exc:
        return _problem(exc.status, exc.field, exc.reason)
    content_type, render = FORMATS[request.format]
    return 200, content_type, render(report, zone).encode()


def _problem(status: int, field: str | None, reason: str) -> tuple[int, str, bytes]:
    """The API's error shape (``handlers/api/http_guard.py``): the reason and the field at fault."""
    return status, "application/json", orjson.dumps(error_body(reason, field))


def _in_daemon_thread(fn: Callable[[], tuple], done: Callable[[], None]) -> asyncio.Future:
    """Run ``fn`` in a thread of its own; ``done`` runs on the loop once the thread ends.

    A daemon thread, not ``asyncio.to_thread``: the default executor's threads
    are joined at exit, so a worker asked to stop waited for a report nobody
    would read (issue 9); a report only reads, so abandoning it loses nothing.
    ``done`` frees the report's slot when the work ends, not when the caller
    stops waiting.
    """
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result, error) -> None:
        done()
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def run() -> None:
        result, error = None, None
        try:
            result = fn()
        except BaseException as exc:  # handed to the awaiting handler, which logs it
            error = exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the loop is closed: the worker is stopping
            pass

    threading.Thread(target=run, name="keydesk-report", daemon=True).start()
    return future


@dataclass
class ReportRuns:
    """One worker's report runs: its engine with the time limit, and its one report slot.

    The API's route and the web desk's report page share them, so a worker runs
    one report at a time whoever asks, each interrupted after
    :data:`REPORT_TIME_LIMIT_SECONDS`, in a thread off the event loop.
    """

    engine: Engine
    deadline: QueryDeadline
    slots: Slots
    zone: ZoneInfo
    clock: Callable[[], datetime]

    async def run(self, work: Callable[[Engine, QueryDeadline, datetime], T]) -> T:
        """``work(engine, deadline, now)`` in a daemon thread, holding the slot (429 when taken)."""
        now = self.clock()
        self.slots.acquire()
        result: T = await _in_daemon_thread(lambda: work(self.engine, self.deadline, now), self.slots.release)
        return result

    async def response(
        self, query: Mapping[str, str], customers: ReportScope | None = None
    ) -> tuple[int, str, bytes]:
        """:func:`report_response` for this worker, over the caller's ``customers``."""
        return await self.run(
            lambda engine, deadline, now: report_response(
                engine, query, self.zone, now, deadline, customers=customers
            )
        )

    async def report(
        self, query: Mapping[str, str], customers: ReportScope | None = None
    ) -> tuple[ReportRequest, ComplianceReport]:
        """:func:`checked_report` for this worker (a :class:`BadRequest` names the field)."""
        return await self.run(
            lambda engine, deadline, now: checked_report(
                engine, query, self.zone, now, deadline, customers=customers
            )
        )


def register_report_routes(
    streams, settings: Settings, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> ReportRuns:
    """Attach ``GET /api/reports/compliance`` to the streams' faust app; its runs, for the pages.

    The queries run in a thread: a report over a year of items takes seconds,
    and the worker's event loop must keep consuming and heartbeating.  One
    report at a time per worker (:data:`MAX_CONCURRENT_REPORTS`; the next gets
    a 429 with ``Retry-After``), interrupted after
    :data:`REPORT_TIME_LIMIT_SECONDS`.
    """
    runs = report_runs(settings.database_url, settings.zone, clock)

    @streams.app.page("/api/reports/compliance")
    async def compliance(web, request):
        caller = identity_of(request)
        assert caller is not None  # the identity's middleware let only a report.read through
        # a manager's report counts their own customers only
        status, content_type, body = await runs.response(dict(request.query), report_scope(caller))
        # a header, not content_type=: aiohttp refuses a charset in that argument
        return web.bytes(body, status=status, headers={"Content-Type": content_type})

    return runs


def report_runs(
    database_url: str, zone: ZoneInfo, clock: Callable[[], datetime] = lambda: datetime.now(UTC)
) -> ReportRuns:
    """A worker's :class:`ReportRuns` over the reporting database at ``database_url``."""
    engine = open_engine(database_url)
    return ReportRuns(
        engine,
        QueryDeadline(engine),
        Slots(MAX_CONCURRENT_REPORTS, "compliance reports", retry_after=REPORT_RETRY_AFTER_SECONDS),
        zone,
        clock,
    )
