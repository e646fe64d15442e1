"""The steady traffic a fault strikes: key-account customers and their faults' lifecycles.

:class:`Traffic` decides *what* is sent: each customer registered first (diamond
tier, its account manager reachable by webhook), then faults reported, worked and
restored, now and then a closed one or a profile change.  It keeps every event it
handed out, so the accounting can say what must have arrived.

SLA steps must not depend on when a worker happens to fold an event, or a crash
would change what is due, not only when.  So every clock's steps are either all
in the past when its fault is reported, or far in the future:

* an *alerting* fault is a critical (P1) fault the hotline logs six minutes late:
  its 5-minute response clock has already passed 50/75/90 % and breached, so five
  steps (three warnings, the breach, ladder step 1) are due the moment it is
  folded, and step 2 only 30 minutes after the breach;
* every other fault is a P4 fault (30 minutes to respond): no step falls due
  while a test runs, only the ``sla.met`` of the clocks its lifecycle stops.

:class:`SteadyProducer` decides *when*: a thread of its own sends the traffic at a
fixed rate (acks=all), mixes in the poison records it is given, and retries every
record until the broker has acknowledged it, so "sent" means "the broker has it".
"""

from __future__ import annotations

import asyncio
import random
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from aiokafka import AIOKafkaProducer

from schemas.envelope import Event, new_event

# A fault's life after its report, in the order the desk works it (streams/lifecycles.py).
WORKED = (("acknowledged", {}), ("dispatched", {"team": "广州传输一班"}), ("repair_started", {}))
PAUSED = ("pending_customer", "in_progress")  # status changes: restore clock paused, resumed
LOGGED_LATE_BY = timedelta(minutes=6)
MAX_OPEN_PER_CUSTOMER = 4


@dataclass
class FaultInProgress:
    """A fault of the traffic and the steps of its life still to be sent."""

    fault_id: str
    to_do: list[tuple[str, dict]]


