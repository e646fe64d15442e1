"""Suite-wide fixtures: one real Kafka broker and one throwaway PostgreSQL per session.

Both are started by the suite itself.  Under CI=true a service that cannot be
started fails the tests that need it; elsewhere they are skipped with the reason.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# In CI, property tests explore the same examples every run: a red build can be
# reproduced, and a green one is not luck. Locally they explore new ones.
settings.register_profile("ci", derandomize=True, deadline=None, database=None)
if IN_CI:
    settings.load_profile("ci")


def service_missing(what: str, why: str) -> None:
    message = f"{what} unavailable: {why}"
    if IN_CI:
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_bootstrap():
    """A real Apache Kafka broker for the session (or KEYDESK_TEST_KAFKA if set)."""
    if os.environ.get("KEYDESK_TEST_KAFKA"):
        yield os.environ["KEYDESK_TEST_KAFKA"]
        return
    from handlers.local.kafka_broker import LocalKafka, LocalKafkaError

    broker = LocalKafka(partitions=4)
    try:
        bootstrap = broker.start()
    except LocalKafkaError as exc:
        service_missing("Kafka broker", str(exc))
    try:
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres_url():
    """A throwaway PostgreSQL server from the local binaries; yields its SQLAlchemy URL."""
    from handlers.local.postgres_server import LocalPostgres, LocalPostgresError

    server = LocalPostgres(fsync=False)
    try:
        url = server.start()
    except LocalPostgresError as exc:
        service_missing("PostgreSQL", str(exc))
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture
def fresh_postgres(postgres_url):
    """An empty database of its own on the throwaway server, dropped afterwards."""
    from handlers.local.postgres_server import create_database, drop_database

    url = create_database(postgres_url)
    try:
        yield url
    finally:
        drop_database(postgres_url, url)


@pytest.fixture(params=["sqlite", "postgresql"])
def reporting_db_url(request, tmp_path):
    """The reporting database, once as the default SQLite file and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'keydesk.sqlite'}"
    return request.getfixturevalue("fresh_postgres")
