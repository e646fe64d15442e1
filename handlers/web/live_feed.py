"""The live feed: every partition's SLA steps, acknowledgements and item changes, to this worker's pages.

A browser's event stream is served by whichever worker it reached, but a
worker folds only its own partitions.  So each worker runs one Kafka consumer
outside every consumer group (no ``group_id``: all partitions assigned, reading
from the end, committing nothing) of three topics:

* the SLA topic: the timers' steps (warning, breach, ladder step) for the inbox;
* the events topic, of which only acknowledgements signed with the desk's
  secret are taken (``streams/desk_signature.py``; a forged one is not shown as
  an acknowledgement any more than the fold takes it);
* the ``items`` table's changelog: an item's record is written there after the
  owner has folded a change into it (a new item, a step of its loop, a clock
  moved by a priority change or a pause), so a page asked to reload after it
  finds the owner's view already changed, which the events topic cannot promise.

The :class:`LiveHub` fans each change out in-process to the connected
streams, each with a bounded queue: a client that does not keep up is dropped
(its browser reconnects and reloads what it shows), never waited for, and the
number of streams is bounded.  Each stream sees only changes of customers in
its user's scope (``roles.may_for_customer``), decided with the customer's
facts from the reporting database, looked up once per customer and change
batch for all streams and cached briefly.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import orjson
import structlog

from handlers.identity.roles import CUSTOMER_READ, Identity, may_for_customer
from handlers.web.inbox_model import Acknowledgement, Customer, Step, is_step, may_see
from schemas.envelope import InvalidEvent, decode_event
from streams.desk_signature import is_signed

log = structlog.get_logger("keydesk.web.live")

#: streams one worker serves at most, and one user at most (tabs)
MAX_STREAMS = 500
MAX_STREAMS_PER_USER = 8
#: changes waiting for one stream at most before it is dropped
STREAM_QUEUE = 512
#: how long a customer's facts are taken from the cache, and how many are kept
FACTS_SECONDS = 20.0
FACTS_KEPT = 20_000
UNKNOWN_SECONDS = 1.0
#: steps and acknowledgements kept for the pages (the sink may not have written them yet)
RECENT_SECONDS = 300.0
RECENT_KEPT = 5_000
#: records read from Kafka per fetch at most
FETCH_RECORDS = 2000
ACK = b"sla.escalation_acknowledged"

Interest = Literal["queue", "inbox"]
#: the kinds of change each interest's streams can take (``Subscriber.wants`` decides the rest)
TAKES: dict[Interest, tuple[str, ...]] = {"inbox": ("step", "ack", "sync"), "queue": ("item", "sync")}
#: customer ids -> what the database holds of them (those it does not hold are left out)
CustomerLookup = Callable[[list[str]], Awaitable[dict[str, Customer]]]


@dataclass(frozen=True, slots=True)
class LiveChange:
    """One thing that happened, as the pages need it."""

    kind: Literal["step", "ack", "item", "sync"]
    customer_id: str = ""
    item_kind: str | None = None
    item_id: str | None = None
    step: Step | None = None
    ack: Acknowledgement | None = None
    #: wall time the feed read it (the benchmark's step-to-client latency starts at the step's
    #: ``occurred_at``; this says how much of it was Kafka's)
    read_at: float = 0.0


SYNC = LiveChange("sync")


class Subscriber:
    """One connected event stream: who, what for, and its bounded queue of changes."""

    def __init__(self, identity: Identity, interest: Interest, kind: str = "", size: int = STREAM_QUEUE):
        self.identity = identity
        self.interest = interest
        self.kind = kind
        self.size = size
        self.dropped = False
        self._waiting: deque[tuple[LiveChange, Customer | None]] = deque()
        self._wake = asyncio.Event()

    def wants(self, change: LiveChange, customer: Customer | None) -> bool:
        if change.kind == "sync":
            return True
        if self.interest == "inbox":
            return change.kind in ("step", "ack") and may_see(self.identity, customer, change.customer_id)
        if change.kind != "item" or (self.kind and change.item_kind != self.kind):
            return False
        return bool(may_for_customer(self.identity, CUSTOMER_READ, customer.facts if customer else None))

    def push(self, change: LiveChange, customer: Customer | None) -> bool:
        """Queue a change; a full queue drops the stream instead (``False``)."""
        if self.dropped:
            return False
        if len(self._waiting) >= self.size:
            self.dropped = True
            self._waiting.clear()
        else:
            self._waiting.append((change, customer))
        self._wake.set()
        return not self.dropped

    def drop(self) -> None:
        self.dropped = True
        self._wake.set()

    async def take(self, timeout: float | None) -> list[tuple[LiveChange, Customer | None]]:
        """What has come since the last take, waiting up to ``timeout`` for something (``[]``: nothing)."""
        if not self._waiting and not self.dropped:
            try:
                # a timeout scope, not ``wait_for``: that wraps the wait in a task of its own, once per
                # stream and change batch (200 streams: 200 tasks made and run for each step)
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                return []
        self._wake.clear()
        found = list(self._waiting)
        self._waiting.clear()
        return found


class TooManyStreams(Exception):
    pass


class LiveHub:
    """Fans changes out to the connected streams of this worker; keeps recent steps and acknowledgements."""

    def __init__(
        self,
        customers: CustomerLookup,
        *,
        max_streams: int = MAX_STREAMS,
        per_user: int = MAX_STREAMS_PER_USER,
        queue_size: int = STREAM_QUEUE,
    ) -> None:
        self._lookup = customers
        self.max_streams = max_streams
        self.per_user = per_user
        self.queue_size = queue_size
        self.subscribers: set[Subscriber] = set()
        self._facts: OrderedDict[str, tuple[float, Customer | None]] = OrderedDict()
        self._recent: deque[LiveChange] = deque(maxlen=RECENT_KEPT)
        self.stats = {"changes": 0, "delivered": 0, "dropped_streams": 0}

    def subscribe(self, identity: Identity, interest: Interest, kind: str = "") -> Subscriber:
        if len(self.subscribers) >= self.max_streams:
            raise TooManyStreams(f"this worker serves {self.max_streams} live streams at most")
        if sum(s.identity.name == identity.name for s in self.subscribers) >= self.per_user:
            raise TooManyStreams(f"{self.per_user} live streams per user at most")
        subscriber = Subscriber(identity, interest, kind, self.queue_size)
        self.subscribers.add(subscriber)
        return subscriber

    def leave(self, subscriber: Subscriber) -> None:
        self.subscribers.discard(subscriber)

    def close(self) -> None:
        """End every stream (the worker stops)."""
        for subscriber in list(self.subscribers):
            subscriber.drop()
        self.subscribers.clear()

    def recent(self) -> list[LiveChange]:
        """Steps and acknowledgements of the last :data:`RECENT_SECONDS`, oldest first."""
        horizon = time.time() - RECENT_SECONDS
        while self._recent and self._recent[0].read_at < horizon:
            self._recent.popleft()
        return list(self._recent)

    async def customers(self, ids: Iterable[str]) -> dict[str, Customer | None]:
        """The customers' facts, cached for :data:`FACTS_SECONDS`; one database read for the rest."""
        now = time.monotonic()
        found: dict[str, Customer | None] = {}
        missing = []
        for customer_id in set(ids):
            cached = self._facts.get(customer_id)
            # a customer the database does not hold yet (the sink's lag) is asked again soon
            if cached is not None and now - cached[0] < (FACTS_SECONDS if cached[1] else UNKNOWN_SECONDS):
                found[customer_id] = cached[1]
            else:
                missing.append(customer_id)
        if missing:
            try:
                read = await self._lookup(missing)
            except Exception:  # the database is away: scoped streams see nothing of these for now
                log.warning("live.customers_unavailable", customers=len(missing), exc_info=True)
                read = None
            for customer_id in missing:
                customer = None if read is None else read.get(customer_id)
                found[customer_id] = customer
                if read is not None:
                    self._facts[customer_id] = (now, customer)
                    self._facts.move_to_end(customer_id)
            while len(self._facts) > FACTS_KEPT:
                self._facts.popitem(last=False)
        return found

    async def publish(self, changes: list[LiveChange]) -> None:
        """Hand each change to every stream that wants it; drop the streams that cannot keep up."""
        if not changes:
            return
        self.stats["changes"] += len(changes)
        for change in changes:
            if change.kind in ("step", "ack"):
                self._recent.append(change)
        if not self.subscribers:
            return
        # an inbox stream takes steps and acknowledgements, a queue stream item changes: each looks at
        # its own (200 inbox streams would otherwise each turn down every item change), and only the
        # customers of changes some stream can take are looked up
        wanted = {interest: [c for c in changes if c.kind in kinds] for interest, kinds in TAKES.items()}
        interests = {s.interest for s in self.subscribers}
        customers = await self.customers(
            c.customer_id for interest in interests for c in wanted[interest] if c.customer_id
        )
        for subscriber in list(self.subscribers):
            for change in wanted[subscriber.interest]:
                customer = customers.get(change.customer_id)
                if subscriber.wants(change, customer):
                    if subscriber.push(change, customer):
                        self.stats["delivered"] += 1
                    else:
                        self.stats["dropped_streams"] += 1
                        self.subscribers.discard(subscriber)
                        log.info("live.stream_dropped", user=subscriber.identity.name, why="too slow")
                        break

    async def resync(self) -> None:
        """Tell every stream to reload what it shows (the feed missed changes: it restarted)."""
        for subscriber in list(self.subscribers):
            subscriber.push(SYNC, None)


