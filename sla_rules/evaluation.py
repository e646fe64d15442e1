"""The one evaluation function: history + rules + instant -> status of every clock.

``evaluate`` is pure and deterministic: events after ``at`` are ignored, equal
events are ordered by a fixed key, and nothing reads the wall clock. Its
result (``results``) is what the stream processor stores and what the
one-stop view shows.

It runs once per touched item per batch in the stream worker and once per
open clock in the deadline index, so the per-call work is kept small: rule
matching is memoised on the RuleSet (``MatchIndex``), the thresholds of a
(policy, target) are planned once (``ThresholdPlan``), instants are converted
through memos (``instants``), and a clock's detail (trace lines, warning and
escalation steps) is only built when read (``results.RenderedOnRead``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .clock import INF, business_measure, clip, intersect, normalise, reach_instants, subtract
from .instants import from_us, iso_instant, iso_us, td_us, to_us, us_td
from .results import Deferred, ItemEvaluation, MetricStatus, Threshold, assemble
from .item_history import Timeline, Track, fold_history
from .policies import ItemFacts, Policy, RuleSet

__all__ = ["ItemEvaluation", "MetricStatus", "Threshold", "evaluate", "iso_instant", "measure_track"]


def _dt(us: int | None) -> dt.datetime | None:
    return None if us is None or us >= INF else from_us(us)


@dataclass(frozen=True)
class ThresholdPlan:
    """What a policy promises at which elapsed amount, for one target.

    Depends only on (policy version, target), of which a rules file has a few
    dozen, so it is built once and kept on the policy (``threshold_plan``).
    """

    warnings: tuple[tuple[str, int, dt.timedelta], ...]  # (label "50%", amount us, amount)
    escalations: tuple[tuple[str, int, dt.timedelta], ...]  # (role, amount us, amount)
    amounts: tuple[int, ...]  # every distinct amount including the target, ascending

    @classmethod
    def build(cls, policy: Policy, target: int) -> ThresholdPlan:
        warnings = tuple((f"{round(f * 100):g}%", int(target * f)) for f in policy.warnings)
        steps = tuple((step.role, target + td_us(step.after)) for step in policy.ladder)
        return cls(
            warnings=tuple((label, amount, us_td(amount)) for label, amount in warnings),
            escalations=tuple((role, amount, us_td(amount)) for role, amount in steps),
            amounts=tuple(sorted({amount for _, amount in warnings + steps} | {target})),
        )


def threshold_plan(policy: Policy, target: int) -> ThresholdPlan:
    """The plan of ``policy`` for ``target`` (memoised on the immutable policy object)."""
    plans = policy.__dict__.get("_threshold_plans")
    if plans is None:
        plans = {}
        object.__setattr__(policy, "_threshold_plans", plans)  # a cache, not a field
    plan = plans.get(target)
    if plan is None:
        plan = plans[target] = ThresholdPlan.build(policy, target)
    return plan


def measure_track(track: Track, tl: Timeline, rules: RuleSet, at_us: int) -> MetricStatus:
    """Status of one clock cycle at ``at_us`` (see ``clock`` for the arithmetic)."""
    policy = track.policy
    calendar = rules.calendars[policy.calendar_id]
    target, measured_from, met_at, cancelled_at = track.target, track.measured_from, track.met_at, track.cancelled_at
    stop = met_at if met_at is not None else cancelled_at
    end = at_us if stop is None else min(at_us, stop)
    windows = normalise(track.windows)
    if track.metric in policy.pause_metrics:
        applicable = [s for s in tl.statuses if s[2] in policy.pause_statuses]
        pauses = normalise([(s[0], s[1]) for s in applicable])
    else:
        applicable = pauses = []
    # running time: windows minus pauses, from measured_from, up to now (or the stop)
    elapsed = business_measure(calendar, clip(subtract(windows, pauses), max(measured_from, 0), end))
    # Thresholds: the clock as it was (or is) heading, i.e. a stopped clock
    # projected past its stop with no further pause, so a met clock still
    # shows the deadline it had.
    projected_windows = normalise(track.windows[:-1] + [(track.windows[-1][0], None)])
    if pauses:
        projected_windows = subtract(projected_windows, clip(pauses, 0, INF if stop is None else stop))
    projected = clip(projected_windows, measured_from, INF)
    plan = threshold_plan(policy, target)
    reached = reach_instants(calendar, projected, plan.amounts)
    instants = dict(zip(plan.amounts, reached))
    deadline = instants[target]

    def steps(kind: str, planned: tuple[tuple[str, int, dt.timedelta], ...]) -> tuple[Threshold, ...]:
        out = []
        for label, amount, at_elapsed in planned:
            due = instants[amount]
            if due is not None and stop is not None and due > stop:
                due = None  # the clock stopped first: this step never happens
            out.append(assemble(Threshold, kind=kind, label=label, at_elapsed=at_elapsed, due_at=_dt(due),
                                reached=due is not None and due <= at_us))
        return tuple(out)

    open_pause = next((s for s in applicable if s[0] <= end and (s[1] is None or s[1] > end)), None)
    paused = stop is None and open_pause is not None
    if cancelled_at is not None:
        state = "cancelled"
    elif elapsed > target or (elapsed == target and stop is None):
        state = "breached"
    else:
        state = "met" if met_at is not None else "pending"

    paused_by: dict[str, int] = {}
    life = clip(windows, 0, end) if applicable else []
    for start, stop_at, status, _ in applicable:
        lo, hi = max(start, 0), end if stop_at is None else min(stop_at, end)
        if hi > lo:
            lost = business_measure(calendar, intersect(life, [(lo, hi)]))
            if lost:
                paused_by[status] = paused_by.get(status, 0) + lost

    next_change = None
    if stop is None and not paused:
        next_change = min((i for i in reached if i is not None and i > at_us), default=None)

    notes = tuple(track.notes)
    return assemble(
        MetricStatus, metric=track.metric, cycle=track.cycle, policy_id=policy.id, policy_version=policy.version,
        rule=track.rule.name, calendar_id=calendar.id, priority=track.cls, target=us_td(target),
        started_at=from_us(track.started_at), measured_from=from_us(measured_from),
        deadline=_dt(deadline), elapsed=us_td(elapsed), remaining=us_td(max(target - elapsed, 0)),
        overdue=us_td(max(elapsed - target, 0)), paused=paused,
        pause_reason=open_pause[2] if paused else None, pause_detail=open_pause[3] if paused else None,
        state=state, met_at=_dt(met_at), breached_at=_dt(deadline) if state == "breached" else None,
        cancelled_at=_dt(cancelled_at), paused_by_reason={k: us_td(v) for k, v in paused_by.items()},
        warnings=Deferred(lambda: steps("warning", plan.warnings)),
        escalations=Deferred(lambda: steps("escalation", plan.escalations)), next_change_at=_dt(next_change),
        previous_cycles=tuple(measure_track(p, tl, rules, at_us) for p in track.previous),
        trace=Deferred(lambda: notes + _pause_notes(applicable, life)) if applicable else notes,
    )


def _pause_notes(applicable: list[list[Any]], life: list[tuple[int, int]]) -> tuple[str, ...]:
    """One line per pause that overlapped this clock's running windows."""
    notes = []
    for start, end, status, reason in applicable:
        if not intersect(life, normalise([(start, end)])):
            continue
        span = f"{iso_us(start)} -> {iso_us(end) if end is not None else 'still paused'}"
        notes.append(f"paused {span} ({status}{': ' + reason if reason else ''})")
    return tuple(notes)


def evaluate(facts: ItemFacts, history: Iterable[Mapping[str, Any]], rules: RuleSet, at: dt.datetime) -> ItemEvaluation:
    """Evaluate every SLA clock of one item at instant ``at`` (aware datetime).

    Only events with ``occurred_at <= at`` count. Metrics whose clock has not
    started (e.g. revisit before closure) are absent from ``metrics``.
    """
    at_us = to_us(at)
    tl = fold_history(facts, history, rules, at_us)
    metrics = {name: measure_track(track, tl, rules, at_us) for name, track in sorted(tl.tracks.items())}
    changes = [m.next_change_at for m in metrics.values() if m.next_change_at is not None]
    return assemble(
        ItemEvaluation, at=from_us(at_us), customer_id=facts.customer_id, entity_id=facts.entity_id,
        kind=tl.facts.kind, priority=tl.cls, rules_version=rules.version, metrics=metrics,
        next_change_at=min(changes) if changes else None,
        match_trace=tl.match.trace if tl.match else (),
        notes=tuple(tl.notes), voided=tuple(measure_track(v, tl, rules, at_us) for v in tl.voided),
    )

