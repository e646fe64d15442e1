"""A whole recorded log through Kafka against `keydesk replay` of the same file (issue 13).

The log is ``tests/generated_log.generate_log`` over a month (the generator of
``large_log``, with more customers: by default about 155,000 events), generated
once by this checkout (``--seed``), or read from ``--log``.  In one run:

1. in process: ``python -m handlers.cli replay FILE --out STEPS`` in a
   subprocess (``bench/replay_speed.replay_once``: wall clock from the start of
   the interpreter to its exit);
2. through Kafka: a fresh local broker (``handlers/local/kafka_broker.LocalKafka``,
   or ``KEYDESK_KAFKA``) and topic prefix, a replay-clock worker
   (``KEYDESK_CLOCK=replay``, started the way the end-to-end tests start one,
   ``tests/e2e/conftest.Desk``) whose SQL sink writes a fresh SQLite file or,
   with ``--database postgresql`` (a throwaway server,
   ``handlers/local/postgres_server.py``) or ``--database postgresql://...``, a
   fresh PostgreSQL database.  With ``--sink process`` the worker runs without
   its sink (``KEYDESK_SINK=off``) and ``keydesk sink`` runs beside it, in a
   process of its own, in the same consumer group.  Comma-separated
   ``--database`` and ``--sink`` values run each combination in turn after the
   one replay, on the one broker (a fresh topic prefix and database each).

The Kafka time runs from the start of ``keydesk publish FILE`` (the worker
already up and owning every partition) to *done*, which is both of:

* **the worker idle with its own steps folded**: ``keydesk publish`` has exited,
  and (a) the worker's ``/api/health`` counters (``processed``) show every record
  it was given handled once: ``applied + rejected + duplicate + archived +
  dead_lettered`` equals the events ``keydesk publish`` sent plus ``forwarded``
  plus ``sla_steps_published`` (its own step events come back on the SLA topic
  and are folded like the rest), none unsent; (b) its consumer group has
  committed every partition of the events topic to its end (a batch is acked
  only once the steps its ticks made are published and acknowledged, so no step
  is still in flight; faust commits every second); (c) the SLA topic's end
  offsets add up to the steps published.  A replay-clock worker publishes steps
  only while folding events of the events topic, never while folding its own
  steps, so once all three hold nothing else comes.  The counters are polled
  every :data:`POLL` seconds, the offsets when the counters add up.  A retried
  or refetched batch (counted twice) would make the sums meaningless: the
  bench stops with that said;
* **zero sink lag**: the sink's positions as its database records them
  (``sink_positions``, written in the transaction of each batch) reach the end
  offsets of every partition of both topics, read once the worker is idle (so
  they hold every step; the SLA topic's ends must add up to the steps
  published).  Polled every 0.5 s (``tests/e2e/test_generated_log.wait_for_sink``).

Then the checks: the step events on the SLA topic are exactly those the
in-process replay wrote (``step_disagreement``, the step-equality property of
issue 10: ids, instants, causes, detection instants), and ``event_log`` holds
one row per distinct event id of the log and of the steps.

    .venv/bin/python bench/log_through_kafka.py                          # SQLite
    .venv/bin/python bench/log_through_kafka.py --database postgresql    # throwaway PostgreSQL
    .venv/bin/python bench/log_through_kafka.py --customers 50 --sink worker,process   # a smoke A/B

``--writer-ab BATCH`` instead times the sink's writer alone (no Kafka) on a
throwaway PostgreSQL, multi-row ``VALUES`` against ``unnest`` arrays
(``SinkWriter(arrays=...)``), and checks both leave the same rows.

Prints what it does, then one JSON line of figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from aiokafka import TopicPartition
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.replay_speed import replay_once  # noqa: E402
from bench.throughput import bench_events_topic  # noqa: E402
from handlers.local.kafka_broker import LocalKafka  # noqa: E402
from handlers.local.postgres_server import LocalPostgres, create_database, drop_database  # noqa: E402
from schemas.envelope import decode_event  # noqa: E402
from schemas.reporting_db import open_engine, upgrade  # noqa: E402
from schemas.reporting_tables import Base, EventRecord  # noqa: E402
from sla_rules import load_rules  # noqa: E402
from streams.partitioning import home_partition  # noqa: E402
from streams.sink_writer import SinkWriter  # noqa: E402
from tests.e2e.conftest import PARTITIONS, Desk, Worker, http  # noqa: E402
from tests.e2e.test_generated_log import (  # noqa: E402
    committed,
    end_offsets,
    read_topic,
    step_disagreement,
    wait_for_sink,
)
from tests.generated_log import LARGE_CUSTOMERS, generate_log  # noqa: E402
from tests.month_of_events import write_events  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
START = datetime(2026, 11, 1, tzinfo=ZoneInfo("Asia/Shanghai"))
DAYS = 30  # November: the month of large_log
MIN_EVENTS = 150_000
#: Customers of the default log: large_log's 2,000 give ~107,000 events; this many ~155,000.
CUSTOMERS = LARGE_CUSTOMERS * 29 // 20
TARGETS = {"sqlite": 2.0, "postgresql": 3.0}  # issue 13: Kafka time / in-process replay time
POLL = 0.2  # seconds between two looks at the worker's counters
FOLDED = ("applied", "rejected", "duplicate", "archived")  # streams/customer_view.Outcome.status
#: Counters of records folded again (a retried batch, a refetch after a rebalance).
COUNTED_TWICE = ("batch_retries", "left_for_refetch", "dropped_for_refetch")
TIMEOUT = 3600.0


class BenchFailure(RuntimeError):
    """The run cannot give a figure (a process died, counters that do not add up)."""


def generated(workdir: Path, customers: int, seed: int) -> Path:
    started = time.perf_counter()
    log = write_events(
        generate_log(customers=customers, start=START, days=DAYS, seed=seed), workdir / "log.jsonl"
    )
    print(f"generated {log} ({customers:,} customers) in {time.perf_counter() - started:.1f} s", flush=True)
    return log


def event_ids(path: Path) -> set[str]:
    """The distinct event ids of a JSON-lines file of valid events."""
    with path.open("rb") as lines:
        return {orjson.loads(line)["event_id"] for line in lines if line.strip()}


@contextlib.contextmanager
def servers(databases: list[str], broker: bool = True):
    """One broker for the run (``KEYDESK_KAFKA``, else a local one) and, if asked, a PostgreSQL server.

    Yields the PostgreSQL server URL (``None`` without one).  Each variant gets a
    fresh topic prefix (``bench/throughput.bench_events_topic``) and database.
    """
    with contextlib.ExitStack() as stack:
        if broker and not os.environ.get("KEYDESK_KAFKA"):
            kafka = LocalKafka(partitions=PARTITIONS, heap="2g")
            # read by bench_events_topic; the workers' environments are their own (Desk.env)
            os.environ["KEYDESK_KAFKA"] = kafka.start()
            stack.callback(kafka.stop)
        server_url = next((d for d in databases if d.startswith("postgresql://")), None)
        if "postgresql" in databases:
            server = LocalPostgres(fsync=False)
            server_url = server.start()
            stack.callback(server.stop)
        yield server_url


@contextlib.contextmanager
def database(choice: str, server_url: str | None, workdir: Path):
    """A fresh database URL for the sink: a SQLite file, or a new PostgreSQL database."""
    if choice == "sqlite":
        yield f"sqlite:///{workdir / 'reports.sqlite'}"
        return
    assert server_url is not None
    url = create_database(server_url, "logkafka")
    try:
        yield url
    finally:
        with contextlib.suppress(Exception):
            drop_database(server_url, url)


def start_sink_process(desk: Desk) -> Worker:
    """``keydesk sink`` beside a worker without its own (``KEYDESK_SINK=off``), same group and database."""
    log_path = desk.tmp / "sink.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "handlers.cli", "sink"],
            env=desk.env(1),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
    return Worker(url="", process=process, log_path=log_path)


def counters(worker: Worker) -> dict[str, int]:
    """The worker's ``/api/health`` ``processed`` counters ({} while it does not answer)."""
    try:
        _, health = http("GET", f"{worker.url}/api/health")
    except (urllib.error.URLError, ConnectionError, OSError):
        return {}
    return health.get("processed") or {}


