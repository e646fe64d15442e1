"""Users, sessions, tokens and the audit in the database, on SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from handlers.api.http_guard import BadRequest
from handlers.identity import audit
from handlers.identity.audit import Who
from handlers.identity.bootstrap import demo_users, first_admin
from handlers.identity.passwords import PasswordHasher, hash_password, verify_password
from handlers.identity.routes import MAX_FAILURES_PER_USER, sign_in
from handlers.identity.store import IdentityDb, IdentityError, IdentityStore, prepare_database
from schemas.identity_tables import ApiToken
from schemas.reporting_tables import Customer

ADMIN = Who("root", "s-root", "10.0.0.1")


@pytest.fixture
def store(reporting_db_url):
    engine = prepare_database(reporting_db_url)
    yield IdentityStore(engine)
    engine.dispose()


def now() -> datetime:
    return datetime.now(UTC)


class TestTokens:
    def test_a_token_is_stored_only_as_its_hash_and_refused_once_revoked(self, store):
        store.add_user("ops", hash_password("long enough pw"), ["hotline"], ADMIN)
        public, secret = store.create_token("ops-cli", ADMIN, username="ops")
        with store.engine.connect() as conn:
            stored = [tuple(row) for row in conn.execute(select(ApiToken.__table__))]
        assert not any(secret in str(value) for row in stored for value in row)
        assert store.token_identity(secret, now()).name == "ops"
        store.revoke_token(public["id"], ADMIN)
        assert store.token_identity(secret, now()) is None

    def test_an_integration_token_carries_its_scope_and_expires(self, store):
        expiry = now() + timedelta(days=1)
        public, secret = store.create_token(
            "nms", ADMIN, event_types=["fault.reported"], source="network_alarm", expires_at=expiry
        )
        nms = store.token_identity(secret, now())
        assert (nms.kind, nms.event_types, nms.source) == ("integration", {"fault.reported"}, "network_alarm")
        assert store.token_identity(secret, expiry + timedelta(seconds=1)) is None
        assert store.tokens()[0]["last_used_at"] is not None

    def test_a_name_is_one_tokens(self, store):
        store.create_token("nms", ADMIN, event_types=["fault.reported"], source="network_alarm")
        with pytest.raises(IdentityError) as refused:
            store.create_token("nms", ADMIN, event_types=["fault.reported"], source="network_alarm")
        assert (refused.value.status, refused.value.field) == (409, "name")


class TestUsersAndSessions:
    def test_disabling_a_user_ends_their_sessions_and_tokens_at_once(self, store):
        store.add_user("am", hash_password("long enough pw"), ["account_manager"], ADMIN, staff_id="AM-1")
        session = store.open_session("am", Who(address="10.0.0.2"))
        _, secret = store.create_token("am-cli", ADMIN, username="am")
        found, csrf_hash = store.session_identity(session.secret, "cookie", now())
        assert (found.name, found.staff, found.via) == ("am", "AM-1", "cookie") and csrf_hash
        store.change_user("am", {"disabled": True}, ADMIN)
        assert store.session_identity(session.secret, "cookie", now()) is None
        assert store.token_identity(secret, now()) is None

    def test_a_new_password_ends_every_other_session_of_the_user(self, store):
        """A stolen session must not outlive the password change its theft prompted; the session
        that changed it goes on (the user is at the keyboard), an admin's reset ends them all."""
        store.add_user("am", hash_password("long enough pw"), ["account_manager"], ADMIN)
        mine, stolen = store.open_session("am", Who()), store.open_session("am", Who())
        store.change_user("am", {"password_hash": hash_password("another long pw")}, Who("am", mine.id))
        assert store.session_identity(stolen.secret, "cookie", now()) is None
        assert store.session_identity(mine.secret, "cookie", now()) is not None
        store.change_user("am", {"password_hash": hash_password("a third long pw")}, ADMIN)
        assert store.session_identity(mine.secret, "cookie", now()) is None

    def test_an_ended_or_expired_session_is_refused(self, store):
        store.add_user("h", hash_password("long enough pw"), ["hotline"], ADMIN)
        session = store.open_session("h", Who())
        assert store.session_identity(session.secret, "bearer", session.expires_at) is None
        store.end_session(session.id, Who("h", session.id))
        assert store.session_identity(session.secret, "bearer", now()) is None

    def test_the_last_admin_can_neither_lose_the_role_nor_be_disabled(self, store):
        made = first_admin(store)
        assert made is not None and first_admin(store) is None  # only once
        assert store.user("admin").must_change_password
        for change in ({"roles": ["hotline"]}, {"disabled": True}):
            with pytest.raises(IdentityError) as refused:
                store.change_user("admin", change, ADMIN)
            assert refused.value.status == 409
        store.add_user("second", hash_password("long enough pw"), ["admin"], ADMIN)
        assert store.change_user("admin", {"roles": ["hotline"]}, ADMIN)["roles"] == ["hotline"]

    def test_demo_users_are_one_per_role_made_once(self, store):
        made = demo_users(store)
        assert sorted(r for m in made for r in m.roles) == sorted(
            ["hotline", "account_manager", "manager", "report_reader", "admin"]
        )
        assert demo_users(store) == []
        assert all(verify_password(store.user(m.username).password_hash, m.password) for m in made)


