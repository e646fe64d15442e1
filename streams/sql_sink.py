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

Records that are not valid events are skipped here and counted: the worker
reads the same topic and sends them to the dead-letter topic with their bytes;
a second copy from the sink would only duplicate the dead letters.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from sqlalchemy import Connection, Engine, delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from schemas.envelope import Event, InvalidEvent, decode_event
from schemas.reporting_db import upgrade
from schemas.reporting_tables import (Customer, EventRecord, Item, Revisit, SinkPosition,
                                      SlaOutcome, SlaPausedTime, SlaStep)
from sla_rules import RuleSet
from streams import sql_projection as projection

log = structlog.get_logger("keydesk.sink")

ITEM_KINDS = ("fault", "ticket", "order")
_CHUNK = 400  # items per IN (...) list: well under SQLite's bound-parameter limit


def _now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class WriteResult:
    """What one batch did to the database."""

    stored: int = 0        # events new to event_log
    duplicates: int = 0    # events already there (redelivery, a producer's retry)
    refused: int = 0       # records that are not valid events
    items: int = 0         # items whose derived rows were recomputed
    customers: int = 0
    next_offset: int = 0


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
        """Store ``records`` (offset, value) read from ``topic``/``partition``; one transaction."""
        result = WriteResult(next_offset=records[-1][0] + 1)
        stored_at = _now()
        rows: dict[str, dict[str, Any]] = {}
        events: dict[str, Event] = {}
        for offset, value in records:
            try:
                event = decode_event(value or b"")
            except InvalidEvent as exc:
                result.refused += 1
                log.warning("sink.record_refused", topic=topic, partition=partition,
                            offset=offset, reason=str(exc))
                continue
            if event.event_id not in rows:
                rows[event.event_id] = projection.event_row(event, topic, partition, offset,
                                                            stored_at)
                events[event.event_id] = event
        with self.engine.begin() as conn:
            new_ids = self._append_events(conn, list(rows.values()))
            result.stored = len(new_ids)
            result.duplicates = len(records) - result.refused - result.stored
            new_events = [events[i] for i in new_ids]
            self._project(conn, new_events, result)
            self._save_position(conn, topic, partition, result.next_offset)
        return result

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

    state: str = "starting"  # starting | running | retrying | stopped
    totals: Counter = field(default_factory=Counter)
    lag: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> records behind
    positions: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    last_error: str | None = None
    last_commit_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "lag_total": sum(self.lag.values()), "lag": self.lag,
                "positions": self.positions, "totals": dict(self.totals),
                "retries": self.retries, "last_error": self.last_error,
                "last_commit_at": self.last_commit_at}


class SqlSink(ConsumerRebalanceListener):
    """Consumes ``topics`` into the database through a :class:`SinkWriter`."""

    def __init__(self, writer: SinkWriter, bootstrap_servers: list[str], topics: Sequence[str],
                 *, max_records: int = 2000, backoff: tuple[float, float] = (0.2, 10.0),
                 progress_every: float = 10.0) -> None:
        self.writer = writer
        self.topics = list(topics)
        self.status = SinkStatus()
        self.backoff = backoff
        self.max_records = max_records
        self.progress_every = progress_every
        self.progress = asyncio.Condition()  # notified on every commit and state change
        self._stopping = asyncio.Event()
        self._lock = asyncio.Lock()  # a revocation waits for the batch being written
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers, group_id=writer.group_id,
            client_id=f"{writer.group_id}-consumer", enable_auto_commit=False,
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
        except SQLAlchemyError as exc:  # database down: Kafka's committed offsets will do
            log.warning("sink.positions_unavailable", error=_short(exc))
            return
        for tp in assigned:
            offset = positions[tp.topic].get(tp.partition)
            if offset is not None:
                self._consumer.seek(tp, offset)

    # -- the loop

    async def run(self) -> None:
        """Consume until :meth:`stop`; the consumer is closed on the way out."""
        if not await self._prepare_database():
            self.status.state = "stopped"
            return
        consumer = self._consumer
        await consumer.start()
        consumer.subscribe(self.topics, listener=self)
        self.status.state = "running"
        next_progress = time.monotonic() + self.progress_every
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=200, max_records=self.max_records)
                for tp in sorted(batches, key=lambda t: (t.topic, t.partition)):
                    await self._store(tp, [(r.offset, r.value) for r in batches[tp]])
                if time.monotonic() >= next_progress:
                    await self._measure_lag()
                    log.info("sink.progress", **self.status.to_dict())
                    next_progress = time.monotonic() + self.progress_every
        finally:
            self.status.state = "stopped"
            await consumer.stop()

    async def stop(self) -> None:
        self._stopping.set()

    async def _prepare_database(self) -> bool:
        """Migrate the schema, waiting for a database that is not up yet; False if stopped."""
        delay, (_, ceiling) = self.backoff[0], self.backoff
        while not self._stopping.is_set():
            try:
                await asyncio.to_thread(self.writer.prepare)
                return True
            except SQLAlchemyError as exc:
                await self._database_down(exc, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)
            delay = min(delay * 2, ceiling)
        return False

    async def _store(self, tp: TopicPartition, records: list[tuple[int, bytes | None]]) -> None:
        """Write one partition's batch, retrying while the database is down, then commit."""
        delay, (_, ceiling) = self.backoff[0], self.backoff
        while True:
            async with self._lock:
                if tp not in self._consumer.assignment():
                    return  # revoked meanwhile: the new owner reads it from the committed offset
                try:
                    result = await asyncio.to_thread(self.writer.write, tp.topic, tp.partition,
                                                     records)
                except SQLAlchemyError as exc:
                    await self._database_down(exc, delay)
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

    async def _database_down(self, exc: Exception, delay: float) -> None:
        self.status.state, self.status.last_error = "retrying", _short(exc)
        self.status.retries += 1
        if self._consumer.assignment():
            self._consumer.pause(*self._consumer.assignment())
        log.warning("sink.database_unavailable", error=self.status.last_error,
                    retry_in_seconds=delay, retries=self.status.retries)
        async with self.progress:
            self.progress.notify_all()

    async def _committed(self, tp: TopicPartition, result: WriteResult) -> None:
        if self.status.state == "retrying":
            log.info("sink.database_back", retries=self.status.retries)
            self._consumer.resume(*self._consumer.paused())
        self.status.state = "running"
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
        """Records not yet in the database, per partition, measured now."""
        return await self._measure_lag()

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
