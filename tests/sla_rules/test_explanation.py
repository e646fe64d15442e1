"""The human-readable derivation of every deadline."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sla_rules import ItemFacts, explain, load_rules

SH = ZoneInfo("Asia/Shanghai")
RULES = load_rules()
T0 = dt.datetime(2026, 2, 13, 17, 0, tzinfo=SH)  # Friday before the Spring Festival


def story(*steps):
    return [
        {
            "event_id": f"e{i}",
            "event_type": kind,
            "occurred_at": T0 + dt.timedelta(minutes=m),
            "payload": payload,
        }
        for i, (m, kind, payload) in enumerate(steps)
    ]


FACTS = ItemFacts("C-7", "business", "complaint", entity_id="T-7")
HISTORY = story(
    (0, "ticket.opened", {"kind": "complaint", "priority": "P2", "subject": "wrong bill"}),
    (10, "ticket.acknowledged", {}),
    (20, "ticket.status_changed", {"status": "pending_customer", "reason": "awaiting contract scan"}),
    (30, "ticket.status_changed", {"status": "in_progress"}),
    (40, "ticket.priority_changed", {"priority": "P1", "reason": "VIP complaint"}),
)


class TestExplain:
    TEXT = explain(FACTS, HISTORY, RULES, T0 + dt.timedelta(days=12))

    # (what the reader needs, a fragment that must be in the trace)
    CASES = [
        ("the rule that matched and why", "matched rule #6 '商业 business' (tier in ['business'])"),
        ("the rules skipped and why", "skipped rule #2 '钻石 diamond': tier 'business' not in ['diamond']"),
        ("policy and version", "policy business v1"),
        ("the calendar with holidays and make-up days", "cn-business (Asia/Shanghai"),
        ("each pause with its reason", "(pending_customer: awaiting contract scan)"),
        ("paused business time by reason", "paused business time, pending_customer: 10m"),
        ("each recalculation", "priority P2 -> P1 (recompute): target 22h30m -> 15h"),
        (
            "the resulting deadline, also in local time",
            "deadline 2026-02-24T09:10:00Z (2026-02-24 17:10 Asia/Shanghai)",
        ),
        (
            "the make-up Saturday counted, then the holiday skipped",
            "warning 50% at elapsed 7h30m: 2026-02-14T09:10:00Z",
        ),
        ("escalation steps", "escalate to department_head"),
        ("the tier label in Chinese", "tier business (商业)"),
    ]

    def test_trace_names_every_ingredient(self):
        """The trace contains the rule, policy version, calendar, pauses, recalculations and deadlines."""
        missing = [what for what, fragment in self.CASES if fragment not in self.TEXT]
        assert not missing, f"{missing}\n{self.TEXT}"

    def test_trace_is_deterministic(self):
        """The same inputs give the same text, whatever the arrival order."""
        assert explain(FACTS, list(reversed(HISTORY)), RULES, T0 + dt.timedelta(days=12)) == self.TEXT

    def test_item_without_events(self):
        """An item with no history explains that no clock has started."""
        text = explain(FACTS, [], RULES, T0)
        assert "none started" in text and "no rule matched" in text
