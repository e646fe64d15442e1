"""The closed loops of faults, tickets and orders."""

import pytest

from streams.lifecycles import Accepted, Rejected, closes_unresolved, is_closed, transition


def walk(kind: str, *steps: str, payloads: dict | None = None):
    """Apply event steps from a new item; returns the final outcome."""
    state, outcome = None, None
    for step in steps:
        outcome = transition(kind, state, f"{kind}.{step}", (payloads or {}).get(step, {}))
        if isinstance(outcome, Rejected):
            return outcome
        state = outcome.state
    return outcome


class TestFaultLoop:
    def test_the_full_closed_loop(self):
        """Report, acknowledge, dispatch, repair, restore, confirm, close."""
        outcome = walk(
            "fault",
            "reported",
            "acknowledged",
            "dispatched",
            "repair_started",
            "restored",
            "customer_confirmed",
            "closed",
        )
        assert outcome == Accepted("closed") and is_closed("fault", "closed")

    def test_an_alarm_that_clears_by_itself_can_be_restored_unacknowledged(self):
        """A network alarm may restore before anyone touched it."""
        assert walk("fault", "reported", "restored") == Accepted("restored")

    @pytest.mark.parametrize("then", ["dispatched", "repair_started", "restored"])
    def test_a_fault_back_in_progress_after_waiting_for_the_customer_goes_on(self, then):
        """pending_customer, then in_progress: the repair must still be able to finish."""
        state = None
        for step, payload in [
            ("reported", {}),
            ("status_changed", {"status": "pending_customer"}),
            ("status_changed", {"status": "in_progress"}),
            (then, {}),
        ]:
            outcome = transition("fault", state, f"fault.{step}", payload)
            assert isinstance(outcome, Accepted), outcome
            state = outcome.state

    @pytest.mark.parametrize(
        "before",
        [(), ("acknowledged",), ("dispatched",), ("dispatched", "repair_started"), ("restored", "reopened")],
    )
    def test_a_fault_may_be_closed_without_being_restored(self, before):
        """Duplicates and "no fault found" are closed from any open state, and say so."""
        state = walk("fault", "reported", *before).state
        assert transition("fault", state, "fault.closed", {}) == Accepted("closed")
        assert closes_unresolved("fault", state, "fault.closed")

    @pytest.mark.parametrize("after", ["restored", "customer_confirmed"])
    def test_closing_a_restored_fault_is_a_closure_with_resolution(self, after):
        """Closed once the service is back (confirmed or not): the loop closed resolved."""
        steps = ("reported", "restored") + (("customer_confirmed",) if after == "customer_confirmed" else ())
        state = walk("fault", *steps).state
        assert not closes_unresolved("fault", state, "fault.closed")

    def test_a_closed_fault_cannot_be_closed_again(self):
        """A second close is refused: the loop is closed already."""
        assert walk("fault", "reported", "closed", "closed") == Rejected(
            "fault.closed not allowed in state closed"
        )

    def test_reopening_a_closed_fault(self):
        """A fault that comes back reopens and can be worked again."""
        assert walk("fault", "reported", "restored", "closed", "reopened", "dispatched") == Accepted(
            "dispatched"
        )

    def test_an_event_before_the_report_is_rejected_with_why(self):
        """An acknowledgement for an unknown fault says what is missing."""
        assert transition("fault", None, "fault.acknowledged", {}) == Rejected(
            "fault.acknowledged before fault.reported"
        )

    def test_a_second_report_of_the_same_fault_is_rejected(self):
        """Reporting twice is not a new fault."""
        assert walk("fault", "reported", "reported") == Rejected("fault already exists (state reported)")

    def test_revisit_only_after_closure(self):
        """The follow-up call (回访) happens once the loop is closed."""
        assert isinstance(walk("fault", "reported", "revisit_recorded"), Rejected)
        assert walk("fault", "reported", "restored", "closed", "revisit_recorded") == Accepted("closed")


class TestTicketLoop:
    @pytest.mark.parametrize(
        "status, state",
        [("pending_customer", "pending"), ("pending_third_party", "pending"), ("in_progress", "in_progress")],
    )
    def test_status_changes_move_between_working_and_pending(self, status, state):
        """Pending statuses are one state (the clock pauses); in_progress resumes."""
        outcome = walk("ticket", "opened", "status_changed", payloads={"status_changed": {"status": status}})
        assert outcome == Accepted(state)

    def test_priority_change_keeps_the_state(self):
        """Re-prioritising does not move a ticket along its loop."""
        assert walk("ticket", "opened", "acknowledged", "priority_changed") == Accepted("acknowledged")

    @pytest.mark.parametrize("before", [(), ("acknowledged",), ("status_changed",), ("resolved", "reopened")])
    def test_a_ticket_may_be_closed_without_a_resolution(self, before):
        """Duplicates and withdrawn requests are closed from any open state, and say so."""
        payloads = {"status_changed": {"status": "pending_customer"}}
        state = walk("ticket", "opened", *before, payloads=payloads).state
        assert transition("ticket", state, "ticket.closed", {}) == Accepted("closed")
        assert closes_unresolved("ticket", state, "ticket.closed")

    def test_closing_a_resolved_ticket_is_a_closure_with_resolution(self):
        """Resolved, then closed: the usual closed loop."""
        assert walk("ticket", "opened", "resolved", "closed") == Accepted("closed")
        assert not closes_unresolved("ticket", "resolved", "ticket.closed")

    def test_a_resolved_ticket_may_be_reassigned_and_stays_resolved(self):
        """Reassigned for follow-up or quality review: the ticket is still resolved."""
        assert walk("ticket", "opened", "resolved", "assigned") == Accepted("resolved")
        assert isinstance(walk("ticket", "opened", "resolved", "closed", "assigned"), Rejected)

    def test_reopen_after_resolution(self):
        """The customer disagrees with the resolution: the ticket reopens."""
        assert walk("ticket", "opened", "resolved", "reopened") == Accepted("reopened")


class TestOrderLoop:
    def test_entry_to_acceptance(self):
        """Order entry, resources, provisioning, activation, acceptance (验收)."""
        outcome = walk(
            "order",
            "received",
            "resource_confirmed",
            "provisioning_started",
            "milestone_reached",
            "activated",
            "customer_accepted",
        )
        assert outcome == Accepted("completed") and is_closed("order", "completed")

    def test_no_dispatch_before_resources_are_confirmed(self):
        """Resource confirmation (资源确认) comes before provisioning."""
        assert isinstance(walk("order", "received", "provisioning_started"), Rejected)

    def test_a_shortfall_can_be_resolved(self):
        """After a resource shortfall, resources may still be confirmed."""
        assert walk("order", "received", "resource_shortfall", "resource_confirmed") == Accepted(
            "resource_confirmed"
        )

    def test_cancelled_orders_are_closed_and_final(self):
        """A cancelled order leaves the open list and takes no more work."""
        assert walk("order", "received", "cancelled") == Accepted("cancelled")
        assert isinstance(walk("order", "received", "cancelled", "activated"), Rejected)
