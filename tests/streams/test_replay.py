"""Replaying a recorded stream in event time gives the SLA timers' answer, every time."""

import pytest

from sla_rules import load_rules
from streams.replay import replay
from tests.builders import at, event, fault, ticket


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def recorded_day():
    """A diamond customer's late-acknowledged fault and a gold customer's paused ticket."""
    return [
        event("customer.registered", "C-D", customer="C-D", tier="diamond"),
        event("customer.registered", "C-G", customer="C-G", tier="gold"),
        fault("F-1", "reported", "09:00", customer="C-D"),
        fault("F-1", "acknowledged", "09:07", customer="C-D"),
        ticket("T-1", "opened", "09:30", customer="C-G", priority="P1"),
        ticket("T-1", "acknowledged", "09:35", customer="C-G"),
        ticket("T-1", "status_changed", "10:00", customer="C-G", status="pending_customer"),
        fault("F-1", "restored", "10:30", customer="C-D"),
        fault("F-1", "closed", "11:00", customer="C-D"),
        event("customer.updated", "C-D", "23:50", customer="C-D", region="广州"),
        event("customer.updated", "C-G", "23:50", customer="C-G", region="深圳"),
    ]


def lines(events):
    return [e.to_bytes() for e in events]


def summary(result):
    return [
        (
            s.customer_id,
            s.entity_id,
            s.event_type,
            s.payload["metric"],
            s.payload.get("threshold") or s.payload.get("step"),
            s.occurred_at.strftime("%H:%M"),
        )
        for s in result.steps
    ]


class TestReplay:
    def test_a_late_acknowledgement_breaches_response_and_escalates(self, rules):
        """Diamond P1 acknowledged after 7 minutes: the 5-minute response clock breached."""
        steps = summary(replay(lines(recorded_day()), rules))
        response = [s for s in steps if s[1] == "F-1" and s[3] == "response"]
        assert ("C-D", "F-1", "sla.breached", "response", None, "01:05") in response
        assert ("C-D", "F-1", "sla.escalation_due", "response", 1, "01:05") in response

    def test_a_ticket_pending_the_customer_does_not_alert_its_resolution(self, rules):
        """Gold P1 complaint parked with the customer: no resolve warning while paused."""
        steps = summary(replay(lines(recorded_day()), rules))
        assert not [s for s in steps if s[1] == "T-1" and s[3] == "resolve"]

    def test_replaying_twice_gives_identical_step_events(self, rules):
        """Same stream, same events: ids, instants and payloads, in the same order."""
        first = replay(lines(recorded_day()), rules)
        second = replay(lines(recorded_day()), rules)
        assert [s.to_wire() for s in first.steps] == [s.to_wire() for s in second.steps]
        assert first.steps

    def test_other_customers_interleaving_does_not_change_the_steps(self, rules):
        """Interleaving across customers (as partitions do) leaves each one's steps alone."""
        day = recorded_day()
        shuffled = day[:2] + sorted(day[2:], key=lambda e: (e.customer_id != "C-G", e.occurred_at))
        assert sorted(summary(replay(lines(day), rules))) == sorted(summary(replay(lines(shuffled), rules)))


class TestEventsAtOneInstant:
    def test_a_file_listing_the_acknowledgement_before_its_report_replays_as_acknowledged(self, rules):
        """Same minute, ack first in the file, random ids: no response breach, every time."""
        import uuid

        for _ in range(20):
            day = [
                event("customer.registered", "C-D", customer="C-D", tier="diamond"),
                fault("F-1", "acknowledged", "09:00", customer="C-D", event_id=str(uuid.uuid4())),
                fault("F-1", "reported", "09:00", customer="C-D", event_id=str(uuid.uuid4())),
                # a replay yields what is due before the watermark: move it past 09:00
                event("customer.updated", "C-D", "09:30", customer="C-D", region="广州"),
            ]
            result = replay(lines(day), rules)
            assert [s[2] for s in summary(result) if s[3] == "response"] == ["sla.met"]
            item = result.views["C-D"]["open"]["fault"]["F-1"]
            assert [r["position"] for r in item["history"]] == [3, 2]  # line numbers

    def test_the_line_order_decides_between_events_the_lifecycle_allows_either_way(self, rules):
        """Two assignments in one minute: the later line is the assignee."""
        day = [
            ticket("T-1", "opened", "09:00", customer="C-G"),
            ticket("T-1", "assigned", "09:30", customer="C-G", assignee="zz-first"),
            ticket("T-1", "assigned", "09:30", customer="C-G", assignee="aa-second"),
        ]
        for listed in (day, [day[0], day[2], day[1]]):
            item = replay(lines(listed), rules).views["C-G"]["open"]["ticket"]["T-1"]
            assert item["attributes"]["assignee"] == listed[2].payload["assignee"]


