"""The identity's HTTP routes: sign-in and out, me, users, tokens, the audit.

``POST /api/login`` opens a server-side session: its secret goes in an
``HttpOnly; SameSite=Strict`` cookie (``Secure`` with ``KEYDESK_COOKIE_SECURE=1``,
behind TLS) and, for the CLI that asks with ``"bearer": true``, in the answer, to
send as ``Authorization: Bearer``; the answer carries the CSRF token a browser
sends in ``X-CSRF-Token`` with every write.  Sign-in attempts are limited in the
database, so all workers share the count: after :data:`MAX_FAILURES_PER_USER`
failed attempts for one username, or :data:`MAX_FAILURES_PER_ADDRESS` from one
address, within :data:`FAILURE_WINDOW`, the next gets 429 (right password or not)
until the window has passed.  Each attempt is counted before its password is
checked (:func:`reserve_password_attempt`), so a burst is counted whole; a check
of the current password (``POST /api/me/password``) counts against the same limit.

Admin routes answer 4xx naming the field; every change is audited with its
before and after, in the change's own transaction (``store.py``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import faust
from faust.web import Request, Response, View

from handlers.api.http_guard import BadRequest, check_instant_years, read_json_object
from handlers.api.operations import operation
from handlers.identity import audit
from handlers.identity.audit import Who
from handlers.identity.guard import CSRF_HEADER, SESSION_COOKIE, client_address, identity_of, who
from handlers.identity.passwords import PasswordHasher, new_password, password_problem
from handlers.identity.roles import ROLES, Identity, unknown_roles
from handlers.identity.store import SESSION_LIFETIME, IdentityDb, IdentityError, token_public
from schemas.envelope import InvalidEvent, parse_instant
from schemas.event_catalogue import EVENT_TYPES, SOURCES

MAX_FAILURES_PER_USER = 5
MAX_FAILURES_PER_ADDRESS = 20
FAILURE_WINDOW = timedelta(minutes=15)
MAX_TOKEN_DAYS = 3650
USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
_USER_FIELDS = {"username", "password", "roles", "staff_id", "region"}
_USER_CHANGES = {"roles", "disabled", "staff_id", "region", "password"}
_TOKEN_FIELDS = {"name", "username", "event_types", "source", "expires_in_days"}
#: event types an integration token may be given: any but the timers' own
PUBLISHABLE = tuple(t for t in EVENT_TYPES if not t.startswith("sla."))


def _unknown(body: dict[str, Any], allowed: set[str]) -> None:
    extra = sorted(set(body) - allowed)
    if extra:
        raise BadRequest(422, extra[0][:64], f"unknown field; send {', '.join(sorted(allowed))}")


def _text(body: dict[str, Any], name: str, most: int, *, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > most:
        raise BadRequest(422, name, f"must be a non-empty string of at most {most} characters")
    return value.strip()


def checked_text(value: str, name: str) -> str:
    """``value`` unless it holds a control character (NUL: PostgreSQL refuses it in any text)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadRequest(422, name, "must not contain control characters")
    return value


def _username(body: dict[str, Any], name: str = "username") -> str:
    value = body.get(name)
    if not isinstance(value, str) or not USERNAME.fullmatch(value):
        raise BadRequest(422, name, "must be 1-64 letters, digits or ._@- (starting with a letter or digit)")
    return value


