"""One event per id, in the view and in the reporting database alike (issue 10, point 7).

An event id names one event of one customer: the first one its log holds.  The
view used to de-duplicate ids per item (an id reused for another fault opened
a second item) while the SQL sink de-duplicated them globally (``event_log``'s
key: the second fault silently never existed), so the view and the reports
disagreed.  Now both refuse the reuse with the same reason.
"""

from __future__ import annotations

import copy

import pytest
from sqlalchemy import select

from schemas.reporting_db import open_engine, upgrade
from schemas.reporting_tables import EventRecord, Item
from sla_rules import load_rules
from streams.customer_view import (
    PROFILE_EVENT_IDS_LIMIT,
    RECENT_CLOSED_LIMIT,
    find_item,
    fold,
    new_view,
    view_contains_event,
)
from streams.event_ids import EVENT_OWNERS
from streams.sink_writer import SinkWriter
from tests.builders import event, fault, order, ticket
from tests.streams.test_sql_sink import running
from tests.streams.test_sql_sink_poison import new_desk, new_sink, read_topic

RULES = load_rules()
TOPIC = "keydesk.events"
REUSED = "6b1d1d6e-0c2f-4f57-9a36-3c1b5a0d0001"


def folded(*events, customer="C-1"):
    view = new_view(customer)
    outcomes = [fold(view, e, offset) for offset, e in enumerate(events)]
    return view, outcomes


