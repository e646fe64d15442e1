"""SLA timers at scale (issue 4): 1,000,000 open clocks in one worker.

Four measurements, each reporting ratios taken within this one run (the machine
may be shared, so absolute figures drift; ratios and spreads are what to read):

  1. memory of the deadline index per clock (tracemalloc), for keys shaped like
     keydesk's ``(customer_id, "fault", item_id)``; the key strings are counted
     apart, since in a worker they are shared with the customer views;
  2. tick cost: ``DeadlineIndex.pop_due`` with 1M vs 1k open clocks for ticks
     that each find the same number due (ratio 1M/1k), an empty tick at 1M, and
     for scale the full ``SlaTimers.tick`` cost per due item (engine + events);
  3. replay speed of a recorded stream (``streams.replay.replay``) in events/s,
     against the bare fold and the fold + SLA summaries over the same events;
  4. escalation latency after the deadline in a live worker (own local broker,
     ``KEYDESK_CLOCK=live``) while it folds a steady background load: P1 faults
     of diamond customers with a 1-minute response target, backdated so that
     their breaches fall during the run; ``seconds_after_due`` of
     ``sla.breached`` from the worker's log, and arrival on the SLA topic.

    .venv/bin/python bench/sla_timers.py                 # defaults: < 5 min
    .venv/bin/python bench/sla_timers.py --clocks 1000000 --replay-events 50000
    .venv/bin/python bench/sla_timers.py --only memory,ticks --no-write
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import platform
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.event_mix import generate  # noqa: E402
from handlers.local.ports import free_port as _free_port  # noqa: E402
from schemas.envelope import decode_event, utc_iso  # noqa: E402
from sla_rules import load_rules  # noqa: E402
from streams.customer_view import find_item, fold, new_view  # noqa: E402
from streams.deadline_index import DeadlineIndex  # noqa: E402
from streams.item_sla import items_touched_by, sla_summary  # noqa: E402
from streams.replay import replay  # noqa: E402
from streams.sla_timers import SlaTimers, to_us  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## SLA timers (issue 4)"
BASE_US = to_us(datetime(2026, 11, 2, tzinfo=UTC))
STEP_US = 1_000  # 1 ms between consecutive due instants in the tick test


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """median [min-max] of repeated figures."""
    return (
        fmt.format(statistics.median(values))
        + " ["
        + fmt.format(min(values))
        + "-"
        + fmt.format(max(values))
        + "]"
    )


def say(text: str = "") -> None:
    print(text, flush=True)


# -- 1. memory per clock ------------------------------------------------------------


def index_memory(clocks: int, customers: int, seed: int) -> dict:
    rng = random.Random(seed)
    gc.collect()
    tracemalloc.start()
    try:
        t0 = tracemalloc.get_traced_memory()[0]
        customer_ids = [f"C-{n:07d}" for n in range(customers)]
        item_ids = [f"F-{n:08d}" for n in range(clocks)]
        t1 = tracemalloc.get_traced_memory()[0]
        strings = t1 - t0 - sys.getsizeof(customer_ids) - sys.getsizeof(item_ids)
        kind = "fault"
        keys = [(customer_ids[n % customers], kind, item_ids[n]) for n in range(clocks)]
        t2 = tracemalloc.get_traced_memory()[0]
        tuples = t2 - t1 - sys.getsizeof(keys)
        index = DeadlineIndex()
        horizon = 30 * 86_400 * 1_000_000
        for n, key in enumerate(keys):
            index.schedule(key, BASE_US + rng.randrange(horizon), n & 3)
        t3 = tracemalloc.get_traced_memory()[0]
        structures = t3 - t2
        partition_dict = sys.getsizeof(index._partition)  # its keys and values are shared
        # Worst case before compaction: every clock rescheduled once, as SlaTimers
        # does (a fresh but equal key tuple per schedule call): two heap entries
        # per clock, the stale one keeping its old tuple and due instant alive.
        for n in range(clocks):
            key = (customer_ids[n % customers], kind, item_ids[n])
            index.schedule(key, BASE_US + horizon + rng.randrange(horizon), n & 3)
        t4 = tracemalloc.get_traced_memory()[0]
        heap_entries = len(index._heap)
        worst = t4 - t2
        assert len(index) == clocks
    finally:
        tracemalloc.stop()
    del index, keys
    gc.collect()
    return {
        "clocks": clocks,
        "customers": customers,
        "strings_per_clock": strings / clocks,
        "structures_per_clock": structures / clocks,
        "partition_dict_per_clock": partition_dict / clocks,
        "tuples_per_clock": tuples / clocks,
        "index_per_clock": (structures + tuples) / clocks,
        "with_keys_per_clock": (structures + tuples + strings) / clocks,
        "worst_index_per_clock": (worst + tuples) / clocks,
        "worst_with_keys_per_clock": (worst + tuples + strings) / clocks,
        "worst_heap_entries_per_clock": heap_entries / clocks,
    }


# -- 2. tick cost -------------------------------------------------------------------


class TickBed:
    """An index of ``n`` clocks due at consecutive 1 ms slots, ticked k at a time.

    Each timed ``pop_due(now)`` finds exactly k clocks due; the fired keys are then
    (untimed) rescheduled at random instants past the test's horizon, as the
    worker reschedules an item at its next change, so the size stays ``n``.  When
    the slots run out (small n), the index is rebuilt untimed.
    """

    def __init__(self, n: int, rng: random.Random) -> None:
        self.n, self.rng = n, rng
        self.keys = [(f"C-{i % max(1, n // 10):07d}", "fault", f"F-{i:08d}") for i in range(n)]
        self.far = BASE_US + 10 * n * STEP_US + 10**12
        self.schedule_ns: list[float] = []
        self._fill()

    def _fill(self) -> None:
        slots = list(range(self.n))
        self.rng.shuffle(slots)
        self.index = DeadlineIndex()
        for key, slot in zip(self.keys, slots, strict=True):
            self.index.schedule(key, BASE_US + slot * STEP_US, slot & 3)
        self.cursor = 0  # first slot not yet popped

    def tick(self, k: int) -> float:
        if self.cursor + k > self.n:
            self._fill()
        now = BASE_US + (self.cursor + k - 1) * STEP_US
        started = time.perf_counter_ns()
        fired = self.index.pop_due(now)
        elapsed = time.perf_counter_ns() - started
        if len(fired) != k:
            raise AssertionError(f"tick found {len(fired)} due, expected {k}")
        self.cursor += k
        later = [self.far + self.rng.randrange(10**12) for _ in fired]
        schedule = self.index.schedule
        started = time.perf_counter_ns()
        for key, due in zip(fired, later):
            schedule(key, due, 0)
        self.schedule_ns.append((time.perf_counter_ns() - started) / k)
        return elapsed


def tick_cost(
    big: int, small: int, dues: list[int], ticks: int, repeats: int, seed: int, mid: tuple[int, ...] = ()
) -> dict:
    rng = random.Random(seed)
    built = time.perf_counter()
    sizes = [small, *mid, big]
    beds = {n: TickBed(n, rng) for n in sizes}
    build_seconds = time.perf_counter() - built
    out: dict = {"build_seconds": build_seconds, "per_k": {}}
    gc.disable()  # a collection pass over 1M tuples inside one timed tick is not the index
    try:
        for k in dues:
            rows = {**{n: [] for n in sizes}, "ratio": []}
            for _ in range(repeats):
                medians = {}
                for n in sizes:  # interleaved: drift hits every size alike
                    samples = [beds[n].tick(k) for _ in range(ticks)]
                    medians[n] = statistics.median(samples)
                    rows[n].append(medians[n] / 1000)
                rows["ratio"].append(medians[big] / medians[small])
            out["per_k"][k] = rows
        index = beds[big].index
        empty = []
        for _ in range(repeats):
            samples = []
            for _ in range(2000):
                started = time.perf_counter_ns()
                index.pop_due(BASE_US - 1)
                samples.append(time.perf_counter_ns() - started)
            empty.append(statistics.median(samples))
        out["empty_pop_due_ns"] = empty
        # The live worker's tick over all partitions when nothing is due.
        timers = SlaTimers(None, lambda c: 0)
        timers.indexes = {0: index, 1: DeadlineIndex(), 2: DeadlineIndex(), 3: DeadlineIndex()}
        before = datetime(2026, 11, 1, tzinfo=UTC)
        empty_tick = []
        for _ in range(repeats):
            samples = []
            for _ in range(2000):
                started = time.perf_counter_ns()
                timers.tick({}, before)
                samples.append(time.perf_counter_ns() - started)
            empty_tick.append(statistics.median(samples))
        out["empty_slatimers_tick_ns"] = empty_tick
        out["schedule_ns"] = {n: statistics.median(beds[n].schedule_ns) for n in beds}
        out["big_size_at_end"] = len(beds[big].index)
    finally:
        gc.enable()
    return out


def full_tick_cost(items: int, repeats: int) -> dict:
    """``SlaTimers.tick`` per due item: diamond P1 faults past warnings and breach."""
    rules = load_rules()
    per_item, steps = [], 0
    opened = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
    for r in range(repeats):
        views: dict = {}
        timers = SlaTimers(rules, lambda c: hash(c) & 3)
        for n in range(items):
            cid = f"D-{r}-{n:05d}"
            view = views[cid] = new_view(cid)
            for event in (
                _event(
                    "customer.registered",
                    cid,
                    cid,
                    opened,
                    {"name": cid, "tier": "diamond", "account_manager": {"id": "AM-1", "name": "李敏"}},
                ),
                _event(
                    "fault.reported",
                    cid,
                    f"PF-{n:05d}",
                    opened,
                    {"severity": "critical", "priority": "P1", "summary": "bench", "service": "DIA"},
                ),
            ):
                fold(view, decode_event(orjson.dumps(event)))
            item = find_item(view, "fault", f"PF-{n:05d}")
            item["sla"] = sla_summary(view, item, rules)
            timers.schedule(view, item)
        started = time.perf_counter()
        fired = timers.tick(views, opened + timedelta(minutes=6))
        per_item.append((time.perf_counter() - started) / items * 1000)
        steps = len(fired) / items
    return {"items": items, "ms_per_item": per_item, "steps_per_item": steps}


def _event(
    event_type: str, customer: str, entity: str, at: datetime, payload: dict, recorded: datetime | None = None
) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": 1,
        "customer_id": customer,
        "entity_id": entity,
        "occurred_at": utc_iso(at),
        "recorded_at": utc_iso(recorded or at),
        "source": "system",
        "actor": "bench",
        "payload": payload,
    }


# -- 3. replay speed ----------------------------------------------------------------


def replay_speed(events: int, repeats: int, partitions: int) -> dict:
    rules = load_rules()
    customers = max(50, events // 100)  # as bench/throughput.py: 2,000 per 200k events
    lines = [value for _, value in generate(events, customers=customers)]

    def fold_only() -> None:
        views: dict = {}
        for line in lines:
            event = decode_event(line)
            fold(views.setdefault(event.customer_id, new_view(event.customer_id)), event)

    def fold_and_summaries() -> None:
        """What a live worker does per event: fold, SLA summary, (re)schedule."""
        views: dict = {}
        timers = SlaTimers(rules, lambda c: hash(c) % partitions)
        for line in lines:
            event = decode_event(line)
            view = views.setdefault(event.customer_id, new_view(event.customer_id))
            fold(view, event)
            for kind, item_id in items_touched_by(view, event):
                item = find_item(view, kind, item_id)
                if item is not None:
                    item["sla"] = sla_summary(view, item, rules)
                    timers.schedule(view, item)

    def replay_steps_not_resummarised():
        """Evidence only: replay with folded-back step events not re-summarised.

        ``sla_summary`` reads an item's history and its customer's profile, not its
        ``sla_log``, so folding a step event cannot change it; the identical step
        events are checked below.
        """
        import streams.replay as module

        touched = module.items_touched_by
        module.items_touched_by = lambda view, event: set() if event.kind == "sla" else touched(view, event)
        try:
            return replay(lines, rules, partitions)
        finally:
            module.items_touched_by = touched

    rates: dict[str, list[float]] = {"fold": [], "fold+sla": [], "replay": [], "replay-no-resummary": []}
    steps, same = 0, True
    for _ in range(repeats):
        baseline = None
        for name, run in (
            ("fold", fold_only),
            ("fold+sla", fold_and_summaries),
            ("replay", lambda: replay(lines, rules, partitions)),
            ("replay-no-resummary", replay_steps_not_resummarised),
        ):
            started = time.perf_counter()
            result = run()
            rates[name].append(len(lines) / (time.perf_counter() - started))
            if name.startswith("replay"):
                ids = [(s.event_id, s.occurred_at) for s in result.steps]
                steps = len(ids)
                same = same and (baseline is None or ids == baseline)
                baseline = ids
    return {
        "events": len(lines),
        "customers": customers,
        "rates": rates,
        "steps": steps,
        "same_steps": same,
        "ratio_replay_fold": [f / r for f, r in zip(rates["fold"], rates["replay"])],
        "ratio_replay_sla": [f / r for f, r in zip(rates["fold+sla"], rates["replay"])],
    }


# -- 4. escalation latency in a live worker -------------------------------------------


def _rules_file(workdir: Path) -> Path:
    text = (ROOT / "sla_rules" / "default_rules.toml").read_text(encoding="utf-8")
    old = 'P1 = { response = "5m",  restore = "2h"'
    if text.count(old) != 1:
        raise RuntimeError(f"cannot find the diamond P1 fault targets ({old!r}) in the rules")
    path = workdir / "rules-diamond-p1-1m.toml"
    path.write_text(text.replace(old, 'P1 = { response = "1m",  restore = "2h"'), encoding="utf-8")
    return path


class LogTail:
    """Follows the worker's JSON log (stderr) and keeps what the bench needs."""

    def __init__(self, path: Path) -> None:
        self.path, self.offset, self.partial = path, 0, b""
        self.folded: list[datetime] = []  # events of the events topic (not SLA steps)
        self.sla_folded = 0
        self.steps: list[dict] = []
        self.rebuilt = 0
        self.errors: list[tuple[datetime, str]] = []

    def poll(self) -> None:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            data = log.read()
            self.offset += len(data)
        data = self.partial + data
        *lines, self.partial = data.split(b"\n")
        for line in lines:
            if b'"event.folded"' in line:
                record = orjson.loads(line)
                if str(record.get("event_type", "")).startswith("sla."):
                    self.sla_folded += 1
                else:
                    self.folded.append(datetime.fromisoformat(record["timestamp"]))
            elif b'"sla.step_published"' in line:
                self.steps.append(orjson.loads(line))
            elif b'"sla_timers.rebuilt"' in line or b'"worker.processing"' in line:
                self.rebuilt += 1
            elif b'"level":"error"' in line or b'"level":"critical"' in line:
                record = orjson.loads(line)
                self.errors.append(
                    (datetime.fromisoformat(record["timestamp"]), line[:400].decode(errors="replace"))
                )


