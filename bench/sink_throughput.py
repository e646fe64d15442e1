"""Throughput of the SQL sink against the keydesk worker, over the same events, in one run.

Publishes N realistic events (bench/event_mix.py) to a fresh topic on the local
Apache Kafka broker (or KEYDESK_KAFKA), then measures over exactly those events:

  (w)  the keydesk worker alone (bench/throughput.py's (c), KEYDESK_SINK=off);
  (s1) the sink (streams/sql_sink.py) into a fresh SQLite file;
  (s2) the sink into a fresh PostgreSQL database on a throwaway server
       (handlers/local/postgres_server.py, fsync off) started by this bench.

The sink runs in-process, as ``keydesk sink`` runs it: ``SinkWriter`` + ``SqlSink``
in a fresh consumer group.  Its rate is published records / time from the sink's
start (schema migration, group join included) until ``wait_until_stored`` says
every partition is stored to its end; "steady" is from the first commit to the
last, the figure comparable to the worker's first-to-last-event rate.  After each
sink run the database must hold exactly the distinct valid events of the mix
(it repeats some records by design: the same event id stored once).

    .venv/bin/python bench/sink_throughput.py --events 100000

``--profile 2000`` instead profiles one ``SinkWriter.write`` of a 2,000-record
batch (without Kafka) on SQLite and PostgreSQL, after 20,000 earlier events.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.event_mix import generate  # noqa: E402
from bench.throughput import bench_events_topic, keydesk_worker, publish  # noqa: E402
from handlers.local.postgres_server import LocalPostgres, create_database  # noqa: E402
from schemas.envelope import InvalidEvent, decode_event  # noqa: E402
from schemas.reporting_db import open_engine, upgrade  # noqa: E402
from schemas.reporting_tables import EventRecord, Item  # noqa: E402
from sla_rules import load_rules  # noqa: E402
from streams.sink_writer import SinkWriter  # noqa: E402
from streams.sql_sink import SqlSink  # noqa: E402


def expected(total: int) -> dict[str, int]:
    """What the sink must store from ``generate(total)``: distinct valid event ids, items."""
    ids, items, refused = set(), set(), 0
    for _, value in generate(total):
        try:
            event = decode_event(value)
        except InvalidEvent:
            refused += 1
            continue
        ids.add(event.event_id)
        if event.kind in ("fault", "ticket", "order"):
            items.add((event.customer_id, event.kind, event.entity_id))
    return {"records": total, "events": len(ids), "items": len(items), "refused": refused}


async def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[tuple[str, int], int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in range(partitions)])
    finally:
        await consumer.stop()
    return {(tp.topic, tp.partition): end for tp, end in ends.items()}


async def run_sink(
    url: str, bootstrap: str, topic: str, ends: dict[tuple[str, int], int]
) -> dict[str, float]:
    """The sink from a fresh group until every partition is stored; timings and totals."""
    records = sum(ends.values())
    writer = SinkWriter(open_engine(url), load_rules(), f"sinkbench-{uuid.uuid4().hex[:8]}")
    sink = SqlSink(writer, [bootstrap], [topic])
    first: dict[str, float] = {}

    def first_commit(status) -> bool:
        first["at"] = time.perf_counter()
        first["records"] = sum(status.positions.values())
        return True

    started = time.perf_counter()
    running = asyncio.ensure_future(sink.run())
    try:
        await sink.wait_for(lambda status: status.totals["batches"] >= 1, timeout=600)
        first_commit(sink.status)
        await sink.wait_until_stored(ends, timeout=3600)
        done = time.perf_counter()
    finally:
        await sink.stop()
        await asyncio.wait_for(running, 60)
        writer.engine.dispose()
    totals = sink.status.totals
    return {
        "rate": records / (done - started),
        "seconds": done - started,
        "steady": (records - first["records"]) / max(done - first["at"], 1e-9),
        "batches": totals["batches"],
        "stored": totals["stored"],
        "duplicates": totals["duplicates"],
        "refused": totals["refused"],
    }


def check(url: str, want: dict[str, int], got: dict[str, float]) -> str:
    """The database holds the distinct events and their items, no more, no fewer."""
    engine = open_engine(url)
    try:
        with engine.connect() as conn:
            events = conn.execute(select(func.count()).select_from(EventRecord)).scalar_one()
            items = conn.execute(select(func.count()).select_from(Item)).scalar_one()
    finally:
        engine.dispose()
    problems = []
    if events != want["events"] or got["stored"] != want["events"]:
        problems.append(f"event_log {events} / stored {got['stored']:.0f}, expected {want['events']}")
    if items != want["items"]:
        problems.append(f"items {items}, expected {want['items']}")
    if got["refused"] != want["refused"]:
        problems.append(f"refused {got['refused']:.0f}, expected {want['refused']}")
    if problems:
        raise SystemExit("sink stored the wrong thing: " + "; ".join(problems))
    return f"event_log {events} = distinct events, items {items}"


def profile_write(url: str, batch: int, before: int = 20_000, top: int = 10) -> str:
    """cProfile of one ``SinkWriter.write`` of ``batch`` records after ``before`` stored."""
    messages = [value for _, value in generate(before + batch)]
    engine = open_engine(url)
    upgrade(engine)
    writer = SinkWriter(engine, load_rules(), "profile")
    for start in range(0, before, batch):
        writer.write("bench.events", 0, list(enumerate(messages[start : start + batch], start)))
    records = list(enumerate(messages[before:], before))
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    result = writer.write("bench.events", 0, records)
    profiler.disable()
    seconds = time.perf_counter() - started
    engine.dispose()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top + 15)
    return (
        f"{engine.dialect.name}: {len(records)} records, {result.stored} stored, "
        f"{result.items} items recomputed, {seconds:.2f} s "
        f"({len(records) / seconds:,.0f} records/s, profiler on)\n{out.getvalue()}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--only", default="w,s1,s2", help="comma-separated runs among w, s1, s2 (default all three)"
    )
    parser.add_argument(
        "--profile",
        type=int,
        metavar="BATCH",
        help="only profile one SinkWriter.write of BATCH records, then exit",
    )
    args = parser.parse_args()
    runs = {name.strip() for name in args.only.split(",")}
    workdir = Path(tempfile.mkdtemp(prefix="keydesk-sinkbench-"))
    postgres = LocalPostgres() if args.profile or {"s2"} & runs else None
    server_url = postgres.start() if postgres else None
    if args.profile:
        try:
            print(profile_write(f"sqlite:///{workdir / 'profile.sqlite'}", args.profile))
            print(profile_write(create_database(server_url), args.profile))
        finally:
            postgres.stop()
            shutil.rmtree(workdir, ignore_errors=True)
        return
    broker = contextlib.ExitStack()
    try:
        settings = broker.enter_context(bench_events_topic(args.partitions, "sinkbench"))
        bootstrap, prefix, topic = settings.kafka, settings.topic_prefix, settings.events_topic
        want = expected(args.events)
        print(
            f"mix: {want['records']} records, {want['events']} distinct events, "
            f"{want['items']} items, {want['refused']} invalid",
            flush=True,
        )
        rate_publish = asyncio.run(publish(bootstrap, topic, args.events))
        ends = asyncio.run(end_offsets(bootstrap, topic, args.partitions))
        print(
            f"published {args.events} events at {rate_publish:,.0f}/s ({args.partitions} partitions)",
            flush=True,
        )
        w = None
        if "w" in runs:
            w, _ = keydesk_worker(bootstrap, prefix, args.events, args.partitions, workdir)
            print(f"(w)  keydesk worker            {w:>8,.0f} events/s", flush=True)
        targets = {
            "s1": ("SQLite", lambda: f"sqlite:///{workdir / 'sink.sqlite'}"),
            "s2": ("PostgreSQL", lambda: create_database(server_url)),
        }
        for name, (label, make_url) in targets.items():
            if name not in runs:
                continue
            url = make_url()
            got = asyncio.run(run_sink(url, bootstrap, topic, ends))
            verdict = check(url, want, got)
            ratios = f"   {name}/w = {got['rate'] / w:.2f} (steady {got['steady'] / w:.2f})" if w else ""
            print(
                f"({name}) sink into {label:<10} {got['rate']:>8,.0f} events/s "
                f"(steady {got['steady']:,.0f}/s, {got['seconds']:.1f} s, "
                f"{got['batches']:.0f} batches){ratios}\n     checked: {verdict}, "
                f"{got['duplicates']:.0f} duplicates skipped",
                flush=True,
            )
    finally:
        broker.close()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
