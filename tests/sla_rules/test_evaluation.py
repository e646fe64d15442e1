"""Clock semantics, read as the domain: lifecycles, pauses, priority changes, reopens, orders."""

from __future__ import annotations

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from sla_rules import DEFAULT_RULES_PATH, ItemFacts, evaluate, load_rules, parse_rules

SH = ZoneInfo("Asia/Shanghai")
RULES = load_rules()
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=SH)  # a Monday, 09:00 in Shanghai
H = dt.timedelta(hours=1)
M = dt.timedelta(minutes=1)


def story(*steps, start=T0):
    """Events from (minutes after start, event_type, payload) triples; the source sent them in that order."""
    return [
        {
            "event_id": f"ev-{i:03d}",
            "event_type": kind,
            "occurred_at": start + minutes * M,
            "payload": payload,
            "customer_id": "C-1",
            "entity_id": "X-1",
            "source": "test",
            "actor": "tester",
            "position": i,
        }
        for i, (minutes, kind, payload) in enumerate(steps)
    ]


def ev(facts, history, at_minutes, rules=RULES, start=T0):
    return evaluate(facts, history, rules, start + at_minutes * M)


DIAMOND_FAULT = ItemFacts("C-1", "diamond", "fault", entity_id="F-1")
GOLD_FAULT = ItemFacts("C-2", "gold", "fault", entity_id="F-2")
BUSINESS_COMPLAINT = ItemFacts("C-3", "business", "complaint", entity_id="T-3")
PLATINUM_ORDER = ItemFacts("C-4", "platinum", "order", entity_id="O-4")


class TestFaultLifecycle:
    HISTORY = story(
        (0, "fault.reported", {"severity": "critical", "summary": "fibre cut", "service": "MPLS"}),
        (3, "fault.acknowledged", {}),
        (10, "fault.dispatched", {"team": "line-3"}),
        (90, "fault.restored", {"cause": "fibre"}),
        (100, "fault.customer_confirmed", {}),
        (180, "fault.closed", {"resolution": "spliced"}),
        (1200, "fault.revisit_recorded", {"satisfaction": 5}),
    )

    # (metric, state, met after minutes, target minutes) for a diamond P1 fault on 7x24
    CASES = [
        ("response", "met", 3, 5),
        ("restore", "met", 90, 120),
        ("resolve", "met", 180, 240),
        ("revisit", "met", 1200, 1440),
    ]

    @pytest.mark.parametrize(("metric", "state", "met_after", "target"), CASES, ids=[c[0] for c in CASES])
    def test_closed_loop_fault_meets_every_clock(self, metric, state, met_after, target):
        """A diamond fault handled on time meets response, restore, resolve and revisit."""
        status = ev(DIAMOND_FAULT, self.HISTORY, 2000).metrics[metric]
        assert (status.state, status.met_at, status.target) == (state, T0 + met_after * M, target * M)
        assert status.policy_id == "diamond" and status.calendar_id == "24x7"

    def test_critical_severity_means_p1(self):
        """Without an explicit priority, severity critical maps to P1 (minor to P3)."""
        assert ev(DIAMOND_FAULT, self.HISTORY, 1).priority == "P1"
        minor = story((0, "fault.reported", {"severity": "minor", "summary": "s", "service": "s"}))
        assert ev(DIAMOND_FAULT, minor, 1).priority == "P3"

    def test_late_acknowledgement_is_a_breach_met_late(self):
        """Acknowledged at 20 min against a 15 min gold target: breached at 15 min, met at 20."""
        history = story(
            (0, "fault.reported", {"severity": "critical", "summary": "s", "service": "s"}),
            (20, "fault.acknowledged", {}),
        )
        status = ev(GOLD_FAULT, history, 30).metrics["response"]
        assert status.state == "breached"
        assert status.breached_at == T0 + 15 * M and status.met_at == T0 + 20 * M
        assert status.overdue == 5 * M

    def test_restore_implies_response(self):
        """A fault restored without an acknowledgement has its response met at the restore."""
        history = story(
            (0, "fault.reported", {"severity": "critical", "summary": "s", "service": "s"}),
            (4, "fault.restored", {}),
        )
        assert ev(DIAMOND_FAULT, history, 10).metrics["response"].met_at == T0 + 4 * M

    def test_revisit_starts_only_at_closure(self):
        """The revisit (回访) clock is absent before closure and due one day after it."""
        assert "revisit" not in ev(DIAMOND_FAULT, self.HISTORY, 170).metrics
        status = ev(DIAMOND_FAULT, self.HISTORY, 181).metrics["revisit"]
        assert status.started_at == T0 + 180 * M and status.deadline == T0 + 180 * M + 24 * H


