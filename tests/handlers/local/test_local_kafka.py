"""The local broker survives a crash in place, and never outlives whoever started it.

Real brokers of their own (not the suite's: these ones get killed).  One broker is
crashed and restarted once for the whole module and every restart property is
checked against that one run; the parent-death and CLI tests need brokers of their
own because their parent is the thing that gets killed.  No sleeps synchronise
anything: every wait polls for the awaited fact against a deadline.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from handlers.local import kafka_broker as local_kafka
from handlers.local.kafka_broker import LocalKafka, LocalKafkaError
from handlers.local.ports import free_port as _free_port
from tests.conftest import service_missing

pytestmark = pytest.mark.broker

REPO = Path(__file__).resolve().parents[3]
TOPIC = "restart-in-place"
SENT = 12  # messages before the crash
COMMITTED = 5  # offset the group commits before the crash


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs; a zombie nobody reaped yet counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)  # polling the kernel's process table, bounded by the deadline
    return True


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _kill_if_alive(pid: int) -> None:
    """Clean-up after a failed assertion: the broker we started must not stay behind."""
    if _alive(pid):
        os.kill(pid, signal.SIGKILL)


def _java_pid(parent: subprocess.Popen) -> int | None:
    """The pid the parent script prints after its log lines (None if it died first).

    Bounded without a timeout of ours: ``start()`` gives up after its own.
    """
    for line in parent.stdout:
        if line.startswith("java "):
            return int(line.split()[1])
    return None


async def _create_topic(bootstrap: str, topic: str) -> None:
    """One partition, so offsets and order are those of a single log."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()


async def _read_all(bootstrap: str, topic: str, count: int, **consumer) -> list[bytes]:
    """``count`` values of partition 0 from the earliest offset (or the group's committed)."""
    reader = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest", **consumer
    )
    await reader.start()
    try:
        reader.assign([TopicPartition(topic, 0)])
        values: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(values) < count and time.monotonic() < deadline:
            batches = await reader.getmany(timeout_ms=500)
            values += [record.value for batch in batches.values() for record in batch]
        return values
    finally:
        await reader.stop()


async def _crash_and_restart(broker: LocalKafka) -> dict:
    """Produce, commit, kill -9, start: what was there before and what is there after.

    The producer lives through the crash, as a worker's would: after the restart it
    must reach the broker again on the same address.
    """
    before = {"bootstrap": broker.bootstrap, "cluster_id": broker.cluster_id, "pid": broker.pid}
    await _create_topic(broker.bootstrap, TOPIC)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
    await producer.start()
    try:
        for n in range(SENT):
            await producer.send_and_wait(TOPIC, b"m%d" % n, partition=0)
        group = AIOKafkaConsumer(
            bootstrap_servers=broker.bootstrap, group_id="restart-group", enable_auto_commit=False
        )
        await group.start()
        try:
            group.assign([TopicPartition(TOPIC, 0)])
            await group.commit({TopicPartition(TOPIC, 0): COMMITTED})
        finally:
            await group.stop()

        broker.kill()
        before["killed_pid_gone"] = not _alive(before["pid"])
        started = time.monotonic()
        after = {
            "bootstrap": broker.start(),
            "cluster_id": broker.cluster_id,
            "seconds": time.monotonic() - started,
        }

        await producer.send_and_wait(TOPIC, b"after", partition=0)
    finally:
        await producer.stop()
    group = AIOKafkaConsumer(
        bootstrap_servers=broker.bootstrap, group_id="restart-group", enable_auto_commit=False
    )
    await group.start()
    try:
        group.assign([TopicPartition(TOPIC, 0)])
        after["committed"] = await group.committed(TopicPartition(TOPIC, 0))
    finally:
        await group.stop()
    after["values"] = await _read_all(broker.bootstrap, TOPIC, SENT + 1)
    return {"before": before, "after": after}


# One random id in 64 starts with "-"; this broker gets such an id on purpose, so
# the format command line is shown to take it (a CI run once failed on one).
DASHED_CLUSTER_ID = "-dashed-cluster-idAAAA"


@pytest.fixture(scope="module")
def restart(tmp_path_factory):
    """One broker, crashed and restarted once; yields what was seen before and after."""
    broker = LocalKafka(tmp_path_factory.mktemp("kafka"), partitions=2)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(local_kafka, "_cluster_id", lambda: DASHED_CLUSTER_ID)
            broker.start()
    except LocalKafkaError as exc:
        service_missing("Kafka broker", str(exc))
    try:
        yield asyncio.run(_crash_and_restart(broker))
    finally:
        broker.stop()


class TestClusterId:
    def test_a_drawn_id_that_starts_with_a_dash_is_drawn_again(self, monkeypatch):
        draws = iter([uuid.UUID(bytes=b"\xf8" + bytes(15)), uuid.UUID(int=7)])
        monkeypatch.setattr(local_kafka.uuid, "uuid4", lambda: next(draws))
        assert local_kafka._cluster_id() == "AAAAAAAAAAAAAAAAAAAABw"

    def test_a_broker_formatted_with_a_dashed_id_starts_and_keeps_it(self, restart):
        assert restart["before"]["cluster_id"] == DASHED_CLUSTER_ID


