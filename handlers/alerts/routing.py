"""Who receives which SLA alert, and what the alert says.  Pure: no I/O, no clock.

The SLA timers publish ``sla.*`` events; this module turns one event plus the
customer's profile (from the one-stop view) and the item into the alerts to
send.  Sending is :mod:`handlers.alerts.channels`' job.  The alert shaped for
each chat robot (WeCom, DingTalk, Slack, generic JSON) is content too, so it
is rendered here (end of module); the channels only transport it.

Routing rules, and why:

* ``sla.warning_reached`` and ``sla.breached`` go to the account manager, the
  customer's first responsible person (第一责任人): they own the closed loop.
* ``sla.escalation_due`` with role R goes to every escalation-chain entry whose
  role is R (for R = account_manager the profile's account manager also counts).
  From step 2 on the account manager gets a copy (抄送): the problem is going
  over their head and they must not learn it from their boss.
* ``sla.met`` and ``sla.escalation_acknowledged`` produce no alert: nothing is
  at risk any more, and the acknowledgement already stops the timer ladder.
  Noise would teach managers to ignore the real alerts.
* An alert names what was in force when the step was due (the step's own
  priority, target and policy version, not the item's priority now), and a
  step that was already past when it became known (a priority raised past the
  deadline) says so: "breached at 10:19 (known at 10:39, priority raised to P2)".
* Never silence: an unknown customer (no profile), a missing account manager, a
  role nobody holds, or recipients with neither email nor webhook (log only)
  produce one alert to a configurable fallback, by default the key-account
  duty desk (大客户服务值班台), which forwards by phone.

Alert ids are ``f"{event.event_id}:{recipient.key}"``.  SLA event ids are
deterministic per (customer, item, metric, cycle, step), so after a restart or
a replay the same alert gets the same id and receivers can drop the duplicate.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from schemas.envelope import Event
from schemas.event_catalogue import ORDER_URGENCIES, PRIORITIES
from sla_rules.durations import format_duration
from sla_rules.policies import SEVERITY_PRIORITY

EMAIL, WEBHOOK, LOG = "email", "webhook", "log"

ALERTING_EVENTS = ("sla.warning_reached", "sla.breached", "sla.escalation_due")
SILENT_EVENTS = ("sla.met", "sla.escalation_acknowledged")

ITEM_KIND_LABELS = {"fault": "故障", "ticket": "工单", "order": "订单"}
METRIC_LABELS = {
    "response": "响应",
    "restore": "修复",
    "resolve": "解决",
    "provision": "开通",
    "acceptance": "验收",
    "revisit": "回访",
}
ROLE_LABELS = {
    "account_manager": "客户经理",
    "department_head": "部门负责人",
    "branch_leader": "分公司领导",
    "executive": "公司领导",
    "duty_desk": "值班台",
}
BEIJING = timezone(timedelta(hours=8), "UTC+8")
WEBHOOK_FORMATS = ("generic", "wecom", "dingtalk", "slack")
WECOM_MARKDOWN_MAX_BYTES = 4096


@dataclass(frozen=True, slots=True)
class Recipient:
    """A person (or desk) who gets alerts, with the addresses they can be reached at."""

    name: str
    role: str
    id: str | None = None
    email: str | None = None
    phone: str | None = None
    webhook: str | None = None

    @property
    def key(self) -> str:
        """Stable, ASCII key within one event: role plus id, or a digest of the name.

        ASCII because it ends up in Message-ID and Idempotency-Key headers.
        """
        ident = self.id or hashlib.sha1(self.name.encode()).hexdigest()[:10]
        return f"{self.role}-{re.sub(r'[^A-Za-z0-9._-]', '_', ident)}"

    @property
    def reachable(self) -> bool:
        """Can a message be pushed to them (the log is not a way to reach a person)?"""
        return bool(self.email or self.webhook)

    @classmethod
    def from_person(cls, person: Mapping[str, Any], role: str) -> Recipient:
        def text(name: str) -> str | None:
            value = person.get(name)
            return value.strip() if isinstance(value, str) and value.strip() else None

        return cls(
            name=text("name") or "(未具名)",
            role=text("role") or role,
            id=text("id"),
            email=text("email"),
            phone=text("phone"),
            webhook=text("webhook"),
        )


DUTY_DESK = Recipient(name="大客户服务值班台", role="duty_desk", id="duty-desk")


@dataclass(frozen=True, slots=True)
class RoutingConfig:
    """Deployment choices: the fallback desk, the display time zone, when to copy the AM."""

    fallback: Recipient = DUTY_DESK
    display_tz: tzinfo = BEIJING
    copy_account_manager_from_step: int = 2


@dataclass(frozen=True, slots=True)
class Alert:
    """One message for one recipient; channels deliver it as they can."""

    alert_id: str
    event_id: str
    event_type: str
    customer_id: str
    kind: str  # warning | breach | escalation
    recipient: Recipient
    channels: tuple[str, ...]
    subject: str
    text: str
    fields: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    copy: bool = False
    fallback: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The alert as JSON (the generic webhook body).  The webhook URL stays out: it is a secret."""
        return {
            "alert_id": self.alert_id,
            "event_id": self.event_id,
            "event_type": self.event_type,
            "customer_id": self.customer_id,
            "kind": self.kind,
            "copy": self.copy,
            "fallback": self.fallback,
            "recipient": {
                "name": self.recipient.name,
                "role": self.recipient.role,
                "id": self.recipient.id,
                "email": self.recipient.email,
                "phone": self.recipient.phone,
            },
            "subject": self.subject,
            "text": self.text,
            "fields": dict(self.fields),
        }


