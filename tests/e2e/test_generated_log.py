"""Steps are a function of the event log alone (issue 10): a desk's export through Kafka.

The generated log (``tests/generated_log.py``: minute-precision instants,
recorded_at = occurred_at, random ids, closes without resolution, reassignments
after resolution, resolve-and-reopen in one minute, short-lived breaches, a
priority raised past its deadline) goes `keydesk publish` → Kafka → replay-clock
workers → their SQL sink → PostgreSQL, once with one worker and its own batching,
once with two workers folding at most a few events per batch.  Each time:

* the step events published on the SLA topic are exactly those `keydesk replay`
  computes from the same file (ids, instants, ``caused_by``, ``detected_at``);
* every compliance report figure from the database is the oracle's
  (``tests/report_oracle.py``), computed from the file and the replay's steps;
* the workers' views hold every item in the state the replay's views do.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import select

from handlers.local.postgres_server import create_database, drop_database
from handlers.reports.queries import compliance_report
from schemas.envelope import Event, decode_event
from schemas.reporting_db import open_engine
from schemas.reporting_tables import SinkPosition
from sla_rules import load_rules
from streams.customer_view import ITEM_KINDS
from streams.replay import ReplayResult, replay
from tests.e2e.conftest import PARTITIONS, Desk, Worker, free_port, new_desk
from tests.e2e.test_report_agreement import differences
from tests.generated_log import generate_log
from tests.month_of_events import read_events, write_events
from tests.report_oracle import expected_report

pytestmark = [pytest.mark.broker, pytest.mark.postgres]

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 2, tzinfo=ZONE)  # a Monday
DAYS = 7
END = START + timedelta(days=DAYS)
AS_OF = END + timedelta(days=3)
SEED = 1  # the log tests/test_generated_log.py describes
GROUPINGS = [(), ("tier",), ("customer",), ("priority", "kind"), ("policy",)]
CAUGHT_UP_TIMEOUT = 600.0
#: (workers, at most this many events per batch: None = the worker's own batching)
RUNS = {"one worker": (1, None), "two workers, batches of 7": (2, 7)}

# A worker whose batches hold at most argv[1] events (events topic and SLA topic):
# other batch cuts than its own, for the same log.
_SMALL_BATCHES = """\
import sys
import streams.app, streams.sla_agents
from handlers.cli import main
assert hasattr(streams.app, "BATCH_MAX") and hasattr(streams.sla_agents, "SLA_BATCH_MAX")
streams.app.BATCH_MAX = streams.sla_agents.SLA_BATCH_MAX = int(sys.argv[1])
sys.exit(main(["worker"]))
"""


@dataclass
class Run:
    """What one deployment made of the log: its steps, its database, its views."""

    events: list[Event]
    steps: list[Event]  # every timer step on the SLA topic, copies included
    database: str
    views: dict[str, dict]  # customer id -> the view a worker serves
    desk: Desk


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> tuple[Path, list[Event]]:
    """The generated log as a file, read back the way the oracle reads it."""
    path = write_events(
        generate_log(start=START, days=DAYS, seed=SEED), tmp_path_factory.mktemp("generated") / "log.jsonl"
    )
    return path, read_events(path)


@pytest.fixture(scope="module")
def replayed(log) -> ReplayResult:
    """`keydesk replay`'s computation on the same file."""
    path, _ = log
    with open(path, "rb") as lines:
        result = replay(lines, load_rules(), partitions=PARTITIONS)
    assert result.refused == []
    return result


@pytest.fixture(scope="module", params=list(RUNS))
def run(request, log, kafka_bootstrap, postgres_url, tmp_path_factory):
    """The log published to a fresh desk whose replay-clock workers feed a fresh database."""
    workers, batch = RUNS[request.param]
    path, events = log
    url = create_database(postgres_url, "generated")
    desk = new_desk(
        kafka_bootstrap, tmp_path_factory.mktemp("generated-desk"), KEYDESK_CLOCK="replay", KEYDESK_DB=url
    )
    try:
        for _ in range(workers):
            start_worker(desk, batch)
        desk.wait_until_partitions_split()
        published = subprocess.run(
            [sys.executable, "-m", "handlers.cli", "publish", str(path)],
            env=desk.env(1),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert published.returncode == 0, published.stderr
        assert f"sent {len(events)} event(s)" in published.stdout
        ends = asyncio.run(caught_up(desk))
        wait_for_sink(desk, url, ends)
        steps = asyncio.run(read_topic(desk, desk.sla_topic, ends))  # the timers' alone
        views = {}
        for customer_id in sorted({e.customer_id for e in events}):
            status, view = desk.workers[0].view(customer_id)
            assert status == 200, (customer_id, view)
            views[customer_id] = view
        yield Run(events, steps, url, views, desk)
    finally:
        desk.stop()
        drop_database(postgres_url, url)


def start_worker(desk: Desk, batch: int | None) -> Worker:
    """A `keydesk worker` of ``desk``, folding at most ``batch`` events at a time if given."""
    if batch is None:
        return desk.start_worker()
    desk.provision()
    port = free_port()
    log_path = desk.tmp / f"worker-{port}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _SMALL_BATCHES, str(batch)],
            env=desk.env(port),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).parents[2],
        )
    worker = Worker(url=f"http://127.0.0.1:{port}", process=process, log_path=log_path)
    desk.workers.append(worker)
    return worker