class TestWarningsAndLadder:
    HISTORY = story((0, "fault.reported", {"severity": "critical", "summary": "s", "service": "s"}))

    # (label, due after minutes) for diamond P1 restore: target 2h, warnings 50/75/90 %, ladder
    # 0/30m/1h/2h after breach
    CASES = [
        ("50%", 60),
        ("75%", 90),
        ("90%", 108),
        ("account_manager", 120),
        ("department_head", 150),
        ("branch_leader", 180),
        ("executive", 240),
    ]

    @pytest.mark.parametrize(("label", "due"), CASES, ids=[c[0] for c in CASES])
    def test_due_instants(self, label, due):
        """Each warning and escalation step is due when the elapsed business time reaches it."""
        status = ev(DIAMOND_FAULT, self.HISTORY, 0).metrics["restore"]
        steps = {s.label: s for s in status.warnings + status.escalations}
        assert steps[label].due_at == T0 + due * M

    def test_next_change_is_the_next_threshold(self):
        """next_change_at is the earliest future warning/breach/step over all metrics."""
        evaluation = ev(DIAMOND_FAULT, self.HISTORY, 61)
        assert evaluation.metrics["restore"].next_change_at == T0 + 90 * M  # 75% of 2h
        assert evaluation.metrics["response"].next_change_at == T0 + 65 * M  # 5m target + 1h: branch leader
        assert evaluation.metrics["resolve"].next_change_at == T0 + 120 * M  # 50% of 4h
        assert evaluation.next_change_at == T0 + 65 * M

    def test_reached_flags(self):
        """Steps at or before the evaluation instant are marked reached."""
        status = ev(DIAMOND_FAULT, self.HISTORY, 150).metrics["restore"]
        assert [s.reached for s in status.escalations] == [True, True, False, False]
        assert status.state == "breached"


class TestPauses:
    def test_pause_reasons_are_kept_apart(self):
        """Customer-caused and third-party waiting are reported separately and push the deadline."""
        history = story(
            (0, "ticket.opened", {"kind": "complaint", "priority": "P1", "subject": "bill"}),
            (60, "ticket.status_changed", {"status": "pending_customer", "reason": "awaiting invoice copy"}),
            (120, "ticket.status_changed", {"status": "pending_third_party", "reason": "bank"}),
            (240, "ticket.status_changed", {"status": "in_progress"}),
        )
        status = ev(BUSINESS_COMPLAINT, history, 300).metrics["resolve"]
        # Mon 09:00-10:00 counts; 10:00-11:00 customer (1h); 11:00-13:00 third party = 1h of business
        # time (lunch 12:00-13:30 is not working time anyway); at 14:00 elapsed = 1h + 13:30-14:00.
        assert status.paused_by_reason == {"pending_customer": H, "pending_third_party": H}
        assert status.elapsed == H + 30 * M
        unpaused = ev(BUSINESS_COMPLAINT, history[:1], 0).metrics["resolve"]
        assert status.deadline > unpaused.deadline

    def test_response_is_not_paused(self):
        """A pending status pauses resolve but never the response clock."""
        history = story(
            (0, "ticket.opened", {"kind": "complaint", "priority": "P1", "subject": "s"}),
            (10, "ticket.status_changed", {"status": "pending_customer"}),
        )
        evaluation = ev(BUSINESS_COMPLAINT, history, 30)
        assert evaluation.metrics["response"].paused is False
        assert evaluation.metrics["resolve"].paused is True

    def test_open_pause_has_no_deadline_and_no_next_change(self):
        """While paused, the deadline is undetermined and nothing changes until the next event."""
        history = story(
            (0, "ticket.opened", {"kind": "complaint", "priority": "P1", "subject": "s"}),
            (10, "ticket.status_changed", {"status": "pending_customer", "reason": "on holiday"}),
        )
        status = ev(BUSINESS_COMPLAINT, history, 30).metrics["resolve"]
        assert (status.paused, status.pause_reason, status.pause_detail) == (
            True,
            "pending_customer",
            "on holiday",
        )
        assert status.deadline is None and status.next_change_at is None
        assert status.elapsed == 10 * M and status.remaining == status.target - 10 * M


