"""First run: the first admin, the demo users, a credential made outside the API.

Straight to the database (``handlers/identity/store.py``), not through the API:
before the first admin exists nobody could call it.  ``keydesk up`` runs
:func:`first_admin` (and with ``--demo`` :func:`demo_users`) before its worker
starts; the test suite gives its workers' database one user holding every role
and a token (:func:`provision_credential`).
"""

from __future__ import annotations

from dataclasses import dataclass

from handlers.identity.audit import Who
from handlers.identity.passwords import hash_password, new_password
from handlers.identity.roles import EVERY_REGION, ROLES
from handlers.identity.store import IdentityError, IdentityStore

FIRST_ADMIN = "admin"
BOOTSTRAP = Who(actor="keydesk-up")


@dataclass(frozen=True, slots=True)
class Made:
    username: str
    password: str
    roles: tuple[str, ...]
    staff_id: str | None = None
    region: str | None = None


def first_admin(store: IdentityStore) -> Made | None:
    """The first admin with a one-time password, if the desk has no user yet (else ``None``).

    The password must be changed at the first sign-in (``keydesk login`` asks);
    until then the session may only change it.
    """
    if store.has_users():
        return None
    password = new_password()
    try:
        store.add_user(FIRST_ADMIN, hash_password(password), ["admin"], BOOTSTRAP, must_change_password=True)
    except IdentityError:  # another process made it first
        return None
    return Made(FIRST_ADMIN, password, ("admin",))


#: one demo user per role; the account manager and the manager match the sample customers
DEMO_USERS = (
    Made("demo-hotline", "", ("hotline",)),
    Made("demo-am", "", ("account_manager",), staff_id="AM-101"),
    Made("demo-manager", "", ("manager",), region="广东省/广州市"),
    Made("demo-reports", "", ("report_reader",)),
    Made("demo-admin", "", ("admin",)),
)


def demo_users(store: IdentityStore) -> list[Made]:
    """The demo users that do not exist yet, each with a fresh password (printed by ``keydesk up --demo``)."""
    made = []
    for demo in DEMO_USERS:
        if store.user(demo.username) is not None:
            continue
        password = new_password()
        store.add_user(
            demo.username,
            hash_password(password),
            demo.roles,
            BOOTSTRAP,
            staff_id=demo.staff_id,
            region=demo.region,
        )
        made.append(Made(demo.username, password, demo.roles, demo.staff_id, demo.region))
    return made


def provision_credential(store: IdentityStore, username: str, token_name: str, secret: str) -> None:
    """A user with every role (a head-office manager: every region) and a personal token ``secret``.

    For tools and tests that drive a desk they started themselves; idempotent.
    """
    if store.user(username) is None:
        store.add_user(
            username, hash_password(new_password()), ROLES, Who(actor=username), region=EVERY_REGION
        )
    try:
        store.create_token(token_name, Who(actor=username), username=username, secret=secret)
    except IdentityError:  # made already
        pass
