"""What every customer screen needs of its request: who is signed in, what they may, the form token.

A button is drawn only when the user may take its step on this customer, by
the identity's own decision (``roles.may_for_customer``, over the facts the
guard itself reads: ``IdentityStore.customer_facts``), so that a page never
offers what the API would refuse.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiohttp import web
from sqlalchemy.exc import SQLAlchemyError

from handlers.api.actions import CREATIONS
from handlers.identity.guard import identity_of
from handlers.identity.roles import (
    ARCHIVE_READ,
    ESCALATION_ACK,
    ITEM_WRITE,
    CustomerFacts,
    Identity,
    may,
    may_for_customer,
    permission_to_publish,
)
from handlers.identity.store import IdentityDb
from handlers.web.pages import CSRF_COOKIE


def signed_in(request: web.Request) -> Identity:
    caller = identity_of(request)
    assert caller is not None  # every screen's operation needs a sign-in: the middleware made sure
    return caller


def base_context(request: web.Request) -> dict[str, Any]:
    """The signed-in user, the form token, and the links of the screens they may open."""
    caller = signed_in(request)
    return {
        "me": caller,
        "csrf_token": request.cookies.get(CSRF_COOKIE, ""),
        "may_search": bool(may(caller, ARCHIVE_READ)),
    }


@dataclass(frozen=True)
class Rights:
    """What the signed-in user may do on one customer (each a permission of ``roles.py``)."""

    work: bool  # take the steps of its items (item.write)
    acknowledge: bool  # acknowledge its escalations (escalation.ack)
    #: the kinds of item they may open for it (a form each): the permission publishing its event needs
    opens: tuple[str, ...] = ()


async def rights_on(request: web.Request, db: IdentityDb, customer_id: str) -> Rights:
    """The user's rights on the customer, decided as the guard decides them."""
    caller = signed_in(request)
    facts: CustomerFacts | None
    try:
        facts = await db.run(db.store.customer_facts, customer_id)
    except (SQLAlchemyError, TimeoutError):  # no buttons then; the guard would answer 503 to a step
        return Rights(False, False)
    return Rights(
        work=bool(may_for_customer(caller, ITEM_WRITE, facts)),
        acknowledge=bool(may_for_customer(caller, ESCALATION_ACK, facts)),
        opens=tuple(
            kind
            for kind, creation in CREATIONS.items()
            if may_for_customer(caller, permission_to_publish(creation.event_type), facts)
        ),
    )


def wants_fragment(request: web.Request) -> bool:
    """Whether htmx asked (it swaps the answer into the page: a fragment, not a whole page)."""
    return request.headers.get("HX-Request") == "true"
