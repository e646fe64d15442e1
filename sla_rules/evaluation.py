"""The one evaluation function: history + rules + instant -> status of every clock.

``evaluate`` is pure and deterministic: events after ``at`` are ignored, equal
events are ordered by a fixed key, and nothing reads the wall clock. Its
result is what the stream processor stores and what the one-stop view shows,
so every object has a ``to_dict()`` with ISO-8601 instants and seconds.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .business_calendar import from_us, td_us, to_us, us_td
from .clock import INF, business_measure, clip, intersect, normalise, reach_instants, subtract
from .item_history import Timeline, Track, fold_history
from .policies import ItemFacts, RuleSet


def iso_instant(value: dt.datetime | None) -> str | None:
    """ISO-8601 in UTC with a Z suffix (None stays None)."""
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def _secs(value: dt.timedelta) -> float:
    return value.total_seconds()


@dataclass(frozen=True)
class Threshold:
    """A warning, the breach or an escalation step, and when it is (or was) due."""

    kind: str  # warning | escalation
    label: str  # "50%" or a role
    at_elapsed: dt.timedelta  # business time elapsed at which it is due
    due_at: dt.datetime | None  # None: not determinable now (paused) or never (clock stopped first)
    reached: bool

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "label": self.label, "at_elapsed_seconds": _secs(self.at_elapsed),
                "due_at": iso_instant(self.due_at), "reached": self.reached}


@dataclass(frozen=True)
class MetricStatus:
    """The state of one metric's clock at the evaluation instant."""

    metric: str
    cycle: int
    policy_id: str
    policy_version: int
    rule: str
    calendar_id: str
    priority: str
    target: dt.timedelta
    started_at: dt.datetime
    measured_from: dt.datetime
    deadline: dt.datetime | None
    elapsed: dt.timedelta
    remaining: dt.timedelta
    overdue: dt.timedelta
    paused: bool
    pause_reason: str | None
    pause_detail: str | None
    state: str  # pending | met | breached | cancelled
    met_at: dt.datetime | None
    breached_at: dt.datetime | None
    cancelled_at: dt.datetime | None
    paused_by_reason: Mapping[str, dt.timedelta]
    warnings: tuple[Threshold, ...]
    escalations: tuple[Threshold, ...]
    next_change_at: dt.datetime | None
    previous_cycles: tuple[MetricStatus, ...]
    trace: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "cycle": self.cycle, "policy_id": self.policy_id,
            "policy_version": self.policy_version, "rule": self.rule, "calendar_id": self.calendar_id,
            "priority": self.priority, "target_seconds": _secs(self.target),
            "started_at": iso_instant(self.started_at), "measured_from": iso_instant(self.measured_from),
            "deadline": iso_instant(self.deadline), "elapsed_seconds": _secs(self.elapsed),
            "remaining_seconds": _secs(self.remaining), "overdue_seconds": _secs(self.overdue),
            "paused": self.paused, "pause_reason": self.pause_reason, "pause_detail": self.pause_detail,
            "state": self.state, "met_at": iso_instant(self.met_at), "breached_at": iso_instant(self.breached_at),
            "cancelled_at": iso_instant(self.cancelled_at),
            "paused_seconds_by_reason": {k: _secs(v) for k, v in sorted(self.paused_by_reason.items())},
            "warnings": [w.to_dict() for w in self.warnings],
            "escalations": [e.to_dict() for e in self.escalations],
            "next_change_at": iso_instant(self.next_change_at),
            "previous_cycles": [c.to_dict() for c in self.previous_cycles],
            "trace": list(self.trace),
        }


@dataclass(frozen=True)
class ItemEvaluation:
    """All clocks of one item at one instant."""

    at: dt.datetime
    customer_id: str
    entity_id: str | None
    kind: str
    priority: str | None
    rules_version: str
    metrics: Mapping[str, MetricStatus]
    next_change_at: dt.datetime | None
    match_trace: tuple[str, ...]
    notes: tuple[str, ...]
    voided: tuple[MetricStatus, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "at": iso_instant(self.at), "customer_id": self.customer_id, "entity_id": self.entity_id,
            "kind": self.kind, "priority": self.priority, "rules_version": self.rules_version,
            "metrics": {name: status.to_dict() for name, status in self.metrics.items()},
            "next_change_at": iso_instant(self.next_change_at),
            "match_trace": list(self.match_trace), "notes": list(self.notes),
            "voided": [v.to_dict() for v in self.voided],
        }


def _dt(us: int | None) -> dt.datetime | None:
    return None if us is None or us >= INF else from_us(us)


def measure_track(track: Track, tl: Timeline, rules: RuleSet, at_us: int) -> MetricStatus:
    """Status of one clock cycle at ``at_us`` (see ``clock`` for the arithmetic)."""
    calendar = rules.calendars[track.policy.calendar_id]
    stop = track.met_at if track.met_at is not None else track.cancelled_at
    end = at_us if stop is None else min(at_us, stop)
    windows = normalise([(a, b) for a, b in track.windows])
    applicable = [s for s in tl.statuses if track.policy.pauses(track.metric, s[2])]
    pauses = normalise([(s[0], s[1]) for s in applicable])
    running = clip(subtract(windows, pauses), track.measured_from, INF)
    elapsed = business_measure(calendar, clip(running, 0, end))
    # Thresholds: the clock as it was (or is) heading, i.e. a stopped clock
    # projected past its stop with no further pause, so a met clock still
    # shows the deadline it had.
    projected_windows = normalise([(a, b) for a, b in track.windows[:-1]] + [(track.windows[-1][0], None)])
    projected = clip(subtract(projected_windows, clip(pauses, 0, INF if stop is None else stop)), track.measured_from, INF)
    target = track.target
    fractions = [(f"{round(f * 100):g}%", int(target * f)) for f in track.policy.warnings]
    steps = [(step.role, target + td_us(step.after)) for step in track.policy.ladder]
    amounts = sorted({amount for _, amount in fractions + steps} | {target})
    instants = dict(zip(amounts, reach_instants(calendar, projected, amounts)))
    deadline = instants[target]

    def threshold(kind: str, label: str, amount: int) -> Threshold:
        due = instants[amount]
        if due is not None and stop is not None and due > stop:
            due = None  # the clock stopped first: this step never happens
        return Threshold(kind, label, us_td(amount), _dt(due), due is not None and due <= at_us)

    warnings = tuple(threshold("warning", label, amount) for label, amount in fractions)
    escalations = tuple(threshold("escalation", role, amount) for role, amount in steps)

    open_pause = next((s for s in applicable if s[0] <= end and (s[1] is None or s[1] > end)), None)
    paused = stop is None and open_pause is not None
    if track.cancelled_at is not None:
        state = "cancelled"
    elif elapsed > target or (elapsed == target and stop is None):
        state = "breached"
    else:
        state = "met" if track.met_at is not None else "pending"
    breached_at = _dt(deadline) if state == "breached" else None

    paused_by: dict[str, int] = {}
    life = clip(windows, 0, end)
    for s in applicable:
        lost = business_measure(calendar, intersect(life, clip(normalise([(s[0], s[1])]), 0, end)))
        if lost:
            paused_by[s[2]] = paused_by.get(s[2], 0) + lost

    next_change = None
    if stop is None and not paused:
        future = [i for i in instants.values() if i is not None and i > at_us]
        next_change = min(future) if future else None

    return MetricStatus(
        metric=track.metric, cycle=track.cycle, policy_id=track.policy.id, policy_version=track.policy.version,
        rule=track.rule.name, calendar_id=calendar.id, priority=track.cls, target=us_td(target),
        started_at=from_us(track.started_at), measured_from=from_us(track.measured_from),
        deadline=_dt(deadline), elapsed=us_td(elapsed), remaining=us_td(max(target - elapsed, 0)),
        overdue=us_td(max(elapsed - target, 0)), paused=paused,
        pause_reason=open_pause[2] if paused else None, pause_detail=open_pause[3] if paused else None,
        state=state, met_at=_dt(track.met_at), breached_at=breached_at, cancelled_at=_dt(track.cancelled_at),
        paused_by_reason={k: us_td(v) for k, v in paused_by.items()},
        warnings=warnings, escalations=escalations, next_change_at=_dt(next_change),
        previous_cycles=tuple(measure_track(p, tl, rules, at_us) for p in track.previous),
        trace=tuple(track.notes) + _pause_notes(applicable, life),
    )


def _pause_notes(applicable: list[list[Any]], life: list[tuple[int, int]]) -> tuple[str, ...]:
    """One line per pause that overlapped this clock's running windows."""
    notes = []
    for start, end, status, reason in applicable:
        if not intersect(life, normalise([(start, end)])):
            continue
        span = f"{iso_instant(from_us(start))} -> {iso_instant(from_us(end)) if end is not None else 'still paused'}"
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
    return ItemEvaluation(
        at=from_us(at_us), customer_id=facts.customer_id, entity_id=facts.entity_id, kind=tl.facts.kind,
        priority=tl.cls, rules_version=rules.version, metrics=metrics,
        next_change_at=min(changes) if changes else None,
        match_trace=tuple(tl.match.why()) if tl.match else (),
        notes=tuple(tl.notes), voided=tuple(measure_track(v, tl, rules, at_us) for v in tl.voided),
    )

