"""Users, sessions and API tokens in the reporting database: the queries.

The tables are declared in ``schemas/identity_tables.py``.

Synchronous SQLAlchemy, called from the HTTP side through :class:`IdentityDb`
(a bounded thread pool with a deadline: the event loop never waits on the
database) and directly from the CLI's bootstrap (``keydesk up`` creating the
first admin, the tests' credentials).

Every request looks its credential up here by the SHA-256 of its secret (a
unique index): no cache, so a revoked session or token, or a disabled user, is
refused by every worker from the next request on.  Every admin change writes
its audit row in the same transaction (``handlers/identity/audit.py``).
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session

from handlers.api.http_guard import BadRequest
from handlers.identity import audit
from handlers.identity.audit import Who
from handlers.identity.roles import CustomerFacts, Identity
from schemas.identity_tables import ApiToken, LoginSession, User
from schemas.reporting_db import open_engine, upgrade
from schemas.reporting_tables import Customer

SESSION_PREFIX, TOKEN_PREFIX = "kds_", "kdt_"
SESSION_LIFETIME = timedelta(hours=12)
#: a token's ``last_used_at`` is written at most this often (not a write per request)
LAST_USED_RESOLUTION = timedelta(minutes=1)
DB_TIMEOUT_SECONDS = 5.0

T = TypeVar("T")


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(32)


def _public_id(prefix: str) -> str:
    return prefix + secrets.token_hex(6)


class IdentityError(Exception):
    """A refused admin change (``field`` names the culprit), turned into a 4xx by the routes."""

    def __init__(self, status: int, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.status, self.field, self.reason = status, field, reason


def user_public(user: User) -> dict[str, Any]:
    return {
        "username": user.username,
        "roles": list(user.roles),
        "staff_id": user.staff_id,
        "region": user.region,
        "disabled": user.disabled,
        "must_change_password": user.must_change_password,
        "created_at": _iso(user.created_at),
    }


def token_public(token: ApiToken) -> dict[str, Any]:
    return {
        "id": token.id,
        "name": token.name,
        "username": token.username,
        "event_types": token.event_types,
        "source": token.source,
        "created_by": token.created_by,
        "created_at": _iso(token.created_at),
        "expires_at": _iso(token.expires_at),
        "last_used_at": _iso(token.last_used_at),
        "revoked_at": _iso(token.revoked_at),
    }


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class NewSession:
    id: str
    secret: str
    csrf: str
    expires_at: datetime


class IdentityStore:
    """The identity tables of one database."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _session(self) -> Session:
        # objects stay readable after the commit: they are turned into plain dicts right after
        return Session(self.engine, expire_on_commit=False)

    # users -------------------------------------------------------------------------------------

    def has_users(self) -> bool:
        with self._session() as conn:
            return conn.execute(select(User.username).limit(1)).first() is not None

    def user(self, username: str) -> User | None:
        with self._session() as conn:
            return conn.execute(select(User).where(User.username == username)).scalars().first()

    def users(self) -> list[dict[str, Any]]:
        with self._session() as conn:
            return [user_public(u) for u in conn.execute(select(User).order_by(User.username)).scalars()]

    def add_user(
        self,
        username: str,
        password_hash: str,
        roles: Iterable[str],
        who: Who,
        *,
        staff_id: str | None = None,
        region: str | None = None,
        must_change_password: bool = False,
        now: datetime | None = None,
    ) -> dict[str, Any]:
        now = now or datetime.now(UTC)
        row = {
            "username": username,
            "password_hash": password_hash,
            "roles": sorted(set(roles)),
            "staff_id": staff_id,
            "region": region,
            "disabled": False,
            "must_change_password": must_change_password,
            "created_at": now,
            "updated_at": now,
        }
        with _unique(409, "username", f"user {username} exists"), self._session() as conn, conn.begin():
            if conn.execute(select(User.username).where(User.username == username)).first():
                raise IdentityError(409, "username", f"user {username} exists")
            if conn.execute(
                select(ApiToken.id).where(ApiToken.name == username, ApiToken.username.is_(None))
            ).first():
                # an integration token's name is the actor of what it publishes: one name, one who
                raise IdentityError(409, "username", f"an integration token is named {username}")
            conn.execute(insert(User), row)
            after = {k: v for k, v in row.items() if k != "password_hash"}
            after["created_at"] = _iso(now)
            after["updated_at"] = _iso(now)
            audit.record(conn, "user.added", who, target=username, after=after, at=now)
        return {k: v for k, v in after.items() if k != "updated_at"}

    def change_user(self, username: str, changes: dict[str, Any], who: Who) -> dict[str, Any]:
        """Set ``roles``, ``disabled``, ``staff_id``, ``region`` or ``password_hash``, audited."""
        now = datetime.now(UTC)
        with self._session() as conn, conn.begin():
            user = conn.execute(select(User).where(User.username == username)).scalars().first()
            if user is None:
                raise IdentityError(404, "username", f"no user {username}")
            before = user_public(user)
            loses_admin = (
                "admin" in user.roles
                and not user.disabled
                and (changes.get("disabled") or ("roles" in changes and "admin" not in changes["roles"]))
            )
            if loses_admin:
                others = conn.execute(
                    select(User.roles).where(User.username != username, User.disabled.is_(False))
                ).scalars()
                if not any("admin" in roles for roles in others):
                    raise IdentityError(
                        409, "roles", "the last admin can neither lose the role nor be disabled"
                    )
            values = {**changes, "updated_at": now}
            conn.execute(update(User).where(User.username == username).values(**values))
            if changes.get("disabled"):  # a disabled user's sessions end now (tokens: by the join)
                conn.execute(
                    update(LoginSession)
                    .where(LoginSession.username == username, LoginSession.revoked_at.is_(None))
                    .values(revoked_at=now)
                )
            elif "password_hash" in changes:
                # A new password ends the user's other sessions: one stolen must not outlive the
                # change its theft prompted.  The session making the change goes on.
                conn.execute(
                    update(LoginSession)
                    .where(
                        LoginSession.username == username,
                        LoginSession.revoked_at.is_(None),
                        LoginSession.id != (who.credential or ""),
                    )
                    .values(revoked_at=now)
                )
            after_user = conn.execute(select(User).where(User.username == username)).scalars().one()
            after = user_public(after_user)
            shown = {k: v for k, v in changes.items() if k not in ("password_hash", "must_change_password")}
            kind = "user.password_changed" if "password_hash" in changes and not shown else "user.changed"
            audit.record(conn, kind, who, target=username, before=before, after=after, at=now)
        return after

    # sessions ----------------------------------------------------------------------------------

    def open_session(self, username: str, who: Who, now: datetime | None = None) -> NewSession:
        now = now or datetime.now(UTC)
        made = NewSession(
            _public_id("s-"), new_secret(SESSION_PREFIX), secrets.token_urlsafe(24), now + SESSION_LIFETIME
        )
        with self._session() as conn, conn.begin():
            conn.execute(
                insert(LoginSession),
                {
                    "id": made.id,
                    "secret_hash": digest(made.secret),
                    "csrf_hash": digest(made.csrf),
                    "username": username,
                    "address": who.address,
                    "created_at": now,
                    "expires_at": made.expires_at,
                },
            )
            audit.record(
                conn, "login", Who(username, made.id, who.address), target=username, at=now, detail="session"
            )
        return made

    def end_session(self, session_id: str, who: Who) -> None:
        now = datetime.now(UTC)
        with self._session() as conn, conn.begin():
            conn.execute(
                update(LoginSession)
                .where(LoginSession.id == session_id, LoginSession.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            audit.record(conn, "logout", who, target=session_id, at=now)

    def session_identity(self, secret: str, via: str, now: datetime) -> tuple[Identity, str] | None:
        """A live session's identity and CSRF hash; ``None`` if unknown, expired, revoked, disabled."""
        with self._session() as conn:
            found = conn.execute(
                select(LoginSession, User)
                .join(User, User.username == LoginSession.username)
                .where(LoginSession.secret_hash == digest(secret))
            ).first()
        if found is None:
            return None
        session, user = found
        if session.revoked_at is not None or session.expires_at <= now or user.disabled:
            return None
        return _user_identity(user, session.id, via), session.csrf_hash

    # tokens ------------------------------------------------------------------------------------

    def create_token(
        self,
        name: str,
        who: Who,
        *,
        username: str | None = None,
        event_types: list[str] | None = None,
        source: str | None = None,
        expires_at: datetime | None = None,
        now: datetime | None = None,
        secret: str | None = None,
    ) -> tuple[dict[str, Any], str]:
        """A new token and its secret (shown once, stored as its hash only).

        ``secret``: one made by the caller (the test suite's credential), else a new one.
        """
        now = now or datetime.now(UTC)
        secret = secret or new_secret(TOKEN_PREFIX)
        row = {
            "id": _public_id("t-"),
            "name": name,
            "secret_hash": digest(secret),
            "username": username,
            "event_types": sorted(set(event_types)) if event_types is not None else None,
            "source": source,
            "created_by": who.actor,
            "created_at": now,
            "expires_at": expires_at,
        }
        with _unique(409, "name", f"a token named {name} exists"), self._session() as conn, conn.begin():
            if conn.execute(select(ApiToken.id).where(ApiToken.name == name)).first():
                raise IdentityError(409, "name", f"a token named {name} exists")
            if (
                username is not None
                and not conn.execute(select(User.username).where(User.username == username)).first()
            ):
                raise IdentityError(422, "username", f"no user {username}")
            if username is None and conn.execute(select(User.username).where(User.username == name)).first():
                # its name is the actor of the events it publishes: not a user's name
                raise IdentityError(
                    409, "name", f"{name} is a user's name; an integration token needs its own"
                )
            conn.execute(insert(ApiToken), row)
            token = conn.execute(select(ApiToken).where(ApiToken.id == row["id"])).scalars().one()
            public = token_public(token)
            audit.record(conn, "token.created", who, target=token.id, after=public, at=now)
        return public, secret

    def tokens(self) -> list[dict[str, Any]]:
        with self._session() as conn:
            return [token_public(t) for t in conn.execute(select(ApiToken).order_by(ApiToken.name)).scalars()]

    def revoke_token(self, token_id: str, who: Who) -> dict[str, Any]:
        now = datetime.now(UTC)
        with self._session() as conn, conn.begin():
            token = conn.execute(select(ApiToken).where(ApiToken.id == token_id)).scalars().first()
            if token is None:
                raise IdentityError(404, "token_id", f"no token {token_id}")
            before = token_public(token)
            if token.revoked_at is None:
                conn.execute(update(ApiToken).where(ApiToken.id == token_id).values(revoked_at=now))
            after = {**before, "revoked_at": before["revoked_at"] or _iso(now)}
            audit.record(conn, "token.revoked", who, target=token_id, before=before, after=after, at=now)
        return after

    def token_identity(self, secret: str, now: datetime) -> Identity | None:
        """The identity a live token carries; ``None`` if unknown, expired, revoked or its user disabled."""
        with self._session() as conn:
            token = (
                conn.execute(select(ApiToken).where(ApiToken.secret_hash == digest(secret))).scalars().first()
            )
            user = None
            if token is not None and token.username is not None:
                user = conn.execute(select(User).where(User.username == token.username)).scalars().first()
        if token is None or token.revoked_at is not None:
            return None
        if token.expires_at is not None and token.expires_at <= now:
            return None
        if token.last_used_at is None or token.last_used_at < now - LAST_USED_RESOLUTION:
            with self._session() as conn, conn.begin():
                conn.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
        if token.username is None:
            return Identity(
                name=token.name,
                kind="integration",
                credential=token.id,
                event_types=frozenset(token.event_types or ()),
                source=token.source,
            )
        if user is None or user.disabled:
            return None
        return _user_identity(user, token.id, "bearer")

    # customers ---------------------------------------------------------------------------------

    def customer_facts(self, customer_id: str) -> CustomerFacts | None:
        """What scoping needs of a customer, as the sink has projected it (``None``: not there yet)."""
        with self._session() as conn:
            row = conn.execute(
                select(Customer.account_manager_id, Customer.region, Customer.profile).where(
                    Customer.customer_id == customer_id
                )
            ).first()
        if row is None:
            return None
        chain = (row.profile or {}).get("escalation_chain") or ()
        ids = frozenset(str(step["id"]) for step in chain if isinstance(step, dict) and step.get("id"))
        return CustomerFacts(customer_id, row.account_manager_id, row.region, ids)


@contextmanager
def _unique(status: int, field: str, reason: str) -> Iterator[None]:
    """A unique index's refusal as an :class:`IdentityError` naming ``field``.

    The check before an insert answers the common case; two workers creating
    the same name at once both pass it, and the loser's insert meets the index.
    """
    try:
        yield
    except IntegrityError:
        raise IdentityError(status, field, reason) from None


def _user_identity(user: User, credential: str, via: str) -> Identity:
    return Identity(
        name=user.username,
        kind="user",
        credential=credential,
        roles=frozenset(user.roles),
        staff_id=user.staff_id,
        region=user.region,
        must_change_password=user.must_change_password,
        via="cookie" if via == "cookie" else "bearer",
    )


def prepare_database(url: str, attempts: int = 5) -> Engine:
    """An engine for ``url`` with the schema brought up to date (Alembic; safe to repeat).

    Workers starting together on one PostgreSQL database may race to create the
    tables: the loser's transaction fails and it tries again, finding them made.
    """
    engine = open_engine(url)
    for attempt in range(attempts):
        try:
            upgrade(engine)
            return engine
        except SQLAlchemyError:
            if attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))  # back off from the racing worker's migration
    return engine