def _roles(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise BadRequest(422, "roles", f"must be a list of roles: {', '.join(ROLES)}")
    unknown = unknown_roles(value)
    if unknown:
        raise BadRequest(422, "roles", f"unknown role {unknown[0][:40]!r}; roles are {', '.join(ROLES)}")
    return sorted(set(value))


def _new_password(body: dict[str, Any], name: str) -> str:
    problem = password_problem(body.get(name))
    if problem:
        raise BadRequest(422, name, problem)
    password: str = body[name]
    return password


async def sign_in(
    db: IdentityDb,
    hasher: PasswordHasher,
    username: str,
    password: str,
    address: str | None,
    clock: Callable[[], datetime],
) -> tuple[Any, Any]:
    """Check a password and open a session: ``(user, session)``, or the refusal as a ``BadRequest``.

    The one sign-in of the API's ``POST /api/login`` and the web desk's form
    (``handlers/web/pages.py``): the rate limit (per username and per address,
    shared by every worker through the audit table), the dummy hash for an
    unknown or disabled user, and the audit rows of failures.
    """
    store = db.store
    username = checked_text(username, "username")
    attempt = await reserve_password_attempt(db, username, address, clock)
    user = await db.run(store.user, username)
    stored = user.password_hash if user is not None and not user.disabled else None
    if not await hasher.verify(stored, password):
        await db.run(audit.record_now, store.engine, "login_failed", Who(address=address), target=username)
        raise BadRequest(401, "password", "wrong username or password")
    assert user is not None
    session = await db.run(store.open_session, user.username, Who(address=address))
    await db.run(
        audit.settle_attempt, store.engine, attempt, Who(user.username, session.id, address), "login"
    )
    return user, session


async def reserve_password_attempt(
    db: IdentityDb,
    username: str,
    address: str | None,
    clock: Callable[[], datetime],
    actor: str | None = None,
) -> int:
    """Count a password check before it runs (the attempt's id), or refuse it with a 429.

    Reserved first, then counted (``audit.reserve_attempt``): attempts sent at
    once are each counted before any is checked, so at most the limit of them
    reach the password hash.  Sign-ins and changes of one's own password share
    the per-user count: both are guesses at that user's password.
    """
    store, now = db.store, clock()
    who = Who(actor, None, address)
    attempt, by_user, by_address = await db.run(
        audit.reserve_attempt, store.engine, who, username, now - FAILURE_WINDOW, now
    )
    if by_user > MAX_FAILURES_PER_USER or by_address > MAX_FAILURES_PER_ADDRESS:
        await db.run(audit.settle_attempt, store.engine, attempt, who, "limited")  # never checked
        await db.run(audit.record_now, store.engine, "login_limited", who, target=username)
        raise BadRequest(
            429,
            "username" if actor is None else "password",
            f"too many failed password attempts (at most {MAX_FAILURES_PER_USER} per user, "
            f"{MAX_FAILURES_PER_ADDRESS} per address in {FAILURE_WINDOW.seconds // 60} min); "
            "retry later",
            {"Retry-After": str(FAILURE_WINDOW.seconds)},
        )
    return attempt


#: why a change of one's own password is refused, as the API says it (the desk's page words each
#: in the page's language: ``handlers/web/account_page.py``)
SAME_PASSWORD = "must differ from the current password"
WRONG_PASSWORD = "the current password is wrong"


async def change_own_password(
    db: IdentityDb,
    hasher: PasswordHasher,
    caller: Identity,
    current: object,
    new: object,
    by: Who,
    clock: Callable[[], datetime],
) -> None:
    """Change the caller's own password, or refuse as a ``BadRequest`` naming ``password``/``new_password``.

    The one change of ``POST /api/me/password`` and the desk's page
    (``GET/POST /account/password``): the new password's bounds
    (``passwords.password_problem``), the check of the current one counted
    against the sign-in rate limit (a stolen session must not be a way to
    guess the password without limit; 429 past it), a failed check audited,
    and the change audited by ``store.change_user``, which ends the user's
    other sessions (``by.credential`` goes on) and the one-time password.
    """
    if caller.kind != "user":
        raise BadRequest(422, "Authorization", "an integration token has no password")
    problem = password_problem(new)
    if problem:
        raise BadRequest(422, "new_password", problem)
    assert isinstance(new, str)
    if not isinstance(current, str) or not current or len(current) > 200:
        raise BadRequest(422, "password", "must be a non-empty string of at most 200 characters")
    if new == current:
        raise BadRequest(422, "new_password", SAME_PASSWORD)
    store = db.store
    attempt = await reserve_password_attempt(db, caller.name, by.address, clock, actor=caller.name)
    user = await db.run(store.user, caller.name)
    if user is None or not await hasher.verify(user.password_hash, current):
        await db.run(audit.record_now, store.engine, "login_failed", by, target=caller.name)
        raise BadRequest(403, "password", WRONG_PASSWORD)
    await db.run(audit.settle_attempt, store.engine, attempt, by, "password_checked")
    changes = {"password_hash": await hasher.hash(new), "must_change_password": False}
    await _run(db, store.change_user, caller.name, changes, by)


def set_session_cookie(response: Any, secret: str, secure: bool) -> None:
    """The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site sends it)."""
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        path="/",
        httponly=True,
        samesite="Strict",
        secure=secure,
    )