MODES = """
schema = 1
version = "modes"
[calendars."24x7"]
always_on = true
[[policies]]
id = "p"
version = 1
effective_from = 2026-01-01
calendar = "24x7"
priority_change = "{priority_change}"
reopen = "{reopen}"
pause_statuses = {pause_statuses}
targets.complaint.P1 = {{ response = "10m", resolve = "2h", revisit = "1d" }}
targets.complaint.P3 = {{ response = "1h", resolve = "10h", revisit = "1d" }}
# other kinds are not used here; the catch-all must still cover them
targets.fault.P1 = {{ response = "1h" }}
targets.service_request.P1 = {{ response = "1h" }}
targets.inquiry.P1 = {{ response = "1h" }}
targets.order.normal = {{ provision = "1d" }}
[[rules]]
policy = "p"
"""


def mode_rules(
    priority_change="recompute", reopen="resume", pause_statuses=("pending_customer", "pending_third_party")
):
    statuses = "[" + ", ".join(f'"{p}"' for p in pause_statuses) + "]"
    rules, problems = parse_rules(
        MODES.format(priority_change=priority_change, reopen=reopen, pause_statuses=statuses)
    )
    assert not problems, problems
    return rules


TICKET = ItemFacts("C-9", "gold", "complaint", entity_id="T-9")


class TestPauseConfiguration:
    HISTORY = story(
        (0, "ticket.opened", {"kind": "complaint", "priority": "P1", "subject": "s"}),
        (10, "ticket.status_changed", {"status": "pending_third_party", "reason": "carrier"}),
        (40, "ticket.status_changed", {"status": "pending_customer", "reason": "access"}),
        (60, "ticket.status_changed", {"status": "in_progress"}),
    )

    # (pausing statuses of the policy, elapsed at 90 min, paused time by reason)
    CASES = [
        (
            ("pending_customer", "pending_third_party"),
            40,
            {"pending_third_party": 30, "pending_customer": 20},
        ),
        (("pending_customer",), 70, {"pending_customer": 20}),
    ]

    @pytest.mark.parametrize(
        ("statuses", "elapsed", "paused"), CASES, ids=["both pause", "only customer pauses"]
    )
    def test_which_statuses_pause_is_configurable(self, statuses, elapsed, paused):
        """Only the policy's pausing statuses stop the clock; each is reported under its own reason."""
        status = ev(TICKET, self.HISTORY, 90, rules=mode_rules(pause_statuses=statuses)).metrics["resolve"]
        assert status.elapsed == elapsed * M
        assert status.paused_by_reason == {k: v * M for k, v in paused.items()}


class TestPriorityChange:
    HISTORY = story(
        (0, "ticket.opened", {"kind": "complaint", "priority": "P3", "subject": "s"}),
        (30, "ticket.status_changed", {"status": "pending_customer"}),
        (60, "ticket.status_changed", {"status": "in_progress"}),
        (180, "ticket.priority_changed", {"priority": "P1", "reason": "customer escalated"}),
    )

    # (mode, deadline minutes after opening, state at 200 min)
    CASES = [
        # 2h target from the original start, plus the 30 min pause: 150 min (already passed -> breached)
        ("recompute", 150, "breached"),
        # 2h target counted from the change at 180 min: 300 min
        ("from_change", 300, "pending"),
    ]

    @pytest.mark.parametrize(("mode", "deadline", "state"), CASES, ids=[c[0] for c in CASES])
    def test_upgrade_to_p1(self, mode, deadline, state):
        """P3 -> P1 after 3 hours: recompute from the start, or a fresh target from the change; pauses
        kept."""
        status = ev(TICKET, self.HISTORY, 200, rules=mode_rules(priority_change=mode)).metrics["resolve"]
        assert status.target == 2 * H
        assert status.deadline == T0 + deadline * M
        assert status.state == state
        assert status.paused_by_reason == {"pending_customer": 30 * M}

    def test_priority_change_does_not_touch_met_clocks(self):
        """Response met before the change keeps its old target and stays met."""
        history = self.HISTORY[:1] + story((20, "ticket.acknowledged", {})) + self.HISTORY[1:]
        for e, i in zip(history, range(100)):
            e["event_id"] = f"x{i}"
        status = ev(TICKET, history, 200, rules=mode_rules()).metrics["response"]
        assert (status.state, status.target) == ("met", H)


