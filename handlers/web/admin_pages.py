"""Screen 8, administration in the browser: users and roles, API tokens, the customer archive, the audit.

(The rules file, which managers read too, has its module: ``handlers/web/rules_page.py``.)

Each form calls the function the API's route calls (``handlers/identity/routes.py``:
``add_user``, ``change_user``, ``create_token``, ``revoke_token``, ``audit_page``;
the archive's ``register``/``update``/``search`` of
:class:`~handlers.api.customer_archive.ArchiveDesk`), so a change is checked,
published and audited exactly as through the API; only the spelling differs
(form fields in, a page out).  Who may open which page is the identity's table
(``handlers/identity/operations.py``): admin permissions only; everyone else
gets the 403 page.

Forms work without JavaScript: a change answers ``303`` back to the list
(redirect after post), except the two that show a secret, which is shown on the
answer to the post itself, once, never stored and never put in a URL: a new
user's or a reset one-time password, and a new token (``Cache-Control:
no-store``).  Each form carries the session's CSRF token; the identity's
middleware refuses a post without it (403) before any handler runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiohttp import web

from handlers.api.customer_archive import ArchiveDesk
from handlers.api.http_guard import BadRequest
from handlers.identity.guard import who
from handlers.identity.roles import ROLES
from handlers.identity.routes import (
    PUBLISHABLE,
    add_user,
    audit_page,
    change_user,
    create_token,
    revoke_token,
)
from handlers.web.pages import Desk
from handlers.web.screen_support import (
    install_screen_support,
    no_store,
    problem_of,
    redirect_done,
    render_screen,
)
from schemas.event_catalogue import SOURCES, TIERS

#: the archive fields a form edits as text, and those it edits as JSON (lists, objects)
ARCHIVE_TEXT = ("name", "tier", "region", "industry")
ARCHIVE_JSON = ("account_manager", "escalation_chain", "contacts", "services")
AUDIT_FILTERS = ("kind", "actor", "target")
AUDIT_PAGE = 50
#: the notices a redirect after a post may show (``?done=``): a word, never text from the request
DONE = ("added", "saved", "disabled", "enabled", "revoked", "registered", "updated")


def _field(form: Mapping[str, Any], name: str, most: int = 500) -> str:
    return str(form.get(name, "")).strip()[:most]


def _json_field(form: Mapping[str, Any], name: str) -> Any:
    """A JSON field of the archive form: empty is "not given"; not JSON is a 422 naming it."""
    text = _field(form, name, 200_000)
    if not text:
        return None
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        raise BadRequest(422, name, "is not valid JSON") from None


def archive_body(form: Mapping[str, Any], *, customer_id: bool) -> dict[str, Any]:
    """The body ``POST``/``PATCH /api/customers`` would get from the form: only the fields filled in."""
    body: dict[str, Any] = {}
    if customer_id:
        body["customer_id"] = _field(form, "customer_id", 200)
    for name in ARCHIVE_TEXT:
        value = _field(form, name, 1000)
        if value:
            body[name] = value
    for name in ARCHIVE_JSON:
        value = _json_field(form, name)
        if value is not None:
            body[name] = value
    return body


def changed_fields(body: dict[str, Any], record: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of an edit that differ from the record: a ``PATCH`` changes only what it names."""
    return {name: value for name, value in body.items() if record.get(name) != value}


def archive_form(record: Mapping[str, Any] | None) -> dict[str, str]:
    """The form's values of a record (JSON fields pretty-printed, absent ones empty)."""
    shown: dict[str, str] = {"customer_id": str((record or {}).get("customer_id") or "")}
    for name in ARCHIVE_TEXT:
        shown[name] = str((record or {}).get(name) or "")
    for name in ARCHIVE_JSON:
        value = (record or {}).get(name)
        shown[name] = orjson.dumps(value, option=orjson.OPT_INDENT_2).decode() if value else ""
    return shown


def day_bounds(since: str, until: str, zone: ZoneInfo) -> dict[str, str]:
    """The audit form's local days as the API's instants: from ``since`` 00:00 to the end of ``until``."""
    bounds: dict[str, str] = {}
    for name, text, extra in (("since", since, 0), ("until", until, 1)):
        if not text:
            continue
        try:
            day = date.fromisoformat(text)
        except ValueError:
            raise BadRequest(422, name, "must be a date such as 2026-12-01") from None
        instant = datetime.combine(day + timedelta(days=extra), time(), tzinfo=zone)
        bounds[name] = instant.astimezone(UTC).isoformat()
    return bounds


