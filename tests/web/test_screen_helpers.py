"""The pure parts of screens 7-8: where the report's bars go, what the admin forms send."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from handlers.api.http_guard import BadRequest
from handlers.web.admin_pages import archive_body, archive_form, changed_fields, day_bounds
from handlers.web.report_charts import LABEL_WIDTH, VALUE_WIDTH, WIDTH, bar_chart
from handlers.web.reports_page import default_period, report_query
from handlers.web.rules_page import draft_of, seen_of

ZONE = ZoneInfo("Asia/Shanghai")


def test_a_percentage_bar_is_measured_against_100_and_a_figure_not_measured_gets_no_bar():
    chart = bar_chart(
        [("gold", [50.0, None]), ("diamond", [100.0, 0.0])], ["response", "repair"], maximum=100
    )
    span = WIDTH - LABEL_WIDTH - VALUE_WIDTH
    gold, diamond = chart.rows
    assert [b.width for b in gold.bars] == [span / 2, 0.0] and gold.bars[1].value is None
    assert [b.width for b in diamond.bars] == [span, 0.0]
    assert diamond.y > gold.bars[-1].y  # rows do not overlap
    assert chart.height > diamond.bars[-1].y


def test_counts_are_measured_against_the_largest_and_an_empty_chart_has_a_height():
    chart = bar_chart([("a", [2.0]), ("b", [4.0])], ["breaches"])
    assert chart.maximum == 4.0 and chart.rows[0].bars[0].width == (WIDTH - LABEL_WIDTH - VALUE_WIDTH) / 2
    assert bar_chart([], ["items"]).height > 0


def test_the_report_form_defaults_to_this_local_month_and_passes_the_apis_parameters():
    assert default_period(datetime(2026, 11, 30, 20, tzinfo=UTC), ZONE) == ("2026-12-01", "2027-01-01")
    assert report_query(
        {"from": " 2026-11-01", "to": "2026-12-01", "as_of": "", "lang": "en"}, ["tier", "kind"]
    ) == {
        "from": "2026-11-01",
        "to": "2026-12-01",
        "group_by": "tier,kind",
    }


def test_the_archive_form_sends_only_what_is_filled_in_and_an_edit_only_what_changed():
    form = {
        "customer_id": "C-1",
        "name": " 省厅 ",
        "tier": "",
        "services": '[{"service": "DIA"}]',
        "contacts": "",
    }
    assert archive_body(form, customer_id=True) == {
        "customer_id": "C-1",
        "name": "省厅",
        "services": [{"service": "DIA"}],
    }
    record = {"customer_id": "C-1", "name": "省厅", "services": [{"service": "MPLS"}]}
    assert changed_fields(archive_body(form, customer_id=False), record) == {"services": [{"service": "DIA"}]}
    assert archive_form(record)["services"].startswith("[")
    with pytest.raises(BadRequest) as refused:
        archive_body({"customer_id": "C-1", "contacts": "[{"}, customer_id=True)
    assert (refused.value.status, refused.value.field) == (422, "contacts")


def test_the_audit_forms_local_days_are_whole_local_days_in_utc():
    assert day_bounds("2026-12-01", "2026-12-01", ZONE) == {
        "since": "2026-11-30T16:00:00+00:00",
        "until": "2026-12-01T16:00:00+00:00",
    }
    with pytest.raises(BadRequest) as refused:
        day_bounds("", "tomorrow", ZONE)
    assert refused.value.field == "until"


def test_the_rules_forms_text_gets_the_files_line_breaks_back_and_names_its_revision():
    """A browser sends a textarea's line breaks as CRLF; the rules keep LF (else every line differs)."""
    assert draft_of({"text": 'schema = 1\r\nversion = "x"\r\n'}) == 'schema = 1\nversion = "x"\n'
    assert draft_of({}) == ""
    assert seen_of({"seen": "3"}) == 3
    for bad in ("", "-1", "1.5", "３", "9" * 13):
        with pytest.raises(BadRequest) as refused:
            seen_of({"seen": bad})
        assert (refused.value.status, refused.value.field) == (422, "seen")
