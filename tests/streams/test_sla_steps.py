"""Which SLA events a timer publishes for an item at an instant (shipped rules)."""

import pytest

from sla_rules import load_rules
from streams.customer_view import fold, new_view
from streams.item_sla import due_steps
from tests.builders import at, event, fault, ticket


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
    return [
        (
            e.event_type,
            e.payload["metric"],
            e.payload.get("step"),
            e.payload.get("threshold"),
            e.occurred_at.strftime("%H:%M:%S"),
        )
        for e in events
    ]


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
        assert (
            next(e for e in due if e.event_type == "sla.escalation_due").payload["role"] == "account_manager"
        )

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
        assert {(e.event_id, e.occurred_at) for e in live} <= {(e.event_id, e.occurred_at) for e in replay}
        assert all(e.recorded_at == e.occurred_at for e in replay)

    def test_a_met_clock_does_not_warn_and_says_met(self, rules):
        """Acknowledged in 2 minutes: no response warning, one met event."""
        view = diamond_view(fault("F-1", "reported", "09:00"), fault("F-1", "acknowledged", "09:02"))
        due, _ = due_steps(view, view["open"]["fault"]["F-1"], rules, at("09:10"))
        response = [s for s in steps(due) if s[1] == "response"]
        assert response == [("sla.met", "response", None, None, "01:02:00")]

    def test_a_paused_clock_does_not_alert(self, rules):
        """Waiting for the customer: restore and resolve stay quiet however long it takes."""
        view = diamond_view(
            fault("F-1", "reported", "09:00"),
            fault("F-1", "acknowledged", "09:01"),
            fault("F-1", "status_changed", "09:02", status="pending_customer"),
        )
        due, next_at = due_steps(view, view["open"]["fault"]["F-1"], rules, at("23:00"))
        assert [s for s in steps(due) if s[1] in ("restore", "resolve")] == []

    def test_an_acknowledged_escalation_stops_its_ladder(self, rules):
        """After the manager acknowledges, later steps of that cycle are not due."""
        view = diamond_view(fault("F-1", "reported", "09:00"))
        fold(
            view,
            event(
                "sla.escalation_acknowledged",
                "F-1",
                "09:06",
                source="account_manager",
                item_kind="fault",
                metric="response",
                cycle=1,
            ),
        )
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
        breach = next(e for e in due if e.event_type == "sla.breached" and e.payload["metric"] == "response")
        assert breach.payload["caused_by"] == report.event_id


def by_kind(events):
    """The steps as {(type, metric, cycle, threshold or step): event}."""
    return {
        (
            e.event_type,
            e.payload["metric"],
            e.payload["cycle"],
            e.payload.get("threshold") or e.payload.get("step"),
        ): e
        for e in events
    }


def view_of(customer, tier, *events):
    view = new_view(customer)
    fold(view, event("customer.registered", customer, customer=customer, tier=tier))
    for e in events:
        fold(view, e)
    return view


