"""The web desk's pages on the worker's aiohttp application, and its static files.

Pages are rendered on the server (aiohttp-jinja2) in the visitor's language:
one Jinja2 environment per language, each with its gettext translations
installed (``languages.py``), so a page is rendered whole in one language
and no string is looked up twice.  Forms work without JavaScript; htmx only
turns them into partial updates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp_jinja2
import jinja2
from aiohttp import web

from handlers.web.languages import HTML_LANG, LANGUAGES, TEMPLATES, choose, translations

STATIC = Path(__file__).parent / "static"
LANGUAGE_COOKIE = "keydesk_lang"
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


async def sign_in_page(request: web.Request) -> web.Response:
    return render(
        request,
        "sign_in.html",
        {"next": request.query.get("next", "/")[:500], "problem": None, "username": None},
    )


def register_pages(web_app: web.Application) -> None:
    """Attach the pages and ``/static/`` to the worker's aiohttp application."""
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
