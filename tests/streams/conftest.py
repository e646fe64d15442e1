"""Fixtures for the stream agents under faust's test context (memory store, no broker)."""

import pytest
from faust.types import TP

from streams.app import build_streams
from streams.partitioning import murmur2_partition
from streams.settings import Settings

PARTITIONS = 4


class RecordingTopic:
    """Stands in for an outbound topic: keeps what was sent."""

    def __init__(self):
        self.sent = []

    async def send(self, **kwargs):
        self.sent.append(kwargs)


@pytest.fixture
def streams():
    return unstarted_streams()


SECRET = "a desk secret of the agent tests, 32+ characters"


def unstarted_streams(**settings):
    """keydesk's agents on faust's memory store, their outbound topics recording."""
    built = build_streams(
        Settings(kafka="unused:9092", partitions=PARTITIONS, secret=SECRET, **settings),
        broker="kafka://unused:9092",
    )
    built.app.finalize()
    built.app.conf.store = "memory://"
    built.app.flow_control.resume()
    built.processor.dead_letters = RecordingTopic()
    built.processor.events = RecordingTopic()
    # The table's changelog asks the (unstarted) producer for Kafka's partition.
    built.app.producer.key_partition = lambda topic, key: TP(topic, murmur2_partition(key, PARTITIONS))
    return built


async def put(agent, raw: bytes, key: bytes | None, partition: int | None = None, headers=None):
    if partition is None:
        partition = murmur2_partition(key, PARTITIONS)
    await agent.put(
        value=raw, key=key, partition=partition, headers=headers, key_serializer="raw", value_serializer="raw"
    )
