"""Screens 5 and 6 in a real browser: the dispatch queue and the escalations inbox, live.

The pages run on their own aiohttp server behind the desk's two middlewares,
over an SQLite reporting database holding customers and SLA steps as the sink
writes them, views as an owner holds them, and the live feed's hub, into which
the tests put what the Kafka consumer would read (``tests/e2e/test_web_live.py``
does the same through a real worker and broker).  What the acknowledge button
publishes is recorded: the authorization it passes is the real guard's.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from playwright.async_api import expect
from sqlalchemy.orm import Session

from handlers.api.http_guard import guard_middleware
from handlers.api.operations import operation
from handlers.identity.audit import Who
from handlers.identity.guard import IdentityGuard, author
from handlers.identity.passwords import PasswordHasher, hash_password
from handlers.identity.store import IdentityDb, IdentityStore, prepare_database
from handlers.local.ports import LOOPBACK, free_port
from handlers.web.inbox_model import Step
from handlers.web.live_desk import LiveDesk
from handlers.web.live_feed import LiveChange, LiveHub
from handlers.web.live_pages import customer_lookup, register_live_pages
from handlers.web.pages import Desk, register_pages
from schemas.envelope import new_event
from schemas.reporting_tables import Customer, SlaStep
from tests.web.conftest import PHONE, scrolls_sideways, serious_accessibility_problems

PASSWORD = "correct horse battery staple"
REGION = "广东省/广州市"


def profile(name: str, manager: str, chain: list[dict]) -> dict:
    return {
        "name": name,
        "tier": "diamond",
        "region": REGION if manager == "AM-1" else "湖南省/长沙市",
        "account_manager": {"id": manager, "name": f"经理{manager}"},
        "escalation_chain": chain,
    }


PROFILES = {
    "C-GOV": profile("省政府办公厅", "AM-1", [{"role": "department_head", "id": "DH-1", "name": "王强"}]),
    "C-BANK": profile("长沙银行", "AM-2", [{"role": "department_head", "id": "DH-2", "name": "赵六"}]),
}


def item(kind: str, item_id: str, deadline: datetime, *, paused: bool = False, priority: str = "P1") -> dict:
    return {
        "kind": kind,
        "id": item_id,
        "state": "reported" if kind == "fault" else "open",
        "attributes": {"priority": priority, "summary": f"{item_id} 专线中断"},
        "sla": {
            "metrics": {
                "response": {
                    "state": "pending",
                    "deadline": deadline.isoformat(),
                    "paused": paused,
                    "cycle": 1,
                }
            }
        },
    }


def view(customer_id: str, *items: dict) -> dict:
    opened = {"fault": {}, "ticket": {}, "order": {}}
    for it in items:
        opened[it["kind"]][it["id"]] = it
    return {"customer_id": customer_id, "profile": PROFILES[customer_id], "open": opened}


def step_row(customer_id: str, item_id: str, event_type: str, at: datetime, step=None, role=None) -> SlaStep:
    return SlaStep(
        event_id=str(uuid.uuid4()),
        event_type=event_type,
        customer_id=customer_id,
        item_kind="fault",
        item_id=item_id,
        metric="response",
        cycle=1,
        occurred_at=at,
        step=step,
        role=role,
        deadline=at,
        policy="diamond",
    )


class LivePages:
    def __init__(self, url: str, hub: LiveHub, views: dict, published: list, now: datetime) -> None:
        self.url, self.hub, self.views, self.published, self.now = url, hub, views, published, now

    async def sign_in(self, browser, username: str, *, viewport=None, language: str = "zh_CN"):
        page = await browser.new_page(viewport=viewport)
        await page.goto(f"{self.url}/login?lang={language}")
        await page.locator("#username").fill(username)
        await page.locator("#password").fill(PASSWORD)
        await page.locator("form button[type=submit]").click()
        await page.wait_for_url(f"{self.url}/")
        return page


@pytest.fixture
async def live(tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    engine = prepare_database(f"sqlite:///{tmp_path / 'desk.sqlite'}")
    store = IdentityStore(engine)
    hashed = hash_password(PASSWORD)
    for name, roles, staff, region in (
        ("hotline-zhang", ["hotline"], None, None),
        ("manager-li", ["manager"], "AM-1", REGION),
        ("am-zhao", ["account_manager"], "AM-2", None),
    ):
        store.add_user(name, hashed, roles, Who(actor="test"), staff_id=staff, region=region)
    with Session(engine) as session:
        for customer_id, p in PROFILES.items():
            session.add(
                Customer(
                    customer_id=customer_id,
                    name=p["name"],
                    tier="diamond",
                    industry=None,
                    region=p["region"],
                    account_manager_id=p["account_manager"]["id"],
                    account_manager_name=p["account_manager"]["name"],
                    profile=p,
                    updated_at=now,
                )
            )
        session.add_all(
            [
                step_row("C-GOV", "F-OLD", "sla.breached", now - timedelta(hours=2)),
                step_row(
                    "C-GOV", "F-OLD", "sla.escalation_due", now - timedelta(hours=2), 1, "account_manager"
                ),
                step_row(
                    "C-BANK", "F-BANK", "sla.escalation_due", now - timedelta(hours=1), 1, "account_manager"
                ),
            ]
        )
        session.commit()
    db = IdentityDb(store)
    guard = IdentityGuard(db, b"k" * 32)
    hub = LiveHub(customer_lookup(db))
    views = {
        "C-GOV": view("C-GOV", item("fault", "F-1", now + timedelta(minutes=10))),
        "C-BANK": view("C-BANK", item("fault", "F-2", now + timedelta(hours=3))),
    }
    published: list = []

    async def acknowledge(request, customer_id, kind, item_id, body):
        """The API's checks up to the owner's (no worker here): the body, then the caller for the customer."""
        body = operation("acknowledge_escalation").check_body(body)
        actor, source = await author(request, "sla.escalation_acknowledged", customer_id)
        payload = {"item_kind": kind, "metric": body["metric"], "cycle": body.get("cycle", 1)}
        if body.get("note"):
            payload["note"] = body["note"]
        event = new_event(
            "sla.escalation_acknowledged",
            customer_id,
            item_id,
            payload,
            source=source,
            actor=actor,
            now=datetime.now(UTC),
        )
        published.append(event)
        return event, True

    app = web.Application(middlewares=[guard_middleware(), guard.middleware()])
    register_pages(app, Desk(db, PasswordHasher()))
    register_live_pages(
        app,
        LiveDesk(
            hub=hub,
            views=lambda: list(views.items()),
            owns=lambda customer_id: True,
            peers=lambda: [],
            http=lambda: None,  # no other worker to ask
            hop_key=b"k" * 32,
            acknowledge=acknowledge,
            run_sql=db.run,
            engine=engine,
        ),
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield LivePages(f"http://{LOOPBACK}:{port}", hub, views, published, now)
    finally:
        hub.close()
        await runner.cleanup()


def live_step(customer_id: str, item_id: str, step: int = 1, role: str = "account_manager") -> LiveChange:
    found = Step(
        event_id=str(uuid.uuid4()),
        event_type="sla.escalation_due",
        customer_id=customer_id,
        item_kind="fault",
        item_id=item_id,
        metric="response",
        cycle=1,
        occurred_at=datetime.now(UTC),
        step=step,
        role=role,
    )
    return LiveChange("step", customer_id, "fault", item_id, step=found, read_at=time.time())


async def connected(page, name: str) -> None:
    """Wait until the page's event stream is open (htmx's SSE extension says so on its element)."""
    await page.wait_for_function(
        "() => { const e = document.querySelector('[sse-connect]');"
        " return e && e['htmx-internal-data'] && e['htmx-internal-data'].sseEventSource"
        " && e['htmx-internal-data'].sseEventSource.readyState === 1 }",
        timeout=5000,
    )


class TestEscalationsInbox:
    async def test_a_manager_sees_the_steps_of_their_scope_unacknowledged_first_and_to_them(
        self, browser, live
    ):
        page = await live.sign_in(browser, "manager-li")
        await page.goto(f"{live.url}/inbox")
        rows = page.locator("#inbox-rows tr")
        await expect(rows).to_have_count(2)  # C-GOV's two steps; C-BANK is neither their region nor chain
        assert await page.locator("#inbox-rows tr.to-me").count() == 2
        assert "F-BANK" not in await page.locator("main").inner_text()

    async def test_a_new_step_arrives_without_reload_with_a_cue_and_is_acknowledged_with_a_note(
        self, browser, live
    ):
        page = await live.sign_in(browser, "manager-li")
        await page.goto(f"{live.url}/inbox")
        await connected(page, "inbox")
        await live.hub.publish([live_step("C-BANK", "F-NOT-MINE")])  # out of scope: never shown
        await live.hub.publish([live_step("C-GOV", "F-1")])
        fresh = page.locator("#inbox-rows tr.fresh[data-item='fault/F-1']")
        await expect(fresh).to_be_visible(timeout=2000)
        await expect(fresh.locator(".badge.new")).to_have_text("新")
        await expect(page.locator("#inbox-news")).to_contain_text("F-1")
        assert await page.locator("[data-item='fault/F-NOT-MINE']").count() == 0
        await fresh.get_by_label("备注").fill("已派单给广州传输一班")
        await fresh.get_by_role("button", name="确认升级").click()
        done = page.locator("#inbox-rows tr.acknowledged[data-item='fault/F-1']")
        await expect(done).to_contain_text("manager-li", timeout=2000)
        await expect(done).to_contain_text("已派单给广州传输一班")
        [ack] = live.published
        assert (ack.customer_id, ack.entity_id, ack.actor) == ("C-GOV", "F-1", "manager-li")
        assert ack.payload == {
            "item_kind": "fault",
            "metric": "response",
            "cycle": 1,
            "note": "已派单给广州传输一班",
        }

    async def test_a_reload_answered_before_a_live_step_does_not_erase_it_nor_its_cue(self, browser, live):
        """The stream and the table's reload are two channels: hold a reload's answer until a step came."""
        page = await live.sign_in(browser, "manager-li")
        await page.goto(f"{live.url}/inbox")
        await connected(page, "inbox")
        await expect(page.locator("#inbox-rows tr")).to_have_count(2)
        computed = asyncio.get_running_loop().create_future()
        release = asyncio.Event()

        async def hold(route):
            answer = await route.fetch()  # rendered now: before the step below exists
            computed.set_result(answer.url)
            await release.wait()
            await route.fulfill(response=answer)

        await page.route("**/inbox/table*", hold)
        await live.hub.resync()  # what a restarted feed makes every page do
        assert "since=" in await asyncio.wait_for(computed, 5)
        await live.hub.publish([live_step("C-GOV", "F-1")])
        fresh = page.locator("#inbox-rows tr.fresh[data-item='fault/F-1']")
        await expect(fresh).to_be_visible(timeout=2000)
        async with page.expect_response(lambda r: "/inbox/table" in r.url):
            release.set()
        await expect(page.locator("#inbox-rows tr")).to_have_count(3)
        await expect(fresh.locator(".badge.new")).to_have_text("新")
        await page.unroute("**/inbox/table*")
        async with page.expect_response(lambda r: "/inbox/table" in r.url):
            await live.hub.resync()  # a reload computed after it: the server's rows keep the cue
        await expect(page.locator("#inbox-rows tr")).to_have_count(3)
        await expect(fresh.locator(".badge.new")).to_have_text("新")
        await page.reload()  # a new page: what was there when it came is not new to it
        await expect(page.locator("#inbox-rows tr[data-item='fault/F-1']")).to_have_count(1)
        await expect(page.locator("#inbox-rows tr.fresh")).to_have_count(0)

    async def test_a_step_coming_the_moment_after_a_reload_is_swapped_in_lands_in_the_new_table(
        self, browser, live
    ):
        """htmx wires a swapped-in element's ``sse-swap`` when the swap settles: the table settles at once.

        The step is dispatched on the page's own EventSource in the task after the swap, as the
        stream's next message would be; a settle delay (htmx's 20 ms default) would drop it.
        """
        page = await live.sign_in(browser, "manager-li")
        await page.goto(f"{live.url}/inbox")
        await connected(page, "inbox")
        row = '<tr id="step-x" class="step open fresh" data-item="fault/F-9"><td>x</td></tr>'
        await page.evaluate(
            """(row) => document.getElementById('inbox-table').addEventListener('htmx:afterSwap', () =>
                setTimeout(() => document.querySelector('[sse-connect]')['htmx-internal-data']
                    .sseEventSource.dispatchEvent(new MessageEvent('step', {data: row}))), {once: true})""",
            row,
        )
        async with page.expect_response(lambda r: "/inbox/table" in r.url):
            await live.hub.resync()
        await expect(page.locator("#inbox-rows tr[data-item='fault/F-9']")).to_have_count(1)

    async def test_acknowledging_works_without_javascript(self, browser, live):
        context = await browser.new_context(java_script_enabled=False)
        page = await context.new_page()
        await page.goto(f"{live.url}/login")
        await page.locator("#username").fill("manager-li")
        await page.locator("#password").fill(PASSWORD)
        await page.locator("form button[type=submit]").click()
        await page.goto(f"{live.url}/inbox")
        row = page.locator("#inbox-rows tr[data-step='sla.escalation_due:1']")
        await row.get_by_role("button", name="确认升级").click()
        await expect(page.locator("#inbox-rows tr.open")).to_have_count(0)
        assert [e.entity_id for e in live.published] == ["F-OLD"]
        await context.close()

    async def test_an_acknowledgement_arriving_live_marks_every_step_of_its_cycle(self, browser, live):
        from handlers.web.inbox_model import Acknowledgement

        page = await live.sign_in(browser, "manager-li")
        await page.goto(f"{live.url}/inbox")
        await connected(page, "inbox")
        ack = Acknowledgement(("C-GOV", "fault", "F-OLD", "response", 1), "someone-else", datetime.now(UTC))
        await live.hub.publish([LiveChange("ack", "C-GOV", "fault", "F-OLD", ack=ack, read_at=time.time())])
        await expect(page.locator("#inbox-rows tr.acknowledged")).to_have_count(2, timeout=2000)

    async def test_the_hotline_has_no_inbox_and_a_forged_acknowledgement_is_refused(self, browser, live):
        page = await live.sign_in(browser, "hotline-zhang")
        answer = await page.goto(f"{live.url}/inbox")
        assert answer.status == 403
        forged = await page.request.post(
            f"{live.url}/inbox/acknowledge",
            form={"customer_id": "C-GOV", "kind": "fault", "item_id": "F-OLD", "metric": "response"},
        )
        assert forged.status == 403
        assert live.published == []

    async def test_an_account_manager_cannot_acknowledge_another_managers_customer(self, browser, live):
        page = await live.sign_in(browser, "am-zhao")
        await page.goto(f"{live.url}/inbox")
        csrf = await page.locator("input[name=csrf_token]").first.input_value()
        forged = await page.request.post(
            f"{live.url}/inbox/acknowledge",
            form={
                "customer_id": "C-GOV",
                "kind": "fault",
                "item_id": "F-OLD",
                "metric": "response",
                "csrf_token": csrf,
            },
        )
        assert forged.status == 403
        assert live.published == []


class TestDispatchQueue:
    async def test_the_queue_is_ordered_by_time_to_breach_in_colour_bands(self, browser, live):
        page = await live.sign_in(browser, "hotline-zhang")
        await page.goto(f"{live.url}/queue")
        rows = page.locator("table.queue tbody tr")
        await expect(rows).to_have_count(2)
        assert await rows.nth(0).get_attribute("data-item") == "fault/F-1"
        assert "band-soon" in await rows.nth(0).get_attribute("class")
        assert "band-today" in await rows.nth(1).get_attribute("class")

    async def test_it_reorders_without_reload_when_an_items_clock_changes(self, browser, live):
        page = await live.sign_in(browser, "hotline-zhang")
        await page.goto(f"{live.url}/queue")
        await connected(page, "queue")
        first = page.locator("table.queue tbody tr").first
        await expect(first).to_have_attribute("data-item", "fault/F-1")
        live.views["C-BANK"] = view("C-BANK", item("fault", "F-2", live.now - timedelta(minutes=1)))  # raised
        await live.hub.publish([LiveChange("item", "C-BANK", "fault", "F-2", read_at=time.time())])
        await expect(first).to_have_attribute("data-item", "fault/F-2", timeout=2000)
        assert "band-breached" in await first.get_attribute("class")

    async def test_an_account_manager_sees_only_their_customers_and_filters_narrow(self, browser, live):
        page = await live.sign_in(browser, "am-zhao")
        await page.goto(f"{live.url}/queue")
        await expect(page.locator("table.queue tbody tr")).to_have_count(1)
        assert await page.locator("table.queue tbody tr").get_attribute("data-item") == "fault/F-2"
        page = await live.sign_in(browser, "hotline-zhang")
        await page.goto(f"{live.url}/queue?region=广东省")
        await expect(page.locator("table.queue tbody tr")).to_have_count(1)
        await page.goto(f"{live.url}/queue?kind=ticket")
        await expect(page.locator("table.queue tbody tr")).to_have_count(0)
        answer = await page.goto(f"{live.url}/queue?tier=mithril")
        assert answer.status == 422


@pytest.mark.parametrize("language", ["zh_CN", "en"])
@pytest.mark.parametrize(("user", "path"), [("manager-li", "/inbox"), ("hotline-zhang", "/queue")])
async def test_the_live_pages_are_accessible_fit_a_phone_and_show_local_time(
    browser, live, language, user, path
):
    page = await live.sign_in(browser, user, viewport=PHONE, language=language)
    await page.goto(f"{live.url}{path}?lang={language}")
    assert await serious_accessibility_problems(page) == []
    assert await page.evaluate("document.documentElement.scrollWidth") <= 390
    assert not await scrolls_sideways(page)
    assert "(UTC+8)" in await page.locator("main").inner_text()  # the desk's zone; stored in UTC
