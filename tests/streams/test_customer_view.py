"""Folding events into the one-stop customer view (一站式服务)."""

import copy

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.customer_view import RECENT_CLOSED_LIMIT, fold, new_view, present, view_contains_event
from tests.builders import event, fault, order, ticket


def folded(*events, view=None):
    view = view or new_view("C-1")
    for e in events:
        fold(view, e)
    return view


def without_counters(view):
    view = copy.deepcopy(view)
    view.pop("counters")
    return view


class TestProfile:
    def test_registration_fills_the_archive(self):
        """A registered customer shows name, tier with its label, and account manager."""
        view = folded(event("customer.registered", "C-1"))
        assert view["profile"]["tier"] == "diamond"
        assert view["profile"]["tier_label"] == "钻石"
        assert view["profile"]["account_manager"]["name"] == "李敏"

    def test_a_late_older_update_does_not_overwrite_a_newer_one(self):
        """Per field, the latest change by event time wins whatever the arrival order."""
        newer = event("customer.updated", "C-1", "10:00", region="深圳")
        older = event("customer.updated", "C-1", "09:00", region="广州")
        assert folded(newer, older)["profile"]["region"] == "深圳"
        assert folded(older, newer)["profile"]["region"] == "深圳"


class TestItems:
    def test_a_reported_fault_is_open_with_its_history(self):
        """The hotline's fault shows as open, with state, priority and history."""
        view = folded(fault("F-1", "reported", "09:00", severity="major"))
        item = view["open"]["fault"]["F-1"]
        assert item["state"] == "reported"
        assert item["attributes"]["priority"] == "P2"  # from severity major
        assert [r["event_type"] for r in item["history"]] == ["fault.reported"]

    def test_a_closed_fault_moves_to_recently_closed(self):
        """Closing the loop moves the fault out of the open list."""
        view = folded(
            fault("F-1", "reported", "09:00"),
            fault("F-1", "restored", "10:00"),
            fault("F-1", "closed", "10:30"),
        )
        assert view["open"]["fault"] == {}
        assert view["recent_closed"][0]["id"] == "F-1"
        assert view["recent_closed"][0]["closed_at"] == "2026-11-23T02:30:00.000000+00:00"

    def test_reopening_brings_it_back(self):
        """A reopened fault is open again."""
        view = folded(
            fault("F-1", "reported", "09:00"),
            fault("F-1", "restored", "10:00"),
            fault("F-1", "closed", "10:30"),
            fault("F-1", "reopened", "11:00"),
        )
        assert view["open"]["fault"]["F-1"]["state"] == "reopened"
        assert view["recent_closed"] == [] and view["counters"]["closed_total"] == 0

    def test_an_impossible_transition_is_recorded_not_applied(self):
        """A customer confirming a restore that never happened is kept in history with the reason."""
        view = folded(fault("F-1", "reported", "09:00"), fault("F-1", "customer_confirmed", "09:30"))
        item = view["open"]["fault"]["F-1"]
        assert item["state"] == "reported"
        assert item["history"][1]["outcome"] == "rejected"
        assert "not allowed in state reported" in item["history"][1]["reason"]
        assert view["counters"]["transitions_rejected"] == 1

    def test_a_fault_closed_without_restoration_leaves_the_open_list_and_says_why(self):
        """A duplicate closed straight from reported is closed, with the reason shown on it."""
        view = folded(
            fault("F-1", "reported", "09:00"), fault("F-1", "closed", "09:01", closed_unresolved="duplicate")
        )
        item = view["recent_closed"][0]
        assert (item["id"], item["state"], item["attributes"]["closed_unresolved"]) == (
            "F-1",
            "closed",
            "duplicate",
        )
        assert view["open"]["fault"] == {} and view["counters"]["transitions_rejected"] == 0

    def test_a_ticket_closed_unresolved_without_a_reason_says_other_until_it_reopens(self):
        """No reason given: other; reopened, the mark goes (the next close decides again)."""
        view = folded(ticket("T-1", "opened", "09:00"), ticket("T-1", "closed", "17:48"))
        assert view["recent_closed"][0]["attributes"]["closed_unresolved"] == "other"
        fold(view, ticket("T-1", "reopened", "18:00"))
        assert "closed_unresolved" not in view["open"]["ticket"]["T-1"]["attributes"]

    def test_a_resolved_close_is_not_marked_unresolved(self):
        """Resolved, then closed: a closure with resolution, whatever the close says."""
        view = folded(
            ticket("T-1", "opened", "09:00"),
            ticket("T-1", "resolved", "10:00"),
            ticket("T-1", "closed", "11:00", closed_unresolved="duplicate"),
        )
        assert "closed_unresolved" not in view["recent_closed"][0]["attributes"]

    def test_a_resolved_ticket_reassigned_for_review_stays_resolved(self):
        """Reassignment after resolution is applied and moves nothing."""
        view = folded(
            ticket("T-1", "opened", "09:00"),
            ticket("T-1", "resolved", "10:00"),
            ticket("T-1", "assigned", "10:05", assignee="qa-1"),
        )
        item = view["open"]["ticket"]["T-1"]
        assert (item["state"], item["attributes"]["assignee"]) == ("resolved", "qa-1")
        assert item["history"][-1]["outcome"] == "applied"

    def test_kinds_do_not_collide(self):
        """A fault, a ticket and an order with the same id are different items."""
        view = folded(fault("X-1", "reported"), ticket("X-1", "opened"), order("X-1", "received"))
        assert {k: list(v) for k, v in view["open"].items()} == {
            "fault": ["X-1"],
            "ticket": ["X-1"],
            "order": ["X-1"],
        }

    def test_only_the_latest_closed_items_are_kept(self):
        """The view keeps the last few closed items; older ones are archived by id."""
        events = []
        for n in range(RECENT_CLOSED_LIMIT + 3):
            events += [
                order(f"O-{n}", "received", f"09:{n:02d}"),
                order(f"O-{n}", "cancelled", f"10:{n:02d}"),
            ]
        view = folded(*events)
        assert len(view["recent_closed"]) == RECENT_CLOSED_LIMIT
        assert view["recent_closed"][0]["id"] == f"O-{RECENT_CLOSED_LIMIT + 2}"
        assert "order:O-0" in view["archived_ids"]
        assert fold(view, order("O-0", "revisit_recorded", "11:00", satisfaction=4)).status == "archived"


