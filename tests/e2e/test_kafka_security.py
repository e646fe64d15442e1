"""keydesk against a secured Kafka: TLS with SASL (SCRAM-SHA-512, PLAIN) and mutual TLS.

The suite starts a broker of its own here with, beside the plaintext listener,
a SASL_SSL listener and an SSL listener that requires a client certificate, on
certificates a throwaway CA signed at test time (``tests/kafka_tls.py``).  A
real ``keydesk worker`` configured only through the ``KEYDESK_KAFKA_*``
variables folds what ``keydesk publish`` (configured the same way, as another
principal) sends through the secured listeners, and its SQL sink writes it;
clients without credentials, with a wrong password, or trusting another CA are
refused by the broker, each for its own reason.

The broker authorizes (deny by default) and each principal is granted exactly
the ACLs README.md's "Kafka security" table lists (:func:`worker_acls`,
:func:`sink_acls`, :func:`publisher_acls`), so these tests also show that list
to be enough.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
import ssl
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.conn import create_conn
from aiokafka.errors import KafkaConnectionError, SaslAuthenticationFailed
from aiokafka.protocol.admin import CreateAclsRequest
from aiokafka.protocol.metadata import MetadataRequest

from handlers.kafka_topics import ensure_topics
from handlers.local.kafka_broker import LocalKafka, LocalKafkaError, SecuredListeners
from streams.kafka_security import client_options
from streams.settings import Settings
from tests.builders import event, fault
from tests.conftest import service_missing
from tests.e2e.conftest import PARTITIONS, Desk, Worker, new_desk
from tests.kafka_tls import CLIENT_NAME, OpensslMissing, TlsFiles, make_tls_files

pytestmark = pytest.mark.broker

WORKER_USER, SINK_USER, PUBLISHER_USER = (
    "keydesk-worker",
    "keydesk-sink",
    "keydesk-cli",
)  # SCRAM, SCRAM, PLAIN
CERTIFIED_PUBLISHER = f"User:CN={CLIENT_NAME}"  # the mutual-TLS client's principal

# Kafka's codes in a CreateAcls request (org.apache.kafka.common.acl / resource)
TOPIC, GROUP = 2, 3
LITERAL, PREFIXED = 3, 4
OPERATIONS = {"Read": 3, "Write": 4, "Create": 5, "Describe": 8}
ALLOW = 3
TOPIC_AUTHORIZATION_FAILED = 29


Acl = tuple[str, int, str, int, str]  # principal, resource type, name, pattern type, operation


def worker_acls(desk: Desk) -> list[Acl]:
    """What README.md's "Kafka security" table says a worker needs (its sink included), and no more."""
    app = f"{desk.prefix}-app"  # KEYDESK_APP_ID of tests/e2e/conftest.py's desks
    worker = f"User:{WORKER_USER}"
    acls = [
        (worker, TOPIC, name, PREFIXED, operation)
        for name in (f"{desk.prefix}.", f"{app}-")
        for operation in ("Create", "Describe", "Read", "Write")
    ]
    return acls + [(worker, GROUP, group, LITERAL, "Read") for group in (app, f"{app}-sql-sink")]


def sink_acls(desk: Desk) -> list[Acl]:
    """The table's row for `keydesk sink` on its own."""
    sink = f"User:{SINK_USER}"
    return [
        *(
            (sink, TOPIC, topic, LITERAL, op)
            for topic in (desk.events_topic, desk.sla_topic, f"{desk.prefix}.rules")
            for op in ("Describe", "Read")
        ),
        (sink, TOPIC, desk.dead_letter_topic, LITERAL, "Write"),
        (sink, GROUP, f"{desk.prefix}-app-sql-sink", LITERAL, "Read"),
    ]


def publisher_acls(desk: Desk, principal: str) -> list[Acl]:
    """The table's row for `keydesk publish`."""
    return [(principal, TOPIC, desk.events_topic, LITERAL, operation) for operation in ("Describe", "Write")]


