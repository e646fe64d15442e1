"""SLA timers: which items need attention when, and the step events due for them.

One :class:`~streams.deadline_index.DeadlineIndex` per owned partition holds the
next instant at which each open clock changes (a warning, a breach, a ladder
step).  A tick asks, for each item due, which step events are due and not yet
in its log (:func:`streams.item_sla.due_steps`) and reschedules it.

Two clocks drive ticks:

* live: the wall clock, ticked by the worker a few times a second;
* replay: event time: each partition's watermark is the latest ``occurred_at``
  folded from it, so a recorded stream replays at full speed and yields the same
  step events as it did live (their ids and instants do not depend on when the
  tick ran).

No I/O here: callers publish what :meth:`SlaTimers.tick` returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from schemas.envelope import Event
from sla_rules import RuleSet
from streams.customer_view import ITEM_KINDS, find_item
from streams.deadline_index import DeadlineIndex
from streams.item_sla import due_steps

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Key = tuple[str, str, str]  # (customer_id, item kind, item id)


def to_us(instant: datetime) -> int:
    delta = instant - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class SlaTimers:
    """Deadline indexes for the partitions this worker owns, and the ticks over them."""

    def __init__(self, rules: RuleSet, partition_of: Callable[[str], int], *,
                 replay: bool = False) -> None:
        self.rules = rules
        self.partition_of = partition_of
        self.replay = replay
        self.indexes: dict[int, DeadlineIndex] = {}
        self.watermarks: dict[int, datetime] = {}
        # Steps published but not yet folded back into their item's log, by id,
        # with their partition: not published again meanwhile (after a restart or
        # a rebalance they may be; ids dedupe).  Forgotten with their partition,
        # so that a new owner, or this worker owning it again, republishes what
        # never came back.
        self.in_flight: dict[str, int] = {}

    def __len__(self) -> int:
        return sum(len(index) for index in self.indexes.values())

    # -- keeping the index in step with the views --------------------------------

    def schedule(self, view: dict[str, Any], item: dict[str, Any]) -> None:
        """(Re)schedule an item after its view changed: at its next change, or now.

        An item whose clocks met or breached since they were last checked (its
        SLA summary shows a stop not yet in its log) is due at once.
        """
        customer_id = view["customer_id"]
        partition = self.partition_of(customer_id)
        index = self.indexes.setdefault(partition, DeadlineIndex())
        key = (customer_id, item["kind"], item["id"])
        sla = item.get("sla") or {}
        due = _instant(sla.get("next_change_at"))
        if _has_unlogged_stop(item):
            due = _instant(sla.get("as_of")) or due
        index.schedule(key, to_us(due) if due else None, partition)

    def rebuild(self, views: Iterable[tuple[str, dict[str, Any]]],
                partitions: Iterable[int]) -> int:
        """Index every item of the views on ``partitions`` (after assignment/recovery)."""
        owned = set(partitions)
        self._forget_in_flight(owned)
        for partition in owned:
            self.indexes[partition] = DeadlineIndex()
        for customer_id, view in views:
            if self.partition_of(customer_id) not in owned:
                continue
            for item in _items(view):
                self.schedule(view, item)
        return sum(len(self.indexes[p]) for p in owned)

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget revoked partitions' clocks; their new owner rebuilds them."""
        gone = set(partitions)
        for partition in gone:
            self.indexes.pop(partition, None)
            self.watermarks.pop(partition, None)
        self._forget_in_flight(gone)

    def _forget_in_flight(self, partitions: set[int]) -> None:
        for event_id in [e for e, p in self.in_flight.items() if p in partitions]:
            del self.in_flight[event_id]

    def unsent(self, step: Event) -> None:
        """A published step did not reach the broker: due again at the next tick."""
        self.in_flight.pop(step.event_id, None)
        partition = self.partition_of(step.customer_id)
        index = self.indexes.get(partition)
        if index is not None:
            index.schedule((step.customer_id, step.payload["item_kind"], step.entity_id),
                           to_us(step.occurred_at), partition)

    def folded(self, event_id: str) -> None:
        """A step event came back through the SLA topic and is in its item's log."""
        self.in_flight.pop(event_id, None)

    def advance(self, partition: int, occurred_at: datetime) -> None:
        """Replay: move a partition's watermark to a folded event's time."""
        current = self.watermarks.get(partition)
        if current is None or occurred_at > current:
            self.watermarks[partition] = occurred_at

    # -- ticking -----------------------------------------------------------------

    def tick(self, views: Mapping[str, dict[str, Any]], now: datetime | None = None) -> list[Event]:
        """The step events due now (live: ``now``; replay: each partition's watermark)."""
        due: list[Event] = []
        for partition, index in list(self.indexes.items()):
            at = self.watermarks.get(partition) if self.replay else now
            if at is None:
                continue
            for key in index.pop_due(to_us(at)):
                customer_id, kind, item_id = key
                view = views.get(customer_id)
                item = find_item(view, kind, item_id) if view else None
                if item is None:
                    continue
                events, next_at = due_steps(view, item, self.rules, at, replay=self.replay)
                for step in events:
                    if step.event_id not in self.in_flight:
                        self.in_flight[step.event_id] = partition
                        due.append(step)
                index.schedule(key, to_us(next_at) if next_at else None, partition)
        return due


def _items(view: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for kind in ITEM_KINDS:
        yield from view["open"][kind].values()
    yield from view["recent_closed"]  # revisit clocks run after closure


def _has_unlogged_stop(item: dict[str, Any]) -> bool:
    metrics = (item.get("sla") or {}).get("metrics") or {}
    logged = {(r["event_type"], r["metric"], r["cycle"]) for r in item.get("sla_log", ())}
    for name, metric in metrics.items():
        if metric.get("met_at") and metric.get("state") == "met" and \
                ("sla.met", name, metric.get("cycle")) not in logged:
            return True
        if metric.get("breached_at") and ("sla.breached", name, metric.get("cycle")) not in logged:
            return True
    return False
