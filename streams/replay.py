"""Replaying a recorded stream in event time, in process, at full speed.

The same fold, SLA evaluation and timer steps as the worker in replay mode
(``KEYDESK_CLOCK=replay``), without Kafka: events are folded in file order, each
partition's watermark follows its events' ``occurred_at``, and the step events
due by each watermark are produced and folded back as the SLA topic would.
An event's line number is its source position, as its offset is in Kafka: it
orders an item's events that share an instant once their lifecycle has
(``streams/event_order.py``).
Used by ``keydesk replay`` to answer "what would the SLA timers have said?".

It ticks after every event, and so does a replay-clock worker (within a
batch, publishing the batch's steps once it is saved): a late event or a
profile change then meets the timers at the same point in both.  A tick
yields the steps due *before* the watermark, from the events before it
(``streams/sla_timers.py``), so a batch cut changes nothing either.  So at the
end of the input, steps due at or after each partition's last instant are not
produced, exactly as a worker that has consumed the same file has not
published them (it cannot know that its input ended, nor that nothing else
happened at that instant): a later event on the partition brings them.  For
what a file's items have due at some later instant, ask
:func:`streams.item_sla.due_steps` with that instant, as
``tests/faults/oracle.py`` does.  (A late event cannot take back a step
already published: both have published what was due before it came.)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas.envelope import Event, InvalidEvent, decode_lines
from sla_rules import RuleSet
from streams.customer_view import find_item, fold, new_view
from streams.item_sla import items_touched_by, sla_summary
from streams.partitioning import murmur2_partition
from streams.sla_timers import SlaTimers


@dataclass
class ReplayResult:
    """What a replay produced: the step events in order, the views, refused lines."""

    steps: list[Event] = field(default_factory=list)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


def replay(lines: Iterable[bytes], rules: RuleSet, partitions: int = 4) -> ReplayResult:
    """Fold ``lines`` (JSON events) and return every SLA step event they lead to."""
    result = ReplayResult()
    views = result.views
    timers = SlaTimers(rules, lambda c: murmur2_partition(c.encode(), partitions), replay=True)

    def apply(event: Event, position: int | None = None) -> None:
        view = views.setdefault(event.customer_id, new_view(event.customer_id))
        outcome = fold(view, event, position)
        for kind, item_id in items_touched_by(view, event, outcome):
            item = find_item(view, kind, item_id)
            if item is not None:
                item["sla"] = sla_summary(view, item, rules)
                timers.schedule(view, item)

    for number, _, event in decode_lines(lines):
        if isinstance(event, InvalidEvent):
            result.refused.append((number, str(event)))
            continue
        result.events += 1
        apply(event, number)
        if event.kind == "sla":
            timers.folded(event.event_id)
            continue
        timers.advance(timers.partition_of(event.customer_id), event.occurred_at)
        for step in timers.tick(views):
            result.steps.append(step)
            apply(step)
            timers.folded(step.event_id)
    return result
