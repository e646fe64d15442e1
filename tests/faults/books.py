"""Taking stock after a fault: is every event, step, alert and bad record where it must be, once?

:class:`Books` reads what the desk holds, through the same doors an operator
would use: each customer's one-stop view over HTTP, the reporting database's
``event_log`` and ``sla_steps``, the webhook receiver's count per alert id, the
dead-letter and SLA topics from their beginning, and every worker's
``/api/sink`` and ``/api/health``.  :meth:`Books.settle` polls until everything
expected is there and stays put, or nothing moves any more, or a deadline
passes; the :class:`Stock` it returns states its figures for the failure message.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

from handlers.alerts.routing import Alert
from schemas.envelope import Event
from schemas.reporting_db import open_engine
from schemas.reporting_tables import EventRecord, SinkPosition, SlaStep
from tests.e2e.conftest import PARTITIONS, Desk, http
from tests.faults.oracle import items_of

SHOWN = 5  # ids shown per missing or doubled set


@dataclass
class Expected:
    """What must be there: events the broker acknowledged, steps and alerts due, the poison."""

    events: list[Event]
    steps: dict[str, Event] = field(default_factory=dict)
    alerts: dict[str, Alert] = field(default_factory=dict)
    poison: list[bytes | None] = field(default_factory=list)
    customers: list[str] = field(default_factory=list)

    @property
    def profile_ids(self) -> set[str]:
        return {e.event_id for e in self.events if e.kind == "customer"}

    @property
    def item_ids(self) -> set[str]:
        return {e.event_id for e in self.events if e.kind != "customer"}

    def name(self, some_id: str) -> str:
        """An event, step or alert id as staff would say it: what, of whom, and the id."""
        event_id, _, recipient = some_id.partition(":")
        event = self._by_id().get(event_id)
        if event is None:
            return some_id
        what = f"{event.event_type} {event.customer_id}/{event.entity_id}"
        if event.kind == "sla":
            what += f" {event.payload['metric']}"
        return f"{what}{' to ' + recipient if recipient else ''} ({event_id})"

    def _by_id(self) -> dict[str, Event]:
        if not hasattr(self, "_index"):
            self._index = {e.event_id: e for e in self.events} | self.steps
        return self._index


@dataclass(repr=False)
class Stock:
    """What the desk holds, at one instant, of what was expected."""

    expected: Expected
    item_events: Counter = field(default_factory=Counter)  # id -> times in item histories
    profile_events: set[str] = field(default_factory=set)  # profile events folded
    steps_folded: Counter = field(default_factory=Counter)  # id -> times in sla_logs
    event_log: dict[str, str] = field(default_factory=dict)  # id -> topic it was read from
    sla_steps: set[str] = field(default_factory=set)
    alerts: Counter = field(default_factory=Counter)  # alert id -> deliveries
    sinks: dict[str, dict] = field(default_factory=dict)  # worker -> GET /api/sink
    health: dict[str, dict] = field(default_factory=dict)  # worker -> GET /api/health
    unreadable: dict[str, str] = field(default_factory=dict)  # customer -> why no view
    parked: list = field(default_factory=list)  # the dead-letter topic's records
    published: Counter = field(default_factory=Counter)  # step id -> times on the SLA topic
    db_positions: dict[str, int] = field(default_factory=dict)  # sink_positions in the database
    ends: dict[str, int] = field(default_factory=dict)  # "topic:partition" -> end offset
    events_topic: str = ""
    sla_topic: str = ""

    def __repr__(self) -> str:  # the figures are in the failure message, not in the repr
        return f"Stock(complete={self.complete}, nothing_lost={self.nothing_lost})"

    # -- the accounts

    def events_missing_from_views(self) -> list[str]:
        return sorted(
            (self.expected.item_ids - set(self.item_events))
            | (self.expected.profile_ids - self.profile_events)
        )

    def events_missing_from_log(self) -> list[str]:
        return sorted(
            e.event_id for e in self.expected.events if self.event_log.get(e.event_id) != self.events_topic
        )

    def steps_missing_from_views(self) -> list[str]:
        return sorted(set(self.expected.steps) - set(self.steps_folded))

    def steps_missing_from_db(self) -> list[str]:
        return sorted(
            i
            for i in self.expected.steps
            if i not in self.sla_steps or self.event_log.get(i) != self.sla_topic
        )

    def alerts_missing(self) -> list[str]:
        return sorted(set(self.expected.alerts) - set(self.alerts))

    def alerts_repeated(self) -> list[str]:
        return sorted(i for i, n in self.alerts.items() if n > 1)

    def alerts_unexpected(self) -> list[str]:
        return sorted(set(self.alerts) - set(self.expected.alerts))

    def sinks_behind(self) -> dict[str, Any]:
        return {
            url: (s.get("state"), s.get("lag_total"))
            for url, s in self.sinks.items()
            if s.get("state") != "running" or s.get("lag_total") != 0
        }

    @property
    def complete(self) -> bool:
        """Everything expected is in place (repeats and extras are judged by the test)."""
        return not (
            self.events_missing_from_views()
            or self.events_missing_from_log()
            or self.steps_missing_from_views()
            or self.steps_missing_from_db()
            or self.alerts_missing()
            or self.sinks_behind()
            or self.unreadable
        )

    @property
    def nothing_lost(self) -> bool:
        """Complete, nothing in twice, and the dead-letter topic holds exactly the poison."""
        return self.complete and not (
            self.alerts_repeated()
            or self.alerts_unexpected()
            or self.repeated_in_views()
            or self.dead_letters_wrong()
        )

    def nothing_lost_allowing(self, repeats: set[str]) -> bool:
        """As :attr:`nothing_lost`, but the alerts in ``repeats`` may have arrived twice."""
        return self.complete and not (
            set(self.alerts_repeated()) - repeats
            or self.alerts_unexpected()
            or self.repeated_in_views()
            or self.dead_letters_wrong()
        )

    def dead_letters_wrong(self) -> bool:
        return Counter(r.value for r in self.parked) != Counter(self.expected.poison)

    def repeated_in_views(self) -> list[str]:
        return sorted(i for c in (self.item_events, self.steps_folded) for i, n in c.items() if n > 1)

    def progress(self) -> tuple:
        """Changes whenever anything arrives: what 'still moving' means."""
        return (
            sum(self.item_events.values()),
            len(self.profile_events),
            sum(self.steps_folded.values()),
            len(self.event_log),
            len(self.sla_steps),
            sum(self.alerts.values()),
            tuple(sorted(self.sinks_behind().items())),
            tuple(sorted(self.unreadable)),
        )

    # -- the failure message

    def figures(self) -> str:
        e = self.expected
        lines = [
            self._count(
                "events sent (acknowledged by the broker)",
                len(e.events),
                ("in the views", self.events_missing_from_views()),
                ("in event_log", self.events_missing_from_log()),
            ),
            self._count(
                "SLA steps due",
                len(e.steps),
                ("folded in the views", self.steps_missing_from_views()),
                ("in sla_steps and event_log", self.steps_missing_from_db()),
            ),
            self._count("webhook alerts due", len(e.alerts), ("received", self.alerts_missing())),
        ]
        if twice := self.repeated_in_views():
            lines.append(f"  in a view more than once: {len(twice)} {self._named(twice)}")
        if repeated := self.alerts_repeated():
            named = [f"{self.expected.name(i)} x{self.alerts[i]}" for i in repeated]
            lines.append(f"  alerts received more than once: {len(repeated)} {_first(named)}")
        if extra := self.alerts_unexpected():
            lines.append(f"  alerts received that were not due: {len(extra)} {self._named(extra)}")
        if self.unreadable:
            lines.append(f"  views that did not answer: {_first(sorted(self.unreadable.items()))}")
        lines.append(
            f"dead-letter topic: {len(self.parked)} records, "
            f"{len(self.expected.poison)} poison sent"
            + (" (not the same records)" if self.dead_letters_wrong() else "")
        )
        due = set(self.expected.steps)
        lines.append(
            f"SLA topic: the {len(due)} steps due published "
            f"{sum(n for i, n in self.published.items() if i in due)} times; "
            f"{len(set(self.published) - due)} other step ids"
        )
        for url, sink in self.sinks.items():
            behind = {p: n for p, n in (sink.get("lag") or {}).items() if n}
            lines.append(
                f"  sink of {url}: {sink.get('state')}, lag {sink.get('lag_total')}"
                + (f" {behind}, its positions {sink.get('positions')}" if behind else "")
                + f", last error {sink.get('last_error')}"
            )
        if self.sinks_behind():
            behind = {
                k: f"{v} of {self.ends.get(k)}"
                for k, v in sorted(self.db_positions.items())
                if v != self.ends.get(k)
            }
            lines.append(f"  the database's sink_positions short of the topics' ends: {behind}")
        for url, health in self.health.items():
            lines.append(
                f"  health of {url}: {health.get('status')}, "
                f"partitions {health.get('partitions')}, "
                f"processed {health.get('processed')}"
            )
        return "\n".join(lines)

    def _count(self, what: str, total: int, *places: tuple[str, list[str]]) -> str:
        parts = [
            f"{where} {total - len(missing)}"
            + (f" (missing {len(missing)}: first {self._named(missing)})" if missing else "")
            for where, missing in places
        ]
        return f"{what}: {total}; " + "; ".join(parts)

    def _named(self, ids: Sequence[str]) -> str:
        return _first([self.expected.name(i) for i in ids[:SHOWN]] + list(ids[SHOWN:]))


def _first(values: Sequence) -> str:
    return ", ".join(str(v) for v in values[:SHOWN]) + (" ..." if len(values) > SHOWN else "")


class Books:
    """Reads a desk's views, its reporting database, its sinks and the alert receiver."""

    def __init__(self, desk: Desk, db_url: str, receiver=None) -> None:
        self.desk = desk
        self.engine = open_engine(db_url)
        self.receiver = receiver
        self._profile_seen: set[str] = set()

    def close(self) -> None:
        self.engine.dispose()

    # -- one look

    def take_stock(self, expected: Expected) -> Stock:
        stock = Stock(expected=expected, events_topic=self.desk.events_topic, sla_topic=self.desk.sla_topic)
        workers = [w for w in self.desk.workers if w.alive()]
        for n, customer in enumerate(expected.customers):
            worker = workers[n % len(workers)] if workers else None
            self._read_view(stock, worker, customer)
        self._read_profiles(stock, workers, expected)
        ids = [e.event_id for e in expected.events] + list(expected.steps)
        with self.engine.connect() as conn:
            for chunk in _chunks(ids, 500):
                stock.event_log.update(
                    conn.execute(
                        select(EventRecord.event_id, EventRecord.topic).where(EventRecord.event_id.in_(chunk))
                    ).all()
                )
            for chunk in _chunks(list(expected.steps), 500):
                stock.sla_steps.update(
                    conn.execute(select(SlaStep.event_id).where(SlaStep.event_id.in_(chunk))).scalars()
                )
        if self.receiver is not None:
            stock.alerts = self.receiver.counts()
        for worker in workers:
            stock.sinks[worker.url] = _get(f"{worker.url}/api/sink")
            stock.health[worker.url] = _get(f"{worker.url}/api/health")
        return stock

    def _read_view(self, stock: Stock, worker, customer: str) -> None:
        if worker is None:
            stock.unreadable[customer] = "no live worker"
            return
        try:
            status, view = http("GET", f"{worker.url}/api/customers/{customer}/view")
        except OSError as exc:
            status, view = 0, {"error": repr(exc)}
        if status != 200:
            stock.unreadable[customer] = f"{status} {str(view.get('error'))[:80]}"
            return
        for item in items_of(view):
            stock.item_events.update(r["event_id"] for r in item["history"])
            stock.steps_folded.update(r["event_id"] for r in item.get("sla_log", ()))

    def _read_profiles(self, stock: Stock, workers, expected: Expected) -> None:
        """Profile events are not shown in the view: ask the view whether it has folded them."""
        for event in expected.events:
            if event.kind != "customer" or event.event_id in self._profile_seen or not workers:
                continue
            try:
                status, _ = http(
                    "GET",
                    f"{workers[0].url}/api/customers/{event.customer_id}"
                    f"/view?wait_for={event.event_id}&timeout=0",
                )
            except OSError:
                continue
            if status == 200:
                self._profile_seen.add(event.event_id)
        stock.profile_events = set(self._profile_seen)

    # -- looking until it is over

    def settle(
        self, expected: Expected, *, timeout: float = 180.0, quiet: float = 30.0, confirm: float = 3.0
    ) -> Stock:
        """Take stock until all is in for ``confirm`` s, still for ``quiet`` s, or ``timeout``."""
        deadline = time.monotonic() + timeout
        last, moved_at, complete_since = None, time.monotonic(), None
        while True:
            stock = self.take_stock(expected)
            now = time.monotonic()
            if stock.progress() != last:
                last, moved_at = stock.progress(), now
                complete_since = now if stock.complete else None
            if complete_since is not None and now - complete_since >= confirm:
                return stock
            if now - moved_at >= quiet or now >= deadline:
                return stock
            time.sleep(0.5)  # the cadence of polling the desk's own state

    def logged(self, event_ids: Iterable[str]) -> set[str]:
        """Which of ``event_ids`` are in event_log."""
        found: set[str] = set()
        with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(event_ids)), 500):
                found.update(
                    conn.execute(
                        select(EventRecord.event_id).where(EventRecord.event_id.in_(chunk))
                    ).scalars()
                )
        return found

    def logged_of(self, customer_id: str) -> int:
        """How many events of ``customer_id`` are in event_log."""
        with self.engine.connect() as conn:
            return conn.execute(
                select(func.count()).select_from(EventRecord).where(EventRecord.customer_id == customer_id)
            ).scalar_one()

    # -- topics, read from their beginning

    def read_topics(self, stock: Stock) -> Stock:
        """Add the dead-letter topic and the SLA topic, read from their beginning, to ``stock``."""
        stock.parked, _ = read_topic(self.desk.bootstrap, self.desk.dead_letter_topic, ends=True)
        steps, sla_ends = read_topic(self.desk.bootstrap, self.desk.sla_topic, ends=True)
        stock.published = Counter(orjson.loads(r.value)["event_id"] for r in steps)
        _, event_ends = read_topic(self.desk.bootstrap, self.desk.events_topic, ends=True, records=False)
        stock.ends = {f"{tp.topic}:{tp.partition}": end for tp, end in (sla_ends | event_ends).items()}
        with self.engine.connect() as conn:
            stock.db_positions = {
                f"{t}:{p}": n
                for t, p, n in conn.execute(
                    select(SinkPosition.topic, SinkPosition.partition, SinkPosition.next_offset)
                )
            }
        return stock


