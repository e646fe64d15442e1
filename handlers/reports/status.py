"""What the reporting database holds and how far the sink is behind Kafka.

The lag is measured from the database's own record of where the sink stopped
(``sink_positions``) against the topics' end offsets, so it is true whichever
process runs the sink, and even when none does.
"""

from __future__ import annotations

from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from sqlalchemy import Engine, func, select

from schemas.reporting_db import current_revision, head_revision
from schemas.reporting_tables import REPORTING_TABLES, SinkPosition
from streams.kafka_security import client_options
from streams.settings import Settings


async def database_status(engine: Engine, settings: Settings) -> dict[str, Any]:
    revision = current_revision(engine)
    status: dict[str, Any] = {
        "database": engine.url.render_as_string(),
        "revision": revision,
        "head": head_revision(),
    }
    if revision is None:
        status["problem"] = "empty database: run `keydesk db upgrade` (or start the sink)"
        return status
    with engine.connect() as conn:
        status["rows"] = {
            name: conn.execute(select(func.count()).select_from(table)).scalar_one()
            for name, table in sorted(REPORTING_TABLES.tables.items())
        }
        positions = {
            (t, p): o
            for t, p, o in conn.execute(
                select(SinkPosition.topic, SinkPosition.partition, SinkPosition.next_offset).where(
                    SinkPosition.group_id == settings.sink_group
                )
            ).all()
        }
    if settings.kafka:
        status["sink_lag"] = await _lag(settings, positions)
    return status


async def _lag(settings: Settings, positions: dict[tuple[str, int], int]) -> dict[str, Any]:
    topics = [settings.events_topic, settings.sla_topic]
    security = client_options(settings)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=10_000, **security
    )
    await admin.start()
    try:
        partitions = [
            TopicPartition(d["topic"], p["partition"])
            for d in await admin.describe_topics(topics)
            for p in d["partitions"]
        ]
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers, request_timeout_ms=10_000, **security
    )
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions) if partitions else {}
    finally:
        await consumer.stop()
    per_partition = {
        f"{tp.topic}:{tp.partition}": end - positions.get((tp.topic, tp.partition), 0)
        for tp, end in sorted(ends.items())
    }
    return {"total": sum(per_partition.values()), "partitions": per_partition}
