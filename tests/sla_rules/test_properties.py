"""Property tests: the engine against an independent minute-by-minute calculator.

The brute force below shares no code with ``sla_rules`` except the public
data classes used to build inputs: it decides "working minute" from the raw
calendar description with ``astimezone`` on every minute, replays the events
minute by minute and counts. Events and calendar boundaries are whole minutes,
so both must agree exactly. Events at one minute are put in the one order of
an item's events by trying every order (``brute_order``), reading only the
lifecycle's transition table (``streams/lifecycles.py``), which is data.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import random
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla_rules import (
    BusinessCalendar,
    ItemFacts,
    LadderStep,
    Policy,
    Rule,
    RuleSet,
    evaluate,
    explain,
    load_rules,
)
from streams.lifecycles import Accepted, transition

UTC = dt.UTC
MIN = dt.timedelta(minutes=1)
# Windows around real DST transitions (and one zone without DST).
ANCHORS = [
    ("Europe/Berlin", dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
    ("Europe/Berlin", dt.datetime(2026, 10, 25, 1, 0, tzinfo=UTC)),
    ("America/New_York", dt.datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
    ("America/New_York", dt.datetime(2026, 11, 1, 6, 0, tzinfo=UTC)),
    ("Asia/Shanghai", dt.datetime(2026, 2, 13, 0, 0, tzinfo=UTC)),
]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------- brute force
def brute_order(events: list[dict]) -> list[dict]:
    """The one order of a ticket's events, from its definition, by trying every order.

    By instant; of the events at one instant, an order in which the lifecycle
    accepts the most, and of those the one whose accepted events come earliest
    by source order (here: the index in the list given); then the events no
    order accepts, in source order. No event id takes part.
    """
    index = {id(e): n for n, e in enumerate(events)}
    out, state = [], None
    for at in sorted({e["occurred_at"] for e in events}):
        tied = [e for e in events if e["occurred_at"] == at]
        best = None
        for order in itertools.permutations(tied):
            current, accepted = state, []
            for e in order:
                outcome = transition("ticket", current, e["event_type"], e["payload"])
                if isinstance(outcome, Accepted):
                    current = outcome.state
                    accepted.append(e)
            rank = (-len(accepted), [index[id(e)] for e in accepted])
            if best is None or rank < best[0]:
                best = (rank, current, accepted)
        _, state, accepted = best
        out += accepted + [e for e in tied if all(e is not a for a in accepted)]
    return out


class BruteCalendar:
    """Working minutes from the raw description, one astimezone per minute."""

    def __init__(
        self, tz: str | None, week: dict[int, list[tuple[int, int]]] | None, holidays: set, makeups: set
    ):
        self.tz = ZoneInfo(tz) if tz else None
        self.week, self.holidays, self.makeups = week, holidays, makeups

    def working(self, minute: dt.datetime) -> bool:
        if self.week is None:
            return True
        local = minute.astimezone(self.tz)
        day = local.date()
        if day in self.makeups:
            spans = self.week.get(0, [])
        elif day in self.holidays:
            spans = []
        else:
            spans = self.week.get(day.weekday(), [])
        mod = local.hour * 60 + local.minute
        return any(s <= mod < e for s, e in spans)


def brute_clock(
    cal: BruteCalendar,
    events: list[dict],
    at: dt.datetime,
    targets: dict[str, int],
    ladder: list[int],
    priority_mode: str,
    reopen_mode: str,
    metric: str = "resolve",
    horizon_days: int = 60,
) -> dict:
    """Replay a ticket minute by minute; elapsed, state, deadline and ladder instants of one clock.

    resolve: paused by pending_* statuses, stopped by resolved, runs again on
    reopen. response: never paused, stopped by acknowledged or resolved,
    untouched by reopen.

    Pass 1 replays the events up to ``at`` minute by minute. Pass 2 projects
    the clock forward without further events (from the final stop when the
    ticket is resolved, from ``at`` when it runs) to find the instants.
    """
    events = brute_order([e for e in events if e["occurred_at"] <= at])
    start = events[0]["occurred_at"]
    cls = events[0]["payload"]["priority"]
    target = targets[cls]
    running, paused, met_at = True, False, None
    count, reach = 0, {}
    snapshot = None
    idx = 0
    t = start
    while True:
        while idx < len(events) and events[idx]["occurred_at"] == t:
            e = events[idx]
            kind = e["event_type"].split(".")[1]
            if kind == "status_changed":
                paused = e["payload"]["status"].startswith("pending_") and metric == "resolve"
            elif kind == "priority_changed":
                new = e["payload"]["priority"]
                if new != cls:
                    cls = new
                    if running:
                        target = targets[new]
                        if priority_mode == "from_change":
                            count, reach = 0, {}
            elif running and (kind == "resolved" or (kind == "acknowledged" and metric == "response")):
                running, met_at = False, t
                snapshot = (count, dict(reach))
            elif kind == "reopened" and metric == "resolve":
                paused = False
                if not running:
                    running, met_at = True, None
                    if reopen_mode == "new_cycle":
                        count, reach, target = 0, {}, targets[cls]
            idx += 1
        if t >= at:
            break
        if running and not paused and cal.working(t):
            count += 1
            reach[count] = t + MIN
        t += MIN
    elapsed = count
    amounts = [target] + ladder
    # pass 2: projection
    if met_at is not None:
        count, reach = snapshot
        t, go = met_at, True
    else:
        go = not paused
    end = t + dt.timedelta(days=horizon_days)
    while go and t < end and count < max(amounts):
        if cal.working(t):
            count += 1
            reach[count] = t + MIN
        t += MIN
    if met_at is not None:
        state = "met" if elapsed <= target else "breached"
    else:
        state = "breached" if elapsed >= target else "pending"
    return {
        "elapsed": elapsed,
        "state": state,
        "deadline": reach.get(target),
        "ladder": [reach.get(a) for a in ladder],
        "paused": paused and met_at is None,
        "horizon": end,
    }


# ------------------------------------------------------------- generators
@st.composite
def scenarios(draw):
    tz, anchor = draw(st.sampled_from(ANCHORS))
    always = draw(st.booleans()) and draw(st.booleans())
    if always:
        week = None
    else:
        week = {}
        for wd in range(7):
            if draw(st.integers(0, 3)) == 0:
                continue
            a = draw(st.integers(0, 23 * 60))
            b = draw(st.integers(a + 30, min(a + 12 * 60, 24 * 60)))
            spans = [(a, b)]
            if b < 23 * 60 and draw(st.booleans()):
                c = draw(st.integers(b + 1, 24 * 60 - 15))
                spans.append((c, draw(st.integers(c + 15, 24 * 60))))
            week[wd] = spans
        if not week:
            week = {0: [(0, 24 * 60)]}
    start = anchor - dt.timedelta(minutes=draw(st.integers(0, 4 * 24 * 60)))
    local_start = start.astimezone(ZoneInfo(tz)).date()
    day_pool = [local_start + dt.timedelta(days=i) for i in range(-1, 12)]
    holidays = set(draw(st.lists(st.sampled_from(day_pool), max_size=3)))
    makeups = {d for d in draw(st.lists(st.sampled_from(day_pool), max_size=2)) if d not in holidays}
    targets = {p: draw(st.integers(1, 10 * 60)) for p in ("P1", "P2", "P3", "P4")}
    ladder = sorted(draw(st.lists(st.integers(0, 300), max_size=2)))
    priority_mode = draw(st.sampled_from(["recompute", "from_change"]))
    reopen_mode = draw(st.sampled_from(["resume", "new_cycle"]))
    n = draw(st.integers(0, 6))
    events = [
        {
            "event_id": "e00",
            "event_type": "ticket.opened",
            "occurred_at": start,
            "payload": {
                "kind": "complaint",
                "priority": draw(st.sampled_from(["P1", "P2", "P3", "P4"])),
                "subject": "s",
            },
        }
    ]
    for i in range(n):
        offset = draw(st.integers(0, 3 * 24 * 60))
        what = draw(
            st.sampled_from(
                [
                    "pending_customer",
                    "pending_third_party",
                    "in_progress",
                    "priority",
                    "resolved",
                    "reopened",
                    "acknowledged",
                ]
            )
        )
        when = start + dt.timedelta(minutes=offset)
        eid = f"e{i + 1:02d}"
        if what == "priority":
            events.append(
                {
                    "event_id": eid,
                    "event_type": "ticket.priority_changed",
                    "occurred_at": when,
                    "payload": {"priority": draw(st.sampled_from(["P1", "P2", "P3", "P4"]))},
                }
            )
        elif what in ("resolved", "reopened", "acknowledged"):
            events.append(
                {"event_id": eid, "event_type": f"ticket.{what}", "occurred_at": when, "payload": {}}
            )
        else:
            events.append(
                {
                    "event_id": eid,
                    "event_type": "ticket.status_changed",
                    "occurred_at": when,
                    "payload": {"status": what, "reason": "r"},
                }
            )
    at = start + dt.timedelta(minutes=draw(st.integers(0, 4 * 24 * 60)))
    return dict(
        tz=tz,
        week=week,
        holidays=holidays,
        makeups=makeups,
        targets=targets,
        ladder=ladder,
        priority_mode=priority_mode,
        reopen_mode=reopen_mode,
        events=events,
        at=at,
    )


def engine_rules(s: dict) -> RuleSet:
    cal = BusinessCalendar(
        "cal",
        time_zone=None if s["week"] is None else s["tz"],
        week=s["week"],
        holidays=s["holidays"],
        makeup_days=s["makeups"],
    )
    targets = {("complaint", p, "resolve"): dt.timedelta(minutes=m) for p, m in s["targets"].items()}
    targets.update({("complaint", p, "response"): dt.timedelta(minutes=m) for p, m in s["targets"].items()})
    policy = Policy(
        id="p",
        version=1,
        effective_from=dt.datetime(2000, 1, 1, tzinfo=UTC),
        calendar_id="cal",
        description="",
        targets=targets,
        ladder=tuple(LadderStep("account_manager", dt.timedelta(minutes=m)) for m in s["ladder"]),
        priority_change=s["priority_mode"],
        reopen=s["reopen_mode"],
    )
    return RuleSet(
        version="t",
        source="<test>",
        calendars={"cal": cal},
        policies={"p": (policy,)},
        rules=(Rule(0, "all", "p"),),
    )


FACTS = ItemFacts("C-1", "gold", "complaint", entity_id="T-1")


class TestEngineAgainstBruteForce:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(scenarios(), st.sampled_from(["resolve", "response"]))
    def test_clock_agrees_with_minute_walk(self, s, metric):
        """Elapsed, state, pause, deadline and ladder instants equal the minute-by-minute replay."""
        rules = engine_rules(s)
        status = evaluate(FACTS, s["events"], rules, s["at"]).metrics[metric]
        cal = BruteCalendar(None if s["week"] is None else s["tz"], s["week"], s["holidays"], s["makeups"])
        ladder = [status.target // MIN + m for m in s["ladder"]]
        brute = brute_clock(
            cal, s["events"], s["at"], s["targets"], ladder, s["priority_mode"], s["reopen_mode"], metric
        )
        assert status.elapsed // MIN == brute["elapsed"]
        assert status.state == brute["state"]
        assert status.paused == brute["paused"]
        # The minute walk only looks ``horizon_days`` ahead: an instant beyond it is "not found" there.
        assert status.deadline == brute["deadline"] or (
            brute["deadline"] is None and status.deadline > brute["horizon"]
        )
        for step, expected in zip(status.escalations, brute["ladder"]):
            if step.due_at is not None:  # None: the clock stopped before the step
                assert step.due_at == expected or (expected is None and step.due_at > brute["horizon"])


class TestInvariants:
    @SETTINGS
    @given(scenarios(), st.integers(0, 3 * 24 * 60), st.integers(1, 24 * 60))
    def test_pausing_never_moves_a_deadline_earlier(self, s, offset, length):
        """Adding a pending_customer pause leaves every deadline the same or later."""
        rules = engine_rules(s)
        base = [e for e in s["events"] if e["event_type"] != "ticket.status_changed"]
        start = base[0]["occurred_at"]
        paused = base + [
            {
                "event_id": "p1",
                "event_type": "ticket.status_changed",
                "occurred_at": start + dt.timedelta(minutes=offset),
                "payload": {"status": "pending_customer"},
            },
            {
                "event_id": "p2",
                "event_type": "ticket.status_changed",
                "occurred_at": start + dt.timedelta(minutes=offset + length),
                "payload": {"status": "in_progress"},
            },
        ]
        before = evaluate(FACTS, base, rules, s["at"]).metrics["resolve"]
        after = evaluate(FACTS, paused, rules, s["at"]).metrics["resolve"]
        if before.deadline is not None and after.deadline is not None:
            assert after.deadline >= before.deadline
        assert after.elapsed <= before.elapsed

    @SETTINGS
    @given(scenarios())
    def test_deadline_closes_a_working_running_interval(self, s):
        """The instant just before a deadline is working time and not paused: no deadline sits in a gap."""
        rules = engine_rules(s)
        status = evaluate(FACTS, s["events"], rules, s["at"]).metrics["resolve"]
        if status.deadline is None:
            return
        cal = BruteCalendar(None if s["week"] is None else s["tz"], s["week"], s["holidays"], s["makeups"])
        assert cal.working(status.deadline - MIN)
        for spent in status.paused_by_reason.values():
            assert spent >= dt.timedelta(0)

    @SETTINGS
    @given(scenarios(), st.randoms(use_true_random=False))
    def test_order_of_equal_time_events_does_not_matter(self, s, rnd: random.Random):
        """Shuffling a history whose events carry their source position, and squashing events onto
        shared instants, gives the same output as the input in source order."""
        rules = engine_rules(s)
        events = [dict(e, position=n) for n, e in enumerate(s["events"])]
        # put several events on the same instant
        for e in events[1:]:
            if rnd.random() < 0.5:
                e["occurred_at"] = events[0]["occurred_at"] + dt.timedelta(hours=rnd.randint(0, 3))
        shuffled = events[:]
        rnd.shuffle(shuffled)
        a = evaluate(FACTS, events, rules, s["at"]).to_dict()
        b = evaluate(FACTS, shuffled, rules, s["at"]).to_dict()
        assert a == b


ALL_EVENTS = {
    "fault": [
        "fault.acknowledged",
        "fault.dispatched",
        "fault.repair_started",
        "fault.restored",
        "fault.customer_confirmed",
        "fault.closed",
        "fault.reopened",
        "fault.revisit_recorded",
        "fault.status_changed",
        "fault.priority_changed",
    ],
    "complaint": [
        "ticket.acknowledged",
        "ticket.assigned",
        "ticket.status_changed",
        "ticket.priority_changed",
        "ticket.resolved",
        "ticket.reopened",
        "ticket.closed",
        "ticket.revisit_recorded",
    ],
    "order": [
        "order.resource_confirmed",
        "order.resource_shortfall",
        "order.provisioning_started",
        "order.milestone_reached",
        "order.activated",
        "order.customer_accepted",
        "order.cancelled",
        "order.revisit_recorded",
        "order.status_changed",
    ],
}
OPENERS = {
    "fault": ("fault.reported", {"severity": "major", "summary": "s", "service": "s"}),
    "complaint": ("ticket.opened", {"kind": "complaint", "priority": "P2", "subject": "s"}),
    "order": ("order.received", {"product": "p", "urgency": "urgent"}),
}


@st.composite
def any_history(draw):
    kind = draw(st.sampled_from(sorted(OPENERS)))
    tier = draw(st.sampled_from(["diamond", "platinum", "gold", "vip", "business", "public"]))
    start = dt.datetime(2026, 1, 1, tzinfo=UTC) + dt.timedelta(minutes=draw(st.integers(0, 700 * 24 * 60)))
    opener, payload = OPENERS[kind]
    events = [{"event_id": "open", "event_type": opener, "occurred_at": start, "payload": payload}]
    for i in range(draw(st.integers(0, 12))):
        event_type = draw(st.sampled_from(ALL_EVENTS[kind]))
        payload = {
            "status": draw(st.sampled_from(["in_progress", "pending_customer", "pending_third_party"])),
            "priority": draw(st.sampled_from(["P1", "P2", "P3", "P4"])),
            "reason": "r",
        }
        events.append(
            {
                "event_id": f"e{i:02d}",
                "event_type": event_type,
                "occurred_at": start + dt.timedelta(minutes=draw(st.integers(0, 20 * 24 * 60))),
                "payload": payload,
            }
        )
    at = start + dt.timedelta(minutes=draw(st.integers(0, 30 * 24 * 60)))
    return ItemFacts(draw(st.sampled_from(["C-0001", "C-2"])), tier, kind), events, at


class TestAnyHistory:
    RULES = load_rules()

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(any_history())
    def test_every_history_evaluates_to_consistent_json(self, case):
        """Any sequence of contract events on the shipped rules evaluates, explains and serialises
        consistently."""
        facts, events, at = case
        evaluation = evaluate(facts, events, self.RULES, at)
        json.dumps(evaluation.to_dict())
        assert explain(facts, events, self.RULES, at)
        for status in evaluation.metrics.values():
            assert status.state in {"pending", "met", "breached", "cancelled"}
            assert dt.timedelta(0) <= status.elapsed <= at - status.measured_from
            assert status.elapsed + status.remaining - status.overdue == status.target
            if status.met_at is not None:
                assert status.started_at <= status.met_at <= at
            if status.state == "breached":
                assert status.breached_at is not None and status.breached_at <= at
            if status.next_change_at is not None:
                assert status.next_change_at > at and status.state in {"pending", "breached"}
        if evaluation.next_change_at is not None:
            assert evaluation.next_change_at > at