# -- waiting for the workers and the sink ---------------------------------------------


def _partitions(desk: Desk) -> list[TopicPartition]:
    return [
        TopicPartition(topic, p) for topic in (desk.events_topic, desk.sla_topic) for p in range(PARTITIONS)
    ]


async def end_offsets(desk: Desk) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=desk.bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(_partitions(desk)))
    finally:
        await consumer.stop()


async def committed(desk: Desk) -> dict[TopicPartition, int]:
    """The workers' committed offsets (their consumer group is the app id)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=desk.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(f"{desk.prefix}-app", partitions=_partitions(desk))
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items()}


async def caught_up(desk: Desk, timeout: float = CAUGHT_UP_TIMEOUT) -> dict[TopicPartition, int]:
    """Until the workers have committed every record of both topics, and no step is added.

    The SLA topic grows while the workers fold (each batch may publish steps), so
    the end offsets must be the same at two polls with everything committed.
    """
    deadline = time.monotonic() + timeout
    previous: dict[TopicPartition, int] | None = None
    while True:
        ends = await end_offsets(desk)
        done = await committed(desk)
        if ends == previous and all(done.get(tp, -1) >= end for tp, end in ends.items() if end > 0):
            return ends
        previous = ends
        dead = [w for w in desk.workers if not w.alive()]
        if dead or time.monotonic() > deadline:
            logs = "\n".join(w.log_path.read_text()[-3000:] for w in desk.workers)
            raise AssertionError(
                f"workers did not catch up: ends {ends}, committed {done}, {len(dead)} dead\n{logs}"
            )
        await asyncio.sleep(1.0)  # polling the group's commits (committed every second)


def wait_for_sink(
    desk: Desk, url: str, ends: dict[TopicPartition, int], timeout: float = CAUGHT_UP_TIMEOUT
) -> None:
    """Until the sinks' positions in the database reach ``ends`` on every partition."""
    engine = open_engine(url)
    group = f"{desk.prefix}-app-sql-sink"
    deadline = time.monotonic() + timeout
    try:
        while True:
            with engine.connect() as conn:
                rows = conn.execute(
                    select(SinkPosition.topic, SinkPosition.partition, SinkPosition.next_offset).where(
                        SinkPosition.group_id == group
                    )
                ).all()
            stored = {TopicPartition(t, p): n for t, p, n in rows}
            behind = {
                f"{tp.topic}:{tp.partition}": (stored.get(tp, 0), end)
                for tp, end in ends.items()
                if stored.get(tp, 0) < end
            }
            if not behind:
                return
            if time.monotonic() > deadline or not all(w.alive() for w in desk.workers):
                raise AssertionError(f"sink behind (stored, end): {behind}")
            time.sleep(0.5)  # polling the positions the sink commits with its rows
    finally:
        engine.dispose()


async def read_topic(desk: Desk, topic: str, ends: dict[TopicPartition, int]) -> list[Event]:
    """Every record of ``topic`` up to ``ends``, decoded."""
    wanted = {tp: end for tp, end in ends.items() if tp.topic == topic and end > 0}
    reader = AIOKafkaConsumer(bootstrap_servers=desk.bootstrap, enable_auto_commit=False)
    await reader.start()
    out: list[Event] = []
    try:
        if not wanted:
            return out
        reader.assign(list(wanted))
        await reader.seek_to_beginning(*wanted)
        while wanted:
            for tp, records in (await reader.getmany(timeout_ms=1000)).items():
                out.extend(decode_event(r.value) for r in records if r.offset < wanted.get(tp, 0))
                if tp in wanted and records[-1].offset + 1 >= wanted[tp]:
                    del wanted[tp]
    finally:
        await reader.stop()
    return out


# -- comparing ------------------------------------------------------------------------


def step_key(step: Event) -> tuple:
    """What must be the same in both: the step, its instant, its cause, when it was known."""
    p = step.payload
    return (
        step.event_type,
        step.customer_id,
        p["item_kind"],
        step.entity_id,
        p["metric"],
        p["cycle"],
        step.occurred_at.isoformat(),
        p.get("caused_by"),
        p.get("detected_at"),
    )


def _describe(keys: list[tuple]) -> str:
    by = Counter(f"{k[0]} {k[2]}/{k[4]}" for k in keys)
    return ", ".join(f"{n} {what}" for what, n in by.most_common())