def handled(processed: dict[str, int]) -> int:
    """Records the worker is done with: folded (any outcome) or dead-lettered."""
    return sum(processed.get(status, 0) for status in FOLDED) + processed.get("dead_lettered", 0)


def events_done(desk: Desk, steps_published: int) -> dict[TopicPartition, int] | None:
    """The end offsets of both topics if the worker is done with the events topic, else None.

    Done: the worker's group has committed every partition of the events topic to
    its end (a batch is acked, so committed, only once the steps its ticks made
    are published and acknowledged), and the SLA topic holds exactly the steps
    its counters say it published (none in flight).
    """
    ends = asyncio.run(end_offsets(desk))
    done = asyncio.run(committed(desk))
    sla_ends = sum(end for tp, end in ends.items() if tp.topic == desk.sla_topic)
    events = all(done.get(tp, -1) >= end for tp, end in ends.items() if tp.topic == desk.events_topic)
    return ends if events and sla_ends == steps_published else None


def wait_until_idle(desk: Desk, publish: subprocess.Popen, processes: list[Worker]) -> dict:
    """Poll until the worker is idle with its own steps folded (see the module's docstring).

    Returns its counters then, what ``keydesk publish`` reported and the end offsets.
    """
    worker = desk.workers[0]
    deadline = time.monotonic() + TIMEOUT
    sent: int | None = None
    processed: dict[str, int] = {}
    while True:
        if sent is None and publish.poll() is not None:
            out, err = publish.communicate()
            found = [line for line in out.splitlines() if line.startswith("sent ")]
            if publish.returncode != 0 or not found:
                raise BenchFailure(f"keydesk publish failed ({publish.returncode}): {err[-2000:]}")
            sent = int(found[-1].split()[1])
        processed = counters(worker)
        twice = {k: processed[k] for k in COUNTED_TWICE if processed.get(k)}
        if twice:
            raise BenchFailure(f"records folded more than once, the counters cannot tell when: {twice}")
        if sent is not None and processed and not processed.get("sla_steps_unsent"):
            steps = processed.get("sla_steps_published", 0)
            # Each record folded or parked once: every event sent (and forwarded home), every step.
            if handled(processed) == sent + processed.get("forwarded", 0) + steps:
                ends = events_done(desk, steps)
                if ends is not None:
                    return {"sent": sent, "processed": processed, "ends": ends}
        dead = [p for p in processes if not p.alive()]
        if dead or time.monotonic() > deadline:
            raise BenchFailure(
                f"{len(dead)} process(es) stopped, or timed out; counters {processed}; "
                + "\n".join(p.log_path.read_text(errors="replace")[-3000:] for p in processes)
            )
        time.sleep(POLL)  # pacing the look at the worker's counters; the condition is what is waited for


