"""The one publisher of a customer's records, over a worker's topic or a plain producer's (the CLI's)."""

from __future__ import annotations

import asyncio

import pytest

from streams.desk_signature import is_signed
from streams.partitioning import murmur2_partition
from streams.publisher import HomePublisher, ProducerTopic

SECRET = b"s" * 32


class RecordingProducer:
    """aiokafka's ``send`` as far as a producer topic uses it: records each call, acks at once."""

    def __init__(self) -> None:
        self.sent: list[dict] = []

    async def send(self, topic, value=None, key=None, partition=None, *, headers=None):
        self.sent.append(
            {"topic": topic, "value": value, "key": key, "partition": partition, "headers": headers}
        )
        acked = asyncio.get_running_loop().create_future()
        acked.set_result(("metadata", len(self.sent)))
        return acked


class TestOverAPlainProducer:
    async def test_a_record_goes_keyed_to_its_customers_home_partition_and_is_acked(self):
        """The same key and partition a worker's publisher picks, on the producer's named topic."""
        producer = RecordingProducer()
        publisher = HomePublisher(ProducerTopic(producer, "kd.events"), 12)
        assert await publisher.publish_bytes("C-1", b"{}") == ("metadata", 1)
        assert producer.sent == [
            {
                "topic": "kd.events",
                "value": b"{}",
                "key": b"C-1",
                "partition": murmur2_partition(b"C-1", 12),
                "headers": None,
            }
        ]

    async def test_a_signed_record_carries_the_desks_signature_of_its_own_bytes(self):
        producer = RecordingProducer()
        publisher = HomePublisher(ProducerTopic(producer, "kd.events"), 4, secret=SECRET)
        acked = await publisher.enqueue("C-1", b'{"a": 1}', signed=True)
        await acked
        headers = producer.sent[0]["headers"]
        assert is_signed(SECRET, b'{"a": 1}', headers)
        assert not is_signed(SECRET, b'{"a": 2}', headers)

    async def test_signing_without_the_secret_is_refused_not_sent_unsigned(self):
        producer = RecordingProducer()
        with pytest.raises(ValueError, match="secret"):
            await HomePublisher(ProducerTopic(producer, "t"), 4).enqueue("C-1", b"{}", signed=True)
        assert producer.sent == []

    async def test_a_producer_topic_sends_bytes_only(self):
        topic = ProducerTopic(RecordingProducer(), "t")
        with pytest.raises(ValueError, match="raw"):
            await topic.send(key=b"k", value={"a": 1}, value_serializer="json")
