"""The sink into the reporting database, on SQLite and on PostgreSQL.

The writer is tested on its own (one partition batch = one transaction); the
Kafka side against the suite's real broker, including a database that goes
away mid-stream and comes back.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy import func, select

from handlers.kafka_topics import ensure_topics
from handlers.local.postgres_server import create_database, drop_database
from schemas.reporting_db import open_engine, upgrade
from schemas.reporting_tables import (
    Base,
    Customer,
    EventRecord,
    Item,
    Revisit,
    SinkPosition,
    SlaOutcome,
    SlaStep,
)
from sla_rules import load_rules
from streams.desk_signature import signature_headers
from streams.replay import replay
from streams.settings import Settings
from streams.sink_writer import SinkWriter
from streams.sql_sink import SqlSink
from tests.builders import event, fault
from tests.generated_log import generate_log

RULES = load_rules()
DIAMOND = event("customer.registered", "C-1", "08:00", region="广东/广州")
A_FAULT = [
    fault("F-1", "reported", "09:00"),
    fault("F-1", "acknowledged", "09:03"),
    fault("F-1", "restored", "12:00"),
    fault("F-1", "closed", "12:30"),
    fault("F-1", "revisit_recorded", "16:00", satisfaction=4),
]


@pytest.fixture
def engine(reporting_db_url):
    engine = open_engine(reporting_db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def records(events, first_offset=0):
    return [(first_offset + n, e.to_bytes()) for n, e in enumerate(events)]


def count(engine, table, *where) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def restore_clock(engine):
    with engine.connect() as conn:
        return conn.execute(select(SlaOutcome.__table__).where(SlaOutcome.metric == "restore")).one()


class TestWriter:
    def test_a_batch_stores_every_event_with_where_it_was_read_and_the_item_it_makes(self, engine):
        writer = SinkWriter(engine, RULES, "sink")
        result = writer.write("keydesk.events", 2, records([DIAMOND, *A_FAULT], first_offset=40))
        assert (result.stored, result.duplicates, result.next_offset) == (6, 0, 46)
        with engine.connect() as conn:
            logged = conn.execute(
                select(EventRecord.event_type, EventRecord.partition, EventRecord.offset).order_by(
                    EventRecord.offset
                )
            ).all()
            item = conn.execute(select(Item.__table__)).one()
            satisfaction = conn.execute(select(Revisit.satisfaction)).scalar_one()
        assert logged[0] == ("customer.registered", 2, 40) and logged[-1][2] == 45
        assert (item.state, item.closed, item.tier, item.region, item.policy) == (
            "closed",
            True,
            "diamond",
            "广东/广州",
            "diamond v1",
        )
        assert satisfaction == 4
        clock = restore_clock(engine)
        assert (clock.state, clock.calendar_seconds) == ("breached", 3 * 3600)
        assert writer.positions("keydesk.events") == {2: 46}

    def test_redelivery_and_a_duplicated_event_count_once(self, engine):
        writer = SinkWriter(engine, RULES, "sink")
        writer.write("keydesk.events", 0, records([DIAMOND, *A_FAULT]))
        before = restore_clock(engine)
        again = writer.write("keydesk.events", 0, records([DIAMOND, *A_FAULT]))
        copy = writer.write("keydesk.events", 0, records([A_FAULT[2]], first_offset=6))
        assert (again.stored, again.duplicates, copy.stored, copy.duplicates) == (0, 6, 0, 1)
        assert count(engine, EventRecord) == 6 and count(engine, Revisit) == 1
        assert count(engine, SlaOutcome, SlaOutcome.metric == "restore") == 1
        assert restore_clock(engine) == before

    def test_a_record_that_is_no_event_is_skipped_and_its_offset_still_passes(self, engine):
        writer = SinkWriter(engine, RULES, "sink")
        result = writer.write("keydesk.events", 1, [(7, b"{not json"), (8, A_FAULT[0].to_bytes())])
        assert (result.refused, result.stored, result.next_offset) == (1, 1, 9)
        assert count(engine, EventRecord) == 1

    def test_an_acknowledgement_on_the_events_topic_is_stored_only_when_signed(self, engine):
        """The worker's rule (streams/desk_signature.py): keydesk's own, or a forgery."""
        secret = b"the sink test's desk secret, 32+ chars"
        writer = SinkWriter(engine, RULES, "sink", secret=secret)

        def acknowledgement(when):
            return event(
                "sla.escalation_acknowledged", "F-1", when, item_kind="fault", metric="response", cycle=1
            ).to_bytes()

        signed, unsigned, other = acknowledgement("09:20"), acknowledgement("09:21"), acknowledgement("09:22")
        result = writer.write(
            "keydesk.events",
            1,
            [
                (7, A_FAULT[0].to_bytes(), ()),
                (8, unsigned, ()),
                (9, other, signature_headers(b"another desk's secret, 32 chars", other)),
                (10, signed, signature_headers(secret, signed)),
            ],
        )
        assert (result.refused, result.stored) == (2, 2)
        assert count(engine, SlaStep) == 1

    def test_a_late_profile_re_measures_the_items_it_applies_to(self, engine):
        writer = SinkWriter(engine, RULES, "sink")
        writer.write("keydesk.events", 0, records(A_FAULT[:3]))
        with engine.connect() as conn:
            assert conn.execute(select(Item.tier, Item.tier_assumed)).one() == ("public", True)
        writer.write("keydesk.events", 0, records([DIAMOND], first_offset=3))
        with engine.connect() as conn:
            assert conn.execute(select(Item.tier, Item.tier_assumed)).one() == ("diamond", False)
            assert conn.execute(select(Customer.tier)).scalar_one() == "diamond"
        assert restore_clock(engine).deadline.isoformat() == "2026-11-23T03:00:00+00:00"

    def test_a_late_event_of_an_item_gives_the_rows_in_order_delivery_gives(self, engine):
        in_order = SinkWriter(engine, RULES, "in-order")
        in_order.write("keydesk.events", 0, records([DIAMOND, *A_FAULT]))
        expected = restore_clock(engine)
        with engine.begin() as conn:
            for table in (SlaOutcome, Item, EventRecord, Revisit):
                conn.execute(table.__table__.delete())
        shuffled = SinkWriter(engine, RULES, "shuffled")
        shuffled.write("keydesk.events", 0, records([A_FAULT[3], A_FAULT[0], DIAMOND]))
        shuffled.write("keydesk.events", 0, records([A_FAULT[4], A_FAULT[2], A_FAULT[1]], 3))
        assert restore_clock(engine) == expected

    def test_sla_steps_are_kept_once_with_their_clock(self, engine):
        writer = SinkWriter(engine, RULES, "sink")
        ack = event(
            "sla.escalation_acknowledged",
            "F-1",
            "11:10",
            item_kind="fault",
            metric="restore",
            cycle=1,
            note="on it",
        )
        writer.write("keydesk.sla", 0, records([ack, ack]))
        with engine.connect() as conn:
            step = conn.execute(select(SlaStep.__table__)).one()
        assert (step.item_id, step.metric, step.cycle, step.note) == ("F-1", "restore", 1, "on it")


@pytest.mark.postgres
def test_on_postgresql_the_array_inserts_write_the_rows_the_multi_row_values_write(postgres_url):
    """Both ways of inserting (``SinkWriter(arrays=...)``) on a generated log and its steps:
    every table the same, row for row, over batches that repeat and revisit items."""
    log = generate_log(customers=6, start=datetime(2026, 11, 2, tzinfo=ZoneInfo("Asia/Shanghai")), days=3)
    steps = replay((e.to_bytes() for e in log), RULES, partitions=1).steps
    assert len(log) > 100 and len(steps) > 50
    batches = [("keydesk.events", log), ("keydesk.sla", steps)]
    tables = []
    for arrays in (False, True):
        url = create_database(postgres_url)
        engine = open_engine(url)
        try:
            upgrade(engine)
            writer = SinkWriter(engine, RULES, "sink", arrays=arrays)
            for topic, events in batches:
                for first in range(0, len(events), 37):
                    writer.write(topic, 0, records(events[first : first + 37], first))
                writer.write(topic, 0, records(events[:50]))  # a redelivery: nothing new
            with engine.connect() as conn:
                tables.append(
                    {
                        table.name: sorted(
                            repr(tuple(row))
                            for row in conn.execute(select(*[c for c in table.c if c.name != "stored_at"]))
                        )
                        for table in Base.metadata.sorted_tables
                        if table.name != "sink_positions"
                    }
                )
        finally:
            engine.dispose()
            drop_database(postgres_url, url)
    assert tables[0]["event_log"] and tables[0]["sla_outcomes"] and tables[0]["sla_steps"]
    assert tables[0] == tables[1]


# -- the Kafka side ------------------------------------------------------------------


class Desk:
    """A topic prefix of its own on the suite's broker, and a producer."""

    def __init__(self, bootstrap: str) -> None:
        prefix = f"sink-{uuid.uuid4().hex[:8]}"
        self.settings = Settings.from_env(
            {}, kafka=bootstrap, topic_prefix=prefix, app_id=prefix, partitions=4
        )
        self.ends: dict[tuple[str, int], int] = {}

    async def publish(self, events) -> None:
        await self.send((e.customer_id.encode(), e.to_bytes()) for e in events)

    async def send(self, messages) -> None:
        """Publish (key, value) pairs to the events topic as they are, bad ones included."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.bootstrap_servers, enable_idempotence=True
        )
        await producer.start()
        try:
            for key, value in messages:
                sent = await producer.send_and_wait(self.settings.events_topic, value, key=key)
                self.ends[(sent.topic, sent.partition)] = sent.offset + 1
        finally:
            await producer.stop()

    async def committed(self, group: str) -> dict[tuple[str, int], int]:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers, group_id=group, enable_auto_commit=False
        )
        await consumer.start()
        try:
            return {key: await consumer.committed(TopicPartition(*key)) or 0 for key in self.ends}
        finally:
            await consumer.stop()


@contextlib.asynccontextmanager
async def running(sink: SqlSink):
    task = asyncio.create_task(sink.run())
    try:
        yield sink
    finally:
        await sink.stop()
        await asyncio.wait_for(task, 30)


def month_of_faults(customers: int, faults: int):
    for c in range(customers):
        customer = f"C-{c}"
        yield event(
            "customer.registered",
            customer,
            "08:00",
            customer=customer,
            tier=("diamond", "gold", "public")[c % 3],
        )
        for f in range(faults):
            fault_id = f"F-{c}-{f}"
            yield fault(fault_id, "reported", f"09:{f:02d}", customer=customer)
            yield fault(fault_id, "restored", f"10:{f:02d}", customer=customer)


@pytest.mark.broker
async def test_the_sink_stores_every_event_once_and_commits_after_the_database(
    kafka_bootstrap, reporting_db_url
):
    desk = Desk(kafka_bootstrap)
    await ensure_topics(desk.settings)
    events = list(month_of_faults(12, 5))
    await desk.publish(events)
    engine = open_engine(reporting_db_url)
    upgrade(engine)
    writer = SinkWriter(engine, RULES, f"{desk.settings.app_id}-sink")
    sink = SqlSink(
        writer,
        desk.settings.bootstrap_servers,
        [desk.settings.events_topic, desk.settings.sla_topic],
        max_records=25,
    )
    async with running(sink):
        await sink.wait_until_stored(desk.ends, timeout=60)
        await desk.publish(events[:30])  # a producer re-sending what it already sent
        await sink.wait_until_stored(desk.ends, timeout=60)
        assert await sink.lag() == {
            f"{t}:{p}": 0 for t in (desk.settings.events_topic, desk.settings.sla_topic) for p in range(4)
        }
    assert count(engine, EventRecord) == len(events)
    assert count(engine, Item) == 60 and count(engine, SlaOutcome, SlaOutcome.metric == "restore") == 60
    assert sink.status.totals["duplicates"] == 30
    assert await desk.committed(writer.group_id) == desk.ends
    with engine.connect() as conn:
        positions = dict(
            conn.execute(
                select(SinkPosition.partition, SinkPosition.next_offset).where(
                    SinkPosition.topic == desk.settings.events_topic
                )
            ).all()
        )
    assert {(desk.settings.events_topic, p): o for p, o in positions.items()} == desk.ends
    engine.dispose()


class Outage:
    """A TCP proxy in front of PostgreSQL that can be cut and restored: a database outage."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.server: asyncio.Server | None = None
        self.port = 0
        self.links: set[asyncio.StreamWriter] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def cut(self) -> None:
        self.server.close()
        await self.server.wait_closed()
        for writer in list(self.links):
            writer.transport.abort()

    async def _link(self, reader, writer) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.links.update((writer, upstream_writer))

        async def pipe(src, dst):
            with contextlib.suppress(ConnectionError, OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()
            self.links.discard(dst)

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@pytest.mark.broker
@pytest.mark.postgres
async def test_while_the_database_is_down_the_sink_waits_and_then_catches_up_losing_nothing(
    kafka_bootstrap, fresh_postgres
):
    desk = Desk(kafka_bootstrap)
    await ensure_topics(desk.settings)
    direct = open_engine(fresh_postgres)
    upgrade(direct)
    outage = Outage(direct.url.port)
    await outage.up()
    through_proxy = open_engine(fresh_postgres.replace(f":{direct.url.port}/", f":{outage.port}/"))
    writer = SinkWriter(through_proxy, RULES, f"{desk.settings.app_id}-sink")
    sink = SqlSink(
        writer,
        desk.settings.bootstrap_servers,
        [desk.settings.events_topic],
        max_records=20,
        backoff=(0.05, 0.5),
    )
    events = list(month_of_faults(8, 4))
    async with running(sink):
        await desk.publish(events[:40])
        await sink.wait_until_stored(desk.ends, timeout=60)
        stored_before = dict(desk.ends)
        await outage.cut()
        await desk.publish(events[40:])
        await sink.wait_for(lambda status: status.retries >= 3, timeout=60)
        assert sink.status.state == "retrying" and "Error" in sink.status.last_error
        assert sink.status.to_dict()["retrying_seconds"] >= 0
        assert await desk.committed(writer.group_id) == {key: stored_before.get(key, 0) for key in desk.ends}
        await outage.up()
        await sink.wait_until_stored(desk.ends, timeout=60)
        assert sink.status.state == "running" and sink.status.retrying_seconds is None
    assert count(direct, EventRecord) == len(events)
    assert count(direct, Item) == 32 and count(direct, SlaOutcome, SlaOutcome.metric == "restore") == 32
    assert await desk.committed(writer.group_id) == desk.ends
    through_proxy.dispose()
    direct.dispose()
