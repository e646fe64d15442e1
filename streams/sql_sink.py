"""The sink: Kafka topics into the reporting database, in batches per partition.

Two layers.  :class:`SinkWriter` is the database side, synchronous and testable
on its own: one partition's batch of records becomes one transaction that
appends new events to ``event_log`` (by event id: a redelivered or duplicated
event inserts nothing), recomputes the derived rows of every customer and item
the new events touch (``streams/sql_projection.py``), and records the
partition's next offset in ``sink_positions``.  :class:`SqlSink` is the Kafka
side: an aiokafka consumer in its own group that commits offsets to Kafka only
after the transaction has committed.  When the database is unreachable it
pauses its partitions, retries the same batch with backoff while staying in
the group, and resumes where it stopped: nothing is lost (offsets were not
committed) and nothing is doubled (event ids).

Every record read ends stored, refused or dead-lettered; none can stop a
partition, because a partition that stops freezes the reporting database for
every customer on it:

* A record the decoder refuses (any exception, not only ``InvalidEvent``: an
  instant that overflows, an ``event_type`` that is a list) is skipped here and
  counted.  The worker's fold agents read the same topics and send such records
  to the dead-letter topic with their bytes; a second copy from the sink would
  only duplicate the dead letters.
* An event that decodes but cannot be written (the projection raises on it,
  the database refuses one of its values) is found by bisecting the batch
  under savepoints; the rest of the batch is written, and the event is sent to
  the dead-letter topic (stage ``sql-sink``) before the position passes it.
  The worker folded it, so nobody else would keep it.
* Anything else (the database or the broker away, a bug in this module) is not
  the records' fault: the sink says so in :attr:`SqlSink.status`, waits and
  retries the same batch.  Only :meth:`SqlSink.stop` ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord
from sqlalchemy import Connection, Engine, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import (DataError, DBAPIError, DisconnectionError, IntegrityError,
                            NotSupportedError, PendingRollbackError, ResourceClosedError,
                            SQLAlchemyError)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from schemas.envelope import Event, InvalidEvent, decode_event
from schemas.reporting_db import upgrade
from schemas.reporting_tables import (Customer, EventRecord, Item, Revisit, SinkPosition,
                                      SlaOutcome, SlaPausedTime, SlaStep)
from sla_rules import RuleSet
from streams import sql_projection as projection
from streams.event_processor import DLQ_HEADER
from streams.settings import Settings

log = structlog.get_logger("keydesk.sink")

ITEM_KINDS = ("fault", "ticket", "order")
_CHUNK = 400  # items per IN (...) list: well under SQLite's bound-parameter limit
DLQ_STAGE = b"sql-sink"  # keydesk.dlq.stage: which reader parked the record


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Unwritable:
    """An event of a batch that decoded but could not be written, and why."""

    offset: int
    reason: str


@dataclass
class WriteResult:
    """What one batch did to the database."""

    stored: int = 0        # events new to event_log
    duplicates: int = 0    # events already there (redelivery, a producer's retry)
    refused: int = 0       # records that are not valid events
    items: int = 0         # items whose derived rows were recomputed
    customers: int = 0
    next_offset: int = 0   # the batch's end: the position once `unwritable` are dead-lettered
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
    if isinstance(exc, (DisconnectionError, PoolTimeout, PendingRollbackError,
                        ResourceClosedError)):
        return False
    return True  # a value that failed to bind (StatementError), a projection bug, ...


class SinkWriter:
    """Writes one partition's records to the database as one transaction."""

    def __init__(self, engine: Engine, rules: RuleSet, group_id: str) -> None:
        self.engine = engine
        self.rules = rules
        self.group_id = group_id
        dialect = engine.dialect.name
        if dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"KEYDESK_DB: unsupported database {dialect!r} "
                             "(sqlite or postgresql)")
        self._insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        self._sqlite = dialect == "sqlite"

    def prepare(self) -> None:
        """Bring the schema up to date (Alembic); safe to repeat."""
        upgrade(self.engine)

    def positions(self, topic: str) -> dict[int, int]:
        """The next offset per partition of ``topic`` as of the last committed batch."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(SinkPosition.partition, SinkPosition.next_offset).where(
                SinkPosition.group_id == self.group_id, SinkPosition.topic == topic))
            return dict(rows.all())

    def write(self, topic: str, partition: int,
              records: Sequence[tuple[int, bytes | None]]) -> WriteResult:
        """Store ``records`` (offset, value) read from ``topic``/``partition``; one transaction.

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
        for offset, value in records:
            try:
                events.append((offset, decode_event(value or b"")))
            except Exception as exc:  # not only InvalidEvent: a refused record never stops us
                result.refused += 1
                reason = str(exc) if isinstance(exc, InvalidEvent) else _short(exc)
                log.warning("sink.record_refused", topic=topic, partition=partition,
                            offset=offset, reason=reason)
        with self.engine.begin() as conn:
            self._begin(conn)
            self._write_isolating(conn, topic, partition, events, _now(), result)
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

    def _write_isolating(self, conn: Connection, topic: str, partition: int,
                         events: list[tuple[int, Event]], stored_at: datetime,
                         result: WriteResult) -> None:
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
            result.unwritable.append(Unwritable(offset, f"cannot be written: {_short(exc)}"))
            log.exception("sink.event_unwritable", topic=topic, partition=partition,
                          offset=offset, event_id=event.event_id, event_type=event.event_type,
                          customer_id=event.customer_id, entity_id=event.entity_id)
            return
        result.stored += part.stored
        result.items += part.items
        result.customers += part.customers

    def _write_events(self, conn: Connection, topic: str, partition: int,
                      events: list[tuple[int, Event]], stored_at: datetime,
                      result: WriteResult) -> None:
        rows: dict[str, dict[str, Any]] = {}
        by_id: dict[str, Event] = {}
        for offset, event in events:
            if event.event_id not in rows:
                rows[event.event_id] = projection.event_row(event, topic, partition, offset,
                                                            stored_at)
                by_id[event.event_id] = event
        new_ids = self._append_events(conn, list(rows.values()))
        result.stored = len(new_ids)
        self._project(conn, [by_id[i] for i in new_ids], result)

    # -- the audit log and the SLA steps: append once per event id ------------------

    def _append_events(self, conn: Connection, rows: list[dict[str, Any]]) -> list[str]:
        if not rows:
            return []
        statement = self._insert(EventRecord).on_conflict_do_nothing().returning(
            EventRecord.event_id)
        inserted = set(conn.execute(statement, rows).scalars().all())
        return [r["event_id"] for r in rows if r["event_id"] in inserted]

    def _project(self, conn: Connection, new_events: list[Event], result: WriteResult) -> None:
        steps = [projection.step_row(e) for e in new_events if e.kind == "sla"]
        if steps:
            conn.execute(self._insert(SlaStep).on_conflict_do_nothing(), steps)
        items = {(e.customer_id, e.kind, e.entity_id) for e in new_events if e.kind in ITEM_KINDS}
        profile_changes: dict[str, datetime] = {}
        for e in new_events:
            if e.kind == "customer":
                since = profile_changes.get(e.customer_id)
                profile_changes[e.customer_id] = min(since, e.occurred_at) if since else e.occurred_at
        customer_events = self._customer_events(
            conn, set(profile_changes) | {customer for customer, _, _ in items})
        for customer_id in sorted(profile_changes):
            row = projection.customer_row(customer_id, customer_events.get(customer_id, []))
            self._upsert(conn, Customer, [row], ("customer_id",))
        result.customers = len(profile_changes)
        # A profile change re-measures the items whose latest event is at or after it.
        for customer_id, since in profile_changes.items():
            items.update(conn.execute(
                select(Item.customer_id, Item.kind, Item.item_id).where(
                    Item.customer_id == customer_id, Item.last_event_at >= since)).all())
        self._recompute_items(conn, sorted(items), customer_events)
        result.items = len(items)

    # -- derived rows: recomputed from every stored event of the item ---------------

    def _recompute_items(self, conn: Connection, items: list[tuple[str, str, str]],
                         customer_events: dict[str, list[Event]]) -> None:
        for chunk in _chunks(items, _CHUNK):
            item_events = self._item_events(conn, chunk)
            derived = [projection.item_rows(c, k, i, item_events[(c, k, i)],
                                            customer_events.get(c, []), self.rules)
                       for c, k, i in chunk]
            keys = tuple_(SlaOutcome.customer_id, SlaOutcome.item_kind, SlaOutcome.item_id)
            conn.execute(delete(SlaOutcome).where(keys.in_(chunk)))
            conn.execute(delete(SlaPausedTime).where(tuple_(
                SlaPausedTime.customer_id, SlaPausedTime.item_kind,
                SlaPausedTime.item_id).in_(chunk)))
            conn.execute(delete(Revisit).where(tuple_(
                Revisit.customer_id, Revisit.item_kind, Revisit.item_id).in_(chunk)))
            self._upsert(conn, Item, [d.item for d in derived], ("customer_id", "kind", "item_id"))
            for table, rows in ((SlaOutcome, [o for d in derived for o in d.outcomes]),
                                (SlaPausedTime, [p for d in derived for p in d.paused]),
                                (Revisit, [r for d in derived for r in d.revisits])):
                if rows:
                    conn.execute(self._insert(table), rows)

    def _item_events(self, conn: Connection, items: list[tuple[str, str, str]]
                     ) -> dict[tuple[str, str, str], list[Event]]:
        by_item: dict[tuple[str, str, str], list[Event]] = {key: [] for key in items}
        keys = tuple_(EventRecord.customer_id, EventRecord.entity_kind, EventRecord.entity_id)
        for row in conn.execute(select(EventRecord.__table__).where(keys.in_(items))):
            by_item[(row.customer_id, row.entity_kind, row.entity_id)].append(
                projection.event_from_row(row))
        return by_item

    def _customer_events(self, conn: Connection, customers: set[str]) -> dict[str, list[Event]]:
        by_customer: dict[str, list[Event]] = {}
        for chunk in _chunks(sorted(customers), _CHUNK):
            statement = select(EventRecord.__table__).where(EventRecord.entity_kind == "customer",
                                                  EventRecord.customer_id.in_(chunk))
            for row in conn.execute(statement):
                by_customer.setdefault(row.customer_id, []).append(projection.event_from_row(row))
        return by_customer

    def _upsert(self, conn: Connection, table: type, rows: list[dict[str, Any]],
                key: tuple[str, ...]) -> None:
        if not rows:
            return
        statement = self._insert(table)
        updated = {name: statement.excluded[name] for name in rows[0] if name not in key}
        conn.execute(statement.on_conflict_do_update(index_elements=list(key), set_=updated), rows)

    def _save_position(self, conn: Connection, topic: str, partition: int, offset: int) -> None:
        self._upsert(conn, SinkPosition, [{"group_id": self.group_id, "topic": topic,
                                           "partition": partition, "next_offset": offset,
                                           "updated_at": _now()}],
                     ("group_id", "topic", "partition"))