def route(
    event: Event,
    profile: Mapping[str, Any] | None,
    item: Mapping[str, Any] | None,
    config: RoutingConfig | None = None,
) -> list[Alert]:
    """The alerts one SLA event causes; ``[]`` for events that need no one's attention."""
    if event.event_type not in ALERTING_EVENTS:
        return []
    config = config or RoutingConfig()
    facts = _facts(event, profile, item, config)
    primary, note = _primary_recipients(event, profile)
    alerts = [_alert(event, facts, person, config) for person in primary]
    step = event.payload.get("step") or 0
    manager = _account_manager(profile)
    if (
        event.event_type == "sla.escalation_due"
        and step >= config.copy_account_manager_from_step
        and manager is not None
        and all(not _same(manager, p) for p in primary)
    ):
        alerts.append(_alert(event, facts, manager, config, copy=True))
    if not primary or not any(p.reachable for p in primary):
        if primary:
            note = "接收人无邮箱或机器人地址，请电话通知: " + "、".join(
                f"{p.name}{' ' + p.phone if p.phone else ''}" for p in primary
            )
        alerts.append(_alert(event, facts, config.fallback, config, fallback_note=note))
    return alerts


def addressees(
    event_type: str,
    role: str | None,
    step: int | None,
    profile: Mapping[str, Any] | None,
    config: RoutingConfig | None = None,
) -> list[Recipient]:
    """Who an SLA step is for, copies included, by the rules above (no fallback desk): the
    web desk's inbox marks the steps addressed to its user with the alerts' own routing."""
    if event_type not in ALERTING_EVENTS:
        return []
    config = config or RoutingConfig()
    primary, _ = _people(event_type, role, "", profile)
    manager = _account_manager(profile)
    if (
        event_type == "sla.escalation_due"
        and (step or 0) >= config.copy_account_manager_from_step
        and manager is not None
        and all(not _same(manager, p) for p in primary)
    ):
        primary.append(manager)
    return primary


def _primary_recipients(
    event: Event,
    profile: Mapping[str, Any] | None,
) -> tuple[list[Recipient], str]:
    """The people the event is for, or ``([], why nobody)``."""
    return _people(event.event_type, event.payload.get("role"), event.customer_id, profile)


def _people(
    event_type: str, role: str | None, customer_id: str, profile: Mapping[str, Any] | None
) -> tuple[list[Recipient], str]:
    if not profile:
        return [], f"客户档案缺失 (no customer profile for {customer_id})"
    manager = _account_manager(profile)
    if event_type != "sla.escalation_due":
        return ([manager], "") if manager else ([], "未配置客户经理 (no account manager)")
    role = role or ""
    people = [
        Recipient.from_person(p, role)
        for p in profile.get("escalation_chain") or ()
        if isinstance(p, Mapping) and p.get("role") == role
    ]
    if role == "account_manager" and manager is not None:
        people.insert(0, manager)
    unique: list[Recipient] = []
    for person in people:
        if all(not _same(person, other) for other in unique):
            unique.append(person)
    if not unique:
        return [], f"升级链中无{ROLE_LABELS.get(role, role)} (nobody holds role {role})"
    return unique, ""


