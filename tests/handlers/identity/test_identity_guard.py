"""The middleware's authentication while the database is away (verified credentials only, for a
while) and while a flood of made-up credentials fills its threads (no stale window, a fast 503)."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from sqlalchemy.exc import OperationalError, ProgrammingError

from handlers.api.http_guard import BadRequest, guard_middleware
from handlers.identity import audit
from handlers.identity import guard as guard_module
from handlers.identity import store as store_module
from handlers.identity.guard import IdentityGuard, database_unreachable
from handlers.identity.roles import Identity
from handlers.identity.store import (
    UNTRUSTED_LOOKUPS,
    IdentityBusy,
    IdentityDb,
    IdentityStore,
    prepare_database,
)
from handlers.local.ports import LOOPBACK, free_port

HOTLINE = Identity(name="h", kind="user", credential="t-1", roles=frozenset({"hotline"}))


class FlakyStore:
    """Knows one token; ``down`` makes every lookup fail as a cut database does."""

    engine = None

    def __init__(self) -> None:
        self.down = False
        self.revoked = False

    def token_identity(self, secret: str, now: datetime) -> Identity | None:
        if self.down:
            raise OperationalError("SELECT", {}, Exception("connection refused"))
        return HOTLINE if secret == "kdt_known" and not self.revoked else None


def bearer(secret: str):
    return make_mocked_request("GET", "/api/dispatch-queue", headers={"Authorization": f"Bearer {secret}"})


async def test_a_verified_token_holds_while_the_database_is_away_and_an_unseen_one_is_503(monkeypatch):
    store = FlakyStore()
    guard = IdentityGuard(IdentityDb(store), b"k" * 32)  # type: ignore[arg-type]
    assert (await guard._authenticate(bearer("kdt_known")))[0] == HOTLINE
    store.down = True
    assert (await guard._authenticate(bearer("kdt_known")))[0] == HOTLINE
    with pytest.raises(BadRequest) as refused:
        await guard._authenticate(bearer("kdt_never_seen"))
    assert refused.value.status == 503
    later = datetime.now(UTC) + guard_module.STALE_IF_ERROR + timedelta(seconds=1)
    monkeypatch.setattr(guard_module, "datetime", type("Later", (), {"now": staticmethod(lambda tz: later)}))
    with pytest.raises(BadRequest) as expired:
        await guard._authenticate(bearer("kdt_known"))
    assert expired.value.status == 503


async def test_when_the_database_answers_a_revocation_holds_at_once():
    store = FlakyStore()
    guard = IdentityGuard(IdentityDb(store), b"k" * 32)  # type: ignore[arg-type]
    await guard._authenticate(bearer("kdt_known"))
    store.revoked = True
    with pytest.raises(BadRequest) as refused:
        await guard._authenticate(bearer("kdt_known"))
    assert refused.value.status == 401
    store.down, store.revoked = True, False
    with pytest.raises(BadRequest) as forgotten:  # a refused credential is forgotten, not served stale
        await guard._authenticate(bearer("kdt_known"))
    assert forgotten.value.status == 503


class SlowStore(FlakyStore):
    """A lookup of a made-up token hangs until ``release`` (a flood the database is slow to refuse);
    the known token answers at once, and says what the database says about it."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.flood_started = 0
        self.flood_began = threading.Event()
        self.starts = threading.Semaphore(0)  # one release per made-up lookup started

    def token_identity(self, secret: str, now: datetime) -> Identity | None:
        if secret.startswith("kdt_flood"):
            self.flood_started += 1
            self.flood_began.set()
            self.starts.release()
            self.release.wait(10)
            return None
        return super().token_identity(secret, now)


async def test_a_flood_of_unknown_tokens_neither_starves_known_ones_nor_lets_a_revoked_one_in(monkeypatch):
    """Made-up tokens take at most the untrusted lane's threads and the rest are refused at once;
    a revoked token verified before the flood is asked of the database (401), never served stale."""
    monkeypatch.setattr(store_module, "DB_TIMEOUT_SECONDS", 0.5)
    store = SlowStore()
    db = IdentityDb(store, threads=4)  # type: ignore[arg-type]
    guard = IdentityGuard(db, b"k" * 32)
    await guard._authenticate(bearer("kdt_known"))  # verified while all was well
    store.revoked = True
    flood = [asyncio.ensure_future(guard._authenticate(bearer(f"kdt_flood{n}"))) for n in range(12)]
    try:
        assert await asyncio.to_thread(store.flood_began.wait, 5)
        with pytest.raises(BadRequest) as refused:  # the database answers: revoked
            await guard._authenticate(bearer("kdt_known"))
        assert refused.value.status == 401
        assert await asyncio.wait_for(db.run(lambda: "a sign-in's query"), 1) == "a sign-in's query"
        busy = [task for task in flood if task.done()]
        assert len(busy) >= 12 - UNTRUSTED_LOOKUPS
        for task in busy:
            assert isinstance(task.exception(), IdentityBusy)
            assert task.exception().status == 503 and task.exception().headers == {"Retry-After": "1"}
    finally:
        store.release.set()
        await asyncio.gather(*flood, return_exceptions=True)
    assert store.flood_started <= UNTRUSTED_LOOKUPS
    assert db.untrusted_used == 0