async def _escalation_run(bootstrap: str, prefix: str, args, log: LogTail, worker: subprocess.Popen) -> dict:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    events_topic, sla_topic = f"{prefix}.events", f"{prefix}.sla"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, enable_idempotence=True)
    consumer = AIOKafkaConsumer(
        sla_topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await producer.start()
    await consumer.start()
    arrivals: dict[str, float] = {}  # event_id -> seconds after due when it arrived
    stop_consumer = asyncio.Event()

    async def consume() -> None:
        while not stop_consumer.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            received = datetime.now(UTC)
            for records in batch.values():
                for record in records:
                    body = orjson.loads(record.value)
                    if body["event_type"] == "sla.breached" and body["customer_id"].startswith("SLA-D-"):
                        due = datetime.fromisoformat(body["payload"]["due_at"])
                        arrivals[body["event_id"]] = (received - due).total_seconds()

    async def wait_for(condition, what: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            log.poll()
            if worker.poll() is not None:
                raise RuntimeError(
                    f"worker exited ({worker.returncode}) while waiting for {what}; "
                    f"errors: {[e for _, e in log.errors[-3:]]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}; errors: {[e for _, e in log.errors[-3:]]}")
            await asyncio.sleep(0.1)

    consumer_task = asyncio.create_task(consume())
    try:
        await wait_for(lambda: log.rebuilt > 0, "the worker to start processing", 120)
        # Registrations: the diamond customers of the P1 faults and the background's.
        now = datetime.now(UTC)
        diamond = [f"SLA-D-{n:03d}" for n in range(args.diamond_customers)]
        for cid in diamond:
            body = _event(
                "customer.registered",
                cid,
                cid,
                now,
                {"name": f"客户{cid}", "tier": "diamond", "account_manager": {"id": "AM-1", "name": "李敏"}},
            )
            await producer.send(events_topic, orjson.dumps(body), key=cid.encode())
        background = generate(10**9, customers=args.bg_customers, seed=11)
        registrations = 0
        for _ in range(args.bg_customers):
            key, value = next(background)
            await producer.send(events_topic, _retime(value, now), key=key)
            registrations += 1
        await producer.flush()
        expected = len(diamond) + registrations
        await wait_for(lambda: len(log.folded) >= expected, "the registrations to be folded", 120)
        folded_before = len(log.folded)

        # The timed phase: background at a steady rate, P1 faults spread over it.
        rng = random.Random(5)
        t0 = time.monotonic()
        wall0 = datetime.now(UTC)
        faults = []
        for n in range(args.faults):
            publish_at = args.spread * n / max(1, args.faults - 1)
            lead = rng.uniform(args.lead_min, args.lead_max)  # publish -> breach
            faults.append((publish_at, lead, diamond[n % len(diamond)], f"PF-{n:05d}"))
        last_breach = max(p + lead for p, lead, _, _ in faults)
        end = last_breach + args.tail
        sent_bg = 0
        next_fault = 0
        tick = 0.05
        while True:
            elapsed = time.monotonic() - t0
            if elapsed >= end:
                break
            now = datetime.now(UTC)
            due_bg = int(args.rate * elapsed) - sent_bg
            for _ in range(due_bg):
                key, value = next(background)
                await producer.send(events_topic, _retime(value, now), key=key)
            sent_bg += max(0, due_bg)
            while next_fault < len(faults) and faults[next_fault][0] <= elapsed:
                _, lead, cid, fid = faults[next_fault]
                breach = now + timedelta(seconds=lead)
                body = _event(
                    "fault.reported",
                    cid,
                    fid,
                    breach - timedelta(minutes=1),
                    {"severity": "critical", "priority": "P1", "summary": "bench P1", "service": "DIA"},
                    recorded=now,
                )
                await producer.send(events_topic, orjson.dumps(body), key=cid.encode())
                next_fault += 1
            log.poll()
            if worker.poll() is not None:
                raise RuntimeError(f"worker exited ({worker.returncode}); {[e for _, e in log.errors[-3:]]}")
            await asyncio.sleep(max(0.0, tick - (time.monotonic() - t0 - elapsed)))
        duration = time.monotonic() - t0
        await producer.flush()
        wall1 = datetime.now(UTC)
        log.poll()
        backlog = sent_bg + registrations + len(diamond) + args.faults - len(log.folded)
        folded_window = sum(1 for at in log.folded[folded_before:] if wall0 <= at <= wall1)

        def breached() -> list[dict]:
            return [
                s
                for s in log.steps
                if s.get("event_type") == "sla.breached"
                and str(s.get("customer_id", "")).startswith("SLA-D-")
                and s.get("metric") == "response"
            ]

        try:
            await wait_for(
                lambda: len(breached()) >= args.faults and len(arrivals) >= args.faults, "every breach", 60
            )
        except RuntimeError as exc:
            say(f"  warning: {exc}")
        steps = breached()
        escalations = [
            s
            for s in log.steps
            if s.get("event_type") == "sla.escalation_due"
            and str(s.get("customer_id", "")).startswith("SLA-D-")
        ]
        published_lag = [
            (datetime.fromisoformat(s["timestamp"]) - datetime.fromisoformat(s["due_at"])).total_seconds()
            for s in steps
        ]
        window_steps: dict[str, int] = {}
        for s in log.steps:
            if wall0 <= datetime.fromisoformat(s["timestamp"]) <= wall1:
                window_steps[s["event_type"]] = window_steps.get(s["event_type"], 0) + 1
        return {
            "faults": args.faults,
            "breaches_seen": len(steps),
            "tick_lateness": [float(s["seconds_after_due"]) for s in steps],
            "published_lateness": published_lag,
            "escalation_lateness": [
                float(s["seconds_after_due"]) for s in escalations if s.get("metric") == "response"
            ],
            "arrival_lateness": list(arrivals.values()),
            "duration": duration,
            "bg_sent": sent_bg,
            "bg_rate": sent_bg / duration,
            "folded_rate": folded_window / (wall1 - wall0).total_seconds(),
            "backlog_at_end": backlog,
            "steps_in_window": window_steps,
            "errors": [e for at, e in log.errors if at >= wall0][:5],
        }
    finally:
        stop_consumer.set()
        await asyncio.gather(consumer_task, return_exceptions=True)
        await consumer.stop()
        await producer.stop()


def _retime(value: bytes, now: datetime) -> bytes:
    """A background event as live traffic: it happens now."""
    body = orjson.loads(value)
    body["occurred_at"] = body["recorded_at"] = utc_iso(now)
    return orjson.dumps(body)


def escalation_latency(args) -> dict:
    from handlers.kafka_topics import ensure_topics
    from handlers.local.kafka_broker import LocalKafka
    from streams.settings import Settings

    workdir = Path(tempfile.mkdtemp(prefix="keydesk-sla-bench-"))
    rules_path = _rules_file(workdir)
    broker, bootstrap = None, os.environ.get("KEYDESK_KAFKA")
    started = time.perf_counter()
    if not bootstrap:
        broker = LocalKafka(partitions=args.partitions, heap="1g")
        bootstrap = broker.start()
    broker_seconds = time.perf_counter() - started
    worker = None
    try:
        prefix = f"slab{uuid.uuid4().hex[:6]}"
        settings = Settings(kafka=bootstrap, topic_prefix=prefix, partitions=args.partitions)
        asyncio.run(ensure_topics(settings))
        log_path = workdir / "worker.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYDESK_")}
        env.update(
            KEYDESK_KAFKA=bootstrap,
            KEYDESK_TOPIC_PREFIX=prefix,
            KEYDESK_APP_ID=f"{prefix}-app",
            KEYDESK_PARTITIONS=str(args.partitions),
            KEYDESK_LOG_FORMAT="json",
            KEYDESK_HTTP_PORT=str(_free_port()),
            KEYDESK_DATA_DIR=str(workdir),
            KEYDESK_CLOCK="live",
            KEYDESK_SLA_RULES=str(rules_path),
        )
        with open(log_path, "wb") as log_file:
            worker = subprocess.Popen(
                [sys.executable, "-m", "handlers.cli", "worker"],
                env=env,
                stderr=log_file,
                stdout=subprocess.DEVNULL,
                cwd=ROOT,
            )
        result = asyncio.run(_escalation_run(bootstrap, prefix, args, LogTail(log_path), worker))
        result["broker_seconds"] = broker_seconds
        result["log"] = str(log_path)
        return result
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
                worker.wait()
        if broker is not None:
            broker.stop()


# -- report ---------------------------------------------------------------------------


def _lat(values: list[float]) -> str:
    if not values:
        return "none observed"
    return (
        f"p50 {pct(values, 50):.3f} s, p99 {pct(values, 99):.3f} s, max {max(values):.3f} s (n={len(values)})"
    )


def report(args, results: dict) -> list[str]:
    out: list[str] = []
    if "memory" in results:
        m = results["memory"]
        out += [
            f"**Index memory** ({m['clocks']:,} clocks over {m['customers']:,} customers, "
            'keys `(customer_id, "fault", item_id)`, tracemalloc):',
            "",
            "| | bytes/clock |",
            "|---|---:|",
            f"| heap + two dicts + due ints (index structures) | {m['structures_per_clock']:.0f} |",
            f"| (of which the per-key partition dict `_partition`) | {m['partition_dict_per_clock']:.0f} |",
            f"| + the key tuples (owned by the index) | {m['index_per_clock']:.0f} |",
            f"| + the key strings (shared with the views in a worker) | {m['with_keys_per_clock']:.0f} |",
            f"| worst case before compaction (every clock rescheduled once, "
            f"{m['worst_heap_entries_per_clock']:.1f} heap entries/clock), index incl. tuples "
            f"| {m['worst_index_per_clock']:.0f} |",
            f"| same, with key strings | {m['worst_with_keys_per_clock']:.0f} |",
            "",
            f"So 1M open clocks cost about {m['index_per_clock'] * 1e6 / 2**20:.0f} MiB in the "
            f"index (up to {m['worst_index_per_clock'] * 1e6 / 2**20:.0f} MiB with stale entries), "
            f"{m['with_keys_per_clock'] * 1e6 / 2**20:.0f} MiB counting the key strings.",
            "",
        ]
    if "ticks" in results:
        t = results["ticks"]
        sizes = [args.small, *_mid(args), args.clocks]
        out += [
            f"**Tick cost** (`DeadlineIndex.pop_due`, exactly k due per tick, median of "
            f"{args.ticks} ticks per repeat, {args.repeats} interleaved repeats; "
            "median [min-max] over repeats):",
            "",
            "| k due/tick | "
            + " | ".join(f"{n:,} open (µs)" for n in sizes)
            + f" | ratio {args.clocks:,}/{args.small:,} |",
            "|---:|" + "---:|" * (len(sizes) + 1),
        ]
        for k, rows in t["per_k"].items():
            out.append(
                f"| {k} | "
                + " | ".join(spread(rows[n]) for n in sizes)
                + f" | {spread(rows['ratio'], '{:.2f}')} |"
            )
        out += [
            "",
            f"Empty tick at {args.clocks:,} open: `pop_due` {spread(t['empty_pop_due_ns'], '{:.0f}')} ns; "
            f"`SlaTimers.tick` over 4 partitions {spread(t['empty_slatimers_tick_ns'], '{:.0f}')} ns. "
            f"Rescheduling a fired key: {t['schedule_ns'][args.small]:.0f} ns at "
            f"{args.small:,}, {t['schedule_ns'][args.clocks]:.0f} ns at {args.clocks:,} "
            f"(median per key). log2 ratio {args.clocks:,}/{args.small:,} = "
            f"{_log2_ratio(args.clocks, args.small):.1f}.",
            "",
        ]
    if "full_tick" in results:
        f = results["full_tick"]
        out += [
            f"Full `SlaTimers.tick` per due item (diamond P1 fault past its warnings, breach "
            f"and first escalation step: {f['steps_per_item']:.0f} step events each; "
            f"{f['items']} items): {spread(f['ms_per_item'], '{:.2f}')} ms per item; the "
            "index share of that is the µs above.",
            "",
        ]
    if "replay" in results:
        r = results["replay"]
        rates = r["rates"]
        out += [
            f"**Replay speed** ({r['events']:,} bench/event_mix events, {r['customers']:,} "
            f"customers, {r['steps']:,} step events produced; {args.replay_repeats} repeats, "
            "median [min-max]):",
            "",
            "| | events/s |",
            "|---|---:|",
            f"| fold alone (decode + fold) | {spread(rates['fold'], '{:,.0f}')} |",
            f"| fold + SLA summary + schedule (a live worker's per-event SLA work) | "
            f"{spread(rates['fold+sla'], '{:,.0f}')} |",
            f"| `streams.replay.replay` (+ ticks, step events folded back) | "
            f"{spread(rates['replay'], '{:,.0f}')} |",
            f"| (evidence) replay with folded-back step events not re-summarised "
            f"({'identical' if r['same_steps'] else 'DIFFERENT'} step events) | "
            f"{spread(rates['replay-no-resummary'], '{:,.0f}')} |",
            "",
            f"Replay is {spread(r['ratio_replay_fold'], '{:.0f}')}x slower than the bare "
            f"fold and {spread(r['ratio_replay_sla'], '{:.1f}')}x slower than fold + "
            "summaries.",
            "",
        ]
    if "latency" in results:
        e = results["latency"]
        if "error" in e:
            out += [f"**Escalation latency**: not measured: {e['error']}", ""]
        else:
            out += [
                f"**Escalation latency under load** (one live worker, {args.partitions} "
                f"partitions, local broker on the same machine; {e['faults']} diamond P1 "
                f"faults with a 1-minute response target, breaches spread over "
                f"~{args.spread:.0f} s; background of re-timed bench/event_mix events at "
                f"{e['bg_rate']:.0f} events/s sent, {e['folded_rate']:.0f} events/s folded by the "
                f"worker in the window; step events published in the window: "
                f"{_counts(e['steps_in_window'])}; events not yet folded when the "
                f"background stopped: {e['backlog_at_end']}):",
                "",
                f"- `sla.breached` `seconds_after_due` (tick lateness, worker log): "
                f"{_lat(e['tick_lateness'])}",
                f"- `sla.breached` log line (written once the send to the SLA topic returned), minus due: "
                f"{_lat(e['published_lateness'])}",
                f"- `sla.breached` received by a consumer of the SLA topic, minus due: "
                f"{_lat(e['arrival_lateness'])}",
                f"- first escalation step (`sla.escalation_due`, due at the breach): "
                f"{_lat(e['escalation_lateness'])}",
                f"- breaches seen: {e['breaches_seen']}/{e['faults']}"
                + (f"; worker errors: {e['errors']}" if e["errors"] else ""),
                "",
            ]
    return out


def notes(args, results: dict) -> list[str]:
    """What the figures say, with the code they point at."""
    out = ["Reading:", ""]
    if "ticks" in results:
        t, med = results["ticks"], statistics.median
        k = max(t["per_k"])
        rows = t["per_k"][k]
        full = results.get("full_tick")
        out.append(
            f"- Tick cost grows {med(rows['ratio']):.0f}x from {args.small:,} to {args.clocks:,} "
            f"open clocks (log2 ratio {_log2_ratio(args.clocks, args.small):.1f}, linear would be "
            f"{args.clocks // args.small:,}x): per fired key `pop_due` is a heap pop and two dict "
            "deletes, O(log n), but at 1M the heap, its entry tuples and the dicts no longer fit "
            "in CPU caches, so each level costs a cache miss (see the intermediate sizes). "
            + (
                f"At {args.clocks:,} open a tick with {k} due spends {med(rows[args.clocks]) / 1000:.1f} ms "
                f"in the index against ~{k * med(full['ms_per_item']):.0f} ms in `due_steps` for the "
                f"same {k} items: the SLA engine, not the index, bounds a tick."
                if full
                else ""
            )
        )
    if "memory" in results:
        m = results["memory"]
        out.append(
            f"- `DeadlineIndex._partition` ({m['partition_dict_per_clock']:.0f} B/clock, "
            f"{m['partition_dict_per_clock'] / m['index_per_clock']:.0%} of the index incl. "
            "tuples) is redundant under `SlaTimers`, which keeps one index per partition and "
            "drops a revoked partition by dropping its index (`SlaTimers.drop`); only "
            "`DeadlineIndex.drop_partitions` reads it."
        )
    if "replay" in results:
        r = results["replay"]
        gain = statistics.median(r["rates"]["replay-no-resummary"]) / statistics.median(r["rates"]["replay"])
        out.append(
            "- Replay re-summarises every folded-back step event: `items_touched_by` "
            '(streams/item_sla.py) returns the step\'s item for `event.kind == "sla"`, so '
            "`replay.apply` (streams/replay.py) calls `sla_summary` and `timers.schedule` for "
            "it, although `sla_summary` reads the item's history and the customer's profile, "
            "not its `sla_log`, so the summary cannot change; and `schedule` then moves the "
            "item back to the summary's `next_change_at` as of its last event, usually already "
            "past, so the next tick runs `due_steps` for it again and finds nothing. "
            f"{r['steps'] / r['events']:.1f} step events per event here; replay with steps not "
            f"re-summarised (monkeypatched in this bench only) gives "
            f"{'identical' if r['same_steps'] else 'DIFFERENT'} step events {gain:.1f}x faster. "
            "The live worker does the same per batch of the SLA topic "
            "(`EventProcessor.process_batch` -> `_refresh_sla`, streams/event_processor.py)."
        )
    if "latency" in results and "error" not in results["latency"]:
        out.append(
            "- Live breaches leave on the next wall-clock tick (`LIVE_TICK_SECONDS` = 0.2 s in "
            "streams/sla_agents.py: ~0.1 s on average) plus the event loop's other work "
            "(batches of background events, the step events' own fold); the worker's index "
            "held only the run's open clocks, the 1M-clock index would add about a "
            "millisecond per tick (above)."
        )
    out.append("")
    return out


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in sorted(counts.items(), key=lambda kv: -kv[1]))


def _mid(args) -> list[int]:
    return [int(n) for n in args.mid.split(",") if n.strip() and args.small < int(n) < args.clocks]


def _log2_ratio(big: int, small: int) -> float:
    import math

    return math.log2(big) / math.log2(small)


def write_section(lines: list[str], command: str) -> None:
    path = ROOT / "BENCHMARKS.md"
    header = [
        SECTION,
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: {os.cpu_count()} cores "
        f"({platform.processor() or platform.machine()}), Python "
        f"{platform.python_version()}, broker on the same machine, machine shared with "
        "other work during the run (ratios within one run are the figures to read).",
        "",
    ]
    section = "\n".join(header + lines).rstrip() + "\n"
    text = path.read_text(encoding="utf-8") if path.exists() else "# keydesk benchmarks\n"
    start = text.find(SECTION)
    if start >= 0:
        nxt = text.find("\n## ", start + len(SECTION))
        text = text[:start] + section + ("\n" + text[nxt + 1 :] if nxt >= 0 else "")
    else:
        text = text.rstrip() + "\n\n" + section
    path.write_text(text, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--only", default="memory,ticks,replay,latency", help="comma list of: memory, ticks, replay, latency"
    )
    parser.add_argument("--clocks", type=int, default=1_000_000, help="large index size")
    parser.add_argument("--small", type=int, default=1_000, help="small index size")
    parser.add_argument(
        "--mid", default="10000,100000", help="intermediate index sizes for the tick table ('' for none)"
    )
    parser.add_argument(
        "--customers", type=int, default=0, help="customers owning the clocks (default clocks/10)"
    )
    parser.add_argument("--due", default="10,100", help="clocks due per tick, comma list")
    parser.add_argument("--ticks", type=int, default=200, help="timed ticks per size and repeat")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--full-tick-items", type=int, default=300)
    parser.add_argument("--replay-events", type=int, default=8_000)
    parser.add_argument("--replay-repeats", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--faults", type=int, default=300, help="P1 faults in the latency run")
    parser.add_argument(
        "--spread", type=float, default=60.0, help="seconds over which the P1 faults are published"
    )
    parser.add_argument(
        "--lead-min", type=float, default=5.0, help="seconds from publishing a fault to its breach, at least"
    )
    parser.add_argument("--lead-max", type=float, default=15.0)
    parser.add_argument(
        "--tail", type=float, default=5.0, help="seconds of background load after the last breach"
    )
    parser.add_argument("--rate", type=float, default=200.0, help="background events/s")
    parser.add_argument("--bg-customers", type=int, default=500)
    parser.add_argument("--diamond-customers", type=int, default=30)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-write", action="store_true", help="do not update BENCHMARKS.md")
    args = parser.parse_args()
    parts = {p.strip() for p in args.only.split(",") if p.strip()}
    command = "cd /work/main && .venv/bin/python bench/sla_timers.py" + (
        "" if len(sys.argv) == 1 else " " + shlex.join(sys.argv[1:])
    )
    results: dict = {}
    began = time.perf_counter()
    say(f"keydesk SLA timers benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M:%S} UTC, {os.cpu_count()} cores")

    if "memory" in parts:
        started = time.perf_counter()
        results["memory"] = index_memory(args.clocks, args.customers or max(1, args.clocks // 10), args.seed)
        say(f"[memory done in {time.perf_counter() - started:.0f} s]")
    if "ticks" in parts:
        started = time.perf_counter()
        dues = [int(k) for k in args.due.split(",")]
        results["ticks"] = tick_cost(
            args.clocks, args.small, dues, args.ticks, args.repeats, args.seed, tuple(_mid(args))
        )
        results["full_tick"] = full_tick_cost(args.full_tick_items, max(1, args.repeats // 2))
        say(f"[ticks done in {time.perf_counter() - started:.0f} s]")
    if "replay" in parts:
        started = time.perf_counter()
        results["replay"] = replay_speed(args.replay_events, args.replay_repeats, args.partitions)
        say(f"[replay done in {time.perf_counter() - started:.0f} s]")
    if "latency" in parts:
        started = time.perf_counter()
        try:
            results["latency"] = escalation_latency(args)
        except Exception as exc:  # the other figures still stand; say why this one is missing
            results["latency"] = {"error": f"{type(exc).__name__}: {exc}"}
        say(f"[latency done in {time.perf_counter() - started:.0f} s]")

    lines = report(args, results) + notes(args, results)
    lines.append(f"Total run time {time.perf_counter() - began:.0f} s.")
    say()
    say("\n".join(lines))
    if not args.no_write:
        write_section(lines, command)
        say(f"\nwritten to {ROOT / 'BENCHMARKS.md'} ({SECTION})")


if __name__ == "__main__":
    main()
