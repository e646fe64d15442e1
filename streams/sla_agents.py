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

from streams.event_batches import event_batches
from streams.event_processor import EventProcessor
from streams.settings import Settings

LIVE_TICK_SECONDS = 0.2  # alerts leave within this much of their due instant
SLA_BATCH_MAX = 500  # step events folded per batch at most
log = structlog.get_logger("keydesk.sla_timers")


def register_sla_agents(app: faust.App, settings: Settings, processor: EventProcessor) -> faust.TopicT:
    """Declare the SLA topic and its agent, the live tick and the rebalance hooks."""
    sla_topic = app.topic(
        settings.sla_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    processor.sla_topic = sla_topic
    timers = processor.timers

    @app.agent(sla_topic, name="fold-sla-events")
    async def fold_sla_events(stream):
        """Fold step events and acknowledgements into the items' SLA logs.

        Through :func:`streams.event_batches.event_batches`, not faust's own
        iteration: faust acks an event of a stale generation without handing
        it over, and such a step was then never folded, nor ever alerted.
        """
        async for batch in event_batches(
            stream, SLA_BATCH_MAX, idle=0.002, linger=0.02, stats=processor.stats
        ):
            await processor.process_batch_until_done(batch)

    if not timers.replay:

        @app.timer(interval=LIVE_TICK_SECONDS)
        async def live_tick() -> None:
            if app.rebalancing or getattr(app, "in_recovery", False):
                return
            await processor.publish_steps(timers.tick(processor.views, datetime.now(UTC)))

    @app.on_partitions_revoked.connect
    async def _drop(sender, revoked, **kwargs) -> None:
        """Let what is under way finish with the views (an alert being sent), then drop them.

        The hooks run first: an alert sent while the views were dropped could not
        record its outcome, and the partition's next owner sent it again.
        """
        for hook in processor.before_drop:
            await hook()
        partitions = [tp.partition for tp in revoked if tp.topic == settings.events_topic]
        timers.drop(partitions)
        processor.views.drop(partitions)

    @app.on_rebalance_complete.connect
    async def _rebuild(sender, **kwargs) -> None:
        """Views first (from the recovered tables), then the timers from the views."""
        owned = [tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.events_topic]
        customers = await processor.views.rebuild(owned)
        count = timers.rebuild(processor.views.items(), owned)
        log.info(
            "sla_timers.rebuilt",
            partitions=sorted(owned),
            customers=customers,
            clocks=count,
            mode="replay" if timers.replay else "live",
        )

    return sla_topic
