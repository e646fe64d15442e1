"""The compliance report as a terminal table, CSV, JSON or one forwardable HTML file.

Rendering only: every figure comes from :class:`~handlers.reports.model.ComplianceReport`.
The HTML file is meant to be mailed to managers, so it carries everything
inline (CSS, SVG charts drawn here) and nothing that a mail client blocks or
that needs the network: no scripts, no external fonts, images or links.
Instants are stored and exported in UTC; people read them in the local zone,
with the offset shown so a forwarded report cannot be misread.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from dataclasses import asdict, fields
from datetime import datetime, timedelta
from html import escape
from zoneinfo import ZoneInfo

import orjson

from handlers.reports.model import Breach, ComplianceReport, Figures, Week

TABLE_BREACHES = 20  # the terminal shows the first few; CSV/JSON/HTML carry them all
SERIES = (
    ("response_met_pct", "response", "#1f77b4"),
    ("repair_met_pct", "repair", "#d62728"),
    ("provision_met_pct", "provision", "#2ca02c"),
)
NOT_MEASURED = "not measured"  # no clock of the figure in the group: not 0 %, not "none yet"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}%"


def measured_percent(figures: Figures, name: str) -> str:
    """The percentage of ``name`` (response, repair, provision, revisit), or "not measured"."""
    if not getattr(figures, f"{name}_measured"):
        return NOT_MEASURED
    return percent(getattr(figures, "revisit_rate_pct" if name == "revisit" else f"{name}_met_pct"))


def hours_minutes(seconds: float | None) -> str:
    """Durations the way the desk says them: 2:05 is two hours five minutes."""
    if seconds is None:
        return "—"
    minutes = round(seconds / 60)
    return f"{minutes // 60}:{minutes % 60:02d}"


def local_time(instant: datetime | None, zone: ZoneInfo) -> str:
    return "—" if instant is None else instant.astimezone(zone).isoformat(" ", "minutes")


def _mean(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def columns(report: ComplianceReport) -> tuple[tuple[str, Callable[[Figures], str]], ...]:
    """The columns the table and the HTML file show per group, formatted for people.

    The repair column is named for what it counts: "repair" (faults' restore
    clocks), "resolve" (tickets'), or "repair/resolve" for both.
    """
    return (
        ("items", lambda f: str(f.items)),
        ("response", lambda f: measured_percent(f, "response")),
        (report.label("repair"), lambda f: measured_percent(f, "repair")),
        ("provision", lambda f: measured_percent(f, "provision")),
        ("MTTA (bus.)", lambda f: hours_minutes(f.mtta_business_s)),
        ("MTTR (bus.)", lambda f: hours_minutes(f.mttr_business_s)),
        ("breaches", lambda f: str(f.breaches)),
        ("revisit", lambda f: measured_percent(f, "revisit")),
        ("avg sat.", lambda f: _mean(f.avg_satisfaction)),
    )


def _lines(report: ComplianceReport) -> list[tuple[list[str], Figures]]:
    """Group lines then the total, each as (key cells, figures)."""
    width = max(len(report.group_by), 1)
    lines = [([key[d] for d in report.group_by] or ["all"], figures) for key, figures in report.groups]
    return lines + [(["TOTAL"] + [""] * (width - 1), report.total)]


def _breach_what(breach: Breach) -> str:
    return f"{breach.item_kind} {breach.item_id} {breach.metric} #{breach.cycle}"


def _breach_outcome(breach: Breach, zone: ZoneInfo) -> str:
    if breach.overdue:
        return "overdue"
    return f"met late {local_time(breach.met_at, zone)}" if breach.met_at else "breached"


# -- text ------------------------------------------------------------------------------


def as_table(report: ComplianceReport, zone: ZoneInfo) -> str:
    """An aligned table for a terminal, then the earliest breaches."""
    shown = columns(report)
    header = [*(report.group_by or ["group"]), *(name for name, _ in shown)]
    rows = [[*key, *(show(figures) for _, show in shown)] for key, figures in _lines(report)]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    keys = max(len(report.group_by), 1)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i < keys else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ).rstrip()

    out = [
        f"SLA compliance, items opened {local_time(report.period_start, zone)} to "
        f"{local_time(report.period_end, zone)}, as of {local_time(report.as_of, zone)}",
        "",
        line(header),
        line(["-" * w for w in widths]),
        *map(line, rows[:-1]),
        line(["-" * w for w in widths]),
        line(rows[-1]),
        "",
        f"Breaches: {report.total.breaches}" + _listed(report),
    ]
    for breach in report.breaches[:TABLE_BREACHES]:
        out.append(
            f"  due {local_time(breach.deadline, zone)}  {breach.customer_id}  "
            f"{_breach_what(breach)}  {breach.tier}  {_breach_outcome(breach, zone)}"
        )
    if len(report.breaches) > TABLE_BREACHES:
        out.append(f"  … and {len(report.breaches) - TABLE_BREACHES} more (see --format html)")
    return "\n".join(out) + "\n"


def _cell(value) -> object:
    """A CSV cell: null empty, a flag as JSON spells it, a number unformatted."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def as_csv(report: ComplianceReport) -> str:
    """One row per group and a TOTAL row; numbers unformatted so they parse back exactly.

    A figure with no clock in the group is an empty cell with its ``*_measured``
    column ``false`` (an empty cell alone would also mean "no clock decided yet").
    """
    figure_names = [f.name for f in fields(Figures) if f.name != "paused_s"]
    reasons = sorted({r for _, f in _lines(report) for r in f.paused_s})
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*(report.group_by or ["group"]), *figure_names, *(f"paused_s_{r}" for r in reasons)])
    for key, figures in _lines(report):
        values = asdict(figures)
        writer.writerow(
            [
                *key,
                *(_cell(values[n]) for n in figure_names),
                *(figures.paused_s.get(r, 0.0) for r in reasons),
            ]
        )
    return buffer.getvalue()


