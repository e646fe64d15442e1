"""Live fan-out (issue 12): 200 event-stream clients while the worker folds 500 events/s.

A real worker on its own local broker (or ``KEYDESK_KAFKA``), with the diamond
P1 fault response cut to 1 minute.  Head-office managers (every customer is
in their scope), with sessions made in the database, open ``--clients``
streams of ``/live?for=inbox`` (at most 8 per user, the hub's bound).  Then
``--rate`` events/s go to the events topic for ``--seconds``:
``--steps`` a second are P1 faults of diamond customers backdated 59 s, whose
breach and first ladder step fall due about a second later; the rest are faults
of other customers (no step during the run).  Each client reads its stream;
for every breach and ladder step row it receives, the latency is its arrival
minus the step's due instant (the row's ``<time datetime>``): timer tick,
publish, the feed's consumer, the fan-out and the stream, all included.

    .venv/bin/python bench/live_fanout.py                  # 200 clients, 500 events/s, 30 s
    .venv/bin/python bench/live_fanout.py --clients 50 --seconds 10

Not part of the test suite.  Prints the figures (and, with ``--write``,
replaces its section of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchmarks_file import replace_section  # noqa: E402
from bench.sla_timers import _rules_file, pct  # noqa: E402
from handlers.local.ports import free_port  # noqa: E402
from schemas.envelope import new_event  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Live fan-out (issue 12)"
PASSWORD = "bench password 12345"
STREAMS_PER_USER = 8
TIME = re.compile(
    rb'id="step-([0-9a-f-]+)".*?data-step="(sla\.[a-z_]+):[0-9]*".*?<time datetime="([^"]+)"', re.S
)
#: the steps whose latency is counted (the run's diamond P1 faults: breach and ladder step 1)
COUNTED = (b"sla.breached", b"sla.escalation_due")


def provision(database_url: str, clients: int) -> list[str]:
    """Head-office managers and one session each stream (8 a user), straight in the database: 200
    argon2 sign-ins take minutes on a shared machine and are not what this measures."""
    from handlers.identity.audit import Who
    from handlers.identity.passwords import hash_password
    from handlers.identity.store import IdentityStore, prepare_database

    engine = prepare_database(database_url)
    store, hashed = IdentityStore(engine), hash_password(PASSWORD)
    secrets = []
    for n in range(clients):
        name = f"bench-mgr-{n // STREAMS_PER_USER}"
        if n % STREAMS_PER_USER == 0:
            store.add_user(name, hashed, ["manager"], Who(actor="bench"), region="*")
        secrets.append(store.open_session(name, Who(actor=name)).secret)
    engine.dispose()
    return secrets


class Client:
    """One event stream; records the latency of every breach and ladder step row it receives."""

    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.arrivals: list[tuple[str, float, float]] = []  # (step event id, due, arrival)
        self.synced = asyncio.Event()
        self.ended: str | None = None

    async def run(self, http: aiohttp.ClientSession, base: str, secret: str) -> None:
        """Open the stream as htmx's SSE extension does: a 503 (the worker's sign-in lane is full while
        200 never-seen sessions arrive at once) is retried after its Retry-After stretched by up to half
        again at random, as browsers spread their reconnections (all 200 back in the same millisecond
        would meet the same full lane again), up to 30 times."""
        for _ in range(30):
            if not await self._stream(http, base, secret):
                return
        self.ended = self.ended or "gave up after 30 refusals"

    async def _stream(self, http: aiohttp.ClientSession, base: str, secret: str) -> bool:
        """One connection; ``True``: refused with 503, to be tried again."""
        try:
            async with http.get(
                f"{base}/live?for=inbox",
                headers={"Authorization": f"Bearer {secret}"},
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
            ) as r:
                if r.status == 503:
                    self.ended = "status 503"
                    await asyncio.sleep(float(r.headers.get("Retry-After", "1")) * (1 + random.random() / 2))
                    return True
                if r.status != 200:
                    self.ended = f"status {r.status}"
                    return False
                self.ended = None
                # Whole chunks, split into events at their blank line: this one process reads all 200
                # streams, and a row it reads late counts as the worker's latency; line-by-line reads
                # cost it far more Python per row.
                pending = b""
                async for chunk in r.content.iter_any():
                    now = time.time()
                    pending += chunk
                    *events, pending = pending.split(b"\n\n")
                    for block in events:
                        self.seen(block, now)
        except (aiohttp.ClientError, asyncio.CancelledError) as exc:
            self.ended = type(exc).__name__
        else:
            self.ended = self.ended or "closed by the worker"
        return False

    def seen(self, block: bytes, now: float) -> None:
        """One server-sent event (its lines, without the blank one), arrived at ``now``."""
        if block.startswith(b"event: sync"):
            self.synced.set()
        elif block.startswith(b"event: step\n"):
            found = TIME.search(block)
            if found and found.group(2) in COUNTED:
                due = datetime.fromisoformat(found.group(3).decode().replace("Z", "+00:00")).timestamp()
                self.latencies.append(now - due)
                self.arrivals.append((found.group(1).decode(), due, now))


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds a process has used so far (``/proc``; 0 if it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuShares:
    """Cores each process used over a window: the worker, the broker, this load generator."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        # a broker at KEYDESK_KAFKA is not ours to measure: left out rather than shown as 0 cores
        self.pids: dict[str, int] = {name: pid for name, pid in pids.items() if pid is not None}
        self.started = time.monotonic()
        self.before = {name: cpu_seconds(pid) for name, pid in pids.items()}

    def cores(self) -> dict[str, float]:
        took = time.monotonic() - self.started
        return {
            name: round((cpu_seconds(pid) - self.before[name]) / took, 2) for name, pid in self.pids.items()
        }


