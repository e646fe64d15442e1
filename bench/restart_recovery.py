"""Restart to ready: how long a worker takes to serve again with N customers' state to recover.

On the local Apache Kafka broker (``KEYDESK_KAFKA``, else one started for this
run), with a fresh topic prefix and application id:

1. publishes, for each of N customers (default 100,000), a ``customer.registered``
   and a ``fault.reported`` (so every customer has a profile and one open item);
   with ``--items-per-customer K``, K open items instead, faults, tickets and
   orders in turn (:data:`ITEM_CYCLE`: 10 clocks a customer at K=5);
2. starts a worker (``python -m handlers.cli worker``), waits until it has folded
   all N·(1+K) events (``GET /api/health``, ``processed``) and committed their
   offsets (60 s at most: ``uncommitted_before_stop`` says what was left), and
   stops it with SIGTERM (killed if it has not stopped within 60 s);
3. counts the changelog records a new worker has to recover (the end offsets of
   the ``<app id>-*-changelog`` topics) and their bytes;
4. starts a NEW worker process with the same settings and times it from its start
   (just before ``Popen``) to the first HTTP answer and to ``GET /api/health``
   answering 200 with ``"ready": true`` and every partition assigned (a worker
   that says ready before its first assignment has recovered nothing yet);
   notes the longest wait between two health answers on the way (the event loop
   busy with something else); then reads its RSS and checks the views of a
   random sample of customers (profile and every open item present, each running
   the clocks of its kind), and takes the clocks held from the worker's deadline
   index (its ``sla_timers.rebuilt`` line) and those checks (``clocks_held``).
   ``--restarts R`` does this R times on the same state.

Prints one JSON line of figures.  The faults are reported "now" (``--at``), for
public-tier customers at severity ``warning`` (P4 on business hours: a first
warning hours of business time away under the shipped rules): no SLA clock
comes due during the run, so the worker does nothing but recover and rebuild,
and the figure is not mixed with SLA steps being published
(the ``processed`` counts in the output would show any).  ``--py-spy PATH``
also profiles the restarted worker from its start until ready (the last of the
``--restarts``, so that with two the first is timed without the profiler).

``--tree`` runs the workers from another checkout of keydesk (its directory is
the workers' working directory and ``PYTHONPATH``); the bench itself (broker,
publishing, checks) always runs from this one.  The CLI and settings are the
same in both, so the same figures can be taken before and after a change:

    .venv/bin/python bench/restart_recovery.py --customers 100000
    git worktree add ../before e782ef6   # say: the code before issue 9
    .venv/bin/python bench/restart_recovery.py --customers 100000 --tree ../before
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.throughput import bench_events_topic  # noqa: E402
from handlers.local.ports import free_port as _free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHANGHAI = timezone(timedelta(hours=8))
FOLD_TIMEOUT = 3600.0  # seconds the first worker may take to fold everything
READY_TIMEOUT = 1800.0  # seconds the restarted worker may take to be ready
STOP_TIMEOUT = 60.0  # seconds after SIGTERM before a worker is killed
OUTCOMES = ("applied", "duplicate", "rejected", "archived", "dead_lettered")


# -- the state to recover -----------------------------------------------------------


def customer_id(number: int) -> str:
    return f"C-{number:07d}"


#: The kind of a customer's ``j``-th item (``--items-per-customer``): faults,
#: tickets and orders in turn.  Under the shipped rules (public tier) an open
#: fault runs 3 clocks (response, restore, resolve), an open ticket 2 (response,
#: resolve), an order received 1 (provision; acceptance starts at activation,
#: revisit at closure): 2 clocks per item on average over the cycle of 5.
ITEM_CYCLE = ("fault", "ticket", "order", "fault", "order")
CLOCKS_PER_KIND = {"fault": 3, "ticket": 2, "order": 1}


def item_ids(number: int, per_customer: int) -> list[tuple[str, str]]:
    """``(kind, id)`` of a customer's items; the first one is its fault ``F-<number>``."""
    prefix = {"fault": "F", "ticket": "T", "order": "O"}
    return [
        (kind, f"{prefix[kind]}-{number:07d}" + (f"-{j}" if j else ""))
        for j, kind in ((j, ITEM_CYCLE[j % len(ITEM_CYCLE)]) for j in range(per_customer))
    ]


