"""The signed-in user's own password: ``GET/POST /account/password``, the API's ``/api/me/password``.

The form asks the current password and the new one twice.  The page itself
checks only that the two new ones agree (a slip the API never sees); the
change is the API's one function, ``change_own_password``: the new
password's length bounds, the current one's check counted against the
sign-in rate limit (shared by every worker) and audited when it fails, the
change audited, and the user's other sessions ended (this one goes on).
Each refusal is told next to its field in the page's language: the API's
reasons are English sentences for programs, so the page names a
:data:`PROBLEMS` code and the template words it.
"""

from __future__ import annotations

from dataclasses import dataclass

import structlog
from aiohttp import web

from handlers.api.http_guard import BadRequest
from handlers.identity.guard import identity_of, who
from handlers.identity.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from handlers.identity.routes import SAME_PASSWORD, change_own_password
from handlers.web.pages import Desk
from handlers.web.screen_support import no_store, render_screen

log = structlog.get_logger("keydesk.web")

PATH = "/account/password"
#: what the page says went wrong (the template words each): the current password is missing, wrong,
#: or checked too often; the new one is out of bounds, the current one again, or typed differently twice
PROBLEMS = ("current_missing", "current_wrong", "limited", "new_length", "new_same", "new_mismatch", "other")
#: the longest a posted password is read (longer is refused by the bounds, not cut to fit)
_READ_LIMIT = MAX_PASSWORD_LENGTH + 1


@dataclass(frozen=True, slots=True)
class Problem:
    """A refused change: the form's field it is about (``None``: the form) and its code."""

    field: str | None
    code: str


def problem_of(refusal: BadRequest) -> Problem:
    """The page's words for the API's refusal of a password change."""
    if refusal.field == "password":
        return Problem(
            "password", {403: "current_wrong", 429: "limited"}.get(refusal.status, "current_missing")
        )
    if refusal.field == "new_password":
        return Problem("new_password", "new_same" if refusal.reason == SAME_PASSWORD else "new_length")
    return Problem(None, "other")


def register_account_page(web_app: web.Application, desk: Desk) -> None:
    """Attach the password page (after ``register_pages``: the pages' languages and templates)."""

    def page(request: web.Request, problem: Problem | None, *, status: int = 200) -> web.Response:
        context = {
            "problem": problem,
            "changed": request.query.get("changed") == "1" and problem is None,
            "min_length": MIN_PASSWORD_LENGTH,
            "max_length": MAX_PASSWORD_LENGTH,
        }
        return no_store(render_screen(request, "account_password.html", context, status=status))

    async def password_form(request: web.Request) -> web.Response:
        return page(request, None)

    async def change_password(request: web.Request) -> web.Response:
        caller = identity_of(request)
        assert caller is not None  # the identity's middleware signed it in
        form = await request.post()
        current = str(form.get("password", ""))[:_READ_LIMIT]
        new = str(form.get("new_password", ""))[:_READ_LIMIT]
        if new != str(form.get("new_password_again", ""))[:_READ_LIMIT]:
            return page(request, Problem("new_password_again", "new_mismatch"), status=422)
        try:
            await change_own_password(desk.db, desk.hasher, caller, current, new, who(request), desk.clock)
        except BadRequest as exc:
            if exc.status not in (403, 422, 429):
                raise
            answer = page(request, problem_of(exc), status=exc.status)
            if exc.headers and "Retry-After" in exc.headers:
                answer.headers["Retry-After"] = exc.headers["Retry-After"]
            return answer
        log.info("web.password_changed", username=caller.name)
        return web.Response(status=303, headers={"Location": f"{PATH}?changed=1"})

    web_app.router.add_get(PATH, password_form)
    web_app.router.add_post(PATH, change_password)