def event_bytes(event_type: str, customer: str, entity: str, at: datetime, **payload) -> bytes:
    return new_event(
        event_type, customer, entity, payload, source="hotline", actor="bench", now=at
    ).to_bytes()


async def load(bootstrap: str, topic: str, rate: int, steps: int, seconds: float) -> dict:
    """``rate`` events/s for ``seconds``, ``steps`` of them a second diamond P1 faults due in ~1 s."""
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5)
    await producer.start()
    sent = diamond_faults = 0
    try:
        diamonds = [f"C-DIA-{n:03d}" for n in range(20)]
        for customer in diamonds:
            registered = event_bytes(
                "customer.registered",
                customer,
                customer,
                datetime.now(UTC) - timedelta(hours=2),
                name=f"钻石客户{customer}",
                tier="diamond",
                account_manager={"id": "AM-1", "name": "李敏"},
            )
            await producer.send(topic, registered, key=customer.encode())
        await producer.flush()
        await asyncio.sleep(2)  # the registrations folded before the faults (bench pacing, not a test)
        started = time.monotonic()
        tick, ticks = 0.1, 0
        per_tick, steps_per_tick = rate * tick, steps * tick
        owed = steps_owed = 0.0
        while time.monotonic() - started < seconds:
            owed += per_tick
            steps_owed += steps_per_tick
            now = datetime.now(UTC)
            while owed >= 1:
                if steps_owed >= 1:
                    customer = diamonds[sent % len(diamonds)]
                    value = event_bytes(
                        "fault.reported",
                        customer,
                        f"F-{uuid.uuid4().hex[:10]}",
                        now - timedelta(seconds=59),
                        severity="critical",
                        summary="专线中断",
                        service="MPLS VPN",
                    )
                    steps_owed -= 1
                    diamond_faults += 1
                else:
                    customer = f"C-BG-{sent % 2000:04d}"
                    value = event_bytes(
                        "fault.reported",
                        customer,
                        f"F-{uuid.uuid4().hex[:10]}",
                        now,
                        severity="minor",
                        summary="告警",
                        service="互联网专线",
                    )
                await producer.send(topic, value, key=customer.encode())  # queued, not waited for
                sent += 1
                owed -= 1
            ticks += 1
            await asyncio.sleep(max(0.0, started + tick * ticks - time.monotonic()))
        await producer.flush()
        took = time.monotonic() - started
    finally:
        await producer.stop()
    return {"sent": sent, "diamond_faults": diamond_faults, "seconds": took, "rate": sent / took}


