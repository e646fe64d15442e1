"""Who is told about which SLA event, and what the alert says (pure routing, no network)."""

from __future__ import annotations

import pytest

from handlers.alerts.routing import (
    DUTY_DESK,
    EMAIL,
    LOG,
    WEBHOOK,
    Alert,
    Recipient,
    RoutingConfig,
    route,
    webhook_format_for,
    webhook_payload,
)
from tests.builders import event

CLOCK = {
    "item_kind": "fault",
    "metric": "restore",
    "cycle": 1,
    "policy": "diamond v1",
    "due_at": "2026-11-23T05:00:00+00:00",
}

PROFILE = {
    "name": "省政府办公厅",
    "tier": "diamond",
    "tier_label": "钻石",
    "region": "广州",
    "account_manager": {"id": "AM-1", "name": "李敏", "email": "limin@example.cn", "phone": "13800000001"},
    "escalation_chain": [
        {"role": "account_manager", "name": "李敏", "email": "limin@example.cn"},
        {
            "role": "department_head",
            "name": "王强",
            "email": "wangqiang@example.cn",
            "webhook": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k1",
        },
        {"role": "branch_leader", "name": "陈洁", "email": "chenjie@example.cn"},
        {"role": "branch_leader", "name": "赵刚", "webhook": "https://example.cn/hook"},
        {"role": "executive", "name": "周总", "email": "zhou@example.cn"},
    ],
}

ITEM = {
    "id": "F-1",
    "kind": "fault",
    "state": "dispatched",
    "attributes": {"priority": "P1", "summary": "专线中断", "service": "MPLS VPN"},
}


def warning(**kw):
    return event(
        "sla.warning_reached",
        "F-1",
        "12:00",
        threshold="75%",
        deadline="2026-11-23T05:00:00+00:00",
        **{**CLOCK, **kw},
    )


def breach(**kw):
    return event("sla.breached", "F-1", "13:00", deadline="2026-11-23T05:00:00+00:00", **{**CLOCK, **kw})


def escalation(step: int, role: str, **kw):
    return event("sla.escalation_due", "F-1", "13:30", step=step, role=role, **{**CLOCK, **kw})


def names(alerts: list[Alert]) -> list[tuple[str, bool]]:
    return [(a.recipient.name, a.copy) for a in alerts]


class TestWhoIsTold:
    def test_warning_goes_to_the_account_manager(self):
        """A 75% warning is for the first responsible person only."""
        alerts = route(warning(), PROFILE, ITEM)
        assert names(alerts) == [("李敏", False)]
        assert alerts[0].kind == "warning"
        assert alerts[0].recipient.role == "account_manager"

    def test_breach_goes_to_the_account_manager(self):
        """A breach is first the account manager's to fix; the ladder takes it higher."""
        assert names(route(breach(), PROFILE, ITEM)) == [("李敏", False)]

    def test_step_one_reaches_the_account_manager_once(self):
        """Step 1 (account manager) is not doubled by the chain entry for the same person."""
        alerts = route(escalation(1, "account_manager"), PROFILE, ITEM)
        assert names(alerts) == [("李敏", False)]

    def test_step_two_reaches_the_department_head_with_the_manager_in_copy(self):
        """From step 2 the account manager is copied so they know it went over their head."""
        alerts = route(escalation(2, "department_head"), PROFILE, ITEM)
        assert names(alerts) == [("王强", False), ("李敏", True)]
        assert "抄送" in alerts[1].subject

    def test_step_three_reaches_every_branch_leader(self):
        """Every chain entry holding the role is told, not just the first one."""
        alerts = route(escalation(3, "branch_leader"), PROFILE, ITEM)
        assert names(alerts) == [("陈洁", False), ("赵刚", False), ("李敏", True)]

    def test_step_four_reaches_the_executive(self):
        """The top of the ladder is the executive, still with the manager in copy."""
        assert names(route(escalation(4, "executive"), PROFILE, ITEM)) == [("周总", False), ("李敏", True)]

    @pytest.mark.parametrize(
        "silent",
        [
            event("sla.met", "F-1", deadline="2026-11-23T05:00:00+00:00", **CLOCK),
            event(
                "sla.escalation_acknowledged",
                "F-1",
                item_kind="fault",
                metric="restore",
                cycle=1,
                note="已到现场",
            ),
            event("fault.reported", "F-1"),
        ],
        ids=["met", "acknowledged", "not-an-sla-event"],
    )
    def test_met_and_acknowledged_alert_nobody(self, silent):
        """Nothing is at risk any more, so nobody is disturbed."""
        assert route(silent, PROFILE, ITEM) == []


