"""The generated month of events is realistic, valid, messy in the right ways and repeatable."""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from schemas.envelope import decode_event
from schemas.event_catalogue import TIERS
from streams.lifecycles import Accepted, is_closed, transition
from tests.month_of_events import generate_month, read_events, write_events

ZONE = ZoneInfo("Asia/Shanghai")
MONTH = datetime(2026, 11, 1, tzinfo=ZONE)
MONTH_END = datetime(2026, 12, 1, tzinfo=ZONE)


@pytest.fixture(scope="module")
def month():
    started = time.perf_counter()
    events = generate_month(month_start=MONTH)
    return events, time.perf_counter() - started


def first_copies(events):
    seen = {}
    for event in events:
        seen.setdefault(event.event_id, event)
    return list(seen.values())


def items_of(events):
    items = defaultdict(list)
    for event in first_copies(events):
        if event.kind in ("fault", "ticket", "order"):
            items[(event.customer_id, event.kind, event.entity_id)].append(event)
    return items


class TestShape:
    def test_the_default_month_is_a_ci_sized_month(self, month):
        """Three hundred customers give 15-25k events: big enough to mean something, CI-sized."""
        events, _ = month
        assert 15_000 <= len(events) <= 25_000
        assert len({e.customer_id for e in events}) == 300

    def test_events_lie_in_the_month(self, month):
        """Registrations come at or just before the month; nothing happens after it."""
        events, _ = month
        assert all(MONTH - timedelta(days=3) <= e.occurred_at < MONTH_END for e in events)
        registered = [e for e in events if e.event_type == "customer.registered"]
        assert sum(e.occurred_at <= MONTH for e in registered) > 0.9 * len(registered)

    def test_every_tier_appears_with_few_diamonds_and_many_public(self, month):
        """All six tiers, in a realistic pyramid."""
        events, _ = month
        tiers = Counter(
            e.payload["tier"] for e in first_copies(events) if e.event_type == "customer.registered"
        )
        assert set(tiers) == set(TIERS)
        assert tiers["diamond"] < tiers["gold"] < tiers["vip"] < tiers["public"]

    def test_managers_serve_several_customers(self, month):
        """An account manager has a portfolio, and every customer has an escalation chain."""
        events, _ = month
        registered = [e for e in first_copies(events) if e.event_type == "customer.registered"]
        portfolio = Counter(e.payload["account_manager"]["id"] for e in registered)
        assert max(portfolio.values()) >= 3 and len(portfolio) >= 20
        assert all(e.payload["escalation_chain"] for e in registered)
        assert any("region" not in e.payload for e in registered)  # grouped under "-"

    def test_every_kind_step_and_twist_appears(self, month):
        """Kinds, pauses of both reasons, reopens, re-prioritisation, shortfalls, acks, upgrades."""
        events, _ = month
        types = Counter(e.event_type for e in events)
        for needed in (
            "fault.reported",
            "fault.acknowledged",
            "fault.dispatched",
            "fault.repair_started",
            "fault.restored",
            "fault.customer_confirmed",
            "fault.closed",
            "fault.reopened",
            "fault.revisit_recorded",
            "ticket.opened",
            "ticket.acknowledged",
            "ticket.assigned",
            "ticket.priority_changed",
            "ticket.resolved",
            "ticket.reopened",
            "ticket.closed",
            "ticket.revisit_recorded",
            "order.received",
            "order.resource_confirmed",
            "order.resource_shortfall",
            "order.provisioning_started",
            "order.milestone_reached",
            "order.activated",
            "order.customer_accepted",
            "order.cancelled",
            "order.revisit_recorded",
            "customer.updated",
            "sla.escalation_acknowledged",
        ):
            assert types[needed] > 0, needed
        assert 0 < types["sla.escalation_acknowledged"] < 100  # only a few
        payloads = [e.payload for e in events]
        assert {p["kind"] for p in payloads if "subject" in p} == {"complaint", "service_request", "inquiry"}
        assert {p["urgency"] for p in payloads if "urgency" in p} == {"normal", "urgent", "extra_urgent"}
        assert {p["severity"] for p in payloads if "severity" in p} == {
            "critical",
            "major",
            "minor",
            "warning",
        }
        assert {p["status"] for p in payloads if "status" in p} == {
            "pending_customer",
            "pending_third_party",
            "in_progress",
        }
        assert {p["satisfaction"] for p in payloads if "satisfaction" in p} == {1, 2, 3, 4, 5}
        updates = [e.payload for e in events if e.event_type == "customer.updated"]
        assert any("tier" in p for p in updates) and any("region" in p for p in updates)
        assert any("account_manager" in p for p in updates)

    def test_acknowledgements_name_their_clock_and_manager(self, month):
        """An acknowledgement is sent by a manager about one clock of one item."""
        events, _ = month
        acks = [e for e in events if e.event_type == "sla.escalation_acknowledged"]
        items = items_of(events)
        for ack in acks:
            assert ack.actor.startswith("AM-")
            assert (ack.customer_id, ack.payload["item_kind"], ack.entity_id) in items
            assert ack.payload["metric"] in ("restore", "resolve") and ack.payload["cycle"] == 1


