"""The step set: what an item's event log leads to by an instant, window by window."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sla_rules import ItemFacts, load_rules
from sla_rules.evaluation import StepMemo, evaluate, step_set

SH = ZoneInfo("Asia/Shanghai")
RULES = load_rules()
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=SH)  # a Monday, 09:00 in Shanghai
M = dt.timedelta(minutes=1)
DIAMOND_FAULT = ItemFacts("C-1", "diamond", "fault", entity_id="F-1")
DIAMOND_COMPLAINT = ItemFacts("C-1", "diamond", "complaint", entity_id="T-1")


def story(*steps):
    """Events from (minutes after 09:00, event_type, payload) triples, in the source's order."""
    return [
        {
            "event_id": f"ev-{i:03d}",
            "event_type": kind,
            "occurred_at": T0 + minutes * M,
            "payload": payload,
            "position": i,
        }
        for i, (minutes, kind, payload) in enumerate(steps)
    ]


def steps(facts, history, minutes, **kw):
    return {
        (c.metric, c.cycle, c.step): c
        for c in step_set(facts, history, RULES, T0 + minutes * M, **kw).crossed
    }


REPORTED = (0, "fault.reported", {"severity": "critical"})  # diamond P1: respond in 5 min


class TestWindows:
    def test_steps_of_a_running_clock_are_its_thresholds_passed(self):
        """Diamond P1, not acknowledged: 50/75/90 %, breach and ladder step 1 by 09:06."""
        crossed = steps(DIAMOND_FAULT, story(REPORTED), 6)
        assert sorted(step for metric, _, step in crossed if metric == "response") == [
            "breach",
            "step:1",
            "warning:50%",
            "warning:75%",
            "warning:90%",
        ]
        assert crossed[("response", 1, "breach")].due_at == T0 + 5 * M

    def test_an_event_at_the_deadline_comes_first(self):
        """Acknowledged at 09:05 exactly: met, never breached, whenever asked."""
        history = story(REPORTED, (5, "fault.acknowledged", {}))
        for minutes in (5, 6, 600):
            crossed = steps(DIAMOND_FAULT, history, minutes)
            assert ("response", 1, "breach") not in crossed
            assert crossed[("response", 1, "met")].due_at == T0 + 5 * M

    def test_strict_leaves_the_instant_asked_about_to_the_next_look(self):
        """A replay at 09:05 does not yet take the breach due at 09:05 (live does)."""
        assert ("response", 1, "breach") not in steps(DIAMOND_FAULT, story(REPORTED), 5, strict=True)
        assert ("response", 1, "breach") in steps(DIAMOND_FAULT, story(REPORTED), 5)

    def test_strict_does_not_look_at_events_at_the_instant_asked_about(self):
        """Events at the watermark's instant may be only half here: they wait, and say when."""
        result = step_set(
            DIAMOND_FAULT, story(REPORTED, (30, "fault.restored", {})), RULES, T0 + 30 * M, strict=True
        )
        assert ("restore", 1, "met") not in {(c.metric, c.cycle, c.step) for c in result.crossed}
        assert result.next_at == T0 + 30 * M

    def test_a_step_a_later_event_undid_still_happened(self):
        """Complaint P2 (respond in 30 min) lowered to P3 at 09:40: breached from 09:30 to 09:40."""
        history = story(
            (0, "ticket.opened", {"priority": "P2", "kind": "complaint"}),
            (40, "ticket.priority_changed", {"priority": "P3"}),
        )
        breach = steps(DIAMOND_COMPLAINT, history, 45)[("response", 1, "breach")]
        assert (breach.due_at, breach.priority, breach.caused_by) == (T0 + 30 * M, "P2", "ev-000")
        assert (
            not evaluate(DIAMOND_COMPLAINT, history, RULES, T0 + 45 * M).metrics["response"].breached_at
        )  # the clock as it is now does not show it

    def test_the_first_window_with_a_step_fixes_it(self):
        """The 50 % warning of P3 (09:30) stays the warning, though P2's was at 09:15."""
        history = story(
            (0, "ticket.opened", {"priority": "P3", "kind": "complaint"}),
            (35, "ticket.priority_changed", {"priority": "P2"}),
        )
        half = steps(DIAMOND_COMPLAINT, history, 50)[("response", 1, "warning:50%")]
        assert (half.due_at, half.priority, half.detected_at) == (T0 + 30 * M, "P3", None)

    def test_met_of_a_cycle_a_reopen_resumed_is_a_step(self):
        """Resolved at 09:30, reopened at 09:40 (resume): the met of 09:30 happened."""
        history = story(
            (0, "ticket.opened", {"priority": "P1", "kind": "complaint"}),
            (30, "ticket.resolved", {}),
            (40, "ticket.reopened", {}),
        )
        met = steps(DIAMOND_COMPLAINT, history, 50)[("resolve", 1, "met")]
        assert (met.due_at, met.caused_by) == (T0 + 30 * M, "ev-001")

    def test_a_resolve_and_a_reopen_at_one_instant_met_the_clock_in_between(self):
        """Sources record to the minute: resolved and reopened in it, the clock was met."""
        history = story(
            (0, "ticket.opened", {"priority": "P1", "kind": "complaint"}),
            (30, "ticket.resolved", {}),
            (30, "ticket.reopened", {}),
        )
        met = steps(DIAMOND_COMPLAINT, history, 50)[("resolve", 1, "met")]
        assert (met.due_at, met.caused_by) == (T0 + 30 * M, "ev-001")

    def test_a_deadline_at_an_instant_of_several_events_is_met_by_any_of_them(self):
        """Acknowledged in the very minute of the deadline, after another event of it."""
        history = story(
            REPORTED, (5, "fault.status_changed", {"status": "in_progress"}), (5, "fault.acknowledged", {})
        )
        assert ("response", 1, "breach") not in steps(DIAMOND_FAULT, history, 10)