def expected_clocks(customers: int, per_customer: int) -> dict[str, int]:
    """Open items and running clocks by kind the published events give, under the shipped rules."""
    figures: dict[str, int] = {}
    for kind, _ in item_ids(0, per_customer):
        figures[f"{kind}_items"] = figures.get(f"{kind}_items", 0) + customers
        figures["clocks"] = figures.get("clocks", 0) + customers * CLOCKS_PER_KIND[kind]
    figures["items"] = customers * per_customer
    return figures


def customer_events(customers: int, at: datetime, per_customer: int = 1, seed: int = 9):
    """``(key, value)`` wire messages: each customer's registration, then its items."""
    rng = random.Random(seed)
    instant = at.astimezone(SHANGHAI).replace(microsecond=0).isoformat()

    def envelope(event_type: str, cid: str, entity: str, source: str, payload: dict) -> bytes:
        return orjson.dumps(
            {
                "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "event_type": event_type,
                "schema_version": 1,
                "customer_id": cid,
                "entity_id": entity,
                "occurred_at": instant,
                "recorded_at": instant,
                "source": source,
                "actor": "bench",
                "payload": payload,
            }
        )

    for number in range(customers):
        cid = customer_id(number)
        yield (
            cid.encode(),
            envelope(
                "customer.registered",
                cid,
                cid,
                "account_manager",
                {
                    "name": f"客户{cid}",
                    "tier": "public",
                    "account_manager": {"id": f"AM-{number % 60}", "name": "李敏"},
                },
            ),
        )
        for kind, entity in item_ids(number, per_customer):
            if kind == "fault":
                event = envelope(
                    "fault.reported",
                    cid,
                    entity,
                    "system",
                    {
                        "severity": "warning",
                        "summary": "专线中断",
                        "service": "MPLS VPN",
                        "circuit_id": f"GZ-{entity[2:]}",
                    },
                )
            elif kind == "ticket":
                event = envelope(
                    "ticket.opened",
                    cid,
                    entity,
                    "web",
                    {"kind": "service_request", "priority": "P4", "subject": "申请增加带宽"},
                )
            else:
                event = envelope(
                    "order.received",
                    cid,
                    entity,
                    "account_manager",
                    {"product": "leased_line", "urgency": "normal", "bandwidth": "100M"},
                )
            yield cid.encode(), event


async def publish(bootstrap: str, topic: str, customers: int, at: datetime, per_customer: int) -> float:
    """Publish the events; returns the seconds it took."""
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
        pending = []
        for key, value in customer_events(customers, at, per_customer):
            pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - started


# -- the broker's side of the figures -------------------------------------------------


async def _end_offsets(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics(topics) if topics else []
    finally:
        await admin.close()
    partitions = [TopicPartition(d["topic"], p["partition"]) for d in described for p in d["partitions"]]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        return await consumer.end_offsets(partitions) if partitions else {}
    finally:
        await consumer.stop()


async def changelog_records(bootstrap: str, app_id: str) -> dict[str, dict[str, int]]:
    """Per changelog topic of the application: its records (end offsets) and their bytes.

    What a new worker's recovery reads.  The bytes are counted by reading every
    record (key and value), which also shows that the records are there.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = sorted(
            t for t in await admin.list_topics() if t.startswith(f"{app_id}-") and t.endswith("-changelog")
        )
    finally:
        await admin.close()
    ends = await _end_offsets(bootstrap, topics)
    figures = {
        topic[len(app_id) + 1 :]: {
            "records": sum(o for tp, o in ends.items() if tp.topic == topic),
            "bytes": 0,
        }
        for topic in topics
    }
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, max_partition_fetch_bytes=4 * 1024 * 1024
    )
    await consumer.start()
    try:
        wanted = [tp for tp, end in ends.items() if end > 0]
        consumer.assign(wanted)
        await consumer.seek_to_beginning(*wanted)
        left = {tp: ends[tp] for tp in wanted}
        while left:
            batch = await consumer.getmany(*left, timeout_ms=10_000, max_records=10_000)
            if not batch:
                raise RuntimeError(f"changelog read stalled with {left} left")
            for tp, records in batch.items():
                figures[tp.topic[len(app_id) + 1 :]]["bytes"] += sum(
                    len(r.key or b"") + len(r.value or b"") for r in records
                )
                if records[-1].offset + 1 >= left[tp]:
                    del left[tp]
                    consumer.pause(tp)
    finally:
        await consumer.stop()
    return figures


async def uncommitted(bootstrap: str, group: str, topic: str) -> int:
    """Events of ``topic`` past the group's committed offsets (all of them if none)."""
    ends = await _end_offsets(bootstrap, [topic])
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group, partitions=list(ends))
    finally:
        await admin.close()
    done = {tp: meta.offset for tp, meta in committed.items() if meta.offset >= 0}
    return sum(end - done.get(tp, 0) for tp, end in ends.items())


