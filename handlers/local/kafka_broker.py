"""A real single-node Apache Kafka broker (KRaft) for local runs and the test suite.

When no bootstrap address is configured, keydesk runs its own broker rather than a
mock, on the jars of Apache Kafka that ``handlers/local/kafka_jars.py`` fetches from Maven
Central into a cache folder once.  The first start formats a KRaft log directory (a
temporary one unless a ``data_dir`` is given) on free loopback ports, or on the
``port`` asked for.

The broker can be stopped and started again *in place*, which is what a restart test
needs: a ``LocalKafka`` keeps its ports once picked, and a data directory that is
already formatted is reused with its cluster id (Kafka's own ``meta.properties``),
so topics, messages and committed offsets survive.  ``kill()`` is the crash
(SIGKILL, nothing cleaned up), ``stop()`` the orderly end that also removes a
temporary directory, ``restart()`` a crash followed by a start.

The Java process must not outlive the Python process that started it, not even a
``kill -9`` of that one: on Linux the broker is started with a parent-death signal
(``prctl(PR_SET_PDEATHSIG, SIGKILL)``), in a session of its own so that a Ctrl-C in
the terminal reaches only us and we stop it once, in order (also at exit).

With :class:`SecuredListeners` the broker also listens with TLS and
authentication, beside its plaintext listener (which the rest of the suite and
the broker's own readiness probe use): ``SASL_SSL`` (PLAIN and SCRAM-SHA-512
users) and ``SSL`` requiring a client certificate (mutual TLS).  That is how the
suite proves keydesk works against a secured cluster (``tests/e2e/test_kafka_security.py``).
"""

from __future__ import annotations

import asyncio
import atexit
import base64
import concurrent.futures
import ctypes
import errno
import fcntl
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from handlers.local.kafka_jars import KAFKA_VERSION, LocalKafkaError, fetch_jars
from handlers.local.ports import free_port as _free_port

READY_LINE = "Kafka Server started"
BIND_FAILED = "Address already in use"
HOST = "127.0.0.1"
HELD_WAIT = 10.0  # seconds a port or the log directory may stay taken before we give up
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
log = structlog.get_logger("keydesk.local_kafka")


