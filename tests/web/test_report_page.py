"""Screen 7, the compliance report page, in a real browser: the report's own figures, charts, downloads."""

from __future__ import annotations

import csv
import io
from urllib.parse import urlencode

import pytest

from handlers.reports.commands import build_report, report_request
from handlers.reports.output import as_csv
from schemas.reporting_db import open_engine
from tests.web.conftest import PHONE, scrolls_sideways, serious_accessibility_problems
from tests.web.desk_screens import ADMIN, HOTLINE, MANAGER, NOW, PERIOD, READER, ZONE, signed_in

#: November by tier, as of the screens' instant
BY_TIER = urlencode({**PERIOD, "group_by": "tier", "as_of": NOW.isoformat()})


def expected_report(base_dir, group_by: str):
    """The report ``keydesk report compliance`` makes of the same database, period and instant."""
    engine = open_engine(f"sqlite:///{base_dir / 'desk.sqlite'}")
    try:
        values = {**PERIOD, "group_by": group_by, "as_of": NOW.isoformat()}
        return build_report(engine, report_request(values, ZONE, NOW), ZONE)
    finally:
        engine.dispose()


async def page_figures(page) -> list[dict[str, str]]:
    """Each row of the figures table (groups, then the total) as figure name -> the value it carries."""
    return await page.evaluate(
        """() => [...document.querySelectorAll('#figures tbody tr, #figures tfoot tr')].map(row =>
            Object.fromEntries([...row.querySelectorAll('[data-figure]')]
                .map(cell => [cell.dataset.figure, cell.dataset.value])))"""
    )


def as_cells(figures) -> dict[str, str]:
    def cell(value) -> str:
        return "" if value is None else str(value)

    names = (
        "items",
        "response_met_pct",
        "repair_met_pct",
        "provision_met_pct",
        "mtta_business_s",
        "mttr_business_s",
        "breaches",
        "revisit_rate_pct",
        "avg_satisfaction",
    )
    return {name: cell(getattr(figures, name)) for name in names}


async def test_a_report_reader_sees_the_reports_figures_by_tier_with_charts_and_no_action_buttons(
    browser, back_office, tmp_path
):
    page = await signed_in(browser, back_office, READER)
    await page.goto(f"{back_office}/reports?{BY_TIER}")
    expected = expected_report(tmp_path, "tier")
    assert await page_figures(page) == [as_cells(f) for _, f in expected.groups] + [as_cells(expected.total)]
    assert expected.total.items == 2 and expected.total.breaches >= 1  # the figures are not empty ones
    # charts drawn in the page, each with a title and its figures in a table beside it
    charts = page.locator("svg.bars")
    assert await charts.count() >= 3
    for n in range(await charts.count()):
        assert await charts.nth(n).locator("title").text_content()
    # the only buttons are the report form's own: nothing to change, nothing to act on
    assert await page.locator("main button").all_inner_texts() == ["生成报表"]
    nav = await page.get_by_role("navigation", name="服务台").inner_text()
    assert "报表" in nav and "用户" not in nav


async def test_the_period_and_grouping_are_chosen_in_the_form(browser, back_office, tmp_path):
    page = await signed_in(browser, back_office, MANAGER, language="en")
    await page.goto(f"{back_office}/reports")
    # the default: this month, by tier
    assert await page.get_by_label("Items opened from (local date)").input_value() == "2026-11-01"
    await page.get_by_role("checkbox", name="Tier", exact=True).uncheck()
    await page.get_by_role("checkbox", name="Customer", exact=True).check()
    await page.get_by_text("Figures as of another instant").click()  # the form's details open
    await page.get_by_label("As of (ISO instant with offset, empty: now)").fill(NOW.isoformat())
    await page.get_by_role("button", name="Show the report").click()
    await page.wait_for_url("**group_by=customer**")
    expected = expected_report(tmp_path, "customer")
    assert await page_figures(page) == [as_cells(f) for _, f in expected.groups] + [as_cells(expected.total)]
    assert await page.locator("#figures thead th").first.inner_text() == "Customer"


async def test_a_bad_period_is_named_in_the_page(browser, back_office):
    page = await signed_in(browser, back_office, READER, language="en")
    answer = await page.goto(f"{back_office}/reports?from=2026-12-01&to=2026-11-01")
    assert answer.status == 422
    assert "to" in await page.get_by_role("alert").inner_text()


async def test_the_csv_and_html_downloads_are_the_reports_own_renderings(browser, back_office, tmp_path):
    page = await signed_in(browser, back_office, READER)
    await page.goto(f"{back_office}/reports?{BY_TIER}")
    async with page.expect_download() as started:
        await page.get_by_role("link", name="CSV").click()
    download = await started.value
    assert download.suggested_filename == "compliance-2026-11-01-2026-12-01.csv"
    text = open(await download.path(), encoding="utf-8").read()
    assert text == as_csv(expected_report(tmp_path, "tier"))
    assert list(csv.reader(io.StringIO(text)))[0][0] == "tier"
    html = await page.request.get(
        f"{back_office}/reports/export?from=2026-11-01&to=2026-12-01&group_by=tier&format=html"
    )
    assert html.status == 200 and (await html.text()).startswith("<!DOCTYPE html>")
    assert html.headers["content-disposition"].startswith("attachment;")


@pytest.mark.parametrize("who", [HOTLINE, ADMIN])
async def test_a_user_without_the_report_permission_gets_the_403_page(browser, back_office, who):
    page = await signed_in(browser, back_office, who)
    answer = await page.goto(f"{back_office}/reports")
    assert answer.status == 403
    assert answer.headers["content-type"].startswith("text/html")
    assert await page.get_by_role("heading", level=1).inner_text() == "无权访问 (403)"
    assert (
        await page.request.get(f"{back_office}/reports/export?format=csv&from=2026-11-01&to=2026-12-01")
    ).status == 403


async def test_without_a_sign_in_the_report_page_asks_for_one(browser, back_office):
    page = await browser.new_page()
    await page.goto(f"{back_office}/reports?from=2026-11-01&to=2026-12-01")
    assert page.url.startswith(f"{back_office}/login?next=/reports")


@pytest.mark.parametrize("language", ["zh_CN", "en"])
async def test_the_report_page_is_accessible_and_fits_a_phone(browser, back_office, language):
    page = await signed_in(browser, back_office, READER, language=language, viewport=PHONE)
    await page.goto(f"{back_office}/reports?from=2026-11-01&to=2026-12-01&group_by=tier&group_by=customer")
    for details in await page.locator("details").all():
        await details.evaluate("d => d.open = true")
    assert await serious_accessibility_problems(page) == []
    assert not await scrolls_sideways(page)
    # local time shown, UTC kept in the markup
    first = page.locator("time").first
    assert (await first.get_attribute("datetime")).endswith("Z")
    assert "+08:00" in await first.inner_text()
