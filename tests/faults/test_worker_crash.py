"""kill -9 of a worker under steady load: its partitions move on, it comes back, nothing is lost."""

from __future__ import annotations

import orjson
import pytest

pytestmark = [pytest.mark.broker, pytest.mark.postgres]


def test_a_worker_killed_at_a_random_instant_and_started_again_loses_and_doubles_nothing(
        pg_scenario):
    """One of two workers is killed -9 mid-load and started again: every event, step, alert once."""
    s = pg_scenario
    victim, _ = s.start_workers(2)
    s.start_load(seconds=30)
    s.after_random_records(150, 700, f"worker {victim.url} killed -9", lambda: s.kill(victim))
    s.after_random_records(100, 400, "a new worker started", s.desk.start_worker)
    s.wait_until_assigned()
    stock = s.finish()
    # The one window no design closes without the receiver's help: the killed
    # worker's last alert, accepted by the receiver but killed before its outcome
    # reached the broker, is sent again by the new owner with the same
    # Idempotency-Key. Only that alert may arrive twice.
    in_flight = last_alert_delivered(victim.log_path)
    assert stock.nothing_lost_allowing(in_flight), \
        f"{s.verdict(stock)}\n  allowed to repeat (in flight at the kill): {sorted(in_flight)}"


def last_alert_delivered(log_path) -> set[str]:
    """The alert id of the last webhook delivery a worker logged, if any."""
    last = None
    for line in log_path.read_bytes().splitlines():
        if b'"alert_delivered"' in line and b'"webhook"' in line:
            last = orjson.loads(line)["alert_id"]
    return {last} if last else set()
