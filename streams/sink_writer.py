"""The database side of the sink: one partition's batch of records, one transaction.

:class:`SinkWriter` is synchronous and testable on its own, without a broker.
One batch appends its new events to ``event_log`` (by event id: a redelivered
or duplicated event inserts nothing), recomputes the derived rows of every
customer and item the new events touch (``streams/sql_projection.py``), and
records the partition's next offset in ``sink_positions``, all in one
transaction.  The Kafka side that feeds it batches, dead-letters what it
cannot write and commits offsets afterwards is ``streams/sql_sink.py``.

No record can make a batch fail for good:

* A record the decoder refuses (any exception, not only ``InvalidEvent``: an
  instant that overflows, an ``event_type`` that is a list) is skipped here and
  counted.  The worker's fold agents read the same topics and send such records
  to the dead-letter topic with their bytes; a second copy from the sink would
  only duplicate the dead letters.
* An event that decodes but cannot be written (the projection raises on it,
  the database refuses one of its values) is found by bisecting the batch
  under savepoints; the rest of the batch is written, the event is listed in
  :attr:`WriteResult.unwritable`, and the saved position stops before it until
  the caller has dead-lettered it.
* :func:`blames_the_records` tells those apart from failures that are not the
  records' fault (the database away, a schema that does not match): those
  raise, nothing is written, and the caller retries the same batch.

One event per id, the view's rule (``streams/event_ids.py``): the first event
stored with an id is the event that id names.  A later one for the same thing
(the same item, the customer's profile, the same SLA log) is a duplicate; one
for anything else is refused with the view's reason ("event id already used
for fault F-1"): not stored, not projected, and listed in
:attr:`WriteResult.unwritable` so that the caller parks it on the dead-letter
topic with that reason.  Parked, not only counted, because the view cannot
always refuse it too (an id past its bounded memory, or another customer's),
and then the dead letter is the copy that says the reports lack an event the
view shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, delete, func, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    NotSupportedError,
    PendingRollbackError,
    ResourceClosedError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from schemas.envelope import Event, InvalidEvent, decode_event
from schemas.reporting_db import upgrade
from schemas.reporting_tables import (
    Customer,
    CustomerSearchTerm,
    CustomerService,
    EventRecord,
    Item,
    Revisit,
    SinkPosition,
    SlaOutcome,
    SlaPausedTime,
    SlaStep,
)
from sla_rules import RuleSet
from streams import sql_projection as projection
from streams.customer_services import ACTIVE, SERVICE_EVENT_TYPES
from streams.desk_signature import is_signed
from streams.event_ids import event_owner, reuse_reason
from streams.topic_rules import misplaced
from streams.vocabulary import ITEM_KINDS

log = structlog.get_logger("keydesk.sink")

_CHUNK = 400  # items per IN (...) list: well under SQLite's bound-parameter limit


def utc_now() -> datetime:
    """Now, in UTC: when events were stored and positions saved."""
    return datetime.now(UTC)


@dataclass
class Unwritable:
    """An event of a batch that decoded but could not be written (or may not be: its id
    names another event), and why: the reason its dead letter carries."""

    offset: int
    reason: str


@dataclass
class WriteResult:
    """What one batch did to the database."""

    stored: int = 0  # events new to event_log
    duplicates: int = 0  # events already there (redelivery, a producer's retry)
    refused: int = 0  # records that are not valid events
    reused: int = 0  # events whose id names another event (also in `unwritable`)
    items: int = 0  # items whose derived rows were recomputed
    customers: int = 0
    next_offset: int = 0  # the batch's end: the position once `unwritable` are dead-lettered
    unwritable: list[Unwritable] = field(default_factory=list)

    @property
    def saved_offset(self) -> int:
        """The position written with the batch: not past a record still to be dead-lettered."""
        return min((u.offset for u in self.unwritable), default=self.next_offset)


# SQLSTATE classes that blame the values written, whichever exception class the driver
# maps them to: 22 data exception, 23 integrity violation, 54 program limit exceeded
# (psycopg calls that one OperationalError; it is a value too big to index, say).
_RECORD_SQLSTATES = ("22", "23", "54")
# SQLite's names for the same: a value too big, of the wrong type, out of range.
_RECORD_SQLITE_ERRORS = ("SQLITE_TOOBIG", "SQLITE_CONSTRAINT", "SQLITE_MISMATCH", "SQLITE_RANGE")


def blames_the_records(exc: BaseException) -> bool:
    """Whether ``exc``, raised while writing some records, is about those records.

    Yes for a value the database refuses (data and integrity errors), a value
    that cannot be bound, and any exception of the projection code: isolating
    the records and dead-lettering the culprits lets the rest through.  No for
    the database being away (operational and interface errors, a lost
    connection, an exhausted pool), a schema that does not match (programming
    errors: a missing table fails every record alike) and a connection that
    must be rolled back first: dead-lettering on those would empty the topic
    into the dead-letter queue, so the batch is retried instead.
    """
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        sqlstate = getattr(exc.orig, "sqlstate", None)
        if sqlstate:
            return sqlstate[:2] in _RECORD_SQLSTATES
        if getattr(exc.orig, "sqlite_errorname", "").startswith(_RECORD_SQLITE_ERRORS):
            return True
        return isinstance(exc, (DataError, IntegrityError, NotSupportedError))
    if isinstance(exc, (DisconnectionError, PoolTimeout, PendingRollbackError, ResourceClosedError)):
        return False
    return True  # a value that failed to bind (StatementError), a projection bug, ...


class SinkWriter:
    """Writes one partition's records to the database as one transaction."""

    def __init__(
        self,
        engine: Engine,
        rules: RuleSet,
        group_id: str,
        secret: bytes | None = None,
        *,
        arrays: bool | None = None,
    ) -> None:
        """``arrays``: write each table's rows as one ``INSERT .. SELECT FROM unnest(arrays)``
        (default on PostgreSQL; see :meth:`_insert_rows`), else as SQLAlchemy's multi-row ``VALUES``."""
        self.engine = engine
        self.secret = secret  # the desk's: a signed acknowledgement may come on the events topic
        self.rules = rules
        self.group_id = group_id
        dialect = engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"KEYDESK_DB: unsupported database {dialect!r} (sqlite or postgresql)")
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._sqlite = dialect == "sqlite"
        self._arrays = (dialect == "postgresql") if arrays is None else arrays
        if self._arrays and dialect != "postgresql":
            raise ValueError("arrays: PostgreSQL only")
        self._array_statements: dict[tuple, tuple[str, list[tuple[str, Any]]]] = {}

    def prepare(self) -> None:
        """Bring the schema up to date (Alembic); safe to repeat."""
        upgrade(self.engine)

    def positions(self, topic: str) -> dict[int, int]:
        """The next offset per partition of ``topic`` as of the last committed batch."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(SinkPosition.partition, SinkPosition.next_offset).where(
                    SinkPosition.group_id == self.group_id, SinkPosition.topic == topic
                )
            )
            return dict(rows.all())

    def write(
        self,
        topic: str,
        partition: int,
        records: Sequence[tuple[int, bytes | None] | tuple[int, bytes | None, Any]],
    ) -> WriteResult:
        """Store ``records`` (offset, value[, headers]) read from ``topic``/``partition``; one transaction.

        A record the decoder refuses, with whatever exception, is counted and
        skipped (the worker dead-letters it).  An event that cannot be written
        is isolated and listed in ``unwritable``; the others are written, and
        the saved position stops at the first unwritable one, so that it is
        not passed before the caller has dead-lettered it and called
        :meth:`save_position`.  A database that is away raises: nothing is
        written and the caller retries the batch.
        """
        result = WriteResult(next_offset=records[-1][0] + 1)
        events: list[tuple[int, Event]] = []
        for offset, value, *headers in records:
            try:
                event = decode_event(value or b"")
                reason = misplaced(event, topic, bool(headers) and is_signed(self.secret, value, headers[0]))
            except Exception as exc:  # not only InvalidEvent: a refused record never stops us
                reason = str(exc) if isinstance(exc, InvalidEvent) else short_error(exc)
            if reason is None:
                events.append((offset, event))
                continue
            result.refused += 1  # the worker dead-letters what its decoder or topic rule refuses
            log.warning("sink.record_refused", topic=topic, partition=partition, offset=offset, reason=reason)
        with self.engine.begin() as conn:
            self._begin(conn)
            self._write_isolating(conn, topic, partition, events, utc_now(), result)
            result.duplicates = len(events) - result.stored - len(result.unwritable)
            self._save_position(conn, topic, partition, result.saved_offset)
        return result

    def save_position(self, topic: str, partition: int, offset: int) -> None:
        """Record ``offset`` as the partition's next (once its unwritable events are parked)."""
        with self.engine.begin() as conn:
            self._save_position(conn, topic, partition, offset)

    def _begin(self, conn: Connection) -> None:
        # pysqlite opens its transaction lazily, at the first INSERT; a SAVEPOINT issued
        # before that is the outermost one, and releasing it would commit half a batch.
        if self._sqlite and not conn.connection.dbapi_connection.in_transaction:
            conn.exec_driver_sql("BEGIN")

    # -- isolating the events that cannot be written --------------------------------

    def _write_isolating(
        self,
        conn: Connection,
        topic: str,
        partition: int,
        events: list[tuple[int, Event]],
        stored_at: datetime,
        result: WriteResult,
    ) -> None:
        """Write ``events`` under a savepoint; if that fails for their sake, each half alone.

        A batch with one bad event costs about three writes of the batch
        (halves that succeed are kept), instead of one transaction per event.
        """
        if not events:
            return
        part = WriteResult()
        try:
            with conn.begin_nested():
                self._write_events(conn, topic, partition, events, stored_at, part)
        except Exception as exc:
            if not blames_the_records(exc):
                raise
            if len(events) > 1:
                middle = len(events) // 2
                self._write_isolating(conn, topic, partition, events[:middle], stored_at, result)
                self._write_isolating(conn, topic, partition, events[middle:], stored_at, result)
                return
            offset, event = events[0]
            result.unwritable.append(Unwritable(offset, f"cannot be written: {short_error(exc)}"))
            log.exception(
                "sink.event_unwritable",
                topic=topic,
                partition=partition,
                offset=offset,
                event_id=event.event_id,
                event_type=event.event_type,
                customer_id=event.customer_id,
                entity_id=event.entity_id,
            )
            return
        result.stored += part.stored
        result.items += part.items
        result.customers += part.customers
        result.reused += part.reused
        result.unwritable.extend(part.unwritable)

    def _write_events(
        self,
        conn: Connection,
        topic: str,
        partition: int,
        events: list[tuple[int, Event]],
        stored_at: datetime,
        result: WriteResult,
    ) -> None:
        rows: dict[str, dict[str, Any]] = {}
        by_id: dict[str, Event] = {}
        for offset, event in events:
            if event.event_id not in rows:
                rows[event.event_id] = projection.event_row(event, topic, partition, offset, stored_at)
                by_id[event.event_id] = event
        new_ids = self._append_events(conn, list(rows.values()))
        result.stored = len(new_ids)
        new = set(new_ids)
        holders = self._stored_events(conn, [i for i in rows if i not in new])
        holders.update((i, by_id[i]) for i in new_ids)
        for offset, event in events:
            holder = holders.get(event.event_id, event)
            if holder is not event:
                self._check_reuse(topic, partition, offset, event, holder, result)
        self._project(conn, [by_id[i] for i in new_ids], result)

    def _stored_events(self, conn: Connection, event_ids: list[str]) -> dict[str, Event]:
        """The events ``event_log`` already holds under ``event_ids``."""
        stored: dict[str, Event] = {}
        for chunk in _chunks(event_ids, _CHUNK):
            for row in conn.execute(select(EventRecord.__table__).where(EventRecord.event_id.in_(chunk))):
                stored[row.event_id] = projection.event_from_row(row)
        return stored

    def _check_reuse(
        self, topic: str, partition: int, offset: int, event: Event, holder: Event, result: WriteResult
    ) -> None:
        """``event`` shares its id with ``holder``, stored first: a duplicate, or a refused reuse."""
        owner = event_owner(holder)
        if holder.customer_id == event.customer_id and owner == event_owner(event):
            return  # a duplicate: counted as such by write()
        reason = reuse_reason(owner, None if holder.customer_id == event.customer_id else holder.customer_id)
        result.reused += 1
        result.unwritable.append(Unwritable(offset, reason))
        log.warning(
            "sink.event_id_reused",
            topic=topic,
            partition=partition,
            offset=offset,
            event_id=event.event_id,
            event_type=event.event_type,
            customer_id=event.customer_id,
            entity_id=event.entity_id,
            reason=reason,
        )

    # -- the audit log and the SLA steps: append once per event id ------------------

    def _append_events(self, conn: Connection, rows: list[dict[str, Any]]) -> list[str]:
        inserted = set(self._insert_rows(conn, EventRecord, rows, skip_existing=True, returning="event_id"))
        return [r["event_id"] for r in rows if r["event_id"] in inserted]

    def _project(self, conn: Connection, new_events: list[Event], result: WriteResult) -> None:
        steps = [projection.step_row(e) for e in new_events if e.kind == "sla"]
        self._insert_rows(conn, SlaStep, steps, skip_existing=True)
        items = {(e.customer_id, e.kind, e.entity_id) for e in new_events if e.kind in ITEM_KINDS}
        self._write_services(conn, [e for e in new_events if e.event_type in SERVICE_EVENT_TYPES])
        profile_changes: dict[str, datetime] = {}
        for e in new_events:
            if e.kind == "customer" and e.event_type not in SERVICE_EVENT_TYPES:
                since = profile_changes.get(e.customer_id)
                profile_changes[e.customer_id] = min(since, e.occurred_at) if since else e.occurred_at
        customer_events = self._customer_events(
            conn, set(profile_changes) | {customer for customer, _, _ in items}
        )
        for customer_id in sorted(profile_changes):
            row = projection.customer_row(customer_id, customer_events.get(customer_id, []))
            self._upsert(conn, Customer, [row], ("customer_id",))
            # What the archive is searched by: rewritten whole with the profile.
            conn.execute(delete(CustomerSearchTerm).where(CustomerSearchTerm.customer_id == customer_id))
            terms = projection.customer_search_rows(customer_id, row["profile"] if row else None)
            self._insert_rows(conn, CustomerSearchTerm, terms)
        result.customers = len(profile_changes)
        # A profile change re-measures the items whose latest event is at or after it.
        for customer_id, since in profile_changes.items():
            items.update(
                conn.execute(
                    select(Item.customer_id, Item.kind, Item.item_id).where(
                        Item.customer_id == customer_id, Item.last_event_at >= since
                    )
                ).all()
            )
        self._recompute_items(conn, sorted(items), customer_events)
        result.items = len(items)

    # -- the service register: one row per (customer, service), last writer wins ------

    def _write_services(self, conn: Connection, events: list[Event]) -> None:
        """Apply register events to ``customer_services`` in the partition's order.

        Incremental, unlike the other derived rows: a key account's thousands of
        add events are not refolded at each one.  The rule is order-proof per
        service (``streams/customer_services.py``), and the one order-dependent
        decision, the bound, is taken in the order of the customer's partition,
        the order the worker folds in.  Each event is new to ``event_log`` (a
        redelivery never gets here).
        """
        if not events:
            return
        keys = sorted({(e.customer_id, e.payload["service_id"]) for e in events})
        columns = CustomerService.__table__.c
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for chunk in _chunks(keys, _CHUNK):
            statement = select(CustomerService.__table__).where(
                tuple_(columns.customer_id, columns.service_id).in_(chunk)
            )
            for row in conn.execute(statement).mappings():
                rows[(row["customer_id"], row["service_id"])] = dict(row)
        customers = sorted({e.customer_id for e in events})
        active: dict[str, int] = dict.fromkeys(customers, 0)
        for chunk in _chunks(customers, _CHUNK):
            counted = (
                select(columns.customer_id, func.count())
                .where(columns.customer_id.in_(chunk), columns.state == ACTIVE)
                .group_by(columns.customer_id)
            )
            active.update({customer: count for customer, count in conn.execute(counted).all()})
        changed: dict[tuple[str, str], dict[str, Any]] = {}
        for event in events:
            key = (event.customer_id, event.payload["service_id"])
            before = rows.get(key)
            change, row = projection.service_row(event, before, active[event.customer_id])
            if row is None:
                continue
            if change.outcome == "refused":
                log.warning(
                    "sink.service_refused",
                    customer_id=event.customer_id,
                    service_id=key[1],
                    event_id=event.event_id,
                    reason=change.reason,
                )
            was = before is not None and before["state"] == ACTIVE
            active[event.customer_id] += (row["state"] == ACTIVE) - was
            rows[key] = changed[key] = row
        self._upsert(conn, CustomerService, list(changed.values()), ("customer_id", "service_id"))

    # -- derived rows: recomputed from every stored event of the item ---------------

    def _recompute_items(
        self, conn: Connection, items: list[tuple[str, str, str]], customer_events: dict[str, list[Event]]
    ) -> None:
        for chunk in _chunks(items, _CHUNK):
            item_events = self._item_events(conn, chunk)
            derived = [
                projection.item_rows(c, k, i, item_events[(c, k, i)], customer_events.get(c, []), self.rules)
                for c, k, i in chunk
            ]
            keys = tuple_(SlaOutcome.customer_id, SlaOutcome.item_kind, SlaOutcome.item_id)
            conn.execute(delete(SlaOutcome).where(keys.in_(chunk)))
            conn.execute(
                delete(SlaPausedTime).where(
                    tuple_(SlaPausedTime.customer_id, SlaPausedTime.item_kind, SlaPausedTime.item_id).in_(
                        chunk
                    )
                )
            )
            conn.execute(
                delete(Revisit).where(
                    tuple_(Revisit.customer_id, Revisit.item_kind, Revisit.item_id).in_(chunk)
                )
            )
            self._upsert(conn, Item, [d.item for d in derived], ("customer_id", "kind", "item_id"))
            for table, rows in (
                (SlaOutcome, [o for d in derived for o in d.outcomes]),
                (SlaPausedTime, [p for d in derived for p in d.paused]),
                (Revisit, [r for d in derived for r in d.revisits]),
            ):
                self._insert_rows(conn, table, rows)

    def _item_events(
        self, conn: Connection, items: list[tuple[str, str, str]]
    ) -> dict[tuple[str, str, str], list[projection.StoredEvent]]:
        """Each item's stored events, with the (partition, offset) each was read from:
        the source order, which orders an item's events at one instant (streams/event_order.py)."""
        by_item: dict[tuple[str, str, str], list[projection.StoredEvent]] = {key: [] for key in items}
        keys = tuple_(EventRecord.customer_id, EventRecord.entity_kind, EventRecord.entity_id)
        for row in conn.execute(select(EventRecord.__table__).where(keys.in_(items))):
            by_item[(row.customer_id, row.entity_kind, row.entity_id)].append(projection.stored_event(row))
        return by_item

    def _customer_events(self, conn: Connection, customers: set[str]) -> dict[str, list[Event]]:
        by_customer: dict[str, list[Event]] = {}
        for chunk in _chunks(sorted(customers), _CHUNK):
            statement = select(EventRecord.__table__).where(
                EventRecord.entity_kind == "customer",
                EventRecord.customer_id.in_(chunk),
                EventRecord.event_type.not_in(sorted(SERVICE_EVENT_TYPES)),  # the register: its own table
            )
            for row in conn.execute(statement):
                by_customer.setdefault(row.customer_id, []).append(projection.event_from_row(row))
        return by_customer

    def _upsert(
        self, conn: Connection, table: type, rows: list[dict[str, Any]], key: tuple[str, ...]
    ) -> None:
        self._insert_rows(conn, table, rows, upsert_key=key)

    # -- how rows are inserted --------------------------------------------------------

    def _insert_rows(
        self,
        conn: Connection,
        table: type,
        rows: list[dict[str, Any]],
        *,
        skip_existing: bool = False,
        upsert_key: tuple[str, ...] = (),
        returning: str | None = None,
    ) -> list[Any]:
        """Insert ``rows`` (each with the keys of the first) into ``table``; the ``returning``
        column of the rows inserted.

        ``skip_existing``: a row that conflicts with one stored is left out
        (``ON CONFLICT DO NOTHING``); ``upsert_key``: it replaces the stored row's
        other columns.  On PostgreSQL, one ``INSERT .. SELECT * FROM unnest(%s, ..)``
        with a parameter per column, each an array of that column's values: a
        short statement psycopg converts once and the server prepares, where
        SQLAlchemy's multi-row ``VALUES`` (up to 1,000 rows x 15 columns per
        statement) was parsed again in Python by psycopg for every page, a third
        of a batch's time (BENCHMARKS.md, "SQL sink throughput").  Values go
        through the columns' own bind processing (instants to UTC, JSON) first,
        and the arrays are cast to the columns' types without their lengths, so
        a value too long fails the INSERT as it did, instead of being cut.
        """
        if not rows:
            return []
        if self._arrays:
            sql, columns = self._array_statement(table, tuple(rows[0]), skip_existing, upsert_key, returning)
            arrays = {}
            for number, (name, process) in enumerate(columns):
                values = [row[name] for row in rows]
                arrays[f"c{number}"] = [process(v) for v in values] if process else values
            answer = conn.exec_driver_sql(sql, arrays)
            return list(answer.scalars().all()) if returning else []
        statement = self._insert(table)
        if upsert_key:
            updated = {name: statement.excluded[name] for name in rows[0] if name not in upsert_key}
            statement = statement.on_conflict_do_update(index_elements=list(upsert_key), set_=updated)
        elif skip_existing:
            statement = statement.on_conflict_do_nothing()
        if returning is None:
            conn.execute(statement, rows)
            return []
        return list(conn.execute(statement.returning(table.__table__.c[returning]), rows).scalars().all())

    def _array_statement(
        self,
        table: type,
        names: tuple[str, ...],
        skip_existing: bool,
        upsert_key: tuple[str, ...],
        returning: str | None,
    ) -> tuple[str, list[tuple[str, Any]]]:
        """The ``unnest`` INSERT for these columns, and each column's bind processor (made once)."""
        key = (table, names, skip_existing, upsert_key, returning)
        made = self._array_statements.get(key)
        if made is not None:
            return made
        dialect = self.engine.dialect
        quote = dialect.identifier_preparer.quote
        columns = table.__table__.c  # type: ignore[attr-defined]
        arrays = ", ".join(
            f"%(c{number})s::{_unsized(columns[name].type.compile(dialect=dialect))}[]"
            for number, name in enumerate(names)
        )
        sql = (
            f"INSERT INTO {quote(table.__tablename__)} ({', '.join(quote(n) for n in names)}) "  # type: ignore[attr-defined]
            f"SELECT * FROM unnest({arrays})"
        )
        if upsert_key:
            updated = ", ".join(f"{quote(n)} = EXCLUDED.{quote(n)}" for n in names if n not in upsert_key)
            sql += f" ON CONFLICT ({', '.join(quote(n) for n in upsert_key)}) DO UPDATE SET {updated}"
        elif skip_existing:
            sql += " ON CONFLICT DO NOTHING"
        if returning is not None:
            sql += f" RETURNING {quote(returning)}"
        processors = [
            (name, columns[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names
        ]
        made = self._array_statements[key] = (sql, processors)
        return made

    def _save_position(self, conn: Connection, topic: str, partition: int, offset: int) -> None:
        self._upsert(
            conn,
            SinkPosition,
            [
                {
                    "group_id": self.group_id,
                    "topic": topic,
                    "partition": partition,
                    "next_offset": offset,
                    "updated_at": utc_now(),
                }
            ],
            ("group_id", "topic", "partition"),
        )


def _unsized(sql_type: str) -> str:
    """``VARCHAR(64)`` as ``VARCHAR``: a cast to the sized type would cut a value too long."""
    return re.sub(r"\(.*?\)", "", sql_type)


def _chunks(values: Sequence, size: int) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield list(values[start : start + size])


def short_error(exc: BaseException) -> str:
    """``exc`` on one line, at most 300 characters: for logs, the status and dead letters."""
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
