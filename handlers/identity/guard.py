"""The identity middleware: every request but health and sign-in needs a session or a token.

Runs inside the HTTP guard (``handlers/api/http_guard.py``: bounds and the error
shape), before any handler:

1. the route the request matched is looked up in the one table of operations
   (``handlers/identity/operations.py``); a route without a row is refused to
   everyone (403), an ``OPEN`` one (health, sign-in) runs at once;
2. a read forwarded by another worker must carry a valid hop signature, made
   for this worker's address (``handlers/identity/hop.py``): that worker
   authenticated and authorized it;
3. otherwise the caller is authenticated per request, no cache: ``Authorization:
   Bearer <token or session secret>`` or the ``keydesk_session`` cookie, looked
   up by hash in the database (``handlers/identity/store.py``); none or an unknown,
   expired, revoked one is 401;
4. a cookie-authenticated write needs the session's CSRF token in ``X-CSRF-Token``
   (403 without); bearer requests are exempt (a browser never adds that header
   by itself);
5. the caller needs one of the operation's permissions (``roles.may``; 403 and
   an audit row ``denied`` otherwise), and for a ``path`` operation the customer
   in the path (``roles.may_for_customer``, from the ``customers`` table).

While the database cannot be reached (a refused or dropped connection, a query
without an answer: :func:`database_unreachable`), a credential this worker
verified against it within :data:`STALE_IF_ERROR` is taken as it was then (and a
credential it never saw gets a 503): a database outage must not take the views
and the sink's own status down with it (``tests/faults/test_database_outage.py``).
When the database answers it is always asked, so a revocation holds at once;
what an outage can let through is a credential revoked elsewhere just before the
outage began, on a worker that verified it earlier, for at most that window.

Our own pool being full is not an outage: a credential this worker never
verified is looked up in a lane of at most ``UNTRUSTED_LOOKUPS`` calls
(``store.IdentityDb.run_untrusted``), the next one refused at once with a 503
and ``Retry-After``; a call that waited in the queue past its deadline without
starting is the same 503 (``IdentityBusy``).  Neither opens the stale window
(unless the database's last word was that it cannot be reached:
``IdentityDb.unreachable``, hung queries holding the threads), so a flood of
made-up tokens can neither hold the threads that sign-ins and known credentials
use nor make this worker honour a revoked credential.

A ``body`` operation's handler calls :func:`authorize` or :func:`author` with the
customer it read; the middleware turns a 2xx of a handler that did not into a
500 (``identity.unchecked``), so a forgotten check fails closed.
"""

from __future__ import annotations

import hmac
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn
from urllib.parse import quote

import structlog
from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from handlers.api.http_guard import BadRequest, problem
from handlers.identity import audit
from handlers.identity.audit import Who
from handlers.identity.hop import HOP_HEADER, hop_valid
from handlers.identity.operations import Operation, find_operation
from handlers.identity.roles import (
    EVERY_REGION,
    ROLE_PERMISSIONS,
    SCOPED,
    Decision,
    Identity,
    event_source,
    may,
    may_for_customer,
    may_publish,
    permission_to_publish,
)
from handlers.identity.store import (
    SESSION_PREFIX,
    TOKEN_PREFIX,
    IdentityBusy,
    IdentityDb,
    database_unreachable,
    digest,
)

log = structlog.get_logger("keydesk.identity")

SESSION_COOKIE = "keydesk_session"
CSRF_HEADER = "X-CSRF-Token"
MAX_CREDENTIAL_LENGTH = 200
#: how long a verified credential is honoured while the database does not answer
STALE_IF_ERROR = timedelta(minutes=10)
#: credentials remembered for that (least recently verified forgotten first)
STALE_ENTRIES = 10_000
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_GUARD = "keydesk.identity.guard"
_IDENTITY = "keydesk.identity"
_HOP = "keydesk.identity.hop"
_CHECKED = "keydesk.identity.checked"


def client_address(request: web.Request) -> str | None:
    """The peer's address (no ``X-Forwarded-For``: a proxy in front would have to be trusted)."""
    return request.remote


