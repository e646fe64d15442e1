"""Records that would stop the SQL sink, and the sink going on past each of them.

Issue 9: one record the sink could neither store nor skip stopped its loop,
and every restart read the same record again, so the reporting database froze
for that partition.  The rule tested here: every record read ends stored,
refused (the worker dead-letters those) or dead-lettered by the sink, and no
exception stops the loop.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError, OperationalError, PendingRollbackError, ProgrammingError

from handlers.kafka_topics import ensure_topics
from schemas.envelope import decode_event
from schemas.reporting_db import open_engine, upgrade
from schemas.reporting_tables import EventRecord, Item, SinkPosition
from streams import sink_writer
from streams import sql_projection as projection
from streams.sink_writer import SinkWriter, blames_the_records
from streams.sql_sink import SqlSink
from tests.builders import event, fault
from tests.streams.test_sql_sink import A_FAULT, DIAMOND, RULES, Desk, count, records, running


def on_the_wire(base, **fields) -> bytes:
    """``base`` as published, with ``fields`` replaced."""
    return orjson.dumps({**base.to_wire(), **fields})


# The records of issue 9: the decoder of the day raised OverflowError or TypeError on
# the first four, not InvalidEvent.
UNDECODABLE = {
    "an instant that is before year 1 in UTC": on_the_wire(
        fault("F-X", "reported"), occurred_at="0001-01-01T00:00:00+08:00"
    ),
    "an instant that is after year 9999 in UTC": on_the_wire(
        fault("F-X", "reported"), occurred_at="9999-12-31T23:00:00-08:00"
    ),
    "an event type that is a list": on_the_wire(fault("F-X", "reported"), event_type=[]),
    "an event type that is an object": on_the_wire(fault("F-X", "reported"), event_type={}),
    "no JSON at all": b"{not json",
}


def decoder_as_issue_9_found_it(raw: bytes):
    """``decode_event`` raising what it raised on UNDECODABLE before it was made total.

    The sink must not depend on the decoder raising only InvalidEvent.
    """
    try:
        wire = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return decode_event(raw)
    if isinstance(wire.get("event_type"), list | dict):
        raise TypeError(f"unhashable type: {type(wire['event_type']).__name__!r}")
    if wire.get("occurred_at", "")[:4] in ("0001", "9999"):
        raise OverflowError("date value out of range")
    return decode_event(raw)


DECODERS = {
    "the decoder of today": decode_event,
    "the decoder as issue 9 found it": decoder_as_issue_9_found_it,
}


class InjectedBug(Exception):
    """A projection bug that one event, and only that one, sets off."""


def projection_fails_on(monkeypatch, poison) -> None:
    """Make the item projection raise InjectedBug on every item holding ``poison``."""
    real = projection.item_rows

    def item_rows(customer_id, kind, item_id, item_events, *args):
        if any(stored.event.event_id == poison.event_id for stored in item_events):
            raise InjectedBug(f"cannot project {poison.event_id}")
        return real(customer_id, kind, item_id, item_events, *args)

    monkeypatch.setattr(projection, "item_rows", item_rows)


def logged_ids(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(select(EventRecord.event_id)).scalars())


@pytest.fixture
def engine(reporting_db_url):
    engine = open_engine(reporting_db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


class TestWriter:
    @pytest.mark.parametrize("decoder", DECODERS.values(), ids=DECODERS.keys())
    def test_a_record_the_decoder_raises_anything_on_is_refused_and_its_neighbours_stored(
        self, engine, monkeypatch, decoder
    ):
        monkeypatch.setattr(sink_writer, "decode_event", decoder)
        writer = SinkWriter(engine, RULES, "sink")
        batch = [A_FAULT[0].to_bytes(), *UNDECODABLE.values(), A_FAULT[1].to_bytes()]
        result = writer.write("keydesk.events", 0, list(enumerate(batch)))
        assert (result.refused, result.stored, result.unwritable) == (5, 2, [])
        assert writer.positions("keydesk.events") == {0: 7}

    def test_an_event_the_projection_raises_on_is_set_aside_and_every_other_one_written(
        self, engine, monkeypatch
    ):
        projection_fails_on(monkeypatch, A_FAULT[1])
        writer = SinkWriter(engine, RULES, "sink")
        result = writer.write("keydesk.events", 0, records([DIAMOND, *A_FAULT], first_offset=10))
        assert [u.offset for u in result.unwritable] == [12]
        assert "InjectedBug" in result.unwritable[0].reason
        assert (result.stored, result.duplicates, result.next_offset) == (5, 0, 16)
        assert logged_ids(engine) == {e.event_id for e in [DIAMOND, *A_FAULT]} - {A_FAULT[1].event_id}
        with engine.connect() as conn:
            assert conn.execute(select(Item.item_id, Item.state)).all() == [("F-1", "closed")]

    def test_the_position_waits_at_the_first_unwritable_event_until_it_is_parked(self, engine, monkeypatch):
        poison = fault("F-2", "reported")
        projection_fails_on(monkeypatch, poison)
        writer = SinkWriter(engine, RULES, "sink")
        result = writer.write("keydesk.events", 0, records([A_FAULT[0], poison, A_FAULT[1], poison]))
        assert [u.offset for u in result.unwritable] == [1, 3]  # both copies: neither is stored
        assert (result.saved_offset, writer.positions("keydesk.events")) == (1, {0: 1})
        writer.save_position("keydesk.events", 0, result.next_offset)
        assert writer.positions("keydesk.events") == {0: 4}

    def test_the_events_and_the_position_commit_together_or_not_at_all(self, engine, monkeypatch):
        """Savepoints included: on SQLite releasing the first one must not commit."""

        def position_lost(*args):
            raise OperationalError("INSERT", {}, ConnectionError("server closed the connection"))

        monkeypatch.setattr(SinkWriter, "_save_position", position_lost)
        writer = SinkWriter(engine, RULES, "sink")
        with pytest.raises(OperationalError):
            writer.write("keydesk.events", 0, records(A_FAULT))
        assert count(engine, EventRecord) == 0

    def test_a_database_that_fails_while_isolating_leaves_nothing_of_the_batch_written(
        self, engine, monkeypatch
    ):
        """The halves already written are rolled back with the rest."""
        real, calls = projection.item_rows, []

        def item_rows(customer_id, kind, item_id, *args):
            if item_id == "F-2":
                calls.append(item_id)
                if len(calls) == 1:
                    raise ValueError("a record's fault, the first time")
                raise OperationalError("UPDATE", {}, ConnectionError("server closed"))
            return real(customer_id, kind, item_id, *args)

        monkeypatch.setattr(projection, "item_rows", item_rows)
        writer = SinkWriter(engine, RULES, "sink")
        with pytest.raises(OperationalError):
            writer.write("keydesk.events", 0, records([A_FAULT[0], fault("F-2", "reported")]))
        assert len(calls) == 2
        assert count(engine, EventRecord) == 0 and count(engine, SinkPosition) == 0


@pytest.mark.postgres
def test_a_value_postgresql_refuses_is_set_aside_and_the_batch_written(fresh_postgres):
    """PostgreSQL text cannot hold NUL, which the envelope lets through in ``actor``."""
    engine = open_engine(fresh_postgres)
    upgrade(engine)
    writer = SinkWriter(engine, RULES, "sink")
    nul = on_the_wire(fault("F-2", "reported"), actor="night\u0000shift")
    result = writer.write(
        "keydesk.events", 0, [(0, A_FAULT[0].to_bytes()), (1, nul), (2, A_FAULT[1].to_bytes())]
    )
    assert [u.offset for u in result.unwritable] == [1]
    assert "DataError" in result.unwritable[0].reason
    assert logged_ids(engine) == {A_FAULT[0].event_id, A_FAULT[1].event_id}
    engine.dispose()


class _DriverError(Exception):
    def __init__(self, sqlstate: str | None = None) -> None:
        super().__init__("from the driver")
        self.sqlstate = sqlstate


NOT_THE_RECORDS = {
    "a lost connection": OperationalError("INSERT", {}, _DriverError("08006")),
    "a deadlock": OperationalError("INSERT", {}, _DriverError("40P01")),
    "a locked SQLite file": OperationalError("INSERT", {}, _DriverError()),
    "a missing table": ProgrammingError("INSERT", {}, _DriverError("42P01")),
    "any error that invalidated the connection": DataError(
        "INSERT", {}, _DriverError(), connection_invalidated=True
    ),
    "a connection to roll back first": PendingRollbackError("roll back first"),
}
THE_RECORDS = {
    "a character PostgreSQL cannot store": DataError("INSERT", {}, _DriverError("22P05")),
    "a null where none may be": IntegrityError("INSERT", {}, _DriverError("23502")),
    "a value too big to index": OperationalError("INSERT", {}, _DriverError("54000")),
    "a SQLite constraint": IntegrityError("INSERT", {}, _DriverError()),
    "an instant out of range": OverflowError("date value out of range"),
    "a projection bug": KeyError("satisfaction"),
}


class TestBlame:
    @pytest.mark.parametrize("error", NOT_THE_RECORDS.values(), ids=NOT_THE_RECORDS.keys())
    def test_a_database_that_is_away_or_unfit_is_not_blamed_on_the_records(self, error):
        assert not blames_the_records(error)

    @pytest.mark.parametrize("error", THE_RECORDS.values(), ids=THE_RECORDS.keys())
    def test_a_value_refused_or_a_projection_that_raises_is_blamed_on_the_records(self, error):
        assert blames_the_records(error)


# -- the sink on the suite's broker ---------------------------------------------------


async def read_topic(desk: Desk, topic: str, timeout: float = 30) -> list:
    """Every record on ``topic`` now, from its beginning to its end offsets."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=desk.settings.bootstrap_servers,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(desk.settings.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        # An explicit offset: seek_to_beginning can lose a race with the reset that
        # assign() starts, and the consumer then begins at the end.
        for tp, first in (await consumer.beginning_offsets(partitions)).items():
            consumer.seek(tp, first)
        found = []

        async def drain() -> None:
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for batch in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend(batch)

        await asyncio.wait_for(drain(), timeout)
        return sorted(found, key=lambda r: (r.partition, r.offset))
    finally:
        await consumer.stop()


