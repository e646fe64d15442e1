"""The archive's list and search (``GET /api/customers``): its parameters checked, and its SQL.

Answered from the reporting database, not from the workers' views: the
``customers`` table and its ``customer_search_terms`` hold every customer,
whichever worker owns it, so any worker gives the same page for the same
question without asking the others.  The price is the sink's lag: a customer
registered or changed a moment ago appears once the sink has written its
event (``GET /api/sink`` shows how far behind it is; usually well under a
second, as long as the sink is running).

Pages are ordered by customer id and continued by keyset (``after`` = the
last id of the previous page), so a page never repeats or skips a customer
because others were added in between.  The query here is blocking; the HTTP
edge runs it in a thread, bounded in time by :func:`list_customers`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Engine, Select, and_, exists, or_, select

from handlers.api.http_guard import BadRequest
from handlers.api.input_limits import (
    ARCHIVE_QUERY_SECONDS,
    DEFAULT_ARCHIVE_PAGE,
    MAX_ARCHIVE_PAGE,
    MAX_ID_LENGTH,
    MAX_SEARCH_LENGTH,
)
from schemas.envelope import utc_iso
from schemas.event_catalogue import TIERS
from schemas.reporting_tables import Customer, CustomerSearchTerm, CustomerService, Item, SlaOutcome
from streams.customer_archive import CIRCUIT, archive_record, query_terms
from streams.customer_services import ACTIVE

#: The query parameters ``GET /api/customers`` takes.
PARAMETERS = ("tier", "region", "account_manager", "has_open_breaches", "q", "limit", "after")
_BOOLEANS = {"true": True, "false": False}


@dataclass(frozen=True)
class ArchiveQuery:
    """One page of the archive: the filters (all must hold), the search text, where to start."""

    tier: str | None = None
    region: str | None = None
    account_manager: str | None = None
    has_open_breaches: bool | None = None
    q: str | None = None
    after: str | None = None
    limit: int = DEFAULT_ARCHIVE_PAGE


def archive_query(params: Mapping[str, str]) -> ArchiveQuery:
    """The checked parameters of a list request, or a 422 naming the one at fault."""
    unknown = sorted(set(params) - set(PARAMETERS))
    if unknown:
        raise BadRequest(422, unknown[0][:64], f"unknown parameter; use {', '.join(PARAMETERS)}")
    values: dict[str, Any] = {}
    for name in ("region", "account_manager", "q", "after"):
        text = params.get(name, "").strip()
        if text:
            bound = MAX_ID_LENGTH if name in ("account_manager", "after") else MAX_SEARCH_LENGTH
            if len(text) > bound:
                raise BadRequest(422, name, f"longer than {bound} characters")
            values[name] = text
    tier = params.get("tier", "").strip()
    if tier:
        if tier not in TIERS:
            raise BadRequest(422, "tier", f"must be one of {', '.join(TIERS)}")
        values["tier"] = tier
    breaches = params.get("has_open_breaches", "").strip().lower()
    if breaches:
        if breaches not in _BOOLEANS:
            raise BadRequest(422, "has_open_breaches", "must be true or false")
        values["has_open_breaches"] = _BOOLEANS[breaches]
    limit = params.get("limit", "").strip()
    if limit:
        # ASCII digits, few of them: int() refuses "²" and over 4,300 digits with a ValueError
        if (
            not (limit.isascii() and limit.isdigit() and len(limit) <= 4)
            or not 1 <= int(limit) <= MAX_ARCHIVE_PAGE
        ):
            raise BadRequest(422, "limit", f"must be a whole number from 1 to {MAX_ARCHIVE_PAGE}")
        values["limit"] = int(limit)
    return ArchiveQuery(**values)


def _like(text: str) -> str:
    """``text`` with LIKE's wildcards escaped (escape character ``\\``)."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _breached(now: datetime) -> ColumnElement[bool]:
    """A clock that is breached at ``now``: stopped late, or still running past its deadline.

    The sink evaluates an item's clocks at its latest event, so a clock nobody
    has acted on since it ran out is still ``pending`` there, with the
    deadline it ran out at (a paused clock's deadline moves: it is not counted).
    """
    return or_(
        SlaOutcome.state == "breached",
        and_(SlaOutcome.state == "pending", SlaOutcome.paused.is_(False), SlaOutcome.deadline < now),
    )


