"""Screen 8's rules in a real browser: the file in force, a check with its lines, an admin's replace.

The page answers with the API's own functions (``handlers/api/rules_routes.py``),
so these tests hold it to what ``GET /api/rules``, ``POST /api/rules/check`` and
``PUT /api/rules`` give: the summary of the shipped file, the problems with the
line the parser names, a replace on the rules topic of the suite's broker that
the feed folds and the page then shows, each refusal with its reason.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from playwright.async_api import expect

from handlers.identity import audit
from handlers.kafka_topics import ensure_topics
from handlers.web.pages import CSRF_COOKIE
from schemas.reporting_db import open_engine
from sla_rules import DEFAULT_RULES_PATH
from sla_rules.rules_history import rules_summary
from streams.rules_feed import RulesFeed, rules_of_file
from streams.rules_revisions import digest_of
from streams.settings import Settings
from tests.web.conftest import PHONE, scrolls_sideways, serious_accessibility_problems
from tests.web.desk_screens import ADMIN, HOTLINE, MANAGER, NOW, READER, back_office_server, signed_in

SHIPPED = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
#: the shipped file with another ``version`` string: the one change that never touches history
RENAMED = SHIPPED.replace('version = "2026.11-1"', 'version = "2026.12-web"', 1)
#: a TOML syntax error on line 93 (the first policy's header), column 11
BROKEN = SHIPPED.replace("[[policies]]", "[[policies]", 1)
#: the diamond policy's version 1, in force since January, moved: a rewrite of history
REWRITTEN = SHIPPED.replace("effective_from = 2026-01-01", "effective_from = 2026-02-01", 1)
#: another harmless change, made on revision 0 after RENAMED became revision 1
OTHER = SHIPPED.replace('version = "2026.11-1"', 'version = "2026.12-other"', 1)
REPLACE = "Replace the rules in force"


def rules_records(tmp_path) -> list[dict]:
    """The audit trail's records about the rules (newest first)."""
    engine = open_engine(f"sqlite:///{tmp_path / 'desk.sqlite'}")
    try:
        return audit.page(engine, {"target": "rules"}, 500, None)
    finally:
        engine.dispose()


async def csrf_token(page) -> str:
    """The session's CSRF token (the cookie the server fills each form's field from)."""
    return next(c["value"] for c in await page.context.cookies() if c["name"] == CSRF_COOKIE)


async def draft(page, text: str) -> None:
    await page.get_by_label("Rules document (TOML)").fill(text)


async def replace_with(page, text: str) -> int:
    """Submit ``text`` with the replace button (a whole-page post): the status of the answer page."""
    await draft(page, text)
    async with page.expect_navigation() as navigation:
        await page.get_by_role("button", name=REPLACE).click()
    answer = await navigation.value
    assert answer is not None
    return answer.status


def test_the_documents_differ_only_where_each_test_says():
    """The test documents are what their names say (else a test below would test nothing)."""
    assert RENAMED != SHIPPED and OTHER != SHIPPED and REWRITTEN != SHIPPED
    assert BROKEN.splitlines()[92] == "[[policies]"


async def test_the_page_shows_the_rules_in_force_as_the_api_gives_them(browser, back_office):
    page = await signed_in(browser, back_office, ADMIN, language="en")
    await page.goto(f"{back_office}/admin/rules")
    await expect(page.locator("#rules-revision")).to_have_text("0")
    facts = await page.locator("#rules-in-force").inner_text()
    assert digest_of(SHIPPED) in facts and "2026.11-1" in facts
    assert "nobody yet" in facts  # revision 0: the file the process started with
    summary = rules_summary(rules_of_file(None).rules, NOW)
    rows = page.locator("#rules-policies tbody tr")
    assert await rows.count() == sum(len(p["versions"]) for p in summary["policies"])
    diamond = page.locator("tr[data-policy=diamond][data-version='1']")
    # effective_from in local time (Asia/Shanghai), frozen: in force before the screen's now
    assert "2026-01-01 00:00+08:00" in await diamond.inner_text()
    assert "in force: frozen" in await diamond.inner_text()
    calendars = await page.locator("#rules-calendars tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.calendar)"
    )
    assert calendars == [c["id"] for c in summary["calendars"]]
    assert await page.locator("#rules-order li").count() == len(summary["rules"])
    # the text with its lines numbered: line n of the list is line n of the file
    lines = SHIPPED.splitlines()
    assert await page.locator("#rules-text li").count() == len(lines)
    assert await page.locator("#rules-line-93").inner_text() == lines[92]


