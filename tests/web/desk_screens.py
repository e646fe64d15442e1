"""The report and admin screens (7-8) on a server of their own, over a reporting database with a day of work.

What needs no broker: the identity (users, tokens, audit) and the compliance
report read the reporting database, here a SQLite file written by the sink's
own writer from a few events.  The customer archive's pages need the worker
that owns a customer; they are driven against a real worker in
``tests/e2e/test_web_reports.py``.  The rules screen is served over the
shipped rules file; its replace, which needs the rules topic, is driven against
the suite's broker in ``tests/web/test_admin_rules_page.py``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from handlers.api.http_guard import guard_middleware
from handlers.identity.audit import Who
from handlers.identity.guard import IdentityGuard
from handlers.identity.passwords import PasswordHasher, hash_password
from handlers.identity.roles import EVERY_REGION
from handlers.identity.store import IdentityDb, IdentityStore, prepare_database
from handlers.local.ports import LOOPBACK, free_port
from handlers.reports.commands import report_runs
from handlers.web.admin_pages import register_admin_pages
from handlers.web.pages import Desk, register_pages
from handlers.web.reports_page import register_report_page
from handlers.web.rules_page import register_rules_page
from sla_rules import DEFAULT_RULES_PATH, load_rules
from streams.rules_feed import RulesFeed, rules_of_file
from streams.sink_writer import SinkWriter
from tests.builders import event

ZONE = ZoneInfo("Asia/Shanghai")
PASSWORD = "correct horse battery staple"
#: one user per role the screens tell apart
ADMIN, READER, HOTLINE, MANAGER = "admin-wang", "reader-li", "hotline-zhang", "manager-chen"
ROLES = {ADMIN: ["admin"], READER: ["report_reader"], HOTLINE: ["hotline"], MANAGER: ["manager"]}
#: the screens' "now": the end of the test day's month, so November is a finished month
NOW = datetime(2026, 11, 30, 4, 0, tzinfo=UTC)
PERIOD = {"from": "2026-11-01", "to": "2026-12-01"}


def _customer(customer_id: str, **fields):
    return event("customer.registered", customer_id, "08:00", customer=customer_id, **fields)


EVENTS = [
    _customer("C-GOV-001", name="省政府办公厅", tier="diamond", region="广东/广州"),
    _customer("C-BANK-001", name="招商银行", tier="platinum", region="广东/深圳"),
    # acknowledged two hours after its response target: a breach
    event("fault.reported", "F-1", "09:00", customer="C-BANK-001"),
    event("fault.acknowledged", "F-1", "11:00", customer="C-BANK-001"),
    # acknowledged at once, restored, closed: met
    event("fault.reported", "F-2", "09:00", customer="C-GOV-001"),
    event("fault.acknowledged", "F-2", "09:01", customer="C-GOV-001"),
    event("fault.restored", "F-2", "10:00", customer="C-GOV-001"),
    event("fault.closed", "F-2", "10:30", customer="C-GOV-001"),
]


@functools.cache
def password_hash() -> str:
    """The users' one password hash, made once: argon2 takes seconds on a busy machine."""
    return hash_password(PASSWORD)


def rules_of_the_file() -> RulesFeed:
    """The shipped rules file in force, with no rules topic behind (a replace answers 503)."""
    return RulesFeed(None, "keydesk.rules", rules_of_file(None), secret=b"k" * 32)


@contextlib.asynccontextmanager
async def back_office_server(tmp_path, rules: RulesFeed) -> AsyncIterator[str]:
    """The sign-in page and screens 7-8 behind the bounds and identity middlewares: its address."""
    url = f"sqlite:///{tmp_path / 'desk.sqlite'}"
    engine = prepare_database(url)
    SinkWriter(engine, load_rules(DEFAULT_RULES_PATH), "sink").write(
        "keydesk.events", 0, [(n, e.to_bytes()) for n, e in enumerate(EVENTS)]
    )
    store = IdentityStore(engine)
    for name, roles in ROLES.items():
        # the manager is head office's (every region): their report counts every customer
        region = EVERY_REGION if name == MANAGER else None
        store.add_user(name, password_hash(), roles, Who(actor="test"), region=region)
    db = IdentityDb(store)
    guard = IdentityGuard(db, b"k" * 32)
    app = web.Application(middlewares=[guard_middleware(), guard.middleware()])
    desk = Desk(db, PasswordHasher())
    register_pages(app, desk)
    register_report_page(app, report_runs(url, ZONE, lambda: NOW), ZONE)
    register_admin_pages(app, desk, None, ZONE)
    register_rules_page(app, rules, ZONE, lambda: NOW)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        await runner.cleanup()
        engine.dispose()


@pytest.fixture
async def back_office(tmp_path):
    """The back office over the shipped rules file (no broker: the rules can be read and checked)."""
    async with back_office_server(tmp_path, rules_of_the_file()) as base:
        yield base


async def signed_in(browser, base: str, username: str, *, language: str = "zh_CN", viewport=None):
    """A new page signed in as ``username`` through the sign-in form, in ``language``."""
    page = await browser.new_page(viewport=viewport) if viewport else await browser.new_page()
    await page.goto(f"{base}/login?lang={language}")
    await page.locator("#username").fill(username)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("form button[type=submit]").click()
    await page.wait_for_url(f"{base}/")
    return page