class TestKnownLate:
    HISTORY = story(
        (0, "ticket.opened", {"priority": "P3", "kind": "complaint"}),
        (11, "ticket.assigned", {"assignee": "staff-7"}),
        (50, "ticket.priority_changed", {"priority": "P2"}),
    )

    def test_a_deadline_moved_into_the_past_breaches_at_it_known_at_the_move(self):
        """P3 -> P2 at 09:50 under recompute: due 09:30, detected 09:50, caused by the change."""
        breach = steps(DIAMOND_COMPLAINT, self.HISTORY, 51)[("response", 1, "breach")]
        assert (breach.due_at, breach.detected_at, breach.caused_by) == (T0 + 30 * M, T0 + 50 * M, "ev-002")
        assert (breach.priority, breach.target, breach.policy_id) == (
            "P2",
            dt.timedelta(minutes=30),
            "diamond",
        )

    def test_steps_due_when_they_became_known_carry_no_detection(self):
        """The ladder's second step (30 min after the breach) is in the future at 09:50."""
        crossed = steps(DIAMOND_COMPLAINT, self.HISTORY, 61)
        assert crossed[("response", 1, "step:2")].detected_at is None
        assert crossed[("response", 1, "step:2")].caused_by == "ev-002"


class TestCause:
    def test_the_cause_is_the_event_that_set_the_instant_not_the_latest_before_it(self):
        """A dispatch between the report and the breach changed no deadline."""
        history = story(REPORTED, (2, "fault.dispatched", {"team": "line-3"}))
        assert steps(DIAMOND_FAULT, history, 6)[("response", 1, "breach")].caused_by == "ev-000"

    def test_the_end_of_a_pause_sets_the_deadline_it_moved(self):
        """Restore paused 09:10-10:10: its deadline is the resume's doing."""
        history = story(
            REPORTED,
            (1, "fault.acknowledged", {}),
            (10, "fault.status_changed", {"status": "pending_customer"}),
            (70, "fault.status_changed", {"status": "in_progress"}),
        )
        breach = steps(DIAMOND_FAULT, history, 300)[("restore", 1, "breach")]
        assert (breach.due_at, breach.caused_by) == (T0 + 180 * M, "ev-003")

    def test_of_two_events_at_one_instant_the_one_that_set_it(self):
        """Resolved and reopened in one minute: the reopen set the resumed deadline."""
        history = story(
            (0, "ticket.opened", {"priority": "P1", "kind": "complaint"}),
            (30, "ticket.resolved", {}),
            (90, "ticket.resolved", {}),
            (100, "ticket.reopened", {}),
            (100, "ticket.status_changed", {"status": "in_progress"}),
        )
        warning = steps(DIAMOND_COMPLAINT, history, 300)[("resolve", 1, "warning:75%")]
        assert warning.caused_by == "ev-003"


class TestLeftOut:
    def test_published_steps_are_skipped(self):
        """What the log already has is not computed again."""
        crossed = steps(DIAMOND_FAULT, story(REPORTED), 6, skip={("response", 1, "breach")})
        assert ("response", 1, "breach") not in crossed and ("response", 1, "step:1") in crossed

    def test_an_acknowledged_escalation_stops_the_later_ladder_steps(self):
        """Acknowledged at 09:20: step 1 (09:05) stays, step 2 (09:35) never comes."""
        ack = {("response", 1): T0 + 20 * M}
        crossed = steps(DIAMOND_FAULT, story(REPORTED), 300, acknowledged=ack)
        assert ("response", 1, "step:1") in crossed and ("response", 1, "step:2") not in crossed

    def test_the_next_instant_is_the_next_step_not_yet_due(self):
        """Right after the report, the next step is the first warning."""
        assert step_set(DIAMOND_FAULT, story(REPORTED), RULES, T0).next_at == T0 + dt.timedelta(
            minutes=2, seconds=30
        )