class TestRestartInPlace:
    def test_the_killed_java_process_is_gone_when_kill_returns(self, restart):
        """kill() waits for the broker to die, so a start right after it is not racing it."""
        assert restart["before"]["killed_pid_gone"]

    def test_the_restarted_broker_keeps_its_address_and_cluster_id(self, restart):
        """Clients configured before the crash reach the same cluster after it."""
        before, after = restart["before"], restart["after"]
        assert after["bootstrap"] == before["bootstrap"]
        assert after["cluster_id"] == before["cluster_id"] is not None

    def test_every_message_sent_before_the_crash_is_still_there(self, restart):
        """Acknowledged messages survive the kill -9, in order, and a new one follows them."""
        expected = [b"m%d" % n for n in range(SENT)] + [b"after"]
        assert restart["after"]["values"] == expected

    def test_the_committed_group_offset_survives_the_crash(self, restart):
        """A consumer group resumes where it committed, not at the start or the end."""
        assert restart["after"]["committed"] == COMMITTED

    def test_the_restart_is_ready_within_a_bounded_time(self, restart):
        """The dead broker's session is short, so a restart is not a 15-second wait."""
        assert restart["after"]["seconds"] < 30


linux_only = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the parent-death signal and /proc are Linux's"
)


@linux_only
class TestParentDeath:
    def test_the_broker_dies_when_its_parent_is_killed_with_sigkill(self, tmp_path):
        """No atexit runs after a SIGKILL: the kernel's parent-death signal ends the broker."""
        script = (
            "import sys, threading\n"
            "from pathlib import Path\n"
            "from handlers.local.kafka_broker import LocalKafka\n"
            "broker = LocalKafka(Path(sys.argv[1]))\n"
            "broker.start()\n"
            "print('java', broker.pid, flush=True)\n"
            "threading.Event().wait()\n"
        )
        errors = tmp_path / "parent.stderr"
        with errors.open("wb") as stderr:
            parent = subprocess.Popen(
                [sys.executable, "-c", script, str(tmp_path / "kafka")],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        try:
            java = _java_pid(parent)
            if java is None:
                parent.wait(30)
                service_missing("Kafka broker", errors.read_text()[-3000:])
            assert _alive(java)
            parent.send_signal(signal.SIGKILL)
            parent.wait(10)
            assert _gone_within(java, 10), f"broker {java} outlived its parent"
        finally:
            parent.stdout.close()
            if parent.poll() is None:
                parent.kill()
                parent.wait()
            if java is not None:
                _kill_if_alive(java)


@linux_only
class TestBrokerCommand:
    def _run(self, data_dir: Path, port: int, errors: Path) -> tuple[subprocess.Popen, str]:
        with errors.open("ab") as stderr:
            cli = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "handlers.cli",
                    "broker",
                    "--data-dir",
                    str(data_dir),
                    "--port",
                    str(port),
                ],
                cwd=REPO,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
            )
        bootstrap = cli.stdout.readline().strip()  # bounded by start()'s own timeout
        if not bootstrap:
            cli.wait(30)
            service_missing("Kafka broker", errors.read_text()[-3000:])
        return cli, bootstrap

    def test_a_broker_run_in_place_serves_the_same_data_after_a_kill(self, tmp_path):
        """`keydesk broker --data-dir D --port P`, killed and run again: same address, same data."""
        data_dir, port, errors = tmp_path / "kafka", _free_port(), tmp_path / "cli.stderr"
        sent = [b"cli%d" % n for n in range(5)]

        async def produce(bootstrap: str) -> None:
            await _create_topic(bootstrap, "cli-restart")
            producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
            await producer.start()
            try:
                for value in sent:
                    await producer.send_and_wait("cli-restart", value, partition=0)
            finally:
                await producer.stop()

        first, bootstrap = self._run(data_dir, port, errors)
        java = _children(first.pid)
        try:
            assert bootstrap == f"127.0.0.1:{port}"
            asyncio.run(produce(bootstrap))
            first.send_signal(signal.SIGKILL)
            first.wait(10)
            assert java and all(_gone_within(pid, 10) for pid in java)
        finally:
            first.stdout.close()
            for pid in java:
                _kill_if_alive(pid)

        second, bootstrap_again = self._run(data_dir, port, errors)
        java = _children(second.pid)
        try:
            assert bootstrap_again == bootstrap
            values = asyncio.run(_read_all(bootstrap, "cli-restart", len(sent)))
            assert values == sent
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0
            assert all(_gone_within(pid, 10) for pid in java)
            assert (data_dir / "logs" / "meta.properties").exists(), "a given dir is kept"
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
            second.stdout.close()
            for pid in java:
                _kill_if_alive(pid)
