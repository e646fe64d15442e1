"""The compliance report as people and programs receive it: table, CSV, JSON, HTML, CLI, API."""

from __future__ import annotations

import argparse
import csv
import io
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import faust
import orjson
import pytest
from sqlalchemy import insert

from handlers.identity.guard import _IDENTITY as IDENTITY_KEY  # where the middleware puts the caller
from handlers.identity.roles import Identity
from handlers.reports.commands import add_report_parser, register_report_routes, run_report
from handlers.reports.model import Breach, ComplianceReport, Figures, Step, Week
from handlers.reports.output import as_csv, as_html, as_json, as_table, hours_minutes, line_chart
from schemas.reporting_db import open_engine, upgrade
from schemas.reporting_tables import Item
from streams.settings import Settings

BEIJING = ZoneInfo("Asia/Shanghai")
NASTY = "<b>&"  # a customer name that breaks HTML if not escaped


def utc(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


def sample_report() -> ComplianceReport:
    """Two customers, one breach with its escalation, a trend with an empty week.

    No orders (provision is not measured anywhere), and C-2 has no revisit clock.
    """
    nasty = Figures(
        items=2,
        response_met=1,
        response_breached=1,
        response_met_pct=50.0,
        response_measured=True,
        repair_breached=1,
        repair_met_pct=0.0,
        repair_measured=True,
        mttr_business_s=3900.0,
        paused_s={"pending_customer": 600.0},
        breaches=2,
        closed=1,
        revisit_rate_pct=100.0,
        revisit_measured=True,
        avg_satisfaction=4.0,
    )
    quiet = Figures(
        items=1, response_met=1, response_met_pct=100.0, response_measured=True, mtta_business_s=600.0
    )
    total = Figures(
        items=3,
        response_met=2,
        response_breached=1,
        response_met_pct=200 / 3,
        response_measured=True,
        repair_breached=1,
        repair_met_pct=0.0,
        repair_measured=True,
        mtta_business_s=600.0,
        mttr_business_s=3900.0,
        paused_s={"pending_customer": 600.0},
        breaches=2,
        closed=1,
        revisit_rate_pct=100.0,
        revisit_measured=True,
        avg_satisfaction=4.0,
    )
    steps = (
        Step("sla.breached", utc(10, 5), None, None, None, None, None),
        Step("sla.escalation_due", utc(10, 5, 30), 1, "account_manager", None, None, None),
        Step(
            "sla.escalation_acknowledged", utc(10, 6), None, None, None, "李敏", "called <them> & apologised"
        ),
    )
    breach = Breach(
        NASTY, "fault", "F-1", "restore", 1, "diamond", "P1", utc(10, 5), utc(10, 7), False, steps
    )
    return ComplianceReport(
        period_start=datetime(2026, 11, 1, tzinfo=BEIJING),
        period_end=datetime(2026, 12, 1, tzinfo=BEIJING),
        as_of=utc(30, 4),
        group_by=("customer",),
        zone=BEIJING,
        groups=[({"customer": NASTY}, nasty), ({"customer": "C-2"}, quiet)],
        total=total,
        breaches=[breach],
        weekly_trend=[
            Week(date(2026, 11, 2), 2, 50.0, 0.0, None),
            Week(date(2026, 11, 16), 1, 100.0, None, None),
            Week(date(2026, 11, 23), 1, 100.0, None, None),
        ],
        breaches_by_tier={"diamond": 1},
        mttr_distribution=[
            ("0-1h", 0),
            ("1-2h", 1),
            ("2-4h", 0),
            ("4-8h", 0),
            ("8-24h", 0),
            ("1-3d", 0),
            (">3d", 0),
        ],
    )


class TestTable:
    def test_groups_then_a_total_line_in_aligned_columns(self):
        """Numbers are right-aligned: each ends where its column header ends."""
        lines = as_table(sample_report(), BEIJING).splitlines()
        header = next(line for line in lines if line.startswith("customer"))
        rows = [line for line in lines if line.startswith(("C-2", NASTY, "TOTAL"))]
        ends = [m.end() for m in re.finditer(r"\S+(?: \S+)?", header)][1:]
        assert len(rows) == 3 and all(row[end - 1] != " " for row in rows for end in ends)
        assert "1:05" in rows[-1] and "66.7%" in rows[-1] and "not measured" in rows[-1]

    def test_a_figure_without_clocks_reads_not_measured(self):
        """No order, no provision clock: "not measured", where a figure with clocks shows a percentage."""
        lines = as_table(sample_report(), BEIJING).splitlines()
        cells = [
            re.split(r"\s{2,}", line.strip()) for line in lines if line.startswith(("customer", "C-2", NASTY))
        ]
        header, nasty, quiet = (dict(zip(cells[0], row)) for row in cells)
        assert quiet["provision"] == nasty["provision"] == "not measured"  # no orders at all
        assert quiet["revisit"] == "not measured" and nasty["revisit"] == "100.0%"

    def test_a_figure_with_only_running_clocks_is_a_dash(self):
        """Measured but nothing decided yet is not the same as not measured."""
        open_only = Figures(items=1, repair_open=1, repair_measured=True)
        report = replace(sample_report(), groups=[({"customer": "C-3"}, open_only)])
        lines = as_table(report, BEIJING).splitlines()
        cells = [re.split(r"\s{2,}", line.strip()) for line in lines if line.startswith(("customer", "C-3"))]
        row = dict(zip(*cells))
        assert row["repair/resolve"] == "—"
        assert [row[c] for c in ("response", "provision", "revisit")] == ["not measured"] * 3

    def test_the_repair_column_is_named_for_the_kinds_it_counts(self):
        """Tickets are resolved, not repaired: a tickets-only report says "resolve"."""

        def header(kinds):
            text = as_table(replace(sample_report(), repair_kinds=kinds), BEIJING)
            return next(line for line in text.splitlines() if line.startswith("customer")).split()

        assert "resolve" in header(("ticket",)) and "repair" not in header(("ticket",))
        assert "repair" in header(("fault",)) and "resolve" not in header(("fault",))
        assert "repair/resolve" in header(("fault", "ticket"))

    def test_the_breach_list_shows_local_deadlines(self):
        """A 05:00 UTC deadline reads 13:00 in Beijing, offset shown."""
        assert "due 2026-11-10 13:00+08:00" in as_table(sample_report(), BEIJING)

    def test_durations_read_as_hours_and_minutes(self):
        assert [hours_minutes(s) for s in (0, 59, 3900, 90000, None)] == [
            "0:00",
            "0:01",
            "1:05",
            "25:00",
            "—",
        ]


class TestCsv:
    def test_one_row_per_group_and_a_total_that_parse_back(self):
        """Numbers are written whole, nulls as empty cells, pauses as their own columns."""
        rows = list(csv.DictReader(io.StringIO(as_csv(sample_report()))))
        assert [r["customer"] for r in rows] == [NASTY, "C-2", "TOTAL"]
        assert float(rows[2]["response_met_pct"]) == 200 / 3
        assert rows[1]["repair_met_pct"] == "" and rows[1]["paused_s_pending_customer"] == "0.0"
        assert float(rows[0]["paused_s_pending_customer"]) == 600.0
        assert "paused_s" not in rows[0]

    def test_a_figure_not_measured_is_an_empty_cell_with_a_false_flag(self):
        """The flag tells "no clock at all" from "no clock decided yet", as in JSON."""
        rows = list(csv.DictReader(io.StringIO(as_csv(sample_report()))))
        assert (rows[1]["revisit_rate_pct"], rows[1]["revisit_measured"]) == ("", "false")
        assert (rows[0]["revisit_rate_pct"], rows[0]["revisit_measured"]) == ("100.0", "true")
        assert {r["provision_measured"] for r in rows} == {"false"}


class TestJson:
    def test_json_round_trips_to_the_report_dict(self):
        report = sample_report()
        assert orjson.loads(as_json(report)) == report.to_dict()

    def test_a_figure_not_measured_is_null_with_its_flag(self):
        """Null plus a false flag, never 0."""
        quiet = orjson.loads(as_json(sample_report()))["groups"][1]
        assert (quiet["revisit_rate_pct"], quiet["revisit_measured"]) == (None, False)
        assert (quiet["provision_met_pct"], quiet["provision_measured"]) == (None, False)
        assert quiet["response_measured"] is True


class TestHtml:
    def test_the_page_is_self_contained(self):
        """No scripts, no network: it must survive being forwarded by mail."""
        page = as_html(sample_report(), BEIJING).lower()
        assert "<script" not in page and "http://" not in page and "https://" not in page
        assert "url(" not in page and "@import" not in page

    def test_the_three_charts_are_inline_svg(self):
        page = as_html(sample_report(), BEIJING)
        assert page.count("<svg") == 3
        for label in ("Compliance per week", "Breaches by tier", "MTTR distribution"):
            assert f'aria-label="{label}' in page

    def test_text_is_escaped(self):
        """A customer called '<b>&' and a note with markup come out as text."""
        page = as_html(sample_report(), BEIJING)
        assert "&lt;b&gt;&amp;" in page and NASTY not in page
        assert "called &lt;them&gt; &amp; apologised" in page

    def test_escalation_history_is_in_local_time(self):
        page = as_html(sample_report(), BEIJING)
        assert "2026-11-10 13:30+08:00 sla.escalation_due · step 1 · account_manager" in page
        assert "as of 2026-11-30 12:00+08:00" in page

    def test_a_quiet_week_breaks_the_line(self):
        """No items in the week of 9 November: a gap, not a line through it."""
        chart = line_chart(sample_report().weekly_trend)
        response = re.findall(r'<polyline points="([^"]*)" fill="none" stroke="#1f77b4"', chart)
        assert [len(points.split()) for points in response] == [1, 2]

    def test_a_week_without_clocks_of_a_kind_leaves_that_line_out(self):
        """A null percentage is no data, not a drop to 0 %."""
        chart = line_chart(sample_report().weekly_trend)
        assert chart.count('stroke="#d62728"') == 1  # repair: the first week only

    def test_not_measured_and_the_repair_label_reach_the_page(self):
        """Tiles, table, legend and the MTTR chart say what a tickets-only desk measures."""
        page = as_html(replace(sample_report(), repair_kinds=("ticket",)), BEIJING)
        assert "<b>not measured</b><span>provision met</span>" in page
        assert "<span>resolve met</span>" in page and ">resolve met</text>" in page
        assert "Time to resolve (business hours)" in page and "repair" not in page

    def test_a_period_without_items_still_draws_three_charts(self):
        report = replace(sample_report(), weekly_trend=[], breaches_by_tier={}, breaches=[])
        page = as_html(report, BEIJING)
        assert page.count("<svg") == 3 and "No breaches." in page


# -- entry points ----------------------------------------------------------------------


@pytest.fixture
def settings(tmp_path) -> Settings:
    """Settings on a migrated SQLite database holding one fault of a tricky customer."""
    engine = open_engine(f"sqlite:///{tmp_path / 'report.sqlite'}")
    upgrade(engine)
    opened = datetime(2026, 11, 10, 1, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            insert(Item),
            {
                "customer_id": NASTY,
                "kind": "fault",
                "item_id": "F-1",
                "state": "dispatched",
                "closed": False,
                "opened_at": opened,
                "last_event_at": opened,
                "tier": "gold",
                "tier_assumed": False,
                "reopen_count": 0,
                "attributes": {},
                "milestones": {},
            },
        )
    engine.dispose()
    return Settings(db_url=f"sqlite:///{tmp_path / 'report.sqlite'}")


def cli(*argv: str):
    parser = argparse.ArgumentParser(prog="keydesk")
    add_report_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["report", "compliance", *argv])


