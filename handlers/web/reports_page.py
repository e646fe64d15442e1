"""Screen 7, the compliance report in the browser: ``GET /reports`` and its downloads.

The period and the grouping are chosen in a form (GET, so a report is a link to
forward); the page runs the report the API runs (``checked_report`` through
the worker's :class:`~handlers.reports.commands.ReportRuns`: the same checks,
the same one-at-a-time slot and time limit), so its figures are those of
``keydesk report compliance`` for the same period.  The charts are inline SVG
drawn on the server (``report_charts.py``), each with its figures in a table
beside it.  ``/reports/export?format=csv|html`` answers the API's own renderers'
output (``handlers/reports/output.py``) as a download.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from handlers.api.http_guard import BadRequest
from handlers.identity.guard import identity_of
from handlers.identity.roles import ReportScope, report_scope
from handlers.reports.arguments import DIMENSIONS
from handlers.reports.commands import ReportRuns
from handlers.reports.model import ComplianceReport
from handlers.reports.output import SERIES, hours_minutes
from handlers.web.report_charts import bar_chart
from handlers.web.screen_support import install_screen_support, render_screen

#: the formats the page offers as downloads, and the file name's extension of each
DOWNLOADS = {"csv": "csv", "html": "html"}
#: the figure families of the report, in the order the page shows them
FAMILIES = ("response", "repair", "provision")
#: what the page passes on to the report: the API's parameter names
_PASSED = ("from", "to", "as_of")


def default_period(now: datetime, zone: ZoneInfo) -> tuple[str, str]:
    """This local month so far: from its first day to the first day of the next (exclusive)."""
    local = now.astimezone(zone).date()
    first = local.replace(day=1)
    following = (first + timedelta(days=32)).replace(day=1)
    return first.isoformat(), following.isoformat()


def report_query(params: Mapping[str, str], group_by: list[str]) -> dict[str, str]:
    """The API's query of the form's fields: ``group_by`` checkboxes joined as the API spells it."""
    query = {name: params[name].strip() for name in _PASSED if params.get(name, "").strip()}
    if group_by:
        query["group_by"] = ",".join(group_by)
    return query


def charts(report: ComplianceReport) -> list[dict[str, Any]]:
    """The page's charts: share met per group (each measured family), per week, breaches, MTTR."""
    lines = [(" · ".join(key[d] for d in report.group_by), figures) for key, figures in report.groups]
    measured = [f for f in FAMILIES if getattr(report.total, f"{f}_measured")]
    found: list[dict[str, Any]] = []
    if measured and lines:
        found.append(
            {
                "id": "met-by-group",
                "kind": "met_by_group",
                "families": measured,
                "chart": bar_chart(
                    [(label, [getattr(f, f"{m}_met_pct") for m in measured]) for label, f in lines],
                    measured,
                    maximum=100,
                ),
                "percent": True,
            }
        )
    if report.weekly_trend:
        names = [name for attr, name, _ in SERIES if name in measured]
        attrs = [attr for attr, name, _ in SERIES if name in measured]
        if names:
            found.append(
                {
                    "id": "per-week",
                    "kind": "per_week",
                    "families": names,
                    "chart": bar_chart(
                        [
                            (w.week_start.isoformat(), [getattr(w, a) for a in attrs])
                            for w in report.weekly_trend
                        ],
                        names,
                        maximum=100,
                    ),
                    "percent": True,
                }
            )
    found.append(
        {
            "id": "breaches-by-tier",
            "kind": "breaches_by_tier",
            "families": ["breaches"],
            "chart": bar_chart([(t, [float(n)]) for t, n in report.breaches_by_tier.items()], ["breaches"]),
            "percent": False,
        }
    )
    found.append(
        {
            "id": "mttr",
            "kind": "mttr",
            "families": ["items"],
            "chart": bar_chart([(b, [float(n)]) for b, n in report.mttr_distribution], ["items"]),
            "percent": False,
        }
    )
    return found


def scope_of(request: web.Request) -> ReportScope | None:
    """Whose items the caller's report counts (``roles.report_scope``): the API's rule."""
    caller = identity_of(request)
    assert caller is not None  # the identity's middleware let only a report.read through
    return report_scope(caller)


def register_report_page(web_app: web.Application, runs: ReportRuns, zone: ZoneInfo) -> None:
    """Attach ``/reports`` and ``/reports/export`` to the worker's aiohttp application."""
    install_screen_support(web_app, zone)

    async def reports(request: web.Request) -> web.Response:
        params = request.query
        group_by = [d for d in params.getall("group_by", []) if d in DIMENSIONS] or (
            ["tier"] if "from" not in params else []
        )
        start, end = default_period(runs.clock(), zone)
        form = {
            "from": params.get("from", start),
            "to": params.get("to", end),
            "as_of": params.get("as_of", ""),
            "group_by": group_by,
        }
        query = report_query(form, group_by)
        context: dict[str, Any] = {
            "form": form,
            "dimensions": DIMENSIONS,
            "problem": None,
            "report": None,
            "zone": zone.key,
        }
        status = 200
        try:
            # a manager's report counts their own customers only, as the API's
            request_, report = await runs.report(query, scope_of(request))
        except BadRequest as exc:
            status = exc.status
            context["problem"] = {"status": exc.status, "field": exc.field, "reason": exc.reason}
        else:
            context.update(
                report=report,
                lines=[([key[d] for d in report.group_by], f) for key, f in report.groups],
                families=FAMILIES,
                charts=charts(report),
                downloads={fmt: {**query, "format": fmt} for fmt in DOWNLOADS},
                hours_minutes=hours_minutes,
                breach_limit=request_.breach_limit,
            )
        return render_screen(request, "reports.html", context, status=status)

    async def export(request: web.Request) -> web.Response:
        """The API's CSV or HTML rendering of the report, as a file to keep or forward."""
        fmt = request.query.get("format", "")
        if fmt not in DOWNLOADS:
            raise BadRequest(422, "format", f"download as one of {', '.join(DOWNLOADS)}")
        group_by = [g for g in request.query.get("group_by", "").split(",") if g]
        query = {**report_query(request.query, []), "format": fmt}
        if group_by:
            query["group_by"] = ",".join(group_by)
        status, content_type, body = await runs.response(query, scope_of(request))
        headers = {"Content-Type": content_type}
        if status == 200:
            name = f"compliance-{query.get('from', '')}-{query.get('to', '')}.{DOWNLOADS[fmt]}"
            safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
            headers["Content-Disposition"] = f'attachment; filename="{safe}"'
        return web.Response(body=body, status=status, headers=headers)

    web_app.router.add_get("/reports", reports)
    web_app.router.add_get("/reports/export", export)
