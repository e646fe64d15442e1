"""A realistic month of keydesk events, for the report agreement tests and benchmarks.

``generate_month`` builds a customer base across every tier (a few diamond
accounts ... many public customers), each with a region, an account manager
(one manager serves several customers) and an escalation chain, then a month of
faults, tickets and orders going through their closed loops: acknowledgement
after minutes, dispatch and repair, restoration after hours (some late against
their SLA, most on time), customer confirmation, closure and the follow-up call
(回访) with a satisfaction score for most closed items.  Some faults and
tickets are closed without ever being restored or resolved (duplicates, no
fault found, withdrawn requests), and some resolved tickets are reassigned
for follow-up before they are closed.  Along the way: pauses
(pending_customer / pending_third_party) and resumption, reopens of restored or
closed faults and tickets, ticket re-prioritisation, order resource shortfalls,
milestones, activation, acceptance and a few cancellations, a few profile
changes during the month (region, account manager, a tier upgrade), and a few
escalation acknowledgements sent by managers.  Items opened near the end of the
month are still open when it ends: nothing after the month is generated.

Durations are drawn as fractions of the item's own SLA target in *business*
time of its policy's calendar (``sla_rules/default_rules.toml``), so that
late and on-time work are both common on every calendar.

The list is in *arrival* order: by event time, except ~2% late events (each
arrives after some later events of its customer) and ~1% exact duplicates
(the same event again, further down the list).  Everything is deterministic
for a seed: one ``random.Random(seed)`` and event ids derived with uuid5 from
the seed and a counter.  Every event goes through
:func:`schemas.envelope.event_from_dict`, so every one is valid.

:class:`MonthBuilder` is also the base of ``tests/generated_log.py`` (the same
items recorded to the minute, with the twists of a real export): what an item
can be (:meth:`~MonthBuilder.makers`) and how the source records and lists
events (:meth:`~MonthBuilder.instant`, :meth:`~MonthBuilder.source_order`,
:meth:`~MonthBuilder.stamp`) are the places it differs.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from schemas.envelope import Event, InvalidEvent, decode_lines, event_from_dict, utc_iso
from sla_rules import RuleSet, load_rules
from sla_rules.instants import from_us, td_us, to_us
from streams.vocabulary import SEVERITY_PRIORITY

TIERS = ("diamond", "platinum", "gold", "vip", "business", "public")
TIER_WEIGHTS = (2, 5, 10, 20, 28, 35)
# Bigger customers raise more work; the weighted mean of these is ~1.
ITEM_FACTOR = {"diamond": 1.8, "platinum": 1.5, "gold": 1.3, "vip": 1.1, "business": 0.9, "public": 0.8}
REGIONS = ("广东/广州", "广东/深圳", "广东/佛山", "广东/东莞", "北京", "上海", "浙江/杭州", "江苏/南京")
SURNAMES = "李王张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ("敏", "伟", "芳", "强", "静", "磊", "洋", "艳", "军", "杰", "娟", "涛", "明", "超")
SERVICES = ("MPLS VPN", "dedicated internet", "leased line", "IDC hosting", "SD-WAN")
PRODUCTS = ("leased_line", "dedicated_internet", "mpls_vpn", "sd_wan")
PAUSES = ("pending_customer", "pending_third_party")
SATISFACTION = ((1, 2, 3, 4, 5), (3, 5, 15, 37, 40))

LATE_SHARE = 0.02
UNRESOLVED_SHARE = 0.03  # faults and tickets closed without restoration / resolution
DUPLICATE_SHARE = 0.01
_NAMESPACE = uuid.UUID("6c1e0f3a-8b7d-4f52-a1c9-3e5d7b9f0a24")


@lru_cache(maxsize=1)
def _default_rules() -> RuleSet:
    return load_rules()


def _next_month(start: datetime) -> datetime:
    year, month = (start.year + 1, 1) if start.month == 12 else (start.year, start.month + 1)
    return start.replace(year=year, month=month)


@dataclass
class GeneratedCustomer:
    customer_id: str
    tier: str
    region: str | None
    manager: dict[str, str]
    chain: list[dict[str, str]]
    registered_at: datetime
    # profile changes during the month: (instant, payload)
    updates: list[tuple[datetime, dict[str, Any]]] = field(default_factory=list)

    def tier_at(self, instant: datetime) -> str:
        tier = self.tier if instant >= self.registered_at else "public"
        for at, payload in self.updates:
            if at <= instant and "tier" in payload:
                tier = payload["tier"]
        return tier

    def manager_at(self, instant: datetime) -> dict[str, str]:
        manager = self.manager
        for at, payload in self.updates:
            if at <= instant and "account_manager" in payload:
                manager = payload["account_manager"]
        return manager


class MonthBuilder:
    """The generator's state: the random source, the rules and the events so far."""

    def __init__(
        self, rng: random.Random, seed: int, month_start: datetime, month_end: datetime, rules: RuleSet
    ) -> None:
        self.rng, self.seed, self.rules = rng, seed, rules
        self.month_start, self.month_end = month_start, month_end
        self.counter = 0
        self.item_seq = {"fault": 0, "ticket": 0, "order": 0}
        # (occurred_at, sequence, wire dict without event_id) per customer
        self.raw: dict[str, list[tuple[datetime, int, dict[str, Any]]]] = {}

    # -- building blocks ---------------------------------------------------------

    def emit(
        self,
        customer_id: str,
        entity_id: str,
        event_type: str,
        at: datetime,
        payload: dict[str, Any],
        *,
        source: str,
        actor: str,
    ) -> None:
        """Record an event (dropped when it would happen after the month)."""
        if at >= self.month_end:
            return
        self.counter += 1
        self.raw.setdefault(customer_id, []).append(
            (
                at,
                self.counter,
                {
                    "event_type": event_type,
                    "schema_version": 1,
                    "customer_id": customer_id,
                    "entity_id": entity_id,
                    "source": source,
                    "actor": actor,
                    "payload": payload,
                },
            )
        )

    def name(self) -> str:
        return (
            self.rng.choice(SURNAMES)
            + self.rng.choice(GIVEN)
            + (self.rng.choice(GIVEN) if self.rng.random() < 0.5 else "")
        )

    def minutes(self, lo: float, hi: float) -> timedelta:
        return timedelta(seconds=round(self.rng.uniform(lo, hi) * 60))

    def ratio(self, late_share: float) -> float:
        """Share of the target used: mostly well inside it, sometimes past it."""
        if self.rng.random() < late_share:
            return self.rng.uniform(1.05, 2.5)
        return self.rng.uniform(0.05, 0.9)

    def policy(self, customer: GeneratedCustomer, kind: str, at: datetime):
        """The policy the item will (very likely) be measured under; for durations only."""
        policy_id = (
            "contract-C-0001"
            if customer.customer_id == "C-0001" and kind == "fault"
            else customer.tier_at(at)
        )
        return self.rules.policy_in_force(policy_id, at) or self.rules.policy_in_force("public", at)

    def after(self, policy, start: datetime, business: timedelta) -> datetime:
        """``business`` time of the policy's calendar after ``start``, in whole seconds."""
        calendar = self.rules.calendars[policy.calendar_id]
        _, reached = calendar.reach(to_us(start), None, [td_us(business)])
        instant = from_us(reached[0]) if reached else start + business
        return instant.replace(microsecond=0) + timedelta(seconds=1 if instant.microsecond else 0)

    def target(self, policy, kind: str, cls: str, metric: str, fallback: str) -> timedelta:
        return policy.target(kind, cls, metric) or timedelta(hours=float(fallback))

    def revisit(
        self,
        customer: GeneratedCustomer,
        kind: str,
        item_id: str,
        closed_at: datetime,
        policy,
        subkind: str,
        cls: str,
        share: float,
    ) -> None:
        if self.rng.random() >= share:
            return
        target = self.target(policy, subkind, cls, "revisit", "16")
        at = self.after(policy, closed_at, target * self.ratio(0.1))
        score = self.rng.choices(*SATISFACTION)[0]
        payload: dict[str, Any] = {"satisfaction": score}
        if score <= 2:
            payload["comment"] = self.rng.choice(["修复太慢", "没人回电话", "问题反复出现"])
        elif self.rng.random() < 0.3:
            payload["comment"] = self.rng.choice(["满意", "客户经理响应及时", "处理专业"])
        self.emit(
            customer.customer_id,
            item_id,
            f"{kind}.revisit_recorded",
            at,
            payload,
            source="account_manager",
            actor=customer.manager_at(at)["id"],
        )

    def acknowledge(
        self,
        customer: GeneratedCustomer,
        kind: str,
        item_id: str,
        metric: str,
        deadline: datetime,
        before: datetime,
    ) -> None:
        """Now and then a manager acknowledges the escalation of a late clock."""
        if self.rng.random() >= 0.12 or before - deadline < timedelta(minutes=20):
            return
        at = deadline + self.minutes(5, min(120, (before - deadline).total_seconds() / 60 - 5))
        manager = customer.manager_at(at)
        self.emit(
            customer.customer_id,
            item_id,
            "sla.escalation_acknowledged",
            at,
            {
                "item_kind": kind,
                "metric": metric,
                "cycle": 1,
                "note": self.rng.choice(
                    ["已协调传输班组加急处理", "已致电客户致歉", "跟进中，今晚恢复", "已升级厂家支持"]
                ),
            },
            source="account_manager",
            actor=manager["id"],
        )

    def same_instant(self, customer_id: str, item_id: str, at: datetime, *, swap: bool) -> None:
        """The item's events at ``at`` recorded at that instant, as an importer sends them;
        ``swap``: in the reverse of the order they were emitted in."""
        own = self.raw[customer_id]
        places = [n for n, (when, _, wire) in enumerate(own) if when == at and wire["entity_id"] == item_id]
        for n in places:
            own[n][2]["_recorded_as_occurred"] = True
        if swap:
            seqs = [own[n][1] for n in places][::-1]
            for n, seq in zip(places, seqs):
                own[n] = (own[n][0], seq, own[n][2])

    def close_unresolved(
        self, customer: GeneratedCustomer, kind: str, item_id: str, opened: datetime, reasons: tuple[str, ...]
    ) -> None:
        """Closed without ever being restored/resolved: seconds after opening, or hours."""
        rng, cid = self.rng, customer.customer_id
        last = opened
        if rng.random() < 0.4:
            last += self.minutes(1, 20)
            self.emit(cid, item_id, f"{kind}.acknowledged", last, {}, source="hotline", actor="staff-desk")
        quick = rng.random() < 0.4
        closed = last + (timedelta(seconds=rng.randint(5, 50)) if quick else self.minutes(30, 9 * 60))
        payload = {"closed_unresolved": rng.choice(reasons)}
        if kind == "ticket" and rng.random() < 0.5:
            payload["note"] = "重复工单" if payload["closed_unresolved"] == "duplicate" else "客户撤回"
        self.emit(cid, item_id, f"{kind}.closed", closed, payload, source="hotline", actor="staff-desk")

    def pause(
        self, customer: GeneratedCustomer, kind: str, item_id: str, start: datetime
    ) -> tuple[datetime, datetime]:
        """A pending_* status from ``start`` and the in_progress that ends it."""
        status = self.rng.choice(PAUSES)
        end = start + self.minutes(30, 36 * 60)
        reason = "等待客户提供机房钥匙" if status == "pending_customer" else "等待电力/业主配合"
        self.emit(
            customer.customer_id,
            item_id,
            f"{kind}.status_changed",
            start,
            {"status": status, "reason": reason},
            source="hotline",
            actor="staff-desk",
        )
        self.emit(
            customer.customer_id,
            item_id,
            f"{kind}.status_changed",
            end,
            {"status": "in_progress"},
            source="hotline",
            actor="staff-desk",
        )
        return start, end

    # -- customers -----------------------------------------------------------------

    def customers(self, count: int) -> list[GeneratedCustomer]:
        rng = self.rng
        manager_count = max(2, math.ceil(count / 7))
        managers = [
            {
                "id": f"AM-{n:03d}",
                "name": self.name(),
                "email": f"am{n:03d}@keydesk.example",
                "phone": f"1380000{n:04d}",
            }
            for n in range(1, manager_count + 1)
        ]
        heads = [{"role": "department_head", "name": self.name()} for _ in range(4)]
        leaders = [{"role": "branch_leader", "name": self.name()} for _ in range(2)]
        executive = {"role": "executive", "name": self.name()}
        out = []
        for n in range(1, count + 1):
            # the first six cover every tier (C-0001, diamond, has a sample contract)
            tier = TIERS[n - 1] if n <= len(TIERS) else rng.choices(TIERS, TIER_WEIGHTS)[0]
            manager = rng.choice(managers)
            chain = [
                {"role": "account_manager", "name": manager["name"], "email": manager["email"]},
                rng.choice(heads),
                rng.choice(leaders),
            ]
            if tier in ("diamond", "platinum", "gold"):
                chain.append(executive)
            if rng.random() < 0.04:  # a few register during the month
                registered = self.month_start + self.minutes(60, 10 * 24 * 60)
            else:
                registered = self.month_start - self.minutes(0, 3 * 24 * 60)
            customer = GeneratedCustomer(
                f"C-{n:04d}",
                tier,
                None if rng.random() < 0.05 else rng.choice(REGIONS),
                manager,
                chain,
                registered,
            )
            payload: dict[str, Any] = {
                "name": f"客户{n:04d}有限公司",
                "tier": tier,
                "industry": rng.choice(["I63", "J66", "S92", "C39"]),
                "account_manager": manager,
                "escalation_chain": chain,
            }
            if customer.region:
                payload["region"] = customer.region
            self.emit(
                customer.customer_id,
                customer.customer_id,
                "customer.registered",
                registered,
                payload,
                source="account_manager",
                actor=manager["id"],
            )
            self.updates(customer, managers)
            out.append(customer)
        return out

    def updates(self, customer: GeneratedCustomer, managers: list[dict[str, str]]) -> None:
        rng = self.rng
        if rng.random() >= 0.08:
            return
        at = max(customer.registered_at, self.month_start) + self.minutes(60, 25 * 24 * 60)
        what = rng.random()
        if what < 0.4:
            payload: dict[str, Any] = {"region": rng.choice(REGIONS)}
        elif what < 0.8:
            manager = rng.choice(managers)
            payload = {
                "account_manager": manager,
                "escalation_chain": [
                    {"role": "account_manager", "name": manager["name"]},
                    *customer.chain[1:],
                ],
            }
        else:
            index = TIERS.index(customer.tier)
            if index == 0:
                payload = {"region": rng.choice(REGIONS)}
            else:
                payload = {"tier": TIERS[index - 1]}
        customer.updates.append((at, payload))
        self.emit(
            customer.customer_id,
            customer.customer_id,
            "customer.updated",
            at,
            payload,
            source="account_manager",
            actor=customer.manager_at(at)["id"],
        )

    # -- items ---------------------------------------------------------------------

    def opening_instant(self, kind: str) -> datetime:
        days = (self.month_end - self.month_start).days
        day = self.rng.randrange(days)
        if kind == "fault":
            hour = self.rng.choices(range(24), [1] * 7 + [3] * 14 + [2] * 3)[0]
        else:
            hour = self.rng.choices(range(24), [0.2] * 8 + [3] * 11 + [0.5] * 5)[0]
        return self.month_start + timedelta(days=day, hours=hour, seconds=self.rng.randrange(3600))

    def new_id(self, kind: str) -> str:
        self.item_seq[kind] += 1
        return f"{kind[0].upper()}-{self.item_seq[kind]:06d}"

    def fault(self, c: GeneratedCustomer, t0: datetime) -> None:
        rng, cid, item = self.rng, c.customer_id, self.new_id("fault")
        severity = rng.choices(tuple(SEVERITY_PRIORITY), (10, 25, 40, 25))[0]
        payload: dict[str, Any] = {
            "severity": severity,
            "summary": rng.choice(["专线中断", "丢包严重", "时延抖动", "光功率告警", "端口闪断"]),
            "service": rng.choice(SERVICES),
            "circuit_id": f"GZ-{rng.randrange(10**6):06d}",
        }
        if rng.random() < 0.25:
            payload["priority"] = rng.choice(("P1", "P2", "P3", "P4"))
        cls = payload.get("priority") or SEVERITY_PRIORITY[severity]
        policy = self.policy(c, "fault", t0)
        source = rng.choice(("hotline", "network_alarm", "account_manager", "web"))
        self.emit(
            cid,
            item,
            "fault.reported",
            t0,
            payload,
            source=source,
            actor="noc" if source == "network_alarm" else "staff-desk",
        )
        response = self.target(policy, "fault", cls, "response", "1")
        restore = self.target(policy, "fault", cls, "restore", "8")
        last = t0
        if rng.random() < UNRESOLVED_SHARE:
            self.close_unresolved(c, "fault", item, t0, ("duplicate", "no_fault_found", "other"))
            return
        if rng.random() < 0.95:
            last = self.after(policy, t0, response * self.ratio(0.12)) + timedelta(seconds=1)
            self.emit(
                cid,
                item,
                "fault.acknowledged",
                last,
                {"note": "已受理"} if rng.random() < 0.3 else {},
                source="hotline",
                actor="staff-desk",
            )
        last += self.minutes(3, 60)
        self.emit(
            cid,
            item,
            "fault.dispatched",
            last,
            {"team": f"传输{rng.randrange(1, 30)}班", "engineer": self.name()},
            source="system",
            actor="dispatcher",
        )
        if rng.random() < 0.8:
            last += self.minutes(10, 90)
            self.emit(cid, item, "fault.repair_started", last, {}, source="system", actor="engineer")
        paused = timedelta(0)
        if rng.random() < 0.15:
            start, end = self.pause(c, "fault", item, last + self.minutes(5, 60))
            paused, last = end - start, end
        restored = max(
            self.after(policy, t0, restore * self.ratio(0.18)) + paused, last + self.minutes(5, 60)
        )
        if not paused:
            self.acknowledge(c, "fault", item, "restore", self.after(policy, t0, restore), restored)
        self.emit(
            cid,
            item,
            "fault.restored",
            restored,
            {"cause": rng.choice(["光缆被挖断", "设备板卡故障", "配置错误", "停电"])},
            source="system",
            actor="engineer",
        )
        reopen_share = 0.5 if cid == "C-0001" else 0.06
        self.close_fault(c, item, restored, policy, cls, reopen_share, restore)

    def close_fault(
        self,
        c: GeneratedCustomer,
        item: str,
        restored: datetime,
        policy,
        cls: str,
        reopen_share: float,
        restore: timedelta,
    ) -> None:
        rng, cid = self.rng, c.customer_id
        last = restored
        if rng.random() < 0.85:
            last += self.minutes(20, 6 * 60)
            self.emit(cid, item, "fault.customer_confirmed", last, {}, source="hotline", actor="staff-desk")
        closed = None
        if rng.random() < 0.95:
            closed = last + self.minutes(10, 24 * 60)
            self.emit(
                cid,
                item,
                "fault.closed",
                closed,
                {"resolution": "更换板卡后恢复"},
                source="hotline",
                actor="staff-desk",
            )
        if rng.random() < reopen_share:
            reopened = (closed or last) + self.minutes(60, 48 * 60)
            self.emit(
                cid,
                item,
                "fault.reopened",
                reopened,
                {"reason": "故障复发"},
                source="hotline",
                actor="staff-desk",
            )
            if rng.random() < 0.5:
                self.emit(
                    cid,
                    item,
                    "fault.acknowledged",
                    reopened + self.minutes(2, 30),
                    {},
                    source="hotline",
                    actor="staff-desk",
                )
            again = self.after(policy, reopened, restore * self.ratio(0.3)) + self.minutes(31, 40)
            self.emit(
                cid, item, "fault.restored", again, {"cause": "跳纤松动"}, source="system", actor="engineer"
            )
            self.close_fault(c, item, again, policy, cls, 0.0, restore)
            return
        if closed is not None:
            self.revisit(c, "fault", item, closed, policy, "fault", cls, 0.85)

    def ticket(self, c: GeneratedCustomer, t0: datetime) -> None:
        rng, cid, item = self.rng, c.customer_id, self.new_id("ticket")
        kind = rng.choices(("complaint", "service_request", "inquiry"), (35, 40, 25))[0]
        cls = rng.choices(("P1", "P2", "P3", "P4"), (10, 25, 45, 20))[0]
        policy = self.policy(c, "ticket", t0)
        subject = {"complaint": "账单有误", "service_request": "申请增加带宽", "inquiry": "咨询专线资费"}[
            kind
        ]
        payload: dict[str, Any] = {"kind": kind, "priority": cls, "subject": subject}
        if rng.random() < 0.3:
            payload["description"] = "客户来电：" + subject
        self.emit(
            cid,
            item,
            "ticket.opened",
            t0,
            payload,
            source=rng.choice(("hotline", "web", "account_manager")),
            actor="staff-desk",
        )
        response = self.target(policy, kind, cls, "response", "2")
        resolve = self.target(policy, kind, cls, "resolve", "16")
        last = t0
        if rng.random() < UNRESOLVED_SHARE:
            self.close_unresolved(c, "ticket", item, t0, ("duplicate", "withdrawn", "other"))
            return
        acked_at = None
        if rng.random() < 0.95:
            last = acked_at = self.after(policy, t0, response * self.ratio(0.1)) + timedelta(seconds=1)
            self.emit(cid, item, "ticket.acknowledged", last, {}, source="hotline", actor="staff-desk")
        if rng.random() < 0.9:
            last += self.minutes(1, 30)
            self.emit(
                cid,
                item,
                "ticket.assigned",
                last,
                {"assignee": f"staff-{rng.randrange(1, 120):03d}", "group": "大客户支撑"},
                source="system",
                actor="dispatcher",
            )
        if rng.random() < 0.08:
            # Now and then re-prioritised at the acknowledgement itself, recorded at the same
            # instant (as an importer sends): either event may come first from the source,
            # and that order decides the response clock (streams/event_order.py).
            together = acked_at is not None and rng.random() < 0.3
            if together:
                at = acked_at
            else:
                last += self.minutes(5, 120)
                at = last
            new = rng.choice([p for p in ("P1", "P2", "P3", "P4") if p != cls])
            self.emit(
                cid,
                item,
                "ticket.priority_changed",
                at,
                {"priority": new, "reason": "客户经理要求升级" if new < cls else "影响较小"},
                source="account_manager",
                actor=c.manager_at(at)["id"],
            )
            if together:
                self.same_instant(cid, item, at, swap=rng.random() < 0.5)
            cls = new
            resolve = self.target(policy, kind, cls, "resolve", "16")
        paused = timedelta(0)
        if rng.random() < 0.15:
            start, end = self.pause(c, "ticket", item, last + self.minutes(5, 120))
            paused, last = end - start, end
        resolved = max(
            self.after(policy, t0, resolve * self.ratio(0.15)) + paused, last + self.minutes(5, 60)
        )
        if not paused:
            self.acknowledge(c, "ticket", item, "resolve", self.after(policy, t0, resolve), resolved)
        self.close_ticket(c, item, resolved, policy, kind, cls, resolve, 0.06)

    def close_ticket(
        self,
        c: GeneratedCustomer,
        item: str,
        resolved: datetime,
        policy,
        kind: str,
        cls: str,
        resolve: timedelta,
        reopen_share: float,
    ) -> None:
        rng, cid = self.rng, c.customer_id
        self.emit(
            cid,
            item,
            "ticket.resolved",
            resolved,
            {"resolution": "已处理并回复客户"},
            source="hotline",
            actor="staff-desk",
        )
        if rng.random() < 0.05:  # reassigned for follow-up or quality review, still resolved
            self.emit(
                cid,
                item,
                "ticket.assigned",
                resolved + self.minutes(1, 25),
                {"assignee": f"staff-{rng.randrange(1, 120):03d}", "group": "质检"},
                source="system",
                actor="dispatcher",
            )
        closed = None
        if rng.random() < 0.9:
            closed = resolved + self.minutes(30, 48 * 60)
            self.emit(cid, item, "ticket.closed", closed, {}, source="hotline", actor="staff-desk")
        if rng.random() < reopen_share:
            reopened = (closed or resolved) + self.minutes(60, 72 * 60)
            self.emit(
                cid,
                item,
                "ticket.reopened",
                reopened,
                {"reason": "客户不认可处理结果"},
                source="hotline",
                actor="staff-desk",
            )
            again = self.after(policy, reopened, resolve * self.ratio(0.3)) + self.minutes(5, 30)
            self.close_ticket(c, item, again, policy, kind, cls, resolve, 0.0)
            return
        if closed is not None:
            self.revisit(c, "ticket", item, closed, policy, kind, cls, 0.85)

    def order(self, c: GeneratedCustomer, t0: datetime) -> None:
        rng, cid, item = self.rng, c.customer_id, self.new_id("order")
        urgency = rng.choices(("normal", "urgent", "extra_urgent"), (60, 30, 10))[0]
        policy = self.policy(c, "order", t0)
        payload: dict[str, Any] = {
            "product": rng.choice(PRODUCTS),
            "urgency": urgency,
            "bandwidth": rng.choice(("20M", "100M", "1G", "10G")),
        }
        if rng.random() < 0.5:
            payload["sites"] = [
                {"address": f"{rng.choice(REGIONS)}某路{rng.randrange(1, 999)}号"}
                for _ in range(rng.randint(1, 3))
            ]
        self.emit(
            cid,
            item,
            "order.received",
            t0,
            payload,
            source=rng.choice(("account_manager", "web")),
            actor=c.manager_at(t0)["id"],
        )
        provision = self.target(policy, "order", urgency, "provision", "80")
        acceptance = self.target(policy, "order", urgency, "acceptance", "24")
        cancel_at = rng.random() < 0.04 and rng.randrange(4)
        last, paused = t0 + self.minutes(60, 24 * 60), timedelta(0)

        def cancel(stage: int, at: datetime) -> bool:
            if cancel_at is False or cancel_at != stage:
                return False
            self.emit(
                cid,
                item,
                "order.cancelled",
                at + self.minutes(30, 24 * 60),
                {"reason": rng.choice(["客户撤单", "项目取消", "资源无法满足"])},
                source="account_manager",
                actor=c.manager_at(at)["id"],
            )
            return True

        if cancel(0, t0):
            return
        if rng.random() < 0.15:  # resources are short: wait for a third party
            self.emit(
                cid,
                item,
                "order.resource_shortfall",
                last,
                {"reason": "端口资源不足"},
                source="system",
                actor="resource-check",
            )
            if cancel(1, last):
                return
            start = last + self.minutes(10, 120)
            self.emit(
                cid,
                item,
                "order.status_changed",
                start,
                {"status": "pending_third_party", "reason": "等待扩容"},
                source="system",
                actor="resource-check",
            )
            last = start + self.minutes(12 * 60, 5 * 24 * 60)
            self.emit(
                cid,
                item,
                "order.resource_confirmed",
                last,
                {"note": "扩容完成"},
                source="system",
                actor="resource-check",
            )
            last += self.minutes(10, 120)
            self.emit(
                cid,
                item,
                "order.status_changed",
                last,
                {"status": "in_progress"},
                source="system",
                actor="provisioning",
            )
            paused = last - start
        else:
            self.emit(
                cid, item, "order.resource_confirmed", last, {}, source="system", actor="resource-check"
            )
            last += self.minutes(30, 12 * 60)
            self.emit(
                cid, item, "order.provisioning_started", last, {}, source="system", actor="provisioning"
            )
            if rng.random() < 0.12:
                start, end = self.pause(c, "order", item, last + self.minutes(60, 24 * 60))
                paused, last = end - start, end
        if cancel(2, last):
            return
        activated = max(
            self.after(policy, t0, provision * self.ratio(0.15)) + paused, last + self.minutes(120, 24 * 60)
        )
        for milestone in rng.sample(["fibre_laid", "equipment_installed", "configured"], rng.randint(0, 3)):
            last = last + (activated - last) * rng.uniform(0.2, 0.9)
            self.emit(
                cid,
                item,
                "order.milestone_reached",
                last.replace(microsecond=0),
                {"milestone": milestone},
                source="system",
                actor="provisioning",
            )
        if cancel(3, last):
            return
        self.emit(
            cid,
            item,
            "order.activated",
            activated,
            {"note": "业务已开通"},
            source="system",
            actor="provisioning",
        )
        if rng.random() < 0.92:
            accepted = self.after(policy, activated, acceptance * self.ratio(0.1)) + timedelta(seconds=1)
            self.emit(
                cid,
                item,
                "order.customer_accepted",
                accepted,
                {},
                source="account_manager",
                actor=c.manager_at(accepted)["id"],
            )
            self.revisit(c, "order", item, accepted, policy, "order", urgency, 0.8)

    # -- the whole month -------------------------------------------------------------

    def makers(self) -> tuple[tuple[Callable[[GeneratedCustomer, datetime], None], float], ...]:
        """What an item can be, with weights: each maker opens one item at an instant."""
        return ((self.fault, 55), (self.ticket, 30), (self.order, 15))

    def build(self, customers: int, items_per_customer: float) -> list[Event]:
        """``customers`` customers, each with its items, in arrival order."""
        rng = self.rng
        makers, weights = zip(*self.makers())
        for customer in self.customers(customers):
            mean = items_per_customer * ITEM_FACTOR[customer.tier]
            count = max(0, round(rng.gauss(mean, math.sqrt(mean))))
            for _ in range(count):
                maker = rng.choices(makers, weights)[0]
                maker(customer, self.opening_instant(maker.__name__))
        return self.arrival()

    # -- arrival order ---------------------------------------------------------------

    def arrival(self) -> list[Event]:
        """Every customer's events in event time, then late events and duplicates mixed in."""
        return self.with_duplicates(
            [self.stamp(arrives, seq, wire, at) for arrives, seq, wire, at in self.arrival_keys()]
        )

    def instant(self, at: datetime) -> datetime:
        """The instant the source records for something that happened at ``at``."""
        return at

    def arrival_keys(self) -> list[tuple[datetime, int, dict[str, Any], datetime]]:
        """(arrives, sequence, wire dict, occurred_at) of every event, in arrival order."""
        rng = self.rng
        keyed: list[tuple[datetime, int, dict[str, Any], datetime]] = []
        for customer_id in sorted(self.raw):
            own = self.source_order(
                sorted(
                    ((self.instant(at), seq, wire) for at, seq, wire in self.raw[customer_id]),
                    key=lambda r: (r[0], r[1]),
                )
            )
            for index, (at, seq, wire) in enumerate(own):
                arrives = at
                later = own[index + 1 : index + 6]
                if later and rng.random() < LATE_SHARE:
                    # arrives after up to five later events of its customer
                    arrives = self.instant(rng.choice(later)[0] + self.minutes(1, 30))
                keyed.append((arrives, seq, wire, at))
        keyed.sort(key=lambda k: (k[0], k[1]))
        return keyed

    def source_order(
        self, own: list[tuple[datetime, int, dict[str, Any]]]
    ) -> list[tuple[datetime, int, dict[str, Any]]]:
        """One customer's events in the order its source lists them (here: event time)."""
        return own

    def stamp(self, arrives: datetime, seq: int, wire: dict[str, Any], at: datetime) -> Event:
        """The event as sent: its id, and recorded up to 30 s after it happened."""
        lag = timedelta(seconds=self.rng.randrange(0, 30))
        if wire.pop("_recorded_as_occurred", False):
            lag = timedelta(0)
        recorded = max(arrives, at + lag)
        return event_from_dict(
            {
                "event_id": str(uuid.uuid5(_NAMESPACE, f"{self.seed}|{seq}")),
                **wire,
                "occurred_at": utc_iso(at),
                "recorded_at": utc_iso(recorded),
            }
        )

    def with_duplicates(self, events: list[Event]) -> list[Event]:
        """``events`` with ~1% sent again, identical, up to 200 events further down."""
        rng = self.rng
        out: list[Event] = []
        pending: list[tuple[int, Event]] = []  # duplicates waiting for their place
        for index, event in enumerate(events):
            out.append(event)
            if rng.random() < DUPLICATE_SHARE:
                pending.append((index + rng.randint(1, 200), event))
            due = [e for i, e in pending if i <= index]
            if due:
                out.extend(due)
                pending = [(i, e) for i, e in pending if i > index]
        out.extend(e for _, e in pending)
        return out


