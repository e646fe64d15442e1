"""The sink: Kafka topics into the reporting database, in batches per partition.

This module is the Kafka side.  :class:`SqlSink` is an aiokafka consumer in its
own group that hands each partition's batch to a
:class:`~streams.sink_writer.SinkWriter` (the database side,
``streams/sink_writer.py``: one batch, one transaction) and commits offsets to
Kafka only after the transaction has committed.  When the database is
unreachable it pauses its partitions, retries the same batch with backoff
while staying in the group, and resumes where it stopped: nothing is lost
(offsets were not committed) and nothing is doubled (event ids).

Every record read ends stored, refused or dead-lettered; none can stop a
partition, because a partition that stops freezes the reporting database for
every customer on it:

* A record the decoder refuses is skipped and counted by the writer; the
  worker's fold agents dead-letter it with its bytes.
* An event that decodes but cannot be written (the projection raises on it,
  the database refuses one of its values) is isolated by the writer, the rest
  of the batch is written, and this module sends the event to the dead-letter
  topic (stage ``sql-sink``) before the position passes it.  The worker folded
  it, so nobody else would keep it.
* Anything else (the database or the broker away, a bug in this module) is not
  the records' fault: the sink says so in :attr:`SqlSink.status`, waits and
  retries the same batch.  Only :meth:`SqlSink.stop` ends the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from aiokafka.structs import ConsumerRecord
from sqlalchemy.exc import SQLAlchemyError

from streams.event_processor import DLQ_HEADER
from streams.settings import Settings
from streams.sink_writer import SinkWriter, WriteResult, short_error, utc_now

log = structlog.get_logger("keydesk.sink")

DLQ_STAGE = b"sql-sink"  # keydesk.dlq.stage: which reader parked the record


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
        return {
            "state": self.state,
            "lag_total": sum(self.lag.values()),
            "lag": self.lag,
            "positions": self.positions,
            "totals": dict(self.totals),
            "retries": self.retries,
            "retrying_since": self.retrying_since,
            "retrying_seconds": self.retrying_seconds,
            "dead_lettered": self.dead_lettered,
            "last_error": self.last_error,
            "last_error_at": self.last_error_at,
            "last_commit_at": self.last_commit_at,
        }


def dead_letter_topic_for(topics: Sequence[str]) -> str:
    """The dead-letter topic of the desk whose topics these are (``<prefix>.dead-letters``)."""
    prefix = topics[0].rpartition(".")[0] if topics else ""
    return Settings(topic_prefix=prefix or Settings.topic_prefix).dead_letter_topic


class SqlSink(ConsumerRebalanceListener):
    """Consumes ``topics`` into the database through a :class:`SinkWriter`.

    Events the writer cannot write go to ``dead_letter_topic`` (by default the
    one :class:`~streams.settings.Settings` names for the topics' prefix).
    """

    def __init__(
        self,
        writer: SinkWriter,
        bootstrap_servers: list[str],
        topics: Sequence[str],
        *,
        dead_letter_topic: str | None = None,
        security: Mapping[str, Any] | None = None,
        max_records: int = 2000,
        backoff: tuple[float, float] = (0.2, 10.0),
        progress_every: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.writer = writer
        self.topics = list(topics)
        self.dead_letter_topic = dead_letter_topic or dead_letter_topic_for(self.topics)
        self.bootstrap_servers = bootstrap_servers
        # TLS/SASL options of both its clients (streams/kafka_security.py client_options)
        self.security = dict(security or {})
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
            bootstrap_servers=self.bootstrap_servers,
            group_id=self.writer.group_id,
            client_id=f"{self.writer.group_id}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 1024 * 1024,
            **self.security,
        )

    # -- rebalances: start from the database's own record of where it stopped

    async def on_partitions_revoked(self, revoked) -> None:
        async with self._lock:
            for tp in revoked:
                self.status.lag.pop(f"{tp.topic}:{tp.partition}", None)
                self.status.positions.pop(f"{tp.topic}:{tp.partition}", None)

    async def on_partitions_assigned(self, assigned) -> None:
        try:
            positions = {
                topic: await asyncio.to_thread(self.writer.positions, topic)
                for topic in {tp.topic for tp in assigned}
            }
        except Exception as exc:  # database down: Kafka's committed offsets will do
            log.warning("sink.positions_unavailable", error=short_error(exc))
            return
        for tp in assigned:
            offset = positions[tp.topic].get(tp.partition)
            if offset is not None:
                self._consumer.seek(tp, offset)
                # Where the database stands is where this sink stands: a partition
                # another sink brought to its end has no lag here, though this sink
                # stores nothing of it until the next record (a fault test saw a
                # stale position from an earlier ownership reported as lag for good).
                self.status.positions[f"{tp.topic}:{tp.partition}"] = offset

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

    async def swap_rules(self, rules: Any) -> None:
        """Project with ``rules`` from the next batch on (``streams/rules_feed.py``): between batches."""
        async with self._lock:
            self.writer.rules = rules

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
                    log.warning("sink.lag_unavailable", error=short_error(exc))
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
                    log.warning("sink.close_failed", client=type(client).__name__, error=short_error(exc))

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
                            self.writer.write,
                            tp.topic,
                            tp.partition,
                            [(r.offset, r.value, r.headers) for r in records],
                        )
                    for bad in result.unwritable:
                        if bad.offset not in parked:
                            await self._dead_letter(by_offset[bad.offset], bad.reason)
                            parked.add(bad.offset)
                    if result.unwritable:
                        await asyncio.to_thread(
                            self.writer.save_position, tp.topic, tp.partition, result.next_offset
                        )
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
        await producer.send_and_wait(self.dead_letter_topic, record.value, key=record.key, headers=headers)
        self.status.dead_lettered += 1
        log.warning(
            "sink.dead_lettered",
            reason=reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            dead_letter_topic=self.dead_letter_topic,
        )

    async def _dead_letter_producer(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap_servers,
                acks="all",
                enable_idempotence=True,
                client_id=f"{self.writer.group_id}-dead-letters",
                **self.security,
            )
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
            status.retrying_from, status.retrying_since = time.monotonic(), utc_now().isoformat()
        status.state, status.last_error = "retrying", short_error(exc)
        status.last_error_at = utc_now().isoformat()
        status.retries += 1
        if self._consumer.assignment():
            self._consumer.pause(*self._consumer.assignment())
        context = {
            "error": status.last_error,
            "retry_in_seconds": delay,
            "retries": status.retries,
            "retrying_seconds": status.retrying_seconds,
        }
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
            log.info(
                "sink.recovered", retries=self.status.retries, retried_seconds=self.status.retrying_seconds
            )
            if self._consumer.paused():
                self._consumer.resume(*self._consumer.paused())
        self.status.state = "running"
        self.status.retrying_from = self.status.retrying_since = None

    async def _committed(self, tp: TopicPartition, result: WriteResult) -> None:
        self._recovered()
        self.status.totals.update(
            stored=result.stored,
            duplicates=result.duplicates,
            refused=result.refused,
            items=result.items,
            customers=result.customers,
            batches=1,
        )
        self.status.positions[f"{tp.topic}:{tp.partition}"] = result.next_offset
        try:
            await self._consumer.commit({tp: result.next_offset})
        except (CommitFailedError, KafkaError) as exc:
            # The database holds the position; a new owner starts from there.
            log.warning("sink.commit_failed", topic=tp.topic, partition=tp.partition, error=short_error(exc))
        self.status.last_commit_at = utc_now().isoformat()
        async with self.progress:
            self.progress.notify_all()

    async def _measure_lag(self) -> dict[str, int]:
        """Measure the lag of the partitions assigned, keeping only those still assigned after.

        A rebalance can revoke partitions at any of the awaits: a lag written
        for them after their revocation stayed in the status for good (the
        rebalance fault test saw a sink report 4 records behind on a
        partition it had given up, long after the new owner had stored them).
        """
        assigned = list(self._consumer.assignment())
        measured: dict[str, int] = {}
        if assigned:
            ends = await self._consumer.end_offsets(assigned)
            for tp in assigned:
                key = f"{tp.topic}:{tp.partition}"
                position = self.status.positions.get(key)
                if position is None:
                    position = await self._consumer.committed(tp) or 0
                measured[key] = max(ends[tp] - position, 0)
        still = {f"{tp.topic}:{tp.partition}" for tp in self._consumer.assignment()}
        self.status.lag = {
            key: behind for key, behind in {**self.status.lag, **measured}.items() if key in still
        }
        return self.status.lag

    async def lag(self) -> dict[str, int]:
        """Records not yet in the database, per partition, measured now.

        If the broker does not answer, the last measurement: the status must stay
        readable when the broker is what the sink is waiting for.
        """
        try:
            return await self._measure_lag()
        except KafkaError as exc:
            log.warning("sink.lag_unavailable", error=short_error(exc))
            return self.status.lag

    async def wait_for(self, condition: Callable[[SinkStatus], bool], timeout: float | None = None) -> None:
        """Wait until ``condition(status)`` holds (checked at every commit and state change)."""
        async with self.progress:
            await asyncio.wait_for(self.progress.wait_for(lambda: condition(self.status)), timeout)

    async def wait_until_stored(self, ends: dict[tuple[str, int], int], timeout: float | None = None) -> None:
        """Wait until every (topic, partition) has been stored up to its end offset."""
        await self.wait_for(
            lambda status: all(status.positions.get(f"{t}:{p}", 0) >= end for (t, p), end in ends.items()),
            timeout,
        )