class TestNeverSilent:
    def test_unknown_customer_goes_to_the_duty_desk(self):
        """With no profile, one alert goes to the fallback desk with the reason."""
        alerts = route(breach(customer="C-404"), None, ITEM)
        assert len(alerts) == 1
        alert = alerts[0]
        assert alert.fallback and alert.recipient == DUTY_DESK
        assert "C-404" in alert.subject and "待转办" in alert.subject
        assert "客户档案缺失" in alert.fields["routing_note"]

    def test_the_fallback_desk_is_configurable(self):
        """A deployment names its own duty desk with its own addresses."""
        desk = Recipient(name="省公司值班室", role="duty_desk", id="noc", email="noc@example.cn")
        alerts = route(breach(), None, ITEM, RoutingConfig(fallback=desk))
        assert [a.recipient for a in alerts] == [desk]
        assert alerts[0].channels == (EMAIL, LOG)

    def test_a_role_nobody_holds_goes_to_the_duty_desk(self):
        """An escalation to an empty rung still reaches someone who can act."""
        profile = {**PROFILE, "escalation_chain": []}
        alerts = route(escalation(4, "executive"), profile, ITEM)
        assert names(alerts) == [("李敏", True), ("大客户服务值班台", False)]
        assert "executive" in alerts[-1].fields["routing_note"]

    def test_recipient_without_email_or_webhook_is_logged_and_phoned_via_the_desk(self):
        """Log-only reaches nobody, so the desk is asked to phone, with the number."""
        profile = {**PROFILE, "account_manager": {"id": "AM-2", "name": "黄丽", "phone": "13900000002"}}
        alerts = route(warning(), profile, ITEM)
        assert [(a.recipient.name, a.channels) for a in alerts] == [
            ("黄丽", (LOG,)),
            ("大客户服务值班台", (LOG,)),
        ]
        assert "13900000002" in alerts[1].text


