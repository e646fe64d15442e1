"""The one way keydesk puts a record on a customer's home partition and knows the broker has it.

Every event of a customer, its view's table records and its SLA steps live on
one partition, the one Kafka's default partitioner picks for the customer id
(``streams/partitioning.py``).  Whoever writes for a customer (the HTTP API's
writes and acknowledgements, ``keydesk up``'s samples and demo, ``keydesk
publish``, the processor forwarding a misplaced event home, the SLA timers'
steps) goes through a :class:`HomePublisher`, so the key, the partition and the
wait for the broker's acknowledgement are decided here once instead of at every
call site.

No faust import: the topic is anything with faust's ``Topic.send`` signature,
so the edges, the processor and the tests share this without a broker; outside
a worker (the CLI) a plain Kafka producer's topic is one through
:class:`ProducerTopic`.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any, Protocol

from streams.desk_signature import signature_headers
from streams.partitioning import home_partition


class SendsRecords(Protocol):
    """A topic as faust's ``Topic.send``: hands a record to the producer, returns its future."""

    async def send(
        self,
        *,
        key: Any,
        value: Any,
        partition: int | None = ...,
        headers: Any = ...,
        key_serializer: Any = ...,
        value_serializer: Any = ...,
    ) -> Awaitable[Any]: ...


class KafkaProducer(Protocol):
    """What :class:`ProducerTopic` uses of a plain Kafka producer (aiokafka's ``AIOKafkaProducer``)."""

    async def send(
        self, topic: str, value: Any = ..., key: Any = ..., partition: Any = ..., *, headers: Any = ...
    ) -> Awaitable[Any]: ...


class ProducerTopic:
    """One topic of a plain Kafka producer, as :class:`SendsRecords` (for publishers outside a worker).

    Records are bytes already: only the ``raw`` serializers are taken.
    """

    def __init__(self, producer: KafkaProducer, topic: str) -> None:
        self.producer = producer
        self.topic = topic

    async def send(
        self,
        *,
        key: Any,
        value: Any,
        partition: int | None = None,
        headers: Any = None,
        key_serializer: Any = "raw",
        value_serializer: Any = "raw",
    ) -> Awaitable[Any]:
        if key_serializer != "raw" or value_serializer != "raw":
            raise ValueError("a producer topic sends bytes: raw serializers only")
        return await self.producer.send(self.topic, value, key, partition, headers=headers)


class HomePublisher:
    """Sends records keyed and partitioned to their customer's home partition.

    ``secret``: the desk's (``streams/desk_signature.py``); what only keydesk may
    write (a manager's acknowledgement) is published ``signed`` with it.
    """

    def __init__(self, topic: SendsRecords, partitions: int, *, secret: bytes | None = None) -> None:
        self.topic = topic
        self.partitions = partitions
        self.secret = secret

    def home_partition(self, customer_id: str) -> int:
        return home_partition(customer_id, self.partitions)

    async def enqueue(
        self, customer_id: str, value: bytes, *, headers: Any = None, signed: bool = False
    ) -> Awaitable[Any]:
        """Hand one record to the producer; returns the future of the broker's ack.

        For callers that send many and wait for them together (the timers'
        steps, ``keydesk publish``) or that only need the record on its way (a
        forwarded event, acked with its batch).  ``signed``: as keydesk's own,
        ``value`` signed with the desk's secret (``headers`` then unused).
        """
        if signed:
            if not self.secret:
                raise ValueError("signing needs the desk's secret")
            headers = signature_headers(self.secret, value)
        return await self.topic.send(
            key=customer_id.encode(),
            value=value,
            headers=headers,
            partition=self.home_partition(customer_id),
            key_serializer="raw",
            value_serializer="raw",
        )

    async def publish_bytes(
        self, customer_id: str, value: bytes, *, headers: Any = None, signed: bool = False
    ) -> Any:
        """Send one record and return once the broker has it (its record metadata)."""
        return await (await self.enqueue(customer_id, value, headers=headers, signed=signed))

    async def publish(self, event: Any, *, signed: bool = False) -> Any:
        """Publish ``event``; ``signed``: as keydesk's own, with the desk's signature.

        Returns the broker's record metadata: a 202 means the broker has it,
        not that it sits in a buffer.
        """
        return await self.publish_bytes(event.customer_id, event.to_bytes(), signed=signed)
