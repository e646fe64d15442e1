"""The live screens in headless Chromium against two real workers and the suite's broker.

The browser is on the worker that does NOT own the customer: what it shows
live comes through that worker's own feed of every partition
(``handlers/web/live_feed.py``), not from the fold that made it.

1. A manager has the escalations inbox open; a short test policy breaches a
   fault; its ladder step appears without a reload within 2 s of being due; the
   manager acknowledges it with a note; the next ladder step never reaches the
   next role (the department head's inbox and the owner's log have none, while
   a control fault's does).
2. The dispatch queue re-orders, without a reload, when a priority change
   moves an item's clock.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from playwright.async_api import expect
from sqlalchemy import select

from handlers.identity.audit import Who
from handlers.identity.passwords import hash_password
from handlers.identity.store import IdentityStore, prepare_database
from schemas.reporting_tables import Customer
from streams.partitioning import murmur2_partition
from tests.builders import event, fault, ticket
from tests.e2e.conftest import PARTITIONS, http, new_desk, poll, short_rules_file
from tests.web.conftest import browser  # noqa: F401  (the fixture)

pytestmark = pytest.mark.broker

PASSWORD = "correct horse battery staple"
MANAGER, HEAD, HOTLINE = "mgr-wang", "head-zhao", "hotline-li"
#: Diamond P1 faults under the short rules: breach and ladder step 1 (account manager) 60 s after the
#: report, step 2 (department head) 60 s later.  Reported this long ago, step 1 is due soon.
REPORTED_AGO = 52
CONTROL_LAG = 4


@pytest.fixture(scope="module")
def live_desk(kafka_bootstrap, tmp_path_factory):
    rules = short_rules_file(tmp_path_factory.mktemp("rules"), ladder=True)
    desk = new_desk(kafka_bootstrap, tmp_path_factory.mktemp("weblive"), KEYDESK_SLA_RULES=str(rules))
    desk.provision()
    engine = prepare_database(desk.database_url)
    store = IdentityStore(engine)
    hashed = hash_password(PASSWORD)
    store.add_user(MANAGER, hashed, ["manager"], Who(actor="test"), staff_id="MGR-1", region="湖南省/长沙市")
    store.add_user(HEAD, hashed, ["account_manager"], Who(actor="test"), staff_id="DH-1")
    store.add_user(HOTLINE, hashed, ["hotline"], Who(actor="test"))
    try:
        desk.start_worker()
        desk.start_worker()
        desk.wait_until_partitions_split(90)
        yield desk, engine
    finally:
        desk.stop()
        engine.dispose()


def split(desk):
    """(a worker, a customer id whose partition is the other worker's)."""
    here, there = desk.workers
    owned = set(there.partitions() or ())
    while True:
        customer = f"C-LIVE-{uuid.uuid4().hex[:6]}"
        if murmur2_partition(customer.encode(), PARTITIONS) in owned:
            return here, there, customer


def post(worker, e) -> None:
    status, answer = http("POST", f"{worker.url}/api/events", raw=e.to_bytes())
    assert status == 202, answer


def register(worker, engine, customer: str) -> None:
    """A diamond customer whose account manager is the manager, then the department head; in SQL too
    (the inbox's scope is the reporting database's)."""
    registration = event(
        "customer.registered",
        customer,
        datetime.now(UTC) - timedelta(hours=1),
        customer=customer,
        tier="diamond",
        name="省政府办公厅",
        region="广东省/广州市",
        account_manager={"id": "MGR-1", "name": "王经理"},
        escalation_chain=[
            {"role": "account_manager", "id": "MGR-1", "name": "王经理"},
            {"role": "department_head", "id": "DH-1", "name": "赵部长"},
        ],
    )
    post(worker, registration)

    def projected():
        with engine.connect() as conn:
            return conn.execute(select(Customer.customer_id).where(Customer.customer_id == customer)).first()

    poll(projected, f"{customer} in the reporting database", 30)


def sla_log(worker, customer: str, fault_id: str) -> list[dict]:
    status, view = http("GET", f"{worker.url}/api/customers/{customer}/view")
    assert status == 200, view
    found = view["open"]["fault"].get(fault_id) or {}
    return found.get("sla_log", [])


def ladder(log: list[dict], step: int) -> list[dict]:
    return [r for r in log if r["event_type"] == "sla.escalation_due" and r.get("step") == step]


async def signed_in(browser, worker, username: str):  # noqa: F811
    page = await browser.new_page()
    # when each step row first appeared (the page's own clock), whatever swapped it in
    await page.add_init_script(
        """
        window.arrived = {};
        new MutationObserver(() => {
          for (const row of document.querySelectorAll('tr[data-step]')) {
            const key = row.dataset.item + '|' + row.dataset.step;
            if (!(key in window.arrived)) window.arrived[key] = Date.now();
          }
        }).observe(document, {childList: true, subtree: true});
        """
    )
    await page.goto(f"{worker.url}/login")
    await page.locator("#username").fill(username)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("form button[type=submit]").click()
    await page.wait_for_url(f"{worker.url}/")
    return page


async def stream_open(page) -> None:
    await page.wait_for_function(
        "() => { const e = document.querySelector('[sse-connect]');"
        " const d = e && e['htmx-internal-data'];"
        " return d && d.sseEventSource && d.sseEventSource.readyState === 1 }",
        timeout=10_000,
    )


async def test_a_managers_inbox_shows_a_breach_live_and_an_acknowledgement_stops_the_ladder(
    live_desk,
    browser,  # noqa: F811
):
    desk, engine = live_desk
    here, owner, customer = split(desk)
    await asyncio.to_thread(register, here, engine, customer)
    page = await signed_in(browser, here, MANAGER)
    await page.goto(f"{here.url}/inbox")
    await stream_open(page)

    reported = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=REPORTED_AGO)
    post(here, fault("F-ACK", "reported", reported, customer=customer))
    post(here, fault("F-CONTROL", "reported", reported + timedelta(seconds=CONTROL_LAG), customer=customer))

    row = page.locator("#inbox-rows tr[data-item='fault/F-ACK'][data-step='sla.escalation_due:1']")
    await expect(row).to_be_visible(timeout=(60 - REPORTED_AGO + 20) * 1000)
    due = datetime.fromisoformat(
        (await row.locator("time").first.get_attribute("datetime")).replace("Z", "+00:00")
    )
    arrived = await page.evaluate("window.arrived['fault/F-ACK|sla.escalation_due:1']") / 1000
    assert arrived - due.timestamp() < 2.0, (
        f"the step appeared {arrived - due.timestamp():.2f} s after it was due"
    )
    assert "to-me" in await row.get_attribute("class")  # step 1 is the account manager's: the manager's

    await row.get_by_label("备注").fill("已派单 广州传输一班")
    await row.get_by_role("button", name="确认升级").click()
    done = page.locator(
        "#inbox-rows tr.acknowledged[data-item='fault/F-ACK'][data-step='sla.escalation_due:1']"
    )
    await expect(done).to_contain_text(MANAGER, timeout=5000)
    await expect(done).to_contain_text("已派单 广州传输一班")

    # The control fault's step 2 is due CONTROL_LAG s after the acknowledged one's would have been, on the
    # same partition: once it is in the owner's log, a step 2 of F-ACK would have been there before it.
    head = await signed_in(browser, here, HEAD)
    await head.goto(f"{here.url}/inbox")
    await stream_open(head)
    control = head.locator("#inbox-rows tr[data-item='fault/F-CONTROL'][data-step='sla.escalation_due:2']")
    await expect(control).to_be_visible(timeout=120_000)
    assert "to-me" in await control.get_attribute("class")
    await asyncio.to_thread(
        poll,
        lambda: ladder(sla_log(owner, customer, "F-CONTROL"), 2),
        "the control's step 2 in the owner",
        10,
    )
    assert ladder(sla_log(owner, customer, "F-ACK"), 2) == []
    assert await head.locator("tr[data-item='fault/F-ACK'][data-step='sla.escalation_due:2']").count() == 0
    acks = [r for r in sla_log(owner, customer, "F-ACK") if r["event_type"] == "sla.escalation_acknowledged"]
    assert [(a["actor"], a["note"]) for a in acks] == [(MANAGER, "已派单 广州传输一班")]


