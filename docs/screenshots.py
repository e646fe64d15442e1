"""Screenshots of the desk's main screens, taken from a running desk (``keydesk up --demo``) with Playwright.

    python -m docs.screenshots [--api URL] [--lang zh_CN|en] [--out docs/screens]

Run next to ``make up`` (another terminal, ``. .venv/bin/activate``): it finds the
desk's address where ``keydesk up`` recorded it (``var/runtime.json``, or
``KEYDESK_API`` / ``--api``) and signs in as the demo users by opening a session
for each straight in the desk's database (``KEYDESK_DB``; audited as a sign-in
like any other), so it needs no password.  What the demo has not made and the
screens need (an escalated fault, a paused complaint, an order) it first puts in
through the desk's API as the demo hotline user (:mod:`docs.screenshot_items`).
Each screen of :data:`SCREENS` is opened as the role that uses it, waited for
until it shows what it is shot for (``ready``: a missing one stops the script, so
no picture of an empty page is made), and shot at a desktop width and at a
phone's 390 px into ``docs/screens/NAME.png`` and ``NAME-phone.png``; the README
shows them, so they are made, not drawn.  A screen added to the desk gets its
line in :data:`SCREENS`.

Chromium is Debian's (``.ci/install-system-packages``), as in the browser tests.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from docs.screenshot_items import CUSTOMER, Call, stage
from handlers.cli.shared import api_base, http
from handlers.identity.audit import Who
from handlers.identity.guard import SESSION_COOKIE
from handlers.identity.store import IdentityStore, prepare_database
from handlers.web.pages import CSRF_COOKIE, LANGUAGE_COOKIE
from streams.settings import Settings

OUT = Path(__file__).parent / "screens"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
#: how long a screen may take to show what it is shot for (a live one: its stream's news)
READY_MS = 15_000


@dataclass(frozen=True)
class Screen:
    name: str
    path: str
    #: the demo user who looks at it (``None``: signed out)
    user: str | None
    #: what must be visible before the shot (a CSS selector); ``path`` and ``ready`` may name
    #: the staged items' ids (``{fault}``, :data:`docs.screenshot_items.STAGED`)
    ready: str | None = None
    #: the whole page (``False``: what the first screenful shows; the rules file's text alone is
    #: hundreds of lines, 1.6 MB as one picture)
    whole: bool = True


ITEM = f"/customers/{CUSTOMER}/items/fault/{{fault}}"
SCREENS = (
    Screen("sign-in", "/login", None),
    Screen("home", "/", "demo-hotline"),
    # a part of a name: two customers found (one would go straight to its page)
    Screen("console", "/console?" + urlencode({"q": "省"}), "demo-hotline", "ul.results li"),
    Screen("fault-form", f"/customers/{CUSTOMER}/faults/new?circuit=GZ-MPLS-0001", "demo-hotline", "form"),
    Screen("order-form", f"/customers/{CUSTOMER}/orders/new", "demo-hotline", "form"),
    Screen("customer", f"/customers/{CUSTOMER}", "demo-hotline", '[id="fault-{fault}"] .clocks'),
    Screen("item", ITEM, "demo-am", 'section[aria-labelledby="ladder-title"] ol.timeline li'),
    Screen("queue", "/queue", "demo-hotline", 'tr[data-item="fault/{fault}"]'),
    Screen(
        "inbox", "/inbox", "demo-manager", 'tr[data-item="fault/{fault}"][data-step="sla.escalation_due:2"]'
    ),
    Screen("reports", "/reports?group_by=tier", "demo-reports"),
    Screen("admin-users", "/admin/users", "demo-admin"),
    Screen("admin-tokens", "/admin/tokens", "demo-admin"),
    Screen("admin-customers", "/admin/customers", "demo-admin"),
    Screen("admin-rules", "/admin/rules", "demo-admin", "ol.lines li", whole=False),
    Screen("admin-audit", "/admin/audit", "demo-admin"),
)


def chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        raise SystemExit("screenshots: Debian's chromium is not installed (.ci/install-system-packages)")
    return found


BY = Who(actor="docs.screenshots")
#: who logs the staged items: the hotline takes the calls
STAGED_BY = "demo-hotline"


def sessions(store: IdentityStore, users: set[str]) -> dict[str, tuple[str, str, str]]:
    """A session (id, secret, CSRF token) per demo user, opened in the desk's database."""
    made = {}
    for user in sorted(users):
        if store.user(user) is None:
            raise SystemExit(f"screenshots: no user {user}; start the desk with `make up` (its demo users)")
        session = store.open_session(user, BY)
        made[user] = (session.id, session.secret, session.csrf)
    return made


def api_caller(base: str, secret: str) -> Call:
    """One API call as the session of ``secret``; an answer other than 200 or 202 stops the script."""

    def call(method: str, path: str, body: dict[str, Any] | None) -> dict[str, Any]:
        status, answer = http(method, f"{base}{path}", body, token=secret)
        if status not in (200, 202):
            raise SystemExit(f"screenshots: {method} {path} answered {status}: {answer}")
        return answer

    return call


async def shoot(
    base: str, language: str, out: Path, made: dict[str, tuple[str, str, str]], ids: dict[str, str]
) -> list[Path]:
    from playwright.async_api import async_playwright, expect

    host = urlsplit(base).hostname or "127.0.0.1"
    written = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium())
        try:
            for screen in SCREENS:
                for suffix, viewport in (("", DESKTOP), ("-phone", PHONE)):
                    context = await browser.new_context(viewport=viewport, locale="zh-CN")
                    cookies = [{"name": LANGUAGE_COOKIE, "value": language, "domain": host, "path": "/"}]
                    if screen.user is not None:
                        _, secret, csrf = made[screen.user]
                        cookies += [
                            {"name": SESSION_COOKIE, "value": secret, "domain": host, "path": "/"},
                            {"name": CSRF_COOKIE, "value": csrf, "domain": host, "path": "/"},
                        ]
                    await context.add_cookies(cookies)
                    page = await context.new_page()
                    path = screen.path.format(**ids)
                    answer = await page.goto(f"{base}{path}")
                    if answer is None or answer.status >= 400:
                        raise SystemExit(f"screenshots: {path} answered {answer and answer.status}")
                    if screen.ready is not None:
                        ready = screen.ready.format(**ids)
                        try:
                            await expect(page.locator(ready).first).to_be_visible(timeout=READY_MS)
                        except AssertionError:
                            raise SystemExit(f"screenshots: {path} does not show {ready}") from None
                    target = out / f"{screen.name}{suffix}.png"
                    await page.screenshot(path=str(target), full_page=screen.whole)
                    written.append(target)
                    await context.close()
        finally:
            await browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m docs.screenshots", description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", help="the desk's address (default: where `keydesk up` recorded it)")
    parser.add_argument("--lang", choices=("zh_CN", "en"), default="zh_CN")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    base = api_base(settings, args.api)
    args.out.mkdir(parents=True, exist_ok=True)
    engine = prepare_database(settings.database_url)
    store = IdentityStore(engine)
    made = sessions(store, {s.user for s in SCREENS if s.user} | {STAGED_BY})
    try:
        ids = stage(api_caller(base, made[STAGED_BY][1]))
        for path in asyncio.run(shoot(base, args.lang, args.out, made, ids)):
            print(path)
    finally:
        for session_id, _, _ in made.values():  # the script's sessions end with it
            store.end_session(session_id, BY)
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