async def new_desk(kafka_bootstrap: str) -> Desk:
    desk = Desk(kafka_bootstrap)
    await ensure_topics(desk.settings)
    return desk


def new_sink(desk: Desk, engine, **options) -> SqlSink:
    writer = SinkWriter(engine, RULES, f"{desk.settings.app_id}-sink")
    return SqlSink(
        writer, desk.settings.bootstrap_servers, [desk.settings.events_topic], backoff=(0.05, 0.5), **options
    )


def keyed(e) -> tuple[bytes, bytes]:
    return e.customer_id.encode(), e.to_bytes()


@pytest.mark.broker
@pytest.mark.parametrize("decoder", DECODERS.values(), ids=DECODERS.keys())
async def test_records_the_decoder_raises_on_are_refused_and_the_partition_keeps_flowing(
    kafka_bootstrap, engine, monkeypatch, decoder
):
    """The issue's reproduction: a registration, a fault, each poison, five more faults."""
    monkeypatch.setattr(sink_writer, "decode_event", decoder)
    desk = await new_desk(kafka_bootstrap)
    valid = [DIAMOND, *(fault(f"F-{n}", "reported", f"09:0{n}") for n in range(1, 7))]
    await desk.send(
        [
            keyed(valid[0]),
            keyed(valid[1]),
            *((b"C-1", poison) for poison in UNDECODABLE.values()),
            *(keyed(e) for e in valid[2:]),
        ]
    )
    assert len(desk.ends) == 1  # one partition, as the issue had it
    sink = new_sink(desk, engine, max_records=3)  # some batches hold nothing but poison
    async with running(sink):
        await sink.wait_until_stored(desk.ends, timeout=60)
        assert sink.status.state == "running"
    assert logged_ids(engine) == {e.event_id for e in valid}
    assert await desk.committed(sink.writer.group_id) == desk.ends
    assert (sink.status.totals["refused"], sink.status.totals["stored"]) == (5, 7)
    # The worker parks what its decoder refuses; a copy from the sink would be a duplicate.
    assert sink.status.dead_lettered == 0
    assert await read_topic(desk, desk.settings.dead_letter_topic) == []