#: at most this many lookups of credentials a worker has not verified yet run or wait at once
#: (of :class:`IdentityDb`'s threads): a flood of made-up tokens gets a fast 503 and never holds
#: the threads that sign-ins and known credentials need
UNTRUSTED_LOOKUPS = 2


class IdentityBusy(BadRequest):
    """The identity's threads are taken (a flood, or a slow database): a 503 now, not a queue.

    Not a database outage: the worker's own pool is full.  The guard does not
    open its stale-credential window on it (``guard.py``); whoever meets it
    answers 503 with ``Retry-After``.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(503, None, reason, {"Retry-After": "1"})


class IdentityDb:
    """:class:`IdentityStore` for the event loop: its calls in a bounded pool, each with a deadline.

    Four threads: at most four identity queries run at once per worker; more
    wait in the pool's queue, each bounded by :data:`DB_TIMEOUT_SECONDS`.  A
    call that did not even start within it is :class:`IdentityBusy` (the pool
    is saturated, the database may be fine); one that started and did not
    finish is a ``TimeoutError`` (the database does not answer), and the query
    finishes in its thread.  :meth:`run_untrusted` is for what any stranger can
    cause (a credential never seen): at most :data:`UNTRUSTED_LOOKUPS` of those
    at once, the next refused at once.

    :attr:`unreachable` is the database's last word: true after a call that
    could not reach it (:func:`database_unreachable`) until a call finishes that
    did.  A full pool while it is true is the outage showing (hung queries hold
    the threads); a full pool while it is false is only a crowd.
    """

    def __init__(self, store: IdentityStore, threads: int = 4, untrusted: int = UNTRUSTED_LOOKUPS) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="keydesk-identity")
        self.untrusted_limit = min(untrusted, threads - 1)
        #: untrusted calls queued or running (one event loop: no lock)
        self.untrusted_used = 0
        self.unreachable = False

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        future, started = self._submit(fn, args, kwargs)
        return await self._wait(future, started)

    async def run_untrusted(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """:meth:`run`, counted against :data:`UNTRUSTED_LOOKUPS` until the thread is done with it."""
        if self.untrusted_used >= self.untrusted_limit:
            raise IdentityBusy("too many sign-in checks of unknown credentials at once; retry shortly")
        self.untrusted_used += 1
        future, started = self._submit(fn, args, kwargs)
        # freed when the thread ends (or the call is cancelled before it began), not when we stop waiting
        future.add_done_callback(lambda _: self._untrusted_done())
        return await self._wait(future, started)

    def _untrusted_done(self) -> None:
        self.untrusted_used -= 1

    def _submit(
        self, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[asyncio.Future[T], threading.Event]:
        started = threading.Event()

        def call() -> T:
            started.set()
            return fn(*args, **kwargs)

        future = asyncio.get_running_loop().run_in_executor(self._pool, call)
        future.add_done_callback(self._heard)
        return future, started

    def _heard(self, future: asyncio.Future[Any]) -> None:
        """A call ended (in its thread, whether anyone still waits): what it says of the database."""
        if future.cancelled():
            return
        error = future.exception()
        self.unreachable = error is not None and database_unreachable(error)

    async def _wait(self, future: asyncio.Future[T], started: threading.Event) -> T:
        try:
            return await asyncio.wait_for(asyncio.shield(future), DB_TIMEOUT_SECONDS)
        except TimeoutError:
            if not started.is_set() and future.cancel():  # still queued: it never runs
                raise IdentityBusy("the identity's threads are all busy; retry shortly") from None
            self.unreachable = True  # it started and the database has not answered it
            raise


def database_unreachable(exc: BaseException) -> bool:
    """Whether ``exc`` says the database cannot be reached (what the guard's stale window is for).

    A refused or dropped connection (``OperationalError``, ``InterfaceError``, an
    invalidated connection) or a query that started and got no answer in time
    (``TimeoutError`` from :class:`IdentityDb`; a call that never started is
    :class:`IdentityBusy` instead).  Not a query the database refused, and not
    SQLAlchemy's own pool timeout: both say the database is there.
    """
    if isinstance(exc, TimeoutError):
        return True
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated
