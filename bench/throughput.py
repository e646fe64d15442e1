"""Throughput of the keydesk worker against its two natural baselines, in one run.

Publishes N realistic events (bench/event_mix.py) to a fresh topic on the local
Apache Kafka broker, then measures over exactly those events:

  (a) a bare aiokafka consumer reading them: the ceiling for Python;
  (b) a naive faust agent decoding a Record and updating one table entry per
      event: the framework floor (bench/naive_faust_agent.py);
  (f) keydesk's own consumer path doing nothing per event: faust's and
      aiokafka's cost on the way in, the ceiling for (c) (bench/batch_floor_agent.py);
  (c) the full keydesk worker (`keydesk worker`): validation, dead-lettering,
      the view fold, one JSON log line per event, changelog writes.

Rates are events/s from the first event processed to the last; the ratios c/b
and c/a are the figures that matter (absolute numbers depend on the machine).

The events' dates are set relative to the run (``--dates``), because the worker's
timers run on the wall clock: ``live`` (the default) has the month of events
begin at the run's start, as a desk's own events do, so no clock comes due while
it runs; ``past`` has it end at the run's start, so every clock is overdue and
the worker also publishes each item's whole ladder of steps and folds it back
(a catch-up after an outage; not a cost the naive agent (b) has at all).

    .venv/bin/python bench/throughput.py --events 200000
    .venv/bin/python bench/throughput.py --events 200000 --dates past

``--tree DIR`` also runs (c) from another checkout (its directory is the worker's
working directory and ``PYTHONPATH``), each worker on its own topics holding the
same events, so a change is measured against the code before it in one run:

    git worktree add /tmp/before HEAD~1
    .venv/bin/python bench/throughput.py --events 100000 --only c --tree /tmp/before --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.event_mix import generate  # noqa: E402
from handlers.kafka_topics import ensure_topics  # noqa: E402
from handlers.local.kafka_broker import LocalKafka  # noqa: E402
from streams.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


#: How far before the run a ``past`` mix begins: its four weeks, plus the longest
#: item loop (eight steps of up to four hours), end before the run does.
PAST_OFFSET = timedelta(days=30)


def mix_start(dates: str, now: datetime) -> datetime:
    """Where the event mix begins for ``--dates`` (whole minutes, as a desk's clocks have)."""
    start = now.replace(second=0, microsecond=0)
    return start - PAST_OFFSET if dates == "past" else start


async def publish(bootstrap: str, topic: str, total: int, start: datetime) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    started = time.perf_counter()
    try:
        batch = []
        for key, value in generate(total, start=start):
            batch.append(await producer.send(topic, value, key=key))
            if len(batch) >= 20_000:
                await asyncio.gather(*batch)
                batch.clear()
        await asyncio.gather(*batch)
    finally:
        await producer.stop()
    return total / (time.perf_counter() - started)


async def bare_consumer(bootstrap: str, topic: str, total: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    await consumer.start()
    seen, first = 0, None
    try:
        while seen < total:
            batch = await consumer.getmany(timeout_ms=10_000, max_records=10_000)
            if not batch:
                raise RuntimeError(f"bare consumer stalled at {seen}/{total}")
            if first is None:
                first = time.perf_counter()
            seen += sum(len(records) for records in batch.values())
    finally:
        await consumer.stop()
    return seen / (time.perf_counter() - first)


@contextlib.contextmanager
def bench_events_topic(partitions: int, label: str):
    """The broker (``KEYDESK_KAFKA``, else a local one for this run) and a fresh events topic.

    Yields the settings of a new topic prefix, so each run measures its own events.
    """
    broker = None
    bootstrap = os.environ.get("KEYDESK_KAFKA")
    if not bootstrap:
        broker = LocalKafka(partitions=partitions, heap="2g")
        bootstrap = broker.start()
    try:
        settings = Settings(
            kafka=bootstrap, topic_prefix=f"{label}{uuid.uuid4().hex[:6]}", partitions=partitions
        )
        asyncio.run(ensure_topics(settings))
        yield settings
    finally:
        if broker is not None:
            broker.stop()


def faust_baseline(script: str, bootstrap: str, topic: str, total: int, partitions: int) -> float:
    """Events/s of a baseline agent (``bench/<script>.py``) over the topic's ``total`` events."""
    env = dict(
        os.environ,
        BENCH_KAFKA=bootstrap,
        BENCH_TOPIC=topic,
        BENCH_TOTAL=str(total),
        BENCH_PARTITIONS=str(partitions),
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{script}.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{script} failed: {done.stderr[-2000:]}")
    figures = orjson.loads(lines[-1])
    return figures["events"] / figures["seconds"]


def keydesk_worker(
    bootstrap: str, prefix: str, total: int, partitions: int, workdir: Path, tree: Path = ROOT
) -> tuple[float, dict]:
    """(c): the worker of checkout ``tree`` over the ``total`` events of topic prefix ``prefix``."""
    log_path = workdir / f"keydesk-worker-{prefix}.log"
    port = 6100 + os.getpid() % 800
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYDESK_")}
    env.update(
        KEYDESK_KAFKA=bootstrap,
        KEYDESK_TOPIC_PREFIX=prefix,
        KEYDESK_APP_ID=f"{prefix}-app",
        KEYDESK_PARTITIONS=str(partitions),
        KEYDESK_LOG_FORMAT="json",
        KEYDESK_HTTP_PORT=str(port),
        KEYDESK_DATA_DIR=str(workdir),
        KEYDESK_SINK="off",
        PYTHONPATH=str(tree),
    )  # the worker alone, as measured before the sink existed
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "handlers.cli", "worker"],
            env=env,
            stderr=log,
            stdout=subprocess.DEVNULL,
            cwd=tree,
        )
        try:
            folded = _wait_for_folds(log_path, total, worker)
            processed = _worker_counts(port)
        finally:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(60)
            except subprocess.TimeoutExpired:
                # The figure is already measured; a worker that does not stop
                # (faust waiting for unacked events, see BENCHMARKS.md) is killed.
                print(
                    f"keydesk worker did not stop within 60 s of SIGTERM, killed; log: {log_path}",
                    file=sys.stderr,
                    flush=True,
                )
                worker.kill()
                worker.wait(10)
    stamps, steps = folded
    first, last = stamps[0], stamps[-1]
    return total / (last - first).total_seconds(), {
        "log_lines": len(stamps),
        "steps_folded": steps,
        "processed": processed,
    }


def _worker_counts(port: int) -> dict:
    """The worker's own counters (``GET /api/health``: folded, written records, retries)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=10) as answer:
            body = answer.read()
    except urllib.error.HTTPError as refused:  # 503 when degraded: the counters are still in it
        body = refused.read()
    return orjson.loads(body).get("processed", {})


def _wait_for_folds(log_path: Path, total: int, worker: subprocess.Popen) -> tuple[list[datetime], int]:
    """Follow the worker's JSON log until every event has its summary line.

    The worker also folds the SLA step events its timers publish (``sla.*``) and
    logs them the same way; they are not among the published events, so they
    are not counted in the rate; how many were folded by then is returned with it.
    """
    stamps: list[datetime] = []
    steps = 0
    deadline = time.monotonic() + 1800
    partial = b""
    with open(log_path, "rb") as log:
        while len(stamps) < total:
            line = log.readline()
            if not line.endswith(b"\n"):
                # EOF, or the worker is half-way through writing this line: keep
                # what we have and read the rest once it has been written.
                partial += line
                if worker.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"keydesk worker stopped at {len(stamps)}/{total}")
                time.sleep(0.05)  # tailing a file that another process writes
                continue
            line, partial = partial + line, b""
            if b'"event.folded"' in line or b'"event.dead_lettered"' in line:
                record = orjson.loads(line)
                if str(record.get("event_type", "")).startswith("sla."):
                    steps += 1  # a step the worker's SLA timers published, not a bench event
                    continue
                stamps.append(datetime.fromisoformat(record["timestamp"]))
    return stamps, steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--only",
        default="bfc",
        help="which of (b), (f) and (c) to run after (a): 'bfc' (default) or any of the letters",
    )
    parser.add_argument(
        "--dates",
        choices=("live", "past"),
        default="live",
        help="events from the run's start on (live, default) or in the month before it (past)",
    )
    parser.add_argument(
        "--tree",
        type=Path,
        action="append",
        default=[],
        help="also run (c) from this checkout of keydesk, on its own copy of the events (a same-run A/B)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="how many times to run (c) for each tree")
    args = parser.parse_args()
    start = mix_start(args.dates, datetime.now(UTC))
    workdir = Path(tempfile.mkdtemp(prefix="keydesk-bench-"))
    with bench_events_topic(args.partitions, "bench") as settings:
        bootstrap, prefix, topic = settings.kafka, settings.topic_prefix, settings.events_topic
        rate_publish = asyncio.run(publish(bootstrap, topic, args.events, start))
        print(
            f"published {args.events} events ({args.dates}: from {start.isoformat()}) "
            f"at {rate_publish:,.0f}/s",
            flush=True,
        )
        a = asyncio.run(bare_consumer(bootstrap, topic, args.events))
        print(f"(a) bare aiokafka consumer   {a:>10,.0f} events/s", flush=True)
        b = None
        if "b" in args.only:
            b = faust_baseline("naive_faust_agent", bootstrap, topic, args.events, args.partitions)
            print(f"(b) naive faust agent        {b:>10,.0f} events/s", flush=True)
        f = None
        if "f" in args.only:
            f = faust_baseline("batch_floor_agent", bootstrap, topic, args.events, args.partitions)
            print(f"(f) keydesk's consumer floor {f:>10,.0f} events/s", flush=True)
            if b:
                print(f"f/b = {f / b:.1f}x (the most c/b can be)", flush=True)
        if "c" not in args.only:
            return
        trees = [ROOT, *(tree.resolve() for tree in args.tree)]
        for round_number in range(args.rounds):
            for n, tree in enumerate(trees):
                if round_number or n:  # each worker its own topics, with the same events
                    prefix = f"bench{uuid.uuid4().hex[:6]}"
                    asyncio.run(
                        ensure_topics(
                            Settings(kafka=bootstrap, topic_prefix=prefix, partitions=args.partitions)
                        )
                    )
                    asyncio.run(publish(bootstrap, f"{prefix}.events", args.events, start))
                c, extra = keydesk_worker(bootstrap, prefix, args.events, args.partitions, workdir, tree)
                name = "this checkout" if tree == ROOT else str(tree)
                print(
                    f"(c) keydesk worker           {c:>10,.0f} events/s   ({name}; "
                    f"{extra['steps_folded']:,} of its own SLA step events folded meanwhile)",
                    flush=True,
                )
                print(f"    the worker's counters: {orjson.dumps(extra['processed']).decode()}", flush=True)
                print((f"c/b = {c / b:.1f}x   " if b else "") + f"c/a = {c / a:.3f}", flush=True)


if __name__ == "__main__":
    main()