class TestIdempotence:
    def test_the_same_event_twice_changes_nothing(self):
        """A redelivered event is counted as a duplicate and otherwise ignored."""
        report = fault("F-1", "reported", "09:00")
        once = folded(report)
        twice = folded(report, view=copy.deepcopy(once))
        assert without_counters(twice) == without_counters(once)
        assert twice["counters"]["duplicates_ignored"] == 1
        assert twice["counters"]["events_applied"] == 1

    def test_a_duplicate_customer_event_is_ignored(self):
        """Profile events are de-duplicated too."""
        registered = event("customer.registered", "C-1")
        assert fold(folded(registered), registered).status == "duplicate"


class TestOrderAwareness:
    def test_a_late_event_lands_in_its_place(self):
        """An acknowledgement that arrives after the restore sits before it in history."""
        view = folded(
            fault("F-1", "reported", "09:00"),
            fault("F-1", "restored", "09:40"),
            fault("F-1", "acknowledged", "09:05"),
        )
        item = view["open"]["fault"]["F-1"]
        assert [r["event_type"] for r in item["history"]] == [
            "fault.reported",
            "fault.acknowledged",
            "fault.restored",
        ]
        assert item["state"] == "restored"
        assert item["milestones"]["acknowledged"] == "2026-11-23T01:05:00.000000+00:00"
        assert view["counters"]["late_events"] == 1

    def test_an_event_before_its_opening_event_is_accepted_once_it_arrives(self):
        """Dispatch seen before the report is rejected, then accepted on refold."""
        view = folded(fault("F-1", "dispatched", "09:10"))
        assert view["open"]["fault"]["F-1"]["state"] is None
        fold(view, fault("F-1", "reported", "09:00"))
        item = view["open"]["fault"]["F-1"]
        assert item["state"] == "dispatched"
        assert all(r["outcome"] == "applied" for r in item["history"])


LOOP = [
    fault("F-1", "reported", "09:00"),
    fault("F-1", "acknowledged", "09:02"),
    fault("F-1", "dispatched", "09:10", team="一班"),
    fault("F-1", "repair_started", "09:30"),
    fault("F-1", "restored", "10:15", cause="fibre cut"),
    fault("F-1", "customer_confirmed", "10:40"),
    fault("F-1", "closed", "11:00"),
    fault("F-1", "revisit_recorded", "15:00", satisfaction=4),
    ticket("T-1", "opened", "09:05"),
    ticket("T-1", "status_changed", "09:20", status="pending_customer"),
    ticket("T-1", "priority_changed", "09:21", priority="P1"),
    ticket("T-1", "resolved", "12:00"),
]


