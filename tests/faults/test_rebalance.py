"""Rebalances under steady load: workers join one by one, one leaves; every event lands once."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.broker, pytest.mark.postgres]


def test_a_second_and_a_third_worker_joining_then_one_leaving_lose_and_double_nothing(pg_scenario):
    """One worker under load, a second joins, a third joins, the first leaves: all of it once."""
    s = pg_scenario
    (first,) = s.start_workers(1)
    s.start_load(seconds=50)
    s.after_random_records(100, 400, "a second worker joins", s.desk.start_worker)
    s.wait_until_assigned()
    s.after_random_records(50, 300, "a third worker joins", s.desk.start_worker)
    s.wait_until_assigned()
    s.after_random_records(50, 300, f"the first worker {first.url} leaves (SIGTERM)", first.stop)
    s.wait_until_assigned()
    stock = s.finish()
    assert stock.nothing_lost, s.verdict(stock)
