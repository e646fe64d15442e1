"""Fixtures of the fault-injection suite: a broker per module, the alert robot, the scenarios.

Each module gets its own Apache Kafka broker, because some of its tests kill it;
the session's broker, which the rest of the suite shares, is never touched.
"""

from __future__ import annotations

import logging
import os
import random

import pytest

from tests.conftest import service_missing
from tests.e2e.conftest import PARTITIONS
from tests.faults.harness import FaultScenario
from tests.faults.webhook_receiver import WebhookReceiver


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """This module's own broker: ``kill()`` crashes it, ``start()`` brings it back in place."""
    from handlers.local.kafka_broker import LocalKafka, LocalKafkaError

    kafka = LocalKafka(tmp_path_factory.mktemp("broker"), partitions=PARTITIONS)
    try:
        kafka.start()
    except LocalKafkaError as exc:
        service_missing("Kafka broker", str(exc))
    try:
        yield kafka
    finally:
        kafka.stop()


@pytest.fixture(autouse=True)
def quiet_kafka_client():
    """The steady producer's reconnect errors while the broker is down are expected, not news."""
    logger = logging.getLogger("aiokafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture
def seed() -> int:
    """The seed of the run's random instants and traffic (KEYDESK_FAULT_SEED repeats one)."""
    return int(os.environ.get("KEYDESK_FAULT_SEED") or random.SystemRandom().randrange(10**6))


@pytest.fixture
def receiver():
    """The account managers' webhook robot, counting every alert it receives."""
    hook = WebhookReceiver().start()
    yield hook
    hook.stop()


@pytest.fixture
def scenario(broker, tmp_path, seed, receiver):
    """A fault scenario whose workers' sink writes to a SQLite file of its own."""
    s = FaultScenario(broker.bootstrap, tmp_path, seed, receiver)
    yield s
    s.close()


@pytest.fixture
def pg_scenario(broker, tmp_path, seed, receiver, fresh_postgres):
    """A fault scenario whose workers share one PostgreSQL database (several workers)."""
    s = FaultScenario(broker.bootstrap, tmp_path, seed, receiver, db_url=fresh_postgres)
    yield s
    s.close()