class TestTheEndOfTheInput:
    def test_steps_due_at_the_last_instant_wait_for_an_event_past_it(self, rules):
        """A worker cannot know its input ended, nor that nothing else happened at its
        watermark's instant: a replay yields what is due before the last instant, as
        the worker would; a later event (here a profile update) brings the rest."""
        day = [
            event("customer.registered", "C-D", "08:00", customer="C-D", tier="diamond"),
            fault("F-1", "reported", "09:00", customer="C-D"),
            fault("F-1", "acknowledged", "09:03", customer="C-D"),
        ]
        ended = [s[2:] for s in summary(replay(lines(day), rules)) if s[3] == "response"]
        assert ended == [("sla.warning_reached", "response", "50%", "01:02")]
        later = day + [event("customer.updated", "C-D", "09:30", customer="C-D", region="广州")]
        assert [s[2:] for s in summary(replay(lines(later), rules)) if s[3] == "response"] == [
            ("sla.warning_reached", "response", "50%", "01:02"),
            ("sla.met", "response", None, "01:03"),
        ]


class TestBatchesOfAReplayClockWorker:
    def test_a_resolve_and_a_reopen_in_one_minute_met_the_clock_in_between(self, rules):
        """Resolved and reopened at 10:00 (a source recording to the minute; gold resumes):
        the clock was met at 10:00, and the met is published even though both events
        share the instant; the 11:00 resolve meets the resumed clock again, same step."""
        day = [
            event("customer.registered", "C-G", "08:00", customer="C-G", tier="gold"),
            ticket("T-1", "opened", "09:00", customer="C-G", priority="P1"),
            ticket("T-1", "acknowledged", "09:05", customer="C-G"),
            ticket("T-1", "resolved", "10:00", customer="C-G"),
            ticket("T-1", "reopened", "10:00", customer="C-G"),
            ticket("T-1", "resolved", "11:00", customer="C-G"),
            ticket("T-1", "reopened", "11:20", customer="C-G"),
            event("customer.updated", "C-G", "23:50", customer="C-G", region="深圳"),
        ]
        steps = summary(replay(lines(day), rules))
        assert [s[5] for s in steps if s[2] == "sla.met" and s[3] == "resolve"] == ["02:00"]


def test_the_revisit_clock_after_a_reopen_has_steps_of_its_own(rules):
    """Closed, never revisited, reopened, closed again: the second revisit clock breaches too.

    Found in the generated log: numbered cycle 1 like the voided one, its steps had
    that clock's ids, and were never published.
    """
    events = [
        event("customer.registered", "C-D", at("08:00", "2026-11-22"), customer="C-D", tier="diamond"),
        fault("F-1", "reported", "09:00", customer="C-D"),
        fault("F-1", "acknowledged", "09:05", customer="C-D"),
        fault("F-1", "restored", "10:00", customer="C-D"),
        fault("F-1", "closed", "10:30", customer="C-D"),
        fault("F-1", "reopened", at("09:00", "2026-11-25"), customer="C-D"),
        fault("F-1", "acknowledged", at("09:05", "2026-11-25"), customer="C-D"),
        fault("F-1", "restored", at("10:00", "2026-11-25"), customer="C-D"),
        fault("F-1", "closed", at("10:30", "2026-11-25"), customer="C-D"),
        event("customer.updated", "C-D", at("08:00", "2026-11-30"), customer="C-D", region="广州"),
    ]
    breaches = [
        (s.payload["cycle"], s.occurred_at)
        for s in replay(lines(events), rules).steps
        if s.event_type == "sla.breached" and s.payload["metric"] == "revisit"
    ]
    assert [cycle for cycle, _ in breaches] == [1, 2]
    assert breaches[1][1] > events[-2].occurred_at
