"""The ladder steps an owner says it sent, and to whom: what an account manager's acknowledgement needs."""

from __future__ import annotations

from handlers.api.escalations_sent import from_json, sent_steps, to_json
from handlers.identity.roles import SentStep

PROFILE = {
    "name": "省政府办公厅",
    "account_manager": {"id": "AM-1", "name": "李敏"},
    "escalation_chain": [
        {"role": "account_manager", "id": "AM-2", "name": "陈静"},
        {"role": "account_manager", "name": "李敏"},  # the account manager again, without an id
        {"role": "department_head", "id": "DH-1", "name": "王强"},
        {"role": "department_head", "name": "赵刚"},  # no staff id: alerted, but nobody's to match
    ],
}


def step(number: int, role: str, *, metric: str = "response", cycle: int = 1, n: int = 0) -> dict:
    return {
        "event_id": f"e-{metric}-{cycle}-{number}-{n}",
        "event_type": "sla.escalation_due",
        "occurred_at": f"2026-11-23T02:0{number}:00+00:00",
        "actor": "keydesk",
        "item_kind": "fault",
        "metric": metric,
        "cycle": cycle,
        "step": number,
        "role": role,
    }


def item(*log: dict) -> dict:
    return {"kind": "fault", "id": "F-1", "sla_log": list(log)}


class TestSentSteps:
    def test_each_step_is_addressed_to_its_roles_chain_entries_and_the_account_manager(self):
        steps = sent_steps(PROFILE, item(step(1, "account_manager"), step(2, "department_head")))
        assert steps == [
            SentStep("response", 1, 1, "account_manager", frozenset({"AM-1", "AM-2"})),
            SentStep("response", 1, 2, "department_head", frozenset({"DH-1"})),  # no copy to the AM
        ]

    def test_only_ladder_steps_count_each_once(self):
        log = [
            {**step(1, "account_manager"), "event_type": "sla.breached"},
            {**step(1, "account_manager"), "event_type": "sla.escalation_acknowledged"},
            step(1, "department_head", cycle=2),
            step(1, "department_head", cycle=2, n=1),  # the same step under another event id
        ]
        assert sent_steps(PROFILE, item(*log)) == [
            SentStep("response", 2, 1, "department_head", frozenset({"DH-1"}))
        ]

    def test_a_role_nobody_in_the_profile_holds_is_addressed_to_no_staff_id(self):
        assert sent_steps(PROFILE, item(step(3, "executive")))[0].addressed_to == frozenset()
        assert sent_steps(None, item(step(1, "account_manager")))[0].addressed_to == frozenset()

    def test_an_item_without_a_log_sent_nothing(self):
        assert sent_steps(PROFILE, {"kind": "fault", "id": "F-1"}) == []


class TestWire:
    def test_what_the_owner_sends_reads_back_the_same(self):
        steps = sent_steps(PROFILE, item(step(1, "account_manager"), step(2, "department_head")))
        assert from_json(to_json(steps)) == steps
        assert to_json(steps)[0]["addressed_to"] == ["AM-1", "AM-2"]

    def test_an_answer_not_in_that_shape_says_nothing(self):
        good = {"metric": "response", "cycle": 1, "step": 1, "role": "account_manager", "addressed_to": []}
        assert from_json([]) == []
        for bad in (
            None,
            {"steps": []},
            [good, "step"],
            [{**good, "cycle": "1"}],
            [{**good, "step": True}],
            [{**good, "addressed_to": "AM-1"}],
            [{**good, "addressed_to": [1]}],
            [{k: v for k, v in good.items() if k != "role"}],
        ):
            assert from_json(bad) is None, bad
