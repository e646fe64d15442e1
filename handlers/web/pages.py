"""The web desk's pages on the worker's aiohttp application, and its static files.

Pages are rendered on the server (aiohttp-jinja2) in the visitor's language:
one Jinja2 environment per language, each with its gettext translations
installed (``languages.py``), so a page is rendered whole in one language
and no string is looked up twice.  Forms work without JavaScript; htmx only
turns them into partial updates.  Who may open which page is the identity's
one table (``handlers/identity/operations.py``), as for the API; a page asked
for without a sign-in redirects to ``/login``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp_jinja2
import jinja2
from aiohttp import web

from handlers.api.http_guard import BadRequest
from handlers.identity.guard import SESSION_COOKIE, client_address, identity_of, who
from handlers.identity.passwords import PasswordHasher
from handlers.identity.routes import set_session_cookie, sign_in
from handlers.identity.store import IdentityDb
from handlers.web.languages import HTML_LANG, LANGUAGES, TEMPLATES, choose, translations

STATIC = Path(__file__).parent / "static"
LANGUAGE_COOKIE = "keydesk_lang"
#: The session's CSRF token for the pages' forms: HttpOnly and SameSite=Strict like the session,
#: read by the server to fill each form's ``csrf_token`` field; no other site can read or send it.
CSRF_COOKIE = "keydesk_csrf"
#: What a refused sign-in says, by status (the API's reasons are English sentences for programs).
SIGN_IN_PROBLEMS = {
    401: "Wrong user name or password.",
    422: "Give a user name and a password.",
    429: "Too many failed sign-ins. Try again in a quarter of an hour.",
}
ENVIRONMENTS = {
    language: web.AppKey(f"keydesk_jinja2_{language}", jinja2.Environment) for language in LANGUAGES
}


def language_of(request: web.Request) -> str:
    return choose(request.query.get("lang"), request.cookies.get(LANGUAGE_COOKIE))


def render(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    """``template`` in the request's language; remembers a language asked for with ``?lang=``."""
    language = language_of(request)
    page = aiohttp_jinja2.render_template(
        template,
        request,
        {**context, "language": language, "html_lang": HTML_LANG[language]},
        app_key=ENVIRONMENTS[language],
        status=status,
    )
    if request.query.get("lang") in LANGUAGES:
        page.set_cookie(LANGUAGE_COOKIE, language, max_age=365 * 86400, httponly=True, samesite="Lax")
    page.headers["Content-Language"] = HTML_LANG[language]
    return page


def local_path(given: object) -> str:
    """Where to go after signing in: a path on this desk, never another site.

    Not ``//evil``, ``/\\evil``, nor ``/<tab>/evil`` (browsers drop tabs and line
    breaks from a ``Location``, which then names another host): a path of
    printable characters without spaces that parses as a path alone.
    """
    text = given if isinstance(given, str) else ""
    if (
        not text.startswith("/")
        or len(text) > 500
        or any(c.isspace() or not c.isprintable() or c == "\\" for c in text)
    ):
        return "/"
    parts = urlsplit(text)
    if parts.scheme or parts.netloc or text.startswith("//"):
        return "/"
    return text


def same_origin(request: web.Request) -> bool:
    """Whether a form post comes from this desk's own pages (login CSRF: another site's form
    must not sign the browser in as someone else).  Browsers send ``Origin`` on every form
    post; a post without one (a script, curl) is not a browser's cross-site one."""
    origin = request.headers.get("Origin")
    return origin is None or urlsplit(origin).netloc == request.host


@dataclass(frozen=True)
class Desk:
    """What the pages need of the identity: its database, the password hasher, the cookies' flag."""

    db: IdentityDb
    hasher: PasswordHasher
    cookie_secure: bool = False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))


def register_pages(web_app: web.Application, desk: Desk) -> None:
    """Attach the pages and ``/static/`` to the worker's aiohttp application."""

    async def sign_in_page(request: web.Request) -> web.Response:
        context = {"next": local_path(request.query.get("next")), "problem": None, "username": None}
        return render(request, "sign_in.html", context)

    async def sign_in_form(request: web.Request) -> web.Response:
        """The form's sign-in: the API's (``sign_in``), then back to the page that asked for it."""
        if not same_origin(request):
            return render(
                request, "sign_in.html", {"next": "/", "problem": None, "username": None}, status=403
            )
        form = await request.post()
        username, password = str(form.get("username", ""))[:64].strip(), str(form.get("password", ""))[:256]
        going = local_path(form.get("next"))
        try:
            if not username or not password:
                raise BadRequest(422, "username", "both are required")
            _, session = await sign_in(
                desk.db, desk.hasher, username, password, client_address(request), desk.clock
            )
        except BadRequest as exc:
            status = exc.status if exc.status in SIGN_IN_PROBLEMS else 401
            context = {"next": going, "problem": SIGN_IN_PROBLEMS[status], "username": username}
            return render(request, "sign_in.html", context, status=status)
        answer = web.Response(status=303, headers={"Location": going})
        set_session_cookie(answer, session.secret, desk.cookie_secure)
        answer.set_cookie(
            CSRF_COOKIE, session.csrf, path="/", httponly=True, samesite="Strict", secure=desk.cookie_secure
        )
        return answer

    async def home(request: web.Request) -> web.Response:
        caller = identity_of(request)
        assert caller is not None  # the identity's middleware signed it in
        return render(
            request,
            "home.html",
            {
                "caller": caller,
                "csrf_token": request.cookies.get(CSRF_COOKIE, ""),
                "allowed": sorted(caller.permissions()),  # the screens' links (base.html)
            },
        )

    async def sign_out(request: web.Request) -> web.Response:
        """End the session on every worker (it is the database's), then back to the sign-in page."""
        caller = identity_of(request)
        assert caller is not None
        await desk.db.run(desk.db.store.end_session, caller.credential, who(request))
        answer = web.Response(status=303, headers={"Location": "/login"})
        answer.del_cookie(SESSION_COOKIE, path="/")
        answer.del_cookie(CSRF_COOKIE, path="/")
        return answer

    for language, key in ENVIRONMENTS.items():
        env = aiohttp_jinja2.setup(
            web_app,
            app_key=key,
            loader=jinja2.FileSystemLoader(TEMPLATES),
            autoescape=True,
            extensions=["jinja2.ext.i18n"],
            undefined=jinja2.StrictUndefined,
        )
        env.install_gettext_translations(translations(language), newstyle=True)  # type: ignore[attr-defined]
    web_app.router.add_static("/static/", STATIC)
    web_app.router.add_get("/login", sign_in_page)
    web_app.router.add_post("/login", sign_in_form)
    web_app.router.add_get("/", home)
    web_app.router.add_post("/logout", sign_out)
