"""A customer grown far past the old 1 MB view: 20,000 open faults, one fault with 10,000 events.

The desk must keep working around it: the worker stays up, the other customers'
events are still folded and stored, and the big customer's view still answers.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from schemas.envelope import Event, new_event
from tests.faults.harness import publish_raw
from tests.faults.traffic import PAUSED

pytestmark = pytest.mark.broker

OPEN_FAULTS = 20_000
EVENTS_OF_ONE_FAULT = 10_000


def a_big_customer(customer: str) -> list[Event]:
    """A registration, 20,000 minor faults, and one fault paused and resumed 5,000 times."""
    start = datetime.now(UTC) - timedelta(seconds=30)

    def emit(event_type: str, entity: str, payload: dict, at: datetime) -> Event:
        return new_event(
            event_type, customer, entity, payload, source="network_alarm", actor="nms", occurred_at=at, now=at
        )

    events = [
        emit(
            "customer.registered",
            customer,
            {"name": "全省政务外网", "tier": "diamond", "account_manager": {"id": "AM-BIG", "name": "陈刚"}},
            start,
        )
    ]
    minor = {"severity": "warning", "summary": "端口告警", "service": "政务外网"}
    events += [emit("fault.reported", f"F-{n:05d}", minor, start) for n in range(OPEN_FAULTS - 1)]
    events.append(
        emit(
            "fault.reported",
            "F-HOT",
            {"severity": "warning", "summary": "链路抖动", "service": "政务外网"},
            start,
        )
    )
    events += [
        emit(
            "fault.status_changed", "F-HOT", {"status": PAUSED[n % 2]}, start + timedelta(milliseconds=n + 1)
        )
        for n in range(EVENTS_OF_ONE_FAULT - 1)
    ]
    return events


def view_once_folded(worker, customer: str, last_event_id: str, timeout: float = 120.0):
    """The view once its last event is in (or at the deadline), and the seconds it took to serve."""
    deadline, status = time.monotonic() + timeout, None
    while status != 200 and time.monotonic() < deadline and worker.alive():
        status, _ = worker.view(customer, wait_for=last_event_id)  # waits up to 10 s
    if not worker.alive():
        return f"none (worker exited with {worker.process.returncode})", {}, 0.0
    asked = time.monotonic()
    status, view = worker.view(customer)
    return status, view, time.monotonic() - asked


def test_a_customer_with_20000_open_faults_and_a_10000_event_fault_keeps_the_desk_working(scenario):
    """The big customer lands mid-load: the worker stays up, others are folded, its view answers."""
    s = scenario
    (worker,) = s.start_workers(1)
    big = f"C-BIG-{uuid.uuid4().hex[:4]}"
    events = a_big_customer(big)
    s.start_load(seconds=30)
    s.after_random_records(
        50,
        400,
        f"{len(events)} events of {big} published",
        lambda: publish_raw(
            s.desk.bootstrap, s.desk.events_topic, [(big.encode(), e.to_bytes()) for e in events]
        ),
    )
    stock = s.finish(timeout=240)
    status, view, answered_in = view_once_folded(worker, big, events[-1].event_id)
    open_faults = (view.get("open") or {}).get("fault", {})
    hot = len(open_faults.get("F-HOT", {}).get("history", ()))
    logged = s.books.logged_of(big)
    figures = (
        f"{big}: view answered {status} in {answered_in:.1f} s with {len(open_faults)} "
        f"of {OPEN_FAULTS} open faults, F-HOT history {hot} of {EVENTS_OF_ONE_FAULT}; "
        f"event_log holds {logged} of its {len(events)} events\n{s.verdict(stock)}"
    )
    assert worker.alive(), f"the worker died\n{figures}"
    assert stock.nothing_lost, f"other customers' events, steps or alerts went missing\n{figures}"
    assert (status, len(open_faults), hot, logged) == (200, OPEN_FAULTS, EVENTS_OF_ONE_FAULT, len(events)), (
        figures
    )