def _open_breach(now: datetime) -> ColumnElement[bool]:
    """An open item of the customer with a clock breached at ``now`` (any cycle)."""
    return and_(
        Item.customer_id == Customer.customer_id,
        Item.closed.is_(False),
        SlaOutcome.customer_id == Item.customer_id,
        SlaOutcome.item_kind == Item.kind,
        SlaOutcome.item_id == Item.item_id,
        _breached(now),
    )


def _statement(query: ArchiveQuery, now: datetime) -> Select[Any]:
    table = Customer.__table__
    statement = select(table.c.customer_id, table.c.profile, table.c.updated_at)
    if query.tier == "public":  # a customer registered without a tier is evaluated as public
        statement = statement.where(or_(Customer.tier == "public", Customer.tier.is_(None)))
    elif query.tier:
        statement = statement.where(Customer.tier == query.tier)
    if query.region:  # a region and the regions under it: 广东 finds 广东/广州
        statement = statement.where(
            or_(
                Customer.region == query.region, Customer.region.like(f"{_like(query.region)}/%", escape="\\")
            )
        )
    if query.account_manager:
        statement = statement.where(Customer.account_manager_id == query.account_manager)
    if query.has_open_breaches is not None:
        breached = exists().where(_open_breach(now))
        statement = statement.where(breached if query.has_open_breaches else ~breached)
    if query.q:
        text = _like(query.q)
        found = [
            Customer.name.ilike(f"%{text}%", escape="\\"),
            Customer.customer_id.ilike(f"{text}%", escape="\\"),
        ]
        for kind, term in query_terms(query.q):
            exact = CustomerSearchTerm.term == term
            # a circuit id may be typed in part (its prefix); a phone number whole
            match = (
                or_(exact, CustomerSearchTerm.term.like(f"{_like(term)}%", escape="\\"))
                if kind == CIRCUIT
                else exact
            )
            found.append(
                Customer.customer_id.in_(
                    select(CustomerSearchTerm.customer_id).where(CustomerSearchTerm.kind == kind, match)
                )
            )
            if kind == CIRCUIT:  # and the circuits of the service register (streams/customer_services.py)
                registered = CustomerService.circuit_term
                found.append(
                    Customer.customer_id.in_(
                        select(CustomerService.customer_id).where(
                            CustomerService.state == ACTIVE,
                            or_(registered == term, registered.like(f"{_like(term)}%", escape="\\")),
                        )
                    )
                )
        statement = statement.where(or_(*found))
    if query.after:
        statement = statement.where(Customer.customer_id > query.after)
    return statement.order_by(Customer.customer_id).limit(query.limit + 1)


def list_customers(
    engine: Engine, query: ArchiveQuery, now: datetime, time_limit: float = ARCHIVE_QUERY_SECONDS
) -> dict[str, Any]:
    """``{"customers": [record, ...], "next": after-value or None}`` (blocking; bounded in time).

    Each record is the archive record (``streams/customer_archive.archive_record``)
    with ``open_breaches``: how many of the customer's open items have a
    clock breached at ``now``.  A query that runs past ``time_limit`` raises the driver's
    error (PostgreSQL ``statement_timeout``, SQLite interrupted).
    """
    deadline = time.monotonic() + time_limit
    with engine.connect() as conn:
        dbapi = conn.connection.dbapi_connection
        if engine.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SET LOCAL statement_timeout = {max(1, int(time_limit * 1000))}")
        elif dbapi is not None:
            dbapi.set_progress_handler(lambda: int(time.monotonic() > deadline), 10_000)
        try:
            rows = conn.execute(_statement(query, now)).all()
            page, more = rows[: query.limit], len(rows) > query.limit
            ids = [row.customer_id for row in page]
            breached: dict[str, int] = {}
            if ids:
                statement = (
                    select(Item.customer_id, Item.kind, Item.item_id)
                    .distinct()
                    .join(
                        SlaOutcome,
                        and_(
                            SlaOutcome.customer_id == Item.customer_id,
                            SlaOutcome.item_kind == Item.kind,
                            SlaOutcome.item_id == Item.item_id,
                        ),
                    )
                    .where(Item.customer_id.in_(ids), Item.closed.is_(False), _breached(now))
                )
                for row in conn.execute(statement):
                    breached[row.customer_id] = breached.get(row.customer_id, 0) + 1
        finally:
            if engine.dialect.name == "sqlite" and dbapi is not None:
                dbapi.set_progress_handler(None, 0)
            conn.rollback()
    customers = [
        {
            **archive_record(row.customer_id, row.profile, utc_iso(row.updated_at)),
            "open_breaches": breached.get(row.customer_id, 0),
        }
        for row in page
    ]
    return {"customers": customers, "next": ids[-1] if more else None}