class TestAlertContent:
    def test_channels_follow_the_recipients_addresses(self):
        """Email if an address, webhook if a URL, and always the log."""
        alerts = route(escalation(3, "branch_leader"), PROFILE, ITEM)
        assert [a.channels for a in alerts] == [(EMAIL, LOG), (WEBHOOK, LOG), (EMAIL, LOG)]

    def test_alert_ids_are_deterministic_and_distinct_per_recipient(self):
        """The same event routed twice (a restart) gives the same ids; recipients differ."""
        first = route(escalation(2, "department_head"), PROFILE, ITEM)
        again = route(escalation(2, "department_head"), PROFILE, ITEM)
        assert [a.alert_id for a in first] == [a.alert_id for a in again]
        assert len({a.alert_id for a in first}) == 2
        assert all(a.alert_id.startswith(a.event_id + ":") for a in first)
        assert all(a.alert_id.isascii() for a in first)

    def test_breach_subject_names_customer_item_and_clock_in_both_languages(self):
        """The subject alone tells a manager who, what and which promise."""
        alert = route(breach(), PROFILE, ITEM)[0]
        assert alert.subject == "【SLA违约】省政府办公厅 故障 F-1 修复时限已超 (restore breached)"

    def test_warning_text_shows_the_deadline_in_beijing_time(self):
        """Humans read local wall time; the English line keeps the raw instant."""
        alert = route(warning(), PROFILE, ITEM)[0]
        assert "【SLA预警】" in alert.subject and "75%" in alert.subject
        assert "截止 2026-11-23 13:00 (UTC+8)" in alert.text
        assert "省政府办公厅（钻石）" in alert.text and "专线中断" in alert.text
        assert alert.alert_id in alert.text

    def test_escalation_subject_says_step_and_role(self):
        """The step number and the rung are in the subject."""
        alert = route(escalation(2, "department_head"), PROFILE, ITEM)[0]
        assert alert.subject.startswith("【SLA升级·第2级】")
        assert "部门负责人" in alert.subject and "department_head" in alert.subject

    def test_order_and_ticket_alerts_use_their_own_words(self):
        """An order's provisioning clock and a complaint's subject read as such."""
        order = {
            "id": "O-7",
            "kind": "order",
            "state": "provisioning",
            "attributes": {"urgency": "extra_urgent", "product": "leased_line"},
        }
        alert = route(breach(item_kind="order", metric="provision"), PROFILE, order)[0]
        assert "订单 O-7 开通时限已超 (provision breached)" in alert.subject
        assert alert.fields["priority"] == "extra_urgent"
        complaint = {
            "id": "T-3",
            "kind": "ticket",
            "state": "open",
            "attributes": {"priority": "P2", "subject": "账单有误"},
        }
        alert = route(warning(item_kind="ticket", metric="resolve"), PROFILE, complaint)[0]
        assert "工单 T-3 解决时限即将到期" in alert.subject and "账单有误" in alert.text

    def test_structured_fields_carry_the_facts(self):
        """Receivers that parse JSON get the facts without reading the text."""
        alert = route(escalation(2, "department_head"), PROFILE, ITEM)[0]
        fields = alert.fields
        assert (fields["customer_id"], fields["customer_name"], fields["tier"]) == (
            "C-1",
            "省政府办公厅",
            "diamond",
        )
        assert (fields["item_id"], fields["item_kind"], fields["metric"], fields["step"]) == (
            "F-1",
            "fault",
            "restore",
            2,
        )
        assert (fields["due_at"], fields["policy"], fields["deadline"]) == (
            "2026-11-23T05:00:00+00:00",
            "diamond v1",
            None,
        )
        assert alert.to_dict()["fields"]["priority"] == "P1"

    def test_the_webhook_url_stays_out_of_the_json_form(self):
        """A robot URL embeds its key; it must not be echoed to other receivers."""
        alert = route(escalation(2, "department_head"), PROFILE, ITEM)[0]
        assert "key=k1" not in str(alert.to_dict())

    def test_missing_item_falls_back_to_the_event_entity(self):
        """An item not (yet) in the view still yields a readable alert."""
        alert = route(breach(), PROFILE, None)[0]
        assert alert.fields["item_id"] == "F-1" and alert.fields["summary"] is None


class TestRobotRendering:
    @pytest.mark.parametrize(
        ("url", "fmt"),
        [
            ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k", "wecom"),
            ("https://oapi.dingtalk.com/robot/send?access_token=t", "dingtalk"),
            ("https://hooks.slack.com/services/T/B/X", "slack"),
            ("https://ops.example.cn/alerts", "generic"),
        ],
    )
    def test_auto_format_follows_the_robot_host(self, url, fmt):
        """With format auto, each recipient's robot gets its own format."""
        assert webhook_format_for(url) == fmt

    def test_wecom_markdown_is_cut_to_the_robot_limit_without_breaking_characters(self):
        """WeCom refuses markdown over 4096 bytes; a long summary is cut, the alert id kept."""
        item = {**ITEM, "attributes": {**ITEM["attributes"], "summary": "断" * 3000}}
        alert = route(breach(), PROFILE, item)[0]
        content = webhook_payload("wecom", alert)["markdown"]["content"]
        assert len(content.encode()) <= 4096 and "断断\n…\n" in content
        assert content.endswith(alert.alert_id)

    def test_generic_form_is_the_alert_itself(self):
        """A generic receiver gets the alert's own JSON form."""
        alert = route(breach(), PROFILE, ITEM)[0]
        assert webhook_payload("generic", alert) == alert.to_dict()