class TestReopen:
    HISTORY = story(
        (0, "ticket.opened", {"kind": "complaint", "priority": "P1", "subject": "s"}),
        (60, "ticket.resolved", {"resolution": "fixed"}),
        (120, "ticket.closed", {}),
        (300, "ticket.reopened", {"reason": "not fixed"}),
    )

    # (mode, cycle, elapsed at 330 min, deadline minutes, previous cycles)
    CASES = [
        ("resume", 1, 90, 360, 0),  # 60 min used, resumes at 300: 60 min left -> 360
        ("new_cycle", 2, 30, 420, 1),  # full 2h from the reopen
    ]

    @pytest.mark.parametrize(
        ("mode", "cycle", "elapsed", "deadline", "previous"), CASES, ids=[c[0] for c in CASES]
    )
    def test_reopened_resolution_clock(self, mode, cycle, elapsed, deadline, previous):
        """Reopen resumes the stopped resolution clock or starts a new cycle, per policy."""
        status = ev(TICKET, self.HISTORY, 330, rules=mode_rules(reopen=mode)).metrics["resolve"]
        assert (status.cycle, status.elapsed, status.deadline) == (cycle, elapsed * M, T0 + deadline * M)
        assert status.state == "pending" and status.met_at is None
        assert len(status.previous_cycles) == previous

    def test_reopen_voids_the_revisit_until_the_next_closure(self):
        """A reopened ticket has no revisit clock until it is closed again."""
        evaluation = ev(TICKET, self.HISTORY, 330, rules=mode_rules())
        assert "revisit" not in evaluation.metrics and len(evaluation.voided) == 1
        assert evaluation.voided[0].state == "cancelled" and evaluation.voided[0].next_change_at is None
        closed_again = self.HISTORY + story(
            (400, "ticket.resolved", {}), (410, "ticket.closed", {}), start=T0
        )
        for i, e in enumerate(closed_again):
            e["event_id"] = f"y{i}"
        assert ev(TICKET, closed_again, 420, rules=mode_rules()).metrics["revisit"].started_at == T0 + 410 * M


class TestOrders:
    HISTORY = story(
        (0, "order.received", {"product": "MPLS VPN", "urgency": "urgent", "sites": 3}),
        (60, "order.resource_confirmed", {}),
        (2 * 1440, "order.activated", {}),
        (3 * 1440, "order.customer_accepted", {}),
    )

    def test_provision_then_acceptance_then_revisit(self):
        """Entry -> activation, activation -> acceptance, then the revisit clock (platinum urgent: 7d, 2d)."""
        evaluation = ev(PLATINUM_ORDER, self.HISTORY, 3 * 1440 + 60)
        assert evaluation.metrics["provision"].state == "met"
        assert evaluation.metrics["provision"].target == dt.timedelta(days=7)
        assert evaluation.metrics["acceptance"].started_at == T0 + 2 * 1440 * M
        assert evaluation.metrics["acceptance"].state == "met"
        assert evaluation.metrics["revisit"].state == "pending"

    def test_cancelled_order_is_neither_met_nor_breached(self):
        """Cancelling stops every running clock as cancelled, even an overdue one."""
        history = self.HISTORY[:2] + story((20 * 1440, "order.cancelled", {"reason": "budget"}))
        history[-1]["event_id"] = "cancel"
        status = ev(PLATINUM_ORDER, history, 21 * 1440).metrics["provision"]
        assert status.state == "cancelled" and status.breached_at is None
        assert status.next_change_at is None


