"""A generated log shaped like a real desk's export (issue 10), for the step-agreement test
and the replay benchmark.

Built on the month of ``tests/month_of_events.py`` (same customers, faults, tickets
and orders, late events and duplicates), with what a desk exporting its history
sends and what broke keydesk on a real incident log:

* **minute precision**: source systems record to the minute, so every instant
  is a whole minute and many events share one (an item's report, acknowledgement
  and dispatch; an alarm storm of one customer's faults);
* **recorded_at = occurred_at**, as an importer or an alarm system sends, and
  **random (uuid4) event ids**: no id, no recording lag can order the events of
  one minute; the lifecycle and the source's order must;
* the source lists an item's events of one minute in any order now and then
  (an acknowledgement before its report);
* **closes without resolution** from every open state (duplicate, withdrawn,
  no fault found, other), some in the minute of opening, some hours later,
  a few reopened afterwards;
* **reassignments after resolution**, in the minute of the resolution or later;
* **resolve (restore) and reopen in one minute**, hence in one worker batch,
  some with a pending status in that minute too;
* **short-lived breaches**: a ticket's priority lowered minutes after its
  resolve deadline passed (under ``recompute`` the deadline moves past the
  breach), and a pending status set in or just after the minute of a deadline;
* **a priority raised past a deadline** under ``recompute``: the new target,
  counted from the opening, already lies in the past when it is set (some
  before the acknowledgement, so the response clock too).

About a third of the items are twists, taken in turn (every variant comes up
whatever the seed); the rest are the month's plain faults, tickets and orders.
Every event of an item is one its lifecycle accepts in the one order of events
(the report oracle's fold checks it, ``tests/test_generated_log.py``).

Everything is deterministic for a seed: one ``random.Random(seed)`` draws the
events and their ids (uuid4-shaped, from the same source).  Every event goes
through :func:`schemas.envelope.event_from_dict`, so every one is valid.

Two sizes: :func:`generate_log` by default is CI-sized (a week, ~3,000 events,
folded by a worker in well under a minute), :func:`large_log` has more than
100,000 events (a month, for ``bench/replay_speed.py``).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from schemas.envelope import Event, event_from_dict, utc_iso
from sla_rules import RuleSet
from streams.vocabulary import FAULT_SEVERITIES, PRIORITIES, SEVERITY_PRIORITY
from tests.month_of_events import GeneratedCustomer, MonthBuilder, _default_rules, _next_month

#: Share of an item's same-minute events the source lists in a shuffled order.
SHUFFLED_SHARE = 0.3
#: The open states an item may be closed from without resolution, in the order taken.
OPEN_STATES = {
    "ticket": ("open", "acknowledged", "in_progress", "pending", "reopened"),
    "fault": ("reported", "acknowledged", "dispatched", "in_repair", "pending", "reopened"),
}
#: Weight of the twists against the month's plain items (45 + 25 + 12): about 30 %.
TWIST_WEIGHT = 35
UNRESOLVED_REASONS = {
    "fault": ("duplicate", "no_fault_found", "withdrawn", "other"),
    "ticket": ("duplicate", "withdrawn", "other"),
}
TICKET_KINDS = ("complaint", "service_request", "inquiry")
#: Customers of the large log: a month of them is > 100,000 events.
LARGE_CUSTOMERS = 2000


class MinuteLog(MonthBuilder):
    """The month's generator, recording to the minute, with the twists of a real log."""

    # -- what the source sends -------------------------------------------------------

    def instant(self, at: datetime) -> datetime:
        """Source systems record to the minute (zones have whole-minute offsets)."""
        return at.replace(second=0, microsecond=0)

    def source_order(
        self, own: list[tuple[datetime, int, dict[str, Any]]]
    ) -> list[tuple[datetime, int, dict[str, Any]]]:
        """Now and then an item's events of one minute listed in a shuffled order."""
        groups: dict[tuple[datetime, str], list[int]] = {}
        for index, (at, _, wire) in enumerate(own):
            groups.setdefault((at, wire["entity_id"]), []).append(index)
        out = list(own)
        for places in groups.values():
            if len(places) > 1 and self.rng.random() < SHUFFLED_SHARE:
                wires = [own[n][2] for n in places]
                self.rng.shuffle(wires)
                for n, wire in zip(places, wires):  # same minute: only the listing changes
                    out[n] = (own[n][0], own[n][1], wire)
        return out

    def stamp(self, arrives: datetime, seq: int, wire: dict[str, Any], at: datetime) -> Event:
        """Recorded at the instant it happened, under a random id."""
        wire.pop("_recorded_as_occurred", None)
        return event_from_dict(
            {
                "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                **wire,
                "occurred_at": utc_iso(at),
                "recorded_at": utc_iso(at),
            }
        )

    # -- items -----------------------------------------------------------------------

    def makers(self):
        return ((self.fault, 45), (self.ticket, 25), (self.order, 12), (self.twist, TWIST_WEIGHT))

    def twist(self, c: GeneratedCustomer, t0: datetime) -> None:
        """The next of the twists, in turn: every variant comes up, whatever the seed."""
        if not hasattr(self, "_twists"):
            self._twists = self.twists()
            self._turn = 0
        maker = self._twists[self._turn % len(self._twists)]
        self._turn += 1
        maker(c, t0)

    def twists(self) -> list[Callable[[GeneratedCustomer, datetime], None]]:
        """Each twist with each of its variants, once per round."""
        out: list[Callable[[GeneratedCustomer, datetime], None]] = []
        for family in ("ticket", "fault"):
            for paused in (False, True):
                out.append(partial(self.reopened_in_the_minute_of_resolution, family=family, paused=paused))
            out.append(partial(self.paused_at_deadline, family=family))
            out += [partial(self.closed_unresolved, family=family, path=path) for path in OPEN_STATES[family]]
        for before_ack in (False, True):
            out.append(partial(self.priority_raised_past_deadline, before_ack=before_ack))
            out.append(self.priority_lowered_after_breach)
        out += [self.reassigned_after_resolution] * 2 + [self.flurry] * 2 + [self.storm]
        return out

    def open_ticket(
        self, c: GeneratedCustomer, t0: datetime, cls: str | None = None, kind: str | None = None
    ) -> tuple[str, str, str, Any]:
        """A ticket opened at ``t0``: its id, kind, priority and policy."""
        rng = self.rng
        item = self.new_id("ticket")
        kind = kind or rng.choice(TICKET_KINDS)
        cls = cls or rng.choice(PRIORITIES)
        self.emit(
            c.customer_id,
            item,
            "ticket.opened",
            t0,
            {"kind": kind, "priority": cls, "subject": "客户来电"},
            source=rng.choice(("hotline", "web")),
            actor="staff-desk",
        )
        return item, kind, cls, self.policy(c, "ticket", t0)

    def report_fault(
        self, c: GeneratedCustomer, t0: datetime, source: str = "hotline"
    ) -> tuple[str, str, Any]:
        """A fault reported at ``t0``: its id, priority and policy."""
        item = self.new_id("fault")
        severity = self.rng.choice(FAULT_SEVERITIES)
        self.emit(
            c.customer_id,
            item,
            "fault.reported",
            t0,
            {
                "severity": severity,
                "summary": "专线中断",
                "service": "MPLS VPN",
                "circuit_id": f"GZ-{self.rng.randrange(10**6):06d}",
            },
            source=source,
            actor="noc" if source == "network_alarm" else "staff-desk",
        )
        cls = SEVERITY_PRIORITY[severity]
        return item, cls, self.policy(c, "fault", t0)

    def ev(
        self,
        c: GeneratedCustomer,
        item: str,
        event_type: str,
        at: datetime,
        payload: dict[str, Any] | None = None,
        actor: str = "staff-desk",
    ) -> datetime:
        """Emit one item event from the hotline; returns its instant."""
        self.emit(c.customer_id, item, event_type, at, payload or {}, source="hotline", actor=actor)
        return at

    def done(self, c: GeneratedCustomer, family: str, item: str, at: datetime) -> datetime:
        """The ticket resolved, the fault's service restored, at ``at``."""
        if family == "ticket":
            return self.ev(c, item, "ticket.resolved", at, {"resolution": "已处理并回复客户"})
        return self.ev(c, item, "fault.restored", at, {"cause": "设备板卡故障"}, actor="engineer")

    def finish(
        self, c: GeneratedCustomer, kind: str, item: str, done: datetime, policy, subkind: str, cls: str
    ) -> None:
        """Usually closed some time after resolution, with a revisit now and then."""
        if self.rng.random() < 0.85:
            closed = self.ev(
                c,
                item,
                f"{kind}.closed",
                done + self.minutes(10, 20 * 60),
                {"resolution": "已处理"} if kind == "fault" else {},
            )
            self.revisit(c, kind, item, closed, policy, subkind, cls, 0.7)

    def reopened_in_the_minute_of_resolution(
        self, c: GeneratedCustomer, t0: datetime, *, family: str, paused: bool
    ) -> None:
        """Resolved (restored) and reopened in one minute; ``paused``: pending in it too."""
        rng = self.rng
        if family == "ticket":
            item, kind, cls, policy = self.open_ticket(c, t0)
            subkind, metric = kind, "resolve"
        else:
            item, cls, policy = self.report_fault(c, t0)
            subkind, metric = "fault", "restore"
        target = self.target(policy, subkind, cls, metric, "8")
        last = self.ev(
            c,
            item,
            f"{family}.acknowledged",
            self.after(policy, t0, self.target(policy, subkind, cls, "response", "1") * self.ratio(0.1)),
        )
        done = max(self.after(policy, t0, target * self.ratio(0.25)), last + self.minutes(2, 30))
        done = self.instant(done) + timedelta(seconds=rng.randint(0, 20))
        self.done(c, family, item, done)
        self.ev(
            c,
            item,
            f"{family}.reopened",
            done + timedelta(seconds=rng.randint(0, 20)),
            {"reason": "客户不认可处理结果"},
        )
        last = done
        if paused:  # pending in the minute of the reopen: its pause must hold
            self.ev(
                c,
                item,
                f"{family}.status_changed",
                self.instant(done) + timedelta(seconds=50),
                {"status": rng.choice(("pending_customer", "pending_third_party")), "reason": "等待客户确认"},
            )
            last = self.ev(
                c,
                item,
                f"{family}.status_changed",
                done + self.minutes(30, 8 * 60),
                {"status": "in_progress"},
            )
        again = max(self.after(policy, last, target * self.ratio(0.3)), last + self.minutes(5, 60))
        self.done(c, family, item, again)
        self.finish(c, family, item, again, policy, subkind, cls)

    def priority_raised_past_deadline(self, c: GeneratedCustomer, t0: datetime, *, before_ack: bool) -> None:
        """Raised to a priority whose target, counted from the opening, is already past.

        ``before_ack``: raised before the acknowledgement, past the new response
        deadline; else after it, past the new resolve deadline.
        """
        rng = self.rng
        old = rng.choice(("P3", "P4"))
        new = rng.choice(("P1", "P2"))
        item, kind, _, policy = self.open_ticket(c, t0, old)
        metric = "response" if before_ack else "resolve"
        past = self.after(policy, t0, self.target(policy, kind, new, metric, "1"))
        still = self.after(policy, t0, self.target(policy, kind, old, metric, "8"))
        raised = past + self.minutes(1, max(2.0, min(240.0, (still - past).total_seconds() / 120)))
        if not before_ack:
            self.ev(c, item, "ticket.acknowledged", t0 + self.minutes(1, 10))
        self.ev(
            c,
            item,
            "ticket.priority_changed",
            raised,
            {"priority": new, "reason": "客户经理要求升级"},
            actor=c.manager_at(raised)["id"],
        )
        if before_ack:
            self.ev(c, item, "ticket.acknowledged", raised + timedelta(seconds=rng.randint(0, 600)))
        resolved = raised + self.minutes(5, 180)
        self.done(c, "ticket", item, resolved)
        self.finish(c, "ticket", item, resolved, policy, kind, new)

    def priority_lowered_after_breach(self, c: GeneratedCustomer, t0: datetime) -> None:
        """Lowered minutes after the resolve deadline passed: a breach that lasted minutes."""
        rng = self.rng
        old = rng.choice(("P1", "P2"))
        new = rng.choice(("P3", "P4"))
        item, kind, _, policy = self.open_ticket(c, t0, old)
        self.ev(c, item, "ticket.acknowledged", t0 + self.minutes(1, 10))
        breach = self.after(policy, t0, self.target(policy, kind, old, "resolve", "8"))
        later = self.after(policy, t0, self.target(policy, kind, new, "resolve", "24"))
        room = max(6.0, min(90.0, (later - breach).total_seconds() / 120))
        lowered = breach + self.minutes(1, room)
        self.ev(
            c,
            item,
            "ticket.priority_changed",
            lowered,
            {"priority": new, "reason": "影响较小"},
            actor=c.manager_at(lowered)["id"],
        )
        resolved = lowered + (later - lowered) * rng.uniform(0.1, 0.8) + self.minutes(1, 5)
        self.done(c, "ticket", item, resolved.replace(microsecond=0))
        self.finish(c, "ticket", item, resolved, policy, kind, new)

    def paused_at_deadline(self, c: GeneratedCustomer, t0: datetime, *, family: str) -> None:
        """Paused in the minute of its resolve (restore) deadline, or a few minutes after it."""
        rng = self.rng
        if family == "ticket":
            item, kind, cls, policy = self.open_ticket(c, t0)
            subkind, metric = kind, "resolve"
        else:
            item, cls, policy = self.report_fault(c, t0)
            subkind, metric = "fault", "restore"
        self.ev(c, item, f"{family}.acknowledged", t0 + self.minutes(1, 10))
        deadline = self.after(policy, t0, self.target(policy, subkind, cls, metric, "8"))
        paused = deadline + timedelta(seconds=rng.choice((0, 0, 30, 60, 120, 300)))
        self.ev(
            c,
            item,
            f"{family}.status_changed",
            paused,
            {
                "status": rng.choice(("pending_customer", "pending_third_party")),
                "reason": "等待客户提供机房钥匙",
            },
        )
        resumed = self.ev(
            c, item, f"{family}.status_changed", paused + self.minutes(20, 10 * 60), {"status": "in_progress"}
        )
        done = resumed + self.minutes(1, 120)
        self.done(c, family, item, done)
        self.finish(c, family, item, done, policy, subkind, cls)

    def closed_unresolved(self, c: GeneratedCustomer, t0: datetime, *, family: str, path: str) -> None:
        """Closed without resolution from the open state ``path``; a few reopened afterwards."""
        rng = self.rng
        if family == "ticket":
            item, kind, cls, policy = self.open_ticket(c, t0)
            subkind = kind
        else:
            item, cls, policy = self.report_fault(c, t0)
            subkind = "fault"
        last = t0
        # Opened and closed in the same minute, now and then; never closed in the minute
        # of a reopen: either order would do, and the source's listing would decide.
        quick = path != "reopened" and rng.random() < 0.3
        step = (lambda: timedelta(seconds=rng.randint(0, 8))) if quick else (lambda: self.minutes(2, 90))
        if path not in ("open", "reported"):
            last = self.ev(c, item, f"{family}.acknowledged", last + step())
        if path == "dispatched":
            last = self.ev(
                c, item, "fault.dispatched", last + step(), {"team": "传输3班"}, actor="dispatcher"
            )
        elif path == "in_repair":
            last = self.ev(c, item, "fault.repair_started", last + step(), actor="engineer")
        elif path in ("in_progress", "pending"):
            status = "in_progress" if path == "in_progress" else "pending_customer"
            last = self.ev(c, item, f"{family}.status_changed", last + step(), {"status": status})
        elif path == "reopened":
            last = self.done(c, family, item, last + self.minutes(10, 300))
            last = self.ev(
                c, item, f"{family}.reopened", last + self.minutes(5, 600), {"reason": "问题反复出现"}
            )
        closed = last + (timedelta(seconds=rng.randint(0, 8)) if quick else self.minutes(20, 10 * 60))
        reason = rng.choice(UNRESOLVED_REASONS[family])
        self.ev(c, item, f"{family}.closed", closed, {"closed_unresolved": reason})
        if rng.random() < 0.12:  # the customer calls again: the same item, reopened
            again = self.ev(
                c, item, f"{family}.reopened", closed + self.minutes(60, 24 * 60), {"reason": "客户再次来电"}
            )
            done = self.done(c, family, item, again + self.minutes(10, 8 * 60))
            self.finish(c, family, item, done, policy, subkind, cls)
        elif rng.random() < 0.2:
            self.revisit(c, family, item, closed, policy, subkind, cls, 1.0)

    def reassigned_after_resolution(self, c: GeneratedCustomer, t0: datetime) -> None:
        """Reassigned for follow-up or quality review once resolved, in its minute or later."""
        rng = self.rng
        item, kind, cls, policy = self.open_ticket(c, t0)
        last = self.ev(c, item, "ticket.acknowledged", t0 + self.minutes(1, 30))
        last = self.ev(
            c,
            item,
            "ticket.assigned",
            last + self.minutes(1, 30),
            {"assignee": f"staff-{rng.randrange(1, 120):03d}", "group": "大客户支撑"},
            actor="dispatcher",
        )
        resolve = self.target(policy, kind, cls, "resolve", "16")
        resolved = max(self.after(policy, t0, resolve * self.ratio(0.15)), last + self.minutes(5, 60))
        self.done(c, "ticket", item, resolved)
        for at in (resolved, resolved + self.minutes(5, 600)):  # in its minute, then later
            self.ev(
                c,
                item,
                "ticket.assigned",
                at,
                {"assignee": f"staff-{rng.randrange(1, 120):03d}", "group": "质检"},
                actor="dispatcher",
            )
        self.finish(c, "ticket", item, resolved + self.minutes(601, 700), policy, kind, cls)

    def flurry(self, c: GeneratedCustomer, t0: datetime) -> None:
        """A fault reported, acknowledged, dispatched (and repair started) in one minute."""
        rng = self.rng
        item, cls, policy = self.report_fault(c, t0, source="network_alarm")
        self.ev(c, item, "fault.acknowledged", t0 + timedelta(seconds=rng.randint(0, 10)))
        self.ev(
            c,
            item,
            "fault.dispatched",
            t0 + timedelta(seconds=rng.randint(11, 20)),
            {"team": "传输7班"},
            actor="dispatcher",
        )
        if rng.random() < 0.5:
            self.ev(
                c, item, "fault.repair_started", t0 + timedelta(seconds=rng.randint(21, 30)), actor="engineer"
            )
        restore = self.target(policy, "fault", cls, "restore", "8")
        restored = self.done(
            c, "fault", item, self.after(policy, t0, restore * self.ratio(0.2)) + self.minutes(1, 5)
        )
        confirmed = self.ev(c, item, "fault.customer_confirmed", restored + self.minutes(5, 120))
        closed = self.ev(
            c,
            item,
            "fault.closed",
            confirmed + timedelta(seconds=rng.randint(0, 30)),
            {"resolution": "已恢复"},
        )
        self.revisit(c, "fault", item, closed, policy, "fault", cls, 0.6)

    def storm(self, c: GeneratedCustomer, t0: datetime) -> None:
        """An alarm storm: a customer's faults reported in one minute, some closed as duplicates."""
        rng = self.rng
        acked = t0 + timedelta(seconds=rng.choice((0, 30, 60, 90)))
        restored = t0 + self.minutes(20, 300)
        for _ in range(rng.randint(8, 25)):
            item, cls, policy = self.report_fault(c, t0, source="network_alarm")
            if rng.random() < 0.3:
                self.ev(
                    c,
                    item,
                    "fault.closed",
                    t0 + timedelta(seconds=rng.randint(0, 50)),
                    {"closed_unresolved": "duplicate"},
                )
                continue
            self.ev(c, item, "fault.acknowledged", acked)
            self.done(c, "fault", item, restored)
            self.finish(c, "fault", item, restored, policy, "fault", cls)


def generate_log(
    *,
    customers: int = 70,
    start: datetime,
    days: int = 7,
    seed: int = 1,
    items_per_customer: float = 8.0,
    rules: RuleSet | None = None,
) -> list[Event]:
    """``days`` of events from ``start`` (aware) for ``customers``, in arrival order.

    The default is CI-sized (~3,000 events). ``rules`` only shapes durations
    (fractions of each item's SLA targets); by default the shipped rules file.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be an aware datetime")
    log = MinuteLog(random.Random(seed), seed, start, start + timedelta(days=days), rules or _default_rules())
    return log.build(customers, items_per_customer)


def large_log(*, start: datetime, seed: int = 1, rules: RuleSet | None = None) -> list[Event]:
    """A month from ``start`` (aware) with more than 100,000 events, for the replay benchmark."""
    days = (_next_month(start) - start).days
    return generate_log(customers=LARGE_CUSTOMERS, start=start, days=days, seed=seed, rules=rules)


__all__ = ["LARGE_CUSTOMERS", "MinuteLog", "generate_log", "large_log"]
