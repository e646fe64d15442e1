"""Browser fixtures: Debian's Chromium driven by Playwright's async API, and the desk's pages.

Playwright's Python package brings its driver, not a browser: the suite uses
Debian's ``chromium`` (``.ci/install-system-packages``) through
``executable_path``, with the async API in fixtures of its own (the
pytest-playwright plugin leaves an event loop running that breaks the
pytest-asyncio tests after it).  Without Chromium the browser tests skip, and
fail under CI=true.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from aiohttp import web

from handlers.api.http_guard import guard_middleware
from handlers.identity.audit import Who
from handlers.identity.guard import IdentityGuard
from handlers.identity.passwords import PasswordHasher, hash_password
from handlers.identity.store import IdentityDb, IdentityStore, prepare_database
from handlers.local.ports import LOOPBACK, free_port
from handlers.web.account_page import register_account_page
from handlers.web.pages import Desk, register_pages
from tests.conftest import service_missing

AXE = Path(__file__).parent / "vendor" / "axe-core-4.14.1" / "axe.min.js"
PHONE = {"width": 390, "height": 844}  # the narrowest screen every page must fit


def chromium_path() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        service_missing(
            "Chromium", "Debian's chromium package is not installed (.ci/install-system-packages)"
        )
    return found


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    path = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path)
        try:
            yield launched
        finally:
            await launched.close()


#: the hotline user of the pages' tests, and the password it signs in with
HOTLINE, PASSWORD = "hotline-zhang", "correct horse battery staple"


@pytest.fixture
async def pages(tmp_path):
    """The desk's pages behind its two middlewares (bounds, then identity) on a server of their own,
    over an identity database with one hotline user: what needs no broker behind it."""
    store = IdentityStore(prepare_database(f"sqlite:///{tmp_path / 'desk.sqlite'}"))
    store.add_user(HOTLINE, hash_password(PASSWORD), ["hotline"], Who(actor="test"))
    db = IdentityDb(store)
    guard = IdentityGuard(db, b"k" * 32)
    app = web.Application(middlewares=[guard_middleware(), guard.middleware()])
    desk_pages = Desk(db, PasswordHasher())
    register_pages(app, desk_pages)
    register_account_page(app, desk_pages)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield f"http://{LOOPBACK}:{port}"
    finally:
        await runner.cleanup()


async def serious_accessibility_problems(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it stands, one line each."""
    await page.add_script_tag(path=str(AXE))
    found = await page.evaluate("async () => (await axe.run()).violations")
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


async def scrolls_sideways(page) -> bool:
    """Whether the page is wider than the viewport (it must not be, at 390 px)."""
    return await page.evaluate("document.documentElement.scrollWidth > window.innerWidth")


# screens 2-4: the customer screens over a desk in memory (fixture ``screens``)
from tests.web.customer_desk_fixture import screens  # noqa: E402, F401

# screens 7-8: the report and admin screens' server (fixture ``back_office``, a module of its own)
from tests.web.desk_screens import back_office  # noqa: E402, F401