class TestPolicyVersions:
    CONTRACT = ItemFacts("C-0001", "gold", "fault", entity_id="F-9")
    REPORTED = {"severity": "critical", "summary": "s", "service": "s"}

    def test_clock_keeps_the_version_it_started_under(self):
        """A fault reported on 31 Dec keeps contract v1 (1h30m restore) when evaluated in 2027."""
        start = dt.datetime(2026, 12, 31, 23, 0, tzinfo=SH)
        history = story((0, "fault.reported", self.REPORTED), start=start)
        status = ev(self.CONTRACT, history, 120, start=start).metrics["restore"]
        assert (status.policy_version, status.target) == (1, 90 * M)

    def test_new_items_get_the_new_version(self):
        """A fault reported on 1 Jan 2027 gets contract v2 (1h restore)."""
        start = dt.datetime(2027, 1, 1, 0, 0, tzinfo=SH)
        history = story((0, "fault.reported", self.REPORTED), start=start)
        status = ev(self.CONTRACT, history, 10, start=start).metrics["restore"]
        assert (status.policy_version, status.target) == (2, H)


class TestDeterminism:
    HISTORY = story(
        (0, "ticket.opened", {"kind": "complaint", "priority": "P2", "subject": "s"}),
        (5, "ticket.acknowledged", {}),
        (5, "ticket.status_changed", {"status": "pending_customer"}),
        (5, "ticket.priority_changed", {"priority": "P1"}),
        (90, "ticket.status_changed", {"status": "in_progress"}),
        (500, "ticket.resolved", {}),
    )

    def test_arrival_order_is_irrelevant(self):
        """Reversed arrival of events that carry their source position gives the identical evaluation."""
        assert (
            ev(TICKET, self.HISTORY, 600).to_dict() == ev(TICKET, list(reversed(self.HISTORY)), 600).to_dict()
        )

    def test_duplicates_are_ignored(self):
        """At-least-once delivery: a redelivered event (same event_id) counts once."""
        assert (
            ev(TICKET, self.HISTORY + self.HISTORY[2:4], 600).to_dict()
            == ev(TICKET, self.HISTORY, 600).to_dict()
        )

    def test_conflicting_duplicates_resolve_deterministically(self):
        """Two different events under one event_id give the same result in either arrival order."""
        clash = dict(self.HISTORY[4], occurred_at=T0 + 95 * M)
        assert (
            ev(TICKET, self.HISTORY + [clash], 600).to_dict()
            == ev(TICKET, [clash] + self.HISTORY, 600).to_dict()
        )

    def test_future_events_are_ignored(self):
        """Events after the evaluation instant do not count."""
        assert ev(TICKET, self.HISTORY, 100).to_dict() == ev(TICKET, self.HISTORY[:5], 100).to_dict()

    def test_to_dict_is_json(self):
        """The output serialises to JSON with ISO instants and seconds."""
        data = json.loads(json.dumps(ev(TICKET, self.HISTORY, 600).to_dict()))
        resolve = data["metrics"]["resolve"]
        assert resolve["state"] in {"met", "breached"}
        assert resolve["deadline"].endswith("Z") and isinstance(resolve["elapsed_seconds"], float)


class TestFaultReopen:
    REPORTED = {"severity": "major", "summary": "packet loss", "service": "DIA"}
    HISTORY = story(
        (0, "fault.reported", REPORTED),
        (2, "fault.acknowledged", {}),
        (60, "fault.restored", {}),
        (90, "fault.closed", {}),
        (150, "fault.reopened", {"reason": "loss again"}),
    )

    # (who, facts, restore cycle, restore elapsed at 180 min, restore deadline minutes)
    CASES = [
        # diamond P2 restore 4h, reopen = resume: 60 min used before, 30 min since 150
        ("diamond tier resumes", DIAMOND_FAULT, 1, 90, 150 + 180),
        # contract C-0001 P2 restore 3h, reopen = new_cycle: a fresh 3 h from 150
        ("contract starts a new cycle", ItemFacts("C-0001", "diamond", "fault"), 2, 30, 150 + 180),
    ]

    @pytest.mark.parametrize(
        ("who", "facts", "cycle", "elapsed", "deadline"), CASES, ids=[c[0] for c in CASES]
    )
    def test_reopened_fault_runs_restore_and_resolve_again(self, who, facts, cycle, elapsed, deadline):
        """A reopened fault has restore and resolve pending again; the revisit waits for the next closure."""
        evaluation = ev(facts, self.HISTORY, 180)
        restore = evaluation.metrics["restore"]
        assert (restore.cycle, restore.elapsed, restore.deadline) == (cycle, elapsed * M, T0 + deadline * M)
        assert evaluation.metrics["resolve"].state == "pending"
        assert evaluation.metrics["response"].state == "met"
        assert "revisit" not in evaluation.metrics