def _chunks(values: Sequence, size: int) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield list(values[start:start + size])


# -- the Kafka side ------------------------------------------------------------------

@dataclass
class SinkStatus:
    """What ``GET /api/sink`` and the ``sink.progress`` log line report."""

    state: str = "starting"  # starting | running | retrying | stopped (only after stop())
    totals: Counter = field(default_factory=Counter)
    lag: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> records behind
    positions: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    dead_lettered: int = 0  # events the database could not take, parked by this sink
    last_error: str | None = None
    last_error_at: str | None = None
    last_commit_at: str | None = None
    retrying_since: str | None = None  # when the current streak of failures began
    retrying_from: float | None = field(default=None, repr=False)  # the same, monotonic

    @property
    def retrying_seconds(self) -> float | None:
        """How long the sink has been failing and retrying, or None while it is not."""
        if self.retrying_from is None:
            return None
        return round(time.monotonic() - self.retrying_from, 1)

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "lag_total": sum(self.lag.values()), "lag": self.lag,
                "positions": self.positions, "totals": dict(self.totals),
                "retries": self.retries, "retrying_since": self.retrying_since,
                "retrying_seconds": self.retrying_seconds, "dead_lettered": self.dead_lettered,
                "last_error": self.last_error, "last_error_at": self.last_error_at,
                "last_commit_at": self.last_commit_at}


