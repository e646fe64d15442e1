"""Faust glue for SLA timers: the SLA topic, its fold agent, the live tick, rebalances.

* ``<prefix>.sla`` carries the step events the timers publish (and managers'
  acknowledgements), keyed by customer and co-partitioned with the events topic,
  so the same worker folds a customer's events and its SLA events.
* Live mode ticks the deadline indexes on the wall clock several times a second;
  replay mode ticks after each folded batch on the partitions' watermarks
  (see :class:`streams.sla_timers.SlaTimers`).
* After each rebalance (and table recovery) the indexes are rebuilt from the
  views of the partitions now owned; revoked partitions' indexes are dropped.
"""

from __future__ import annotations

from datetime import UTC, datetime

import faust
import structlog

from streams.event_processor import EventProcessor
from streams.settings import Settings

LIVE_TICK_SECONDS = 0.2  # alerts leave within this much of their due instant
log = structlog.get_logger("keydesk.sla_timers")


def register_sla_agents(app: faust.App, settings: Settings,
                        processor: EventProcessor) -> faust.TopicT:
    """Declare the SLA topic and its agent, the live tick and the rebalance hooks."""
    sla_topic = app.topic(settings.sla_topic, key_type=bytes, value_type=bytes,
                          key_serializer="raw", value_serializer="raw",
                          partitions=settings.partitions)
    processor.sla_topic = sla_topic
    timers = processor.timers

    @app.agent(sla_topic, name="fold-sla-events")
    async def fold_sla_events(stream):
        """Fold step events and acknowledgements into the items' SLA logs.

        One at a time: the SLA topic is low volume, and an event parked in a
        batching buffer is an unacked event a rebalance (``stream_wait_empty``)
        or a shutdown would wait for.
        """
        async for event in stream.events():
            await processor.process_batch([event])

    if not timers.replay:
        @app.timer(interval=LIVE_TICK_SECONDS)
        async def live_tick() -> None:
            if app.rebalancing or getattr(app, "in_recovery", False):
                return
            await processor.publish_steps(timers.tick(processor.views, datetime.now(UTC)))

    @app.on_partitions_revoked.connect
    async def _drop(sender, revoked, **kwargs) -> None:
        timers.drop(tp.partition for tp in revoked if tp.topic == settings.events_topic)

    @app.on_rebalance_complete.connect
    async def _rebuild(sender, **kwargs) -> None:
        owned = [tp.partition for tp in app.assignor.assigned_actives()
                 if tp.topic == settings.events_topic]
        count = timers.rebuild(processor.views.items(), owned)
        log.info("sla_timers.rebuilt", partitions=sorted(owned), clocks=count,
                 mode="replay" if timers.replay else "live")

    return sla_topic