class TestOpeningEvent:
    def test_ticket_kind_comes_from_the_opening_event(self):
        """ticket.opened carries the kind; it wins over inconsistent facts and the trace says so."""
        history = story((0, "ticket.opened", {"kind": "inquiry", "priority": "P2", "subject": "s"}))
        evaluation = ev(ItemFacts("C-3", "business", "complaint"), history, 1)
        assert evaluation.kind == "inquiry"
        assert evaluation.metrics["resolve"].target == 15 * H  # business inquiry P2
        assert any("overrides" in note for note in evaluation.notes)

    def test_no_events_no_clocks(self):
        """Before the opening event nothing runs and nothing is due."""
        evaluation = ev(BUSINESS_COMPLAINT, [], 0)
        assert evaluation.metrics == {} and evaluation.next_change_at is None


class TestOrderPauses:
    def test_pending_customer_pauses_provision_not_acceptance(self):
        """Waiting for the customer's site access pauses provisioning; acceptance is not paused."""
        history = story(
            (0, "order.received", {"product": "leased line", "urgency": "extra_urgent"}),
            (60, "order.status_changed", {"status": "pending_customer", "reason": "no site access"}),
            (600, "order.status_changed", {"status": "in_progress"}),
            (700, "order.activated", {}),
            (710, "order.status_changed", {"status": "pending_customer", "reason": "tester away"}),
        )
        evaluation = ev(PLATINUM_ORDER, history, 800)
        provision = evaluation.metrics["provision"]
        assert provision.paused_by_reason == {"pending_customer": 540 * M}
        assert provision.elapsed == 160 * M and provision.state == "met"
        acceptance = evaluation.metrics["acceptance"]
        assert acceptance.paused is False and acceptance.elapsed == 100 * M


def cancelling_rules():
    """The shipped rules, with the diamond policy cancelling the clocks of items closed unresolved."""
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    marker = 'id = "diamond"\nversion = 1\n'
    assert marker in text
    rules, problems = parse_rules(text.replace(marker, marker + 'close_unresolved = "cancel"\n', 1))
    assert not problems, problems
    return rules


