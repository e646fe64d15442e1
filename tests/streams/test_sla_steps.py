"""Which SLA events a timer publishes for an item at an instant (shipped rules)."""

import pytest

from sla_rules import load_rules
from streams.customer_view import fold, new_view
from streams.item_sla import due_steps
from tests.builders import at, event, fault


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def diamond_view(*events):
    view = new_view("C-1")
    fold(view, event("customer.registered", "C-1", tier="diamond"))
    for e in events:
        fold(view, e)
    return view


def steps(events):
    return [(e.event_type, e.payload["metric"], e.payload.get("step"),
             e.payload.get("threshold"), e.occurred_at.strftime("%H:%M:%S")) for e in events]


class TestDueSteps:
    def test_an_unacknowledged_p1_fault_warns_breaches_and_escalates_its_response(self, rules):
        """Diamond P1: 5 min to respond; warnings at 50/75/90%, then breach and step 1."""
        view = diamond_view(fault("F-1", "reported", "09:00"))
        due, _ = due_steps(view, view["open"]["fault"]["F-1"], rules, at("09:06"))
        response = [s for s in steps(due) if s[1] == "response"]
        assert response == [
            ("sla.warning_reached", "response", None, "50%", "01:02:30"),
            ("sla.warning_reached", "response", None, "75%", "01:03:45"),
            ("sla.warning_reached", "response", None, "90%", "01:04:30"),
            ("sla.breached", "response", None, None, "01:05:00"),
            ("sla.escalation_due", "response", 1, None, "01:05:00"),
        ]
        assert next(e for e in due if e.event_type == "sla.escalation_due").payload["role"] == \
            "account_manager"

    def test_steps_already_logged_are_not_published_again(self, rules):
        """Once the item's log has a step, a later tick does not repeat it."""
        view = diamond_view(fault("F-1", "reported", "09:00"))
        first, _ = due_steps(view, view["open"]["fault"]["F-1"], rules, at("09:06"))
        for e in first:
            fold(view, e)
        again, _ = due_steps(view, view["open"]["fault"]["F-1"], rules, at("09:06"))
        assert again == []

    def test_the_same_step_has_the_same_id_whenever_computed(self, rules):
        """A live tick and a replay compute identical event ids and due instants."""
        view = diamond_view(fault("F-1", "reported", "09:00"))
        live, _ = due_steps(view, view["open"]["fault"]["F-1"], rules, at("09:06"))
        replay, _ = due_steps(view, view["open"]["fault"]["F-1"], rules, at("09:30"), replay=True)
        assert {(e.event_id, e.occurred_at) for e in live} <= \
            {(e.event_id, e.occurred_at) for e in replay}
        assert all(e.recorded_at == e.occurred_at for e in replay)

    def test_a_met_clock_does_not_warn_and_says_met(self, rules):
        """Acknowledged in 2 minutes: no response warning, one met event."""
        view = diamond_view(fault("F-1", "reported", "09:00"), fault("F-1", "acknowledged", "09:02"))
        due, _ = due_steps(view, view["open"]["fault"]["F-1"], rules, at("09:10"))
        response = [s for s in steps(due) if s[1] == "response"]
        assert response == [("sla.met", "response", None, None, "01:02:00")]

    def test_a_paused_clock_does_not_alert(self, rules):
        """Waiting for the customer: restore and resolve stay quiet however long it takes."""
        view = diamond_view(fault("F-1", "reported", "09:00"), fault("F-1", "acknowledged", "09:01"),
                            fault("F-1", "status_changed", "09:02", status="pending_customer"))
        due, next_at = due_steps(view, view["open"]["fault"]["F-1"], rules, at("23:00"))
        assert [s for s in steps(due) if s[1] in ("restore", "resolve")] == []

    def test_an_acknowledged_escalation_stops_its_ladder(self, rules):
        """After the manager acknowledges, later steps of that cycle are not due."""
        view = diamond_view(fault("F-1", "reported", "09:00"))
        fold(view, event("sla.escalation_acknowledged", "F-1", "09:06", source="account_manager",
                         item_kind="fault", metric="response", cycle=1))
        due, _ = due_steps(view, view["open"]["fault"]["F-1"], rules, at("12:00"))
        ladder = [s for s in steps(due) if s[0] == "sla.escalation_due" and s[1] == "response"]
        assert ladder == [("sla.escalation_due", "response", 1, None, "01:05:00")]

    def test_the_next_instant_is_the_next_threshold(self, rules):
        """Right after the report, the next thing to happen is the first warning."""
        view = diamond_view(fault("F-1", "reported", "09:00"))
        due, next_at = due_steps(view, view["open"]["fault"]["F-1"], rules, at("09:00"))
        assert due == [] and next_at == at("09:02:30")


class TestCausation:
    def test_each_step_cites_the_event_that_set_its_clock(self, rules):
        """The breach cites the report; nothing later had changed the response clock."""
        report = fault("F-1", "reported", "09:00")
        view = diamond_view(report, fault("F-1", "dispatched", "09:10"))
        due, _ = due_steps(view, view["open"]["fault"]["F-1"], rules, at("09:20"))
        breach = next(e for e in due if e.event_type == "sla.breached"
                      and e.payload["metric"] == "response")
        assert breach.payload["caused_by"] == report.event_id