def timeline(worker_log: Path, started_at: float) -> dict[str, float | None]:
    """When (seconds after the publish began) the worker's log says it last folded an event of the
    log, published a step, folded a step and logged an alert: where a slow run spent its time."""
    last: dict[str, str] = {}
    with worker_log.open("rb") as lines:
        for line in lines:
            if not line.startswith(b"{"):
                continue
            record = orjson.loads(line)
            what = record.get("event")
            if what == "event.folded":
                what = "step_folded" if str(record.get("event_type")).startswith("sla.") else "event_folded"
            elif what not in ("sla.step_published", "alert_delivered"):
                continue
            last[what] = record["timestamp"]
    return {
        f"last_{what.replace('.', '_')}": round(datetime.fromisoformat(at).timestamp() - started_at, 2)
        for what, at in sorted(last.items())
    }


def through_kafka(log: Path, workdir: Path, choice: str, server_url: str | None, sink: str) -> dict:
    """Publish the log to a fresh desk, time it to done, then read back its steps."""
    workdir.mkdir()
    with (
        bench_events_topic(PARTITIONS, "logkafka") as settings,
        database(choice, server_url, workdir) as url,
    ):
        env = {"KEYDESK_CLOCK": "replay", "KEYDESK_DB": url}
        if sink == "process":
            env["KEYDESK_SINK"] = "off"
        desk = Desk(bootstrap=settings.kafka, prefix=settings.topic_prefix, tmp=workdir, extra_env=env)
        processes: list[Worker] = []
        try:
            worker = desk.start_worker()
            processes.append(worker)
            if sink == "process":
                processes.append(start_sink_process(desk))
            desk.wait_until_partitions_split()
            started, started_at = time.perf_counter(), time.time()
            publish = subprocess.Popen(
                [sys.executable, "-m", "handlers.cli", "publish", str(log)],
                env=desk.env(1),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
            )
            idle = wait_until_idle(desk, publish, processes)
            worker_idle = time.perf_counter() - started
            ends = idle["ends"]
            wait_for_sink(desk, url, ends, timeout=TIMEOUT)
            done = time.perf_counter() - started
            steps = asyncio.run(read_topic(desk, desk.sla_topic, ends))
        finally:
            for process in processes:
                process.stop()
        engine = open_engine(url)
        try:
            with engine.connect() as conn:
                stored = conn.execute(select(func.count()).select_from(EventRecord)).scalar_one()
        finally:
            engine.dispose()
        return {
            "seconds": round(done, 2),
            "worker_idle_seconds": round(worker_idle, 2),
            "sent": idle["sent"],
            "processed": idle["processed"],
            "steps": steps,
            "event_log_rows": stored,
            "worker_log": timeline(worker.log_path, started_at),
        }


