"""The reporting database: SQLAlchemy 2 models of every table the sink writes.

Two kinds of table live here.  ``event_log`` and ``sla_steps`` are records: one
row per event id, written once and never changed (the audit trail, with the
Kafka topic, partition and offset each event was read from).  ``customers``,
``items``, ``sla_outcomes``, ``sla_paused_time`` and ``revisits`` are derived:
a pure function of the events in ``event_log`` (``streams/sql_projection.py``),
recomputed for an item whenever one of its events arrives, so that duplicates,
late events and replays can never make them drift from the log.

Schema changes go through Alembic (``schemas/migrations``); a test checks that
the migrations build exactly these tables on SQLite and PostgreSQL.
Definitions of the report figures built on them: ``docs/compliance_reports.md``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

ID = 64  # length of customer, item and event ids (the envelope's limit)


class UTCDateTime(TypeDecorator[datetime]):
    """An aware instant, stored as UTC on every database and read back aware.

    SQLite has no time zones: a plain ``DateTime(timezone=True)`` comes back
    naive there and aware on PostgreSQL, and comparing the two raises.  Storing
    UTC everywhere (naive UTC on SQLite) keeps ordering and ``BETWEEN`` right on
    both, and one type means report code never sees a naive datetime.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: keydesk stores aware instants only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(table_name)s_%(column_0_N_name)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), str: String(ID)}


class EventRecord(Base):
    """The audit log: every event, once, as it was read from Kafka (append-only)."""

    __tablename__ = "event_log"

    event_id: Mapped[str] = mapped_column(primary_key=True)
    event_type: Mapped[str]
    customer_id: Mapped[str]
    entity_kind: Mapped[str] = mapped_column(String(16))
    entity_id: Mapped[str]
    occurred_at: Mapped[datetime]
    recorded_at: Mapped[datetime]
    schema_version: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str | None] = mapped_column(String(128))
    payload: Mapped[dict[str, Any]]
    topic: Mapped[str] = mapped_column(String(249))
    partition: Mapped[int] = mapped_column(Integer)
    offset: Mapped[int] = mapped_column(BigInteger)
    stored_at: Mapped[datetime]

    __table_args__ = (
        UniqueConstraint("topic", "partition", "offset"),
        Index(None, "customer_id", "entity_kind", "entity_id", "occurred_at"),
    )


class Customer(Base):
    """A customer's current profile (客户档案): its customer events folded by event time."""

    __tablename__ = "customers"

    customer_id: Mapped[str] = mapped_column(primary_key=True)
    name: Mapped[str | None] = mapped_column(String(2000))
    tier: Mapped[str | None] = mapped_column(String(16))
    industry: Mapped[str | None] = mapped_column(String(16))
    region: Mapped[str | None] = mapped_column(String(120))
    account_manager_id: Mapped[str | None]
    account_manager_name: Mapped[str | None] = mapped_column(String(2000))
    profile: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]  # event time of the latest customer event

    # The archive's list filters (migration 0003).
    __table_args__ = (Index(None, "tier"), Index(None, "region"), Index(None, "account_manager_id"))


class CustomerSearchTerm(Base):
    """A circuit id or phone number a customer is found by, derived from its profile.

    ``streams/customer_archive.search_terms`` says which and how they are
    normalised; rewritten with the customer's row whenever its profile changes.
    """

    __tablename__ = "customer_search_terms"

    customer_id: Mapped[str] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)  # circuit | phone
    term: Mapped[str] = mapped_column(primary_key=True)

    __table_args__ = (Index(None, "kind", "term"),)


class CustomerService(Base):
    """One service of a customer's service register (业务清单), by service id (migration 0005).

    Written by the sink from ``customer.service_added``/``customer.service_removed``
    (``streams/customer_services.py``: last writer by ``stamp`` wins per service).
    A removed service stays as a tombstone (``state`` ``removed``) so that an older
    add read later cannot bring it back; an add past the register's bound stays as
    ``refused``.  Only ``active`` rows are the customer's services, and their
    ``circuit_term`` (``streams/customer_archive.circuit_term``) finds the customer.
    """

    __tablename__ = "customer_services"

    customer_id: Mapped[str] = mapped_column(primary_key=True)
    service_id: Mapped[str] = mapped_column(primary_key=True)
    state: Mapped[str] = mapped_column(String(16))  # active | removed | refused
    stamp: Mapped[str] = mapped_column(String(100))  # occurred_at (UTC ISO) | event id
    event_id: Mapped[str]
    updated_at: Mapped[datetime]  # event time of the event that wrote the row
    service: Mapped[str | None]
    circuit_id: Mapped[str | None]
    circuit_term: Mapped[str | None]
    address: Mapped[str | None] = mapped_column(String(100))
    bandwidth: Mapped[str | None] = mapped_column(String(32))
    note: Mapped[str | None] = mapped_column(String(500))

    __table_args__ = (Index(None, "customer_id", "state"), Index(None, "circuit_term", "state"))