class TestStepsOfEveryWindowOfTheLog:
    """The steps are those of the whole event log, not only of the clocks as they are now."""

    def test_a_resolve_and_a_reopen_in_one_batch_publish_the_met_in_between(self, rules):
        """Diamond resumes a reopened clock: resolved at 09:30, reopened 09:40, ticked once
        after both, the met of 09:30 is published (the clock was met for ten minutes)."""
        view = diamond_view(
            ticket("T-1", "opened", "09:00", priority="P1", kind="complaint"),
            ticket("T-1", "acknowledged", "09:05"),
            ticket("T-1", "resolved", "09:30"),
            ticket("T-1", "reopened", "09:40"),
        )
        due, _ = due_steps(view, view["open"]["ticket"]["T-1"], rules, at("09:45"), replay=True)
        met = by_kind(due)[("sla.met", "resolve", 1, None)]
        assert met.occurred_at == at("09:30")
        assert met.payload["caused_by"] == ticket("T-1", "resolved", "09:30").event_id

    def test_a_new_cycle_after_a_late_restore_keeps_the_first_cycles_breach(self, rules):
        """C-0001's contract starts a new cycle at a reopen: restored late at 11:00 (deadline
        10:30) and reopened at 11:10 in one batch, cycle 1's breach is still published."""
        view = view_of(
            "C-0001",
            "diamond",
            fault("F-1", "reported", "09:00", customer="C-0001"),
            fault("F-1", "acknowledged", "09:02", customer="C-0001"),
            fault("F-1", "restored", "11:00", customer="C-0001"),
            fault("F-1", "reopened", "11:10", customer="C-0001"),
        )
        item = view["open"]["fault"]["F-1"]
        steps = by_kind(due_steps(view, item, rules, at("11:20"), replay=True)[0])
        breach = steps[("sla.breached", "restore", 1, None)]
        assert breach.occurred_at == at("10:30") and "detected_at" not in breach.payload
        assert breach.payload["caused_by"] == fault("F-1", "reported", "09:00", customer="C-0001").event_id
        assert ("sla.escalation_due", "restore", 1, 1) in steps
        assert not [k for k in steps if k[1] == "restore" and k[2] == 2]  # 10 min into cycle 2

    def test_a_breach_a_later_priority_change_undid_is_published(self, rules):
        """P2 complaint, response due 09:30; lowered to P3 at 09:40 (recompute: due 10:00).
        Ticked once at 09:45 the clock is not breached, but it was from 09:30 to 09:40."""
        view = diamond_view(
            ticket("T-1", "opened", "09:00", priority="P2", kind="complaint"),
            ticket("T-1", "priority_changed", "09:40", priority="P3"),
        )
        steps = by_kind(due_steps(view, view["open"]["ticket"]["T-1"], rules, at("09:45"))[0])
        breach = steps[("sla.breached", "response", 1, None)]
        assert breach.occurred_at == at("09:30")
        assert (breach.payload["priority"], breach.payload["target_seconds"]) == ("P2", 1800)
        assert ("sla.escalation_due", "response", 1, 1) in steps

    def test_a_priority_raised_past_the_deadline_breaches_at_it_known_at_the_change(self, rules):
        """P3 -> P2 at 10:39, recompute from the 09:49 opening: the 30-minute P2 response
        deadline was 10:19.  Breached at 10:19, known at 10:39, caused by the change."""
        change = ticket("T-1", "priority_changed", "10:39", priority="P2")
        view = diamond_view(
            ticket("T-1", "opened", "09:49", priority="P3", kind="complaint"),
            ticket("T-1", "assigned", "10:00"),
            change,
        )
        due, _ = due_steps(view, view["open"]["ticket"]["T-1"], rules, at("10:40"), replay=True)
        steps = by_kind(due)
        breach = steps[("sla.breached", "response", 1, None)]
        assert breach.occurred_at == at("10:19") and breach.payload["deadline"] == breach.payload["due_at"]
        assert breach.payload["detected_at"] == "2026-11-23T02:39:00Z"
        assert breach.payload["caused_by"] == change.event_id
        assert (breach.payload["priority"], breach.payload["target_seconds"], breach.payload["policy"]) == (
            "P2",
            1800,
            "diamond v1",
        )
        assert breach.payload["rules_version"] == rules.version
        assert breach.recorded_at == at("10:39")  # a replay records it when it was known
        # the P3 warnings due before the change were published as P3 ones, not known late
        half = steps[("sla.warning_reached", "response", 1, "50%")]
        assert (half.occurred_at, half.payload["priority"]) == (at("10:19"), "P3")
        assert "detected_at" not in half.payload

    def test_a_cause_among_events_at_one_instant_is_the_one_that_set_the_deadline(self, rules):
        """The priority change and a pending status in the same minute: the change caused it."""
        change = ticket("T-1", "priority_changed", "10:39", priority="P2")
        view = diamond_view(
            ticket("T-1", "opened", "09:49", priority="P3", kind="complaint"),
            change,
            ticket("T-1", "status_changed", "10:39", status="pending_customer"),
        )
        due, _ = due_steps(view, view["open"]["ticket"]["T-1"], rules, at("10:40"))
        breach = by_kind(due)[("sla.breached", "response", 1, None)]
        assert breach.payload["caused_by"] == change.event_id

    def test_resolved_exactly_at_the_deadline_is_met_whenever_it_is_ticked(self, rules):
        """An event at the very instant of a deadline comes first: met, no breach."""
        view = diamond_view(fault("F-1", "reported", "09:00"), fault("F-1", "acknowledged", "09:05"))
        for now in (at("09:05"), at("09:06"), at("12:00")):
            steps = by_kind(due_steps(view, view["open"]["fault"]["F-1"], rules, now, replay=True)[0])
            assert ("sla.breached", "response", 1, None) not in steps

    def test_a_replay_takes_a_step_due_at_the_watermark_only_once_past_it(self, rules):
        """In event time the watermark's own instant may still bring events: a step due
        exactly then waits for the next tick past it."""
        view = diamond_view(fault("F-1", "reported", "09:00"))
        item = view["open"]["fault"]["F-1"]
        at_deadline, next_at = due_steps(view, item, rules, at("09:05"), replay=True)
        assert ("sla.breached", "response", 1, None) not in by_kind(at_deadline)
        assert next_at == at("09:05")
        live, _ = due_steps(view, item, rules, at("09:05"))
        assert ("sla.breached", "response", 1, None) in by_kind(live)