class TestAudit:
    def test_every_admin_change_is_recorded_with_before_and_after(self, store):
        store.add_user("am", hash_password("long enough pw"), ["account_manager"], ADMIN)
        store.change_user("am", {"roles": ["account_manager", "manager"]}, ADMIN)
        public, _ = store.create_token("nms", ADMIN, event_types=["fault.reported"], source="network_alarm")
        store.revoke_token(public["id"], ADMIN)
        rows = audit.page(store.engine, {}, 10, None)
        assert [r["kind"] for r in rows] == ["token.revoked", "token.created", "user.changed", "user.added"]
        changed = rows[2]
        assert (changed["actor"], changed["credential"], changed["address"]) == ("root", "s-root", "10.0.0.1")
        assert changed["before"]["roles"] == ["account_manager"]
        assert changed["after"]["roles"] == ["account_manager", "manager"]
        assert "password_hash" not in str(rows)
        assert rows[0]["after"]["revoked_at"] is not None and rows[0]["before"]["revoked_at"] is None

    def test_pages_and_filters(self, store):
        for n in range(5):
            audit.record_now(store.engine, "login_failed", Who(address="10.0.0.9"), target=f"u{n % 2}")
        first = audit.page(store.engine, {"kind": "login_failed"}, 2, None)
        second = audit.page(store.engine, {"kind": "login_failed"}, 2, first[-1]["id"])
        assert len(first) == len(second) == 2 and first[-1]["id"] > second[0]["id"]
        assert len(audit.page(store.engine, {"target": "u0"}, 100, None)) == 3
        since = now() - timedelta(minutes=15)
        assert audit.recent_count(store.engine, "login_failed", since, target="u1") == 2
        assert audit.recent_count(store.engine, "login_failed", since, address="10.0.0.9") == 5
        assert (
            audit.recent_count(store.engine, "login_failed", now() + timedelta(seconds=1), target="u1") == 0
        )


def test_customer_facts_come_from_the_projected_customers_row(store):
    assert store.customer_facts("C-1") is None
    profile = {"escalation_chain": [{"role": "account_manager", "id": "AM-1"}, {"role": "executive"}]}
    with store.engine.begin() as conn:
        conn.execute(
            Customer.__table__.insert(),
            {
                "customer_id": "C-1",
                "account_manager_id": "AM-1",
                "region": "广东省/广州市",
                "profile": profile,
                "updated_at": now(),
            },
        )
    facts = store.customer_facts("C-1")
    assert (facts.account_manager_id, facts.region, facts.chain_ids) == ("AM-1", "广东省/广州市", {"AM-1"})


class CountingHasher(PasswordHasher):
    """The real argon2 check, counted; each check waits until every attempt of the burst is either
    at its check or refused, so that none can record its failure before the others are counted."""

    def __init__(self, attempts: int) -> None:
        super().__init__()
        self.checked, self.refused, self.attempts = 0, 0, attempts
        self.all_in = asyncio.Event()

    def arrived(self) -> None:
        if self.checked + self.refused == self.attempts:
            self.all_in.set()

    async def verify(self, stored: str | None, password: str) -> bool:
        self.checked += 1
        self.arrived()
        await asyncio.wait_for(self.all_in.wait(), 10)
        return await super().verify(stored, password)


async def attempt(hasher: CountingHasher, coroutine) -> int:
    try:
        await coroutine
    except BadRequest as exc:
        if exc.status == 429:
            hasher.refused += 1
            hasher.arrived()
        return exc.status
    return 200


