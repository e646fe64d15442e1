"""The compliance report recomputed from the raw event list: the agreement test's oracle.

``expected_report`` follows ``docs/compliance_reports.md`` figure by figure,
from a plain list of events, in plain Python: no Kafka, no worker, no sink, no
SQL, and none of the production report path.

What is shared with production, and why that is acceptable:

- ``schemas.envelope`` / ``schemas.event_catalogue``: the wire contract itself;
- ``streams.lifecycles.transition``: the domain's state tables (data; the
  question "which events count" must have one answer);
- ``sla_rules.evaluate``: the SLA engine, which has its own tests against a
  brute-force calculator.  What the oracle checks is everything around it.
  The engine puts the history it is given in production's order of events
  (``streams/event_order.py``); it is given the applied events in the oracle's
  order with their file positions, so it reproduces that order whenever the
  two statements of the order agree.

What is *not* shared, and rebuilt here from the definitions: the
de-duplication, the order of each item's events (stated again below, by brute
force over the events that share an instant, from the definition in
``docs/compliance_reports.md``), the fold of each item and the choice of applied
events, the profile as of an item's latest event (last writer wins per field),
the engine's facts (tier, ticket kind, priority from severity, urgency), the
policy of the first clock, every cycle of every metric, classification as of
``as_of``, the cohort, grouping, counts, percentages, means, paused time,
revisits, breaches with their steps, the weekly trend, breaches by tier and
the MTTR buckets.  This module must not import ``streams.customer_view``,
``streams.item_sla``, ``streams.sql_projection``, ``streams.sql_sink``,
``handlers.reports.queries`` or anything touching a database (a test checks
the import graph).

``replay_steps`` is separate: to have SLA step events without Kafka it runs
the in-process replay (``streams/replay.py``), i.e. the worker's own fold,
timers and step logic, imported only when called.  The steps are the input
of the breach histories, not something the report recomputes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, tzinfo
from itertools import permutations
from typing import Any

from schemas.envelope import Event
from sla_rules import ItemFacts, RuleSet, evaluate
from sla_rules.results import MetricStatus
from streams.lifecycles import Accepted, transition
from streams.vocabulary import SEVERITY_PRIORITY

DIMENSIONS = ("tier", "customer", "priority", "kind", "region", "account_manager", "policy")
MISSING = "-"
UNKNOWN_TIER = "public"
FIRST_CLOCK = {"fault": "response", "ticket": "response", "order": "provision"}
OPENING = {"fault": "fault.reported", "ticket": "ticket.opened", "order": "order.received"}
# (item kind, metric) -> the report's family of percentages
FAMILY = {
    ("fault", "response"): "response",
    ("ticket", "response"): "response",
    ("fault", "restore"): "repair",
    ("ticket", "resolve"): "repair",
    ("order", "provision"): "provision",
}
MTTR_BUCKETS = (
    ("0-1h", 3600),
    ("1-2h", 2 * 3600),
    ("2-4h", 4 * 3600),
    ("4-8h", 8 * 3600),
    ("8-24h", 24 * 3600),
    ("1-3d", 3 * 86400),
    (">3d", math.inf),
)


def iso(instant: datetime | None) -> str | None:
    """An aware instant as UTC ``datetime.isoformat()`` (None stays None)."""
    return None if instant is None else instant.astimezone(UTC).isoformat()


@dataclass
class Clock:
    """One cycle of one metric of an item, classified as of ``as_of``."""

    metric: str
    status: MetricStatus
    outcome: str  # met | breached | open
    overdue: bool


@dataclass
class MeasuredItem:
    """An item as the report sees it: dimensions, clocks and revisits."""

    customer_id: str
    kind: str
    item_id: str
    state: str
    opened_at: datetime
    latest_at: datetime
    dims: dict[str, str]
    clocks: list[Clock] = field(default_factory=list)
    revisits: list[tuple[datetime, str, int]] = field(default_factory=list)

    @property
    def closed(self) -> bool:
        """Closed for the report: cancelled orders do not count (nor in the revisit rate)."""
        return self.state == ("completed" if self.kind == "order" else "closed")


# -- from events to measured items ----------------------------------------------------


def dedupe(events: Iterable[Event]) -> list[Event]:
    """Each event id once (the first copy; duplicates are identical)."""
    seen: dict[str, Event] = {}
    for event in events:
        seen.setdefault(event.event_id, event)
    return list(seen.values())


def profile_as_of(customer_events: Sequence[Event], instant: datetime) -> dict[str, Any]:
    """Customer events with ``occurred_at <= instant``, last writer per field by (time, id)."""
    profile: dict[str, Any] = {}
    for event in sorted(customer_events, key=lambda e: (e.occurred_at, e.event_id)):
        if event.occurred_at <= instant:
            profile.update(event.payload)
    return profile


#: The most events one item may have at one instant for the brute force below.
MAX_TIED = 8


def _run(kind: str, state: str | None, events: Sequence[Event]) -> tuple[str | None, list[Event]]:
    """Events tried one after the other from ``state``: the state reached, the accepted ones."""
    accepted = []
    for event in events:
        outcome = transition(kind, state, event.event_type, event.payload)
        if isinstance(outcome, Accepted):
            state = outcome.state
            accepted.append(event)
    return state, accepted


def fold_item(kind: str, events: list[tuple[int, Event]]) -> tuple[str | None, list[tuple[int, Event]]]:
    """The item's state and its applied events (with their file positions), in the one order.

    The order, from its definition: by event time; of the events at one
    instant, every order is tried, and the one kept is an order in which the
    lifecycle accepts the most of them, and of those the one whose accepted
    events, read one by one, come earliest by (recorded_at, place in the file).
    No event id takes part.
    """
    where = {id(event): (event.recorded_at, position) for position, event in events}
    instants: dict[datetime, list[Event]] = defaultdict(list)
    for _, event in events:
        instants[event.occurred_at].append(event)
    state: str | None = None
    applied: list[Event] = []
    for instant in sorted(instants):
        tied = instants[instant]
        if len(tied) > MAX_TIED:
            raise ValueError(f"{len(tied)} events of one item at {instant}: too many for the oracle")
        best = None
        for order in permutations(tied):
            end, accepted = _run(kind, state, order)
            rank = (-len(accepted), [where[id(e)] for e in accepted])
            if best is None or rank < best[0]:
                best = (rank, end, accepted)
        _, state, accepted = best
        applied.extend(accepted)
    return state, [(where[id(e)][1], e) for e in applied]


def _classify(status: MetricStatus, as_of: datetime) -> tuple[str, bool]:
    if status.state == "met":
        return "met", False
    if status.state == "breached":
        return "breached", False
    if not status.paused and status.deadline is not None and status.deadline < as_of:
        return "breached", True
    return "open", False


def measure_items(events: Iterable[Event], rules: RuleSet, as_of: datetime) -> list[MeasuredItem]:
    """Every item with at least one applied event, measured per the report's definitions."""
    unique = dedupe(events)
    customers: dict[str, list[Event]] = defaultdict(list)
    items: dict[tuple[str, str, str], list[tuple[int, Event]]] = defaultdict(list)
    for position, event in enumerate(unique):  # the file's order: the source's order
        if event.kind == "customer":
            customers[event.customer_id].append(event)
        elif event.kind in FIRST_CLOCK:
            items[(event.customer_id, event.kind, event.entity_id)].append((position, event))
    measured = []
    for (customer_id, kind, item_id), item_events in sorted(items.items()):
        state, placed = fold_item(kind, item_events)
        if not placed or state is None:
            continue
        applied = [event for _, event in placed]
        latest = max(e.occurred_at for e in applied)
        profile = profile_as_of(customers.get(customer_id, ()), latest)
        tier = profile.get("tier") or UNKNOWN_TIER
        manager = profile.get("account_manager") or {}
        # The engine's facts, as the definitions state them.
        priority = urgency = None
        ticket_kind = "complaint"
        for event in applied:
            payload = event.payload
            if event.event_type == "fault.reported":
                priority = payload.get("priority") or SEVERITY_PRIORITY[payload["severity"]]
            elif event.event_type == "ticket.opened":
                priority, ticket_kind = payload["priority"], payload["kind"]
            elif event.event_type == "ticket.priority_changed":
                priority = payload["priority"]
            elif event.event_type == "order.received":
                urgency = payload["urgency"]
        facts = ItemFacts(
            customer_id=customer_id,
            tier=tier,
            kind=ticket_kind if kind == "ticket" else kind,
            priority=priority,
            urgency=urgency,
            region=profile.get("region"),
            entity_id=item_id,
        )
        history = [
            {
                "event_id": e.event_id,
                "event_type": e.event_type,
                "occurred_at": e.occurred_at,
                "recorded_at": e.recorded_at,
                "position": position,
                "payload": e.payload,
            }
            for position, e in placed
        ]
        evaluation = evaluate(facts, history, rules, latest)
        first = evaluation.metrics.get(FIRST_CLOCK[kind])
        if first is not None and first.previous_cycles:
            first = first.previous_cycles[0]
        item = MeasuredItem(
            customer_id=customer_id,
            kind=kind,
            item_id=item_id,
            state=state,
            opened_at=applied[0].occurred_at,
            latest_at=latest,
            dims={
                "tier": tier,
                "customer": customer_id,
                "priority": (urgency if kind == "order" else priority) or MISSING,
                "kind": kind,
                "region": profile.get("region") or MISSING,
                "account_manager": manager.get("id") or MISSING,
                "policy": f"{first.policy_id} v{first.policy_version}" if first else MISSING,
            },
        )
        for name, metric in sorted(evaluation.metrics.items()):
            for status in (*metric.previous_cycles, metric):
                if status.state == "cancelled":
                    continue
                outcome, overdue = _classify(status, as_of)
                item.clocks.append(Clock(name, status, outcome, overdue))
        item.revisits = sorted(
            (e.occurred_at, e.event_id, e.payload["satisfaction"])
            for e in applied
            if e.event_type.endswith(".revisit_recorded")
        )
        measured.append(item)
    return measured