def identity_of(request: web.Request) -> Identity | None:
    """The authenticated caller; ``None`` on an open operation or a signed hop."""
    found: Identity | None = request.get(_IDENTITY)
    return found


def who(request: web.Request) -> Who:
    return Who.of(identity_of(request), client_address(request))


class IdentityGuard:
    """The middleware and the checks handlers call, over one :class:`IdentityDb`."""

    def __init__(self, db: IdentityDb, hop_key: bytes, here: Callable[[], str] | None = None) -> None:
        """``here``: this worker's ``host:port`` as hops to it are signed (``hop.hop_target`` of its
        canonical URL); without it no hop is accepted."""
        self.db = db
        self.hop_key = hop_key
        self.here = here
        #: digest of a secret -> (identity, CSRF hash, when the database last vouched for it)
        self._verified: OrderedDict[str, tuple[Identity, str | None, datetime]] = OrderedDict()

    def _remember(
        self, secret: str, found: tuple[Identity, str | None], now: datetime
    ) -> tuple[Identity, str | None]:
        key = digest(secret)
        self._verified[key] = (*found, now)
        self._verified.move_to_end(key)
        while len(self._verified) > STALE_ENTRIES:
            self._verified.popitem(last=False)
        return found

    def _stale(self, secret: str, via: str, now: datetime) -> tuple[Identity, str | None] | None:
        entry = self._verified.get(digest(secret))
        if (
            entry is None
            or now - entry[2] > STALE_IF_ERROR
            or (entry[0].via == "cookie") != (via == "cookie")
        ):
            return None
        return entry[0], entry[1]

    def middleware(self) -> Callable[..., Awaitable[web.StreamResponse]]:
        @web.middleware
        async def identity(request: web.Request, handler: Any) -> web.StreamResponse:
            match = request.match_info
            if match.http_exception is not None:  # no such route or method: aiohttp's 404/405
                return await handler(request)
            resource = match.route.resource
            operation = find_operation(request.method, resource.canonical if resource else "")
            if operation is None:  # a route nobody wrote a line for (or HEAD of a POST): nobody's
                log.info("identity.no_operation", method=request.method, path=request.path)
                await self._deny(request, None, _target(request), "no_operation", untrusted=True)
                raise BadRequest(403, None, "no permission covers this operation (deny by default)")
            request[_GUARD] = self
            if operation.open:
                return await handler(request)
            hop = request.headers.get(HOP_HEADER)
            if hop is not None:
                if not (
                    operation.hop
                    and self.here is not None
                    and hop_valid(self.hop_key, self.here(), request.method, request.raw_path, hop)
                ):
                    raise BadRequest(401, HOP_HEADER, "not a valid hop between this desk's workers")
                request[_HOP] = True
                return await handler(request)
            try:
                caller, csrf_hash = await self._authenticate(request)
            except BadRequest as exc:
                if operation.page and exc.status == 401 and request.method in _SAFE_METHODS:
                    return web.Response(
                        status=303, headers={"Location": f"/login?next={quote(request.path_qs, safe='/')}"}
                    )
                raise
            request[_IDENTITY] = caller
            if caller.via == "cookie" and request.method not in _SAFE_METHODS:
                sent = request.headers.get(CSRF_HEADER, "")
                if (
                    not sent
                    and operation.page
                    and request.content_type == "application/x-www-form-urlencoded"
                ):
                    sent = str((await request.post()).get("csrf_token", ""))
                if not sent or csrf_hash is None or not hmac.compare_digest(digest(sent), csrf_hash):
                    await self._deny(request, caller, _target(request), "csrf")
                    raise BadRequest(
                        403, CSRF_HEADER, "a cookie-authenticated write needs the session's CSRF token"
                    )
            await self._check_operation(request, operation, caller)
            response = await handler(request)
            if operation.customer == "body" and response.status < 300 and not request.get(_CHECKED):
                log.error("identity.unchecked", method=request.method, path=request.path)
                return problem(500, None, "internal error (logged as identity.unchecked)")
            return response

        return identity

    async def _authenticate(self, request: web.Request) -> tuple[Identity, str | None]:
        header = request.headers.get("Authorization", "")
        secret, via = None, "bearer"
        if header:
            scheme, _, value = header.partition(" ")
            if scheme.lower() != "bearer" or not value.strip():
                raise _unauthenticated("send Authorization: Bearer <token>")
            secret = value.strip()
        elif request.cookies.get(SESSION_COOKIE):
            secret, via = request.cookies[SESSION_COOKIE], "cookie"
        if not secret:
            raise _unauthenticated("sign in (POST /api/login) or send Authorization: Bearer <token>")
        if len(secret) > MAX_CREDENTIAL_LENGTH:
            raise _unauthenticated("not a keydesk credential")
        now = datetime.now(UTC)
        key = digest(secret)
        # A credential this worker has verified before is looked up in the pool's common lane; one
        # it has not (anyone can make those up, by the thousand) in the bounded untrusted lane.
        run = self.db.run if key in self._verified else self.db.run_untrusted
        try:
            if secret.startswith(SESSION_PREFIX):
                found = await run(self.db.store.session_identity, secret, via, now)
                if found is not None:
                    return self._remember(secret, found, now)
            elif secret.startswith(TOKEN_PREFIX) and via == "bearer":
                identity = await run(self.db.store.token_identity, secret, now)
                if identity is not None:
                    return self._remember(secret, (identity, None), now)
        except IdentityBusy:
            # Our own threads are taken.  Unless the database's last word was that it cannot be
            # reached (hung queries holding the threads), it may be fine: a flood of unknown
            # credentials must not turn on the stale window for everyone.
            stale = self._stale(secret, via, now) if self.db.unreachable else None
            log.warning("identity.busy", untrusted=run is not self.db.run, stale_credential=stale is not None)
            if stale is not None:
                return stale
            raise
        except (SQLAlchemyError, TimeoutError) as exc:
            unreachable = database_unreachable(exc)
            stale = self._stale(secret, via, now) if unreachable else None
            log.warning(
                "identity.database_unavailable",
                unreachable=unreachable,
                stale_credential=stale is not None,
                exc_info=True,
            )
            if stale is not None:
                return stale
            raise BadRequest(
                503, None, "the identity database did not answer; retry shortly", {"Retry-After": "1"}
            ) from None
        self._verified.pop(key, None)
        raise _unauthenticated("unknown, expired or revoked credential")

    async def _check_operation(self, request: web.Request, operation: Operation, caller: Identity) -> None:
        decisions = [may(caller, p) for p in operation.any_of]
        if not any(decisions):
            await self._deny(request, caller, _target(request), decisions[0].reason)
            raise BadRequest(403, None, decisions[0].reason)
        if operation.customer == "path":  # scoped by the first of its permissions the caller holds
            held = next(p for p, d in zip(operation.any_of, decisions) if d)
            await self.authorize(request, held, request.match_info["customer_id"])

    async def authorize(
        self, request: web.Request, permission: str, customer_id: str | None
    ) -> Identity | None:
        """Refuse (403, audited) unless the caller may use ``permission`` on ``customer_id``."""
        if request.get(_HOP):
            request[_CHECKED] = True
            return None
        caller = identity_of(request)
        if caller is None:
            raise _unauthenticated("sign in first")
        decision = may(caller, permission)
        if decision and customer_id is not None and permission in SCOPED and _needs_facts(caller, permission):
            try:
                facts = await self.db.run(self.db.store.customer_facts, customer_id)
            except (SQLAlchemyError, TimeoutError):
                raise BadRequest(
                    503, None, "the customer database did not answer; retry shortly", {"Retry-After": "1"}
                ) from None
            decision = may_for_customer(caller, permission, facts)
        if not decision:
            await self._deny(request, caller, customer_id or _target(request), decision.reason)
            raise BadRequest(403, "customer_id" if customer_id else None, decision.reason)
        request[_CHECKED] = True
        return caller

    async def author(self, request: web.Request, event_type: str, customer_id: str) -> tuple[str, str]:
        """Authorize publishing ``event_type`` for ``customer_id``: the event's ``(actor, source)``."""
        permission = permission_to_publish(event_type)
        caller = await self.authorize(request, permission, customer_id)
        if caller is None:  # a hop never publishes: hops are GETs
            raise BadRequest(403, None, "a forwarded read cannot publish")
        allowed = may_publish(caller, event_type) if caller.kind == "integration" else Decision(True, "")
        if not allowed:
            await self._deny(request, caller, f"{event_type} for {customer_id}", allowed.reason)
            raise BadRequest(403, "event_type", allowed.reason)
        return caller.name, event_source(caller, permission)

    async def refuse(self, request: web.Request, target: str, reason: str, field: str | None) -> NoReturn:
        """A refusal a handler decides itself, from what only it knows: audited, then 403 naming ``field``."""
        await self._deny(request, identity_of(request), target, reason)
        raise BadRequest(403, field, reason)

    async def audit_change(
        self,
        request: web.Request,
        kind: str,
        target: str,
        *,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
    ) -> None:
        """Record an admin change made outside the identity tables (the customer archive, the rules)."""
        try:
            await self.db.run(
                audit.record_now,
                self.db.store.engine,
                kind,
                who(request),
                target=target,
                before=before,
                after=after,
                detail=f"{request.method} {request.path}",
            )
        except (
            SQLAlchemyError,
            TimeoutError,
            IdentityBusy,
        ):  # the change is on the log; say the trail missed it
            log.error("identity.audit_failed", kind=kind, target=target, exc_info=True)

    async def _deny(
        self,
        request: web.Request,
        caller: Identity | None,
        target: str,
        reason: str,
        *,
        untrusted: bool = False,
    ) -> None:
        """Log and audit a refusal (``denied``); ``untrusted``: anyone can cause it (the bounded lane)."""
        log.info("identity.denied", actor=caller.name if caller else None, target=target, reason=reason)
        run = self.db.run_untrusted if untrusted else self.db.run
        try:
            await run(
                audit.record_now,
                self.db.store.engine,
                "denied",
                Who.of(caller, client_address(request)),
                target=target,
                detail=f"{request.method} {request.path}: {reason}",
            )
        except (SQLAlchemyError, TimeoutError, IdentityBusy):
            log.warning("identity.audit_failed", target=target, reason=reason, exc_info=True)


