"""Changing one's own password: the one function behind ``POST /api/me/password`` and the desk's page.

Over an identity database in a SQLite file: its bounds, the current password's
check and its rate limit (shared with sign-in), the audit, and the end of the
user's other sessions.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from handlers.api.http_guard import BadRequest
from handlers.identity import audit
from handlers.identity.audit import Who
from handlers.identity.passwords import MIN_PASSWORD_LENGTH, PasswordHasher, hash_password
from handlers.identity.routes import (
    MAX_FAILURES_PER_USER,
    SAME_PASSWORD,
    WRONG_PASSWORD,
    change_own_password,
    sign_in,
)
from handlers.identity.store import IdentityDb, IdentityStore, prepare_database

OLD, NEW = "the old long password", "a brand new long password"


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
async def desk(tmp_path):
    """``(db, hasher, identity, who)``: a hotline user signed in twice (this session and another)."""
    engine = prepare_database(f"sqlite:///{tmp_path / 'identity.sqlite'}")
    store = IdentityStore(engine)
    store.add_user("zhang", hash_password(OLD), ["hotline"], Who(actor="test"))
    db, hasher = IdentityDb(store), PasswordHasher()
    _, here = await sign_in(db, hasher, "zhang", OLD, "10.0.0.1", now)
    _, elsewhere = await sign_in(db, hasher, "zhang", OLD, "10.0.0.2", now)
    identity, _ = store.session_identity(here.secret, "cookie", now())
    yield db, hasher, identity, Who.of(identity, "10.0.0.1"), (here, elsewhere)
    engine.dispose()


def trail(db: IdentityDb, kind: str) -> list[dict]:
    return audit.page(db.store.engine, {"kind": kind, "target": "zhang"}, 50, None)


async def refusal(desk, current: object, new: object) -> BadRequest:
    db, hasher, identity, who, _ = desk
    with pytest.raises(BadRequest) as refused:
        await change_own_password(db, hasher, identity, current, new, who, now)
    return refused.value


class TestChangingOnesOwnPassword:
    async def test_the_new_password_works_the_old_does_not_and_only_this_session_goes_on(self, desk):
        db, hasher, identity, who, (here, elsewhere) = desk
        await change_own_password(db, hasher, identity, OLD, NEW, who, now)
        assert (await sign_in(db, hasher, "zhang", NEW, None, now))[0].username == "zhang"
        with pytest.raises(BadRequest) as old:
            await sign_in(db, hasher, "zhang", OLD, None, now)
        assert old.value.status == 401
        assert db.store.session_identity(here.secret, "cookie", now()) is not None
        assert db.store.session_identity(elsewhere.secret, "cookie", now()) is None
        (changed,) = trail(db, "user.password_changed")
        assert (changed["actor"], changed["credential"]) == ("zhang", identity.credential)

    async def test_a_wrong_current_password_is_a_403_naming_it_and_audited(self, desk):
        db = desk[0]
        wrong = await refusal(desk, "not the password", NEW)
        assert (wrong.status, wrong.field, wrong.reason) == (403, "password", WRONG_PASSWORD)
        assert trail(db, "login_failed")
        assert not trail(db, "user.password_changed")

    @pytest.mark.parametrize(
        ("current", "new", "field", "reason"),
        [
            (OLD, "short", "new_password", f"must be {MIN_PASSWORD_LENGTH} to 200 characters"),
            (OLD, "x" * 201, "new_password", f"must be {MIN_PASSWORD_LENGTH} to 200 characters"),
            (OLD, OLD, "new_password", SAME_PASSWORD),
            ("", NEW, "password", None),
            (None, NEW, "password", None),
        ],
    )
    async def test_a_new_password_out_of_bounds_or_no_current_one_is_a_422_naming_the_field(
        self, desk, current, new, field, reason
    ):
        db = desk[0]
        refused = await refusal(desk, current, new)
        assert (refused.status, refused.field) == (422, field)
        assert reason is None or refused.reason == reason
        assert not trail(db, "login_failed")  # refused before any password was checked

    async def test_guesses_at_the_current_password_meet_the_sign_in_limit(self, desk):
        for n in range(MAX_FAILURES_PER_USER):
            assert (await refusal(desk, f"guess {n}", NEW)).status == 403
        limited = await refusal(desk, OLD, NEW)  # the right one, too late
        assert (limited.status, limited.field) == (429, "password")
        assert limited.headers and "Retry-After" in limited.headers