class TestSourcePositions:
    def test_a_record_keeps_its_position_or_else_its_arrival(self):
        """The worker's offset is kept on the record; without one, the order of folding."""
        view = new_view("C-1")
        fold(view, fault("F-1", "reported", "09:00"), 41)
        fold(view, fault("F-1", "acknowledged", "09:01"))
        first, second = view["open"]["fault"]["F-1"]["history"]
        assert (first["position"], "arrival" in first) == (41, False)
        assert (second["arrival"], "position" in second) == (1, False)

    def test_records_kept_before_positions_keep_their_order(self):
        """A stored history without positions or arrivals is taken in its stored order."""
        view = folded(
            fault("F-1", "reported", "09:00"),
            ticket("T-1", "opened", "09:00"),
            ticket("T-1", "status_changed", "09:05", status="pending_customer"),
            ticket("T-1", "status_changed", "09:05", status="in_progress"),
        )
        history = view["open"]["ticket"]["T-1"]["history"]
        for record in history:
            record.pop("arrival")  # as stored before this change
        history[1:] = history[:0:-1]  # stored order: in_progress last -> first
        fold(view, ticket("T-1", "acknowledged", "09:05"))
        assert view["open"]["ticket"]["T-1"]["attributes"]["status"] == "pending_customer"

    def test_a_late_event_at_a_shared_instant_is_late_only_if_it_moved_something(self):
        """An event at the latest instant that goes last changes nothing before it: not late."""
        view = folded(fault("F-1", "reported", "09:00"))
        assert fold(view, fault("F-1", "acknowledged", "09:00")).late is False
        assert fold(view, fault("F-1", "status_changed", "08:59", status="in_progress")).late is True


class TestArrivalOrderDoesNotMatter:
    @settings(max_examples=200, deadline=None)
    @given(st.permutations(range(len(LOOP))), st.lists(st.sampled_from(range(len(LOOP))), max_size=4))
    def test_any_arrival_order_with_duplicates_gives_the_in_order_items(self, arrival, dupes):
        """Shuffled and redelivered events, each with its offset, fold to the same items as the ordered
        stream."""
        expected, actual = new_view("C-1"), new_view("C-1")
        for offset, e in enumerate(LOOP):
            fold(expected, e, offset)
        for offset in [*arrival, *dupes]:
            fold(actual, LOOP[offset], offset)
        for key in ("open", "recent_closed", "profile"):
            assert actual[key] == expected[key]


class TestPresentation:
    def test_instants_are_shown_in_local_time(self):
        """Stored UTC, shown in Beijing time with its offset."""
        from zoneinfo import ZoneInfo

        shown = present(folded(fault("F-1", "reported", "09:00")), ZoneInfo("Asia/Shanghai"))
        assert shown["open"]["fault"]["F-1"]["opened_at"] == "2026-11-23T09:00:00.000000+08:00"
        assert shown["open_counts"] == {"fault": 1, "ticket": 0, "order": 0}
        assert "profile_stamps" not in shown

    def test_a_folded_event_is_found_in_the_view(self):
        """Read-your-writes: the API can tell when an event has been folded."""
        report = fault("F-1", "reported")
        assert view_contains_event(folded(report), report.event_id)
        assert not view_contains_event(folded(), report.event_id)


def sla_event(event_type, item="F-1", when="10:00", **payload):
    body = {
        "item_kind": "fault",
        "metric": "restore",
        "cycle": 1,
        "due_at": "2026-11-23T02:00:00Z",
        "policy": "diamond v1",
    } | payload
    return event(event_type, item, when, source="system", **body)


class TestSlaEvents:
    def test_a_breach_is_logged_on_its_item(self):
        """The timer's breach event shows in the item's SLA log."""
        view = folded(
            fault("F-1", "reported", "09:00"), sla_event("sla.breached", deadline="2026-11-23T02:00:00Z")
        )
        log = view["open"]["fault"]["F-1"]["sla_log"]
        assert [r["event_type"] for r in log] == ["sla.breached"]

    def test_the_same_step_twice_is_logged_once(self):
        """A timer firing twice for one step changes nothing the second time."""
        step = sla_event("sla.escalation_due", step=1, role="account_manager")
        view = folded(fault("F-1", "reported", "09:00"), step, step)
        assert len(view["open"]["fault"]["F-1"]["sla_log"]) == 1
        assert view["counters"]["duplicates_ignored"] == 1

    def test_an_sla_event_for_an_unknown_item_is_not_applied(self):
        """No item, nothing to attach the SLA event to."""
        assert fold(new_view("C-1"), sla_event("sla.breached", deadline="x")).status == "archived"