class TestLifecycles:
    def test_items_follow_their_loops(self, month):
        """Folded in event time, every item event is an accepted transition."""
        events, _ = month
        rejected = total = 0
        for (_, kind, _), item_events in items_of(events).items():
            state = None
            for event in sorted(item_events, key=lambda e: (e.occurred_at, e.recorded_at, e.event_id)):
                outcome = transition(kind, state, event.event_type, event.payload)
                total += 1
                if isinstance(outcome, Accepted):
                    state = outcome.state
                else:
                    rejected += 1
        assert total > 10_000 and rejected == 0

    def test_most_items_close_and_some_are_still_open_at_month_end(self, month):
        """Closed loops dominate; items opened late in the month are still open."""
        events, _ = month
        closed = still_open = 0
        for (_, kind, _), item_events in items_of(events).items():
            state = None
            for event in sorted(item_events, key=lambda e: (e.occurred_at, e.recorded_at, e.event_id)):
                outcome = transition(kind, state, event.event_type, event.payload)
                state = outcome.state if isinstance(outcome, Accepted) else state
            closed += is_closed(kind, state)
            still_open += not is_closed(kind, state)
        assert closed > 2 * still_open > 0

    def test_revisits_follow_most_but_not_all_closures(self, month):
        """The 100% revisit goal is not met: some closed items get no follow-up call."""
        events, _ = month
        closures = sum(
            e.event_type in ("fault.closed", "ticket.closed", "order.customer_accepted")
            for e in first_copies(events)
        )
        revisits = sum(e.event_type.endswith(".revisit_recorded") for e in first_copies(events))
        assert 0.5 * closures < revisits < closures


class TestArrival:
    def test_some_events_arrive_late(self, month):
        """About 2% of events arrive after later events of their customer."""
        events, _ = month
        latest: dict[str, datetime] = {}
        late = 0
        for event in first_copies(events):
            before = latest.get(event.customer_id)
            late += before is not None and event.occurred_at < before
            latest[event.customer_id] = max(before or event.occurred_at, event.occurred_at)
        assert 0.005 * len(events) < late < 0.05 * len(events)

    def test_some_events_are_exact_duplicates_further_down(self, month):
        """About 1% of events come twice, identical, the copy after the original."""
        events, _ = month
        copies = Counter(e.event_id for e in events)
        duplicated = [event_id for event_id, n in copies.items() if n > 1]
        assert 0.003 * len(events) < len(duplicated) < 0.03 * len(events)
        for event_id in duplicated[:50]:
            first, second = [i for i, e in enumerate(events) if e.event_id == event_id][:2]
            assert second > first and events[first] == events[second]


class TestRepeatable:
    def test_the_same_seed_gives_the_same_month(self):
        """Two runs with one seed give byte-identical event lists; another seed differs."""
        one = generate_month(customers=40, month_start=MONTH, seed=5)
        two = generate_month(customers=40, month_start=MONTH, seed=5)
        other = generate_month(customers=40, month_start=MONTH, seed=6)
        assert [e.to_bytes() for e in one] == [e.to_bytes() for e in two]
        assert [e.to_bytes() for e in one] != [e.to_bytes() for e in other]

    def test_every_event_is_valid_on_the_wire(self, month, tmp_path):
        """Each event survives the decoder, and a written file reads back the same."""
        events, _ = month
        assert all(decode_event(e.to_bytes()) == e for e in events[:3000])
        path = write_events(events, tmp_path / "month.jsonl")
        assert read_events(path) == events

    def test_naive_month_start_is_refused(self):
        """The month starts at an instant, never at a wall-clock time in no zone."""
        with pytest.raises(ValueError):
            generate_month(customers=1, month_start=datetime(2026, 11, 1))