async def run(args, base: str, bootstrap: str, topic: str, secrets: list[str]) -> dict:
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
        clients = [Client() for _ in secrets]
        tasks = [asyncio.create_task(c.run(http, base, s)) for c, s in zip(clients, secrets, strict=True)]
        try:
            await asyncio.wait_for(asyncio.gather(*(c.synced.wait() for c in clients)), 60)
        except TimeoutError:
            ended = Counter(c.ended or "still waiting" for c in clients if not c.synced.is_set())
            raise SystemExit(f"live_fanout: streams not open within 60 s: {dict(ended)}") from None
        shares = CpuShares({**args.pids, "load generator and clients": os.getpid()})
        produced = await load(bootstrap, topic, args.rate, args.steps, args.seconds)
        await asyncio.sleep(5)  # the last faults' steps fall due ~1 s after they were folded
        cores = shares.cores()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    every = [v for c in clients for v in c.latencies]
    handed = await handed_to_kafka(bootstrap, topic.removesuffix(".events") + ".sla", args.partitions)
    fanout = [at - handed[eid] for c in clients for eid, _, at in c.arrivals if eid in handed]
    lag = {eid: handed[eid] - due for c in clients for eid, due, _ in c.arrivals if eid in handed}
    ended_early = [c.ended for c in clients if c.ended not in (None, "CancelledError")]
    return {
        "clients": len(clients),
        "ended_early": ended_early,
        "produced": produced,
        "deliveries": len(every),
        # a breach and ladder step 1 of each diamond fault, to every client: those not there by the
        # end of the tail are in no latency figure, so they are counted here
        "expected": 2 * produced["diamond_faults"] * len(clients),
        "per_client_min": min((len(c.latencies) for c in clients), default=0),
        "per_client_max": max((len(c.latencies) for c in clients), default=0),
        "p50": pct(every, 50),
        "p99": pct(every, 99),
        "max": max(every, default=float("nan")),
        "fanout_n": len(fanout),
        "fanout_p50": pct(fanout, 50),
        "fanout_p99": pct(fanout, 99),
        "fanout_max": max(fanout, default=float("nan")),
        "worker_lag_n": len(lag),
        "worker_lag_p50": pct(list(lag.values()), 50),
        "worker_lag_p99": pct(list(lag.values()), 99),
        "cores": cores,
    }