def writer_ab(log: Path, steps: Path, server_url: str, batch: int) -> dict:
    """The sink's writer alone (no Kafka) on PostgreSQL, multi-row VALUES against unnest arrays.

    The log and the replay's steps, each on its customer's home partition of
    its topic, written in batches of ``batch`` records, once per way into a
    fresh database; then every derived table must hold the same rows in both
    (``stored_at`` aside).  Same run, twice each, alternating (values, arrays,
    arrays, values), so the figures compare.
    """
    partitions: dict[tuple[str, int], list[bytes]] = {}
    for topic, path in (("ab.events", log), ("ab.sla", steps)):
        with path.open("rb") as lines:
            for line in lines:
                if line.strip():
                    customer = orjson.loads(line)["customer_id"]
                    partitions.setdefault((topic, home_partition(customer, PARTITIONS)), []).append(line)
    figures: dict[str, Any] = {"values_seconds": [], "arrays_seconds": []}
    tables: dict[str, dict[str, list]] = {}
    for arrays in (False, True, True, False):
        name = "arrays" if arrays else "values"
        url = create_database(server_url, "writerab")
        engine = open_engine(url)
        try:
            upgrade(engine)
            writer = SinkWriter(engine, load_rules(), "writer-ab", arrays=arrays)
            started = time.perf_counter()
            for (topic, partition), values in sorted(partitions.items()):
                for first in range(0, len(values), batch):
                    writer.write(topic, partition, list(enumerate(values[first : first + batch], first)))
            seconds = time.perf_counter() - started
            figures[f"{name}_seconds"].append(round(seconds, 2))
            tables[name] = table_rows(engine)
        finally:
            engine.dispose()
            drop_database(server_url, url)
        print(f"writer alone, {name}: {seconds:.1f} s", flush=True)
    figures["same_rows"] = tables["values"] == tables["arrays"]
    figures["records"] = sum(len(v) for v in partitions.values())
    return figures


