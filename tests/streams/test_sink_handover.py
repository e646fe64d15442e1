"""A sink handed a partition another sink brought to its end reports no lag for it."""

from types import SimpleNamespace

from aiokafka import TopicPartition

from streams.sql_sink import SqlSink

EVENTS = "keydesk.events"


class Consumer:
    """What the sink asks its consumer during a handover: seek, assignment, end offsets."""

    def __init__(self, ends):
        self.ends = ends
        self.sought = {}

    def seek(self, tp, offset):
        self.sought[tp] = offset

    def assignment(self):
        return set(self.ends)

    async def end_offsets(self, tps):
        return {tp: self.ends[tp] for tp in tps}

    async def committed(self, tp):
        return 0


async def test_a_partition_taken_over_at_its_end_has_no_lag():
    """The database is at the end (the other sink wrote it all): lag 0, not a stale figure.

    A fault test saw the sink report 99 records of lag for good: its positions
    were those of an earlier ownership of the partitions, and nothing new came
    to be stored that would have moved them.
    """
    tp = TopicPartition(EVENTS, 1)
    writer = SimpleNamespace(group_id="g", positions=lambda topic: {1: 734})
    sink = SqlSink(writer, ["127.0.0.1:9"], [EVENTS])
    sink._consumer = Consumer({tp: 734})
    sink.status.positions[f"{EVENTS}:1"] = 714  # from when it owned it before
    await sink.on_partitions_revoked({tp})
    await sink.on_partitions_assigned({tp})
    assert sink._consumer.sought == {tp: 734}
    assert await sink.lag() == {f"{EVENTS}:1": 0}