class SecuredBroker:
    """The broker with its secured listeners, the files it was made from, and its users' passwords."""

    def __init__(self, tmp: Path) -> None:
        self.tls: TlsFiles = make_tls_files(tmp / "tls")
        self.passwords = {user: secrets.token_hex(12) for user in (WORKER_USER, SINK_USER, PUBLISHER_USER)}
        self.kafka = LocalKafka(
            tmp / "kafka",
            partitions=4,
            heap="512m",
            secured=SecuredListeners(
                cert_chain=self.tls.broker_cert,
                key=self.tls.broker_key,
                client_ca=self.tls.ca,
                scram_users={user: self.passwords[user] for user in (WORKER_USER, SINK_USER)},
                plain_users={PUBLISHER_USER: self.passwords[PUBLISHER_USER]},
            ),
        )

    def sasl_env(self, user: str, mechanism: str, **change: str) -> dict[str, str]:
        """The ``KEYDESK_*`` variables of a client of the SASL_SSL listener."""
        return {
            "KEYDESK_KAFKA": str(self.kafka.sasl_ssl_bootstrap),
            "KEYDESK_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
            "KEYDESK_KAFKA_CA_FILE": str(self.tls.ca),
            "KEYDESK_KAFKA_SASL_MECHANISM": mechanism,
            "KEYDESK_KAFKA_SASL_USERNAME": user,
            "KEYDESK_KAFKA_SASL_PASSWORD": self.passwords[user],
            **change,
        }

    async def grant(self, acls: list[Acl]) -> None:
        """Create the ACLs as the plaintext listener's super user."""
        host, _, port = str(self.kafka.bootstrap).rpartition(":")
        conn = await create_conn(host, int(port), request_timeout_ms=10_000)
        try:
            for principal, kind, name, pattern, operation in acls:
                request = CreateAclsRequest(kind, name, pattern, principal, "*", OPERATIONS[operation], ALLOW)
                response = await conn.send(request)
                assert [code for code, _ in response.creation_responses] == [0], response
        finally:
            conn.close()

    def mtls_env(self) -> dict[str, str]:
        """A client of the SSL listener, known by its certificate."""
        return {
            "KEYDESK_KAFKA": str(self.kafka.ssl_bootstrap),
            "KEYDESK_KAFKA_SECURITY_PROTOCOL": "SSL",
            "KEYDESK_KAFKA_CA_FILE": str(self.tls.ca),
            "KEYDESK_KAFKA_CERT_FILE": str(self.tls.client_cert),
            "KEYDESK_KAFKA_KEY_FILE": str(self.tls.client_key),
        }


@pytest.fixture(scope="module")
def secured(tmp_path_factory):
    try:
        broker = SecuredBroker(tmp_path_factory.mktemp("secured"))
        broker.kafka.start()
    except (OpensslMissing, LocalKafkaError) as exc:
        service_missing("secured Kafka broker", str(exc))
    try:
        yield broker
    finally:
        broker.kafka.stop()


@pytest.fixture(scope="module")
def desk(secured, tmp_path_factory):
    """One worker that reaches Kafka only through SASL_SSL as the SCRAM user, with its SQL sink."""
    d = desk_of(secured.sasl_env(WORKER_USER, "SCRAM-SHA-512"), tmp_path_factory.mktemp("desk"))
    publishers = [f"User:{PUBLISHER_USER}", CERTIFIED_PUBLISHER]
    asyncio.run(secured.grant(worker_acls(d) + [acl for p in publishers for acl in publisher_acls(d, p)]))
    d.start_worker()
    try:
        d.wait_until_partitions_split()
        yield d
    finally:
        d.stop()


def desk_of(env: dict[str, str], tmp: Path) -> Desk:
    """A desk on fresh topics whose workers connect as ``env`` says."""
    env = dict(env)
    return new_desk(env.pop("KEYDESK_KAFKA"), tmp, **env)


