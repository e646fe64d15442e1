"""Screens 7-8 on a real worker, broker and sink: the report page's figures are `keydesk report`'s,
and the customer archive is registered and edited from the admin pages through the API's functions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import orjson
import pytest

from handlers.identity.audit import Who
from handlers.identity.store import IdentityStore, prepare_database
from tests.e2e.conftest import apoll, http, keydesk, poll
from tests.web import conftest as web_fixtures
from tests.web.conftest import PHONE, scrolls_sideways, serious_accessibility_problems
from tests.web.desk_screens import password_hash, signed_in

pytestmark = pytest.mark.broker
browser = web_fixtures.browser  # Debian's Chromium through Playwright, as the page tests drive it

ZONE = ZoneInfo("Asia/Shanghai")  # the workers' default KEYDESK_TIMEZONE
ADMIN, READER = "web-admin", "web-reader"
RUN = uuid.uuid4().hex[:6].upper()


@pytest.fixture(scope="module")
def worker(desk):
    """The desk's worker, with an admin and a report reader who sign in with a password."""
    engine = prepare_database(desk.database_url)
    try:
        store = IdentityStore(engine)
        for name, roles in ((ADMIN, ["admin"]), (READER, ["report_reader"])):
            if store.user(name) is None:
                store.add_user(name, password_hash(), roles, Who(actor="test"))
    finally:
        engine.dispose()
    return desk.workers[0]


def keydesk_report(desk, *args: str) -> dict:
    """`keydesk report compliance ... --format json`, run as an operator runs it."""
    done = keydesk(desk, "report", "compliance", *args, "--format", "json")
    assert done.returncode == 0, done.stderr
    return orjson.loads(done.stdout)


def instant(at: datetime) -> str:
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def publish_a_morning(worker, now: datetime) -> int:
    """Two customers' faults of the last hour through the API: acknowledged late and in time.
    The number of items opened."""
    url = worker.url
    for n, tier in enumerate(("diamond", "gold")):
        status, _ = http(
            "POST",
            f"{url}/api/customers",
            {
                "customer_id": f"C-WR-{RUN}-{n}",
                "name": f"报表客户{n}",
                "tier": tier,
                "region": "广东/广州",
                "occurred_at": instant(now - timedelta(hours=1)),
            },
        )
        assert status == 202
    opened = 0
    for n, late in ((0, True), (0, False), (1, True)):
        customer = f"C-WR-{RUN}-{n}"
        reported = now - timedelta(minutes=40 + opened)
        status, body = http(
            "POST",
            f"{url}/api/faults",
            {
                "customer_id": customer,
                "severity": "critical",
                "summary": "专线中断",
                "service": "MPLS VPN",
                "occurred_at": instant(reported),
            },
        )
        assert status == 202, body
        acknowledged = reported + (timedelta(minutes=30) if late else timedelta(minutes=1))
        status, body = http(
            "POST",
            f"{url}/api/faults/{body['fault_id']}/ack",
            {"customer_id": customer, "occurred_at": instant(acknowledged)},
        )
        assert status == 202, body
        opened += 1
    return opened


def wait_for_items(desk, query: list[str], items: int) -> dict:
    """The CLI's report once the sink has written the items (its lag is the only wait)."""

    def written() -> dict | None:
        report = keydesk_report(desk, *query)
        return report if report["total"]["items"] >= items else None

    return poll(written, f"{items} items in the CLI's report", 60, every=0.2)


def cells(figures: dict) -> dict[str, str]:
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
    return {name: "" if figures[name] is None else str(figures[name]) for name in names}


async def test_the_report_pages_figures_equal_keydesk_reports_for_the_same_period(browser, desk, worker):
    now = datetime.now(UTC)
    opened = publish_a_morning(worker, now)
    local = now.astimezone(ZONE).date()
    period = {"from": (local - timedelta(days=1)).isoformat(), "to": (local + timedelta(days=2)).isoformat()}
    as_of = instant(now + timedelta(minutes=1))
    query = ["--from", period["from"], "--to", period["to"], "--group-by", "tier", "--as-of", as_of]
    expected = wait_for_items(desk, query, opened)
    assert expected["total"]["items"] >= opened and expected["total"]["breaches"] >= 1

    page = await signed_in(browser, worker.url, READER)
    await page.goto(f"{worker.url}/reports?{urlencode({**period, 'group_by': 'tier', 'as_of': as_of})}")
    shown = await page.evaluate(
        """() => [...document.querySelectorAll('#figures tbody tr, #figures tfoot tr')].map(row =>
            Object.fromEntries([...row.querySelectorAll('[data-figure]')]
                .map(cell => [cell.dataset.figure, cell.dataset.value])))"""
    )
    assert shown == [cells(g) for g in expected["groups"]] + [cells(expected["total"])]
    tiers = await page.locator("#figures tbody tr").evaluate_all("rows => rows.map(r => r.dataset.group)")
    assert tiers == [g["key"]["tier"] for g in expected["groups"]]
    # the download is the API's CSV of the same report
    asked = urlencode({**period, "group_by": "tier", "as_of": as_of, "format": "csv"})
    csv = await page.request.get(f"{worker.url}/reports/export?{asked}")
    assert csv.status == 200
    total = [line for line in (await csv.text()).splitlines() if line.startswith("TOTAL,")]
    assert total and total[0].split(",")[1] == str(expected["total"]["items"])


