"""Screen 8's rules: the SLA rules file in force, a check of a draft, and (admins) a replace.

Every answer is the API's (``handlers/api/rules_routes.py``): the page shows
what ``GET /api/rules`` gives (:func:`rules_in_force`), its check is
``POST /api/rules/check``'s (:func:`check_answer`), its replace is
``PUT /api/rules?wait``'s (:func:`replace_rules`: checked, written to the rules
topic, waited for, audited the same way).  Who may do what is the identity's
table (``handlers/identity/operations.py``): ``rules.read`` (managers, admins)
views and checks, ``rules.write`` (admins) replaces; the replace button is drawn
only for ``rules.write``, and a replace posted without it is refused 403 by the
guard before this module runs.

Without JavaScript the check answers the whole page, with the draft kept in its
box and the result under it; with htmx the check button swaps only the result
(``#rules-check``).  A replace in force answers ``303`` back to the page
(redirect after post); a refused one answers the page with its reason (422
invalid, 409 history, stale or superseded) and a written one not yet in force
here ``202``.

Two details of a form that JSON does not have: a browser sends a textarea's
line breaks as CRLF (HTML's form submission), the rules file's are LF, so they
are turned back first (else a replace from the page would change every line);
and the form carries the revision whose text it shows (``seen``), so that an
admin's edit never silently undoes a replace made while they were typing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from handlers.api.http_guard import BadRequest
from handlers.api.input_limits import MAX_RULES_CHARACTERS, MAX_WAIT_SECONDS
from handlers.api.rules_routes import check_answer, replace_rules, rules_in_force, text_of
from handlers.identity.guard import identity_of
from handlers.identity.roles import RULES_WRITE
from handlers.web.page_context import wants_fragment
from handlers.web.screen_support import install_screen_support, problem_of, redirect_done, render_screen
from streams.rules_feed import RulesFeed

#: the notices a redirect after a replace may show (``?done=``)
DONE = ("replaced", "unchanged")


def draft_of(form: Mapping[str, Any]) -> str:
    """The textarea's text with the browser's CRLF line breaks back to the file's LF."""
    text = form.get("text")
    return text.replace("\r\n", "\n") if isinstance(text, str) else ""


def seen_of(form: Mapping[str, Any]) -> int:
    """The revision the form showed the text of: a whole number, else a 422 naming ``seen``."""
    seen = str(form.get("seen", "")).strip()
    if not seen.isascii() or not seen.isdigit() or len(seen) > 12:
        raise BadRequest(422, "seen", "must be the revision the text was edited on")
    return int(seen)


def numbered(text: str) -> list[str]:
    """The lines of a text as the rules' problems count them (``str.splitlines``, from 1)."""
    return text.splitlines()


def register_rules_page(
    web_app: web.Application,
    feed: RulesFeed,
    zone: ZoneInfo,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Attach ``/admin/rules`` (GET) and its two forms, ``/admin/rules/check`` and ``/replace``."""
    install_screen_support(web_app, zone)

    def context(request: web.Request, draft: str | None, **extra: Any) -> dict[str, Any]:
        caller = identity_of(request)
        in_force = rules_in_force(feed, clock())
        done = request.query.get("done")
        return {
            "in_force": in_force,
            "in_force_lines": numbered(in_force["text"]),
            "draft": in_force["text"] if draft is None else draft,
            "may_replace": caller is not None and RULES_WRITE in caller.permissions(),
            "limit": MAX_RULES_CHARACTERS,
            "checked": None,
            "refused": None,
            "problem": None,
            "written": None,
            "done": done if done in DONE else None,
            **extra,
        }

    def result(checked: dict[str, Any], draft: str) -> dict[str, Any]:
        return {"checked": checked, "draft_lines": numbered(draft)}

    async def rules(request: web.Request) -> web.Response:
        return render_screen(request, "admin_rules.html", context(request, None))

    async def check(request: web.Request) -> web.Response:
        draft = draft_of(await request.post())
        found: dict[str, Any]
        status = 200
        try:
            checked = check_answer(text_of({"text": draft}), feed.in_force, clock())
            found = result(checked, draft)
        except BadRequest as exc:
            status, found = exc.status, {"problem": problem_of(exc)}
        if wants_fragment(request):  # htmx swaps only 2xx answers: the result with the problem in it
            return render_screen(request, "rules_check.html", context(request, draft, **found))
        return render_screen(request, "admin_rules.html", context(request, draft, **found), status=status)

    async def replace(request: web.Request) -> web.Response:
        form = await request.post()
        draft = draft_of(form)
        try:
            text = text_of({"text": draft})
            status, answer = await replace_rules(
                request, feed, text, clock(), MAX_WAIT_SECONDS, seen=seen_of(form)
            )
        except BadRequest as exc:
            found = {"problem": problem_of(exc)}
            return render_screen(
                request, "admin_rules.html", context(request, draft, **found), status=exc.status
            )
        if status == 200:
            done = "unchanged" if answer["outcome"] == "unchanged" else "replaced"
            return redirect_done("/admin/rules", done)
        if status == 202:  # on the log, not yet in force on this worker: say so, keep the text
            found = {"written": answer}
        else:
            checked = {
                "valid": False,
                "problems": answer["problems"],
                "warnings": [],
                "error": answer["error"],
            }
            found = {**result(checked, draft), "refused": status}
        return render_screen(request, "admin_rules.html", context(request, draft, **found), status=status)

    web_app.router.add_get("/admin/rules", rules)
    web_app.router.add_post("/admin/rules/check", check)
    web_app.router.add_post("/admin/rules/replace", replace)


__all__ = ["register_rules_page"]
