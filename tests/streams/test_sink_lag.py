"""The sink's lag names only partitions it still holds, whatever a rebalance does meanwhile."""

from types import SimpleNamespace

from aiokafka import TopicPartition

from streams.sql_sink import SqlSink

EVENTS_2, EVENTS_3 = TopicPartition("kd.events", 2), TopicPartition("kd.events", 3)


class RebalancingConsumer:
    """Holds events:2 and :3; asking for the end offsets, it loses :3 to a rebalance."""

    def __init__(self, sink):
        self.sink, self.held = sink, {EVENTS_2, EVENTS_3}

    def assignment(self):
        return set(self.held)

    async def end_offsets(self, partitions):
        self.held.discard(EVENTS_3)
        await self.sink.on_partitions_revoked({EVENTS_3})
        return {tp: 10 for tp in partitions}

    async def committed(self, tp):
        return 6


async def test_a_partition_revoked_while_the_lag_is_measured_is_not_reported_behind():
    """Found by the rebalance fault test: 4 behind on a partition given up, for good."""
    sink = SqlSink(SimpleNamespace(group_id="kd-app-sql-sink"), ["unused:9092"], ["kd.events"])
    sink._consumer = RebalancingConsumer(sink)
    assert await sink.lag() == {"kd.events:2": 4}
    assert sink.status.to_dict()["lag_total"] == 4
