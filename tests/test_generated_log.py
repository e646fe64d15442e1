"""The generated log looks like a desk's export and holds every twist of issue 10, repeatably.

Checked with the report oracle's own fold (``tests/report_oracle.py``), which
orders an item's events without production's event order.
"""

from __future__ import annotations

import uuid
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schemas.envelope import Event
from sla_rules import load_rules
from streams.lifecycles import Accepted, transition
from tests.generated_log import generate_log
from tests.report_oracle import MAX_TIED, dedupe, fold_item, measure_items

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 11, 2, tzinfo=ZONE)
OPEN_STATES = {
    "fault": {"reported", "acknowledged", "dispatched", "in_repair", "pending", "reopened"},
    "ticket": {"open", "acknowledged", "in_progress", "pending", "reopened"},
}


@pytest.fixture(scope="module")
def events() -> list[Event]:
    return generate_log(start=START)


@pytest.fixture(scope="module")
def rules():
    return load_rules()


@pytest.fixture(scope="module")
def folded(events) -> dict[tuple[str, str, str], list[tuple[str | None, Event]]]:
    """Each item's applied events in the oracle's order, with the state before each."""
    items: dict[tuple[str, str, str], list[tuple[int, Event]]] = defaultdict(list)
    for position, event in enumerate(dedupe(events)):
        if event.kind in ("fault", "ticket", "order"):
            items[(event.customer_id, event.kind, event.entity_id)].append((position, event))
    out = {}
    for key, item_events in items.items():
        _, placed = fold_item(key[1], item_events)
        assert len(placed) == len(item_events), f"{key}: the lifecycle refuses some events"
        state, steps = None, []
        for _, event in placed:
            steps.append((state, event))
            state = transition(key[1], state, event.event_type, event.payload).state
        out[key] = steps
    return out


def minute_pairs(folded, first: str, then: str) -> list[tuple[str, str, str]]:
    """Items with ``first`` and, right after it in the same minute, ``then``."""
    return [
        key
        for key, steps in folded.items()
        if any(
            a.event_type.endswith(first) and b.event_type.endswith(then) and a.occurred_at == b.occurred_at
            for (_, a), (_, b) in zip(steps, steps[1:])
        )
    ]


class TestShape:
    def test_the_default_is_ci_sized(self, events):
        """Seventy customers over a week: a few thousand events."""
        assert 2_000 <= len(events) <= 6_000
        assert len({e.customer_id for e in events}) == 70
        assert all(START - timedelta(days=3) <= e.occurred_at < START + timedelta(days=7) for e in events)

    def test_instants_are_whole_minutes_and_recorded_as_they_occurred(self, events):
        """As an importer sends them: minute precision, recorded_at = occurred_at."""
        assert all(e.occurred_at.second == 0 and e.occurred_at.microsecond == 0 for e in events)
        assert all(e.recorded_at == e.occurred_at for e in events)

    def test_ids_are_random_uuid4_and_only_duplicates_repeat_them(self, events):
        """No id order to lean on; a repeated id is an identical copy, further down."""
        assert all(uuid.UUID(e.event_id).version == 4 for e in events)
        first: dict[str, Event] = {}
        for event in events:
            assert first.setdefault(event.event_id, event) == event
        assert 0 < len(events) - len(first) < 0.03 * len(events)

    def test_many_events_share_a_minute(self, events, folded):
        """Minutes with many events, items with several in one minute, within the oracle's reach."""
        per_minute = Counter(e.occurred_at for e in dedupe(events))
        assert max(per_minute.values()) >= 10
        per_item_minute = Counter((key, e.occurred_at) for key, steps in folded.items() for _, e in steps)
        assert sum(n >= 3 for n in per_item_minute.values()) >= 20
        assert max(per_item_minute.values()) <= MAX_TIED

    def test_the_source_lists_some_minutes_out_of_lifecycle_order(self, events):
        """Folded in file order, some events are refused; the lifecycle's order accepts all."""
        state: dict[tuple[str, str, str], str | None] = {}
        refused = 0
        for event in sorted(dedupe(events), key=lambda e: e.occurred_at):  # stable: file order
            if event.kind not in ("fault", "ticket", "order"):
                continue
            key = (event.customer_id, event.kind, event.entity_id)
            outcome = transition(event.kind, state.get(key), event.event_type, event.payload)
            if isinstance(outcome, Accepted):
                state[key] = outcome.state
            else:
                refused += 1
        assert refused >= 10

    def test_some_events_arrive_late(self, events):
        """Late arrivals as in the month: after later events of their customer."""
        latest: dict[str, datetime] = {}
        late = 0
        for event in dedupe(events):
            before = latest.get(event.customer_id)
            late += before is not None and event.occurred_at < before
            latest[event.customer_id] = max(before or event.occurred_at, event.occurred_at)
        assert late > 10


