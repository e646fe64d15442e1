"""A real single-node Apache Kafka broker (KRaft) for local runs and the test suite.

When no bootstrap address is configured, keydesk runs its own broker rather than a
mock: the jars of Apache Kafka come from Maven Central through a small pom
(``local_kafka.pom.xml``, ``mvn dependency:copy-dependencies``) into a cache folder
once, and each start formats a fresh KRaft log directory on free loopback ports.
"""

from __future__ import annotations

import atexit
import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import structlog

KAFKA_VERSION = "3.9.1"
POM = Path(__file__).with_name("local_kafka.pom.xml")
READY_LINE = "Kafka Server started"
log = structlog.get_logger("keydesk.local_kafka")


class LocalKafkaError(RuntimeError):
    """The local broker could not be fetched or started; the message says why."""


def cache_dir() -> Path:
    """Where the broker jars are kept between runs (``KEYDESK_CACHE`` or ~/.cache/keydesk)."""
    return Path(os.environ.get("KEYDESK_CACHE") or Path.home() / ".cache" / "keydesk")


def fetch_jars(version: str = KAFKA_VERSION) -> Path:
    """Fetch the broker's jars through Maven once; returns the folder holding them."""
    lib = cache_dir() / f"kafka-{version}" / "lib"
    done = lib / ".complete"
    if done.exists():
        return lib
    for tool in ("java", "mvn"):
        if shutil.which(tool) is None:
            raise LocalKafkaError(f"`{tool}` is not on PATH: the local broker needs Java 17 "
                                  "and Maven (or set KEYDESK_KAFKA to an existing cluster)")
    lib.mkdir(parents=True, exist_ok=True)
    log.info("local_kafka.fetching_jars", version=version, into=str(lib))
    result = subprocess.run(
        ["mvn", "-q", "-B", "-f", str(POM), f"-Dkafka.version={version}",
         "dependency:copy-dependencies", f"-DoutputDirectory={lib}", "-DincludeScope=runtime"],
        capture_output=True, text=True)
    if result.returncode != 0 or not any(lib.glob(f"kafka_2.13-{version}.jar")):
        raise LocalKafkaError("fetching Apache Kafka jars from Maven Central failed:\n"
                              + (result.stdout + result.stderr)[-4000:])
    done.write_text(version)
    return lib


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cluster_id() -> str:
    return base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()


_LOG4J = """log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""


class LocalKafka:
    """One Apache Kafka broker+controller on 127.0.0.1; ``with LocalKafka() as bootstrap:``."""

    def __init__(self, data_dir: Path | None = None, *, partitions: int = 4,
                 version: str = KAFKA_VERSION, heap: str = "1g") -> None:
        self.version = version
        self.partitions = partitions
        self.heap = heap
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="keydesk-kafka-"))
        self.process: subprocess.Popen | None = None
        self.bootstrap: str | None = None

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    def _write_config(self, port: int, controller_port: int) -> Path:
        logs = self.data_dir / "logs"
        config = self.data_dir / "server.properties"
        config.write_text("\n".join([
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@127.0.0.1:{controller_port}",
            f"listeners=PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{port}",
            "controller.listener.names=CONTROLLER",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name=PLAINTEXT",
            f"log.dirs={logs}",
            f"num.partitions={self.partitions}",
            # one node: internal topics cannot be replicated; few partitions start fast
            "offsets.topic.replication.factor=1",
            "offsets.topic.num.partitions=4",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "transaction.state.log.num.partitions=4",
            # the first consumer group join should not wait 3 s for more members
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "log.cleaner.enable=true",
        ]) + "\n")
        (self.data_dir / "log4j.properties").write_text(_LOG4J.format(log=self.log_file))
        return config

    def start(self, timeout: float = 60.0) -> str:
        """Fetch jars if needed, format, start, and wait until the broker says it started."""
        lib = fetch_jars(self.version)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        port, controller_port = _free_port(), _free_port()
        config = self._write_config(port, controller_port)
        java = ["java", f"-Xmx{self.heap}", "-Xms256m", "-XX:+UseG1GC",
                f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
                "-cp", f"{lib}/*"]
        fmt = subprocess.run([*java, "kafka.tools.StorageTool", "format", "--ignore-formatted",
                              "-t", _cluster_id(), "-c", str(config)],
                             capture_output=True, text=True)
        if fmt.returncode != 0:
            raise LocalKafkaError(f"formatting KRaft storage failed: {fmt.stderr[-2000:]}")
        self.process = subprocess.Popen(
            [*java, "kafka.Kafka", str(config)], stdout=subprocess.DEVNULL,
            stderr=open(self.data_dir / "broker.stderr", "wb"), start_new_session=True)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout
        while READY_LINE not in self._log_text():
            if self.process.poll() is not None:
                raise LocalKafkaError(f"broker exited with {self.process.returncode}: "
                                      f"{self._log_text()[-3000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise LocalKafkaError(f"broker not ready within {timeout:.0f} s; "
                                      f"see {self.log_file}")
            time.sleep(0.05)  # polling the broker's own readiness line, not a guess
        self.bootstrap = f"127.0.0.1:{port}"
        log.info("local_kafka.started", bootstrap=self.bootstrap, version=self.version,
                 data_dir=str(self.data_dir), pid=self.process.pid)
        return self.bootstrap

    def _log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 20 s) and remove a temporary dir."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.info("local_kafka.stopped", pid=process.pid)
        if self._own_dir and process is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