def register_admin_pages(
    web_app: web.Application, desk: Desk, archive: ArchiveDesk | None, zone: ZoneInfo
) -> None:
    """Attach the ``/admin/...`` pages; without ``archive`` (no worker behind) the archive pages say so."""
    install_screen_support(web_app, zone)
    db, hasher = desk.db, desk.hasher

    # users and roles --------------------------------------------------------------------------

    async def users_page(request: web.Request, *, status: int = 200, **context: Any) -> web.Response:
        users = await db.run(db.store.users)
        defaults = {"problem": None, "one_time": None, "form": {}, "done": _done(request)}
        return render_screen(
            request,
            "admin_users.html",
            {**defaults, **context, "users": users, "roles": ROLES},
            status=status,
        )

    async def users(request: web.Request) -> web.Response:
        return await users_page(request)

    async def add(request: web.Request) -> web.Response:
        form = await request.post()
        body: dict[str, Any] = {"username": _field(form, "username", 200), "roles": form.getall("roles", [])}
        for name in ("staff_id", "region"):
            if _field(form, name):
                body[name] = _field(form, name)
        try:
            added = await add_user(db, hasher, body, who(request))
        except BadRequest as exc:
            return await users_page(request, status=exc.status, problem=problem_of(exc), form=body)
        # the one-time password: on this answer only, never in a URL or a later page
        return no_store(await users_page(request, status=200, one_time=added))

    async def user_page(
        request: web.Request, username: str, *, status: int = 200, **context: Any
    ) -> web.Response:
        found = next((u for u in await db.run(db.store.users) if u["username"] == username), None)
        if found is None:
            raise BadRequest(404, "username", f"no user {username}")
        defaults = {"problem": None, "one_time": None, "done": _done(request)}
        return render_screen(
            request, "admin_user.html", {**defaults, **context, "user": found, "roles": ROLES}, status=status
        )

    async def user(request: web.Request) -> web.Response:
        return await user_page(request, request.match_info["username"])

    async def change(request: web.Request) -> web.Response:
        username = request.match_info["username"]
        form = await request.post()
        action = _field(form, "action", 20)
        bodies: dict[str, dict[str, Any]] = {
            "save": {
                "roles": form.getall("roles", []),
                "staff_id": _field(form, "staff_id") or None,
                "region": _field(form, "region") or None,
            },
            "disable": {"disabled": True},
            "enable": {"disabled": False},
            "reset": {"password": None},
        }
        if action not in bodies:
            raise BadRequest(422, "action", f"one of {', '.join(bodies)}")
        try:
            changed = await change_user(db, hasher, username, bodies[action], who(request))
        except BadRequest as exc:
            if exc.status == 404:
                raise
            return await user_page(request, username, status=exc.status, problem=problem_of(exc))
        if action == "reset":
            return no_store(await user_page(request, username, one_time=changed["one_time_password"]))
        done = {"save": "saved", "disable": "disabled", "enable": "enabled"}[action]
        return redirect_done(f"/admin/users/{username}", done)

    # API tokens ---------------------------------------------------------------------------------

    async def tokens_page(request: web.Request, *, status: int = 200, **context: Any) -> web.Response:
        tokens = await db.run(db.store.tokens)
        names = [u["username"] for u in await db.run(db.store.users)]
        defaults = {"problem": None, "created": None, "form": {}, "done": _done(request)}
        return render_screen(
            request,
            "admin_tokens.html",
            {
                **defaults,
                **context,
                "tokens": tokens,
                "usernames": names,
                "event_types": PUBLISHABLE,
                "sources": SOURCES,
            },
            status=status,
        )

    async def tokens(request: web.Request) -> web.Response:
        return await tokens_page(request)

    async def create(request: web.Request) -> web.Response:
        form = await request.post()
        body: dict[str, Any] = {"name": _field(form, "name", 200)}
        if _field(form, "kind", 20) == "integration":
            body["event_types"] = form.getall("event_types", [])
            body["source"] = _field(form, "source", 40)
        else:
            body["username"] = _field(form, "username", 200)
        days = _field(form, "expires_in_days", 10)
        try:
            if days:
                if not days.isascii() or not days.isdigit():
                    raise BadRequest(422, "expires_in_days", "must be a whole number of days")
                body["expires_in_days"] = int(days)
            created = await create_token(db, body, who(request), desk.clock)
        except BadRequest as exc:
            return await tokens_page(request, status=exc.status, problem=problem_of(exc), form=body)
        return no_store(await tokens_page(request, created=created))

    async def revoke(request: web.Request) -> web.Response:
        try:
            await revoke_token(db, request.match_info["token_id"], who(request))
        except BadRequest as exc:
            return await tokens_page(request, status=exc.status, problem=problem_of(exc))
        return redirect_done("/admin/tokens", "revoked")

    # the customer archive ----------------------------------------------------------------------

    def the_archive() -> ArchiveDesk:
        if archive is None:
            raise BadRequest(503, None, "the customer archive needs a worker behind the desk")
        return archive

    async def customers(request: web.Request) -> web.Response:
        asked = {
            n: request.query[n].strip()
            for n in ("q", "tier", "region", "account_manager", "has_open_breaches", "after")
            if request.query.get(n, "").strip()
        }
        page, problem = await listed(lambda: the_archive().search(asked), {"customers": [], "next": None})
        following = {**asked, "after": page["next"]} if page["next"] else None
        return render_screen(
            request,
            "admin_customers.html",
            {
                "asked": asked,
                "page": page,
                "following": following,
                "tiers": TIERS,
                "problem": problem,
                "done": _done(request),
            },
            status=422 if problem else 200,
        )

    async def customer_form_page(
        request: web.Request,
        form: dict[str, str],
        *,
        new: bool,
        status: int = 200,
        problem: dict[str, Any] | None = None,
    ) -> web.Response:
        return render_screen(
            request,
            "admin_customer.html",
            {
                "new": new,
                "form": form,
                "tiers": TIERS,
                "problem": problem,
                "done": _done(request),
                "json_fields": ARCHIVE_JSON,
            },
            status=status,
        )

    async def record_of(customer_id: str) -> dict[str, Any]:
        record = await the_archive().record(customer_id)
        if record is None:
            raise BadRequest(404, "customer_id", f"no customer {customer_id} is registered")
        return record

    async def archive_change(
        request: web.Request, shown: dict[str, str], change: Callable[[], Awaitable[str]], *, new: bool
    ) -> web.Response:
        """A register or an update: back to the record (``change`` gives its id), or the form and why not."""
        try:
            customer_id = await change()
        except BadRequest as exc:
            return await customer_form_page(
                request, shown, new=new, status=exc.status, problem=problem_of(exc)
            )
        return redirect_done(f"/admin/customers/{customer_id}", "registered" if new else "updated")

    async def new_customer(request: web.Request) -> web.Response:
        the_archive()
        return await customer_form_page(request, archive_form(None), new=True)

    async def register(request: web.Request) -> web.Response:
        archive_desk = the_archive()
        form = await request.post()
        shown = {n: _field(form, n, 200_000) for n in ("customer_id", *ARCHIVE_TEXT, *ARCHIVE_JSON)}

        async def change() -> str:
            _, answer = await archive_desk.register(request, archive_body(form, customer_id=True), 2.0)
            return str(answer["customer_id"])

        return await archive_change(request, shown, change, new=True)

    async def customer(request: web.Request) -> web.Response:
        record = await record_of(request.match_info["customer_id"])
        return await customer_form_page(request, archive_form(record), new=False)

    async def update(request: web.Request) -> web.Response:
        archive_desk = the_archive()
        customer_id = request.match_info["customer_id"]
        form = await request.post()
        shown = {n: _field(form, n, 200_000) for n in (*ARCHIVE_TEXT, *ARCHIVE_JSON)}
        shown["customer_id"] = customer_id

        async def change() -> str:
            record = await record_of(customer_id)  # a 404 first, as before the form is read
            await archive_desk.update(
                request, customer_id, changed_fields(archive_body(form, customer_id=False), record), 2.0
            )
            return customer_id

        return await archive_change(request, shown, change, new=False)

    # the audit trail ---------------------------------------------------------------------------

    async def audit(request: web.Request) -> web.Response:
        asked = {n: request.query[n].strip()[:300] for n in AUDIT_FILTERS if request.query.get(n, "").strip()}
        days = {n: request.query.get(n, "").strip()[:10] for n in ("since", "until")}
        before = request.query.get("before", "").strip()[:20]

        async def read() -> dict[str, Any]:
            query = {**asked, **day_bounds(days["since"], days["until"], zone), "limit": str(AUDIT_PAGE)}
            return await audit_page(db, {**query, "before": before} if before else query)

        page, problem = await listed(read, {"records": [], "next_before": None})
        kept = {**asked, **{n: v for n, v in days.items() if v}}
        older = {**kept, "before": page["next_before"]} if page["next_before"] else None
        return render_screen(
            request,
            "admin_audit.html",
            {
                "asked": kept,
                "page": page,
                "older": older,
                "newest": kept if before else None,
                "problem": problem,
            },
            status=422 if problem else 200,
        )

    web_app.router.add_get("/admin/users", users)
    web_app.router.add_post("/admin/users", add)
    web_app.router.add_get("/admin/users/{username}", user)
    web_app.router.add_post("/admin/users/{username}", change)
    web_app.router.add_get("/admin/tokens", tokens)
    web_app.router.add_post("/admin/tokens", create)
    web_app.router.add_post("/admin/tokens/{token_id}/revoke", revoke)
    web_app.router.add_get("/admin/customers", customers)
    web_app.router.add_get("/admin/customers/new", new_customer)
    web_app.router.add_post("/admin/customers", register)
    web_app.router.add_get("/admin/customers/{customer_id}", customer)
    web_app.router.add_post("/admin/customers/{customer_id}", update)
    web_app.router.add_get("/admin/audit", audit)


async def listed(
    read: Callable[[], Awaitable[dict[str, Any]]], empty: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """A list's page, or, for a query refused 422, the ``empty`` page and the problem to show with it
    (the form stays usable); any other refusal is the refusal page's."""
    try:
        return await read(), None
    except BadRequest as exc:
        if exc.status != 422:
            raise
        return empty, problem_of(exc)


def _done(request: web.Request) -> str | None:
    done = request.query.get("done")
    return done if done in DONE else None


__all__ = ["register_admin_pages"]
