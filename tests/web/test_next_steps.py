"""Which steps a page offers on an item (the lifecycle's and the role's), and the escalation ladder."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from handlers.web.customer_desk import month_bounds
from handlers.web.next_steps import duration_text, ladder, local_time, next_steps, open_escalations
from tests.builders import at


def offered(kind: str, state: str | None) -> list[str]:
    return [s.action for s in next_steps(kind, state, may_work=True)]


class TestNextSteps:
    def test_a_reported_fault_offers_its_next_steps_and_none_it_cannot_take(self):
        steps = offered("fault", "reported")
        assert {"ack", "dispatch", "repair", "pending", "restore", "close"} <= set(steps)
        assert not {"confirm", "reopen", "revisit", "ack-escalation"} & set(steps)

    def test_a_closed_fault_offers_the_revisit_and_a_reopen_only(self):
        assert offered("fault", "closed") == ["reopen", "revisit"]

    def test_a_pending_item_is_not_offered_pending_again_but_resuming(self):
        assert "pending" not in offered("fault", "pending")
        assert "resume" in offered("fault", "pending")
        assert "start" not in offered("ticket", "in_progress")

    def test_a_user_who_may_not_work_the_customer_is_offered_nothing(self):
        assert next_steps("fault", "reported", may_work=False) == []

    @pytest.mark.parametrize(
        ("kind", "state"), [("ticket", "open"), ("order", "acknowledged"), ("order", "completed")]
    )
    def test_every_offered_step_is_one_the_lifecycle_accepts(self, kind, state):
        from handlers.api.actions import ACTIONS
        from streams import lifecycles

        for step in next_steps(kind, state, may_work=True):
            action = ACTIONS[kind][step.action]
            payload = {**action.defaults, **action.fixed}
            assert isinstance(
                lifecycles.transition(kind, state, action.event_type, payload), lifecycles.Accepted
            )

    def test_a_steps_form_asks_for_the_catalogues_required_fields(self):
        (dispatch,) = [s for s in next_steps("fault", "reported", may_work=True) if s.action == "dispatch"]
        assert [(f.name, f.required) for f in dispatch.fields] == [("team", True)]
        (revisit,) = [s for s in next_steps("fault", "closed", may_work=True) if s.action == "revisit"]
        satisfaction = revisit.fields[0]
        assert (satisfaction.name, satisfaction.kind, satisfaction.minimum, satisfaction.maximum) == (
            "satisfaction",
            "number",
            1,
            5,
        )


ITEM = {
    "sla_log": [
        {
            "event_id": "e1",
            "event_type": "sla.breached",
            "metric": "response",
            "cycle": 1,
            "occurred_at": "2026-11-23T01:05:00Z",
        },
        {
            "event_id": "e2",
            "event_type": "sla.escalation_due",
            "metric": "response",
            "cycle": 1,
            "step": 1,
            "role": "account_manager",
            "occurred_at": "2026-11-23T01:05:00Z",
        },
        {
            "event_id": "e3",
            "event_type": "sla.escalation_due",
            "metric": "restore",
            "cycle": 1,
            "step": 1,
            "role": "account_manager",
            "occurred_at": "2026-11-23T03:00:00Z",
        },
        {
            "event_id": "e4",
            "event_type": "sla.escalation_acknowledged",
            "metric": "response",
            "cycle": 1,
            "actor": "manager-chen",
            "note": "已派单",
            "occurred_at": "2026-11-23T01:10:00Z",
        },
    ],
    "alerts": [
        {
            "event_id": "e2",
            "recipient": "李敏",
            "role": "account_manager",
            "copy": False,
            "channels": {
                "email": {"status": "failed", "attempts": 3, "reason": "no SMTP"},
                "log": {"status": "delivered", "attempts": 1, "reason": None},
            },
        }
    ],
}


class TestLadder:
    def test_each_step_carries_the_alerts_sent_for_it_by_channel(self):
        rows = ladder(ITEM)
        assert [r.event_type for r in rows] == [
            "sla.breached",
            "sla.escalation_due",
            "sla.escalation_due",
            "sla.escalation_acknowledged",
        ]
        assert [(d.recipient, d.channel, d.status) for d in rows[1].deliveries] == [
            ("李敏", "email", "failed"),
            ("李敏", "log", "delivered"),
        ]
        assert (rows[3].actor, rows[3].note) == ("manager-chen", "已派单")

    def test_only_unacknowledged_escalations_are_open(self):
        assert open_escalations(ITEM) == [("restore", 1)]


def test_times_are_shown_in_the_desks_zone_to_the_minute():
    assert local_time("2026-11-23T01:05:30Z", ZoneInfo("Asia/Shanghai")) == "2026-11-23 09:05"
    assert local_time(None, ZoneInfo("Asia/Shanghai")) == ""


def test_durations_read_as_days_hours_and_minutes():
    assert [duration_text(s) for s in (42, 240, 3900, 97200)] == ["42s", "4m", "1h 05m", "1d 3h"]


def test_the_month_is_the_desks_local_calendar_month():
    start, end = month_bounds(at("07:00", "2026-12-01"), ZoneInfo("Asia/Shanghai"))
    assert (start.isoformat(), end.isoformat()) == ("2026-12-01T00:00:00+08:00", "2027-01-01T00:00:00+08:00")


def test_a_redirect_may_name_a_field_but_carry_no_other_text_to_the_page():
    from handlers.web.customer_page import form_field_name

    assert form_field_name("satisfaction") == "satisfaction"
    assert form_field_name("closed_unresolved") == "closed_unresolved"
    assert form_field_name("Call 110 now") is None
    assert form_field_name("") is None