class TestTwists:
    def test_faults_and_tickets_close_unresolved_from_every_open_state(self, folded):
        """With a reason; some in the minute they were opened."""
        seen: dict[str, set[str]] = defaultdict(set)
        same_minute = 0
        for (_, kind, _), steps in folded.items():
            for state, event in steps:
                if event.event_type == f"{kind}.closed" and "closed_unresolved" in event.payload:
                    seen[kind].add(state)
                    same_minute += event.occurred_at == steps[0][1].occurred_at
        assert seen == OPEN_STATES
        assert same_minute >= 5

    def test_resolved_tickets_are_reassigned_in_the_minute_of_resolution_and_later(self, folded):
        """ticket.assigned in state resolved, both ways."""
        reassigned = [
            (event.occurred_at == previous.occurred_at)
            for steps in folded.values()
            for (_, previous), (state, event) in zip(steps, steps[1:])
            if event.event_type == "ticket.assigned" and state == "resolved"
        ]
        assert reassigned.count(True) >= 2 and reassigned.count(False) >= 3

    def test_items_are_resolved_and_reopened_in_one_minute(self, folded):
        """Tickets and faults; some also pending in that minute."""
        tickets = minute_pairs(folded, "ticket.resolved", "ticket.reopened")
        faults = minute_pairs(folded, "fault.restored", "fault.reopened")
        assert len(tickets) >= 3 and len(faults) >= 3
        paused = minute_pairs(folded, ".reopened", ".status_changed")
        assert paused

    def test_priorities_are_raised_past_their_new_deadline(self, events, rules):
        """Under recompute the new target lies before the raise: a breach dated in the past."""
        raises = {
            (e.customer_id, e.entity_id): e.occurred_at
            for e in dedupe(events)
            if e.event_type == "ticket.priority_changed" and e.payload.get("reason") == "客户经理要求升级"
        }
        late = [
            item
            for item in measure_items(events, rules, START + timedelta(days=10))
            if (item.customer_id, item.item_id) in raises
            and any(
                c.status.breached_at and c.status.breached_at < raises[(item.customer_id, item.item_id)]
                for c in item.clocks
            )
        ]
        assert len(late) >= 5

    def test_some_breaches_last_only_until_the_priority_is_lowered(self, events, rules):
        """Breached before the lowering, met in the end: short-lived breaches."""
        lowered = {
            (e.customer_id, e.entity_id): e.occurred_at
            for e in dedupe(events)
            if e.event_type == "ticket.priority_changed" and e.payload.get("reason") == "影响较小"
        }
        final = {
            (i.customer_id, i.item_id): i for i in measure_items(events, rules, START + timedelta(days=10))
        }
        short = 0
        for (customer_id, item_id), at in sorted(lowered.items()):
            before = [
                e
                for e in events
                if e.customer_id == customer_id
                and (e.kind == "customer" or e.entity_id == item_id)
                and e.occurred_at < at
            ]
            then = {i.item_id: i for i in measure_items(before, rules, at)}.get(item_id)
            now = final.get((customer_id, item_id))
            if then is None or now is None:
                continue
            was = {c.metric: c.outcome for c in then.clocks}
            became = {c.metric: c.outcome for c in now.clocks}
            short += was.get("resolve") == "breached" and became.get("resolve") == "met"
        assert short >= 2

    def test_an_alarm_storm_reports_many_faults_of_one_customer_in_one_minute(self, events):
        """Some duplicates among them are closed in the minute they were reported."""
        storms = Counter(
            (e.customer_id, e.occurred_at)
            for e in dedupe(events)
            if e.event_type == "fault.reported" and e.source == "network_alarm"
        )
        assert max(storms.values()) >= 8


class TestRepeatable:
    def test_the_same_seed_gives_the_same_log(self):
        """Ids too: they come from the seeded source, not from uuid4()."""
        one = generate_log(customers=15, start=START, seed=5)
        two = generate_log(customers=15, start=START, seed=5)
        other = generate_log(customers=15, start=START, seed=6)
        assert [e.to_bytes() for e in one] == [e.to_bytes() for e in two]
        assert [e.to_bytes() for e in one] != [e.to_bytes() for e in other]

    def test_a_naive_start_is_refused(self):
        """The log starts at an instant, never at a wall-clock time in no zone."""
        with pytest.raises(ValueError):
            generate_log(customers=1, start=datetime(2026, 11, 2))