def _account_manager(profile: Mapping[str, Any] | None) -> Recipient | None:
    person = (profile or {}).get("account_manager")
    if not isinstance(person, Mapping) or not person.get("name"):
        return None
    return Recipient.from_person({**person, "role": "account_manager"}, "account_manager")


def _same(a: Recipient, b: Recipient) -> bool:
    """Same person: same id, or same email, or (no id/email) same name.  Avoids double alerts."""
    if a.id and b.id:
        return a.id == b.id
    if a.email and b.email:
        return a.email.lower() == b.email.lower()
    return a.name == b.name


def _facts(
    event: Event, profile: Mapping[str, Any] | None, item: Mapping[str, Any] | None, config: RoutingConfig
) -> dict[str, Any]:
    """The structured fields every alert of this event carries.

    ``priority`` and ``target_seconds`` are the step's: what its clock was
    measured against when it was due (a step published before steps carried
    them falls back to the item's priority now).  ``item_priority`` is the
    item's priority now; ``cause`` says in words what made a late-known step
    due.
    """
    p, profile = event.payload, profile or {}
    item = item or {}
    attrs = item.get("attributes") or {}
    now_priority = attrs.get("priority") or attrs.get("severity") or attrs.get("urgency")
    return {
        "customer_id": event.customer_id,
        "customer_name": profile.get("name"),
        "tier": profile.get("tier"),
        "tier_label": profile.get("tier_label"),
        "region": profile.get("region"),
        "item_id": item.get("id") or event.entity_id,
        "item_kind": p["item_kind"],
        "item_state": item.get("state"),
        "summary": attrs.get("summary") or attrs.get("subject"),
        "priority": p.get("priority") or now_priority,
        "item_priority": now_priority,
        "target_seconds": p.get("target_seconds"),
        "rules_version": p.get("rules_version"),
        "service": attrs.get("service") or attrs.get("product"),
        "metric": p["metric"],
        "cycle": p["cycle"],
        "step": p.get("step"),
        "role": p.get("role"),
        "due_at": p["due_at"],
        "deadline": p.get("deadline"),
        "threshold": p.get("threshold"),
        "detected_at": p.get("detected_at"),
        "caused_by": p.get("caused_by"),
        "cause": _cause(item, p.get("caused_by")) if p.get("detected_at") else None,
        "policy": p["policy"],
        "occurred_at": event.occurred_at.astimezone(UTC).isoformat(),
    }


def _rank(cls: str | None) -> int | None:
    """How urgent a priority (order: urgency) is, lower first; ``None`` for an unknown one."""
    if cls in PRIORITIES:
        return PRIORITIES.index(cls)
    if cls in ORDER_URGENCIES:
        return -ORDER_URGENCIES.index(cls)
    return None


def _cause(item: Mapping[str, Any], event_id: str | None) -> tuple[str, str] | None:
    """What the item's event ``event_id`` did, in Chinese and English; ``None`` if unknown."""
    history = [r for r in item.get("history") or () if r.get("outcome", "applied") == "applied"]
    index = next((n for n, r in enumerate(history) if r.get("event_id") == event_id), None)
    if index is None:
        return None
    record = history[index]
    event_type, payload = record.get("event_type", ""), record.get("payload") or {}
    action = event_type.partition(".")[2]
    if action == "priority_changed":
        new, old = payload.get("priority"), _priority_before(history[:index])
        new_rank, old_rank = _rank(new), _rank(old)
        if old != new and new_rank is not None and old_rank is not None:
            raised = new_rank < old_rank
            return (
                f"优先级由 {old} {'升' if raised else '降'}为 {new}",
                f"priority {'raised' if raised else 'lowered'} to {new}",
            )
        return f"优先级调整为 {new}", f"priority changed to {new}"
    if action == "reopened":
        return "重新打开", "reopened"
    if action == "status_changed":
        return f"状态改为 {payload.get('status')}", f"status changed to {payload.get('status')}"
    return event_type, event_type


def _priority_before(history: list[Mapping[str, Any]]) -> str | None:
    """The item's priority (order: urgency) after ``history``, its events before the one asked about."""
    priority = None
    for record in history:
        payload = record.get("payload") or {}
        if record.get("event_type", "").endswith((".reported", ".opened", ".received", ".priority_changed")):
            priority = (
                payload.get("priority")
                or payload.get("urgency")
                or SEVERITY_PRIORITY.get(payload.get("severity", ""))
                or priority
            )
    return priority


