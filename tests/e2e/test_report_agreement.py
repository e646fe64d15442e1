"""Reports agree with the log: a month of events through broker, worker and sink into
PostgreSQL, and every report figure checked against a recomputation from the raw file.

The production path: `keydesk publish` → Kafka → the worker (replay clock, so its
SLA steps are a function of the events) → its SQL sink → PostgreSQL → the SQL
report.  The other path: `tests/report_oracle.py` reads the same file and
computes the figures in plain Python, sharing only the domain's lifecycle tables
and the SLA engine (itself checked against a brute-force calculator).
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

from handlers.local.postgres_server import create_database, drop_database
from handlers.reports.queries import compliance_report
from schemas.envelope import Event, decode_event
from schemas.reporting_db import open_engine
from schemas.reporting_tables import EventRecord
from sla_rules import load_rules
from tests.e2e.conftest import PARTITIONS, http, new_desk
from tests.month_of_events import generate_month, read_events, write_events
from tests.report_oracle import expected_report, measure_items

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

ZONE = ZoneInfo("Asia/Shanghai")
MONTH_START = datetime(2026, 11, 1, tzinfo=ZONE)
MONTH_END = datetime(2026, 12, 1, tzinfo=ZONE)
GROUPINGS = [
    (),
    ("tier",),
    ("customer",),
    ("priority", "kind"),
    ("region",),
    ("account_manager",),
    ("policy",),
    ("tier", "kind"),
]


def differences(actual, expected, path="report") -> list[str]:
    """Where two reports differ: exact for everything but floats (1e-9 relative)."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = [f"{path}: keys {sorted(set(actual) ^ set(expected))}"] if set(actual) != set(expected) else []
        for key in expected:
            if key in actual:
                out += differences(actual[key], expected[key], f"{path}.{key}")
        return out
    if isinstance(expected, list) and isinstance(actual, list):
        if len(actual) != len(expected):
            return [f"{path}: {len(actual)} entries, expected {len(expected)}"]
        return [
            d for n, (a, e) in enumerate(zip(actual, expected)) for d in differences(a, e, f"{path}[{n}]")
        ]
    if isinstance(expected, float) or isinstance(actual, float):
        if (
            actual is not None
            and expected is not None
            and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-6)
        ):
            return []
    elif actual == expected:
        return []
    return [f"{path}: {actual!r}, expected {expected!r}"]


@pytest.fixture(scope="module")
def month(tmp_path_factory):
    """The month as a raw event file, read back the way the oracle reads it."""
    path = write_events(
        generate_month(customers=300, month_start=MONTH_START, seed=2026),
        tmp_path_factory.mktemp("month") / "month.jsonl",
    )
    return path, read_events(path)