@dataclass
class Traffic:
    """The events of a steady stream over ``customers`` key accounts, in the order handed out."""

    rng: random.Random
    customers: list[str]
    webhook: str | None = None  # the account managers' robot: alerts are sent there
    alerting_every: int = 5  # every n-th fault is a P1 logged late (0: none)
    closing_every: int = 4  # every n-th fault is also closed, up to 15 per customer
    # (a view keeps the history of its 20 latest closed)
    events: list[Event] = field(default_factory=list)
    _open: dict[str, list[FaultInProgress]] = field(default_factory=dict)
    _closing: Counter = field(default_factory=Counter)
    _faults: int = 0

    @classmethod
    def over(cls, rng: random.Random, customers: int, tag: str, **kwargs) -> Traffic:
        return cls(rng=rng, customers=[f"C-{tag}-{n:02d}" for n in range(customers)], **kwargs)

    def registrations(self) -> list[Event]:
        """Each customer's registration: diamond, with an account manager and a chain."""
        now = datetime.now(UTC)
        return [
            self._emit(
                "customer.registered",
                customer,
                customer,
                {
                    "name": f"大客户 {customer}",
                    "tier": "diamond",
                    "region": "广东/广州",
                    "account_manager": self._person(f"AM-{n}", f"客户经理{n}"),
                    "escalation_chain": [
                        {"role": "account_manager", **self._person(None, f"客户经理{n}")},
                        {"role": "department_head", "name": f"部门负责人{n}"},
                    ],
                },
                now,
            )
            for n, customer in enumerate(self.customers)
        ]

    def _person(self, staff_id: str | None, name: str) -> dict:
        person = {"id": staff_id, "name": name} if staff_id else {"name": name}
        if self.webhook:
            person["webhook"] = self.webhook
        return person

    def next(self) -> Event:
        """The next event: a step of an open fault, a new fault, or a profile change."""
        now = datetime.now(UTC)
        customer = self.rng.choice(self.customers)
        if self.rng.random() < 0.02:
            return self._emit(
                "customer.updated",
                customer,
                customer,
                {"region": f"广东/广州/{self.rng.randrange(100)}"},
                now,
            )
        open_faults = self._open.setdefault(customer, [])
        if open_faults and (len(open_faults) >= MAX_OPEN_PER_CUSTOMER or self.rng.random() < 0.8):
            fault = self.rng.choice(open_faults)
            step, payload = fault.to_do.pop(0)
            if not fault.to_do:
                open_faults.remove(fault)
            return self._emit(f"fault.{step}", customer, fault.fault_id, payload, now)
        return self._report(customer, open_faults, now)

    def _report(self, customer: str, open_faults: list[FaultInProgress], now: datetime) -> Event:
        self._faults += 1
        n = self._faults
        fault_id = f"F-{n:05d}"
        alerting = bool(self.alerting_every) and n % self.alerting_every == 0
        to_do = [(step, dict(payload)) for step, payload in WORKED]
        if self.rng.random() < 0.3:
            to_do += [("status_changed", {"status": status}) for status in PAUSED]
        to_do.append(("restored", {"cause": "光缆中断"}))
        if self.closing_every and n % self.closing_every == 0 and self._closing[customer] < 15:
            self._closing[customer] += 1
            to_do.append(("closed", {"resolution": "熔接恢复"}))
        open_faults.append(FaultInProgress(fault_id, to_do))
        payload = {
            "severity": "critical" if alerting else "warning",
            "summary": "专线中断",
            "service": "MPLS VPN",
        }
        return self._emit(
            "fault.reported",
            customer,
            fault_id,
            payload,
            now - LOGGED_LATE_BY if alerting else now,
            recorded=now,
        )

    def _emit(
        self,
        event_type: str,
        customer: str,
        entity: str,
        payload: dict,
        occurred: datetime,
        recorded: datetime | None = None,
    ) -> Event:
        event = new_event(
            event_type,
            customer,
            entity,
            payload,
            source="hotline",
            actor="hotline-7",
            occurred_at=occurred,
            now=recorded or occurred,
        )
        self.events.append(event)
        return event


@dataclass
class Record:
    """One Kafka record to send: an event of the traffic, or a poison record."""

    key: bytes | None
    value: bytes | None
    event: Event | None = None