@pytest.mark.broker
async def test_an_event_the_projection_raises_on_is_dead_lettered_once_and_passed_for_good(
    kafka_bootstrap, engine, monkeypatch
):
    poison = A_FAULT[1]
    projection_fails_on(monkeypatch, poison)
    desk = await new_desk(kafka_bootstrap)
    await desk.publish([DIAMOND, *A_FAULT])
    sink = new_sink(desk, engine)
    async with running(sink):
        await sink.wait_until_stored(desk.ends, timeout=60)
    assert logged_ids(engine) == {e.event_id for e in [DIAMOND, *A_FAULT]} - {poison.event_id}
    assert await desk.committed(sink.writer.group_id) == desk.ends
    assert {
        (desk.settings.events_topic, p): o
        for p, o in sink.writer.positions(desk.settings.events_topic).items()
    } == desk.ends
    [parked] = await read_topic(desk, desk.settings.dead_letter_topic)
    assert (parked.key, parked.value) == (b"C-1", poison.to_bytes())
    headers = dict(parked.headers)
    assert b"InjectedBug" in headers["keydesk.dlq.reason"]
    assert headers["keydesk.dlq.stage"] == b"sql-sink"
    [(topic, partition)] = desk.ends
    assert (
        headers["keydesk.dlq.topic"],
        headers["keydesk.dlq.partition"],
        headers["keydesk.dlq.offset"],
    ) == (topic.encode(), str(partition).encode(), b"2")
    assert sink.status.dead_lettered == 1 and sink.status.state == "stopped"

    later = fault("F-2", "reported", "13:00")  # the bug is still there after the restart
    await desk.publish([later])
    restarted = new_sink(desk, engine)
    async with running(restarted):
        await restarted.wait_until_stored(desk.ends, timeout=60)
    assert later.event_id in logged_ids(engine)
    assert restarted.status.dead_lettered == 0
    assert len(await read_topic(desk, desk.settings.dead_letter_topic)) == 1