# -- the worker ----------------------------------------------------------------------


#: the bench's credential: every API call but health needs one (issue 11)
BENCH_TOKEN = "kdt_" + secrets.token_urlsafe(32)


def provision_identity(data_dir: Path) -> None:
    """A user with every role and :data:`BENCH_TOKEN` in the workers' database (SQLite in ``data_dir``)."""
    from handlers.identity.bootstrap import provision_credential
    from handlers.identity.store import IdentityStore, prepare_database

    engine = prepare_database(f"sqlite:///{(data_dir / 'keydesk.sqlite').resolve()}")
    try:
        provision_credential(IdentityStore(engine), "bench", "bench", BENCH_TOKEN)
    finally:
        engine.dispose()


def worker_env(
    tree: Path, bootstrap: str, prefix: str, app_id: str, port: int, data_dir: Path, partitions: int
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYDESK_")}
    env.update(
        PYTHONPATH=str(tree),
        KEYDESK_KAFKA=bootstrap,
        KEYDESK_TOPIC_PREFIX=prefix,
        KEYDESK_APP_ID=app_id,
        KEYDESK_PARTITIONS=str(partitions),
        KEYDESK_HTTP_PORT=str(port),
        KEYDESK_DATA_DIR=str(data_dir),
        KEYDESK_SINK="off",
        KEYDESK_LOG_FORMAT="json",
    )
    return env


def worker_code(tree: Path, env: dict[str, str]) -> str:
    """Where the workers' ``streams`` package comes from (proof of which tree runs)."""
    done = subprocess.run(
        [sys.executable, "-c", "import streams; print(streams.__file__)"],
        env=env,
        cwd=tree,
        capture_output=True,
        text=True,
        check=True,
    )
    return str(Path(done.stdout.strip()).parent.parent)


def start_worker(tree: Path, env: dict[str, str], log_path: Path) -> subprocess.Popen:
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "handlers.cli", "worker"],
            env=env,
            stderr=log,
            stdout=subprocess.DEVNULL,
            cwd=tree,
        )


def stop_worker(worker: subprocess.Popen) -> dict:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; how long it took and how it ended."""
    started = time.perf_counter()
    worker.send_signal(signal.SIGTERM)
    try:
        code = worker.wait(STOP_TIMEOUT)
        killed = False
    except subprocess.TimeoutExpired:
        worker.kill()
        code = worker.wait(10)
        killed = True
    return {"stop_seconds": round(time.perf_counter() - started, 2), "killed": killed, "exit_code": code}


def health(port: int, timeout: float = 5.0) -> tuple[int, dict] | None:
    """(status, body) of ``GET /api/health``; ``None`` while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=timeout) as answer:
            return answer.status, orjson.loads(answer.read())
    except urllib.error.HTTPError as exc:  # 503: degraded, or an old worker's recovering
        try:
            return exc.code, orjson.loads(exc.read())
        except orjson.JSONDecodeError:
            return exc.code, {}
    except (urllib.error.URLError, ConnectionError, TimeoutError, orjson.JSONDecodeError):
        return None