def as_json(report: ComplianceReport) -> str:
    return orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n"


# -- HTML ------------------------------------------------------------------------------

STYLE = """
body{font:14px/1.45 -apple-system,"Segoe UI","PingFang SC","Microsoft YaHei",sans-serif;
color:#222;margin:24px auto;max-width:1100px;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px}
.sub{color:#666;margin:0 0 16px}
.tiles{display:flex;flex-wrap:wrap;gap:10px}
.tile{border:1px solid #ddd;border-radius:6px;padding:8px 14px;min-width:110px}
.tile b{display:block;font-size:20px}.tile span{color:#666;font-size:12px}
table{border-collapse:collapse;width:100%}th,td{padding:4px 8px;border-bottom:1px solid #eee;
text-align:left;vertical-align:top}td.n,th.n{text-align:right;white-space:nowrap}
tfoot td{font-weight:bold;border-top:2px solid #999}
.charts{display:flex;flex-wrap:wrap;gap:24px}
svg text{font-size:11px;fill:#444}ol{margin:0;padding-left:18px}.late{color:#c00}
"""


def as_html(report: ComplianceReport, zone: ZoneInfo) -> str:
    """One self-contained page: summary tiles, the group table, three charts, the breaches."""
    title = f"SLA compliance {local_time(report.period_start, zone)} – {local_time(report.period_end, zone)}"
    return "".join(
        [
            f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
            f"<h1>{escape(title)}</h1>",
            f'<p class="sub">Items opened in the period, figures as of '
            f"{escape(local_time(report.as_of, zone))} ({escape(zone.key)}).</p>",
            _tiles(report),
            "<h2>By group</h2>",
            _group_table(report),
            "<h2>Compliance per week</h2>",
            line_chart(report.weekly_trend, report.label("repair")),
            '<div class="charts"><div><h2>Breaches by tier</h2>',
            bar_chart(list(report.breaches_by_tier.items()), "Breaches by tier", gap=0.3),
            f"</div><div><h2>Time to {escape(report.label('repair'))} (business hours)</h2>",
            bar_chart(report.mttr_distribution, "MTTR distribution", gap=0.02),
            "</div></div>",
            f"<h2>Breaches ({report.total.breaches}){escape(_listed(report))}</h2>",
            _breach_table(report.breaches, zone),
            "</body></html>\n",
        ]
    )


