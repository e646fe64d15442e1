"""A fault scenario: a desk under steady load, one fault at a random instant, then the books.

Every test of this suite reads the same way::

    worker, = scenario.start_workers(1)
    scenario.start_load(seconds=30)
    scenario.after_random_records(200, 900, "worker killed -9", lambda: scenario.kill(worker))
    stock = scenario.finish()
    assert stock.nothing_lost, scenario.verdict(stock)

The random instant is a number of records drawn from ``random.Random(seed)``: the
fault strikes once the broker has acknowledged that many more records.  The seed
(``KEYDESK_FAULT_SEED`` to repeat a run) and what happened when head the failure
message, followed by the books' figures.
"""

from __future__ import annotations

import asyncio
import random
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaProducer

from sla_rules import load_rules
from tests.e2e.conftest import PARTITIONS, Desk, Worker, new_desk
from tests.faults.books import Books, Expected, Stock
from tests.faults.oracle import steps_due, webhook_alerts_due
from tests.faults.traffic import SteadyProducer, Traffic

RULES = load_rules()


class FaultScenario:
    """One desk on the module's broker, a steady producer, the alert receiver and the books."""

    def __init__(
        self,
        bootstrap: str,
        tmp: Path,
        seed: int,
        receiver,
        *,
        db_url: str | None = None,
        worker_db_url: str | None = None,
        customers: int = 8,
        **env: str,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.db_url = db_url or f"sqlite:///{tmp / 'keydesk.sqlite'}"
        self.desk: Desk = new_desk(bootstrap, tmp, KEYDESK_DB=worker_db_url or self.db_url, **env)
        self.traffic = Traffic.over(self.rng, customers, tag=self.desk.prefix[-4:])
        self.receiver = receiver
        self.books = Books(self.desk, self.db_url, receiver)
        self.producer: SteadyProducer | None = None
        self.timeline: list[str] = []
        self._started = time.monotonic()

    # -- setting the scene

    def start_workers(self, count: int = 1, timeout: float = 120.0) -> list[Worker]:
        workers = [self.desk.start_worker() for _ in range(count)]
        self.note(f"{count} worker(s) started: {', '.join(w.url for w in workers)}")
        self.wait_until_assigned(timeout)
        return workers

    def start_load(
        self,
        seconds: float = 30.0,
        rate: float = 50.0,
        *,
        alerting: bool = True,
        poison: dict[int, list] | None = None,
    ) -> SteadyProducer:
        """Start the steady producer; ``alerting`` faults make five webhook alerts each."""
        self.traffic.webhook = self.receiver.url if alerting else None
        self.traffic.alerting_every = 5 if alerting else 0
        self.producer = SteadyProducer(
            self.desk.bootstrap,
            self.desk.events_topic,
            self.traffic,
            rate=rate,
            seconds=seconds,
            poison=poison,
        ).start()
        self.note(
            f"load started: {rate:g} events/s for {seconds:g} s over {len(self.traffic.customers)} customers"
        )
        return self.producer

    def wait_until_assigned(self, timeout: float = 120.0) -> None:
        """Wait until every live worker has joined and each partition has exactly one owner.

        Unlike the e2e desks' wait, a worker may own none: with four partitions
        faust's sticky assignor can leave a third worker idle (2 + 2 + 0).  A
        worker has joined once it logged ``worker.processing`` (after a rebalance).
        """
        deadline = time.monotonic() + timeout
        while True:
            live = [w for w in self.desk.workers if w.alive()]
            joined = all(b'"worker.processing"' in w.log_path.read_bytes() for w in live)
            owned = {w.url: w.partitions() for w in live}
            flat = sorted(p for ps in owned.values() if ps for p in ps)
            if joined and owned and None not in owned.values() and flat == list(range(PARTITIONS)):
                self.note(f"partitions assigned: {owned}")
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"partitions not assigned after {timeout:.0f} s: {owned}\n"
                    + "\n".join(self.timeline + self.worker_errors())
                )
            time.sleep(0.2)  # polling the workers' own health reports

    # -- the fault

    def after_random_records(self, low: int, high: int, what: str, fault: Callable[[], object]) -> int:
        """Strike ``fault`` once the broker has acknowledged ``low`` to ``high`` more records."""
        count = len(self.producer.acked) + self.rng.randrange(low, high)
        under_load = self.producer.wait_for_acked(count)
        fault()
        self.note(
            f"{what} after record {count}"
            if under_load
            else f"{what} after the load ended, at record {len(self.producer.acked)}"
        )
        return count

    def kill(self, worker: Worker) -> None:
        """kill -9: no goodbye to the group, no flush, no commit."""
        worker.killed_wall = time.time()
        worker.process.send_signal(signal.SIGKILL)
        worker.process.wait(30)

    def note(self, what: str) -> None:
        self.timeline.append(f"t={time.monotonic() - self._started:5.1f}s {what}")

    # -- the books

    def expected(self) -> Expected:
        """What must be there, from what the broker acknowledged (call after the load)."""
        producer = self.producer
        acked = {e.event_id for e in producer.acked_events}
        events = [e for e in self.traffic.events if e.event_id in acked]
        steps, views = steps_due(events, RULES, datetime.now(UTC))
        return Expected(
            events=events,
            steps=steps,
            alerts=webhook_alerts_due(steps, views),
            poison=[r.value for r in producer.acked_poison],
            customers=list(self.traffic.customers),
        )

    def finish(self, **settle) -> Stock:
        """Wait for the load to end, then take stock until it is all in (or stops moving)."""
        self.producer.join()
        self.note(
            f"load over: {len(self.producer.acked)} records acknowledged, "
            f"{len(self.producer.unacked)} given up"
        )
        expected = self.expected()
        stock = self.books.read_topics(self.books.settle(expected, **settle))
        self.note("stock taken")
        print(self.verdict(stock))  # shown with the test's output (pytest -rP, or on failure)
        return stock

    def verdict(self, stock: Stock) -> str:
        """The failure message: how to repeat it, what happened when, and the figures."""
        workers = [
            f"  worker {w.url}: " + ("running" if w.alive() else f"exited with {w.process.returncode}")
            for w in self.desk.workers
        ]
        return "\n".join(
            [
                f"seed {self.seed} (KEYDESK_FAULT_SEED={self.seed} repeats this run)",
                *self.timeline,
                stock.figures(),
                *workers,
                *self.worker_errors(),
            ]
        )

    def worker_errors(self, shown: int = 5) -> list[str]:
        """The first distinct error lines of the workers' logs, with where to read the rest."""
        lines = []
        for worker in self.desk.workers:
            seen: dict[str, str] = {}
            for raw in worker.log_path.read_bytes().splitlines():
                if b'"error"' not in raw and b'"critical"' not in raw:
                    continue
                try:
                    entry = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    continue
                if entry.get("level") in ("error", "critical"):
                    name = str(entry.get("event"))[:100]
                    detail = str(entry.get("exception") or entry.get("error") or "")
                    seen.setdefault(name, detail.strip().splitlines()[-1][:200] if detail else "")
            if seen:
                lines.append(f"  errors in {worker.log_path}:")
                lines.extend(f"    {name} {detail}" for name, detail in list(seen.items())[:shown])
        return lines

    def close(self) -> None:
        if self.producer is not None:
            self.producer.stop()
        self.desk.stop()
        self.books.close()


def publish_raw(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> None:
    """Send ``(key, value)`` records in order and wait until the broker has all of them."""
    asyncio.run(_publish_raw(bootstrap, topic, records))


async def _publish_raw(bootstrap: str, topic: str, records) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    try:
        sent = [await producer.send(topic, value, key=key) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