def _needs_facts(caller: Identity, permission: str) -> bool:
    """Whether the customer's row matters: not for a hotline right, nor an integration token."""
    if caller.kind == "integration":
        return False
    if "manager" in caller.roles and caller.region == EVERY_REGION:
        return False
    return not ("hotline" in caller.roles and permission in ROLE_PERMISSIONS["hotline"])


def _target(request: web.Request) -> str:
    return f"{request.method} {request.path}"[:300]


def _unauthenticated(reason: str) -> BadRequest:
    return BadRequest(401, "Authorization", reason, {"WWW-Authenticate": 'Bearer realm="keydesk"'})


def guard_of(request: web.Request) -> IdentityGuard:
    found: IdentityGuard = request[_GUARD]
    return found


async def authorize(request: web.Request, permission: str, customer_id: str | None) -> Identity | None:
    """The request's guard's :meth:`IdentityGuard.authorize`."""
    return await guard_of(request).authorize(request, permission, customer_id)


async def refuse(request: web.Request, target: str, reason: str, field: str | None) -> NoReturn:
    """The request's guard's :meth:`IdentityGuard.refuse`."""
    await guard_of(request).refuse(request, target, reason, field)


async def audit_change(request: web.Request, kind: str, target: str, **states: Any) -> None:
    """The request's guard's :meth:`IdentityGuard.audit_change`."""
    await guard_of(request).audit_change(request, kind, target, **states)


async def author(request: web.Request, event_type: str, customer_id: str) -> tuple[str, str]:
    """The request's guard's :meth:`IdentityGuard.author`: ``(actor, source)`` for the event."""
    return await guard_of(request).author(request, event_type, customer_id)