class TestCommand:
    def test_prints_the_report(self, settings, capsys):
        args = cli(
            "--from",
            "2026-11-01",
            "--to",
            "2026-12-01",
            "--group-by",
            "tier",
            "--as-of",
            "2026-12-01T00:00:00+08:00",
            "--format",
            "json",
        )
        assert run_report(args, settings) == 0
        result = orjson.loads(capsys.readouterr().out)
        assert [(g["key"], g["items"]) for g in result["groups"]] == [({"tier": "gold"}, 1)]

    def test_writes_the_output_file(self, settings, tmp_path):
        target = tmp_path / "report.html"
        args = cli("--from", "2026-11-01", "--to", "2026-12-01", "--format", "html", "--output", str(target))
        assert run_report(args, settings, clock=lambda: utc(30, 0)) == 0
        assert target.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")

    @pytest.mark.parametrize(
        ("argv", "option"),
        [
            (("--from", "2026-11-01", "--to", "2026-12-01", "--group-by", "colour"), "--group-by"),
            (("--from", "2026-12-01", "--to", "2026-11-01"), "--to"),
            (("--from", "yesterday", "--to", "2026-11-01"), "--from"),
            (("--from", "2026-11-01", "--to", "2026-12-01", "--as-of", "2026-11-05T09:00"), "--as-of"),
            (("--from", "2026-11-01", "--to", "2026-12-01", "--breaches", "-3"), "--breaches"),
        ],
    )
    def test_bad_arguments_are_named_and_exit_2(self, settings, capsys, argv, option):
        assert run_report(cli(*argv), settings) == 2
        assert capsys.readouterr().err.startswith(f"keydesk: {option}: ")

    def test_an_unmigrated_database_is_explained(self, tmp_path, capsys):
        empty = Settings(db_url=f"sqlite:///{tmp_path / 'empty.sqlite'}")
        assert run_report(cli("--from", "2026-11-01", "--to", "2026-12-01"), empty) == 1
        assert "no tables yet" in capsys.readouterr().err