@pytest.fixture(scope="module")
def fed_database(month, kafka_bootstrap, postgres_url, tmp_path_factory):
    """The month published to a fresh desk whose worker feeds a fresh PostgreSQL database.

    Yields the database URL, the raw events, and the SLA steps the worker's timers
    published, read back from the SLA topic by a plain consumer.
    """
    url = create_database(postgres_url, "agreement")
    path, events = month
    desk = new_desk(
        kafka_bootstrap, tmp_path_factory.mktemp("agreement"), KEYDESK_CLOCK="replay", KEYDESK_DB=url
    )
    worker = desk.start_worker()
    try:
        desk.wait_until_partitions_split()
        published = subprocess.run(
            [sys.executable, "-m", "handlers.cli", "publish", str(path)],
            env=desk.env(1),
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert published.returncode == 0, published.stderr
        assert f"sent {len(events)} event(s)" in published.stdout
        steps = asyncio.run(worker_steps(desk, worker))
        wait_for_sink(worker, desk, asyncio.run(end_offsets(desk)))
        yield url, events, steps, desk
    finally:
        desk.stop()
        drop_database(postgres_url, url)


async def end_offsets(desk) -> dict[str, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=desk.bootstrap)
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in (desk.events_topic, desk.sla_topic)
            for p in range(PARTITIONS)
        ]
        return {f"{tp.topic}:{tp.partition}": end for tp, end in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def worker_steps(desk, worker, timeout: float = 900) -> list[Event]:
    """Once the worker has committed every event, the SLA steps it published, in order."""
    ends = await end_offsets(desk)
    group = AIOKafkaConsumer(
        bootstrap_servers=desk.bootstrap, group_id=f"{desk.prefix}-app", enable_auto_commit=False
    )
    await group.start()
    try:
        deadline = time.monotonic() + timeout
        for p in range(PARTITIONS):
            tp = TopicPartition(desk.events_topic, p)
            while (await group.committed(tp) or 0) < ends[f"{tp.topic}:{p}"]:
                if time.monotonic() > deadline or not worker.alive():
                    raise AssertionError(
                        f"worker did not process partition {p}:\n{worker.log_path.read_text()[-4000:]}"
                    )
                await asyncio.sleep(0.5)  # polling the worker's committed offsets
    finally:
        await group.stop()
    ends = await end_offsets(desk)
    reader = AIOKafkaConsumer(bootstrap_servers=desk.bootstrap, enable_auto_commit=False)
    await reader.start()
    steps: list[Event] = []
    try:
        tps = [TopicPartition(desk.sla_topic, p) for p in range(PARTITIONS)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        remaining = {tp for tp in tps if ends[f"{tp.topic}:{tp.partition}"] > 0}
        while remaining:
            for tp, records in (await reader.getmany(timeout_ms=1000)).items():
                steps.extend(decode_event(r.value) for r in records)
                if records[-1].offset + 1 >= ends[f"{tp.topic}:{tp.partition}"]:
                    remaining.discard(tp)
    finally:
        await reader.stop()
    return steps


def wait_for_sink(worker, desk, ends: dict[str, int], timeout: float = 900) -> None:
    """Until the worker's sink has stored every record up to ``ends``."""
    deadline = time.monotonic() + timeout
    while True:
        status, sink = http("GET", f"{worker.url}/api/sink")
        if status == 200 and all(sink["positions"].get(k, 0) >= v for k, v in ends.items()):
            return
        if time.monotonic() > deadline or not worker.alive():
            raise AssertionError(
                f"sink did not catch up with {ends}: {sink}\n{worker.log_path.read_text()[-4000:]}"
            )
        time.sleep(0.5)  # polling the worker's own sink report


def test_every_step_the_worker_published_belongs_to_an_item_and_clock_of_the_month(fed_database):
    """The escalation histories are the worker's steps as published, read off the SLA topic.

    They are history, not a function of the file: a timer fires on the watermark it
    has seen, so which steps a late event pre-empts depends on how the worker
    batched (an in-process replay, ticking after every event, fires a few
    different ones; a revisit clock may warn before a reopen voids it). What
    must hold is that each step is about an item of the month and a clock its
    kind has, and that there are plenty of them.
    """
    _, events, steps, _ = fed_database
    items = {(i.customer_id, i.kind, i.item_id) for i in measure_items(events, load_rules(), MONTH_END)}
    clocks_of = {
        "fault": {"response", "restore", "resolve", "revisit"},
        "ticket": {"response", "resolve", "revisit"},
        "order": {"provision", "acceptance", "revisit"},
    }
    strays = [
        s
        for s in steps
        if (s.customer_id, s.payload["item_kind"], s.entity_id) not in items
        or s.payload["metric"] not in clocks_of[s.payload["item_kind"]]
    ]
    assert strays == []
    assert len(steps) > 10_000


def test_the_month_is_realistic_enough_to_mean_something(month):
    _, events = month
    types = {e.event_type for e in events}
    assert len({e.customer_id for e in events}) >= 300
    assert {
        "fault.reopened",
        "ticket.priority_changed",
        "order.cancelled",
        "ticket.status_changed",
        "fault.status_changed",
    } <= types
    assert len(events) > len({e.event_id for e in events})  # duplicates
    assert any(
        later.occurred_at < earlier.occurred_at and later.customer_id == earlier.customer_id
        for earlier, later in zip(events, events[1:])
    )  # late events


def test_every_event_and_step_is_in_the_audit_log_once(fed_database):
    url, events, steps, desk = fed_database
    engine = open_engine(url)
    with engine.connect() as conn:
        by_topic = dict(
            conn.execute(select(EventRecord.topic, func.count()).group_by(EventRecord.topic)).all()
        )
    engine.dispose()
    # The month's acknowledgements travel on the events topic, in order with their
    # items' other events (keydesk publish sends every line there); the SLA topic
    # holds the timers' steps alone.
    acknowledgements = {e.event_id for e in events if e.kind == "sla"}
    assert acknowledgements
    assert by_topic[desk.events_topic] == len({e.event_id for e in events})
    assert by_topic[desk.sla_topic] == len({s.event_id for s in steps})
    assert not acknowledgements & {s.event_id for s in steps}


@pytest.mark.parametrize("group_by", GROUPINGS, ids=lambda g: ",".join(g) or "all")
def test_every_report_figure_agrees_with_the_recomputation_from_the_raw_file(fed_database, group_by):
    url, events, steps, _ = fed_database
    as_of = MONTH_END + timedelta(days=3)
    engine = open_engine(url)
    actual = compliance_report(
        engine, period_start=MONTH_START, period_end=MONTH_END, as_of=as_of, group_by=group_by, zone=ZONE
    ).to_dict()
    engine.dispose()
    expected = expected_report(
        events,
        load_rules(),
        period_start=MONTH_START,
        period_end=MONTH_END,
        as_of=as_of,
        group_by=group_by,
        zone=ZONE,
        steps=steps,
    )
    assert expected["total"]["items"] > 1000 and expected["breaches"]
    assert differences(orjson.loads(orjson.dumps(actual)), expected) == []


def test_the_cli_report_is_the_same_report(fed_database):
    url, events, steps, desk = fed_database
    as_of = MONTH_END + timedelta(days=3)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "handlers.cli",
            "report",
            "compliance",
            "--from",
            "2026-11-01",
            "--to",
            "2026-12-01",
            "--as-of",
            as_of.isoformat(),
            "--group-by",
            "tier",
            "--format",
            "json",
            "--breaches",
            "0",
        ],
        env=desk.env(1),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    expected = expected_report(
        events,
        load_rules(),
        period_start=MONTH_START,
        period_end=MONTH_END,
        as_of=as_of,
        group_by=("tier",),
        zone=ZONE,
        steps=steps,
    )
    assert differences(orjson.loads(done.stdout), expected) == []
