"""The sign-in page, in a real browser: Chinese first, English on request, accessible, phone-wide."""

import pytest

from tests.web.conftest import HOTLINE, PASSWORD, PHONE, scrolls_sideways, serious_accessibility_problems


async def test_a_visitor_is_asked_to_sign_in_in_chinese_even_from_an_english_browser(browser, pages):
    """Chinese unless English is asked for on the page: a browser set up in English is no request."""
    page = await browser.new_page(locale="en-US")
    await page.goto(f"{pages}/login")
    assert await page.get_attribute("html", "lang") == "zh-CN"
    assert await page.get_by_role("button", name="登录").is_visible()
    assert await page.get_by_label("用户名").is_visible()


async def test_a_language_chosen_on_the_page_is_kept_for_the_next_pages(browser, pages):
    page = await browser.new_page()
    await page.goto(f"{pages}/login")
    await page.get_by_role("link", name="English").click()
    await page.wait_for_url("**/login?lang=en")
    await page.goto(f"{pages}/login")
    assert await page.get_by_label("User name").is_visible()
    await page.get_by_role("link", name="中文").click()
    await page.wait_for_url("**/login?lang=zh_CN")
    await page.goto(f"{pages}/login")
    assert await page.get_by_label("用户名").is_visible()


@pytest.mark.parametrize("language", ["zh_CN", "en"])
async def test_the_sign_in_page_has_no_serious_accessibility_problem_and_fits_a_phone(
    browser, pages, language
):
    page = await browser.new_page(viewport=PHONE)
    await page.goto(f"{pages}/login?lang={language}")
    assert await serious_accessibility_problems(page) == []
    assert not await scrolls_sideways(page)


async def test_a_hotline_user_signs_in_lands_on_the_page_they_asked_for_and_signs_out(browser, pages):
    """Asked for / without a sign-in: the sign-in page, then / itself; signing out ends the session."""
    page = await browser.new_page()
    await page.goto(f"{pages}/")
    assert page.url == f"{pages}/login?next=/"
    await page.get_by_label("用户名").fill(HOTLINE)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url(f"{pages}/")
    assert HOTLINE in await page.locator("main").inner_text()
    assert await serious_accessibility_problems(page) == []
    await page.get_by_role("button", name="退出登录").click()
    await page.wait_for_url(f"{pages}/login")
    await page.goto(f"{pages}/")
    assert page.url == f"{pages}/login?next=/"  # the session is over, not only its cookie


async def test_a_wrong_password_is_told_in_the_pages_language_and_keeps_the_user_name(browser, pages):
    page = await browser.new_page()
    await page.goto(f"{pages}/login?lang=en")
    await page.get_by_label("User name").fill(HOTLINE)
    await page.get_by_label("Password").fill("not it")
    await page.get_by_role("button", name="Sign in").click()
    assert await page.get_by_role("alert").inner_text() == "Wrong user name or password."
    assert await page.get_by_label("User name").input_value() == HOTLINE


async def test_a_sign_out_from_another_site_is_refused_without_the_sessions_csrf_token(browser, pages):
    """A form another site makes the browser post carries no CSRF token: the session lives on."""
    page = await browser.new_page()
    await page.goto(f"{pages}/login")
    await page.get_by_label("用户名").fill(HOTLINE)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url(f"{pages}/")
    forged = await page.request.post(f"{pages}/logout", form={"csrf_token": "guessed"})
    assert forged.status == 403
    await page.goto(f"{pages}/")
    assert page.url == f"{pages}/"


@pytest.mark.parametrize(
    "elsewhere",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "/%09/evil.example", "/%0A/evil.example"],
)
async def test_signing_in_never_sends_the_user_to_another_site(browser, pages, elsewhere):
    page = await browser.new_page()
    await page.goto(f"{pages}/login?next={elsewhere}")
    await page.get_by_label("用户名").fill(HOTLINE)
    await page.get_by_label("密码").fill(PASSWORD)
    await page.get_by_role("button", name="登录").click()
    await page.wait_for_url(f"{pages}/")


async def test_another_sites_form_cannot_sign_the_browser_in(browser, pages):
    """Login CSRF: a post whose Origin is another site is refused, and no session is made."""
    page = await browser.new_page()
    await page.goto(f"{pages}/login")
    forged = await page.request.post(
        f"{pages}/login",
        form={"username": HOTLINE, "password": PASSWORD},
        headers={"Origin": "https://evil.example"},
        max_redirects=0,
    )
    assert forged.status == 403
    await page.goto(f"{pages}/")
    assert page.url == f"{pages}/login?next=/"