def wait_folded(port: int, total: int, worker: subprocess.Popen) -> tuple[float, dict]:
    """Poll health until ``total`` events have an outcome; (seconds, processed counts)."""
    started = time.perf_counter()
    processed: dict = {}
    while time.perf_counter() - started < FOLD_TIMEOUT:
        if worker.poll() is not None:
            raise RuntimeError(f"worker exited with {worker.returncode} while folding: {processed}")
        answer = health(port)
        if answer is not None:
            processed = answer[1].get("processed", {})
            if sum(processed.get(k, 0) for k in OUTCOMES) >= total:
                return time.perf_counter() - started, processed
        time.sleep(1.0)
    raise RuntimeError(f"worker did not fold {total} events in {FOLD_TIMEOUT:.0f} s: {processed}")


def wait_committed(bootstrap: str, group: str, topic: str, timeout: float = 60.0) -> int:
    """Wait until the group has committed every event (offsets commit each second)."""
    deadline = time.monotonic() + timeout
    while True:
        left = asyncio.run(uncommitted(bootstrap, group, topic))
        if left == 0 or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def time_to_ready(port: int, worker: subprocess.Popen, started: float, partitions: int) -> dict:
    """Seconds from ``started`` to the first HTTP answer and to health saying ready.

    Ready is a 200 with ``"ready": true`` *and* every partition assigned: a worker
    that says ready before its first assignment (nothing owned, nothing recovered
    yet) is noted (``ready_without_partitions_s``), not taken for ready.
    """
    first_answer = unassigned_ready = last_answer = None
    silence = 0.0  # the longest wait between two answers: the event loop was busy elsewhere
    statuses: list[str] = []
    while time.perf_counter() - started < READY_TIMEOUT:
        if worker.poll() is not None:
            raise RuntimeError(f"restarted worker exited with {worker.returncode}")
        answer = health(port, timeout=10.0)
        now = time.perf_counter() - started
        if answer is not None:
            status, body = answer
            if first_answer is None:
                first_answer = now
            if last_answer is not None:
                silence = max(silence, now - last_answer)
            last_answer = now
            owned = len(body.get("partitions") or ())
            label = f"{status} {body.get('status')} ready={body.get('ready')} partitions={owned}"
            if body.get("problems"):
                label += f" {orjson.dumps(body['problems']).decode()[:300]}"
            if not statuses or statuses[-1] != label:
                statuses.append(label)
            if status == 200 and body.get("ready") is True:
                if owned == partitions:
                    return {
                        "restart_to_ready_s": round(now, 2),
                        "restart_to_first_http_s": round(first_answer, 2),
                        "ready_without_partitions_s": unassigned_ready,
                        "longest_health_silence_s": round(silence, 2),
                        "health_states": statuses,
                        "processed_at_ready": body.get("processed"),
                    }
                if unassigned_ready is None:
                    unassigned_ready = round(now, 2)
        time.sleep(0.05)
    raise RuntimeError(f"restarted worker not ready after {READY_TIMEOUT:.0f} s: {statuses}")


def memory(pid: int) -> dict[str, float]:
    """The process's resident memory now and at its peak, MiB (/proc/<pid>/status)."""
    figures = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            figures[f"{name.lower()}_mib"] = round(int(value.split()[0]) / 1024, 1)
    return figures