def decode_change(
    topic: str, key: bytes | None, value: bytes | None, headers: Any, topics: LiveTopics, secret: bytes
) -> LiveChange | None:
    """What a record of one of the three topics means to the pages, or ``None`` (nothing for them)."""
    now = time.time()
    if topic == topics.items_changelog:
        try:
            customer_id, kind, item_id = orjson.loads(key or b"")[:3]
        except (orjson.JSONDecodeError, ValueError, TypeError):
            return None
        return LiveChange("item", str(customer_id), str(kind), str(item_id), read_at=now)
    if value is None:
        return None
    if topic == topics.events and (ACK not in value or not is_signed(secret, value, headers)):
        return None  # a customer's event: its item's changelog record follows the fold
    try:
        event = decode_event(value)
    except InvalidEvent:
        return None  # the fold parks it; nothing to show
    p = event.payload
    if topic == topics.events and event.event_type == ACK.decode():
        key_ = (event.customer_id, str(p["item_kind"]), event.entity_id, str(p["metric"]), int(p["cycle"]))
        ack = Acknowledgement(key_, event.actor, event.occurred_at, p.get("note"))
        return LiveChange("ack", event.customer_id, key_[1], event.entity_id, ack=ack, read_at=now)
    if topic == topics.sla and is_step(event.event_type):
        step = Step.from_payload(
            event.event_id, event.event_type, event.customer_id, event.entity_id, event.occurred_at, p
        )
        return LiveChange("step", event.customer_id, step.item_kind, step.item_id, step=step, read_at=now)
    return None


@dataclass(frozen=True, slots=True)
class LiveTopics:
    sla: str
    events: str
    items_changelog: str

    @property
    def all(self) -> tuple[str, str, str]:
        return (self.sla, self.events, self.items_changelog)