def dead_letter_topic_for(topics: Sequence[str]) -> str:
    """The dead-letter topic of the desk whose topics these are (``<prefix>.dead-letters``)."""
    prefix = topics[0].rpartition(".")[0] if topics else ""
    return Settings(topic_prefix=prefix or Settings.topic_prefix).dead_letter_topic


class SqlSink(ConsumerRebalanceListener):
    """Consumes ``topics`` into the database through a :class:`SinkWriter`.

    Events the writer cannot write go to ``dead_letter_topic`` (by default the
    one :class:`~streams.settings.Settings` names for the topics' prefix).
    """

    def __init__(self, writer: SinkWriter, bootstrap_servers: list[str], topics: Sequence[str],
                 *, dead_letter_topic: str | None = None, max_records: int = 2000,
                 backoff: tuple[float, float] = (0.2, 10.0), progress_every: float = 10.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.writer = writer
        self.topics = list(topics)
        self.dead_letter_topic = dead_letter_topic or dead_letter_topic_for(self.topics)
        self.bootstrap_servers = bootstrap_servers
        self.status = SinkStatus()
        self.backoff = backoff
        self.max_records = max_records
        self.progress_every = progress_every
        self.clock = clock  # stamps keydesk.dlq.dead_lettered_at
        self.progress = asyncio.Condition()  # notified on every commit and state change
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()  # a revocation waits for the batch being written
        self._consumer = self._new_consumer()
        self._producer: AIOKafkaProducer | None = None  # started at the first dead letter

    def _new_consumer(self) -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers, group_id=self.writer.group_id,
            client_id=f"{self.writer.group_id}-consumer", enable_auto_commit=False,
            auto_offset_reset="earliest", isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024)

    # -- rebalances: start from the database's own record of where it stopped

    async def on_partitions_revoked(self, revoked) -> None:
        async with self._lock:
            for tp in revoked:
                self.status.lag.pop(f"{tp.topic}:{tp.partition}", None)

    async def on_partitions_assigned(self, assigned) -> None:
        try:
            positions = {topic: await asyncio.to_thread(self.writer.positions, topic)
                         for topic in {tp.topic for tp in assigned}}
        except Exception as exc:  # database down: Kafka's committed offsets will do
            log.warning("sink.positions_unavailable", error=_short(exc))
            return
        for tp in assigned:
            offset = positions[tp.topic].get(tp.partition)
            if offset is not None:
                self._consumer.seek(tp, offset)

    # -- the loop

    async def run(self) -> None:
        """Consume until :meth:`stop`; the Kafka clients are closed on the way out.

        Nothing else ends it: a database or broker that is away, and any
        unexpected exception, is logged, shown in :attr:`status` (``retrying``,
        ``last_error``, for how long) and retried with backoff.
        """
        try:
            if await self._until_done(self._prepare) and await self._until_done(self._join):
                await self._consume()
        finally:
            self.status.state = "stopped"
            await self._close()
            async with self.progress:
                self.progress.notify_all()

    async def stop(self) -> None:
        self._stopping.set()

    async def _prepare(self) -> None:
        """Migrate the schema (the database may not be up yet)."""
        await asyncio.to_thread(self.writer.prepare)

    async def _join(self) -> None:
        """Start the consumer and subscribe; a consumer that failed to start is replaced."""
        try:
            await self._consumer.start()
        except Exception:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            self._consumer = self._new_consumer()
            raise
        self._consumer.subscribe(self.topics, listener=self)
        self._recovered()

    async def _until_done(self, step: Callable[[], Awaitable[None]]) -> bool:
        """Run ``step`` until it succeeds, with backoff; False if stopped first."""
        delay, (_, ceiling) = self.backoff[0], self.backoff
        while not self._stopping.is_set():
            try:
                await step()
                return True
            except Exception as exc:
                await self._trouble(exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, ceiling)
        return False

    async def _consume(self) -> None:
        next_progress = time.monotonic() + self.progress_every
        while await self._until_done(self._poll):
            if self.status.state == "retrying":
                self._recovered()  # the failure was in the loop, and the loop works again
            if time.monotonic() >= next_progress:
                try:
                    await self._measure_lag()
                except Exception as exc:  # only the progress line misses it
                    log.warning("sink.lag_unavailable", error=_short(exc))
                log.info("sink.progress", **self.status.to_dict())
                next_progress = time.monotonic() + self.progress_every
            if self._stopping.is_set():
                return

    async def _poll(self) -> None:
        """Fetch and store one round of batches.

        If storing fails, the batches not yet stored are fetched again next
        time (the consumer is sought back to their first offsets): moving on
        would let a later commit pass records never written.
        """
        batches = await self._consumer.getmany(timeout_ms=200, max_records=self.max_records)
        pending = sorted(batches, key=lambda t: (t.topic, t.partition))
        try:
            while pending:
                await self._store(pending[0], batches[pending[0]])
                pending.pop(0)
        except Exception:
            assigned = self._consumer.assignment()
            for tp in pending:
                if tp in assigned:
                    self._consumer.seek(tp, batches[tp][0].offset)
            raise

    async def _close(self) -> None:
        for client in (self._consumer, self._producer):
            if client is not None:
                try:
                    await client.stop()
                except Exception as exc:  # stopping anyway
                    log.warning("sink.close_failed", client=type(client).__name__,
                                error=_short(exc))

    async def _store(self, tp: TopicPartition, records: list[ConsumerRecord]) -> None:
        """Write one partition's batch, park its unwritable events, then commit.

        While anything fails (the database is down, the dead-letter topic
        cannot be reached, a bug) the same batch is retried with backoff; work
        already done is not redone: a write that committed is kept, a dead
        letter that was acknowledged is not sent again.
        """
        by_offset = {r.offset: r for r in records}
        result: WriteResult | None = None
        parked: set[int] = set()
        delay, (_, ceiling) = self.backoff[0], self.backoff
        while True:
            async with self._lock:
                if tp not in self._consumer.assignment():
                    return  # revoked meanwhile: the new owner reads it from the committed offset
                try:
                    if result is None:
                        result = await asyncio.to_thread(
                            self.writer.write, tp.topic, tp.partition,
                            [(r.offset, r.value) for r in records])
                    for bad in result.unwritable:
                        if bad.offset not in parked:
                            await self._dead_letter(by_offset[bad.offset], bad.reason)
                            parked.add(bad.offset)
                    if result.unwritable:
                        await asyncio.to_thread(self.writer.save_position, tp.topic,
                                                tp.partition, result.next_offset)
                except Exception as exc:
                    await self._trouble(exc, delay)
                else:
                    await self._committed(tp, result)
                    return
            # Polling keeps the consumer in its group; paused partitions fetch nothing,
            # and a partition assigned meanwhile is put back to what it returned.
            self._consumer.pause(*self._consumer.assignment())
            stray = await self._consumer.getmany(timeout_ms=int(delay * 1000))
            for other, fetched in stray.items():
                self._consumer.seek(other, fetched[0].offset)
            if self._stopping.is_set():
                return
            delay = min(delay * 2, ceiling)

    async def _dead_letter(self, record: ConsumerRecord, reason: str) -> None:
        """Park an event the database cannot take: original key and bytes, reason in headers.

        Awaited with every in-sync replica's acknowledgement before the
        position passes the record: the worker folded it, so this is the only
        copy that says the reporting database lacks it.
        """
        headers = [  # the reason may quote the record: a lone surrogate must not stop us
            (DLQ_HEADER + "reason", reason.encode("utf-8", "backslashreplace")),
            (DLQ_HEADER + "field", b""),
            (DLQ_HEADER + "topic", record.topic.encode()),
            (DLQ_HEADER + "partition", str(record.partition).encode()),
            (DLQ_HEADER + "offset", str(record.offset).encode()),
            (DLQ_HEADER + "timestamp", str(record.timestamp / 1000.0).encode()),
            (DLQ_HEADER + "dead_lettered_at", repr(self.clock()).encode()),
            (DLQ_HEADER + "stage", DLQ_STAGE),
        ]
        producer = await self._dead_letter_producer()
        await producer.send_and_wait(self.dead_letter_topic, record.value, key=record.key,
                                     headers=headers)
        self.status.dead_lettered += 1
        log.warning("sink.dead_lettered", reason=reason, topic=record.topic,
                    partition=record.partition, offset=record.offset,
                    dead_letter_topic=self.dead_letter_topic)

    async def _dead_letter_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers, acks="all", enable_idempotence=True,
                client_id=f"{self.writer.group_id}-dead-letters")
            try:
                await producer.start()
            except Exception:
                with contextlib.suppress(Exception):
                    await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def _trouble(self, exc: Exception, delay: float) -> None:
        """Show a failure in the status and the log; the caller retries after ``delay``."""
        status = self.status
        if status.retrying_from is None:
            status.retrying_from, status.retrying_since = time.monotonic(), _now().isoformat()
        status.state, status.last_error = "retrying", _short(exc)
        status.last_error_at = _now().isoformat()
        status.retries += 1
        if self._consumer.assignment():
            self._consumer.pause(*self._consumer.assignment())
        context = {"error": status.last_error, "retry_in_seconds": delay,
                   "retries": status.retries, "retrying_seconds": status.retrying_seconds}
        if isinstance(exc, SQLAlchemyError):
            log.warning("sink.database_unavailable", **context)
        elif isinstance(exc, KafkaError):
            log.warning("sink.kafka_unavailable", **context)
        else:  # nobody expected this one: keep the traceback
            log.error("sink.failed_retrying", **context, exc_info=exc)
        async with self.progress:
            self.progress.notify_all()

    def _recovered(self) -> None:
        if self.status.state == "retrying":
            log.info("sink.recovered", retries=self.status.retries,
                     retried_seconds=self.status.retrying_seconds)
            if self._consumer.paused():
                self._consumer.resume(*self._consumer.paused())
        self.status.state = "running"
        self.status.retrying_from = self.status.retrying_since = None

    async def _committed(self, tp: TopicPartition, result: WriteResult) -> None:
        self._recovered()
        self.status.totals.update(stored=result.stored, duplicates=result.duplicates,
                                  refused=result.refused, items=result.items,
                                  customers=result.customers, batches=1)
        self.status.positions[f"{tp.topic}:{tp.partition}"] = result.next_offset
        try:
            await self._consumer.commit({tp: result.next_offset})
        except (CommitFailedError, KafkaError) as exc:
            # The database holds the position; a new owner starts from there.
            log.warning("sink.commit_failed", topic=tp.topic, partition=tp.partition,
                        error=_short(exc))
        self.status.last_commit_at = _now().isoformat()
        async with self.progress:
            self.progress.notify_all()

    async def _measure_lag(self) -> dict[str, int]:
        assigned = list(self._consumer.assignment())
        if assigned:
            ends = await self._consumer.end_offsets(assigned)
            for tp in assigned:
                key = f"{tp.topic}:{tp.partition}"
                position = self.status.positions.get(key)
                if position is None:
                    position = await self._consumer.committed(tp) or 0
                self.status.lag[key] = max(ends[tp] - position, 0)
        return self.status.lag

    async def lag(self) -> dict[str, int]:
        """Records not yet in the database, per partition, measured now.

        If the broker does not answer, the last measurement: the status must stay
        readable when the broker is what the sink is waiting for.
        """
        try:
            return await self._measure_lag()
        except KafkaError as exc:
            log.warning("sink.lag_unavailable", error=_short(exc))
            return self.status.lag

    async def wait_for(self, condition: Callable[[SinkStatus], bool],
                       timeout: float | None = None) -> None:
        """Wait until ``condition(status)`` holds (checked at every commit and state change)."""
        async with self.progress:
            await asyncio.wait_for(self.progress.wait_for(lambda: condition(self.status)),
                                   timeout)

    async def wait_until_stored(self, ends: dict[tuple[str, int], int],
                                timeout: float | None = None) -> None:
        """Wait until every (topic, partition) has been stored up to its end offset."""
        await self.wait_for(lambda status: all(status.positions.get(f"{t}:{p}", 0) >= end
                                               for (t, p), end in ends.items()), timeout)


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"[:300]