async def test_a_check_of_a_broken_document_names_the_problem_and_links_its_line(browser, back_office):
    page = await signed_in(browser, back_office, MANAGER, language="en")
    await page.goto(f"{back_office}/admin/rules")
    await draft(page, BROKEN)
    await page.get_by_role("button", name="Check", exact=True).click()
    alert = page.locator("#rules-check [role=alert]")
    await expect(alert).to_contain_text("Not valid")
    link = alert.get_by_role("link", name="line 93, column 11")
    await expect(link).to_have_attribute("href", "#draft-line-93")
    assert page.url == f"{back_office}/admin/rules"  # htmx swapped the result in; no navigation
    await link.click()
    await expect(page.locator("#draft-line-93")).to_have_text("[[policies]")
    await expect(page.locator("#draft-line-93")).to_be_in_viewport()


async def test_without_javascript_the_check_answers_the_whole_page_with_the_draft_kept(browser, back_office):
    context = await browser.new_context(java_script_enabled=False)
    try:
        page = await signed_in(context, back_office, MANAGER, language="en")
        await page.goto(f"{back_office}/admin/rules")
        await draft(page, BROKEN)
        await page.get_by_role("button", name="Check", exact=True).click()
        await page.wait_for_url(f"{back_office}/admin/rules/check")
        await expect(page.get_by_role("link", name="line 93, column 11")).to_be_visible()
        assert await page.get_by_label("Rules document (TOML)").input_value() == BROKEN
    finally:
        await context.close()


async def test_a_valid_check_says_valid_and_changes_nothing(browser, back_office, tmp_path):
    page = await signed_in(browser, back_office, ADMIN, language="en")
    await page.goto(f"{back_office}/admin/rules")
    await draft(page, RENAMED)
    await page.get_by_role("button", name="Check", exact=True).click()
    await expect(page.locator("#rules-valid")).to_have_text(
        "Valid: a replace by this text would be taken (against revision 0)."
    )
    await page.goto(f"{back_office}/admin/rules")
    await expect(page.locator("#rules-revision")).to_have_text("0")
    assert "2026.11-1" in await page.locator("#rules-in-force").inner_text()
    assert rules_records(tmp_path) == []  # a check is no change: nothing in the audit trail


async def test_a_replace_that_rewrites_history_is_refused_in_the_page_and_audited(
    browser, back_office, tmp_path
):
    page = await signed_in(browser, back_office, ADMIN, language="en")
    await page.goto(f"{back_office}/admin/rules")
    assert await replace_with(page, REWRITTEN) == 409
    alert = page.locator("#rules-check [role=alert]")
    await expect(alert).to_contain_text("Not replaced: it would rewrite")
    await expect(alert).to_contain_text("policies(id=diamond).version=1")
    await expect(page.locator("#rules-revision")).to_have_text("0")
    [refused] = rules_records(tmp_path)
    assert (refused["kind"], refused["actor"], refused["after"]["reason"]) == (
        "rules.refused",
        ADMIN,
        "history",
    )


async def test_a_replace_with_no_rules_topic_behind_says_the_desk_cannot_answer(browser, back_office):
    page = await signed_in(browser, back_office, ADMIN, language="en")
    await page.goto(f"{back_office}/admin/rules")
    assert await replace_with(page, RENAMED) == 503
    await expect(page.get_by_role("alert")).to_contain_text("The desk cannot answer this now")
    assert await page.get_by_label("Rules document (TOML)").input_value() == RENAMED


async def test_a_manager_sees_no_replace_button_and_a_forged_replace_is_refused(
    browser, back_office, tmp_path
):
    page = await signed_in(browser, back_office, MANAGER, language="en")
    await page.goto(f"{back_office}/admin/rules")
    await expect(page.get_by_role("button", name="Check", exact=True)).to_be_visible()
    assert await page.get_by_role("button", name=REPLACE).count() == 0
    nav = page.get_by_role("navigation", name="Desk")
    await expect(nav.get_by_role("link", name="SLA rules")).to_be_visible()
    token = await page.locator("input[name=csrf_token]").first.input_value()
    assert token == await csrf_token(page)
    forged = await page.request.post(
        f"{back_office}/admin/rules/replace",
        form={"csrf_token": token, "text": RENAMED, "seen": "0"},
        max_redirects=0,
    )
    assert forged.status == 403  # with the session's own CSRF token: refused for want of rules.write
    assert forged.headers["content-type"].startswith("text/html")
    assert [r["kind"] for r in rules_records(tmp_path)] == []


