"""The one order of an item's events: the view, the SLA engine and the SQL projection agree.

Source systems record to the minute and importers send ``recorded_at =
occurred_at``, so several changes of one item often share an instant. Their
order comes from the lifecycle, then ``recorded_at``, then the source's
position, never from an event id (issue 10).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.event_catalogue import PRIORITIES, WORK_STATUSES
from sla_rules import evaluate, load_rules
from sla_rules.item_history import order_events
from streams import lifecycles
from streams.customer_view import find_item, fold, new_view
from streams.event_order import causal_order
from streams.item_sla import clock_history, due_steps, item_facts, sla_summary
from streams.sql_projection import StoredEvent, item_rows
from tests.builders import at, event
from tests.report_oracle import fold_item

RULES = load_rules()
KINDS = ("fault", "ticket", "order")
OPENING = {"fault": "fault.reported", "ticket": "ticket.opened", "order": "order.received"}
START = at("09:00")
DIAMOND = event("customer.registered", "C-1", "08:00", tier="diamond")


def random_id() -> str:
    return str(uuid.uuid4())


def item_of(view, kind="fault", item_id="X-1"):
    return find_item(view, kind, item_id)


def folded(events, positions=None, view=None):
    """``events`` folded one by one (with their positions, when given)."""
    view = view or new_view("C-1")
    for n, e in enumerate(events):
        fold(view, e, None if positions is None else positions[n])
    return view


class TestTheLifecycleOrdersEventsAtOneInstant:
    # (kind, steps before the instant, the two events at the instant: (type, payload), which comes first)
    CASES = [
        ("fault", [], ("fault.reported", {}), ("fault.acknowledged", {})),
        ("ticket", [], ("ticket.opened", {}), ("ticket.assigned", {})),
        ("ticket", [], ("ticket.opened", {}), ("ticket.resolved", {})),
        ("order", [], ("order.received", {}), ("order.resource_confirmed", {})),
        ("fault", ["reported"], ("fault.acknowledged", {}), ("fault.dispatched", {})),
        ("fault", ["reported"], ("fault.acknowledged", {}), ("fault.closed", {})),
        (
            "ticket",
            ["opened"],
            ("ticket.acknowledged", {}),
            ("ticket.status_changed", {"status": "pending_customer"}),
        ),
        (
            "fault",
            ["reported"],
            ("fault.status_changed", {"status": "pending_customer"}),
            ("fault.restored", {}),
        ),
        ("ticket", ["opened"], ("ticket.priority_changed", {"priority": "P1"}), ("ticket.resolved", {})),
        ("fault", ["reported"], ("fault.restored", {}), ("fault.closed", {})),
        ("ticket", ["opened"], ("ticket.resolved", {}), ("ticket.closed", {})),
        ("fault", ["reported", "restored"], ("fault.customer_confirmed", {}), ("fault.closed", {})),
        ("fault", ["reported"], ("fault.restored", {}), ("fault.customer_confirmed", {})),
        (
            "ticket",
            ["opened", "resolved"],
            ("ticket.closed", {}),
            ("ticket.revisit_recorded", {"satisfaction": 4}),
        ),
        ("fault", ["reported"], ("fault.restored", {}), ("fault.reopened", {})),
        (
            "fault",
            ["reported", "restored"],
            ("fault.reopened", {}),
            ("fault.status_changed", {"status": "pending_customer"}),
        ),
        ("ticket", ["opened", "resolved", "closed"], ("ticket.reopened", {}), ("ticket.acknowledged", {})),
        ("order", ["received"], ("order.resource_confirmed", {}), ("order.provisioning_started", {})),
        (
            "order",
            ["received", "resource_confirmed"],
            ("order.activated", {}),
            ("order.customer_accepted", {}),
        ),
        ("order", ["received", "resource_confirmed"], ("order.activated", {}), ("order.cancelled", {})),
    ]

    @pytest.mark.parametrize(
        ("kind", "before", "first", "second"), CASES, ids=[f"{a[0]} before {b[0]}" for _, _, a, b in CASES]
    )
    def test_the_one_the_other_needs_comes_first_whatever_the_ids_and_arrival(
        self, kind, before, first, second
    ):
        """Same occurred_at and recorded_at, random ids, either arrival, no positions: causal order."""
        prior = [
            event(f"{kind}.{step}", "X-1", f"08:{n:02d}", event_id=random_id())
            for n, step in enumerate(before)
        ]
        for attempt in range(40):
            one, two = (event(t, "X-1", "09:00", event_id=random_id(), **p) for t, p in (first, second))
            arrival = [one, two] if attempt % 2 else [two, one]
            item = item_of(folded(prior + arrival), kind)
            placed = [r["event_id"] for r in item["history"][len(prior) :]]
            assert placed == [one.event_id, two.event_id]
            assert all(r["outcome"] == "applied" for r in item["history"])

    def test_events_either_order_allows_keep_the_order_the_source_delivered(self):
        """Two status changes in one minute: the later offset is the status the item is left in."""
        opened = event("ticket.opened", "X-1", "08:00")
        pending = event(
            "ticket.status_changed", "X-1", "09:00", status="pending_customer", event_id=random_id()
        )
        working = event("ticket.status_changed", "X-1", "09:00", status="in_progress", event_id=random_id())
        for offsets, status in (((1, 2, 3), "in_progress"), ((1, 3, 2), "pending_customer")):
            for arrival in ((opened, pending, working), (working, pending, opened)):
                by_offset = {e.event_id: o for e, o in zip((opened, pending, working), offsets)}
                view = folded(arrival, [by_offset[e.event_id] for e in arrival])
                assert item_of(view, "ticket")["attributes"]["status"] == status

    def test_recorded_at_comes_before_the_source_position(self):
        """Recorded a second later, it is later, whatever its offset."""
        opened = event("ticket.opened", "X-1", "08:00")
        first = event(
            "ticket.assigned", "X-1", "09:00", recorded="09:00:01", assignee="first", event_id=random_id()
        )
        second = event(
            "ticket.assigned", "X-1", "09:00", recorded="09:00:02", assignee="second", event_id=random_id()
        )
        view = folded([opened, second, first], [1, 2, 3])
        assert item_of(view, "ticket")["attributes"]["assignee"] == "second"

    def test_an_event_no_order_can_accept_comes_last_at_its_instant_with_the_reason(self):
        """A revisit of an open fault is refused whatever its place; it sits after the others."""
        events = [
            event("fault.revisit_recorded", "X-1", "09:00", satisfaction=5, event_id=random_id()),
            event("fault.reported", "X-1", "09:00", event_id=random_id()),
            event("fault.acknowledged", "X-1", "09:00", event_id=random_id()),
        ]
        item = item_of(folded(events))
        assert [(r["event_type"], r["outcome"]) for r in item["history"]] == [
            ("fault.reported", "applied"),
            ("fault.acknowledged", "applied"),
            ("fault.revisit_recorded", "rejected"),
        ]
        assert item["history"][2]["reason"] == "fault.revisit_recorded not allowed in state acknowledged"


class TestIssue10Regressions:
    def test_a_report_and_its_acknowledgement_in_one_instant_are_never_rejected(self):
        """fault.reported + fault.acknowledged, same occurred_at and recorded_at, random UUIDs: 200 tries,
        0 rejections."""
        rejections, breached = 0, 0
        for attempt in range(200):
            report = event("fault.reported", "X-1", "09:00", event_id=random_id())
            ack = event("fault.acknowledged", "X-1", "09:00", event_id=random_id())
            positions = None if attempt % 2 else [100 + attempt, 101 + attempt]
            view = folded(
                [event("customer.registered", "C-1", "08:00"), report, ack],
                None if positions is None else [1, *positions],
            )
            rejections += view["counters"]["transitions_rejected"]
            item = item_of(view)
            evaluation = evaluate(
                item_facts(view, item), clock_history(item), RULES, START + timedelta(hours=1)
            )
            breached += evaluation.metrics["response"].state != "met"
        assert (rejections, breached) == (0, 0)

    def test_an_acknowledgement_that_arrives_first_is_accepted_once_the_report_arrives(self):
        """The other arrival order: the same outcome, 200 tries."""
        for _ in range(200):
            report = event("fault.reported", "X-1", "09:00", event_id=random_id())
            ack = event("fault.acknowledged", "X-1", "09:00", event_id=random_id())
            view = folded([ack, report])
            assert view["counters"]["transitions_rejected"] == 1  # the ack, until the report came
            assert [r["outcome"] for r in item_of(view)["history"]] == ["applied", "applied"]
            assert item_of(view)["state"] == "acknowledged"

    def test_a_pending_status_in_the_minute_of_a_reopen_keeps_its_pause(self):
        """Reopened and put pending at one instant, random UUIDs: 200 tries, the restore clock paused
        every time."""
        minute_later = None
        for attempt in range(200):
            reopened_at = at("11:00")
            events = [
                DIAMOND,
                event("fault.reported", "X-1", "09:00", event_id=random_id()),
                event("fault.restored", "X-1", "10:00", event_id=random_id()),
                event("fault.reopened", "X-1", reopened_at, event_id=random_id()),
                event(
                    "fault.status_changed",
                    "X-1",
                    reopened_at,
                    status="pending_customer",
                    event_id=random_id(),
                ),
            ]
            arrival = events if attempt % 2 else [*events[:3], events[4], events[3]]
            view = folded(arrival)
            item = item_of(view)
            assert view["counters"]["transitions_rejected"] == (attempt % 2 == 0)  # until the reopen came
            assert all(r["outcome"] == "applied" for r in item["history"])
            restore = evaluate(item_facts(view, item), clock_history(item), RULES, at("15:00")).metrics[
                "restore"
            ]
            assert (restore.state, restore.paused, restore.elapsed) == ("pending", True, timedelta(hours=1))
            if minute_later is None:
                later = [
                    *events[:4],
                    event("fault.status_changed", "X-1", at("11:01"), status="pending_customer"),
                ]
                view_later = folded(later)
                minute_later = evaluate(
                    item_facts(view_later, item_of(view_later)),
                    clock_history(item_of(view_later)),
                    RULES,
                    at("15:00"),
                ).metrics["restore"]
            # the same as with the status a minute later, less that minute
            assert minute_later.elapsed - restore.elapsed == timedelta(minutes=1)
            assert minute_later.state == restore.state


# -- property tests: any arrival, any ids, any batch cuts give the causal outcome ----


def _payload(draw, event_type: str) -> dict:
    name = event_type.partition(".")[2]
    if name == "status_changed":
        return {"status": draw(st.sampled_from(WORK_STATUSES))}
    if event_type == "ticket.priority_changed":
        return {"priority": draw(st.sampled_from(PRIORITIES))}
    if event_type == "order.resource_shortfall":
        return {"reason": "端口资源不足"}
    if event_type == "order.milestone_reached":
        return {"milestone": draw(st.sampled_from(("fibre_laid", "configured")))}
    if name == "revisit_recorded":
        return {"satisfaction": draw(st.integers(1, 5))}
    if name == "closed" and draw(st.booleans()):
        return {"closed_unresolved": draw(st.sampled_from(("duplicate", "withdrawn", "no_fault_found")))}
    return {}


@st.composite
def causal_paths(draw, kind: str, max_events: int = 14, natural: bool = False):
    """A lifecycle the item really went through: (event, source position) in causal order.

    Minute-precision instants with many events per minute, random ids, and
    ``recorded_at`` never earlier than the previous event's at the same
    instant (``natural``: always equal to ``occurred_at``, as an importer sends).
    """
    state, minute, lag, position = None, 0, 0, draw(st.integers(0, 1000))
    out = []
    for n in range(draw(st.integers(1, max_events))):
        if n == 0:
            event_type = OPENING[kind]
        else:
            candidates = sorted(
                t
                for t, (sources, _) in lifecycles.TRANSITIONS[kind].items()
                if state in sources and lifecycles.NEW not in sources
            )
            if not candidates:
                break
            event_type = draw(st.sampled_from(candidates))
            step = draw(st.sampled_from((0, 0, 0, 1, 7, 90)))
            minute += step
            lag = 0 if step else lag
        payload = _payload(draw, event_type)
        outcome = lifecycles.transition(kind, state, event_type, payload)
        assert isinstance(outcome, lifecycles.Accepted)
        state = outcome.state
        lag = lag if natural else lag + draw(st.sampled_from((0, 0, 20)))
        occurred = START + timedelta(minutes=minute)
        position += draw(st.integers(1, 30))  # other customers' events between them
        out.append(
            (
                event(
                    event_type,
                    "X-1",
                    occurred,
                    recorded=occurred + timedelta(seconds=lag),
                    event_id=str(draw(st.uuids(version=4))),
                    **payload,
                ),
                position,
            )
        )
    return out, state


def batches(order: list, cuts: list[int]) -> list[list]:
    edges = sorted({0, len(order), *(c % (len(order) + 1) for c in cuts)})
    return [order[a:b] for a, b in zip(edges, edges[1:])]


def fold_in_batches(kind, stream, cuts):
    """Fold (event, position) pairs batch by batch, clocks refreshed after each batch (as the worker)."""
    view = folded([DIAMOND], [0])
    for batch in batches(stream, cuts):
        for e, position in batch:
            fold(view, e, position)
        item = item_of(view, kind)
        item["sla"] = sla_summary(view, item, RULES)
    return view, item_of(view, kind)


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestEveryArrivalOrderGivesTheCausalOutcome:
    @pytest.mark.parametrize("kind", KINDS)
    @PROPERTY
    @given(data=st.data())
    def test_states_outcomes_clocks_and_steps_are_those_of_the_causal_order(self, kind, data):
        """Shuffled, redelivered and cut into batches: the states, outcomes, clocks and steps of the
        causal order."""
        path, final_state = data.draw(causal_paths(kind))
        arrival = data.draw(st.permutations(path))
        dupes = data.draw(st.lists(st.sampled_from(path), max_size=3))
        cuts = data.draw(st.lists(st.integers(0, 40), max_size=4))
        expected_view, expected = fold_in_batches(kind, path, [])
        view, item = fold_in_batches(kind, [*arrival, *dupes], cuts)
        truth = [e.event_id for e, _ in path]

        assert item["state"] == expected["state"] == final_state
        assert [r["event_id"] for r in item["history"]] == truth
        assert [r["outcome"] for r in item["history"]] == ["applied"] * len(path)
        # the engine reads the same order, so the clocks are the causal order's
        assert [e["event_id"] for _, e in order_events(clock_history(item))] == truth
        assert item["sla"] == expected["sla"]
        later = path[-1][0].occurred_at + timedelta(days=3)
        assert [s.to_wire() for s in due_steps(view, item, RULES, later)[0]] == [
            s.to_wire() for s in due_steps(expected_view, expected, RULES, later)[0]
        ]
        # the reporting database: stored events in any order, positions (partition, offset)
        stored = [StoredEvent(e, (2, position)) for e, position in [*arrival, *dupes]]
        rows = item_rows("C-1", kind, "X-1", stored, [DIAMOND], RULES)
        in_order = item_rows("C-1", kind, "X-1", [StoredEvent(e, (2, p)) for e, p in path], [DIAMOND], RULES)
        assert rows == in_order and rows.item["state"] == final_state

    @pytest.mark.parametrize("kind", KINDS)
    @PROPERTY
    @given(data=st.data())
    def test_with_a_useless_source_order_the_order_is_the_one_the_definition_gives(self, kind, data):
        """An export in no particular order, recorded_at = occurred_at: the fold agrees with the oracle's
        brute force."""
        path, _ = data.draw(causal_paths(kind, max_events=7, natural=True))
        scrambled = data.draw(st.permutations(range(len(path))))
        events = [(e, 10 * p) for (e, _), p in zip(path, scrambled)]
        arrival = data.draw(st.permutations(events))
        _, item = fold_in_batches(kind, arrival, data.draw(st.lists(st.integers(0, 10), max_size=2)))
        state, applied = fold_item(kind, [(p, e) for e, p in events])
        assert item["state"] == state
        assert [r["event_id"] for r in item["history"] if r["outcome"] == "applied"] == [
            e.event_id for _, e in applied
        ]
        # the engine's order of the same records is the fold's
        records = [dict(r) for r in item["history"]]
        assert [p.record["event_id"] for p in causal_order(kind, reversed(records))] == [
            r["event_id"] for r in item["history"]
        ]