class TestCloseWithoutResolution:
    REPORTED = {"severity": "critical", "summary": "alarm", "service": "MPLS"}

    def test_a_duplicate_closed_under_stop_stops_every_running_clock_at_the_close(self):
        """Default policy: closed unresolved after 30 min, each clock stops there, met or breached."""
        history = story(
            (0, "fault.reported", self.REPORTED), (30, "fault.closed", {"closed_unresolved": "duplicate"})
        )
        evaluation = ev(DIAMOND_FAULT, history, 2000)
        states = {name: (m.state, m.met_at) for name, m in evaluation.metrics.items()}
        assert states == {
            "response": ("breached", T0 + 30 * M),  # 5 min target, nobody answered
            "restore": ("met", T0 + 30 * M),
            "resolve": ("met", T0 + 30 * M),
            "revisit": ("breached", None),
        }  # a closure: the follow-up call is due
        assert any("closed without resolution (duplicate)" in note for note in evaluation.notes)
        assert any("close_unresolved = stop" in line for line in evaluation.metrics["restore"].trace)

    def test_new_to_closed_after_hours_stops_the_clocks_instead_of_leaving_them_running(self):
        """New -> Closed after 8.8 h on business hours: response breached at the close, resolve met,
        nothing pending."""
        history = story(
            (0, "ticket.opened", {"kind": "complaint", "priority": "P2", "subject": "s"}),
            (528, "ticket.closed", {"closed_unresolved": "withdrawn"}),
        )
        evaluation = ev(BUSINESS_COMPLAINT, history, 5 * 1440)
        response, resolve = evaluation.metrics["response"], evaluation.metrics["resolve"]
        assert (response.state, response.met_at) == ("breached", T0 + 528 * M)
        assert (resolve.state, resolve.met_at, resolve.next_change_at) == ("met", T0 + 528 * M, None)
        assert resolve.elapsed == 7 * H + 18 * M  # 09:00-12:00 and 13:30-17:48 on a Monday

    def test_opened_and_closed_in_the_same_minute_meets_every_clock(self):
        """A ticket opened by mistake and closed at once: met with nothing elapsed."""
        history = story(
            (0, "ticket.opened", {"kind": "complaint", "priority": "P2", "subject": "s"}),
            (0, "ticket.closed", {"closed_unresolved": "duplicate"}),
        )
        evaluation = ev(BUSINESS_COMPLAINT, list(reversed(history)), 60)
        for name in ("response", "resolve"):
            status = evaluation.metrics[name]
            assert (status.state, status.elapsed) == ("met", dt.timedelta(0)), name

    def test_under_cancel_running_clocks_are_cancelled_and_no_revisit_starts(self):
        """A policy that cancels: restore and resolve count nowhere; the met response stays met."""
        history = story(
            (0, "fault.reported", self.REPORTED),
            (3, "fault.acknowledged", {}),
            (30, "fault.closed", {"closed_unresolved": "no_fault_found"}),
        )
        evaluation = ev(DIAMOND_FAULT, history, 2000, rules=cancelling_rules())
        states = {name: (m.state, m.cancelled_at) for name, m in evaluation.metrics.items()}
        assert states == {
            "response": ("met", None),
            "restore": ("cancelled", T0 + 30 * M),
            "resolve": ("cancelled", T0 + 30 * M),
        }
        assert evaluation.next_change_at is None
        assert any("revisit: not started" in note for note in evaluation.notes)

    def test_a_cancelled_item_reopened_runs_its_clocks_again(self):
        """Not a duplicate after all: the reopen brings back restore, resolve and an unanswered response."""
        history = story(
            (0, "fault.reported", self.REPORTED),
            (30, "fault.closed", {"closed_unresolved": "duplicate"}),
            (60, "fault.reopened", {"reason": "a different fault"}),
        )
        evaluation = ev(DIAMOND_FAULT, history, 90, rules=cancelling_rules())
        restore, response = evaluation.metrics["restore"], evaluation.metrics["response"]
        assert (restore.state, restore.elapsed, restore.cancelled_at) == ("pending", 60 * M, None)
        assert (response.state, response.elapsed) == ("breached", 60 * M)

    def test_a_closure_after_the_restoration_is_a_closure_under_either_mode(self):
        """close_unresolved only concerns items never restored: this one closes as usual."""
        history = story(
            (0, "fault.reported", self.REPORTED),
            (60, "fault.restored", {}),
            (90, "fault.closed", {"closed_unresolved": "duplicate"}),
        )
        for rules in (RULES, cancelling_rules()):
            evaluation = ev(DIAMOND_FAULT, history, 100, rules=rules)
            assert evaluation.metrics["restore"].met_at == T0 + 60 * M
            assert evaluation.metrics["resolve"].state == "met"
            assert evaluation.metrics["revisit"].state == "pending"

    def test_a_reopened_fault_closed_before_its_new_restoration_is_closed_unresolved(self):
        """Restored, reopened, then closed: the second close is without resolution."""
        history = story(
            (0, "fault.reported", self.REPORTED),
            (60, "fault.restored", {}),
            (70, "fault.reopened", {"reason": "again"}),
            (100, "fault.closed", {"closed_unresolved": "other"}),
        )
        evaluation = ev(DIAMOND_FAULT, history, 120, rules=cancelling_rules())
        assert evaluation.metrics["restore"].state == "cancelled"
        assert evaluation.metrics["restore"].elapsed == 90 * M