def _port_is_free(port: int) -> bool:
    """Whether the JVM could listen on ``port`` now.

    The JVM sets SO_REUSEADDR on its server sockets, so connections of a killed
    broker lingering in TIME_WAIT do not block it; we probe the same way, and what
    is left is a port someone really holds (a listener, or a client's local port).
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return False
            raise
    return True


def _dir_is_unlocked(lock: Path) -> bool:
    """Whether no other broker holds Kafka's lock on the log directory.

    Kafka locks ``.lock`` with an fcntl record lock, the kind ``lockf`` takes too;
    it is released when the holder dies, so a broker killed a moment ago frees it.
    """
    try:
        with lock.open("rb+") as file:
            try:
                fcntl.lockf(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False
            fcntl.lockf(file, fcntl.LOCK_UN)
    except FileNotFoundError:
        pass
    return True


def _cluster_id() -> str:
    """A random KRaft cluster id that no command line can mistake for an option.

    The id is URL-safe base64, so one in 64 starts with ``-``, and
    ``kafka-storage format -t -xyz`` then fails with "expected one argument".
    Kafka's own ``Uuid.randomUuid`` draws again in that case; so do we.
    """
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()).startswith("-"):
        pass
    return cluster_id


def _die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that has the kernel SIGKILL the child when its parent dies.

    Linux only.  The signal fires when the *thread* that forked exits, not the
    process, so it is only asked for from the main thread (whose end is the
    process's end); a start from another thread logs that it goes without.
    libc is loaded here, before the fork: the child only makes the calls.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        log.warning(
            "local_kafka.no_parent_death_signal",
            reason="started outside the main thread; a kill -9 of this "
            "process would leave the broker running",
        )
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        # a blocked signal mask is inherited across exec: `keydesk broker` blocks
        # SIGINT/SIGTERM for its sigwait, and the broker must still get our SIGTERM
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the prctl took hold
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


# what may stand in a JAAS option and a --add-scram argument without quoting rules
_PLAIN_WORD = re.compile(r"[A-Za-z0-9._-]{1,200}")


@dataclass(frozen=True)
class SecuredListeners:
    """TLS material and users for the broker's secured listeners (all PEM files).

    ``SASL_SSL`` presents ``cert_chain`` (the broker's certificate, then its
    CAs') with ``key`` (unencrypted PKCS#8) and accepts PLAIN ``plain_users``
    and SCRAM-SHA-512 ``scram_users`` (name -> password).  ``SSL`` presents the
    same certificate and requires a client certificate signed by ``client_ca``.
    SCRAM users are stored when the log directory is formatted, so they are
    those of the first start of a data directory.

    Authorization is on (Kafka's ``StandardAuthorizer``, deny by default): the
    secured listeners' users may do what an ACL allows, and nothing else; the
    plaintext listener's anonymous user is a super user (the broker's own
    readiness probe, and whoever sets up the ACLs).
    """

    cert_chain: Path
    key: Path
    client_ca: Path
    plain_users: Mapping[str, str] = field(default_factory=dict)
    scram_users: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, password in [*self.plain_users.items(), *self.scram_users.items()]:
            if not (_PLAIN_WORD.fullmatch(name) and _PLAIN_WORD.fullmatch(password)):
                raise LocalKafkaError(f"user {name!r}: names and passwords are letters, digits, . _ -")

    def keystore(self) -> str:
        """One PEM with the key and the chain: the file Kafka's PEM key store reads."""
        return self.key.read_text() + self.cert_chain.read_text()

    def plain_jaas(self) -> str:
        users = "".join(f' user_{name}="{password}"' for name, password in sorted(self.plain_users.items()))
        return f"org.apache.kafka.common.security.plain.PlainLoginModule required{users};"

    def scram_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that store the SCRAM users."""
        return [
            arg
            for name, password in sorted(self.scram_users.items())
            for arg in ("--add-scram", f"SCRAM-SHA-512=[name={name},password={password}]")
        ]


_LOG4J = """log4j.rootLogger=WARN, file
log4j.appender.file=org.apache.log4j.FileAppender
log4j.appender.file.File={log}
log4j.appender.file.layout=org.apache.log4j.PatternLayout
log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.server.KafkaRaftServer=INFO
"""


class LocalKafka:
    """One Apache Kafka broker+controller on 127.0.0.1; ``with LocalKafka() as bootstrap:``.

    ``port`` and ``controller_port`` default to free ports picked at the first start
    and kept for every later start of this object.  ``data_dir`` defaults to a
    temporary directory that ``stop()`` removes; a given one is never removed.
    """

    def __init__(
        self,
        data_dir: Path | None = None,
        *,
        partitions: int = 4,
        port: int | None = None,
        controller_port: int | None = None,
        version: str = KAFKA_VERSION,
        heap: str = "1g",
        secured: SecuredListeners | None = None,
    ) -> None:
        self.version = version
        self.secured = secured
        self.sasl_ssl_port: int | None = None  # picked at the first start, with ``secured``
        self.ssl_port: int | None = None
        self.partitions = partitions
        self.heap = heap
        self.port = port
        self.controller_port = controller_port
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir or tempfile.mkdtemp(prefix="keydesk-kafka-"))
        self.process: subprocess.Popen | None = None
        self._atexit = False

    @property
    def bootstrap(self) -> str | None:
        """``host:port`` of the broker; known once the port is (given, or after a start)."""
        return None if self.port is None else f"{HOST}:{self.port}"

    @property
    def sasl_ssl_bootstrap(self) -> str | None:
        """``host:port`` of the SASL_SSL listener (with ``secured``, once started)."""
        return None if self.sasl_ssl_port is None else f"{HOST}:{self.sasl_ssl_port}"

    @property
    def ssl_bootstrap(self) -> str | None:
        """``host:port`` of the SSL listener that requires a client certificate."""
        return None if self.ssl_port is None else f"{HOST}:{self.ssl_port}"

    @property
    def _ports(self) -> list[int]:
        return [p for p in (self.port, self.controller_port, self.sasl_ssl_port, self.ssl_port) if p]

    @property
    def pid(self) -> int | None:
        """The Java process's id while it runs."""
        return None if self.process is None else self.process.pid

    @property
    def log_file(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def log_dir(self) -> Path:
        """Kafka's own ``log.dirs``: topic partitions, KRaft metadata, ``meta.properties``."""
        return self.data_dir / "logs"

    @property
    def cluster_id(self) -> str | None:
        """The id the storage was formatted with (None before the first start)."""
        try:
            text = (self.log_dir / "meta.properties").read_text()
        except FileNotFoundError:
            return None
        for line in text.splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "cluster.id":
                return value.strip()
        return None

    def _write_config(self) -> Path:
        port, controller_port = self.port, self.controller_port
        listeners = [f"PLAINTEXT://{HOST}:{port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        if self.secured is not None:
            listeners += [f"SASL_SSL://{HOST}:{self.sasl_ssl_port}", f"SSL://{HOST}:{self.ssl_port}"]
            protocols += ["SASL_SSL:SASL_SSL", "SSL:SSL"]
        config = self.data_dir / "server.properties"
        config.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.voters=1@{HOST}:{controller_port}",
                    f"listeners={','.join(listeners)},CONTROLLER://{HOST}:{controller_port}",
                    f"advertised.listeners={','.join(listeners)}",
                    "controller.listener.names=CONTROLLER",
                    f"listener.security.protocol.map={','.join(protocols)}",
                    "inter.broker.listener.name=PLAINTEXT",
                    f"log.dirs={self.log_dir}",
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
                    # after a crash the controller refuses the broker's new registration until the
                    # dead one's session expires: 9 s by default, which a restart would wait out;
                    # heartbeats every 0.5 s still leave a loaded machine room before fencing
                    "broker.session.timeout.ms=3000",
                    "broker.heartbeat.interval.ms=500",
                    *self._secured_config(),
                ]
            )
            + "\n"
        )
        (self.data_dir / "log4j.properties").write_text(_LOG4J.format(log=self.log_file))
        return config

    def _secured_config(self) -> list[str]:
        """server.properties lines of the SASL_SSL and SSL listeners (none without ``secured``)."""
        if self.secured is None:
            return []
        keystore = self.data_dir / "broker-keystore.pem"
        keystore.write_text(self.secured.keystore())
        keystore.chmod(0o600)
        return [
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users=User:ANONYMOUS",
            # both TLS listeners present the broker's certificate
            "ssl.keystore.type=PEM",
            f"ssl.keystore.location={keystore}",
            "listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512",
            f"listener.name.sasl_ssl.plain.sasl.jaas.config={self.secured.plain_jaas()}",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "listener.name.ssl.ssl.client.auth=required",
            "listener.name.ssl.ssl.truststore.type=PEM",
            f"listener.name.ssl.ssl.truststore.location={self.secured.client_ca}",
        ]

    def _java(self, lib: Path) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap}",
            "-Xms256m",
            "-XX:+UseG1GC",
            f"-Dlog4j.configuration=file:{self.data_dir / 'log4j.properties'}",
            "-cp",
            f"{lib}/*",
        ]

    def _format_once(self, java: list[str], config: Path) -> str:
        """Format the storage unless it already is: a new cluster id would orphan the data."""
        if (cluster_id := self.cluster_id) is not None:
            return cluster_id
        cluster_id = _cluster_id()
        fmt = subprocess.run(
            [
                *java,
                "kafka.tools.StorageTool",
                "format",
                "--ignore-formatted",
                f"--cluster-id={cluster_id}",
                "-c",
                str(config),
                *(self.secured.scram_arguments() if self.secured is not None else []),
            ],
            capture_output=True,
            text=True,
        )
        if fmt.returncode != 0:
            raise LocalKafkaError(f"formatting KRaft storage failed: {fmt.stderr[-2000:]}")
        return cluster_id

    def start(self, timeout: float = 60.0) -> str:
        """Start (formatting a new directory first) and return the bootstrap once usable.

        Usable means more than "the port answers": the broker said it started in
        *this* run's log, and a metadata request shows our cluster id, an active
        controller and a leader for every partition (after a crash the broker may
        still be recovering its logs).  A port or the log directory still held
        (by the broker killed a moment ago) is waited for, ``HELD_WAIT`` at most.
        """
        if self.process is not None and self.process.poll() is None:
            return f"{HOST}:{self.port}"
        lib = fetch_jars(self.version)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = self.port or _free_port(self.controller_port)
        self.controller_port = self.controller_port or _free_port(self.port)
        if self.secured is not None:
            self.sasl_ssl_port = self.sasl_ssl_port or _free_port(*self._ports)
            self.ssl_port = self.ssl_port or _free_port(*self._ports)
        config = self._write_config()
        java = self._java(lib)
        cluster_id = self._format_once(java, config)
        if not self._atexit:
            atexit.register(self.stop)
            self._atexit = True
        deadline = time.monotonic() + timeout
        while True:
            self._wait_until_free(deadline)
            self._launch(java, config)
            if self._wait_for_log_line(deadline):
                break
            # lost a race for the port after the probe said it was free: try again
        self._wait_until_usable(cluster_id, deadline)
        bootstrap = f"{HOST}:{self.port}"
        log.info(
            "local_kafka.started",
            bootstrap=bootstrap,
            version=self.version,
            data_dir=str(self.data_dir),
            cluster_id=cluster_id,
            pid=self.pid,
            seconds=round(timeout - (deadline - time.monotonic()), 2),
        )
        return bootstrap

    def _wait_until_free(self, deadline: float) -> None:
        """Wait (briefly) for the ports and the log directory a dying broker still holds.

        A killed broker lets go within milliseconds; whoever holds them longer than
        ``HELD_WAIT`` is somebody else, and waiting the whole start timeout for
        them would only delay the error.
        """
        lock = self.log_dir / ".lock"
        began = time.monotonic()
        give_up = min(deadline, began + HELD_WAIT)
        while True:
            held = [f"port {HOST}:{port} is in use" for port in self._ports if not _port_is_free(port)]
            if not _dir_is_unlocked(lock):
                held.append(f"{self.log_dir} is locked by another broker")
            if not held:
                return
            if time.monotonic() > give_up:
                raise LocalKafkaError(
                    f"cannot start the broker: {'; '.join(held)} "
                    f"(still, after {time.monotonic() - began:.0f} s)"
                )
            time.sleep(0.1)  # polling the kernel for the port / lock, bounded by give_up

    def _launch(self, java: list[str], config: Path) -> None:
        # a restart's readiness is read from a fresh log; the last run's is kept beside it
        for name in ("broker.log", "broker.stderr"):
            if (path := self.data_dir / name).exists():
                path.replace(path.with_name(name + ".previous"))
        with open(self.data_dir / "broker.stderr", "wb") as stderr:
            self.process = subprocess.Popen(
                [*java, "kafka.Kafka", str(config)],
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,
                preexec_fn=_die_with_parent(),
            )

    def _wait_for_log_line(self, deadline: float) -> bool:
        """True once the broker logged that it started; False if it lost the port."""
        assert self.process is not None
        while READY_LINE not in (text := self._log_text()):
            if self.process.poll() is not None:
                self.process = None
                if BIND_FAILED in text and time.monotonic() < deadline:
                    log.info("local_kafka.port_taken_retrying", port=self.port)
                    return False
                raise LocalKafkaError(f"broker exited: {text[-3000:]}")
            if time.monotonic() > deadline:
                self.kill()
                raise LocalKafkaError(f"broker not ready in time; see {self.log_file}")
            time.sleep(0.05)  # polling the broker's own readiness line, not a guess
        return True

    def _wait_until_usable(self, cluster_id: str, deadline: float) -> None:
        # aiokafka needs an event loop; a thread of our own works inside a running one too
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            why = pool.submit(asyncio.run, self._probe_until(cluster_id, deadline)).result()
        if why is not None:
            self.kill()
            raise LocalKafkaError(f"broker started but is not usable: {why}; see {self.log_file}")

    async def _probe_until(self, cluster_id: str, deadline: float) -> str | None:
        """None once a metadata request shows a usable cluster, else the last reason."""
        from aiokafka.admin import AIOKafkaAdminClient

        why = "no answer"
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                return f"the broker exited: {self._log_text()[-3000:]}"
            admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000)
            try:
                await admin.start()
                cluster = await admin.describe_cluster()
                topics = await admin.describe_topics()
            except Exception as exc:  # noqa: BLE001 - any failure means "not yet"
                why = f"metadata request failed: {exc!r}"
            else:
                leaderless = [
                    f"{t['topic']}/{p['partition']}"
                    for t in topics
                    for p in t["partitions"]
                    if p["leader"] < 0
                ]
                if cluster["cluster_id"] != cluster_id:
                    return (
                        f"port {self.port} answers for cluster {cluster['cluster_id']}, "
                        f"not ours ({cluster_id})"
                    )
                if cluster["controller_id"] < 0:
                    why = "no active controller"
                elif leaderless:
                    why = f"partitions without a leader: {leaderless[:5]}"
                else:
                    return None
            finally:
                await admin.close()
            await asyncio.sleep(0.1)  # polling the broker, bounded by the deadline
        return why

    def _log_text(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def kill(self) -> None:
        """Crash the broker: SIGKILL to its process group, wait until it is gone.

        Nothing is cleaned up, which is the point: a later ``start()`` finds the
        data, ports and cluster id as a real crash would leave them.
        """
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:  # not reaped yet, so the group id is still ours
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        process.wait()
        log.info("local_kafka.killed", pid=process.pid)

    def restart(self, timeout: float = 60.0) -> str:
        """A crash and a start in place: same port, directory, cluster id and data."""
        self.kill()
        return self.start(timeout)

    def stop(self, keep_data: bool = False) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 20 s).

        A temporary directory of our own is removed unless ``keep_data``; after
        ``stop(keep_data=True)`` a ``start()`` carries on with the same data.  This
        also runs at exit, so a temporary directory never outlives the process; a
        ``data_dir`` that was given is never removed.
        """
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            log.info("local_kafka.stopped", pid=process.pid)
        if self._own_dir and not keep_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
