"""The live feed's Kafka consumer: outside every consumer group, all partitions, from the end.

One per worker (``handlers/web/live_pages.py`` starts it with the faust app); what
it reads goes to the :class:`~handlers.web.live_feed.LiveHub` as
:func:`~handlers.web.live_feed.decode_change` reads it.  It commits nothing and
belongs to no group, so it takes no partition from the workers' group and no
rebalance stops it; after a failure it starts again at the end and tells the
pages to reload (they may have missed changes meanwhile).  Its security is the
desk's (``streams/kafka_security.client_options``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from handlers.web.live_feed import FETCH_RECORDS, LiveHub, LiveTopics, decode_change

log = structlog.get_logger("keydesk.web.live")


class LiveSource:
    """The one Kafka consumer of a worker's live feed: outside every group, from the end, all partitions."""

    def __init__(
        self,
        hub: LiveHub,
        bootstrap_servers: list[str],
        topics: LiveTopics,
        secret: bytes,
        security: dict[str, Any],
        partitions: int,
    ) -> None:
        self.partitions = partitions
        self.hub = hub
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.secret = secret
        self.security = security
        self._stopping = asyncio.Event()
        self.started = asyncio.Event()  # set once every partition is assigned and at its end

    async def run(self) -> None:
        """Consume until stopped; after a failure, start again from the end and tell the pages to reload."""
        backoff = 0.5
        while not self._stopping.is_set():
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("live.consumer_failed", retry_in=backoff, exc_info=True)
                await self.hub.resync()
                try:
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, 10.0)

    async def stop(self) -> None:
        self._stopping.set()

    async def _consume(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            client_id="keydesk-live-feed",
            **self.security,
        )
        await consumer.start()
        try:
            while True:  # the changelog topic appears when the worker's tables start
                known = await consumer.topics()
                if all(t in known for t in self.topics.all) or self._stopping.is_set():
                    break
                try:
                    await asyncio.wait_for(self._stopping.wait(), 1.0)
                except TimeoutError:
                    pass
            if self._stopping.is_set():
                return
            # every topic of the three has the desk's partitions (the changelog is co-partitioned)
            assigned = [TopicPartition(topic, p) for topic in self.topics.all for p in range(self.partitions)]
            consumer.assign(assigned)
            await consumer.seek_to_end(*assigned)
            for tp in assigned:  # resolve the end now, so that nothing after "started" is missed
                await consumer.position(tp)
            self.started.set()
            log.info("live.consuming", partitions=len(assigned), topics=list(self.topics.all))
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=250, max_records=FETCH_RECORDS)
                changes = []
                for tp, records in batches.items():
                    for record in records:
                        change = decode_change(
                            tp.topic, record.key, record.value, record.headers, self.topics, self.secret
                        )
                        if change is not None:
                            changes.append(change)
                await self.hub.publish(changes)
        finally:
            await consumer.stop()
