"""Who may use the desk: users, their sessions, API tokens and the audit trail (SQL models).

They live in the reporting database (``KEYDESK_DB``) next to the sink's tables,
built by the same Alembic migrations (``0004_identity``), so that every worker
sees the same users, and a revoked session or token is refused by all of them
on the next request (each request looks its credential up, by hash).

No secret is stored: a password as its argon2id hash, a session id, CSRF token
and API token as the SHA-256 of a 256-bit random secret (a hash of a
high-entropy secret cannot be searched backwards; argon2's cost is for
passwords people choose).  ``id`` columns of sessions and tokens are public
handles (the audit names them, ``keydesk token revoke`` takes them), not
credentials.  ``audit`` is append-only: keydesk inserts rows and never
updates or deletes one.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from schemas.reporting_tables import Base

#: length of a SHA-256 digest in hex
DIGEST = 64


class User(Base):
    """A member of staff who signs in: roles, the staff id customers' profiles name, a region."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    #: role names (``handlers/identity/roles.py``), several allowed
    roles: Mapped[list[str]] = mapped_column(JSON)
    #: the id a customer's ``account_manager.id`` or escalation chain step ``id`` names
    staff_id: Mapped[str | None] = mapped_column(String(64))
    region: Mapped[str | None] = mapped_column(String(120))
    disabled: Mapped[bool] = mapped_column(Boolean)
    #: a one-time password (first admin, reset): only changing it is allowed until then
    must_change_password: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class LoginSession(Base):
    """A signed-in browser or CLI: revocable, with an absolute expiry."""

    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    secret_hash: Mapped[str] = mapped_column(String(DIGEST), unique=True)
    csrf_hash: Mapped[str] = mapped_column(String(DIGEST))
    username: Mapped[str] = mapped_column(String(64), ForeignKey("users.username"), index=True)
    address: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ApiToken(Base):
    """A bearer token: an integration's (scoped to event types and a source) or a person's (their roles)."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(DIGEST), unique=True)
    #: a personal token acts as this user (roles, scope); ``None``: an integration token
    username: Mapped[str | None] = mapped_column(String(64), ForeignKey("users.username"), index=True)
    #: an integration token may publish only these event types ...
    event_types: Mapped[list[str] | None] = mapped_column(JSON)
    #: ... with this envelope ``source``
    source: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuditRecord(Base):
    """One sign-in, failed sign-in, permission denial or admin change (append-only)."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    #: login, login_failed, logout, denied, user.added, user.changed, token.created, ...
    kind: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str | None] = mapped_column(String(128))
    #: the session's or token's public id (never its secret)
    credential: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(64))
    #: what the record is about: a username, a token id, ``METHOD /path``, a customer id
    target: Mapped[str | None] = mapped_column(String(300))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    detail: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (
        # the login rate limit counts recent failures per username and per address
        Index(None, "kind", "target", "at"),
        Index(None, "kind", "address", "at"),
    )
