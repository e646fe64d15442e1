"""SLA state in the one-stop view, computed by the rules engine at event time."""

import pytest

from sla_rules import load_rules
from streams.customer_view import fold, new_view
from streams.item_sla import UNKNOWN_TIER, item_facts, sla_summary
from tests.builders import event, fault, ticket


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def view_of(*events, tier="diamond"):
    view = new_view("C-1")
    if tier:
        fold(view, event("customer.registered", "C-1", tier=tier))
    for e in events:
        fold(view, e)
    return view


class TestFacts:
    def test_tier_comes_from_the_profile_and_kind_from_the_ticket(self):
        """A complaint of a gold customer is matched as a gold complaint."""
        view = view_of(ticket("T-1", "opened", kind="complaint", priority="P2"), tier="gold")
        facts = item_facts(view, view["open"]["ticket"]["T-1"])
        assert (facts.tier, facts.kind, facts.priority) == ("gold", "complaint", "P2")

    def test_a_customer_without_profile_is_assumed_public(self):
        """Events may arrive before the customer archive does."""
        view = view_of(fault("F-1", "reported"), tier=None)
        assert item_facts(view, view["open"]["fault"]["F-1"]).tier == UNKNOWN_TIER


class TestSummary:
    def test_a_new_diamond_p1_fault_has_running_clocks_with_deadlines(self, rules):
        """Response, restore and resolve start at the report, with absolute deadlines."""
        view = view_of(fault("F-1", "reported", "09:00", severity="critical"))
        sla = sla_summary(view, view["open"]["fault"]["F-1"], rules)
        assert sla["as_of"] == "2026-11-23T01:00:00Z"
        assert {"response", "restore", "resolve"} <= set(sla["metrics"])
        response = sla["metrics"]["response"]
        assert response["state"] == "pending" and response["deadline"] > sla["as_of"]
        assert response["policy"].startswith("diamond v")

    def test_acknowledging_meets_the_response_clock(self, rules):
        """An acknowledgement within target shows the response as met."""
        view = view_of(fault("F-1", "reported", "09:00"), fault("F-1", "acknowledged", "09:03"))
        sla = sla_summary(view, view["open"]["fault"]["F-1"], rules)
        assert sla["metrics"]["response"]["state"] == "met"
        assert sla["metrics"]["response"]["met_at"] == "2026-11-23T01:03:00Z"

    def test_pending_customer_pauses_resolution_and_keeps_the_reason(self, rules):
        """Waiting for the customer stops our clock and says why."""
        view = view_of(
            ticket("T-1", "opened", "09:00", priority="P2"),
            ticket("T-1", "status_changed", "09:30", status="pending_customer"),
        )
        sla = sla_summary(view, view["open"]["ticket"]["T-1"], rules)
        resolve = sla["metrics"]["resolve"]
        assert resolve["paused"] is True and resolve["pause_reason"] == "pending_customer"
        assert resolve["deadline"] is None  # unknown until the customer answers

    def test_an_item_with_only_a_rejected_event_has_no_clock(self, rules):
        """No opening event, no SLA."""
        view = view_of(fault("F-1", "acknowledged"))
        assert sla_summary(view, view["open"]["fault"]["F-1"], rules) is None


class TestSummaryMatchesTheEngine:
    def test_the_summary_is_the_engines_own_figures(self, rules):
        """Every kept field equals the engine's to_dict() for the same evaluation."""
        from sla_rules import evaluate
        from streams.item_sla import clock_history, item_facts

        view = view_of(
            ticket("T-1", "opened", "09:00", priority="P2"),
            ticket("T-1", "status_changed", "09:30", status="pending_third_party"),
            ticket("T-1", "status_changed", "10:00", status="in_progress"),
            ticket("T-1", "acknowledged", "10:05"),
            tier="vip",
        )
        item = view["open"]["ticket"]["T-1"]
        summary = sla_summary(view, item, rules)
        history = clock_history(item)
        full = evaluate(
            item_facts(view, item), history, rules, max(r["occurred_at"] for r in history)
        ).to_dict()
        for name, kept in summary["metrics"].items():
            for field, value in kept.items():
                if field == "policy":
                    continue
                assert value == full["metrics"][name][field], (name, field)
        assert summary["next_change_at"] == full["next_change_at"]


class TestWhichItemsToReevaluate:
    def test_only_events_that_can_move_a_clock_touch_their_item(self):
        """A dispatch in order moves no clock; a restore does; a duplicate nothing."""
        from streams.item_sla import items_touched_by

        view = view_of(fault("F-1", "reported", "09:00"))
        dispatched, restored = fault("F-1", "dispatched", "09:05"), fault("F-1", "restored", "09:50")
        assert items_touched_by(view, dispatched, fold(view, dispatched)) == set()
        assert items_touched_by(view, restored, fold(view, restored)) == {("fault", "F-1")}
        assert items_touched_by(view, restored, fold(view, restored)) == set()  # duplicate

    def test_a_late_event_of_any_type_touches_its_item(self):
        """Confirming resources late can turn a rejected activation into an applied one."""
        from streams.item_sla import items_touched_by
        from tests.builders import order

        view = view_of(order("O-1", "received", "09:00"), order("O-1", "activated", "12:00"))
        confirmed = order("O-1", "resource_confirmed", "10:00")
        outcome = fold(view, confirmed)
        assert outcome.late
        assert items_touched_by(view, confirmed, outcome) == {("order", "O-1")}
        assert view["open"]["order"]["O-1"]["state"] == "activated"
