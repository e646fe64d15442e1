"""A worker folding a backlog through rebalances goes on committing, up to the end of its topic.

Seen in ``bench/restart_recovery.py`` (issue 9): after one rebalance in the middle of
a backlog, one partition's committed offset stood still for the rest of the run
(432,508 of 600,000 events uncommitted at a clean stop, all folded again by the next
worker).  A record the drain loop was handing on when the rebalance began came back
after the recovery's seek to the committed offsets and put the read offset back past
them: the records fetched again below it were dropped as read, never acked in the
new generation, and faust commits nothing past an offset that was not acked.

Here: a backlog published before the worker starts and a steady load on top, a second
worker joining and leaving twice while the first folds them, then every partition's
committed offset must reach the end of the events topic within :data:`COMMIT_WITHIN`
seconds of the load's end.

At this size the race itself is rare: in two runs before the fix (12,000 and 16,000
events, 400 and 3,000 customers) hand-overs outlasted a revocation six times, by 0.07
to 0.42 s, but none outlasted the seek, so both passed; in the benchmark the producer
buffer was thousands deep and the rebalance took 71 s.  This test guards what must
hold; ``tests/streams/test_consumer_drain.py`` is the race itself, made to happen.
"""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from tests.e2e.conftest import PARTITIONS
from tests.faults.harness import publish_raw
from tests.faults.traffic import Traffic

pytestmark = [pytest.mark.broker]

BACKLOG = 12000  # events: the first worker is still folding them when the second joins
CUSTOMERS = 400
LOAD_SECONDS, LOAD_RATE = 40.0, 100.0  # and a steady load on top, over the rebalances
COMMIT_WITHIN = 120.0  # seconds after the load: the backlog and the load fold in well under that


async def committed_and_end(bootstrap: str, group: str, topic: str) -> tuple[dict[int, int], dict[int, int]]:
    """The group's committed offset and the end offset of each partition of ``topic``."""
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)  # no group: joins nothing
    await admin.start()
    await consumer.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group, partitions=partitions)
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
        await admin.close()
    committed = {tp.partition: (meta.offset if meta.offset >= 0 else 0) for tp, meta in offsets.items()}
    return {p: committed.get(p, 0) for p in range(PARTITIONS)}, {tp.partition: o for tp, o in ends.items()}


def test_a_worker_folding_a_backlog_through_rebalances_commits_all_of_it(scenario):
    s = scenario
    desk = s.desk
    traffic = Traffic.over(s.rng, CUSTOMERS, tag=f"{desk.prefix[-4:]}b", alerting_every=0)  # not the load's
    events = traffic.registrations() + [traffic.next() for _ in range(BACKLOG)]
    publish_raw(desk.bootstrap, desk.events_topic, [(e.customer_id.encode(), e.to_bytes()) for e in events])
    s.note(f"backlog published: {len(events)} events over {CUSTOMERS} customers")
    (first,) = s.start_workers(1)
    s.start_load(seconds=LOAD_SECONDS, rate=LOAD_RATE, alerting=False)
    for round_ in (1, 2):
        second = desk.start_worker()
        s.note(f"round {round_}: a second worker joins ({second.url})")
        s.wait_until_assigned()
        second.stop()
        s.note(f"round {round_}: the second worker left (SIGTERM, exit {second.process.returncode})")
        s.wait_until_assigned()
    s.producer.join()
    s.note(f"load over: {len(s.producer.acked)} records acknowledged")
    deadline = time.monotonic() + COMMIT_WITHIN
    group, topic = f"{desk.prefix}-app", desk.events_topic
    while True:
        committed, ends = asyncio.run(committed_and_end(desk.bootstrap, group, topic))
        if committed == ends or time.monotonic() > deadline:
            break
        time.sleep(1.0)  # polling the broker's committed offsets, not a synchronisation
    s.note(f"committed {committed}, end offsets {ends}")
    behind = {p: ends[p] - committed[p] for p in ends if committed[p] != ends[p]}
    assert not behind, (
        f"{sum(behind.values())} events of {sum(ends.values())} still uncommitted "
        f"{COMMIT_WITHIN:.0f} s after the load ended, per partition {behind}\n"
        + "\n".join([f"seed {s.seed}", *s.timeline, *s.worker_errors()])
    )
    assert first.alive(), "\n".join(s.timeline + s.worker_errors())