def check_views(port: int, customers: int, sample: int, per_customer: int, seed: int = 11) -> dict:
    """The views of ``sample`` random customers: profile and every open item present.

    Also counts the clocks those items run (their SLA summary's metrics, by
    state and by kind): the check that each kind runs the clocks
    :data:`CLOCKS_PER_KIND` says, which the total of clocks held is taken from.
    """
    rng = random.Random(seed)
    numbers = rng.sample(range(customers), min(sample, customers))
    bad: list[str] = []
    states: dict[str, int] = {}
    running: dict[str, list[int]] = {}
    for number in numbers:
        cid = customer_id(number)
        try:
            with urllib.request.urlopen(
                urllib.request.Request(
                    f"http://127.0.0.1:{port}/api/customers/{cid}/view",
                    headers={"Authorization": f"Bearer {BENCH_TOKEN}"},
                ),
                timeout=30,
            ) as answer:
                view = orjson.loads(answer.read())
        except urllib.error.HTTPError as exc:
            bad.append(f"{cid}: HTTP {exc.code} {exc.read()[:200]!r}")
            continue
        profile = view.get("profile") or {}
        if profile.get("name") != f"客户{cid}":
            bad.append(f"{cid}: profile {profile!r:.120}")
        for kind, entity in item_ids(number, per_customer):
            item = ((view.get("open") or {}).get(kind) or {}).get(entity)
            if item is None:
                bad.append(f"{cid}: {kind} {entity} not open")
                continue
            metrics = (item.get("sla") or {}).get("metrics") or {}
            for metric in metrics.values():
                states[str(metric.get("state"))] = states.get(str(metric.get("state")), 0) + 1
            # open: neither met nor cancelled ("pending", or "breached" and still running)
            running.setdefault(kind, []).append(
                sum(m.get("state") not in ("met", "cancelled") for m in metrics.values())
            )
    per_kind = {kind: sorted(set(counts)) for kind, counts in running.items()}
    for kind, counts in per_kind.items():
        if counts != [CLOCKS_PER_KIND[kind]]:
            bad.append(f"{kind}: running clocks per item {counts}, expected {CLOCKS_PER_KIND[kind]}")
    return {
        "views_checked": len(numbers),
        "views_wrong": bad,
        "sampled_clock_states": states,
        "sampled_running_clocks_per_item": per_kind,
    }


def log_marks(log_path: Path, started_wall: datetime) -> dict:
    """Seconds after start of the worker's own milestones, from its JSON log."""
    marks: dict = {}
    wanted = ("worker.processing", "sla_timers.rebuilt")
    with open(log_path, "rb") as log:
        for line in log:
            if not line.startswith(b"{"):
                continue
            record = orjson.loads(line)
            event = record.get("event")
            if event in wanted and event not in marks:
                at = datetime.fromisoformat(record["timestamp"])
                marks[event] = {
                    "at_s": round((at - started_wall).total_seconds(), 2),
                    **{k: record[k] for k in ("seconds_since_start", "customers", "clocks") if k in record},
                }
            if record.get("level") in ("warning", "error", "critical"):
                marks.setdefault("warnings", []).append(f"{record.get('event')!s:.200}"[:200])
    return marks