class SteadyProducer:
    """Sends records at ``rate`` per second for ``seconds`` from its own thread and loop.

    Every record is retried until the broker acknowledges it (acks=all), through
    a broker crash too; ``acked`` lists what the broker has, in order.  Poison
    records given in ``poison`` (bytes, or a function of the customer id giving them)
    go out right after the event of that number, keyed by that event's customer.
    """

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        traffic: Traffic,
        *,
        rate: float = 50.0,
        seconds: float = 30.0,
        poison: dict[int, Iterable[bytes | None]] | None = None,
        give_up_after: float = 120.0,
    ) -> None:
        self.bootstrap, self.topic, self.traffic = bootstrap, topic, traffic
        self.rate, self.seconds, self.give_up_after = rate, seconds, give_up_after
        self.poison = {n: list(values) for n, values in (poison or {}).items()}
        self.acked: list[Record] = []
        self.unacked: list[Record] = []
        self.errors: list[str] = []
        self.sent_events = 0
        self._failing = 0
        self._progress = threading.Condition()
        self._stop = threading.Event()
        self.crashed: BaseException | None = None
        self._thread = threading.Thread(target=self._main, daemon=True, name="steady-producer")

    # -- what the test sees

    @property
    def acked_events(self) -> list[Event]:
        return [r.event for r in self.acked if r.event is not None]

    @property
    def acked_poison(self) -> list[Record]:
        return [r for r in self.acked if r.event is None]

    def start(self) -> SteadyProducer:
        self._thread.start()
        return self

    def wait_for_acked(self, count: int, timeout: float = 120.0) -> bool:
        """Block until the broker acknowledged ``count`` records; False if the load ended first."""
        with self._progress:
            self._progress.wait_for(lambda: len(self.acked) >= count or self.crashed or self.done, timeout)
            if self.crashed is not None:
                raise AssertionError(f"the steady producer crashed: {self.crashed!r}")
            if len(self.acked) < count and not self.done:
                raise AssertionError(
                    f"the producer had {len(self.acked)} of {count} records "
                    f"acknowledged after {timeout:.0f} s; errors: "
                    f"{self.errors[-3:]}"
                )
            return len(self.acked) >= count

    @property
    def done(self) -> bool:
        return not self._thread.is_alive() and self._thread.ident is not None

    def join(self) -> None:
        """Wait until the load is over and every record is acknowledged (or given up)."""
        self._thread.join(self.seconds + self.give_up_after + 30)
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(30)
        if self.crashed is not None:
            raise AssertionError(f"the steady producer crashed: {self.crashed!r}") from self.crashed

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(30)

    # -- the thread

    def _main(self) -> None:
        try:
            asyncio.run(self._run())
        except BaseException as exc:  # noqa: BLE001 - handed to the test by join()
            self.crashed = exc
            with self._progress:
                self._progress.notify_all()

    async def _run(self) -> None:
        producer = await self._connect()
        pending = [Record(e.customer_id.encode(), e.to_bytes(), e) for e in self.traffic.registrations()]
        loop = asyncio.get_running_loop()
        started = loop.time()
        ends = started + self.seconds
        tick = 0.1
        owed = 0.0
        try:
            while not self._stop.is_set():
                now = loop.time()
                if now < ends:
                    owed += self.rate * tick
                    while owed >= 1:
                        owed -= 1
                        pending.extend(self._next_records())
                elif not pending:
                    return
                elif now > ends + self.give_up_after:
                    self.unacked.extend(pending)
                    return
                if pending:
                    pending, producer = await self._send(producer, pending)
                await asyncio.sleep(max(0.0, tick - (loop.time() - now)))  # the rate's cadence
        finally:
            await producer.stop()
            with self._progress:
                self._progress.notify_all()

    def _next_records(self) -> list[Record]:
        event = self.traffic.next()
        self.sent_events += 1
        records = [Record(event.customer_id.encode(), event.to_bytes(), event)]
        for value in self.poison.pop(self.sent_events, ()):  # bytes, or made for the customer
            value = value(event.customer_id) if callable(value) else value
            records.append(Record(event.customer_id.encode(), value))
        return records

    async def _connect(self) -> AIOKafkaProducer:
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                enable_idempotence=True,
                linger_ms=5,
                request_timeout_ms=5000,
                retry_backoff_ms=200,
            )
            try:
                await producer.start()
                return producer
            except Exception as exc:  # noqa: BLE001 - the broker may be down: keep trying
                self.errors.append(repr(exc))
                await producer.stop()
                if self._stop.wait(0.5):  # retry backoff while the broker is away
                    raise

    async def _send(
        self, producer: AIOKafkaProducer, records: list[Record]
    ) -> tuple[list[Record], AIOKafkaProducer]:
        """Send a tick's records; returns those to retry (and the producer to use)."""
        futures: list = []
        for record in records:
            try:
                futures.append(
                    await asyncio.wait_for(producer.send(self.topic, record.value, key=record.key), 10)
                )
            except Exception as exc:  # noqa: BLE001 - no metadata while the broker is down
                futures.append(exc)
        failed = []
        for record, future in zip(records, futures):
            try:
                if isinstance(future, Exception):
                    raise future
                await future
            except Exception as exc:  # noqa: BLE001 - retried, as any producer would
                self.errors.append(repr(exc))
                failed.append(record)
            else:
                with self._progress:
                    self.acked.append(record)
                    self._progress.notify_all()
        self._failing = self._failing + 1 if failed else 0
        if self._failing >= 5:  # a producer that keeps failing: start a fresh one
            self._failing = 0
            await producer.stop()
            producer = await self._connect()
        return failed, producer
