"""Screen 8, administration, in a real browser: users and roles, tokens, the audit trail; admins only."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from handlers.identity import audit
from handlers.identity.audit import Who
from handlers.identity.store import IdentityStore
from schemas.reporting_db import open_engine
from tests.web.conftest import PHONE, scrolls_sideways, serious_accessibility_problems
from tests.web.desk_screens import ADMIN, HOTLINE, PASSWORD, READER, signed_in

ADMIN_PAGES = ("/admin/users", f"/admin/users/{HOTLINE}", "/admin/tokens", "/admin/audit", "/admin/customers")


def store_of(tmp_path) -> IdentityStore:
    return IdentityStore(open_engine(f"sqlite:///{tmp_path / 'desk.sqlite'}"))


def trail(tmp_path, **filters) -> list[dict]:
    store = store_of(tmp_path)
    try:
        return audit.page(store.engine, filters, 500, None)
    finally:
        store.engine.dispose()


async def test_an_admin_adds_a_user_whose_one_time_password_is_shown_once_and_works(
    browser, back_office, tmp_path
):
    page = await signed_in(browser, back_office, ADMIN, language="en")
    await page.goto(f"{back_office}/admin/users")
    await page.get_by_label("User name", exact=True).fill("new-hotline")
    await page.get_by_role("checkbox", name="hotline").check()
    await page.get_by_label("Staff id (default: the user name)").fill("HL-7")
    await page.get_by_role("button", name="Add the user").click()
    shown = await page.locator("#one-time-password").inner_text()
    assert len(shown) >= 10
    await page.goto(
        f"{back_office}/admin/users"
    )  # the list again: the password was on the post's answer only
    assert shown not in await page.content()
    row = page.locator("tr[data-user='new-hotline']")
    assert "hotline" in await row.inner_text() and "HL-7" in await row.inner_text()
    # audited exactly as the API's POST /api/users: by the admin, with the state after
    added = trail(tmp_path, kind="user.added", target="new-hotline")
    assert [(r["actor"], r["after"]["roles"], r["after"]["staff_id"]) for r in added] == [
        (ADMIN, ["hotline"], "HL-7")
    ]
    # the password shown signs the new user in (a one-time one: the page may do nothing else yet)
    other = await browser.new_page()
    await other.goto(f"{back_office}/login")
    await other.locator("#username").fill("new-hotline")
    await other.locator("#password").fill(shown)
    await other.locator("form button[type=submit]").click()
    await other.wait_for_url(f"{back_office}/")


async def test_a_refused_user_is_told_which_field_and_keeps_the_form(browser, back_office):
    page = await signed_in(browser, back_office, ADMIN, language="en")
    await page.goto(f"{back_office}/admin/users")
    await page.get_by_label("User name", exact=True).fill(HOTLINE)  # exists
    await page.get_by_role("button", name="Add the user").click()
    alert = await page.get_by_role("alert").inner_text()
    assert "conflicts" in alert and "User name" in alert
    assert await page.get_by_label("User name", exact=True).input_value() == HOTLINE


async def test_an_admin_changes_roles_disables_enables_and_resets_a_password(browser, back_office, tmp_path):
    page = await signed_in(browser, back_office, ADMIN, language="en")
    await page.goto(f"{back_office}/admin/users/{HOTLINE}")
    await page.get_by_role("checkbox", name="report_reader").check()
    await page.get_by_role("button", name="Save roles and scope").click()
    await page.wait_for_url(f"**/admin/users/{HOTLINE}?done=saved")  # redirect after post
    assert await page.get_by_role("checkbox", name="report_reader").is_checked()
    changed = trail(tmp_path, kind="user.changed", target=HOTLINE)
    assert changed[0]["before"]["roles"] == ["hotline"]
    assert changed[0]["after"]["roles"] == ["hotline", "report_reader"]

    victim = await signed_in(browser, back_office, HOTLINE)
    await page.get_by_role("button", name="Disable the user").click()
    await page.wait_for_url("**?done=disabled")
    await victim.goto(f"{back_office}/")
    assert victim.url.startswith(f"{back_office}/login")  # the session ended with the user
    await page.get_by_role("button", name="Enable the user").click()
    await page.wait_for_url("**?done=enabled")

    await page.get_by_role("button", name="Reset the password").click()
    one_time = await page.locator("#one-time-password").inner_text()
    assert one_time and one_time != PASSWORD
    again = await browser.new_page()
    await again.goto(f"{back_office}/login")
    await again.locator("#username").fill(HOTLINE)
    await again.locator("#password").fill(PASSWORD)
    await again.locator("form button[type=submit]").click()
    assert await again.get_by_role("alert").is_visible()  # the old password no longer works
    kinds = [r["kind"] for r in trail(tmp_path, target=HOTLINE, actor=ADMIN)]
    assert kinds == ["user.password_changed", "user.changed", "user.changed", "user.changed"]


async def test_the_last_admin_cannot_disable_themselves(browser, back_office):
    page = await signed_in(browser, back_office, ADMIN, language="en")
    await page.goto(f"{back_office}/admin/users/{ADMIN}")
    await page.get_by_role("button", name="Disable the user").click()
    assert "the last admin" in await page.get_by_role("alert").inner_text()


async def test_a_new_token_is_shown_once_listed_without_its_secret_and_revoked(
    browser, back_office, tmp_path
):
    page = await signed_in(browser, back_office, ADMIN, language="en")
    await page.goto(f"{back_office}/admin/tokens")
    await page.get_by_label("Name", exact=True).fill("nms-alarms")
    await page.get_by_role("radio", name="an integration: publishes only the event types chosen").check()
    await page.get_by_label("Event types (integration token)").select_option(["fault.reported"])
    await page.get_by_label("Source of its events (integration token)").select_option("network_alarm")
    await page.get_by_label("Expires in days (empty: never)").fill("30")
    await page.get_by_role("button", name="Create the token").click()
    secret = await page.locator("#new-token").inner_text()
    assert secret.startswith("kdt_")
    await page.goto(f"{back_office}/admin/tokens")
    assert secret not in await page.content()
    row = page.locator("tr", has_text="nms-alarms")
    assert "fault.reported" in await row.inner_text()
    store = store_of(tmp_path)
    try:
        assert store.token_identity(secret, datetime.now(UTC)) is not None  # the secret shown is the token's
        await row.get_by_role("button", name="Revoke").click()
        await page.wait_for_url("**/admin/tokens?done=revoked")
        assert "revoked" in await page.locator("tr", has_text="nms-alarms").inner_text()
        assert store.token_identity(secret, datetime.now(UTC)) is None
    finally:
        store.engine.dispose()
    kinds = [r["kind"] for r in trail(tmp_path, actor=ADMIN) if r["kind"].startswith("token.")]
    assert kinds == ["token.revoked", "token.created"]


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("/admin/users", {"username": "intruder", "roles": "admin"}),
        (f"/admin/users/{HOTLINE}", {"action": "reset"}),
        ("/admin/tokens", {"name": "stolen", "kind": "personal", "username": ADMIN}),
    ],
)
async def test_a_forged_post_without_the_csrf_token_is_refused_and_changes_nothing(
    browser, back_office, tmp_path, path, form
):
    page = await signed_in(browser, back_office, ADMIN)
    before = trail(tmp_path, actor=ADMIN)
    forged = await page.request.post(
        f"{back_office}{path}", form={**form, "csrf_token": "guessed"}, max_redirects=0
    )
    assert forged.status == 403
    assert forged.headers["content-type"].startswith("text/html")
    bare = await page.request.post(f"{back_office}{path}", form=form, max_redirects=0)
    assert bare.status == 403
    after = trail(tmp_path, actor=ADMIN)
    assert [r["kind"] for r in after[: len(after) - len(before)]] == ["denied", "denied"]


@pytest.mark.parametrize("who", [HOTLINE, READER])
async def test_a_non_admin_gets_the_403_page_on_every_admin_page(browser, back_office, who):
    page = await signed_in(browser, back_office, who, language="en")
    for path in ADMIN_PAGES:
        answer = await page.goto(f"{back_office}{path}")
        assert answer.status == 403, path
        assert await page.get_by_role("heading", level=1).inner_text() == "You may not open this (403)"
    nav = page.get_by_role("navigation", name="Desk")
    assert "Users" not in (await nav.inner_text() if await nav.count() else "")


async def test_the_audit_trail_is_paged_and_filtered(browser, back_office, tmp_path):
    store = store_of(tmp_path)
    try:
        for n in range(60):
            audit.record_now(store.engine, "test.event", Who(actor="robot"), target=f"thing-{n:02d}")
    finally:
        store.engine.dispose()
    page = await signed_in(browser, back_office, ADMIN, language="en")
    await page.goto(f"{back_office}/admin/audit")
    await page.get_by_label("Actor").fill("robot")
    await page.get_by_role("button", name="Filter").click()
    await page.wait_for_url("**actor=robot**")
    first = await page.locator("tr[data-audit]").all_inner_texts()
    assert len(first) == 50 and "thing-59" in first[0]
    await page.get_by_role("link", name="Older records").click()
    second = await page.locator("tr[data-audit]").all_inner_texts()
    assert len(second) == 10 and "thing-09" in second[0] and "thing-00" in second[-1]
    assert await page.get_by_role("link", name="Older records").count() == 0
    await page.goto(f"{back_office}/admin/audit?kind=login&actor={ADMIN}")
    rows = await page.locator("tr[data-audit]").all_inner_texts()
    assert rows and all("login" in r and ADMIN in r for r in rows)
    answer = await page.goto(f"{back_office}/admin/audit?since=yesterday")
    assert answer.status == 422 and "From" in await page.get_by_role("alert").inner_text()


async def test_without_a_worker_the_archive_pages_say_the_desk_cannot_answer(browser, back_office):
    page = await signed_in(browser, back_office, ADMIN, language="en")
    answer = await page.goto(f"{back_office}/admin/customers")
    assert answer.status == 503
    assert await page.get_by_role("heading", level=1).inner_text() == "Not available right now (503)"


@pytest.mark.parametrize("language", ["zh_CN", "en"])
async def test_every_admin_page_is_accessible_and_fits_a_phone(browser, back_office, language):
    page = await signed_in(browser, back_office, ADMIN, language=language, viewport=PHONE)
    for path in ADMIN_PAGES[:4]:
        await page.goto(f"{back_office}{path}")
        for details in await page.locator("details").all():
            await details.evaluate("d => d.open = true")
        assert await serious_accessibility_problems(page) == [], path
        assert not await scrolls_sideways(page), path