def register_identity_routes(
    app: faust.App,
    db: IdentityDb,
    hasher: PasswordHasher,
    *,
    cookie_secure: bool,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Attach sign-in, me, users, tokens and audit routes to ``app``."""
    store = db.store

    async def run(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return await _run(db, fn, *args, **kwargs)

    @app.page("/api/login")
    class Login(View):
        """Sign in with username and password: a session (cookie, and a bearer secret if asked)."""

        async def post(self, request: Request) -> Response:
            body = await read_json_object(request)
            _unknown(body, {"username", "password", "bearer"})
            username = _text(body, "username", 64, required=True)
            password = body.get("password")
            if not isinstance(password, str) or not password or len(password) > 200:
                raise BadRequest(422, "password", "must be a non-empty string of at most 200 characters")
            assert username is not None
            user, session = await sign_in(db, hasher, username, password, client_address(request), clock)
            answer = {
                "username": user.username,
                "roles": list(user.roles),
                "session_id": session.id,
                "csrf_token": session.csrf,
                "expires_at": session.expires_at.isoformat().replace("+00:00", "Z"),
                "must_change_password": user.must_change_password,
            }
            if body.get("bearer") is True:
                answer["token"] = session.secret
            response = self.json(answer)
            set_session_cookie(response, session.secret, cookie_secure)
            return response

    @app.page("/api/logout")
    class Logout(View):
        """End this session (every worker refuses it from the next request on)."""

        async def post(self, request: Request) -> Response:
            caller = identity_of(request)
            assert caller is not None
            if not caller.credential.startswith("s-"):
                raise BadRequest(
                    422, "Authorization", "a token is not signed out: revoke it (DELETE /api/tokens/{id})"
                )
            await db.run(store.end_session, caller.credential, who(request))
            response = self.json({"signed_out": caller.credential})
            response.del_cookie(SESSION_COOKIE, path="/")
            return response

    @app.page("/api/me")
    async def me(web: View, request: Request) -> Response:
        """Who this request is: name, roles, scope, credential."""
        caller = identity_of(request)
        assert caller is not None
        return web.json(
            {
                "name": caller.name,
                "kind": caller.kind,
                "roles": sorted(caller.roles),
                "staff_id": caller.staff,
                "region": caller.region,
                "credential": caller.credential,
                "event_types": sorted(caller.event_types),
                "source": caller.source,
                "must_change_password": caller.must_change_password,
                "csrf_header": CSRF_HEADER,
            }
        )

    @app.page("/api/me/password")
    class Password(View):
        """Change my password: ``{password, new_password}`` (ends a one-time password)."""

        async def post(self, request: Request) -> Response:
            caller = identity_of(request)
            assert caller is not None
            body = await read_json_object(request)
            _unknown(body, {"password", "new_password"})
            await change_own_password(
                db, hasher, caller, body.get("password"), body.get("new_password"), who(request), clock
            )
            return self.json({"username": caller.name, "password_changed": True})

    @app.page("/api/users")
    class Users(View):
        """Admin: list users; add one (``password`` omitted: a one-time one is made and shown once)."""

        async def get(self, request: Request) -> Response:
            return self.json({"users": await db.run(store.users)})

        async def post(self, request: Request) -> Response:
            added = await add_user(db, hasher, await read_json_object(request), who(request))
            return self.json(added, status=201)

    @app.page("/api/users/{username}")
    class OneUser(View):
        """Admin: change roles, disable or enable, staff id, region, or reset the password."""

        async def patch(self, request: Request, username: str) -> Response:
            body = await read_json_object(request)
            return self.json(await change_user(db, hasher, username, body, who(request)))

    @app.page("/api/tokens")
    class Tokens(View):
        """Admin: list tokens; create one (its secret is in this answer only)."""

        async def get(self, request: Request) -> Response:
            return self.json({"tokens": await db.run(store.tokens)})

        async def post(self, request: Request) -> Response:
            body = await read_json_object(request)
            return self.json(await create_token(db, body, who(request), clock), status=201)

    @app.page("/api/tokens/{token_id}")
    class OneToken(View):
        """Admin: revoke a token (every worker refuses it from the next request on)."""

        async def delete(self, request: Request, token_id: str) -> Response:
            return self.json(await revoke_token(db, token_id, who(request)))

    @app.page("/api/audit")
    async def audit_trail(web: View, request: Request) -> Response:
        """Admin: the audit trail, newest first, ``?kind=&actor=&target=&since=&until=&limit=&before=``."""
        return web.json(await audit_page(db, request.query))


# The admin changes, one function each: the API's routes above and the web desk's admin pages
# (``handlers/web/admin_pages.py``) both call them, so a change is checked and audited one way.


async def _run(db: IdentityDb, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return await db.run(fn, *args, **kwargs)
    except IdentityError as exc:
        raise BadRequest(exc.status, exc.field, exc.reason) from None


async def add_user(db: IdentityDb, hasher: PasswordHasher, body: dict[str, Any], by: Who) -> dict[str, Any]:
    """``POST /api/users``: the new user; ``one_time_password`` when none was given (shown once)."""
    _unknown(body, _USER_FIELDS)
    username = _username(body)
    roles = _roles(body.get("roles", []))
    one_time = "password" not in body  # given: a string of 10-200 characters (null is refused)
    password = new_password() if one_time else _new_password(body, "password")
    added: dict[str, Any] = await _run(
        db,
        db.store.add_user,
        username,
        await hasher.hash(password),
        roles,
        by,
        staff_id=_text(body, "staff_id", 64),
        region=_text(body, "region", 120),
        must_change_password=one_time,
    )
    if one_time:
        added["one_time_password"] = password
    return added


async def change_user(
    db: IdentityDb, hasher: PasswordHasher, username: str, body: dict[str, Any], by: Who
) -> dict[str, Any]:
    """``PATCH /api/users/{username}``; ``password: null`` makes a one-time one (in the answer only)."""
    _unknown(body, _USER_CHANGES)
    if not body:
        raise BadRequest(422, None, f"send one of {', '.join(sorted(_USER_CHANGES))}")
    changes: dict[str, Any] = {}
    if "roles" in body:
        changes["roles"] = _roles(body["roles"])
    if "disabled" in body:
        if not isinstance(body["disabled"], bool):
            raise BadRequest(422, "disabled", "must be true or false")
        changes["disabled"] = body["disabled"]
    for name, most in (("staff_id", 64), ("region", 120)):
        if name in body:
            changes[name] = _text(body, name, most)
    one_time = None
    if "password" in body:
        one_time = new_password() if body["password"] is None else _new_password(body, "password")
        changes["password_hash"] = await hasher.hash(one_time)
        changes["must_change_password"] = True
    changed: dict[str, Any] = await _run(db, db.store.change_user, username, changes, by)
    if one_time is not None and body["password"] is None:
        changed["one_time_password"] = one_time
    return changed


async def create_token(
    db: IdentityDb, body: dict[str, Any], by: Who, clock: Callable[[], datetime]
) -> dict[str, Any]:
    """``POST /api/tokens``: the token's public record and its secret (``token``), shown this once."""
    _unknown(body, _TOKEN_FIELDS)
    name = _username(body, "name")
    username = _username(body) if body.get("username") is not None else None
    event_types, source = body.get("event_types"), body.get("source")
    if username is None:
        if (
            not isinstance(event_types, list)
            or not event_types
            or not all(isinstance(t, str) for t in event_types)
        ):
            raise BadRequest(
                422,
                "event_types",
                "an integration token needs a list of the event types it may publish",
            )
        bad = sorted(set(event_types) - set(PUBLISHABLE))
        if bad:
            raise BadRequest(422, "event_types", f"{bad[0][:60]!r} is not an event type a token may publish")
        if source not in SOURCES:
            raise BadRequest(422, "source", f"must be one of {', '.join(SOURCES)}")
    elif event_types is not None or source is not None:
        field = "event_types" if event_types is not None else "source"
        raise BadRequest(422, field, "a personal token acts with its user's roles; leave it out")
    if username is not None and username != by.actor:
        # A personal token acts under its user's name: minted by an admin for someone else,
        # it would let the admin act as them.  Admins make integration tokens instead.
        raise BadRequest(
            403,
            "username",
            "a personal token is made by its own user; leave username out for an integration token",
        )
    days = query_number_value(body.get("expires_in_days"))
    expires_at = clock() + timedelta(days=days) if days is not None else None
    public, secret = await _run(
        db,
        db.store.create_token,
        name,
        by,
        username=username,
        event_types=event_types if username is None else None,
        source=source if username is None else None,
        expires_at=expires_at,
    )
    return {**public, "token": secret}


async def revoke_token(db: IdentityDb, token_id: str, by: Who) -> dict[str, Any]:
    """``DELETE /api/tokens/{token_id}``: the token as revoked (again: unchanged, audited)."""
    revoked: dict[str, Any] = await _run(db, db.store.revoke_token, token_id, by)
    return revoked


async def audit_page(db: IdentityDb, query: Mapping[str, str]) -> dict[str, Any]:
    """``GET /api/audit``: one page of the trail, newest first, and the ``next_before`` cursor."""
    asked = operation("read_audit").read_values(query)  # bounds as the API document declares them
    filters: dict[str, Any] = {n: asked[n] for n in ("kind", "actor", "target") if asked[n]}
    check_instant_years(dict(query), "since", "until")
    for name in ("since", "until"):
        if asked[name]:
            try:
                filters[name] = parse_instant(asked[name], name)
            except InvalidEvent as exc:
                raise BadRequest(422, exc.field, exc.reason) from None
    limit, before = int(asked["limit"]), asked["before"]
    rows = await db.run(audit.page, db.store.engine, filters, limit, before)
    return {"records": rows, "next_before": rows[-1]["id"] if len(rows) == limit else None}


def query_number_value(value: Any) -> int | None:
    """``expires_in_days``: a whole number of days, 1 to :data:`MAX_TOKEN_DAYS`, or ``None``."""
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_TOKEN_DAYS:
        raise BadRequest(422, "expires_in_days", f"must be a whole number from 1 to {MAX_TOKEN_DAYS}")
    return value


__all__ = [
    "add_user",
    "audit_page",
    "change_user",
    "create_token",
    "register_identity_routes",
    "revoke_token",
    "set_session_cookie",
    "sign_in",
    "token_public",
]
