"""The web desk's pages on a real worker: beside the API, behind the same table of operations."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

import pytest


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the test looks at the redirect itself


def fetch(url: str) -> tuple[int, dict[str, str], str]:
    opener = urllib.request.build_opener(_NoRedirects)
    try:
        with opener.open(url, timeout=30) as answer:
            return answer.status, dict(answer.headers), answer.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode(errors="replace")


@pytest.fixture
def worker(desk):
    return desk.workers[0]


def test_the_desks_first_page_sends_a_visitor_without_a_sign_in_to_the_sign_in_page(worker):
    status, headers, _ = fetch(f"{worker.url}/")
    assert (status, headers["Location"]) == (303, "/login?next=/")


def test_the_sign_in_page_and_its_static_files_are_served_by_the_worker(worker):
    status, headers, page = fetch(f"{worker.url}/login")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "登录" in page and 'lang="zh-CN"' in page
    for asset in ("/static/desk.css", "/static/vendor/htmx.org-2.0.11/htmx.min.js"):
        assert fetch(f"{worker.url}{asset}")[0] == 200, asset


@pytest.mark.parametrize("path", ["/router/", "/table/", "/stats/"])
def test_fausts_own_pages_are_not_served(worker, path):
    """faust's debugging pages list tables and routing: off (404), or without a line in the
    table of operations and so refused to all (403)."""
    assert fetch(f"{worker.url}{path}")[0] in (403, 404)


# -- screens 2-4 on a real worker and broker: the hotline's call, from search to acknowledgement

from tests.e2e.conftest import http, poll  # noqa: E402
from tests.web.conftest import browser  # noqa: E402, F401  (the fixture)

WEB_HOTLINE, WEB_PASSWORD = "web-hotline", "a long enough password"
WEB_CUSTOMER, WEB_CIRCUIT = "C-E2E-WEB", "E2E-WEB-0001"


def found_in_archive(worker, circuit: str) -> bool:
    """Whether the archive's search (the reporting database, behind by the sink) finds the circuit."""
    status, page = http("GET", f"{worker.url}/api/customers?q={circuit}")
    return status == 200 and len(page["customers"]) == 1


def page_timings(worker) -> str:
    """What the worker logged of its pages' times, for a test that found them too slow."""
    lines = worker.log_path.read_text(errors="replace").splitlines()
    return "the fault is not on the customer page within 1 s:\n" + "\n".join(
        line for line in lines if '"web.' in line
    )


async def test_a_hotline_user_finds_a_customer_by_circuit_logs_a_fault_and_acknowledges_it(worker, browser):  # noqa: F811
    """Sign in, search by circuit id, log a fault: on the customer page within 1 s with its clocks;
    acknowledge it there (the fault's ``ack`` step): its response clock shows met."""
    status, _ = await asyncio.to_thread(
        http,
        "POST",
        f"{worker.url}/api/users",
        {"username": WEB_HOTLINE, "password": WEB_PASSWORD, "roles": ["hotline"]},
    )
    assert status == 201
    status, _ = await asyncio.to_thread(
        http,
        "POST",
        f"{worker.url}/api/customers?wait=10",
        {
            "customer_id": WEB_CUSTOMER,
            "name": "省交通运输厅",
            "tier": "diamond",
            "account_manager": {"id": "AM-E2E", "name": "周敏"},
            "services": [{"service": "MPLS VPN", "circuit_id": WEB_CIRCUIT}],
        },
    )
    assert status == 200
    await asyncio.to_thread(poll, lambda: found_in_archive(worker, WEB_CIRCUIT), "the circuit in the archive")

    page = await (await browser.new_context()).new_page()
    await page.goto(f"{worker.url}/console")
    assert page.url == f"{worker.url}/login?next=/console"
    await page.get_by_label("用户名").fill(WEB_HOTLINE)
    await page.get_by_label("密码").fill(WEB_PASSWORD)
    await page.get_by_label("密码").press("Enter")
    await page.wait_for_url(f"{worker.url}/console")
    await page.get_by_label("客户名称、编号、电路编号或电话").fill(WEB_CIRCUIT)
    await page.get_by_label("客户名称、编号、电路编号或电话").press("Enter")
    await page.wait_for_url(f"{worker.url}/customers/{WEB_CUSTOMER}?circuit={WEB_CIRCUIT}")
    await page.get_by_role("link", name="故障申告").click()
    await page.get_by_label("故障现象").fill("交通专网中断")

    started = time.monotonic()
    await page.get_by_role("button", name="提交故障").click()
    await page.wait_for_url(f"{worker.url}/customers/{WEB_CUSTOMER}?step=*")
    fault = page.locator("article.item", has_text="交通专网中断")
    while not await fault.count():  # the page as the owner's view has it: look again until it is in
        assert time.monotonic() - started < 1.0, page_timings(worker)
        await page.reload()
    assert time.monotonic() - started < 1.0, page_timings(worker)
    assert await fault.get_by_role("progressbar", name="响应").count() == 1
    assert await fault.get_by_role("progressbar", name="恢复").count() == 1
    assert WEB_CIRCUIT in await fault.inner_text()

    await fault.get_by_role("button", name="受理确认", exact=True).click()
    response = fault.locator(".clock.tone-met", has_text="响应")
    await response.wait_for(timeout=10_000)
    assert "达标于" in await response.inner_text()
    assert await fault.locator(".state").inner_text() == "已受理"