# -- figures ----------------------------------------------------------------------


def _pct(met: int, breached: int) -> float | None:
    return None if met + breached == 0 else 100 * met / (met + breached)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def figures(items: Sequence[MeasuredItem]) -> dict[str, Any]:
    """The per-group columns of the report, over ``items``."""
    counts = {family: {"met": 0, "breached": 0, "open": 0} for family in ("response", "repair", "provision")}
    spans: dict[str, list[float]] = defaultdict(list)
    paused: dict[str, float] = defaultdict(float)
    breaches = 0
    for item in items:
        for clock in item.clocks:
            family = FAMILY.get((item.kind, clock.metric))
            breaches += clock.outcome == "breached"
            if family is None:
                continue
            counts[family][clock.outcome] += 1
            status = clock.status
            if family in ("response", "repair") and status.met_at is not None:
                prefix = "mtta" if family == "response" else "mttr"
                spans[f"{prefix}_business_s"].append(status.elapsed.total_seconds())
                spans[f"{prefix}_calendar_s"].append((status.met_at - status.started_at).total_seconds())
            if family in ("repair", "provision"):
                for reason, lost in status.paused_by_reason.items():
                    paused[reason] += lost.total_seconds()
    closed = [item for item in items if item.closed]
    revisited = [item for item in items if item.revisits]
    out: dict[str, Any] = {"items": len(items)}
    for family, c in counts.items():
        # measured: the group has a clock of the figure at all (met, breached or open; a
        # cancelled clock counts nowhere); else the report says "not measured", not 0 %
        out.update(
            {
                f"{family}_met": c["met"],
                f"{family}_breached": c["breached"],
                f"{family}_open": c["open"],
                f"{family}_met_pct": _pct(c["met"], c["breached"]),
                f"{family}_measured": sum(c.values()) > 0,
            }
        )
    for name in ("mtta_business_s", "mtta_calendar_s", "mttr_business_s", "mttr_calendar_s"):
        out[name] = _mean(spans[name])
    out["paused_s"] = {reason: paused[reason] for reason in sorted(paused)}
    out["breaches"] = breaches
    out["closed"] = len(closed)
    # The rate is over closed items, but measured only where some item of the group has
    # a revisit clock (a policy promising a revisit, a closure that started it).
    revisit_clocks = any(clock.metric == "revisit" for item in items for clock in item.clocks)
    out["revisit_rate_pct"] = (
        100 * sum(1 for i in closed if i.revisits) / len(closed) if closed and revisit_clocks else None
    )
    out["revisit_measured"] = revisit_clocks
    out["avg_satisfaction"] = _mean([float(i.revisits[-1][2]) for i in revisited])
    return out


