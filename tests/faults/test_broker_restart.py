"""kill -9 of the broker under steady load, restarted in place: nothing acknowledged is lost."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.broker


def test_a_broker_killed_and_restarted_in_place_loses_nothing_it_acknowledged(scenario, broker):
    """The broker dies mid-load and is back on its port and data seconds later: all of it once."""
    s = scenario
    (worker,) = s.start_workers(1)
    s.start_load(seconds=30)
    s.after_random_records(150, 700, "broker killed -9", broker.kill)
    down = s.rng.uniform(3.0, 8.0)
    time.sleep(down)  # how long the broker stays down is the fault itself, not a wait
    broker.start()
    s.note(f"broker started again in place after {down:.1f} s down")
    restarted = []
    if not worker.alive():  # as a supervisor would: the data must survive a worker exit too
        restarted.append(f"{worker.url} exited with {worker.process.returncode}")
        s.desk.start_worker()
        s.note(f"worker {restarted[-1]}; a new one started")
    s.wait_until_assigned()
    stock = s.finish()
    assert stock.nothing_lost, s.verdict(stock)
    assert not restarted and worker.alive(), (
        f"the worker did not ride out the broker's restart: {restarted}\n{s.verdict(stock)}"
    )