class TestMemo:
    def test_a_memo_gives_the_same_steps_and_evaluates_each_prefix_once(self, monkeypatch):
        """Asked again with one more event at a new instant, only its prefix is evaluated."""
        import sla_rules.evaluation as evaluation

        calls = []
        real = evaluation.evaluate
        monkeypatch.setattr(evaluation, "evaluate", lambda *a: calls.append(a[3]) or real(*a))
        history = story(REPORTED, (1, "fault.acknowledged", {}), (30, "fault.restored", {}))
        memo = StepMemo()
        first = step_set(DIAMOND_FAULT, history[:2], RULES, T0 + 20 * M, memo=memo)
        again = step_set(DIAMOND_FAULT, history, RULES, T0 + 40 * M, memo=memo)
        assert calls == [T0, T0 + M, T0 + 30 * M]
        assert again == step_set(DIAMOND_FAULT, history, RULES, T0 + 40 * M)
        assert set(first.crossed) <= set(again.crossed)

    def test_a_log_changed_before_its_last_window_is_computed_again(self):
        """An event inserted before the last window (a late one) changes earlier windows."""
        history = story(REPORTED, (30, "fault.restored", {}))
        memo = StepMemo()
        step_set(DIAMOND_FAULT, history, RULES, T0 + 40 * M, memo=memo)
        late = history + [
            {
                "event_id": "ev-late",
                "event_type": "fault.acknowledged",
                "occurred_at": T0 + M,
                "payload": {},
                "position": 9,
            }
        ]
        assert step_set(DIAMOND_FAULT, late, RULES, T0 + 40 * M, memo=memo) == step_set(
            DIAMOND_FAULT, late, RULES, T0 + 40 * M
        )

    def test_asked_about_an_earlier_instant_the_memo_gives_that_instants_steps(self):
        """The memo follows the log, not the clock: an earlier instant is answered too."""
        history = story(REPORTED, (30, "fault.restored", {}))
        memo = StepMemo()
        step_set(DIAMOND_FAULT, history, RULES, T0 + 40 * M, memo=memo)
        assert step_set(DIAMOND_FAULT, history, RULES, T0 + 6 * M, memo=memo) == step_set(
            DIAMOND_FAULT, history, RULES, T0 + 6 * M
        )

    def test_the_memo_forgets_the_least_recently_used_items(self):
        """A bounded memo: a worker's memory does not grow with every item ever seen."""
        memo = StepMemo(size=2)
        facts = [ItemFacts("C-1", "diamond", "fault", entity_id=f"F-{n}") for n in range(3)]
        for one in facts:
            step_set(one, story(REPORTED), RULES, T0 + 6 * M, memo=memo)
            if one is facts[1]:
                memo.get(facts[0])
        assert (memo.get(facts[0]) is not None, memo.get(facts[1]), memo.get(facts[2]) is not None) == (
            True,
            None,
            True,
        )


class TestAnAlarmStorm:
    """One fault paused and resumed thousands of times: bounded work, the same steps."""

    def storm(self, flips):
        seconds = dt.timedelta(seconds=1)
        return [
            {
                "event_id": "ev-open",
                "event_type": "fault.reported",
                "occurred_at": T0,
                "payload": {"severity": "warning"},
                "position": 0,
            },
            *(
                {
                    "event_id": f"ev-{n:05d}",
                    "event_type": "fault.status_changed",
                    "occurred_at": T0 + (n + 1) * seconds,
                    "payload": {"status": ("pending_customer", "in_progress")[n % 2]},
                    "position": n + 1,
                }
                for n in range(flips)
            ),
        ]

    def test_past_the_bound_the_tail_is_one_window_evaluated_again_in_place(self, monkeypatch):
        """The big-customer fault test's F-HOT stopped the worker's loop for minutes:
        every one of 10,000 windows evaluated its whole prefix. Now: MAX_WINDOWS, then one."""
        import sla_rules.evaluation as evaluation

        calls = []
        real = evaluation.evaluate
        monkeypatch.setattr(
            evaluation,
            "evaluate",
            lambda facts, history, rules, at: calls.append(len(history)) or real(facts, history, rules, at),
        )
        log = self.storm(2 * evaluation.MAX_WINDOWS)
        memo = StepMemo()
        until = T0 + 3 * 60 * M
        first = steps(DIAMOND_FAULT, log[: evaluation.MAX_WINDOWS + 10], 180, memo=memo)
        assert len(calls) == evaluation.MAX_WINDOWS
        calls.clear()
        last = steps(DIAMOND_FAULT, log, 180, memo=memo)
        assert calls == [len(log)]  # the grown tail, once; the closed windows kept
        assert last == steps(DIAMOND_FAULT, log, 180)  # what a fresh computation says
        assert set(first) <= set(last) and until > log[-1]["occurred_at"]