def _step_row(event: Event) -> dict[str, Any]:
    payload = event.payload
    return {
        "event_type": event.event_type,
        "occurred_at": iso(event.occurred_at),
        "step": payload.get("step"),
        "role": payload.get("role"),
        "threshold": payload.get("threshold"),
        "actor": event.actor,
        "note": payload.get("note"),
    }


def _week_start(instant: datetime, zone: tzinfo) -> date:
    local = instant.astimezone(zone).date()
    return local - timedelta(days=local.weekday())


def expected_report(
    events: Sequence[Event],
    rules: RuleSet,
    *,
    period_start: datetime,
    period_end: datetime,
    as_of: datetime,
    group_by: Sequence[str],
    zone: Any,
    steps: Sequence[Event] = (),
) -> dict[str, Any]:
    """The compliance report of items opened in ``[period_start, period_end)``, as of ``as_of``.

    ``steps``: the SLA step events (what the worker publishes on the SLA
    topic); the ``sla.*`` events of ``events`` itself (managers'
    acknowledgements) are added to them, each event id once.
    ``zone`` is a ``zoneinfo.ZoneInfo``: weeks start on its local Monday.
    """
    unknown = [d for d in group_by if d not in DIMENSIONS]
    if unknown:
        raise ValueError(f"unknown dimension(s) {unknown}; choose from {DIMENSIONS}")
    cohort = [
        item for item in measure_items(events, rules, as_of) if period_start <= item.opened_at < period_end
    ]

    groups: dict[tuple[str, ...], list[MeasuredItem]] = defaultdict(list)
    if not group_by:
        groups[()] = []  # no grouping: one line for everything, even an empty period
    for item in cohort:
        groups[tuple(item.dims[d] for d in group_by)].append(item)

    by_clock: dict[tuple[str, str, str, str, int], list[Event]] = defaultdict(list)
    for event in dedupe([*steps, *(e for e in events if e.kind == "sla")]):
        p = event.payload
        by_clock[(event.customer_id, p["item_kind"], event.entity_id, p["metric"], p["cycle"])].append(event)
    breaches = []
    for item in cohort:
        for clock in item.clocks:
            if clock.outcome != "breached":
                continue
            status = clock.status
            history = sorted(
                by_clock.get((item.customer_id, item.kind, item.item_id, clock.metric, status.cycle), ()),
                key=lambda e: (e.occurred_at, e.event_id),
            )
            breaches.append(
                {
                    "customer_id": item.customer_id,
                    "item_kind": item.kind,
                    "item_id": item.item_id,
                    "metric": clock.metric,
                    "cycle": status.cycle,
                    "tier": item.dims["tier"],
                    "priority": item.dims["priority"],
                    "deadline": iso(status.deadline),
                    "met_at": iso(status.met_at),
                    "overdue": clock.overdue,
                    "steps": [_step_row(e) for e in history],
                }
            )
    breaches.sort(
        key=lambda b: (
            b["deadline"] or "",
            b["customer_id"],
            b["item_kind"],
            b["item_id"],
            b["metric"],
            b["cycle"],
        )
    )

    weeks: dict[date, list[MeasuredItem]] = defaultdict(list)
    for item in cohort:
        weeks[_week_start(item.opened_at, zone)].append(item)
    weekly = []
    for week in sorted(weeks):
        f = figures(weeks[week])
        weekly.append(
            {
                "week_start": week.isoformat(),
                "items": f["items"],
                "response_met_pct": f["response_met_pct"],
                "repair_met_pct": f["repair_met_pct"],
                "provision_met_pct": f["provision_met_pct"],
            }
        )

    by_tier: dict[str, int] = defaultdict(int)
    for breach in breaches:
        by_tier[breach["tier"]] += 1

    buckets = {name: 0 for name, _ in MTTR_BUCKETS}
    for item in cohort:
        for clock in item.clocks:
            if FAMILY.get((item.kind, clock.metric)) == "repair" and clock.status.met_at:
                seconds = clock.status.elapsed.total_seconds()
                buckets[next(name for name, upper in MTTR_BUCKETS if seconds < upper)] += 1

    return {
        "period": {"from": iso(period_start), "to": iso(period_end)},
        "as_of": iso(as_of),
        "group_by": list(group_by),
        "timezone": zone.key,
        "groups": [{"key": dict(zip(group_by, key)), **figures(groups[key])} for key in sorted(groups)],
        "total": figures(cohort),
        "breaches": breaches,
        "weekly_trend": weekly,
        "breaches_by_tier": dict(sorted(by_tier.items())),
        "mttr_distribution": [{"bucket": name, "count": buckets[name]} for name, _ in MTTR_BUCKETS],
    }


def replay_steps(events: Iterable[Event], rules: RuleSet) -> list[Event]:
    """The SLA step events the worker would publish for ``events`` (in list order).

    This is the worker's own step logic (``streams.replay``: fold, SLA timers
    on event-time watermarks, step events folded back), run in process
    without Kafka: it is an input of the report, not part of the oracle, and
    it is imported here only when called.
    """
    from streams.replay import replay  # noqa: PLC0415 (kept out of the oracle's imports)

    result = replay((event.to_bytes() for event in events), rules)
    if result.refused:
        raise ValueError(f"replay refused lines: {result.refused[:3]}")
    return list(result.steps)


__all__ = [
    "DIMENSIONS",
    "MTTR_BUCKETS",
    "expected_report",
    "figures",
    "fold_item",
    "iso",
    "measure_items",
    "profile_as_of",
    "replay_steps",
]