#: a report reader's request: the whole desk's report
READER = Identity("reader", "user", "s-reader", roles=frozenset({"report_reader"}))


@pytest.fixture
def route(settings):
    """The report's view, registered on a real (never started) faust app."""
    app = faust.App("keydesk-report-test", autodiscover=False)
    register_report_routes(SimpleNamespace(app=app), settings, clock=lambda: utc(30, 0))
    view = app.web.views["/api/reports/compliance"]

    class Request(dict):
        """What the view reads of a request: its query, and the caller the identity's middleware set."""

        def __init__(self, query: dict[str, str], caller: Identity) -> None:
            super().__init__({IDENTITY_KEY: caller})
            self.query = query

    async def get(caller: Identity = READER, **query: str):
        return await view.get(Request(query, caller))

    return get


class TestHttpRoute:
    @pytest.mark.parametrize(
        ("fmt", "content_type"),
        [
            ("json", "application/json"),
            ("csv", "text/csv; charset=utf-8"),
            ("html", "text/html; charset=utf-8"),
            ("table", "text/plain; charset=utf-8"),
        ],
    )
    async def test_each_format_has_its_content_type(self, route, fmt, content_type):
        response = await route(**{"from": "2026-11-01", "to": "2026-12-01", "format": fmt})
        assert (response.status, response.headers["Content-Type"]) == (200, content_type)

    async def test_a_managers_report_counts_only_their_customers(self, route):
        """The stored customer is nobody's in the customers table: a regional manager's report is empty."""
        period = {"from": "2026-11-01", "to": "2026-12-01"}
        everyone = orjson.loads((await route(**period)).body)["total"]["items"]
        manager = Identity("m", "user", "s-m", roles=frozenset({"manager"}), staff_id="DH-9", region="湖南省")
        mine = orjson.loads((await route(manager, **period)).body)["total"]["items"]
        assert (everyone > 0, mine) == (True, 0)

    async def test_json_is_the_default(self, route):
        response = await route(**{"from": "2026-11-01", "to": "2026-12-01", "group_by": "customer"})
        assert orjson.loads(response.body)["groups"][0]["key"] == {"customer": NASTY}

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ({"from": "2026-11-01"}, "to"),
            ({"from": "2026-11-01", "to": "2026-12-01", "group_by": "colour"}, "group_by"),
            ({"from": "2026-11-01", "to": "2026-12-01", "as_of": "noon"}, "as_of"),
            ({"from": "2026-11-01", "to": "2026-12-01", "format": "pdf"}, "format"),
        ],
    )
    async def test_bad_fields_are_named(self, route, query, field):
        response = await route(**query)
        assert response.status == 422
        assert orjson.loads(response.body)["field"] == field
