"""The audit trail: sign-ins, failed sign-ins, permission denials and every admin change.

Append-only (``schemas/identity_tables.py``: rows are inserted, never updated or
deleted), in the reporting database so that every worker writes to one trail.
Each row: when (UTC), what kind, who (username or token name), with which
session or token (its public id), from which address, about what (``target``),
and the state before and after as JSON.

:func:`record` takes a SQLAlchemy connection so that an admin change and its
audit row commit together (the customer archive and the rules calls it the same
way: ``audit.record(conn, "customer.updated", actor=..., before=..., after=...)``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, String, cast, func, insert, select
from sqlalchemy.orm import Session, aliased

from handlers.identity.roles import Identity
from schemas.identity_tables import AuditRecord

MAX_PAGE = 500
DEFAULT_PAGE = 100
#: the filters ``GET /api/audit`` and ``keydesk audit`` take
FILTERS = ("kind", "actor", "target", "since", "until")


@dataclass(frozen=True, slots=True)
class Who:
    """The audit's view of a caller: actor, credential and address (any may be unknown)."""

    actor: str | None = None
    credential: str | None = None
    address: str | None = None

    @classmethod
    def of(cls, identity: Identity | None, address: str | None) -> Who:
        if identity is None:
            return cls(address=address)
        return cls(identity.name, identity.credential, address)


def record(
    conn: Connection | Session,
    kind: str,
    who: Who,
    *,
    target: str | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    detail: str | None = None,
    at: datetime | None = None,
) -> None:
    """Append one row, in the caller's transaction."""
    conn.execute(
        insert(AuditRecord),
        {
            "at": at or datetime.now(UTC),
            "kind": kind[:40],
            "actor": who.actor[:128] if who.actor else None,
            "credential": who.credential,
            "address": who.address[:64] if who.address else None,
            "target": target[:300] if target else None,
            "before": dict(before) if before is not None else None,
            "after": dict(after) if after is not None else None,
            "detail": detail[:500] if detail else None,
        },
    )


def record_now(engine: Engine, kind: str, who: Who, **fields: Any) -> None:
    """:func:`record` in a transaction of its own (sign-ins, denials)."""
    with engine.begin() as conn:
        record(conn, kind, who, **fields)


def recent_count(
    engine: Engine, kind: str, since: datetime, *, target: str | None = None, address: str | None = None
) -> int:
    """How many ``kind`` rows since ``since`` about ``target`` or from ``address`` (the login limit)."""
    query = (
        select(func.count()).select_from(AuditRecord).where(AuditRecord.kind == kind, AuditRecord.at >= since)
    )
    if target is not None:
        query = query.where(AuditRecord.target == target)
    if address is not None:
        query = query.where(AuditRecord.address == address)
    with engine.connect() as conn:
        return int(conn.execute(query).scalar_one())


#: a password check about to run (sign-in, or a change of one's own password), recorded before it runs
ATTEMPT = "login_attempt"
#: an attempt that turned out not to be a wrong password (right, or refused unchecked): not counted
SETTLED = "login_attempt_settled"


def reserve_attempt(
    engine: Engine, who: Who, username: str, since: datetime, at: datetime
) -> tuple[int, int, int]:
    """Record a password attempt before checking it: ``(its id, unsettled for the user, from the address)``.

    The counts include this attempt and every one still running, not only the
    failures already recorded: counted after the attempt's own row commits, so
    of any number of attempts at once the last to commit sees them all, and no
    more than the limit are ever let through to the password check.  An
    attempt stays counted (as a failure) unless :func:`settle_attempt` says
    otherwise, a crash between the two included.
    """
    with engine.begin() as conn:
        row = conn.execute(
            insert(AuditRecord).returning(AuditRecord.id),
            {
                "at": at,
                "kind": ATTEMPT,
                "actor": who.actor[:128] if who.actor else None,
                "credential": who.credential,
                "address": who.address[:64] if who.address else None,
                "target": username[:300],
            },
        )
        attempt_id = int(row.scalar_one())
    with engine.connect() as conn:
        by_user = _unsettled(conn, since, "target", username[:300])
        by_address = _unsettled(conn, since, "address", who.address[:64]) if who.address else 0
    return attempt_id, by_user, by_address


def settle_attempt(engine: Engine, attempt_id: int, who: Who, outcome: str) -> None:
    """Take an attempt out of the count: the password was right, or it was never checked."""
    record_now(engine, SETTLED, who, target=str(attempt_id), detail=outcome)


def _unsettled(conn: Connection, since: datetime, column: str, value: str) -> int:
    """Attempts since ``since`` with ``column`` equal to ``value`` and no settling row."""
    attempt, settled = aliased(AuditRecord), aliased(AuditRecord)
    query = (
        select(func.count())
        .select_from(attempt)
        .where(
            attempt.kind == ATTEMPT,
            attempt.at >= since,
            getattr(attempt, column) == value,
            ~select(settled.id)
            .where(settled.kind == SETTLED, settled.target == cast(attempt.id, String))
            .exists(),
        )
    )
    return int(conn.execute(query).scalar_one())


def page(
    engine: Engine, filters: Mapping[str, Any], limit: int, before_id: int | None
) -> list[dict[str, Any]]:
    """Newest first, at most ``limit`` rows older than ``before_id`` (the next page's cursor)."""
    query = select(AuditRecord).order_by(AuditRecord.id.desc()).limit(min(limit, MAX_PAGE))
    for name in ("kind", "actor", "target"):
        if filters.get(name):
            query = query.where(getattr(AuditRecord, name) == filters[name])
    if filters.get("since"):
        query = query.where(AuditRecord.at >= filters["since"])
    if filters.get("until"):
        query = query.where(AuditRecord.at < filters["until"])
    if before_id is not None:
        query = query.where(AuditRecord.id < before_id)
    with Session(engine) as session:
        rows = session.execute(query).scalars().all()
    return [
        {
            "id": r.id,
            "at": r.at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "kind": r.kind,
            "actor": r.actor,
            "credential": r.credential,
            "address": r.address,
            "target": r.target,
            "before": r.before,
            "after": r.after,
            "detail": r.detail,
        }
        for r in rows
    ]