class TestWhatWasInForce:
    """Alerts name the priority, target and policy the step was measured against."""

    TICKET = {
        "id": "T-1",
        "kind": "ticket",
        "state": "open",
        "attributes": {"priority": "P1", "subject": "账单有误"},
        "history": [
            {
                "event_id": "e-open",
                "event_type": "ticket.opened",
                "outcome": "applied",
                "payload": {"priority": "P3", "kind": "complaint", "subject": "账单有误"},
            },
            {
                "event_id": "e-assign",
                "event_type": "ticket.assigned",
                "outcome": "applied",
                "payload": {"assignee": "staff-7"},
            },
            {
                "event_id": "e-p2",
                "event_type": "ticket.priority_changed",
                "outcome": "applied",
                "payload": {"priority": "P2"},
            },
            {
                "event_id": "e-p1",
                "event_type": "ticket.priority_changed",
                "outcome": "applied",
                "payload": {"priority": "P1"},
            },
        ],
    }

    def late_breach(self, **kw):
        clock = {
            **CLOCK,
            "item_kind": "ticket",
            "metric": "response",
            "due_at": "2026-11-23T02:19:00Z",
            "priority": "P2",
            "target_seconds": 1800,
            "rules_version": "2026.11-1",
            "caused_by": "e-p2",
            "detected_at": "2026-11-23T02:39:00Z",
        }
        return event("sla.breached", "T-1", "10:19", deadline="2026-11-23T02:19:00Z", **{**clock, **kw})

    def test_a_breach_known_late_says_when_and_why(self):
        """Breached at 10:19, only known at 10:39 when the priority was raised to P2."""
        alert = route(self.late_breach(), PROFILE, self.TICKET)[0]
        assert "已于 2026-11-23 10:19 (UTC+8) 违约（10:39 获知，优先级由 P3 升为 P2）" in alert.text
        assert "breached at 2026-11-23 10:19 (UTC+8) (known at 10:39, priority raised to P2)" in alert.text
        assert alert.fields["detected_at"] == "2026-11-23T02:39:00Z"

    def test_the_priority_shown_is_the_steps_not_the_items_now(self):
        """The item is P1 now; the breached target was P2's 30 minutes, and the text says so."""
        alert = route(self.late_breach(), PROFILE, self.TICKET)[0]
        assert "时限: 响应 第1轮 · 优先级 P2 · 目标 30m · 策略 diamond v1" in alert.text
        assert "现优先级 P1" in alert.text
        assert (alert.fields["priority"], alert.fields["item_priority"], alert.fields["target_seconds"]) == (
            "P2",
            "P1",
            1800,
        )
        assert "P2 target 30m; policy diamond v1" in alert.text

    def test_a_step_known_on_time_has_no_known_at(self):
        """Most steps were due when they became known: nothing extra is said."""
        alert = route(
            self.late_breach(detected_at=None, caused_by="e-open", priority="P1"), PROFILE, self.TICKET
        )[0]
        assert "获知" not in alert.text and "known at" not in alert.text
        assert "现优先级" not in alert.text

    def test_a_late_known_step_on_another_day_shows_the_date(self):
        """Known the next day: the date is spelled out."""
        alert = route(self.late_breach(detected_at="2026-11-24T02:39:00Z"), PROFILE, self.TICKET)[0]
        assert "（2026-11-24 10:39 (UTC+8) 获知，" in alert.text

    def test_a_ladder_step_known_late_says_so_too(self):
        """The escalation alert carries the same note."""
        step = event(
            "sla.escalation_due",
            "T-1",
            "10:19",
            step=1,
            role="account_manager",
            **{
                **CLOCK,
                "item_kind": "ticket",
                "metric": "response",
                "due_at": "2026-11-23T02:19:00Z",
                "priority": "P2",
                "target_seconds": 1800,
                "caused_by": "e-p2",
                "detected_at": "2026-11-23T02:39:00Z",
            },
        )
        alert = route(step, PROFILE, self.TICKET)[0]
        assert (
            "第1级升级至客户经理（2026-11-23 10:19 (UTC+8)）（10:39 获知，优先级由 P3 升为 P2）" in alert.text
        )