def _get(url: str) -> dict:
    try:
        status, body = http("GET", url)
    except OSError as exc:
        return {"state": "unreachable", "status": "unreachable", "error": repr(exc)}
    return body if isinstance(body, dict) else {"body": body}


def _chunks(values: list, size: int) -> Iterable[list]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def read_topic(
    bootstrap: str, topic: str, timeout: float = 60.0, *, ends: bool = False, records: bool = True
):
    """Every record of ``topic``, from the beginning of each partition to its end now.

    With ``ends``, also the end offset of each partition; ``records=False`` reads none.
    """
    found, end_offsets = asyncio.run(_read_topic(bootstrap, topic, timeout, records))
    return (found, end_offsets) if ends else found


async def _read_topic(bootstrap: str, topic: str, timeout: float, wanted: bool):
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list = []
        deadline = asyncio.get_running_loop().time() + timeout
        while wanted and [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"could not read {topic} to its end in {timeout:.0f} s")
            batch = await consumer.getmany(timeout_ms=1000)
            for tp, part in batch.items():
                records.extend(r for r in part if r.offset < ends[tp])
        return records, ends
    finally:
        await consumer.stop()


def dead_letter_problems(parked: list, poison: list[bytes | None], reason_header: str) -> list[str]:
    """What is wrong with the dead-letter topic: it holds the poison, once each, with reasons."""
    have, want = Counter(r.value for r in parked), Counter(poison)
    problems = []
    if missing := want - have:
        problems.append(
            f"poison records not dead-lettered: {sum(missing.values())} of "
            f"{len(poison)}: first {_first([_show(v) for v in missing])}"
        )
    if extra := have - want:
        problems.append(
            f"dead letters that are not the poison sent (or repeats): "
            f"{sum(extra.values())}: first {_first([_show(v) for v in extra])}"
        )
    if unexplained := [r for r in parked if not dict(r.headers).get(reason_header)]:
        problems.append(f"dead letters without a reason header: {len(unexplained)}")
    return problems


def _show(value: bytes | None) -> str:
    return "(no value)" if value is None else repr(value[:120])
