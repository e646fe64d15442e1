"""SLA timers: which items need attention when, and the step events due for them.

One :class:`~streams.deadline_index.DeadlineIndex` per owned partition holds the
next instant at which each item may have a step due (a warning, a breach, a
ladder step, a met).  A tick asks, for each item due, which step events are due
and not yet in its log (:func:`streams.item_sla.due_steps`) and reschedules it.
An item whose log changed is due from its earliest new event on: its new
events may have made steps due in the past (a priority raised past the
deadline) or between the events of one batch (a short breach, the met of a
cycle a reopen ended).  Which steps are
due depends on the log and the instant only, never on how events were batched
or when the tick ran; each prefix of a log is evaluated once (``StepMemo``).

Two clocks drive ticks:

* live: the wall clock, ticked by the worker a few times a second: every step
  due by now;
* replay: event time: each partition's watermark is the latest ``occurred_at``
  folded from it, and a tick yields the steps due *before* it, from the
  events before it (an event at the watermark's instant may still be in the
  next batch).  So a recorded stream replays at full speed and yields the same
  step events however it is batched, and as it did live.

No I/O here: callers publish what :meth:`SlaTimers.tick` returns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, overload

from schemas.envelope import Event
from sla_rules import RuleSet
from sla_rules.evaluation import StepMemo
from streams.customer_view import find_item
from streams.deadline_index import DeadlineIndex
from streams.item_sla import clock_history, due_steps, item_facts
from streams.vocabulary import ITEM_KINDS

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
Key = tuple[str, str, str]  # (customer_id, item kind, item id)
_AT_ONCE = object()  # due at the next tick, whatever the clock says


def to_us(instant: datetime) -> int:
    delta = instant - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


class SlaTimers:
    """Deadline indexes for the partitions this worker owns, and the ticks over them."""

    def __init__(self, rules: RuleSet, partition_of: Callable[[str], int], *, replay: bool = False) -> None:
        self.rules = rules
        self.partition_of = partition_of
        self.replay = replay
        self.indexes: dict[int, DeadlineIndex[Key]] = {}
        self.watermarks: dict[int, datetime] = {}
        # Steps published but not yet folded back into their item's log, by id,
        # with their partition: not published again meanwhile (after a restart or
        # a rebalance they may be; ids dedupe).  Forgotten with their partition,
        # so that a new owner, or this worker owning it again, republishes what
        # never came back.
        self.in_flight: dict[str, int] = {}
        self.memo = StepMemo()

    def __len__(self) -> int:
        return sum(len(index) for index in self.indexes.values())

    # -- keeping the index in step with the views --------------------------------

    def schedule(self, view: dict[str, Any], item: dict[str, Any]) -> None:
        """(Re)schedule an item after its log changed: due once its new events are passed.

        New events may end a window with steps due before them, or make steps
        due in the past, but only from their own instant on: so the item is due
        at its earliest new event (replay: once the watermark has passed it),
        or earlier if it already was.  An item the memo has not followed (new,
        or forgotten) is due at once, one whose log lost an event too.  An item
        without clocks (not opened, or its evaluation failed) is not scheduled.
        """
        index, key, partition = self._slot(view, item)
        if not (item.get("sla") or {}).get("as_of"):
            index.cancel(key)
            return
        since = self._first_new(view, item)
        if since is None:
            return  # nothing new in its log (a profile or acknowledgement): its schedule stands
        due = 0 if since is _AT_ONCE else self._due_us(since)
        current = index.due_at(key)
        index.schedule(key, due if current is None else min(current, due), partition)

    def _first_new(self, view: dict[str, Any], item: dict[str, Any]) -> Any:
        """The instant of the item's earliest event the memo has not seen, ``None`` if none."""
        state = self.memo.get(item_facts(view, item))
        if state is None or state.given is None:
            return _AT_ONCE
        seen = set(state.given)
        history = clock_history(item)
        new = [r["occurred_at"] for r in history if r["event_id"] not in seen]
        if len(history) != len(seen) + len(new):
            return _AT_ONCE
        return min(new, default=None)

    def _slot(self, view: dict[str, Any], item: dict[str, Any]) -> tuple[DeadlineIndex[Key], Key, int]:
        customer_id = view["customer_id"]
        partition = self.partition_of(customer_id)
        index = self.indexes.setdefault(partition, DeadlineIndex())
        return index, (customer_id, item["kind"], item["id"]), partition

    def _schedule(self, view: dict[str, Any], item: dict[str, Any], due: datetime | None) -> None:
        index, key, partition = self._slot(view, item)
        index.schedule(key, self._due_us(due), partition)

    @overload
    def _due_us(self, instant: datetime) -> int: ...
    @overload
    def _due_us(self, instant: None) -> None: ...
    def _due_us(self, instant: datetime | None) -> int | None:
        """The index instant for a step due at ``instant``: replay takes it once past."""
        if instant is None:
            return None
        return to_us(instant) + 1 if self.replay else to_us(instant)

    def _schedule_known(self, view: dict[str, Any], item: dict[str, Any]) -> None:
        """Schedule an item as its SLA summary shows it (after assignment or recovery).

        At its next change, or at once when a stop is not yet in its log.  Not
        at once for every item: that would evaluate every prefix of every open
        item at the first tick after a restart.
        """
        sla = item.get("sla") or {}
        due = _instant(sla.get("next_change_at"))
        if _has_unlogged_stop(item):
            due = _instant(sla.get("as_of")) or due
        self._schedule(view, item, due)

    def rebuild(self, views: Iterable[tuple[str, dict[str, Any]]], partitions: Iterable[int]) -> int:
        """Index every item of the views on ``partitions`` (after assignment/recovery)."""
        owned = set(partitions)
        self._forget_in_flight(owned)
        for partition in owned:
            self.indexes[partition] = DeadlineIndex()
        for customer_id, view in views:
            if self.partition_of(customer_id) not in owned:
                continue
            for item in _items(view):
                self._schedule_known(view, item)
        return sum(len(self.indexes[p]) for p in owned)

    def use_rules(self, rules: RuleSet, views: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """Time every clock under ``rules`` from now on (a replaced rules file).

        The memo serves one rule set, so it starts empty, and every open clock
        of the owned partitions is due at once: its steps are computed again
        from its whole log under the new rules.  A replacement cannot change a
        step due up to now (``sla_rules/rules_history.py``), so what was
        published stays right and is not published again (ids dedupe anyway).
        """
        self.rules = rules
        self.memo = StepMemo()
        for customer_id, view in views:
            if self.partition_of(customer_id) in self.indexes:
                for item in _items(view):
                    self.schedule(view, item)

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
            index.schedule(
                (step.customer_id, step.payload["item_kind"], step.entity_id),
                to_us(step.occurred_at),
                partition,
            )

    def roll_back(self, watermarks: Mapping[int, datetime], customer_ids: Iterable[str]) -> None:
        """Put the timers back where a batch that did not go through found them.

        Its events are folded again (a retry, or the partition's next owner):
        a replay's watermarks must be where they were, or the retry ticks its
        first events at the instant the failed try ended, and the memo must not
        hold those customers' items as they were inside the failed try.
        Partitions dropped meanwhile stay dropped.
        """
        for partition in list(self.watermarks):
            if partition in watermarks:
                self.watermarks[partition] = watermarks[partition]
            else:
                del self.watermarks[partition]
        self.memo.forget(customer_ids)

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
        """The step events due now (live: by ``now``; replay: before each partition's watermark)."""
        due: list[Event] = []
        for partition, index in list(self.indexes.items()):
            at = self.watermarks.get(partition) if self.replay else now
            if at is None:
                continue
            for key in index.pop_due(to_us(at)):
                customer_id, kind, item_id = key
                view = views.get(customer_id)
                item = find_item(view, kind, item_id) if view else None
                if view is None or item is None:
                    continue
                events, next_at = due_steps(view, item, self.rules, at, replay=self.replay, memo=self.memo)
                for step in events:
                    if step.event_id not in self.in_flight:
                        self.in_flight[step.event_id] = partition
                        due.append(step)
                index.schedule(key, self._due_us(next_at), partition)
        return due


def _items(view: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for kind in ITEM_KINDS:
        yield from view["open"][kind].values()
    yield from view["recent_closed"]  # revisit clocks run after closure


def _has_unlogged_stop(item: dict[str, Any]) -> bool:
    metrics = (item.get("sla") or {}).get("metrics") or {}
    logged = {(r["event_type"], r["metric"], r["cycle"]) for r in item.get("sla_log", ())}
    for name, metric in metrics.items():
        if (
            metric.get("met_at")
            and metric.get("state") == "met"
            and ("sla.met", name, metric.get("cycle")) not in logged
        ):
            return True
        if metric.get("breached_at") and ("sla.breached", name, metric.get("cycle")) not in logged:
            return True
    return False