def _tiles(report: ComplianceReport) -> str:
    total = report.total
    tiles = [
        ("items opened", str(total.items)),
        ("response met", measured_percent(total, "response")),
        (f"{report.label('repair')} met", measured_percent(total, "repair")),
        ("provision met", measured_percent(total, "provision")),
        ("breaches", str(total.breaches)),
        ("MTTR (business)", hours_minutes(total.mttr_business_s)),
        ("revisited", measured_percent(total, "revisit")),
        ("satisfaction", _mean(total.avg_satisfaction)),
    ]
    return (
        '<div class="tiles">'
        + "".join(
            f'<div class="tile"><b>{escape(value)}</b><span>{escape(label)}</span></div>'
            for label, value in tiles
        )
        + "</div>"
    )


def _group_table(report: ComplianceReport) -> str:
    keys = report.group_by or ["group"]
    shown = columns(report)
    head = "".join(f"<th>{escape(k)}</th>" for k in keys) + "".join(
        f'<th class="n">{escape(name)}</th>' for name, _ in shown
    )

    def row(key: list[str], figures: Figures) -> str:
        return (
            "<tr>"
            + "".join(f"<td>{escape(k)}</td>" for k in key)
            + "".join(f'<td class="n">{escape(show(figures))}</td>' for _, show in shown)
            + "</tr>"
        )

    lines = _lines(report)
    return (
        f"<table><thead><tr>{head}</tr></thead><tbody>"
        + "".join(row(k, f) for k, f in lines[:-1])
        + f"</tbody><tfoot>{row(*lines[-1])}</tfoot></table>"
    )


def _listed(report: ComplianceReport) -> str:
    """Say so when the breach list is shorter than the count (``--breaches``)."""
    shown = len(report.breaches)
    return f", the first {shown} by deadline" if shown < report.total.breaches else ""


def _breach_table(breaches: list[Breach], zone: ZoneInfo) -> str:
    if not breaches:
        return "<p>No breaches.</p>"
    rows = []
    for b in breaches:
        steps = "".join(
            f"<li>{escape(local_time(s.occurred_at, zone))} {escape(s.event_type)}"
            + "".join(
                f" · {escape(str(v))}"
                for v in (s.step is not None and f"step {s.step}", s.role, s.threshold, s.actor, s.note)
                if v
            )
            + "</li>"
            for s in b.steps
        )
        rows.append(
            f"<tr><td>{escape(local_time(b.deadline, zone))}</td><td>{escape(b.customer_id)}</td>"
            f"<td>{escape(_breach_what(b))}</td>"
            f"<td>{escape(b.tier)} {escape(b.priority or '')}</td>"
            f'<td class="late">{escape(_breach_outcome(b, zone))}</td>'
            f"<td><ol>{steps}</ol></td></tr>"
        )
    return (
        "<table><thead><tr><th>deadline</th><th>customer</th><th>clock</th><th>tier</th>"
        "<th>outcome</th><th>escalation history</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
    )


# -- SVG charts ------------------------------------------------------------------------

WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 240, 40, 40, 20


def _svg(label: str, width: int, body: list[str]) -> str:
    return (
        f'<svg role="img" width="{width}" '
        f'height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" aria-label="{escape(label)}">'
        f"<title>{escape(label)}</title>{''.join(body)}</svg>"
    )


def _y(fraction: float) -> float:
    """Chart height of a 0..1 fraction; SVG's y grows downwards."""
    return HEIGHT - BOTTOM - fraction * (HEIGHT - BOTTOM - TOP)


