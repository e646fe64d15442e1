"""Creating keydesk's topics before a worker joins its group.

Faust creates its changelog topics but not the topics it reads, and a worker
that joins before its source topic exists is assigned nothing.  An existing
events topic with another partition count than configured is refused: views are
co-partitioned with events, and a silent mismatch would scatter a customer.
"""

from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from streams.kafka_security import client_options
from streams.settings import Settings, SettingsError

# Dead letters are few and each one is somebody's lost fault report: keep them.
DEAD_LETTER_CONFIG = {"retention.ms": "-1"}
#: The rules' revisions: one partition (one order for every reader), compacted with a key per
#: revision, so every revision stays (``streams/rules_revisions.py``).
RULES_CONFIG = {"cleanup.policy": "compact"}


async def ensure_topics(settings: Settings, timeout: float = 30.0) -> None:
    """Create the events, SLA, dead-letter, alerts-failed and rules topics if missing; check partitions."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        request_timeout_ms=int(timeout * 1000),
        **client_options(settings),
    )
    await admin.start()
    try:
        wanted = {
            settings.events_topic: {},
            settings.sla_topic: {},
            settings.dead_letter_topic: DEAD_LETTER_CONFIG,
            settings.alerts_failed_topic: DEAD_LETTER_CONFIG,
        }
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, settings.partitions, settings.replication, topic_configs=cfg)
            for name, cfg in wanted.items()
            if name not in existing
        ]
        if settings.rules_topic not in existing:
            missing.append(
                NewTopic(settings.rules_topic, 1, settings.replication, topic_configs=RULES_CONFIG)
            )
        if missing:
            try:
                await admin.create_topics(missing, timeout_ms=int(timeout * 1000))
            except TopicAlreadyExistsError:
                pass  # another worker won the race
        for described in await admin.describe_topics([settings.events_topic, settings.sla_topic]):
            count = len(described["partitions"])
            if count and count != settings.partitions:
                raise SettingsError(
                    f"topic {described['topic']} has {count} partitions but "
                    f"KEYDESK_PARTITIONS={settings.partitions}; they must be co-partitioned"
                )
        for described in await admin.describe_topics([settings.rules_topic]):
            count = len(described["partitions"])
            if count and count != 1:
                raise SettingsError(
                    f"topic {described['topic']} has {count} partitions; the rules' revisions need one "
                    "(one order for every worker)"
                )
    finally:
        await admin.close()


def ensure_topics_sync(settings: Settings) -> None:
    asyncio.run(ensure_topics(settings))