async def test_the_dispatch_queue_reorders_without_reload_when_a_priority_change_moves_a_clock(
    live_desk,
    browser,  # noqa: F811
):
    desk, engine = live_desk
    here, owner, customer = split(desk)
    await asyncio.to_thread(register, here, engine, customer)
    opened = datetime.now(UTC).replace(microsecond=0)
    post(here, ticket("T-A", "opened", opened, customer=customer, priority="P3"))  # response within 1 h
    post(here, ticket("T-B", "opened", opened, customer=customer, priority="P4"))  # within 2 h
    page = await signed_in(browser, here, HOTLINE)
    await page.goto(f"{here.url}/queue?kind=ticket&region=广东省")
    await stream_open(page)
    rows = page.locator("table.queue tbody tr")
    await expect(rows).to_have_count(2, timeout=10_000)
    await expect(rows.first).to_have_attribute("data-item", "ticket/T-A")
    await page.evaluate("document.body.dataset.loaded = 'first'")  # gone if the page reloads

    raised = ticket(
        "T-B", "priority_changed", opened + timedelta(seconds=1), customer=customer, priority="P1"
    )
    post(here, raised)  # 15 min to respond now
    started = time.monotonic()
    await expect(rows.first).to_have_attribute("data-item", "ticket/T-B", timeout=2000)
    took = time.monotonic() - started
    assert await page.evaluate("document.body.dataset.loaded") == "first"
    assert took < 2.0
    await expect(rows.nth(1)).to_have_attribute("data-item", "ticket/T-A")
