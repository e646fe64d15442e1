"""The signed-in user's own password page in a real browser: the API's change, each refusal by its field.

Over the pages' server of ``conftest.pages`` (one hotline user); the change is
``change_own_password``, whose bounds, rate limit and audit
``tests/handlers/identity/test_own_password.py`` holds to account.
"""

from __future__ import annotations

import pytest

from tests.web.conftest import HOTLINE, PASSWORD, PHONE, scrolls_sideways, serious_accessibility_problems
from tests.web.customer_desk_fixture import signed_in as sign_in_as

NEW = "a brand new long password"


async def signed_in(browser, base: str, **context):
    return await sign_in_as(browser, base, HOTLINE, **context)


async def change(page, current: str, new: str, again: str | None = None) -> None:
    await page.get_by_label("当前密码").fill(current)
    await page.get_by_label("新密码", exact=True).fill(new)
    await page.get_by_label("再次输入新密码").fill(new if again is None else again)
    await page.get_by_role("button", name="修改密码").click()


async def signs_in_with(browser, base: str, password: str) -> bool:
    page = await browser.new_page()
    await page.goto(f"{base}/login")
    await page.locator("#username").fill(HOTLINE)
    await page.locator("#password").fill(password)
    await page.locator("#password").press("Enter")
    await page.wait_for_load_state()
    return page.url == f"{base}/"


async def test_the_header_links_to_it_next_to_signing_out(browser, pages):
    page = await signed_in(browser, pages)
    account = page.get_by_role("navigation", name="账户")
    assert await account.get_by_role("link", name="修改密码").is_visible()
    assert await account.get_by_role("button", name="退出登录").is_visible()
    await account.get_by_role("link", name="修改密码").click()
    await page.wait_for_url(f"{pages}/account/password")
    assert await page.get_by_role("heading", name="修改密码").is_visible()


async def test_a_changed_password_signs_in_the_old_does_not_and_other_sessions_end(browser, pages):
    page = await signed_in(browser, pages)
    elsewhere = await signed_in(browser, pages)  # the same user in another browser
    await page.goto(f"{pages}/account/password")
    await change(page, PASSWORD, NEW)
    await page.wait_for_url(f"{pages}/account/password?changed=1")
    assert "密码已修改" in await page.get_by_role("status").inner_text()
    await page.goto(f"{pages}/")
    assert page.url == f"{pages}/"  # this session goes on
    await elsewhere.goto(f"{pages}/")
    assert elsewhere.url == f"{pages}/login?next=/"  # the other one is over
    assert not await signs_in_with(browser, pages, PASSWORD)
    assert await signs_in_with(browser, pages, NEW)


async def test_a_wrong_current_password_is_refused_next_to_it_and_changes_nothing(browser, pages):
    page = await signed_in(browser, pages)
    await page.goto(f"{pages}/account/password")
    async with page.expect_response(f"{pages}/account/password") as posted:
        await change(page, "not my password", NEW)
    assert (await posted.value).status == 403
    told = page.locator("#password-problem")
    assert await told.inner_text() == "当前密码不正确。"
    current = page.get_by_label("当前密码")
    assert await current.get_attribute("aria-invalid") == "true"
    assert await current.evaluate("e => e === document.activeElement")  # the focus is where to type
    assert await signs_in_with(browser, pages, PASSWORD)


async def test_new_passwords_typed_differently_are_refused_next_to_the_second(browser, pages):
    page = await signed_in(browser, pages)
    await page.goto(f"{pages}/account/password")
    await change(page, PASSWORD, NEW, again=NEW + "!")
    assert await page.locator("#new_password_again-problem").inner_text() == "两次输入的新密码不一致。"
    assert await signs_in_with(browser, pages, PASSWORD)


@pytest.mark.parametrize(
    ("new", "field", "says"),
    [
        ("short", "new_password", "The new password must be 10 to 200 characters long."),
        (PASSWORD, "new_password", "The new password must differ from the current one."),
    ],
)
async def test_the_apis_rules_for_a_new_password_are_told_in_the_pages_language(
    browser, pages, new, field, says
):
    """Sent past the browser's own minlength: the bounds are the API's, not the form's."""
    page = await signed_in(browser, pages, language="en")
    await page.goto(f"{pages}/account/password")
    csrf = await page.locator("input[name=csrf_token]").first.input_value()
    answer = await page.request.post(
        f"{pages}/account/password",
        form={"csrf_token": csrf, "password": PASSWORD, "new_password": new, "new_password_again": new},
    )
    assert answer.status == 422
    assert f'<p class="field-problem" id="{field}-problem" role="alert">{says}</p>' in await answer.text()
    assert await signs_in_with(browser, pages, PASSWORD)


async def test_a_change_posted_from_another_site_without_the_csrf_token_is_refused(browser, pages):
    page = await signed_in(browser, pages)
    forged = await page.request.post(
        f"{pages}/account/password",
        form={"csrf_token": "guessed", "password": PASSWORD, "new_password": NEW, "new_password_again": NEW},
    )
    assert forged.status == 403
    assert await signs_in_with(browser, pages, PASSWORD)


async def test_without_a_sign_in_the_page_asks_for_one(browser, pages):
    page = await browser.new_page()
    await page.goto(f"{pages}/account/password")
    assert page.url == f"{pages}/login?next=/account/password"


@pytest.mark.parametrize("language", ["zh_CN", "en"])
@pytest.mark.parametrize("refused", [False, True])
async def test_the_page_is_accessible_and_fits_a_phone(browser, pages, language, refused):
    page = await signed_in(browser, pages, language=language, viewport=PHONE)
    await page.goto(f"{pages}/account/password")
    if refused:
        await page.locator("#password").fill("not my password")
        await page.locator("#new_password").fill(NEW)
        await page.locator("#new_password_again").fill(NEW)
        await page.locator("#new_password_again").press("Enter")
        await page.locator("#password-problem").wait_for()
    assert await serious_accessibility_problems(page) == []
    assert not await scrolls_sideways(page)