class Item(Base):
    """A fault, ticket or order as it stands: state, dimensions and timestamps."""

    __tablename__ = "items"

    customer_id: Mapped[str] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    item_id: Mapped[str] = mapped_column(primary_key=True)
    state: Mapped[str | None] = mapped_column(String(32))
    closed: Mapped[bool] = mapped_column(Boolean)
    opened_at: Mapped[datetime | None] = mapped_column(index=True)
    updated_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]
    last_event_at: Mapped[datetime]
    priority: Mapped[str | None] = mapped_column(String(16))
    subtype: Mapped[str | None] = mapped_column(String(64))  # severity / ticket kind / product
    tier: Mapped[str] = mapped_column(String(16))
    tier_assumed: Mapped[bool] = mapped_column(Boolean)
    region: Mapped[str | None] = mapped_column(String(120))
    account_manager_id: Mapped[str | None]
    account_manager_name: Mapped[str | None] = mapped_column(String(2000))
    policy: Mapped[str | None]
    reopen_count: Mapped[int] = mapped_column(Integer)
    # From ``revisits``, kept here so a report over a million items reads one table
    # for its item figures instead of ranking every revisit (migration 0002).
    revisit_count: Mapped[int] = mapped_column(Integer, server_default="0")
    last_satisfaction: Mapped[int | None] = mapped_column(Integer)  # of the latest revisit
    attributes: Mapped[dict[str, Any]]
    milestones: Mapped[dict[str, Any]]


class SlaOutcome(Base):
    """One clock of one item (metric and cycle): target, deadline and how it ended."""

    __tablename__ = "sla_outcomes"

    customer_id: Mapped[str] = mapped_column(primary_key=True)
    item_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    item_id: Mapped[str] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(String(16), primary_key=True)
    cycle: Mapped[int] = mapped_column(Integer, primary_key=True)
    policy_id: Mapped[str]
    policy_version: Mapped[int] = mapped_column(Integer)
    calendar_id: Mapped[str]
    priority: Mapped[str | None] = mapped_column(String(16))
    target_seconds: Mapped[float] = mapped_column(Float)
    started_at: Mapped[datetime]
    deadline: Mapped[datetime | None]
    state: Mapped[str] = mapped_column(String(16))  # pending | met | breached | cancelled
    paused: Mapped[bool] = mapped_column(Boolean)
    pause_reason: Mapped[str | None]
    met_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    business_seconds: Mapped[float] = mapped_column(Float)
    calendar_seconds: Mapped[float | None] = mapped_column(Float)
    paused_seconds: Mapped[float] = mapped_column(Float)
    evaluated_at: Mapped[datetime]

    __table_args__ = (Index(None, "metric", "state"),)


class SlaPausedTime(Base):
    """Paused time of one clock, split by reason (pending_customer, ...)."""

    __tablename__ = "sla_paused_time"

    customer_id: Mapped[str] = mapped_column(primary_key=True)
    item_kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    item_id: Mapped[str] = mapped_column(primary_key=True)
    metric: Mapped[str] = mapped_column(String(16), primary_key=True)
    cycle: Mapped[int] = mapped_column(Integer, primary_key=True)
    reason: Mapped[str] = mapped_column(primary_key=True)
    seconds: Mapped[float] = mapped_column(Float)


class Revisit(Base):
    """A follow-up call (回访) after closure, with the customer's satisfaction."""

    __tablename__ = "revisits"

    event_id: Mapped[str] = mapped_column(primary_key=True)
    customer_id: Mapped[str]
    item_kind: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[str]
    occurred_at: Mapped[datetime]
    satisfaction: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index(None, "customer_id", "item_kind", "item_id"),)


class SlaStep(Base):
    """A warning, breach, escalation step or met (from the SLA topic), or an acknowledgement.

    Acknowledgements come from the events topic, signed (``streams/desk_signature.py``).
    """

    __tablename__ = "sla_steps"

    event_id: Mapped[str] = mapped_column(primary_key=True)
    event_type: Mapped[str]
    customer_id: Mapped[str]
    item_kind: Mapped[str] = mapped_column(String(16))
    item_id: Mapped[str]
    metric: Mapped[str] = mapped_column(String(16))
    cycle: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime]
    step: Mapped[int | None] = mapped_column(Integer)
    role: Mapped[str | None] = mapped_column(String(32))
    threshold: Mapped[str | None] = mapped_column(String(16))
    deadline: Mapped[datetime | None]
    policy: Mapped[str | None]
    actor: Mapped[str | None] = mapped_column(String(128))
    note: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index(None, "customer_id", "item_kind", "item_id", "metric", "cycle"),)


class SinkPosition(Base):
    """The next offset the sink reads per partition, committed with the rows it wrote.

    Kafka's committed offset follows the database commit; this row is the
    database's own record of it, so a sink whose Kafka commit was lost (crash
    between the two commits) resumes where the database says, not earlier.
    """

    __tablename__ = "sink_positions"

    group_id: Mapped[str] = mapped_column(String(249), primary_key=True)
    topic: Mapped[str] = mapped_column(String(249), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


REPORTING_TABLES = Base.metadata

# The identity tables (users, sessions, API tokens, audit) share this metadata, so that the
# one chain of migrations builds them and the test comparing migrations to models sees them.
import schemas.identity_tables  # noqa: E402, F401