def _alert(
    event: Event,
    facts: dict[str, Any],
    person: Recipient,
    config: RoutingConfig,
    *,
    copy: bool = False,
    fallback_note: str | None = None,
) -> Alert:
    kind = {"sla.warning_reached": "warning", "sla.breached": "breach"}.get(event.event_type, "escalation")
    channels = tuple(c for c, ok in ((EMAIL, person.email), (WEBHOOK, person.webhook), (LOG, True)) if ok)
    fields = dict(facts, recipient_role=person.role)
    if fallback_note is not None:
        fields["routing_note"] = fallback_note
    alert_id = f"{event.event_id}:{person.key}"
    subject = _subject(kind, facts, copy=copy, fallback=fallback_note is not None)
    text = _text(kind, facts, person, config, alert_id, copy=copy, note=fallback_note)
    return Alert(
        alert_id=alert_id,
        event_id=event.event_id,
        event_type=event.event_type,
        customer_id=event.customer_id,
        kind=kind,
        recipient=person,
        channels=channels,
        subject=subject,
        text=text,
        fields=MappingProxyType(fields),
        copy=copy,
        fallback=fallback_note is not None,
    )


def _subject(kind: str, f: Mapping[str, Any], *, copy: bool, fallback: bool) -> str:
    """One line a manager can act on from the inbox list: who, what, which clock, how bad."""
    kind_label = ITEM_KIND_LABELS.get(f["item_kind"], f["item_kind"])
    metric, metric_label = f["metric"], METRIC_LABELS.get(f["metric"], f["metric"])
    customer = f["customer_name"] or f"客户 {f['customer_id']}"
    tags = {"warning": "SLA预警", "breach": "SLA违约"}.get(kind) or f"SLA升级·第{f['step']}级"
    tags += "·抄送" if copy else ""
    tags += "·待转办" if fallback else ""
    what = f"{customer} {kind_label} {f['item_id']} {metric_label}时限"
    if kind == "warning":
        return f"【{tags}】{what}即将到期 ({metric} {f['threshold'] or 'warning'} reached)"
    if kind == "breach":
        return f"【{tags}】{what}已超 ({metric} breached)"
    role = ROLE_LABELS.get(f["role"], f["role"])
    return f"【{tags}】{what}超时，升级至{role} ({metric} escalation step {f['step']}: {f['role']})"


def _text(
    kind: str,
    f: Mapping[str, Any],
    person: Recipient,
    config: RoutingConfig,
    alert_id: str,
    *,
    copy: bool,
    note: str | None,
) -> str:
    kind_label = ITEM_KIND_LABELS.get(f["item_kind"], f["item_kind"])
    metric_label = METRIC_LABELS.get(f["metric"], f["metric"])
    tier = f"（{f['tier_label'] or f['tier']}）" if f["tier"] or f["tier_label"] else ""
    now_priority = f["item_priority"] if f["item_priority"] != f["priority"] else None
    item_bits = [
        b
        for b in (
            f["summary"],
            f["service"],
            f"现优先级 {now_priority}" if now_priority else None,
            f"状态 {f['item_state']}" if f["item_state"] else None,
        )
        if b
    ]
    lines = [
        f"客户: {f['customer_name'] or '(未知客户)'}{tier} {f['customer_id']}",
        f"事项: {kind_label} {f['item_id']}" + (f" · {' · '.join(item_bits)}" if item_bits else ""),
    ]
    clock = f"时限: {metric_label} 第{f['cycle']}轮"
    if f["priority"]:
        clock += f" · 优先级 {f['priority']}"
    if f["target_seconds"] is not None:
        clock += f" · 目标 {format_duration(timedelta(seconds=f['target_seconds']))}"
    clock += f" · 策略 {f['policy']}"
    if f["deadline"]:
        clock += f" · 截止 {_local(f['deadline'], config.display_tz)}"
    lines.append(clock)
    known_zh, known_en = _known(f, config)
    due = _local(f["due_at"], config.display_tz)
    if kind == "warning":
        lines.append(f"已用时限 {f['threshold'] or ''}{known_zh}，请第一责任人跟进，避免违约。")
        english = f"{f['metric']} SLA {f['threshold'] or 'warning'} reached"
    elif kind == "breach":
        lines.append(
            f"已于 {_local(f['deadline'] or f['due_at'], config.display_tz)} 违约"
            f"{known_zh}，请立即处理并向客户反馈。"
        )
        english = f"{f['metric']} SLA breached"
    else:
        role = ROLE_LABELS.get(f["role"], f["role"])
        lines.append(f"第{f['step']}级升级至{role}（{due}）{known_zh}，请督办并回复确认。")
        english = f"{f['metric']} SLA escalation step {f['step']} to {f['role']}"
    if known_en:
        english += f" at {due} {known_en}"
    if copy:
        lines.append("您作为第一责任人收到此抄送。 (cc: you are the first responsible person)")
    if note:
        lines.append(f"转办原因: {note}。请值班台核实并转交。")
    target = (
        f"target {format_duration(timedelta(seconds=f['target_seconds']))}"
        if f["target_seconds"] is not None
        else None
    )
    clock_en = " ".join(b for b in (f["priority"], target) if b)
    lines.append(
        f"English: {english} for {f['item_kind']} {f['item_id']} of customer "
        f"{f['customer_id']}; due {f['due_at']}; "
        + (f"{clock_en}; " if clock_en else "")
        + f"policy {f['policy']}."
    )
    lines.append(f"告警编号 (alert id): {alert_id}")
    return "\n".join(lines)


