"""kill -9 of a worker under steady load: its partitions move on, it comes back, nothing is lost."""

from __future__ import annotations

from datetime import datetime

import orjson
import pytest

pytestmark = [pytest.mark.broker, pytest.mark.postgres]


def test_a_worker_killed_at_a_random_instant_and_started_again_loses_and_doubles_nothing(pg_scenario):
    """One of two workers is killed -9 mid-load and started again: every event, step, alert once."""
    s = pg_scenario
    victim, _ = s.start_workers(2)
    s.start_load(seconds=30)
    s.after_random_records(150, 700, f"worker {victim.url} killed -9", lambda: s.kill(victim))
    s.after_random_records(100, 400, "a new worker started", s.desk.start_worker)
    s.wait_until_assigned()
    stock = s.finish()
    # The one window no design closes without the receiver's help: an alert the
    # receiver accepted before the kill, whose outcome had not yet reached the
    # broker, is sent again by the new owner with the same Idempotency-Key (a
    # receiver that honours the key acts once). Only such alerts may arrive
    # twice: ones the killed worker was still delivering when it died, or had
    # delivered less than OUTCOME_WINDOW seconds before.
    in_flight = alerts_in_flight(victim.log_path, victim.killed_wall)
    assert stock.nothing_lost_allowing(in_flight), (
        f"{s.verdict(stock)}\n  allowed to repeat (in flight at the kill): {sorted(in_flight)}"
    )


#: How long an alert's recorded outcome may take to reach the broker: the
#: changelog producer's linger plus a round trip, well under this on this box.
OUTCOME_WINDOW = 3.0


def alerts_in_flight(log_path, killed_wall: float) -> set[str]:
    """The alerts a killed worker had begun and not finished, or finished just before."""
    begun, finished = set(), {}
    for line in log_path.read_bytes().splitlines():
        if b'"alert_id"' not in line:
            continue
        record = orjson.loads(line)
        begun.add(record["alert_id"])
        if record.get("event") == "alert_delivered" and record.get("channel") == "webhook":
            finished[record["alert_id"]] = datetime.fromisoformat(record["timestamp"]).timestamp()
    recent = {a for a, at in finished.items() if at >= killed_wall - OUTCOME_WINDOW}
    return (begun - finished.keys()) | recent