def generate_month(
    *,
    customers: int = 300,
    month_start: datetime,
    seed: int = 1,
    items_per_customer: float = 8.0,
    rules: RuleSet | None = None,
) -> list[Event]:
    """A month of events from ``month_start`` (aware) for ``customers``, in arrival order.

    ``rules`` only shapes durations (fractions of each item's SLA targets);
    by default the shipped rules file.
    """
    if month_start.tzinfo is None or month_start.utcoffset() is None:
        raise ValueError("month_start must be an aware datetime")
    month = MonthBuilder(
        random.Random(seed), seed, month_start, _next_month(month_start), rules or _default_rules()
    )
    return month.build(customers, items_per_customer)


def write_events(events: Iterable[Event], path: str | Path) -> Path:
    """Write events as JSON lines (the wire bytes, one per line); returns the path."""
    path = Path(path)
    with path.open("wb") as out:
        for event in events:
            out.write(event.to_bytes())
            out.write(b"\n")
    return path


def read_events(path: str | Path) -> list[Event]:
    """Read a JSON-lines event file; an invalid line is an error (this file is ours)."""
    events = []
    with Path(path).open("rb") as lines:
        for number, _, event in decode_lines(lines):
            if isinstance(event, InvalidEvent):
                raise ValueError(f"{path}:{number}: {event}")
            events.append(event)
    return events


__all__ = ["GeneratedCustomer", "MonthBuilder", "generate_month", "read_events", "write_events"]
