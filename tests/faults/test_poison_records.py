"""Poison records among steady traffic: each one is dead-lettered, every valid neighbour is folded.

A poison record is anything on the events topic that is not a valid event of it:
bytes that are no JSON, a field outside the contract, an instant the decoder
cannot turn into UTC, an event type of the wrong JSON type, an SLA step that only
the SLA topic may carry, an event id in a spelling other than the canonical one.
Each must end on the dead-letter topic exactly once, original bytes untouched,
with a reason; the worker, its sink and its health report must carry on.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson
import pytest

from schemas.envelope import new_event
from streams.event_processor import DLQ_HEADER
from tests.builders import event, fault
from tests.faults.books import dead_letter_problems, read_topic
from tests.faults.harness import publish_raw

pytestmark = pytest.mark.broker


def a_fault_report(customer: str, **changes) -> bytes:
    """A valid fault report of ``customer``, as wire bytes, with ``changes`` to its envelope."""
    report = new_event(
        "fault.reported",
        customer,
        f"F-P{uuid.uuid4().hex[:6]}",
        {"severity": "minor", "summary": "光猫离线", "service": "FTTH"},
        source="hotline",
        actor="hotline-7",
        now=datetime.now(UTC),
    )
    wire = report.to_wire() | changes
    return orjson.dumps(wire)


def a_field_outside_the_contract(customer: str) -> bytes:
    report = orjson.loads(a_fault_report(customer))
    report["payload"]["severity"] = "apocalyptic"
    return orjson.dumps(report)


def an_sla_step(event_type: str, **payload):
    def make(customer: str) -> bytes:
        step = new_event(
            event_type,
            customer,
            "F-00001",
            {"item_kind": "fault", "metric": "response", "cycle": 1, **payload},
            source="system",
            actor="keydesk-sla-timer",
            now=datetime.now(UTC),
        )
        return step.to_bytes()

    return make


def an_event_id(spelling):
    return lambda customer: a_fault_report(customer, event_id=spelling(str(uuid.uuid4())))


POISON = {
    "bytes that are not JSON": lambda customer: b"\xff\xfe not json at all",
    "a field outside the contract": a_field_outside_the_contract,
    "an instant before year 1 in UTC": lambda customer: a_fault_report(
        customer, occurred_at="0001-01-01T00:00:00+08:00"
    ),
    "an instant after year 9999 in UTC": lambda customer: a_fault_report(
        customer, occurred_at="9999-12-31T23:00:00-08:00"
    ),
    "an event type that is a list": lambda customer: a_fault_report(customer, event_type=[]),
    "an event type that is an object": lambda customer: a_fault_report(customer, event_type={}),
    "a breach on the events topic": an_sla_step(
        "sla.breached",
        due_at="2026-11-23T01:05:00+00:00",
        policy="diamond v1",
        deadline="2026-11-23T01:05:00+00:00",
    ),
    "an unsigned acknowledgement on the events topic": an_sla_step(
        "sla.escalation_acknowledged", note="已派单"
    ),
    "an event id in upper case": an_event_id(str.upper),
    "an event id without hyphens": an_event_id(lambda text: text.replace("-", "")),
}


def poison_ids(values) -> set[str]:
    """The event ids poison records claim, in every spelling a decoder might store."""
    ids = set()
    for value in values:
        try:
            claimed = orjson.loads(value).get("event_id")
            ids.update({claimed, str(uuid.UUID(claimed))})
        except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
            continue
    return ids


def test_one_poison_message_does_not_stop_the_faults_after_it(scenario):
    """A registration, a fault, a report dated before year 1, five faults: 6 folded, 1 parked."""
    s = scenario
    (worker,) = s.start_workers(1)
    customer = f"C-REPRO-{uuid.uuid4().hex[:4]}"
    registration = event("customer.registered", customer, customer=customer)
    first, *more = [fault(f"F-{n}", "reported", f"09:0{n}", customer=customer) for n in range(1, 7)]
    poison = POISON["an instant before year 1 in UTC"](customer)
    key = customer.encode()
    publish_raw(
        s.desk.bootstrap, s.desk.events_topic, [(key, registration.to_bytes()), (key, first.to_bytes())]
    )
    assert worker.view(customer, wait_for=first.event_id)[0] == 200
    publish_raw(s.desk.bootstrap, s.desk.events_topic, [(key, poison), *((key, f.to_bytes()) for f in more)])
    for _ in range(2):  # the view waits up to 10 s for the last fault each time
        status, view = worker.view(customer, wait_for=more[-1].event_id)
        if status == 200:
            break
    _, view = worker.view(customer)
    folded = sorted(view["open"]["fault"])
    parked = [r.value for r in read_topic(s.desk.bootstrap, s.desk.dead_letter_topic)]
    assert folded == [f"F-{n}" for n in range(1, 7)] and parked == [poison], (
        f"faults in the view: {folded} of F-1..F-6 (last answer {status}); dead-letter topic "
        f"holds {len(parked)} records, {parked.count(poison)} of them the poison\n"
        + "\n".join(s.worker_errors())
    )


@pytest.mark.parametrize("poison", POISON, ids=lambda name: name.replace(" ", "-"))
def test_a_poison_record_in_steady_traffic_is_dead_lettered_once_and_work_goes_on(scenario, poison):
    """Three poison records in steady traffic: each dead-lettered once, every neighbour folded."""
    s = scenario
    s.start_workers(1)
    at = sorted(s.rng.sample(range(20, 300), 3))
    s.start_load(seconds=8, alerting=False, poison={n: [POISON[poison]] for n in at})
    s.note(f"{poison!r} sent after events {at}")
    stock = s.finish(quiet=10)
    sent = stock.expected.poison
    problems = dead_letter_problems(stock.parked, sent, DLQ_HEADER + "reason")
    if logged := s.books.logged(poison_ids(sent)):
        problems.append(f"poison in event_log as if it were an event: {sorted(logged)}")
    if not stock.complete and any(h.get("status") == "ok" for h in stock.health.values()):
        problems.append("/api/health says ok although the desk stopped folding or storing")
    if len(sent) != 3:
        problems.append(f"the broker acknowledged {len(sent)} of the 3 poison records")
    poison_handled = not problems
    assert stock.nothing_lost and poison_handled, "\n".join([*problems, s.verdict(stock)])