@pytest.mark.broker
async def test_the_position_does_not_pass_an_unwritable_event_before_its_dead_letter_is_acked(
    kafka_bootstrap, engine, monkeypatch
):
    poison = A_FAULT[1]
    projection_fails_on(monkeypatch, poison)
    desk = await new_desk(kafka_bootstrap)
    await desk.publish([DIAMOND, *A_FAULT])
    [(topic, partition)] = desk.ends
    sink = new_sink(desk, engine)
    real, reachable = sink._dead_letter_producer, asyncio.Event()

    async def producer():
        if not reachable.is_set():
            raise KafkaConnectionError("the dead-letter topic is out of reach")
        return await real()

    monkeypatch.setattr(sink, "_dead_letter_producer", producer)
    async with running(sink):
        await sink.wait_for(lambda status: status.retries >= 2, timeout=30)
        assert (sink.status.state, sink.status.dead_lettered) == ("retrying", 0)
        assert sink.status.retrying_seconds is not None
        assert sink.writer.positions(topic) == {partition: 2}  # the poison's offset
        assert await desk.committed(sink.writer.group_id) == {(topic, partition): 0}
        reachable.set()
        await sink.wait_until_stored(desk.ends, timeout=60)
    assert sink.writer.positions(topic) == {partition: desk.ends[(topic, partition)]}
    assert len(await read_topic(desk, desk.settings.dead_letter_topic)) == 1
    assert logged_ids(engine) == {e.event_id for e in [DIAMOND, *A_FAULT]} - {poison.event_id}


class Gremlin(Exception):
    """An exception nobody wrote a handler for."""


def fails_once(function):
    """``function``, except that its first call raises :class:`Gremlin`."""
    failed = []

    def first_call_fails(*args, **kwargs):
        if not failed:
            failed.append(True)
            raise Gremlin("thrown once")
        return function(*args, **kwargs)

    return first_call_fails


@pytest.mark.broker
@pytest.mark.parametrize("where", ["migrating the schema", "polling", "writing a batch"])
async def test_an_unexpected_exception_is_reported_and_the_sink_goes_on_to_store_everything(
    kafka_bootstrap, engine, monkeypatch, where
):
    desk = await new_desk(kafka_bootstrap)
    events = [DIAMOND, *A_FAULT, event("customer.registered", "C-2", "08:00", customer="C-2")]
    await desk.publish(events)
    sink = new_sink(desk, engine)
    owner, name = {
        "migrating the schema": (sink.writer, "prepare"),
        "polling": (sink._consumer, "getmany"),
        "writing a batch": (sink.writer, "write"),
    }[where]
    monkeypatch.setattr(owner, name, fails_once(getattr(owner, name)))
    async with running(sink):
        await sink.wait_for(lambda status: status.last_error is not None, timeout=30)
        assert sink.status.state in ("retrying", "running")
        await sink.wait_until_stored(desk.ends, timeout=60)
        assert sink.status.state == "running" and sink.status.retrying_seconds is None
    assert sink.status.last_error == "Gremlin: thrown once" and sink.status.retries >= 1
    assert logged_ids(engine) == {e.event_id for e in events}
    assert await desk.committed(sink.writer.group_id) == desk.ends