def _known(f: Mapping[str, Any], config: RoutingConfig) -> tuple[str, str]:
    """For a step already past when it became known: "（10:39 获知，...）" and "(known at 10:39, ...)"."""
    if not f["detected_at"]:
        return "", ""
    known = _local(f["detected_at"], config.display_tz, since=f["due_at"])
    zh, en = f["cause"] or (None, None)
    return (f"（{known} 获知{'，' + zh if zh else ''}）", f"(known at {known}{', ' + en if en else ''})")


def _local(iso: str, tz: tzinfo, *, since: str | None = None) -> str:
    """An ISO instant as local wall time for humans; the raw string if it does not parse.

    With ``since`` (an earlier instant already shown), only the time of day
    when both fall on the same local date: "10:39".
    """
    try:
        instant = datetime.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    if instant.tzinfo is None:
        return str(iso)
    local = instant.astimezone(tz)
    if since is not None:
        try:
            before = datetime.fromisoformat(since).astimezone(tz)
        except (TypeError, ValueError):
            before = None
        if before is not None and before.date() == local.date():
            return f"{local:%H:%M}"
    return f"{local:%Y-%m-%d %H:%M} ({local.tzname() or tz})"


# ---------------------------------------------------------------- chat-robot rendering
# The same content shaped for each receiver; pure, so it lives with the content.


def webhook_format_for(url: str) -> str:
    """Guess a robot's format from its well-known host; anything else gets generic JSON."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "qyapi.weixin.qq.com":
        return "wecom"
    if host in ("oapi.dingtalk.com", "api.dingtalk.com"):
        return "dingtalk"
    if host == "hooks.slack.com":
        return "slack"
    return "generic"


def webhook_payload(fmt: str, alert: Alert) -> dict[str, Any]:
    """The JSON body each receiver expects.

    Robots reject unknown top-level keys, so for WeCom/DingTalk/Slack the alert id
    rides inside the message text (it is already its last line) and in the
    ``Idempotency-Key`` header; the generic body has it as ``alert_id``.
    """
    lines = alert.text.splitlines()
    if fmt == "wecom":
        content = "\n".join([f"## {alert.subject}", *(f"> {line}" for line in lines)])
        if len(content.encode()) > WECOM_MARKDOWN_MAX_BYTES:  # keep the alert-id line
            tail = f"\n…\n> {lines[-1]}"
            content = _cut_utf8(content, WECOM_MARKDOWN_MAX_BYTES - len(tail.encode())) + tail
        return {"msgtype": "markdown", "markdown": {"content": content}}
    if fmt == "dingtalk":
        phone = alert.recipient.phone
        text = "\n\n".join([f"### {alert.subject}", *lines] + ([f"@{phone}"] if phone else []))
        body: dict[str, Any] = {
            "msgtype": "markdown",
            "markdown": {"title": alert.subject[:64], "text": text},
        }
        if phone:
            body["at"] = {"atMobiles": [phone], "isAtAll": False}
        return body
    if fmt == "slack":
        return {
            "text": f"{alert.subject}\n{alert.text}",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": alert.subject[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": alert.text[:3000]}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert id `{alert.alert_id}`"}]},
            ],
        }
    return alert.to_dict()


def _cut_utf8(text: str, max_bytes: int) -> str:
    data = text.encode()
    return text if len(data) <= max_bytes else data[:max_bytes].decode("utf-8", "ignore")