@pytest.mark.parametrize("who", [HOTLINE, READER])
async def test_who_may_not_read_the_rules_gets_the_403_page_and_no_link(browser, back_office, who):
    page = await signed_in(browser, back_office, who, language="en")
    answer = await page.goto(f"{back_office}/admin/rules")
    assert answer is not None and answer.status == 403
    assert await page.get_by_role("heading", level=1).inner_text() == "You may not open this (403)"
    assert await page.get_by_role("link", name="SLA rules").count() == 0
    # posted with the session's own CSRF token: refused for want of rules.read, not for a forgery
    checked = await page.request.post(
        f"{back_office}/admin/rules/check", form={"csrf_token": await csrf_token(page), "text": SHIPPED}
    )
    assert checked.status == 403


@pytest.mark.parametrize("language", ["zh_CN", "en"])
@pytest.mark.parametrize("who", [ADMIN, MANAGER])
async def test_the_rules_page_is_accessible_and_fits_a_phone(browser, back_office, language, who):
    page = await signed_in(browser, back_office, who, language=language, viewport=PHONE)
    await page.goto(f"{back_office}/admin/rules")
    assert await serious_accessibility_problems(page) == []
    assert not await scrolls_sideways(page)
    await page.locator("#rules-draft").fill(BROKEN)
    await page.locator("#rules-draft ~ .buttons button").first.click()  # the check, in either language
    await expect(page.locator("#draft-line-93")).to_be_attached()
    assert await serious_accessibility_problems(page) == []
    assert not await scrolls_sideways(page)


# -- a replace through the rules topic of the suite's broker ------------------------------------


@pytest.fixture
async def rules_office(kafka_bootstrap, tmp_path):
    """The back office over a rules topic of its own, followed as a worker follows it: the address."""
    settings = Settings.from_env(
        {}, data_dir=tmp_path, kafka=kafka_bootstrap, topic_prefix=f"kdweb{uuid.uuid4().hex[:8]}"
    )
    await ensure_topics(settings)
    feed = RulesFeed.from_settings(settings)
    following = asyncio.ensure_future(feed.follow())
    try:
        async with back_office_server(tmp_path, feed) as base:
            yield base
    finally:
        await feed.stop()
        await asyncio.wait_for(following, 30)


@pytest.mark.broker
async def test_an_admin_replaces_the_rules_and_a_stale_edit_is_then_refused(browser, rules_office, tmp_path):
    context = await browser.new_context()  # one browser window, two tabs of the admin's session
    page = await signed_in(context, rules_office, ADMIN, language="en")
    stale = await context.new_page()  # the second tab: opened on revision 0, submitted after the replace
    await stale.goto(f"{rules_office}/admin/rules?lang=en")
    await page.goto(f"{rules_office}/admin/rules")
    await draft(page, RENAMED)
    await page.get_by_role("button", name=REPLACE).click()
    await page.wait_for_url(f"{rules_office}/admin/rules?done=replaced")  # in force on this worker
    await expect(page.get_by_role("status")).to_have_text("Replaced: the new revision is in force.")
    await expect(page.locator("#rules-revision")).to_have_text("1")
    facts = page.locator("#rules-in-force")
    await expect(facts).to_contain_text("2026.12-web")
    await expect(facts).to_contain_text(digest_of(RENAMED))
    await expect(facts).to_contain_text(f"{ADMIN}, 2026-11-30 12:00+08:00")  # who, and when in local time
    [replaced] = rules_records(tmp_path)
    assert (replaced["kind"], replaced["actor"], replaced["after"]["revision"]) == (
        "rules.replaced",
        ADMIN,
        1,
    )
    assert '-version = "2026.11-1"' in replaced["after"]["diff"]

    assert await replace_with(stale, OTHER) == 409
    await expect(stale.locator("#rules-check [role=alert]")).to_contain_text("stale")
    await expect(stale.locator("#rules-revision")).to_have_text("1")
    assert [r["kind"] for r in rules_records(tmp_path)] == ["rules.refused", "rules.replaced"]
