"""The middleware's authentication while the database is away: verified credentials only, for a while."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from aiohttp.test_utils import make_mocked_request
from sqlalchemy.exc import OperationalError

from handlers.api.http_guard import BadRequest
from handlers.identity import guard as guard_module
from handlers.identity.guard import IdentityGuard
from handlers.identity.roles import Identity
from handlers.identity.store import IdentityDb

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