def step_disagreement(published: list[Event], replayed: list[Event]) -> str | None:
    """Where the published steps and the replay's differ, in figures; None if they don't."""
    kafka: dict[str, set[tuple]] = {}
    for step in published:
        kafka.setdefault(step.event_id, set()).add(step_key(step))
    expected = {step.event_id: step_key(step) for step in replayed}
    only_kafka = sorted(k for i, keys in kafka.items() if i not in expected for k in keys)
    only_replay = sorted(k for i, k in expected.items() if i not in kafka)
    changed = sorted(
        (i, expected[i], sorted(kafka[i], key=repr))
        for i in kafka
        if i in expected and kafka[i] != {expected[i]}
    )
    copies = sum(1 for s in published) - len(kafka)
    if not (only_kafka or only_replay or changed):
        return None
    lines = [
        f"{len(kafka)} distinct steps published ({copies} extra copies), "
        f"{len(expected)} computed by the replay: {len(only_kafka)} only in Kafka, "
        f"{len(only_replay)} only in the replay, {len(changed)} with the same id but "
        f"other content"
    ]
    if only_kafka:
        lines.append(f"only in Kafka: {_describe(only_kafka)}; e.g. {only_kafka[:2]}")
    if only_replay:
        lines.append(f"only in the replay: {_describe(only_replay)}; e.g. {only_replay[:2]}")
    if changed:
        lines.append(
            f"different: {_describe([e for _, e, _ in changed])}; e.g. "
            + "; ".join(f"{i}: replay {e} kafka {k}" for i, e, k in changed[:2])
        )
    return "\n".join(lines)


def item_states(view: dict) -> dict[tuple[str, str], tuple]:
    """(kind, id) -> (state, open or closed list, why it was closed unresolved) of a view."""
    out = {}
    for kind in ITEM_KINDS:
        for item_id, item in view["open"][kind].items():
            out[(kind, item_id)] = (item["state"], "open", item["attributes"].get("closed_unresolved"))
    for item in view["recent_closed"]:
        out[(item["kind"], item["id"])] = (
            item["state"],
            "closed",
            item["attributes"].get("closed_unresolved"),
        )
    return out


# -- the tests --------------------------------------------------------------------------


def test_the_log_has_what_broke_keydesk_on_a_real_log(log, replayed):
    """Shared minutes, random ids, closes without resolution, reopens, raised priorities."""
    _, events = log
    assert 2_000 <= len(events) <= 10_000
    assert all(e.occurred_at == e.recorded_at and e.occurred_at.second == 0 for e in events)
    unresolved = [e for e in events if e.event_type.endswith(".closed") and "closed_unresolved" in e.payload]
    assert len({e.event_type for e in unresolved}) == 2
    assert sum(e.event_type == "ticket.priority_changed" for e in events) > 10
    assert sum(s.event_type == "sla.breached" for s in replayed.steps) > 50


def test_the_published_steps_are_exactly_the_replays(run, replayed):
    """Same ids, instants, causes and detection instants, whatever the batching and workers."""
    problem = step_disagreement(run.steps, replayed.steps)
    if problem is not None:
        pytest.fail(problem, pytrace=False)


@pytest.mark.parametrize("group_by", GROUPINGS, ids=lambda g: ",".join(g) or "all")
def test_every_report_figure_is_the_oracles(run, replayed, group_by):
    """The SQL report of the database the sink fed, against the recomputation from the file."""
    engine = open_engine(run.database)
    try:
        actual = compliance_report(
            engine, period_start=START, period_end=END, as_of=AS_OF, group_by=group_by, zone=ZONE
        ).to_dict()
    finally:
        engine.dispose()
    expected = expected_report(
        run.events,
        load_rules(),
        period_start=START,
        period_end=END,
        as_of=AS_OF,
        group_by=group_by,
        zone=ZONE,
        steps=replayed.steps,
    )
    assert expected["total"]["items"] > 300 and expected["breaches"]
    found = differences(orjson.loads(orjson.dumps(actual)), expected)
    if found:
        in_steps = [d for d in found if re.match(r"report\.breaches\[\d+\]\.steps", d)]
        pytest.fail(
            f"{len(found)} figures differ (database, oracle): {len(in_steps)} in the "
            f"breaches' step histories (the published steps: see the step test), "
            f"{len(found) - len(in_steps)} elsewhere; e.g.:\n"
            + "\n".join([d for d in found if d not in in_steps][:15] + in_steps[:10]),
            pytrace=False,
        )


def test_the_workers_views_hold_every_item_in_the_replays_state(run, replayed):
    """Per customer, each item's state (and open/closed, closed-unresolved reason) agrees."""
    wrong = []
    for customer_id, view in run.views.items():
        mine = item_states(view)
        theirs = item_states(replayed.views[customer_id])
        wrong += [
            (customer_id, key, mine.get(key), theirs.get(key))
            for key in sorted(set(mine) | set(theirs))
            if mine.get(key) != theirs.get(key)
        ]
    assert set(run.views) == set(replayed.views)
    if wrong:
        pytest.fail(
            f"{len(wrong)} items differ (customer, item, worker, replay): {wrong[:10]}", pytrace=False
        )
