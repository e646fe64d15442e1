"""Throughput of the keydesk worker against its two natural baselines, in one run.

Publishes N realistic events (bench/event_mix.py) to a fresh topic on the local
Apache Kafka broker, then measures over exactly those events:

  (a) a bare aiokafka consumer reading them: the ceiling for Python;
  (b) a naive faust agent decoding a Record and updating one table entry per
      event: the framework floor (bench/naive_faust_agent.py);
  (c) the full keydesk worker (`keydesk worker`): validation, dead-lettering,
      the view fold, one JSON log line per event, changelog writes.

Rates are events/s from the first event processed to the last; the ratios c/b
and c/a are the figures that matter (absolute numbers depend on the machine).

    .venv/bin/python bench/throughput.py --events 200000
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
import uuid
from datetime import datetime
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.event_mix import generate  # noqa: E402
from handlers.kafka_topics import ensure_topics  # noqa: E402
from handlers.local.kafka_broker import LocalKafka  # noqa: E402
from streams.settings import Settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


async def publish(bootstrap: str, topic: str, total: int) -> float:
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
        for key, value in generate(total):
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


def naive_faust(bootstrap: str, topic: str, total: int, partitions: int) -> float:
    env = dict(
        os.environ,
        BENCH_KAFKA=bootstrap,
        BENCH_TOPIC=topic,
        BENCH_TOTAL=str(total),
        BENCH_PARTITIONS=str(partitions),
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "naive_faust_agent.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"naive faust agent failed: {done.stderr[-2000:]}")
    figures = orjson.loads(lines[-1])
    return figures["events"] / figures["seconds"]


def keydesk_worker(
    bootstrap: str, prefix: str, total: int, partitions: int, workdir: Path
) -> tuple[float, dict]:
    log_path = workdir / "keydesk-worker.log"
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
    )  # the worker alone, as measured before the sink existed
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "handlers.cli", "worker"],
            env=env,
            stderr=log,
            stdout=subprocess.DEVNULL,
            cwd=ROOT,
        )
        try:
            folded = _wait_for_folds(log_path, total, worker)
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
    first, last = folded[0], folded[-1]
    return total / (last - first).total_seconds(), {"log_lines": len(folded)}


def _wait_for_folds(log_path: Path, total: int, worker: subprocess.Popen) -> list[datetime]:
    """Follow the worker's JSON log until every event has its summary line.

    The worker also folds the SLA step events its timers publish (``sla.*``) and
    logs them the same way; they are not among the published events, so they
    are not counted.
    """
    stamps: list[datetime] = []
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
                    continue  # a step the worker's SLA timers published, not a bench event
                stamps.append(datetime.fromisoformat(record["timestamp"]))
    return stamps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--only", default="bc", help="which of (b) and (c) to run after (a): 'bc' (default), 'b' or 'c'"
    )
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="keydesk-bench-"))
    with bench_events_topic(args.partitions, "bench") as settings:
        bootstrap, prefix, topic = settings.kafka, settings.topic_prefix, settings.events_topic
        rate_publish = asyncio.run(publish(bootstrap, topic, args.events))
        print(f"published {args.events} events at {rate_publish:,.0f}/s", flush=True)
        a = asyncio.run(bare_consumer(bootstrap, topic, args.events))
        print(f"(a) bare aiokafka consumer   {a:>10,.0f} events/s", flush=True)
        b = None
        if "b" in args.only:
            b = naive_faust(bootstrap, topic, args.events, args.partitions)
            print(f"(b) naive faust agent        {b:>10,.0f} events/s", flush=True)
        if "c" in args.only:
            c, extra = keydesk_worker(bootstrap, prefix, args.events, args.partitions, workdir)
            print(f"(c) keydesk worker           {c:>10,.0f} events/s", flush=True)
            print((f"c/b = {c / b:.1f}x   " if b else "") + f"c/a = {c / a:.3f}", flush=True)


if __name__ == "__main__":
    main()
