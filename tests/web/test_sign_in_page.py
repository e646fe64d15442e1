"""The sign-in page, in a real browser: Chinese first, English on request, accessible, phone-wide."""

import pytest

from tests.web.conftest import PHONE, scrolls_sideways, serious_accessibility_problems


async def test_a_visitor_is_asked_to_sign_in_in_chinese_even_from_an_english_browser(browser, pages_only):
    """Chinese unless English is asked for on the page: a browser set up in English is no request."""
    page = await browser.new_page(locale="en-US")
    await page.goto(f"{pages_only}/login")
    assert await page.get_attribute("html", "lang") == "zh-CN"
    assert await page.get_by_role("button", name="登录").is_visible()
    assert await page.get_by_label("用户名").is_visible()


async def test_a_language_chosen_on_the_page_is_kept_for_the_next_pages(browser, pages_only):
    page = await browser.new_page()
    await page.goto(f"{pages_only}/login")
    await page.get_by_role("link", name="English").click()
    await page.wait_for_url("**/login?lang=en")
    await page.goto(f"{pages_only}/login")
    assert await page.get_by_label("User name").is_visible()
    await page.get_by_role("link", name="中文").click()
    await page.wait_for_url("**/login?lang=zh_CN")
    await page.goto(f"{pages_only}/login")
    assert await page.get_by_label("用户名").is_visible()


@pytest.mark.parametrize("language", ["zh_CN", "en"])
async def test_the_sign_in_page_has_no_serious_accessibility_problem_and_fits_a_phone(
    browser, pages_only, language
):
    page = await browser.new_page(viewport=PHONE)
    await page.goto(f"{pages_only}/login?lang={language}")
    assert await serious_accessibility_problems(page) == []
    assert not await scrolls_sideways(page)