class TestPasswordAttempts:
    async def test_attempts_at_once_are_counted_before_any_is_checked(self, store):
        """Twelve wrong passwords sent together: at most the limit of them reach the hash."""
        store.add_user("am", hash_password("long enough pw"), ["account_manager"], ADMIN)
        db, hasher, burst = IdentityDb(store), CountingHasher(12), 12
        answers = await asyncio.gather(
            *(
                attempt(hasher, sign_in(db, hasher, "am", "wrong guess", "10.0.0.7", now))
                for _ in range(burst)
            )
        )
        assert hasher.checked <= MAX_FAILURES_PER_USER
        assert sorted(set(answers)) == ([401, 429] if hasher.checked else [429])
        assert answers.count(401) == hasher.checked
        # the limited ones were not failures: the count is the checked ones only, and holds
        hasher.attempts, hasher.all_in = 1, asyncio.Event()
        left = MAX_FAILURES_PER_USER - hasher.checked
        for _ in range(left):
            hasher.checked, hasher.refused = 0, 0
            assert await attempt(hasher, sign_in(db, hasher, "am", "wrong guess", None, now)) == 401
            hasher.all_in.clear()
        with pytest.raises(BadRequest) as limited:
            await sign_in(db, hasher, "am", "long enough pw", None, now)
        assert limited.value.status == 429

    async def test_a_right_password_is_not_counted_as_a_failure(self, store):
        store.add_user("h", hash_password("long enough pw"), ["hotline"], ADMIN)
        db, hasher = IdentityDb(store), PasswordHasher()
        for _ in range(MAX_FAILURES_PER_USER + 2):
            user, session = await sign_in(db, hasher, "h", "long enough pw", "10.0.0.8", now)
            assert user.username == "h" and session.secret
        for _ in range(MAX_FAILURES_PER_USER):
            with pytest.raises(BadRequest) as wrong:
                await sign_in(db, hasher, "h", "not it at all", "10.0.0.8", now)
            assert wrong.value.status == 401
        with pytest.raises(BadRequest) as limited:
            await sign_in(db, hasher, "h", "long enough pw", "10.0.0.8", now)
        assert (limited.value.status, limited.value.field) == (429, "username")
        kinds = [r["kind"] for r in audit.page(store.engine, {"target": "h"}, 100, None)]
        assert kinds.count("login_failed") == MAX_FAILURES_PER_USER and "login_limited" in kinds

    async def test_a_username_with_a_control_character_is_422_naming_it(self, store):
        """NUL reached PostgreSQL's query and came back a 500."""
        with pytest.raises(BadRequest) as refused:
            await sign_in(IdentityDb(store), PasswordHasher(), "am\x00in", "long enough pw", None, now)
        assert (refused.value.status, refused.value.field) == (422, "username")


class TestNames:
    def test_an_integration_token_takes_no_users_name_nor_a_user_a_tokens(self, store):
        """An integration token's name is the actor of what it publishes: it must not be a person's."""
        store.add_user("li.min", hash_password("long enough pw"), ["account_manager"], ADMIN)
        with pytest.raises(IdentityError) as taken:
            store.create_token("li.min", ADMIN, event_types=["fault.reported"], source="network_alarm")
        assert (taken.value.status, taken.value.field) == (409, "name")
        store.create_token("nms", ADMIN, event_types=["fault.reported"], source="network_alarm")
        with pytest.raises(IdentityError) as named:
            store.add_user("nms", hash_password("long enough pw"), ["hotline"], ADMIN)
        assert (named.value.status, named.value.field) == (409, "username")
        store.create_token("li.min-cli", ADMIN, username="li.min")  # a personal token's name is a label

    def test_two_workers_creating_one_name_at_once_get_a_409_not_an_integrity_error(self, store, monkeypatch):
        """Both pass the check before the insert; the loser meets the unique index."""
        both_checked = threading.Barrier(2, timeout=10)
        real_session = store._session

        def session_waiting_before_insert():
            conn = real_session()
            execute = conn.execute

            def execute_then_meet(statement, *args, **kwargs):
                if getattr(statement, "is_insert", False) and statement.table.name == "api_tokens":
                    both_checked.wait()
                return execute(statement, *args, **kwargs)

            conn.execute = execute_then_meet
            return conn

        monkeypatch.setattr(store, "_session", session_waiting_before_insert)

        def create() -> str:
            try:
                store.create_token("nms", ADMIN, event_types=["fault.reported"], source="network_alarm")
            except IdentityError as exc:
                return f"{exc.status} {exc.field}"
            return "201"

        with ThreadPoolExecutor(2) as pool:
            answers = sorted(pool.map(lambda _: create(), range(2)))
        assert answers == ["201", "409 name"]