def restart(
    tree: Path,
    env: dict[str, str],
    workdir: Path,
    port: int,
    args: argparse.Namespace,
    number: int,
    spy: Path | None,
) -> dict:
    """Start worker ``number + 1`` on the recovered state, time it to ready, check it, stop it."""
    figures: dict = {"restart": number, "profiled": spy is not None}
    log_path = workdir / f"worker-{number + 1}.log"
    started_wall = datetime.now(UTC)
    started = time.perf_counter()
    second = start_worker(tree, env, log_path)
    profiler = None
    if spy:
        with open(workdir / "py-spy.log", "wb") as spy_log:
            profiler = subprocess.Popen(
                [
                    str(spy),
                    "record",
                    "--pid",
                    str(second.pid),
                    "--rate",
                    "100",
                    "--format",
                    "raw",
                    "--threads",
                    "--output",
                    str(workdir / "restart-profile.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=spy_log,
            )
    try:
        figures.update(time_to_ready(port, second, started, args.partitions))
        if profiler is not None:
            profiler.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            profiler.wait(60)
        figures.update(memory(second.pid))
        figures.update(check_views(port, args.customers, args.sample, args.items_per_customer))
        answer = health(port)
        figures["processed_after_checks"] = answer[1].get("processed") if answer else None
    finally:
        if profiler is not None and profiler.poll() is None:
            profiler.kill()
        figures["second_worker_stop"] = stop_worker(second)
    figures["log_marks"] = log_marks(log_path, started_wall)
    # What the restarted worker holds: its deadline index's entries (one per
    # item with clocks, from its own ``sla_timers.rebuilt`` line) and the
    # clocks they run (by kind, as the sampled views showed them).
    rebuilt = figures["log_marks"].get("sla_timers.rebuilt") or {}
    figures["deadline_index_entries"] = rebuilt.get("clocks")
    expected = expected_clocks(args.customers, args.items_per_customer)
    if figures["deadline_index_entries"] == expected["items"] and not figures["views_wrong"]:
        figures["clocks_held"] = expected["clocks"]
    else:
        figures["clocks_held"] = None  # not what was published: see views_wrong and the log
    print(
        f"restart {number}: ready in {figures['restart_to_ready_s']} s, clocks held {figures['clocks_held']}",
        flush=True,
    )
    return figures


# -- the run -------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument(
        "--items-per-customer",
        type=int,
        default=1,
        metavar="K",
        help="open items per customer, faults, tickets and orders in turn (5 gives 10 clocks a customer)",
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--tree", type=Path, default=ROOT, help="checkout of keydesk the workers run from (default: this one)"
    )
    parser.add_argument("--sample", type=int, default=20, help="views checked after the restart")
    parser.add_argument(
        "--at",
        type=datetime.fromisoformat,
        default=None,
        help="instant of the events (default: now; SLA clocks start then)",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        default=None,
        metavar="PATH",
        help="py-spy executable: profile the restarted worker from its start "
        "until ready (collapsed stacks, restart-profile.txt in the log "
        "folder); slows it down, so not for the figure itself",
    )
    parser.add_argument(
        "--restarts",
        type=int,
        default=1,
        help="restarts on the same recovered state, one after the other; the figures are the "
        "first's, the others' under later_restarts (with --py-spy, only the last is profiled)",
    )
    args = parser.parse_args()
    tree = args.tree.resolve()
    at = args.at or datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="keydesk-restart-"))
    figures: dict = {
        "customers": args.customers,
        "items_per_customer": args.items_per_customer,
        "events": args.customers * (1 + args.items_per_customer),
        "expected": expected_clocks(args.customers, args.items_per_customer),
        "partitions": args.partitions,
        "load_average_start": Path("/proc/loadavg").read_text().split()[:3],
    }
    with bench_events_topic(args.partitions, "restart") as settings:
        bootstrap, prefix = settings.kafka, settings.topic_prefix
        app_id = f"{prefix}-app"
        port = _free_port()
        env = worker_env(tree, bootstrap, prefix, app_id, port, workdir / "data", args.partitions)
        provision_identity(workdir / "data")
        figures["worker_code"] = worker_code(tree, env)
        figures["publish_s"] = round(
            asyncio.run(
                publish(bootstrap, settings.events_topic, args.customers, at, args.items_per_customer)
            ),
            1,
        )
        print(f"published {figures['events']} events in {figures['publish_s']} s", flush=True)

        first = start_worker(tree, env, workdir / "worker-1.log")
        try:
            seconds, processed = wait_folded(port, figures["events"], first)
            figures["fold_s"] = round(seconds, 1)
            figures["processed_first_worker"] = processed
            figures["uncommitted_before_stop"] = wait_committed(bootstrap, app_id, settings.events_topic)
        finally:
            figures["first_worker_stop"] = stop_worker(first)
        print(
            f"first worker folded {processed} in {figures['fold_s']} s; stop {figures['first_worker_stop']}",
            flush=True,
        )
        figures["uncommitted_after_stop"] = asyncio.run(uncommitted(bootstrap, app_id, settings.events_topic))
        changelogs = asyncio.run(changelog_records(bootstrap, app_id))
        figures["changelog_records"] = sum(c["records"] for c in changelogs.values())
        figures["changelog_mib"] = round(sum(c["bytes"] for c in changelogs.values()) / 2**20, 1)
        figures["changelogs"] = changelogs

        runs = [
            restart(tree, env, workdir, port, args, number, args.py_spy if number == args.restarts else None)
            for number in range(1, args.restarts + 1)
        ]
        figures.update(runs[0])
        if len(runs) > 1:
            figures["later_restarts"] = runs[1:]
    figures["load_average_end"] = Path("/proc/loadavg").read_text().split()[:3]
    figures["logs"] = str(workdir)
    print(orjson.dumps(figures).decode(), flush=True)


if __name__ == "__main__":
    main()