def _axis(top_label: str, width: int) -> list[str]:
    ticks = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        y = _y(tick)
        ticks.append(f'<line x1="{LEFT}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#eee"/>')
    return ticks + [
        f'<text x="{LEFT - 4}" y="{_y(1) + 4:.1f}" text-anchor="end">{escape(top_label)}</text>',
        f'<text x="{LEFT - 4}" y="{_y(0) + 4:.1f}" text-anchor="end">0</text>',
    ]


def line_chart(weeks: list[Week], repair_label: str = "repair") -> str:
    """The three percentages per week, placed by date; no data (a null, a quiet week) is a gap."""
    if not weeks:
        return _svg("Compliance per week (% met)", WIDTH, [*_axis("100%", WIDTH), _no_data(WIDTH)])
    first = weeks[0].week_start
    by_slot = {(w.week_start - first).days // 7: w for w in weeks}
    slots = range(max(by_slot) + 1)
    step = (WIDTH - LEFT - 50) / max(len(slots) - 1, 1)
    xs = [LEFT + 20 + i * step for i in slots]
    body = _axis("100%", WIDTH)
    for i in slots[:: len(slots) // 16 + 1]:
        body.append(
            f'<text x="{xs[i]:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
            f"{first + timedelta(weeks=i):%m-%d}</text>"
        )
    for n, (attr, name, colour) in enumerate(SERIES):
        points = [(x, getattr(by_slot[i], attr) if i in by_slot else None) for i, x in zip(slots, xs)]
        for segment in _segments(points):
            path = " ".join(f"{x:.1f},{_y(v / 100):.1f}" for x, v in segment)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        body += [
            f'<circle cx="{x:.1f}" cy="{_y(v / 100):.1f}" r="3" fill="{colour}"/>'
            for x, v in points
            if v is not None
        ]
        name = repair_label if name == "repair" else name
        body.append(
            f'<rect x="{LEFT + 10 + n * 130}" y="{HEIGHT - 14}" width="10" height="10" '
            f'fill="{colour}"/><text x="{LEFT + 24 + n * 130}" y="{HEIGHT - 5}">'
            f"{escape(name)} met</text>"
        )
    return _svg("Compliance per week (% met)", WIDTH, body)


def _no_data(width: int) -> str:
    return f'<text x="{width / 2}" y="{HEIGHT / 2}" text-anchor="middle">no data</text>'


def _segments(points: list[tuple[float, float | None]]) -> list[list[tuple[float, float]]]:
    """Runs of consecutive known values (a null percentage is no data, not 0 %)."""
    runs: list[list[tuple[float, float]]] = [[]]
    for x, value in points:
        if value is None:
            runs.append([])
        else:
            runs[-1].append((x, value))
    return [run for run in runs if run]


def bar_chart(bars: Sequence[tuple[str, int]], label: str, gap: float) -> str:
    """Vertical bars with their counts; ``gap`` is the space between bars (0..1 of a slot)."""
    width = 420
    top = max([n for _, n in bars] + [1])
    slot = min((width - LEFT - 10) / max(len(bars), 1), 90)  # one tier: a bar, not a wall
    body = _axis(str(top), width)
    for i, (name, count) in enumerate(bars):
        x, y = LEFT + 5 + i * slot + slot * gap / 2, _y(count / top)
        body.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * (1 - gap):.1f}" '
            f'height="{_y(0) - y:.1f}" fill="#4c72b0"/>'
            f'<text x="{x + slot * (1 - gap) / 2:.1f}" y="{y - 3:.1f}" '
            f'text-anchor="middle">{count}</text>'
            f'<text x="{x + slot * (1 - gap) / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" '
            f'text-anchor="middle">{escape(name)}</text>'
        )
    if not bars:
        body.append(_no_data(width))
    return _svg(label, width, body)