def keydesk(desk: Desk, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """The CLI with the desk's topics and only the given client's Kafka variables."""
    topics = {k: v for k, v in desk.env(1).items() if not k.startswith("KEYDESK_KAFKA")}
    return subprocess.run(
        [sys.executable, "-m", "handlers.cli", *args],
        env=topics | env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def publish(desk: Desk, env: dict[str, str], tmp: Path, *events) -> subprocess.CompletedProcess:
    path = tmp / f"events-{uuid.uuid4().hex[:6]}.jsonl"
    path.write_bytes(b"".join(e.to_bytes() + b"\n" for e in events))
    return keydesk(desk, env, "publish", str(path))


def view_over_http(worker: Worker, customer_id: str, event_id: str) -> dict:
    """The customer's view once the worker folded ``event_id``: the test's one HTTP read."""
    status, view = worker.view(customer_id, wait_for=event_id)
    assert status == 200, view
    return view


class TestAWorkerBehindSaslSsl:
    def test_it_folds_what_a_publisher_sends_as_another_sasl_user(self, secured, desk, tmp_path):
        """Worker as a SCRAM-SHA-512 user, `keydesk publish` as a PLAIN one: the fault is in the view."""
        customer = f"C-SEC-{uuid.uuid4().hex[:6]}"
        events = [
            event("customer.registered", customer, customer=customer),
            fault("F-1", "reported", customer=customer),
        ]
        done = publish(desk, secured.sasl_env(PUBLISHER_USER, "PLAIN"), tmp_path, *events)
        assert done.returncode == 0, done.stderr
        view = view_over_http(desk.workers[0], customer, events[-1].event_id)
        assert "F-1" in view["open"]["fault"]

    def test_it_folds_what_a_publisher_with_a_client_certificate_sends(self, secured, desk, tmp_path):
        """Mutual TLS: the publisher is known by its certificate on the SSL listener."""
        customer = f"C-MTLS-{uuid.uuid4().hex[:6]}"
        events = [
            event("customer.registered", customer, customer=customer),
            fault("F-2", "reported", customer=customer),
        ]
        done = publish(desk, secured.mtls_env(), tmp_path, *events)
        assert done.returncode == 0, done.stderr
        assert "F-2" in view_over_http(desk.workers[0], customer, events[-1].event_id)["open"]["fault"]

    def test_its_sql_sink_writes_through_sasl_ssl_and_the_lag_is_read_so(self, secured, desk, tmp_path):
        """The worker's sink consumes as the SCRAM user; `keydesk db status` reads the lag the same way."""
        customer = f"C-SINK-{uuid.uuid4().hex[:6]}"
        events = [
            event("customer.registered", customer, customer=customer),
            fault("F-3", "reported", customer=customer),
        ]
        assert publish(desk, secured.sasl_env(PUBLISHER_USER, "PLAIN"), tmp_path, *events).returncode == 0
        worker_env = secured.sasl_env(WORKER_USER, "SCRAM-SHA-512")
        deadline = time.monotonic() + 60
        while True:
            done = keydesk(desk, worker_env, "db", "status")
            status = orjson.loads(done.stdout) if done.stdout.startswith("{") else {}
            lag = status.get("sink_lag", {}).get("total")
            if lag == 0 and status["rows"]["items"] >= 1:
                break
            assert time.monotonic() < deadline, (done.stdout, done.stderr)
            time.sleep(0.2)  # polling the database the worker's sink writes
        assert len(status["sink_lag"]["partitions"]) == 8  # events and SLA topics, four partitions each

    async def test_the_broker_enforces_those_acls(self, secured, desk):
        """The grants are not vacuous: the publisher may describe the events topic, not the SLA topic."""
        env = secured.sasl_env(PUBLISHER_USER, "PLAIN")
        admin = AIOKafkaAdminClient(
            bootstrap_servers=env["KEYDESK_KAFKA"], **client_options(Settings.from_env(env))
        )
        await admin.start()
        try:
            topics = await admin.describe_topics([desk.events_topic, desk.sla_topic])
        finally:
            await admin.close()
        errors = {t["topic"]: t["error_code"] for t in topics}
        assert errors == {desk.events_topic: 0, desk.sla_topic: TOPIC_AUTHORIZATION_FAILED}


class TestASinkOfItsOwn:
    def test_keydesk_sink_as_its_own_principal_writes_and_dead_letters(self, secured, tmp_path):
        """`keydesk sink` with only the sink's ACLs: it writes the events, parks a reused id's event."""
        env = secured.sasl_env(SINK_USER, "SCRAM-SHA-512")
        sink_desk = desk_of(env | {"KEYDESK_SINK": "off"}, tmp_path)
        asyncio.run(ensure_topics(Settings(kafka=secured.kafka.bootstrap, topic_prefix=sink_desk.prefix)))
        publisher = secured.sasl_env(PUBLISHER_USER, "PLAIN")
        asyncio.run(secured.grant(sink_acls(sink_desk) + publisher_acls(sink_desk, f"User:{PUBLISHER_USER}")))
        customer = f"C-ALONE-{uuid.uuid4().hex[:6]}"
        reported = fault("F-4", "reported", customer=customer)
        reused = fault("F-5", "reported", customer=customer, event_id=reported.event_id)  # another item's id
        events = [event("customer.registered", customer, customer=customer), reported, reused]
        assert publish(sink_desk, publisher, tmp_path, *events).returncode == 0
        log = open(tmp_path / "sink.log", "wb")
        sink = subprocess.Popen(
            [sys.executable, "-m", "handlers.cli", "sink"],
            env=sink_desk.env(1),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                done = keydesk(sink_desk, env, "db", "status")
                status = orjson.loads(done.stdout) if done.stdout.startswith("{") else {}
                if status.get("sink_lag", {}).get("total") == 0 and status["rows"]["event_log"] == 2:
                    break
                assert sink.poll() is None, (tmp_path / "sink.log").read_text()[-3000:]
                assert time.monotonic() < deadline, (done.stdout, done.stderr)
                time.sleep(0.2)  # polling the database the sink process writes
        finally:
            sink.send_signal(signal.SIGTERM)
            assert sink.wait(30) == 0, (tmp_path / "sink.log").read_text()[-3000:]
        parked = asyncio.run(records_of(secured.kafka.bootstrap, sink_desk.dead_letter_topic))
        assert [(value, headers.get("keydesk.dlq.stage")) for value, headers in parked] == [
            (reused.to_bytes(), b"sql-sink")
        ]


async def records_of(bootstrap: str | None, topic: str) -> list[tuple[bytes, dict[str, bytes]]]:
    """Every record of ``topic``, read on the plaintext listener (its user is a super user)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records = []
        for tp in partitions:
            while await consumer.position(tp) < ends[tp]:
                for record in (await consumer.getmany(tp, timeout_ms=5000)).get(tp, []):
                    records.append((record.value, dict(record.headers)))
        return records
    finally:
        await consumer.stop()


async def first_request(env: dict[str, str], host_port: str) -> None:
    """Connect as a client configured by ``env`` would, then ask for the cluster's metadata."""
    host, _, port = host_port.rpartition(":")
    options = client_options(Settings.from_env(env))
    conn = await create_conn(host, int(port), request_timeout_ms=10_000, **options)
    try:
        await conn.send(MetadataRequest([]))
    finally:
        conn.close()


class TestRefusedClients:
    async def test_a_client_with_the_right_settings_is_served(self, secured):
        """The control for the refusals below: same listener, same code, right password."""
        env = secured.sasl_env(WORKER_USER, "SCRAM-SHA-512")
        await first_request(env, env["KEYDESK_KAFKA"])

    async def test_a_client_without_credentials_gets_nothing(self, secured):
        """Plaintext on the SASL_SSL port, or TLS without SASL: the broker closes the connection."""
        listener = str(secured.kafka.sasl_ssl_bootstrap)
        with pytest.raises(KafkaConnectionError, match="closed"):
            await first_request({}, listener)
        tls_only = {"KEYDESK_KAFKA_SECURITY_PROTOCOL": "SSL", "KEYDESK_KAFKA_CA_FILE": str(secured.tls.ca)}
        with pytest.raises(KafkaConnectionError, match="closed"):
            await first_request(tls_only, listener)  # ApiVersions is answered, metadata is not

    @pytest.mark.parametrize("mechanism, user", [("SCRAM-SHA-512", WORKER_USER), ("PLAIN", PUBLISHER_USER)])
    async def test_a_wrong_password_fails_authentication(self, secured, mechanism, user):
        env = secured.sasl_env(user, mechanism, KEYDESK_KAFKA_SASL_PASSWORD="not-the-password")
        with pytest.raises(SaslAuthenticationFailed, match=f"{mechanism}|Invalid username or password"):
            await first_request(env, env["KEYDESK_KAFKA"])

    async def test_a_broker_certificate_from_another_ca_is_not_trusted(self, secured):
        env = secured.sasl_env(WORKER_USER, "SCRAM-SHA-512", KEYDESK_KAFKA_CA_FILE=str(secured.tls.other_ca))
        with pytest.raises(ssl.SSLCertVerificationError, match="certificate verify failed"):
            await first_request(env, env["KEYDESK_KAFKA"])

    async def test_the_mutual_tls_listener_refuses_a_client_without_a_certificate(self, secured):
        env = {k: v for k, v in secured.mtls_env().items() if "CERT" not in k and "KEY_FILE" not in k}
        with pytest.raises(KafkaConnectionError, match="closed"):
            await first_request(env, env["KEYDESK_KAFKA"])

    def test_a_worker_with_a_wrong_password_stops_at_start_saying_why(self, secured, tmp_path):
        """`keydesk worker` exits 2 before joining, and its log names the authentication failure."""
        env = secured.sasl_env(WORKER_USER, "SCRAM-SHA-512", KEYDESK_KAFKA_SASL_PASSWORD="not-the-password")
        done = keydesk(desk_of(env, tmp_path), env, "worker")
        assert done.returncode == 2
        assert "cannot reach Kafka" in done.stderr
        assert "SaslAuthenticationFailed" in done.stdout + done.stderr

    def test_keydesk_publish_without_credentials_is_refused(self, secured, desk, tmp_path):
        done = publish(
            desk, {"KEYDESK_KAFKA": str(secured.kafka.sasl_ssl_bootstrap)}, tmp_path, fault("F-X", "reported")
        )
        assert done.returncode == 2 and "cannot reach Kafka" in done.stderr
