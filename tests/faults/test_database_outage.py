"""The reporting database cut off under steady load, then back: every event in event_log once."""

from __future__ import annotations

import time

import pytest

from tests.e2e.conftest import http
from tests.faults.database_link import DatabaseLink
from tests.faults.harness import FaultScenario

pytestmark = [pytest.mark.broker, pytest.mark.postgres]


@pytest.fixture
def link(fresh_postgres):
    """The workers' only way to the database: a TCP link that can be cut."""
    link = DatabaseLink(fresh_postgres)
    link.up()
    yield link
    link.close()


@pytest.fixture
def outage_scenario(broker, tmp_path, seed, receiver, fresh_postgres, link):
    s = FaultScenario(
        broker.bootstrap, tmp_path, seed, receiver, db_url=fresh_postgres, worker_db_url=link.url
    )
    yield s
    s.close()


def sink_state(worker) -> str:
    return http("GET", f"{worker.url}/api/sink")[1].get("state")


def test_a_database_cut_mid_load_and_restored_ends_with_every_event_in_event_log_once(outage_scenario, link):
    """The sink waits out the outage, says so on /api/sink, then catches up: all of it once."""
    s = outage_scenario
    (worker,) = s.start_workers(1)
    # Running before the cut; and the worker has verified the suite's credential against the
    # database, so that it still takes it while the database is away (guard.STALE_IF_ERROR).
    assert sink_state(worker) in ("starting", "running")
    s.start_load(seconds=30)
    s.after_random_records(150, 700, "database cut", link.cut)
    cut_at, outage = time.monotonic(), s.rng.uniform(5.0, 10.0)
    deadline = cut_at + 30
    while (state := sink_state(worker)) != "retrying" and time.monotonic() < deadline:
        time.sleep(0.2)  # polling the sink's own report
    s.note(f"/api/sink says {state!r} {time.monotonic() - cut_at:.1f} s after the cut")
    time.sleep(max(0.0, cut_at + outage - time.monotonic()))  # the outage lasts this long
    link.up()
    s.note(f"database back after {outage:.1f} s")
    stock = s.finish()
    assert state == "retrying", f"/api/sink did not report the outage\n{s.verdict(stock)}"
    assert stock.nothing_lost, s.verdict(stock)