async def test_a_call_that_waited_past_its_deadline_without_starting_is_busy_not_an_outage(monkeypatch):
    """Our own full pool is no reason to honour a credential from memory."""
    monkeypatch.setattr(store_module, "DB_TIMEOUT_SECONDS", 0.2)
    store = SlowStore()
    db = IdentityDb(store, threads=2)  # type: ignore[arg-type]
    guard = IdentityGuard(db, b"k" * 32)
    await guard._authenticate(bearer("kdt_known"))
    # both threads busy with other calls, none of them past its own deadline: a crowd, not an outage
    hold = [db._pool.submit(store.token_identity, f"kdt_flood{n}", None) for n in (1, 2)]
    try:
        for _ in hold:
            assert await asyncio.to_thread(store.starts.acquire, True, 5)
        with pytest.raises(BadRequest) as refused:
            await guard._authenticate(bearer("kdt_known"))
        assert isinstance(refused.value, IdentityBusy) and refused.value.status == 503
        assert not db.unreachable
    finally:
        store.release.set()


async def test_a_database_that_hangs_holds_the_threads_and_is_an_outage(monkeypatch):
    """Queries that started and got no answer say the database is away: then a full pool is the
    outage showing, and a credential verified before is honoured from memory as for a cut link."""
    monkeypatch.setattr(store_module, "DB_TIMEOUT_SECONDS", 0.2)
    store = SlowStore()
    db = IdentityDb(store, threads=2)  # type: ignore[arg-type]
    guard = IdentityGuard(db, b"k" * 32)
    await guard._authenticate(bearer("kdt_known"))
    hung = [asyncio.ensure_future(db.run(store.token_identity, f"kdt_flood{n}", None)) for n in (1, 2)]
    try:
        for outcome in await asyncio.gather(*hung, return_exceptions=True):
            assert isinstance(outcome, TimeoutError) and not isinstance(outcome, IdentityBusy)
        assert db.unreachable
        assert (await guard._authenticate(bearer("kdt_known")))[0] == HOTLINE
        with pytest.raises(BadRequest) as unseen:
            await guard._authenticate(bearer("kdt_never_seen"))
        assert unseen.value.status == 503
    finally:
        store.release.set()


async def test_a_query_the_database_refused_is_no_outage_either():
    """Only an unreachable database opens the stale window, not an error it answered with."""
    store = FlakyStore()
    guard = IdentityGuard(IdentityDb(store), b"k" * 32)  # type: ignore[arg-type]
    await guard._authenticate(bearer("kdt_known"))

    def refuses(secret: str, now: datetime) -> Identity | None:
        raise ProgrammingError("SELECT", {}, Exception("permission denied for table api_tokens"))

    store.token_identity = refuses  # type: ignore[method-assign]
    with pytest.raises(BadRequest) as refused:
        await guard._authenticate(bearer("kdt_known"))
    assert refused.value.status == 503
    assert database_unreachable(OperationalError("SELECT", {}, Exception("connection refused")))
    assert not database_unreachable(ProgrammingError("SELECT", {}, Exception("no such table")))


async def test_a_route_without_a_line_in_the_table_is_refused_and_the_refusal_is_in_the_audit(tmp_path):
    """Deny by default is a permission denial like any other: it lands in the audit trail."""
    store = IdentityStore(prepare_database(f"sqlite:///{tmp_path / 'desk.sqlite'}"))
    guard = IdentityGuard(IdentityDb(store), b"k" * 32)

    async def forgotten(request: web.Request) -> web.Response:
        return web.json_response({"leaked": True})

    app = web.Application(middlewares=[guard_middleware(), guard.middleware()])
    app.router.add_get("/api/nobody-wrote-a-line", forgotten)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://{LOOPBACK}:{port}/api/nobody-wrote-a-line") as response:
                assert response.status == 403
                assert "deny by default" in (await response.json())["error"]
    finally:
        await runner.cleanup()
    denied = audit.page(store.engine, {"kind": "denied"}, 10, None)
    assert [(r["target"], r["address"]) for r in denied] == [("GET /api/nobody-wrote-a-line", LOOPBACK)]
    assert "no_operation" in denied[0]["detail"]