@pytest.fixture
def engine(reporting_db_url):
    engine = open_engine(reporting_db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def records(events, first_offset=0):
    return [(first_offset + n, e.to_bytes()) for n, e in enumerate(events)]


def items_in_db(engine) -> dict[tuple[str, str, str], str | None]:
    with engine.connect() as conn:
        return {
            (r.customer_id, r.kind, r.item_id): r.state
            for r in conn.execute(select(Item.customer_id, Item.kind, Item.item_id, Item.state))
        }


def items_in_views(*views) -> dict[tuple[str, str, str], str | None]:
    found = {}
    for view in views:
        for kind, by_id in view["open"].items():
            for item_id, item in by_id.items():
                found[(view["customer_id"], kind, item_id)] = item["state"]
        for item in view["recent_closed"]:
            found[(view["customer_id"], item["kind"], item["id"])] = item["state"]
    return found


def stored_entities(engine) -> dict[str, tuple[str, str, str]]:
    with engine.connect() as conn:
        return {
            r.event_id: (r.customer_id, r.entity_kind, r.entity_id)
            for r in conn.execute(
                select(
                    EventRecord.event_id,
                    EventRecord.customer_id,
                    EventRecord.entity_kind,
                    EventRecord.entity_id,
                )
            )
        }


class TestTheView:
    def test_an_id_reused_for_another_fault_is_refused_with_the_reason(self):
        """The second fault is not opened: its report's id names F-1's report."""
        view, outcomes = folded(
            fault("F-1", "reported", "09:00", event_id=REUSED),
            fault("F-2", "reported", "09:05", event_id=REUSED),
        )
        assert (outcomes[1].status, outcomes[1].reason) == ("rejected", "event id already used for fault F-1")
        assert find_item(view, "fault", "F-2") is None
        assert [r["event_id"] for r in find_item(view, "fault", "F-1")["history"]] == [REUSED]
        assert (
            view["counters"]["ids_reused"],
            view["counters"]["events_applied"],
            view["counters"]["transitions_rejected"],
        ) == (1, 1, 0)

    def test_an_id_reused_for_an_open_item_leaves_it_as_it_was(self):
        """F-2 exists; the event that reuses F-1's id is folded into nothing of it."""
        view, outcomes = folded(
            fault("F-1", "reported", "09:00", event_id=REUSED),
            fault("F-2", "reported", "09:01"),
            fault("F-2", "acknowledged", "09:02", event_id=REUSED),
        )
        assert outcomes[2].status == "rejected" and outcomes[2].state == "reported"
        assert [r["event_type"] for r in find_item(view, "fault", "F-2")["history"]] == ["fault.reported"]

    @pytest.mark.parametrize(
        ("first", "second", "named"),
        [
            (
                fault("F-1", "reported", "09:00", event_id=REUSED),
                ticket("F-1", "opened", "09:05", event_id=REUSED),
                "fault F-1",
            ),
            (
                event("customer.registered", "C-1", "08:00", event_id=REUSED),
                order("O-1", "received", "09:05", event_id=REUSED),
                "the profile",
            ),
            (
                ticket("T-1", "opened", "09:00", event_id=REUSED),
                event("customer.updated", "C-1", "09:05", region="深圳", event_id=REUSED),
                "ticket T-1",
            ),
        ],
        ids=["fault id for a ticket", "profile id for an order", "ticket id for the profile"],
    )
    def test_the_rule_holds_across_kinds_and_the_profile(self, first, second, named):
        """Whatever the id named first, the other use is refused naming it."""
        view, outcomes = folded(first, second)
        assert (outcomes[1].status, outcomes[1].reason) == ("rejected", f"event id already used for {named}")
        assert view["counters"]["ids_reused"] == 1

    def test_an_sla_events_id_is_not_taken_by_a_fault_event(self):
        """An id on an item's SLA log names that SLA event; a fault event reusing it is refused."""
        step = event(
            "sla.breached",
            "F-1",
            "09:05",
            source="system",
            item_kind="fault",
            metric="response",
            cycle=1,
            policy="diamond v1",
            due_at="2026-11-23T01:05:00Z",
            deadline="2026-11-23T01:05:00Z",
        )
        view, outcomes = folded(
            fault("F-1", "reported", "09:00"),
            step,
            fault("F-1", "acknowledged", "09:06", event_id=step.event_id),
        )
        assert (outcomes[2].status, outcomes[2].reason) == (
            "rejected",
            "event id already used for the SLA log of fault F-1",
        )

    def test_the_same_event_again_is_still_a_duplicate(self):
        """Redelivery of the same event for the same item is no reuse."""
        report = fault("F-1", "reported", "09:00", event_id=REUSED)
        view, outcomes = folded(report, report)
        assert outcomes[1].status == "duplicate"
        assert (view["counters"]["duplicates_ignored"], view["counters"]["ids_reused"]) == (1, 0)

    def test_an_id_of_an_archived_item_is_past_the_views_memory(self):
        """Evicted past the recent-closed limit, an item's ids are forgotten: folded as new."""
        events = [order("O-0", "received", "08:00", event_id=REUSED), order("O-0", "cancelled", "08:01")]
        for n in range(1, RECENT_CLOSED_LIMIT + 1):
            events += [
                order(f"O-{n}", "received", f"09:{n:02d}"),
                order(f"O-{n}", "cancelled", f"10:{n:02d}"),
            ]
        view, _ = folded(*events)
        assert "order:O-0" in view["archived_ids"]
        assert fold(view, fault("F-1", "reported", "11:00", event_id=REUSED)).status == "applied"

    def test_a_profile_id_is_remembered_for_the_last_profile_events_only(self):
        """The header keeps the last PROFILE_EVENT_IDS_LIMIT profile ids; older ones are forgotten."""
        first = event("customer.updated", "C-1", "07:00", region="广州", event_id=REUSED)
        later = [
            event("customer.updated", "C-1", f"08:{n % 60:02d}", region=f"R-{n}")
            for n in range(PROFILE_EVENT_IDS_LIMIT)
        ]
        view, _ = folded(first, *later)
        assert fold(view, fault("F-1", "reported", "09:00", event_id=REUSED)).status == "applied"

    def test_a_view_without_its_id_index_refuses_exactly_what_the_working_one_does(self):
        """Assembled from the store or copied without it, the index is rebuilt from what the view holds."""
        events = [event("customer.registered", "C-1", "08:00")]
        for n in range(RECENT_CLOSED_LIMIT + 5):
            events += [
                fault(f"F-{n}", "reported", f"09:{n:02d}"),
                fault(f"F-{n}", "closed", f"10:{n:02d}", closed_unresolved="duplicate"),
            ]
        events += [ticket("T-1", "opened", "11:00")]
        working, _ = folded(*events)
        rebuilt = copy.deepcopy(working)
        del rebuilt[EVENT_OWNERS]
        probes = [ticket("T-9", "opened", "12:00", event_id=e.event_id) for e in events]
        by_working = [fold(copy.deepcopy(working), p) for p in probes]
        by_rebuilt = [fold(copy.deepcopy(rebuilt), p) for p in probes]
        assert [(o.status, o.reason) for o in by_rebuilt] == [(o.status, o.reason) for o in by_working]
        # refused exactly for the ids the view still holds (the archived faults' are forgotten)
        assert [o.status for o in by_working] == [
            "rejected" if view_contains_event(working, e.event_id) else "applied" for e in events
        ]
        assert {o.status for o in by_working} == {"applied", "rejected"}


class TestTheSink:
    def test_a_reused_id_is_refused_with_the_views_reason_and_parked(self, engine):
        """Not stored, not projected, listed for the dead-letter topic with the reason the view gives."""
        stream = [
            fault("F-1", "reported", "09:00", event_id=REUSED),
            fault("F-2", "reported", "09:05", event_id=REUSED),
            fault("F-3", "reported", "09:10"),
        ]
        view, outcomes = folded(*stream)
        result = SinkWriter(engine, RULES, "sink").write(TOPIC, 0, records(stream))
        assert (result.stored, result.duplicates, result.reused) == (2, 0, 1)
        [parked] = result.unwritable
        assert (parked.offset, parked.reason) == (1, outcomes[1].reason)
        assert result.saved_offset == 1  # until the caller has parked it
        assert items_in_db(engine) == items_in_views(view)
        assert stored_entities(engine)[REUSED] == ("C-1", "fault", "F-1")

    def test_a_reuse_in_a_later_batch_is_refused_the_same_way(self, engine):
        """Against the id already in event_log, not only within one batch."""
        writer = SinkWriter(engine, RULES, "sink")
        writer.write(TOPIC, 0, records([fault("F-1", "reported", "09:00", event_id=REUSED)]))
        result = writer.write(
            TOPIC, 0, records([ticket("T-1", "opened", "09:05", event_id=REUSED)], first_offset=1)
        )
        assert (result.stored, result.duplicates, result.reused) == (0, 0, 1)
        assert [u.reason for u in result.unwritable] == ["event id already used for fault F-1"]
        assert ("C-1", "ticket", "T-1") not in items_in_db(engine)

    def test_a_redelivered_event_is_a_duplicate_not_a_reuse(self, engine):
        """Same id, same item: counted once, nothing parked."""
        writer = SinkWriter(engine, RULES, "sink")
        report = fault("F-1", "reported", "09:00", event_id=REUSED)
        writer.write(TOPIC, 0, records([report]))
        again = writer.write(TOPIC, 0, records([report, report], first_offset=1))
        assert (again.stored, again.duplicates, again.reused, again.unwritable) == (0, 2, 0, [])

    def test_an_id_of_another_customer_is_refused_naming_that_customer(self, engine):
        """Only the sink can see it: C-2's view folds the event, the dead letter says the reports lack it."""
        first = fault("F-1", "reported", "09:00", event_id=REUSED, customer="C-1")
        other = fault("F-7", "reported", "09:05", event_id=REUSED, customer="C-2")
        writer = SinkWriter(engine, RULES, "sink")
        writer.write(TOPIC, 0, records([first]))
        result = writer.write(TOPIC, 1, records([other]))
        assert [u.reason for u in result.unwritable] == [
            "event id already used for fault F-1 of customer C-1"
        ]
        view, outcomes = folded(other, customer="C-2")
        assert outcomes[0].status == "applied"  # the documented difference, parked by the sink


class TestViewAndSinkAgree:
    def test_on_every_reuse_the_view_and_the_database_hold_the_same_items(self, engine):
        """A customer's stream with reuses of every kind: same items, same states, same refusals."""
        registered = event("customer.registered", "C-1", "08:00")
        stream = [
            registered,
            fault("F-1", "reported", "09:00", event_id=REUSED),
            fault("F-1", "acknowledged", "09:02"),
            fault("F-2", "reported", "09:05", event_id=REUSED),  # refused
            ticket("T-1", "opened", "09:06"),
            ticket("T-1", "assigned", "09:07", event_id=registered.event_id),  # refused
            fault("F-1", "acknowledged", "09:02"),  # duplicate
            order("O-1", "received", "09:10"),
            event("customer.updated", "C-1", "09:11", region="深圳", event_id=REUSED),
        ]  # refused
        view, outcomes = folded(*stream)
        writer = SinkWriter(engine, RULES, "sink")
        half = len(stream) // 2
        results = [
            writer.write(TOPIC, 0, records(stream[:half])),
            writer.write(TOPIC, 0, records(stream[half:], first_offset=half)),
        ]
        refused_by_view = {n: o.reason for n, o in enumerate(outcomes) if o.id_reused}
        refused_by_sink = {u.offset: u.reason for r in results for u in r.unwritable}
        assert refused_by_sink == refused_by_view and len(refused_by_view) == 3
        assert items_in_db(engine) == items_in_views(view)
        assert sum(r.duplicates for r in results) == view["counters"]["duplicates_ignored"] == 1


@pytest.mark.broker
async def test_the_sink_parks_a_reused_id_on_the_dead_letter_topic_with_the_reason(kafka_bootstrap, engine):
    """Through Kafka: the reuse ends on the dead-letter topic, stage sql-sink, the view's reason."""
    stream = [
        fault("F-1", "reported", "09:00", event_id=REUSED),
        fault("F-2", "reported", "09:05", event_id=REUSED),
        fault("F-3", "reported", "09:10"),
    ]
    desk = await new_desk(kafka_bootstrap)
    await desk.publish(stream)
    sink = new_sink(desk, engine)
    async with running(sink):
        await sink.wait_until_stored(desk.ends, timeout=60)
    [parked] = await read_topic(desk, desk.settings.dead_letter_topic)
    headers = dict(parked.headers)
    assert parked.value == stream[1].to_bytes()
    assert headers["keydesk.dlq.reason"] == b"event id already used for fault F-1"
    assert headers["keydesk.dlq.stage"] == b"sql-sink"
    assert await desk.committed(sink.writer.group_id) == desk.ends
    view, _ = folded(*stream)
    assert items_in_db(engine) == items_in_views(view)
