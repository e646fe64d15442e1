"""What the report and admin screens share: who is looking, local times, and refusals as pages.

* :func:`render_screen` renders a screen with the caller, the permissions the
  navigation shows links for (a link only to what the caller may open), and the
  session's CSRF token for the screen's forms.
* Instants are stored and passed around in UTC; people read them in the desk's
  zone (``KEYDESK_TIMEZONE``), with the offset, inside ``<time datetime=UTC>``:
  the Jinja filter ``local_instant``.
* A page the identity refuses (a hotline user opening an admin page, a form
  posted without its CSRF token) is answered by the identity's middleware in the
  API's JSON shape; :mod:`handlers.web.page_refusals` turns such an answer to a
  page into a page in the visitor's language, status unchanged, so a browser
  shows a 403 page and not a JSON document.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from aiohttp import web
from markupsafe import Markup, escape

from handlers.api.http_guard import BadRequest
from handlers.identity.guard import identity_of
from handlers.web.page_refusals import install_page_refusals
from handlers.web.pages import CSRF_COOKIE, ENVIRONMENTS, render

_INSTALLED = web.AppKey("keydesk_screen_support", bool)


def render_screen(
    request: web.Request, template: str, context: dict[str, Any], *, status: int = 200
) -> web.Response:
    caller = identity_of(request)
    allowed = sorted(caller.permissions()) if caller is not None else []
    page = render(
        request,
        template,
        {
            "caller": caller,
            "allowed": allowed,
            "csrf_token": request.cookies.get(CSRF_COOKIE, ""),
            **context,
        },
        status=status,
    )
    return page


def problem_of(exc: BadRequest) -> dict[str, Any]:
    """A refusal as a screen's ``problem_note`` shows it: status, field, the API's reason."""
    return {"status": exc.status, "field": exc.field, "reason": exc.reason}


def redirect_done(path: str, done: str) -> web.Response:
    """Redirect after a post: back to ``path``, whose page says what was ``done`` (a word)."""
    return web.Response(status=303, headers={"Location": f"{path}?{urlencode({'done': done})}"})


def no_store(page: web.Response) -> web.Response:
    """A page showing a secret once (a one-time password, a new token): kept by no cache."""
    page.headers["Cache-Control"] = "no-store"
    return page


def parse_utc(text: str | None) -> datetime | None:
    """An instant as the API spells it (``2026-12-01T10:00:00Z`` or with an offset), aware."""
    if not text:
        return None
    try:
        instant = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return instant if instant.utcoffset() is not None else instant.replace(tzinfo=UTC)


def local_instant(zone: ZoneInfo) -> Callable[[Any], Markup]:
    """The filter: an instant (aware ``datetime`` or ISO text) as local time in ``<time>``; — if none."""

    def shown(value: Any) -> Markup:
        instant = value if isinstance(value, datetime) else parse_utc(value)
        if instant is None:
            return Markup("—")
        utc = instant.astimezone(UTC).isoformat().replace("+00:00", "Z")
        local = instant.astimezone(zone).isoformat(" ", "minutes")
        return Markup('<time datetime="{}">{}</time>').format(escape(utc), escape(local))

    return shown


def install_screen_support(web_app: web.Application, zone: ZoneInfo) -> None:
    """The filters in every language's environment and the refusal pages' middleware, once."""
    if web_app.get(_INSTALLED):
        return
    web_app[_INSTALLED] = True
    for key in ENVIRONMENTS.values():
        web_app[key].filters["local_instant"] = local_instant(zone)
    install_page_refusals(web_app)
