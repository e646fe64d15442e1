"""The glue between Kafka messages and the pure view fold.

For each batch of raw messages: decode and validate (bad input goes to the
dead-letter topic with its original bytes), make sure the event sits on its
customer's home partition (events from clients with another partitioner, or
with no key, are forwarded there first), fold it into the customer's view and
write each touched view once per batch.  No domain decisions are made here.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any

import faust
import structlog

from schemas.envelope import Event, InvalidEvent, decode_event
from sla_rules import RuleSet
from streams.customer_store import CustomerStore
from streams.customer_view import Outcome, find_item, fold, view_contains_event
from streams.desk_signature import is_signed
from streams.item_sla import items_touched_by, sla_summary
from streams.partitioning import murmur2_partition
from streams.publisher import HomePublisher
from streams.rules_gate import RulesGate
from streams.sla_timers import SlaTimers
from streams.topic_rules import misplaced

DLQ_HEADER = "keydesk.dlq."
RETRY_FIRST, RETRY_MAX = 0.2, 10.0  # seconds between retries of a batch the broker refused


def _item_of(event: Event) -> tuple[str, str] | None:
    """The item an event changes, as (kind, id); ``None`` for customer events."""
    if event.kind == "customer":
        return None
    if event.kind == "sla":
        return event.payload["item_kind"], event.entity_id
    return event.kind, event.entity_id


async def _refused(exc: Exception) -> None:
    """A send that failed before it reached the producer, as an awaitable failure."""
    raise exc


class EventProcessor:
    """Folds batches of event messages into the customer-view table."""

    def __init__(
        self,
        *,
        app: faust.App,
        events: faust.TopicT,
        dead_letters: faust.TopicT,
        views: CustomerStore,
        rules: RuleSet,
        partitions: int | None = None,
        replay: bool = False,
        clock: Callable[[], float] = time.time,
        secret: bytes | None = None,
    ) -> None:
        self.app = app
        self.secret = secret  # the desk's: what only keydesk may write is signed with it
        self.events = events
        self.dead_letters = dead_letters
        self.views = views
        self.rules = rules
        self.timers = SlaTimers(rules, self.home_partition, replay=replay)
        self.rules_gate = RulesGate()  # a new rule set is swapped in between batches
        self.sla_topic: faust.TopicT | None = None  # set by streams.sla_agents
        self.partitions = partitions or app.conf.topic_partitions
        self.clock = clock
        self.stats: Counter[str] = Counter()
        self.log = structlog.get_logger("keydesk.events")
        self._batch_done: asyncio.Event | None = None
        self._batch_customers: Any = ()
        self.failing_since: float | None = None  # a batch has been retried since (clock())
        # Awaited at a revocation before the views are dropped (the alert sender's handover).
        self.before_drop: list[Callable[[], Awaitable[None]]] = []
        self.last_error: str | None = None

    async def swap_rules(self, rules: RuleSet) -> None:
        """Fold with ``rules`` from the next batch on (``streams/rules_feed.py``): between batches,
        and every open clock is evaluated again under them at the next tick."""

        def apply() -> None:
            self.rules = rules
            self.timers.use_rules(rules, self.views.items())

        await self.rules_gate.swap(apply)

    def home_partition(self, customer_id: str) -> int:
        return murmur2_partition(customer_id.encode(), self.partitions)

    def owned_partitions(self) -> set[int]:
        """The partitions whose customers this worker folds and times right now."""
        return set(self.timers.indexes)

    def _home(self, topic: faust.TopicT) -> HomePublisher:
        # Built per use, not kept: the topics are attributes tests swap for recorders.
        return HomePublisher(topic, self.partitions, secret=self.secret)

    async def process_batch_until_done(self, batch: Sequence[faust.EventT]) -> None:
        """Process a batch, retrying it whole (with backoff) until it goes through.

        What can fail here is not one record (those are dead-lettered inside)
        but the broker or the producer: a dead letter, a forwarded event or a
        step that cannot be sent.  The batch's events are not acked until this
        returns, and the customers it touched are reloaded as last written
        before each retry, so a retry folds exactly what the first try did.
        """
        delay = RETRY_FIRST
        while True:
            generation = self.views.generation
            try:
                async with self.rules_gate.batch():
                    await self.process_batch(batch)
            except Exception as exc:
                self.stats["batch_retries"] += 1
                self.failing_since = self.failing_since or self.clock()
                self.last_error = repr(exc)[:500]
                self.log.exception(
                    "events.batch_retrying",
                    events=len(batch),
                    retry_in=delay,
                    failing_for=self.clock() - self.failing_since,
                )
                if self.views.generation == generation:  # else dropped: they stay dropped
                    for customer_id in self._batch_customers:
                        self.views.reload(customer_id)
                await asyncio.sleep(delay)  # backoff before the retry, not a synchronisation
                delay = min(delay * 2, RETRY_MAX)
                continue
            self.failing_since = None
            return

    async def process_batch(self, batch: Sequence[faust.EventT]) -> None:
        """Fold a batch; each touched customer's changed records are written once.

        Every message ends folded, forwarded home or dead-lettered; nothing in
        one message can stop the others (a fold that raises is undone and the
        message dead-lettered with the exception as its reason).  SLA clocks
        are evaluated once per touched item per batch, not per event, except
        by a replay-clock worker: it evaluates and ticks after each event, as
        ``keydesk replay`` does, so that both publish the same steps.
        """
        # Replay: the steps each event's tick made due, published once the batch is saved.
        # A tick per event, not per batch: an event earlier than the watermark (late)
        # or a profile change must meet the timers exactly where the replay's did.
        steps: list[Event] = []
        watermarks = dict(self.timers.watermarks)
        try:
            await self._process_batch(batch, steps, watermarks)
        except BaseException:
            # The batch is retried whole; steps its ticks took are in flight but were never
            # published: handed back, else the retry's ticks would skip them for good.
            for step in steps:
                self.timers.unsent(step)
            self.timers.roll_back(watermarks, self._batch_customers)
            raise

    async def _process_batch(
        self, batch: Sequence[faust.EventT], steps: list[Event], watermarks: dict[int, datetime]
    ) -> None:
        touched: dict[str, dict[str, Any]] = {}
        self._batch_customers = touched.keys()
        touched_items: dict[str, set[tuple[str, str]]] = {}
        changed: dict[str, set[tuple[str, str]]] = {}
        evicted: dict[str, set[tuple[str, str]]] = {}
        folded: dict[str, list[tuple[Event, int]]] = {}  # this batch's (event, offset)s
        generation = self.views.generation
        settled: set[int] = set()  # events done with outside the views (parked, forwarded)
        for taken in list(batch):
            message = taken.message
            event = await self._decode(message)
            if event is None:
                settled.add(id(taken))
                continue
            key = event.customer_id.encode()
            if message.partition != self.home_partition(event.customer_id) or message.key != key:
                await self._forward_home(message, event, key)
                settled.add(id(taken))
                continue
            if not self._still_ours(generation, message):
                return self._abandon(batch, settled, steps, watermarks)
            customer_id = event.customer_id
            view = touched.get(customer_id) or self.views.view_for_update(customer_id)
            try:
                outcome = self._fold_one(view, event, message)
            except Exception as exc:  # a bug must not stop the desk: undo, park the event, go on
                self.log.exception(
                    "event.fold_failed",
                    customer_id=customer_id,
                    entity_id=event.entity_id,
                    event_id=event.event_id,
                )
                undone = self._undo(customer_id, folded.get(customer_id, ()))
                if undone is None:
                    touched.pop(customer_id, None)
                else:
                    touched[customer_id] = undone
                await self.dead_letter(message, f"processing error: {exc!r}", None)
                continue
            touched[customer_id] = view
            folded.setdefault(customer_id, []).append((event, message.offset))
            if outcome.status in ("applied", "rejected"):
                item = _item_of(event)
                if item is not None:
                    changed.setdefault(customer_id, set()).add(item)
            if outcome.evicted:
                evicted.setdefault(customer_id, set()).update(outcome.evicted)
            items = items_touched_by(view, event, outcome)
            touched_items.setdefault(customer_id, set()).update(items)
            if self.timers.replay:  # as `keydesk replay` does: each event, then its tick
                self._refresh_sla(view, items)
            if event.kind == "sla":
                self.timers.folded(event.event_id)
            else:
                self.timers.advance(message.partition, event.occurred_at)
                if self.timers.replay:
                    steps.extend(self.timers.tick(self.views))
        if batch and not self._still_ours(generation, batch[-1].message):
            return self._abandon(batch, settled, steps, watermarks)
        for customer_id, view in touched.items():
            refreshed = touched_items.get(customer_id, set())
            if not self.timers.replay:
                self._refresh_sla(view, refreshed)
            self.stats["records_written"] += self.views.save(
                view, changed.get(customer_id, set()) | refreshed, evicted.get(customer_id, ())
            )
        if steps:
            await self.publish_steps(steps)
        self._signal_batch_done()

    def _still_ours(self, generation: int, message: faust.types.Message) -> bool:
        """Whether the views this batch folds into are still this worker's working copy.

        Not if they were dropped since the batch began (a revocation ran at one
        of its awaits), nor if the message's partition is dropped and not yet
        rebuilt (the batch was taken before a revocation and handed over after
        it), nor if the message is of an older consumer generation than the
        current one (its partition was reassigned since it was fetched).
        """
        return (
            self.views.generation == generation
            and message.partition not in self.views.dropped
            and message.generation_id == self.app.consumer_generation_id
        )

    def _abandon(
        self,
        batch: list[faust.EventT],
        settled: set[int],
        steps: Sequence[Event],
        watermarks: dict[int, datetime],
    ) -> None:
        """Leave a batch whose views were dropped under it (a rebalance began at an await).

        Its folds went into views that are no longer the working copy, so nothing
        is saved, and every event not already settled (dead-lettered or forwarded)
        is taken out of the batch, which leaves it unacked: the partition's owner
        after the rebalance, this worker or another, folds it again from the
        tables.  Found by the kill -9 fault test: a batch that went on after the
        drop saved a new, empty view over the customer's records, and a
        registration and a fault folded long before were gone.
        """
        for step in steps:  # computed from those views: never published, due again
            self.timers.unsent(step)
        self.timers.roll_back(watermarks, self._batch_customers)
        kept = [event for event in batch if id(event) in settled]
        self.stats["left_for_refetch"] += len(batch) - len(kept)
        self.log.warning("events.batch_left_to_new_owner", events=len(batch) - len(kept))
        batch[:] = kept
        self._signal_batch_done()

    async def _decode(self, message: faust.types.Message) -> Event | None:
        """The message's event, or ``None`` once it has been dead-lettered.

        Any exception counts as a refusal, not only the decoder's own, so that
        no class of bad bytes can escape (issue 9).  The SLA topic and the
        events topic carry different things: step events come only from
        keydesk's timers (and acknowledgements only through the API, which
        writes to the SLA topic), so a ``sla.*`` event on the events topic is a
        forgery or a mistake and is refused, as is anything else on the SLA topic.
        """
        try:
            event = decode_event(message.value if message.value is not None else b"")
        except InvalidEvent as exc:
            await self.dead_letter(message, exc.reason, exc.field)
            return None
        except Exception as exc:  # the decoder is meant to be total; this keeps it so
            await self.dead_letter(message, f"undecodable: {exc!r}", None)
            return None
        reason = misplaced(event, message.topic, is_signed(self.secret, message.value, message.headers))
        if reason is not None:
            await self.dead_letter(message, reason, "event_type")
            return None
        return event

    def _undo(self, customer_id: str, earlier: Sequence[tuple[Event, int]]) -> dict[str, Any] | None:
        """The customer's view as before the failed fold: as last written, plus
        this batch's earlier events folded again (folds are deterministic).

        ``None`` when there is nothing to go back to (a customer new in this batch).
        """
        view = self.views.reload(customer_id)
        if view is None:
            if not earlier:
                return None
            view = self.views.view_for_update(customer_id)
        for event, offset in earlier:
            fold(view, event, offset)
        return view

    def _fold_one(self, view: dict[str, Any], event: Event, message: faust.types.Message) -> Outcome:
        # The ids are passed, not bound with contextvars: binding and unbinding
        # three variables per event cost more than the line itself (issue 13), and
        # nothing inside the fold logs.
        outcome = fold(view, event, message.offset)
        self.stats[outcome.status] += 1
        self.log.info(
            "event.folded",
            customer_id=event.customer_id,
            entity_id=event.entity_id,
            event_id=event.event_id,
            event_type=event.event_type,
            outcome=outcome.status,
            state=outcome.state,
            late=outcome.late,
            reason=outcome.reason,
            partition=message.partition,
            offset=message.offset,
        )
        return outcome

    def _refresh_sla(self, view: dict[str, Any], items: set[tuple[str, str]]) -> None:
        for kind, item_id in items:
            item = find_item(view, kind, item_id)
            if item is None:
                continue
            try:
                item["sla"] = sla_summary(view, item, self.rules)
            except Exception as exc:  # an engine bug must not stop event processing
                item["sla"] = {"error": repr(exc)}
                self.log.exception(
                    "sla.evaluation_failed", customer_id=view["customer_id"], entity_id=item_id
                )
                continue
            self.timers.schedule(view, item)

    async def publish_steps(self, steps: list[Event]) -> None:
        """Publish timer step events to the SLA topic, on their customer's partition.

        Returns once the broker has every step or refused it: a refused step is
        handed back to the timers (due again at the next tick), never dropped.
        """
        sent: list[Any] = []
        home = self._home(self.sla_topic)
        for step in steps:
            try:
                sent.append(await home.enqueue(step.customer_id, step.to_bytes()))
            except Exception as exc:  # producer not ready (shutdown), buffer full: later
                sent.append(_refused(exc))
        results = await asyncio.gather(*sent, return_exceptions=True) if sent else []
        for step, result in zip(steps, results):
            if isinstance(result, BaseException):
                self.timers.unsent(step)
                self.stats["sla_steps_unsent"] += 1
                self.log.warning(
                    "sla.step_unsent",
                    event_id=step.event_id,
                    customer_id=step.customer_id,
                    entity_id=step.entity_id,
                    error=repr(result)[:300],
                )
                continue
            self.stats["sla_steps_published"] += 1
            lateness = (step.recorded_at - step.occurred_at).total_seconds()
            self.log.info(
                "sla.step_published",
                event_type=step.event_type,
                customer_id=step.customer_id,
                entity_id=step.entity_id,
                event_id=step.event_id,
                metric=step.payload["metric"],
                due_at=step.payload["due_at"],
                seconds_after_due=round(lateness, 3),
            )

    async def _forward_home(self, message: faust.types.Message, event: Event, key: bytes) -> None:
        """Re-publish an event keyed or partitioned differently from Kafka's default.

        A producer using another partitioner (librdkafka's default, say) or no key
        would otherwise split a customer's state across partitions.  The copy is
        the same bytes; folding is idempotent, so a second copy is harmless.
        """
        events = self._home(self.events)
        home = events.home_partition(event.customer_id)
        await events.enqueue(event.customer_id, message.value)  # handed on; the ack is not awaited
        self.stats["forwarded"] += 1
        self.log.info(
            "event.forwarded_home",
            event_id=event.event_id,
            customer_id=event.customer_id,
            from_partition=message.partition,
            to_partition=home,
        )

    async def dead_letter(self, message: faust.types.Message, reason: str, field: str | None) -> None:
        """Park an unusable message: original key and bytes, reason in headers."""
        headers = [
            (DLQ_HEADER + "reason", reason.encode()),
            (DLQ_HEADER + "field", (field or "").encode()),
            (DLQ_HEADER + "topic", message.topic.encode()),
            (DLQ_HEADER + "partition", str(message.partition).encode()),
            (DLQ_HEADER + "offset", str(message.offset).encode()),
            (DLQ_HEADER + "timestamp", str(message.timestamp).encode()),
            (DLQ_HEADER + "dead_lettered_at", repr(self.clock()).encode()),
        ]
        await self.dead_letters.send(
            key=message.key,
            value=message.value,
            headers=headers,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.stats["dead_lettered"] += 1
        self.log.warning(
            "event.dead_lettered",
            reason=reason,
            field=field,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
        )

    # -- read-your-writes for the HTTP API ---------------------------------------

    def _signal_batch_done(self) -> None:
        if self._batch_done is not None:
            self._batch_done.set()
            self._batch_done = None

    async def wait_for_event(self, customer_id: str, event_id: str, timeout: float) -> bool:
        """Wait until this worker's view of ``customer_id`` contains ``event_id``.

        Lets the hotline screen show the fault it just logged without polling.
        """
        deadline = asyncio.get_running_loop().time() + timeout
        while not view_contains_event(self.views.get(customer_id), event_id):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return False
            if self._batch_done is None:
                self._batch_done = asyncio.Event()
            try:
                await asyncio.wait_for(self._batch_done.wait(), remaining)
            except TimeoutError:
                return False
        return True
