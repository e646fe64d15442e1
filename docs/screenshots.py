"""Screenshots of the desk's main screens, taken from a running desk (``make up``) with Playwright.

    python -m docs.screenshots [--api URL] [--lang zh_CN|en] [--out docs/screens]

Run next to ``make up`` (another terminal, ``. .venv/bin/activate``): it finds the
desk's address where ``keydesk up`` recorded it (``var/runtime.json``, or
``KEYDESK_API`` / ``--api``) and signs in as the demo users by opening a session
for each straight in the desk's database (``KEYDESK_DB``; audited as a sign-in
like any other), so it needs no password.  Each screen of :data:`SCREENS` is
shot at a desktop width and at a phone's 390 px into ``docs/screens/NAME.png``
and ``NAME-phone.png``; the README shows them, so they are made, not drawn.
A screen added to the desk gets its line in :data:`SCREENS`.

Chromium is Debian's (``.ci/install-system-packages``), as in the browser tests.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from handlers.cli.shared import api_base
from handlers.identity.audit import Who
from handlers.identity.guard import SESSION_COOKIE
from handlers.identity.store import IdentityStore, prepare_database
from handlers.web.pages import CSRF_COOKIE, LANGUAGE_COOKIE
from streams.settings import Settings

OUT = Path(__file__).parent / "screens"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@dataclass(frozen=True)
class Screen:
    name: str
    path: str
    #: the demo user who looks at it (``None``: signed out)
    user: str | None


SCREENS = (
    Screen("sign-in", "/login", None),
    Screen("home", "/", "demo-hotline"),
    Screen("reports", "/reports?group_by=tier", "demo-reports"),
    Screen("admin-users", "/admin/users", "demo-admin"),
    Screen("admin-tokens", "/admin/tokens", "demo-admin"),
    Screen("admin-customers", "/admin/customers", "demo-admin"),
    Screen("admin-audit", "/admin/audit", "demo-admin"),
)


def chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        raise SystemExit("screenshots: Debian's chromium is not installed (.ci/install-system-packages)")
    return found


BY = Who(actor="docs.screenshots")


def sessions(store: IdentityStore, users: set[str]) -> dict[str, tuple[str, str, str]]:
    """A session (id, secret, CSRF token) per demo user, opened in the desk's database."""
    made = {}
    for user in sorted(users):
        if store.user(user) is None:
            raise SystemExit(f"screenshots: no user {user}; start the desk with `make up` (its demo users)")
        session = store.open_session(user, BY)
        made[user] = (session.id, session.secret, session.csrf)
    return made


async def shoot(base: str, language: str, out: Path, made: dict[str, tuple[str, str, str]]) -> list[Path]:
    from playwright.async_api import async_playwright

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
                    answer = await page.goto(f"{base}{screen.path}")
                    if answer is None or answer.status >= 400:
                        print(
                            f"screenshots: {screen.path} answered {answer and answer.status}", file=sys.stderr
                        )
                    target = out / f"{screen.name}{suffix}.png"
                    await page.screenshot(path=str(target), full_page=True)
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
    made = sessions(store, {s.user for s in SCREENS if s.user})
    try:
        for path in asyncio.run(shoot(base, args.lang, args.out, made)):
            print(path)
    finally:
        for session_id, _, _ in made.values():  # the script's sessions end with it
            store.end_session(session_id, BY)
        engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