async def test_an_admin_registers_and_edits_a_customer_from_the_archive_pages(browser, desk, worker):
    customer = f"C-WA-{RUN}"
    page = await signed_in(browser, worker.url, ADMIN, language="en")
    await page.goto(f"{worker.url}/admin/customers/new")
    await page.get_by_label("Customer id (the CRM's or billing's id)").fill(customer)
    await page.get_by_label("Name", exact=True).fill("省档案馆")
    await page.get_by_label("Tier").select_option("gold")
    await page.get_by_label("Region, e.g. 广东/广州").fill("广东/佛山")
    await page.get_by_label("Services and circuits, as a JSON list").fill(
        '[{"service": "MPLS VPN", "circuit_id": "FS-MPLS-7"}]'
    )
    await page.get_by_role("button", name="Register").click()
    await page.wait_for_url(f"**/admin/customers/{customer}?done=registered")
    assert await page.get_by_label("Name", exact=True).input_value() == "省档案馆"
    # the same record the API answers, and the same refusal: registering it again is a 409
    status, record = http("GET", f"{worker.url}/api/customers/{customer}")
    assert status == 200 and record["services"] == [{"service": "MPLS VPN", "circuit_id": "FS-MPLS-7"}]

    await page.get_by_label("Name", exact=True).fill("省档案馆（新馆）")
    await page.get_by_role("button", name="Save changes").click()
    await page.wait_for_url(f"**/admin/customers/{customer}?done=updated")
    assert await page.get_by_label("Name", exact=True).input_value() == "省档案馆（新馆）"
    status, record = http("GET", f"{worker.url}/api/customers/{customer}")
    assert (record["name"], record["tier"], record["region"]) == ("省档案馆（新馆）", "gold", "广东/佛山")

    await page.goto(f"{worker.url}/admin/customers/new")
    await page.get_by_label("Customer id (the CRM's or billing's id)").fill(customer)
    await page.get_by_label("Name", exact=True).fill("重复")
    await page.get_by_role("button", name="Register").click()
    assert "conflicts" in await page.get_by_role("alert").inner_text()
    await page.get_by_label("Services and circuits, as a JSON list").fill("[{not json")
    await page.get_by_role("button", name="Register").click()
    assert "services" in await page.get_by_role("alert").inner_text()

    # audited as the API audits it: the event's fields after, the owner's record before
    status, trail = http("GET", f"{worker.url}/api/audit?target={customer}&actor={ADMIN}")
    kinds = [(r["kind"], r["after"].get("name")) for r in trail["records"]]
    assert kinds == [("customer.updated", "省档案馆（新馆）"), ("customer.registered", "省档案馆")]
    assert trail["records"][0]["before"]["name"] == "省档案馆"

    # listed and found by its circuit once the sink has written it
    async def listed() -> int:
        await page.goto(f"{worker.url}/admin/customers?q=FS-MPLS-7")
        return await page.locator(f"tr[data-customer='{customer}']").count()

    await apoll(listed, "the customer in the admin list by its circuit")
    assert "省档案馆（新馆）" in await page.locator(f"tr[data-customer='{customer}']").inner_text()


@pytest.mark.parametrize("language", ["zh_CN", "en"])
async def test_the_archive_pages_are_accessible_and_fit_a_phone(browser, worker, language):
    page = await signed_in(browser, worker.url, ADMIN, language=language, viewport=PHONE)
    for path in ("/admin/customers", "/admin/customers/new"):
        await page.goto(f"{worker.url}{path}")
        assert await serious_accessibility_problems(page) == [], path
        assert not await scrolls_sideways(page), path


async def test_a_non_admin_gets_the_403_page_on_the_archive_pages_of_a_worker(browser, worker):
    page = await signed_in(browser, worker.url, READER)
    answer = await page.goto(f"{worker.url}/admin/customers")
    assert answer.status == 403 and answer.headers["content-type"].startswith("text/html")
    forged = await page.request.post(
        f"{worker.url}/admin/customers", form={"customer_id": "C-X", "name": "x"}
    )
    assert forged.status == 403