def table_rows(engine) -> dict[str, list]:
    """Every row of every table the sink writes, sorted (``stored_at``/``updated_at`` of positions aside)."""
    out = {}
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            if table.name == "sink_positions":
                continue
            columns = [c for c in table.c if c.name != "stored_at"]
            out[table.name] = sorted(repr(tuple(row)) for row in conn.execute(select(*columns)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--log", type=Path, help="this JSON-lines file instead of the generated log")
    parser.add_argument("--customers", type=int, default=CUSTOMERS, help="customers of the generated log")
    parser.add_argument("--seed", type=int, default=1, help="seed of the generated log")
    parser.add_argument(
        "--database",
        default="sqlite",
        help="comma-separated, each run in turn: sqlite (a fresh file, default), postgresql "
        "(a throwaway server) or a postgresql:// server URL (a fresh database on it)",
    )
    parser.add_argument(
        "--sink",
        default="worker",
        help="comma-separated, each run in turn: worker (the SQL sink inside the worker, "
        "KEYDESK_SINK=on, default) or process (`keydesk sink` beside a worker without one)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, databases)")
    parser.add_argument(
        "--writer-ab",
        type=int,
        metavar="BATCH",
        help="instead: the sink's writer alone on PostgreSQL, VALUES against arrays, in batches of BATCH",
    )
    args = parser.parse_args()
    databases = args.database.split(",")
    sinks = args.sink.split(",")
    if not set(sinks) <= {"worker", "process"}:
        parser.error("--sink: worker or process")
    workdir = Path(tempfile.mkdtemp(prefix="keydesk-logkafka-"))
    try:
        log = args.log or generated(workdir, args.customers, args.seed)
        lines = sum(1 for line in log.open("rb") if line.strip())
        if lines < MIN_EVENTS:
            print(f"warning: {lines:,} events, fewer than the {MIN_EVENTS:,} of the target", flush=True)
        figures: dict = {
            "log": str(log),
            "lines": lines,
            "commit": subprocess.run(
                ["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True, text=True
            ).stdout.strip(),
            "load_average_start": Path("/proc/loadavg").read_text().split()[:3],
        }
        replayed = replay_once(ROOT, log, workdir / "steps.jsonl")
        figures["replay"] = replayed
        print(
            f"in process: {replayed['events']:,} events in {replayed['seconds']:.1f} s "
            f"({replayed['events_per_s']:,.0f} events/s), {replayed['steps']:,} steps",
            flush=True,
        )
        with (workdir / "steps.jsonl").open("rb") as out:
            replay_steps = [decode_event(line) for line in out if line.strip()]
        distinct = len(event_ids(log) | {step.event_id for step in replay_steps})
        if args.writer_ab:
            with servers(["postgresql"], broker=False) as server_url:
                assert server_url is not None
                figures["writer_ab"] = writer_ab(log, workdir / "steps.jsonl", server_url, args.writer_ab)
            print(orjson.dumps(figures).decode(), flush=True)
            return
        figures["runs"] = []
        with servers(databases) as server_url:
            for number, (choice, sink) in enumerate((d, k) for d in databases for k in sinks):
                kind = "sqlite" if choice == "sqlite" else "postgresql"
                kafka = through_kafka(log, workdir / f"run-{number}", choice, server_url, sink)
                problem = step_disagreement(kafka.pop("steps"), replay_steps)
                ratio = kafka["seconds"] / replayed["seconds"]
                run = {
                    "database": kind,
                    "sink": sink,
                    **kafka,
                    "ratio": round(ratio, 2),
                    "target": TARGETS[kind],
                    "met": ratio <= TARGETS[kind],
                    "same_steps": problem is None,
                    "step_problem": problem,
                    "event_log_complete": kafka["event_log_rows"] == distinct,
                    "distinct_events": distinct,
                }
                figures["runs"].append(run)
                print(
                    f"through Kafka ({kind}, sink in {sink}): {kafka['sent']:,} events to done in "
                    f"{kafka['seconds']:.1f} s (worker idle at {kafka['worker_idle_seconds']:.1f} s) = "
                    f"{ratio:.2f}x the in-process replay (target {TARGETS[kind]:.0f}x: "
                    f"{'met' if run['met'] else 'NOT met'}); steps "
                    f"{'the same as' if problem is None else 'DIFFERENT from'} the replay's; event_log "
                    f"{kafka['event_log_rows']:,} rows of {distinct:,} distinct events",
                    flush=True,
                )
                if problem:
                    print(problem, flush=True)
        figures["load_average_end"] = Path("/proc/loadavg").read_text().split()[:3]
        print(orjson.dumps(figures).decode(), flush=True)
    finally:
        if args.keep:
            print(f"kept {workdir}", flush=True)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