async def handed_to_kafka(bootstrap: str, sla_topic: str, count: int) -> dict[str, float]:
    """When the worker handed each step to its Kafka producer, by event id: the record's CreateTime,
    which aiokafka stamps as the record enters its batch (the worker's log says ``sla.step_published``
    only after the broker's acknowledgement, later than the live feed may already have read it)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    await consumer.start()
    found: dict[str, float] = {}
    try:
        partitions = [TopicPartition(sla_topic, p) for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    found[orjson.loads(record.value)["event_id"]] = record.timestamp / 1000
    finally:
        await consumer.stop()
    return found


def keydesk(command: str, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """``keydesk <command>`` in a process of its own, its output into ``log_path``."""
    with open(log_path, "wb") as log_file:
        return subprocess.Popen(
            [sys.executable, "-m", "handlers.cli", command],
            env=env,
            stdout=log_file,
            stderr=log_file,
            cwd=ROOT,
        )


def wait_ready(base: str, timeout: float = 120) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{base}/api/health", timeout=2) as r:
                if orjson.loads(r.read()).get("ready"):
                    return
        except OSError:
            pass
        time.sleep(0.5)  # polling the worker's health
    raise RuntimeError("the worker did not become ready")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--rate", type=int, default=500, help="events per second")
    parser.add_argument(
        "--steps", type=int, default=10, help="of them, faults whose steps fall due, per second"
    )
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--sink",
        choices=("on", "off", "process"),
        default="on",
        help="the SQL sink in the worker (KEYDESK_SINK=on, the default), nowhere (off), or in a "
        "process of its own beside it (`keydesk sink`; its cores are counted)",
    )
    parser.add_argument("--write", action="store_true", help="replace the section of BENCHMARKS.md")
    args = parser.parse_args()

    from handlers.local.kafka_broker import LocalKafka

    workdir = Path(tempfile.mkdtemp(prefix="keydesk-live-bench-"))
    broker, bootstrap = None, os.environ.get("KEYDESK_KAFKA")
    if not bootstrap:
        broker = LocalKafka(partitions=args.partitions, heap="1g")
        bootstrap = broker.start()
    worker = sink = None
    try:
        prefix = f"live{uuid.uuid4().hex[:6]}"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYDESK_")}
        env.update(
            KEYDESK_KAFKA=bootstrap,
            KEYDESK_TOPIC_PREFIX=prefix,
            KEYDESK_APP_ID=f"{prefix}-app",
            KEYDESK_PARTITIONS=str(args.partitions),
            KEYDESK_LOG_FORMAT="json",
            KEYDESK_HTTP_PORT=str(port),
            KEYDESK_DATA_DIR=str(workdir),
            KEYDESK_SLA_RULES=str(_rules_file(workdir)),
            KEYDESK_SINK="on" if args.sink == "on" else "off",
        )
        secrets = provision(f"sqlite:///{workdir / 'keydesk.sqlite'}", args.clients)
        worker = keydesk("worker", env, workdir / "worker.log")
        base = f"http://127.0.0.1:{port}"
        wait_ready(base)
        if args.sink == "process":
            # once the worker has made the topics: a sink subscribed before is assigned no partition
            # until its metadata is next refreshed (aiokafka's metadata_max_age_ms, 5 minutes)
            sink = keydesk("sink", env, workdir / "sink.log")
        args.pids = {
            "worker": worker.pid,
            "sink": sink.pid if sink is not None else None,
            "broker": broker.pid if broker is not None else None,
        }
        result = asyncio.run(run(args, base, bootstrap, f"{prefix}.events", secrets))
    finally:
        for process in (worker, sink):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(30)
                except subprocess.TimeoutExpired:
                    process.kill()
        if broker is not None:
            broker.stop()
    lines = [
        SECTION,
        "",
        f"`bench/live_fanout.py`, one worker (sink {args.sink}) and its local broker on this machine, "
        f"{os.cpu_count()} cores, {datetime.now(UTC):%Y-%m-%d}.",
        f"{result['clients']} `/live?for=inbox` streams of head-office managers; "
        f"{result['produced']['rate']:.0f} events/s for {result['produced']['seconds']:.0f} s "
        f"({args.steps}/s diamond P1 faults whose breach and ladder step 1 fall due during the run).",
        "",
        f"- step-to-client latency (due instant to arrival at the client), "
        f"over {result['deliveries']:,} deliveries: p50 {result['p50']:.3f} s, "
        f"p99 {result['p99']:.3f} s, max {result['max']:.3f} s",
        f"- of which the worker's own lag (due instant to the step handed to its Kafka producer, the "
        f"record's CreateTime), over {result['worker_lag_n']:,} steps: p50 {result['worker_lag_p50']:.3f} s, "
        f"p99 {result['worker_lag_p99']:.3f} s",
        f"- fan-out alone (handed to Kafka to arrival at the client), over {result['fanout_n']:,} "
        f"deliveries: p50 {result['fanout_p50']:.3f} s, p99 {result['fanout_p99']:.3f} s, "
        f"max {result['fanout_max']:.3f} s",
        "- cores used during the load and its 5 s tail: "
        + ", ".join(f"{name} {cores:.2f}" for name, cores in result["cores"].items()),
        f"- steps received per client: {result['per_client_min']}–{result['per_client_max']} of "
        f"{result['expected'] // max(result['clients'], 1)} due; "
        f"streams ended early: {len(result['ended_early'])} {sorted(set(result['ended_early']))}",
        "",
    ]
    print("\n".join(lines))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    if args.write:
        replace_section(SECTION, lines)


if __name__ == "__main__":
    main()
