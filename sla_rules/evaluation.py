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

``step_set`` (end of module) is what the SLA timers publish: the steps an
item's whole event log leads to by an instant, evaluating each prefix of the
log once (``StepMemo``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from .clock import INF, Interval, business_measure, clip, intersect, normalise, reach_instants, subtract
from .instants import from_us, iso_instant, iso_us, td_us, to_us, us_td
from .item_history import HANDLERS, Timeline, Track, fold_history, order_events
from .policies import ItemFacts, Policy, RuleSet
from .results import Crossing, Deferred, ItemEvaluation, MetricStatus, StepSet, Threshold, assemble

__all__ = [
    "Crossing",
    "ItemEvaluation",
    "MetricStatus",
    "StepMemo",
    "StepSet",
    "Threshold",
    "evaluate",
    "iso_instant",
    "measure_track",
    "step_set",
]


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
    target, measured_from, met_at, cancelled_at = (
        track.target,
        track.measured_from,
        track.met_at,
        track.cancelled_at,
    )
    stop = met_at if met_at is not None else cancelled_at
    end = at_us if stop is None else min(at_us, stop)
    # [start, end | None] lists (the last end is set when the clock stops); a start is never None
    ran = cast("list[tuple[int, int | None]]", track.windows)
    windows = normalise(ran)
    applicable: list[list[Any]]
    pauses: list[Interval]
    if track.metric in policy.pause_metrics:
        applicable = [s for s in tl.statuses if s[2] in policy.pause_statuses]
        pauses = normalise([(s[0], s[1]) for s in applicable])
    else:
        applicable, pauses = [], []
    # running time: windows minus pauses, from measured_from, up to now (or the stop)
    elapsed = business_measure(calendar, clip(subtract(windows, pauses), max(measured_from, 0), end))
    # Thresholds: the clock as it was (or is) heading, i.e. a stopped clock
    # projected past its stop with no further pause, so a met clock still
    # shows the deadline it had.
    projected_windows = normalise(ran[:-1] + [(ran[-1][0], None)])
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
            out.append(
                assemble(
                    Threshold,
                    kind=kind,
                    label=label,
                    at_elapsed=at_elapsed,
                    due_at=_dt(due),
                    reached=due is not None and due <= at_us,
                )
            )
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
        MetricStatus,
        metric=track.metric,
        cycle=track.cycle,
        policy_id=policy.id,
        policy_version=policy.version,
        rule=track.rule.name,
        calendar_id=calendar.id,
        priority=track.cls,
        target=us_td(target),
        started_at=from_us(track.started_at),
        measured_from=from_us(measured_from),
        deadline=_dt(deadline),
        elapsed=us_td(elapsed),
        remaining=us_td(max(target - elapsed, 0)),
        overdue=us_td(max(elapsed - target, 0)),
        paused=paused,
        pause_reason=open_pause[2] if paused and open_pause is not None else None,
        pause_detail=open_pause[3] if paused and open_pause is not None else None,
        state=state,
        met_at=_dt(met_at),
        breached_at=_dt(deadline) if state == "breached" else None,
        cancelled_at=_dt(cancelled_at),
        paused_by_reason={k: us_td(v) for k, v in paused_by.items()},
        warnings=Deferred(lambda: steps("warning", plan.warnings)),
        escalations=Deferred(lambda: steps("escalation", plan.escalations)),
        next_change_at=_dt(next_change),
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


def evaluate(
    facts: ItemFacts, history: Iterable[Mapping[str, Any]], rules: RuleSet, at: dt.datetime
) -> ItemEvaluation:
    """Evaluate every SLA clock of one item at instant ``at`` (aware datetime).

    Only events with ``occurred_at <= at`` count. Metrics whose clock has not
    started (e.g. revisit before closure) are absent from ``metrics``.
    """
    at_us = to_us(at)
    tl = fold_history(facts, history, rules, at_us)
    metrics = {name: measure_track(track, tl, rules, at_us) for name, track in sorted(tl.tracks.items())}
    changes = [m.next_change_at for m in metrics.values() if m.next_change_at is not None]
    return assemble(
        ItemEvaluation,
        at=from_us(at_us),
        customer_id=facts.customer_id,
        entity_id=facts.entity_id,
        kind=tl.facts.kind,
        priority=tl.cls,
        rules_version=rules.version,
        metrics=metrics,
        next_change_at=min(changes) if changes else None,
        match_trace=tl.match.trace if tl.match else (),
        notes=tuple(tl.notes),
        voided=tuple(measure_track(v, tl, rules, at_us) for v in tl.voided),
    )


# ------------------------------------------------------------------ the step set
# What the SLA timers publish, as a function of an item's event log and an
# instant alone (not of when anyone looked, nor of how events were batched).
#
# The log, in the one order, is cut after each event that can move a clock
# (``HANDLERS``; other events change no clock, so they open no window): window
# i runs from that event's instant t_i to the next such event's, t_{i+1} (the
# last one to the instant asked about), and sees the clocks as the events up
# to it left them (the prefix i).  Events that share an instant (sources
# record to the minute) give windows of no length between them; a resolve and
# a reopen in one minute still met the clock in between.  A threshold
# (warning, breach, ladder step) of any cycle, current or previous, belongs to
# window i when its instant is *before* the window's end: every event at the
# very instant of a deadline comes first (resolved exactly at the deadline is
# met).  A met belongs to the window of the event that met the clock.  The last
# window includes its end when asked live (everything due by now), excludes it
# in replay (an event at the watermark's instant may still come in the next
# batch), and a replay does not look at events at the watermark yet.  The first
# window that has a step fixes it; a step that a later event undid (a short
# breach, the met of a cycle a reopen resumed) still happened.

#: Windows of one item's log evaluated one by one; past them the last window
#: takes every later event.  Each window evaluates its whole prefix, so an item
#: with n clock-moving events costs O(n^2): an alarm storm pausing and resuming
#: one fault 10,000 times (the big-customer fault test) stopped the worker's
#: loop for minutes.  Past the bound, the item's steps are those of its whole
#: log at each tick, as before the step set: a short breach that an event in
#: that tail undid is not published, a step of the tail names the tail's first
#: event as its cause, and which prefix a tick saw can matter (the worker in
#: replay and `keydesk replay` both tick after every event, so they still
#: agree).  No item of the generated month comes near it (a few dozen such
#: events at most).
MAX_WINDOWS = 500

_Key = tuple[str, int, str]  # (metric, cycle, step)
_ZERO = dt.timedelta(0)
# (kind, label, ladder number, due us, deadline us, (priority, target, policy id, version))
_Candidate = tuple[str, str | None, int | None, int, int | None, tuple[str, dt.timedelta, str, int]]


class StepMemo:
    """Where each item's step set stands (``ItemSteps``), the most recently used items kept.

    Keyed by the item's facts.  The SLA timers keep one per worker, so that
    each prefix of an item's log is evaluated once however often the item is
    ticked; a forgotten item is computed again from its whole log.  One memo
    serves one rule set.
    """

    def __init__(self, size: int = 16_384) -> None:
        self.size = size
        self._items: dict[ItemFacts, ItemSteps] = {}

    def __len__(self) -> int:
        return len(self._items)

    def get(self, facts: ItemFacts) -> ItemSteps | None:
        found = self._items.pop(facts, None)
        if found is not None:
            self._items[facts] = found  # most recently used last
        return found

    def put(self, facts: ItemFacts, steps: ItemSteps) -> None:
        self._items[facts] = steps
        if len(self._items) > self.size:
            del self._items[next(iter(self._items))]

    def forget(self, customer_ids: Iterable[str]) -> None:
        """Forget the customers' items: their logs went back to an earlier state.

        A memo that saw events since undone (a failed batch, rolled back) would
        take them for old when they are folded again, and leave the item's
        schedule as the failed try left it.
        """
        gone = set(customer_ids)
        for facts in [f for f in self._items if f.customer_id in gone]:
            del self._items[facts]


def _us_or_none(value: dt.datetime | None) -> int | None:
    return None if value is None else to_us(value)


def _candidates(evaluation: ItemEvaluation) -> dict[_Key, _Candidate]:
    """Every step the clocks of one prefix have passed or are heading for, with its instant.

    A running clock: its warnings, breach (the deadline) and ladder steps
    whose instants are known (none while paused, except those reached before
    the pause).  A stopped clock (met, or cancelled): the thresholds *before*
    the stop (one at the stop's own instant never happened: the event came
    first), the breach if it had used more than its target, and met if it was
    met in time.  Voided revisit clocks have none: they ran in the earlier
    windows.  Instants do not depend on when the prefix is looked at.
    """
    found: dict[_Key, _Candidate] = {}
    for name, current in evaluation.metrics.items():
        for m in (*current.previous_cycles, current):
            clock = (m.priority, m.target, m.policy_id, m.policy_version)
            deadline = _us_or_none(m.deadline)
            stopped = m.met_at or m.cancelled_at
            stop = INF if stopped is None else to_us(stopped)
            for warning in m.warnings:
                if warning.due_at is not None and (due := to_us(warning.due_at)) < stop:
                    found[(name, m.cycle, f"warning:{warning.label}")] = (
                        "warning",
                        warning.label,
                        None,
                        due,
                        due if deadline is None else deadline,
                        clock,
                    )
            if deadline is not None and (stopped is None or m.overdue > _ZERO):
                found[(name, m.cycle, "breach")] = ("breach", None, None, deadline, deadline, clock)
            for number, step in enumerate(m.escalations, start=1):
                if step.due_at is not None and (due := to_us(step.due_at)) < stop:
                    found[(name, m.cycle, f"step:{number}")] = (
                        "escalation",
                        step.label,
                        number,
                        due,
                        deadline,
                        clock,
                    )
            if m.state == "met" and m.met_at is not None and deadline is not None:
                found[(name, m.cycle, "met")] = ("met", None, None, to_us(m.met_at), deadline, clock)
    return found


def _crossing(
    key: _Key, candidate: _Candidate, caused_by: str | None = None, detected_us: int | None = None
) -> Crossing:
    kind, label, number, due, deadline, (priority, target, policy_id, version) = candidate
    return Crossing(
        metric=key[0],
        cycle=key[1],
        step=key[2],
        kind=kind,
        label=label,
        number=number,
        due_at=from_us(due),
        deadline=_dt(deadline),
        priority=priority,
        target=target,
        policy_id=policy_id,
        policy_version=version,
        caused_by=caused_by,
        detected_at=None if detected_us is None else from_us(detected_us),
    )


_Window = tuple[int, int, int]  # (instant, index of its event, index after it)


class ItemSteps:
    """One item's log cut into windows, and the steps of the windows already closed.

    A closed window (one a later event ended) never changes while the log's
    events up to its end stay the same, so its steps are kept: ``closed``
    maps each step first crossed in one to (window, candidate, origin).  Only
    the last window's prefix is kept whole (``last``, with each step's
    ``origin``: the window from which its instant has had its value).  A log
    that grows by events placed after its last one is followed window by
    window; any other change (an event placed before it: a late one, or one at
    the same instant that the one order puts first) starts again from the
    whole log.
    """

    __slots__ = ("given", "times", "places", "ids", "windows", "closed", "last", "origins")

    def __init__(self) -> None:
        self.given: tuple[str, ...] | None = None  # the history's ids as given
        self.times: tuple[int, ...] = ()  # in the one order
        self.places: tuple[int, ...] = ()
        self.ids: tuple[str, ...] = ()  # in the one order
        self.windows: list[_Window] = []
        self.closed: dict[_Key, tuple[int, _Candidate, int]] = {}
        self.last: dict[_Key, _Candidate] = {}
        self.origins: dict[_Key, int] = {}


def _windows(
    times: tuple[int, ...], events: list[Mapping[str, Any]], until_us: int, strict: bool
) -> tuple[list[_Window], int | None]:
    """The windows of a log in the one order, and the first instant not looked at yet.

    Past ``MAX_WINDOWS`` windows the last one takes every later event (see there).
    """
    windows: list[_Window] = []
    for i, event in enumerate(events):
        if event["event_type"] not in HANDLERS:
            continue
        t = times[i]
        if t > until_us or (strict and t == until_us):
            return windows, t
        if len(windows) < MAX_WINDOWS:
            windows.append((t, i, i + 1))
        else:
            windows[-1] = (windows[-1][0], windows[-1][1], i + 1)
    return windows, None


def _belongs(candidate: _Candidate, end: int) -> bool:
    """Whether a step of a window's prefix happened before the window ``end``s (see above)."""
    return candidate[3] < end or candidate[0] == "met"


def _follow(
    state: ItemSteps,
    facts: ItemFacts,
    events: list[Mapping[str, Any]],
    ids: tuple[str, ...],
    windows: list[_Window],
    rules: RuleSet,
) -> None:
    """Bring ``state`` to ``windows`` of the log ``events``: close, evaluate, or start again.

    A last window that only took more events (past ``MAX_WINDOWS``) is
    evaluated again in place, the windows before it kept.
    """
    old = state.windows
    keep = (
        len(old)
        if old == windows[: len(old)]
        and state.ids[: old[-1][2] if old else 0] == ids[: old[-1][2] if old else 0]
        else 0
    )
    again = None  # the index of a last window that grew, evaluated again without closing
    if keep == 0 and old:
        last = len(old) - 1
        if (
            len(windows) == len(old)
            and old[:last] == windows[:last]
            and old[last][:2] == windows[last][:2]
            and old[last][2] < windows[last][2]
            and state.ids[: old[last][2]] == ids[: old[last][2]]
        ):
            keep = again = last
        else:
            state.closed, state.last, state.origins = {}, {}, {}
    for p in range(keep, len(windows)):
        if p > 0 and p != again:  # the window before ends where this one begins
            end = windows[p][0]
            for key, candidate in state.last.items():
                if key not in state.closed and _belongs(candidate, end):
                    state.closed[key] = (p - 1, candidate, state.origins[key])
        _, _, end_index = windows[p]
        at = from_us(state.times[end_index - 1])  # its (last) event's instant
        found = _candidates(evaluate(facts, events[:end_index], rules, at))
        origins = {}
        for key, candidate in found.items():
            before = state.last.get(key)
            origins[key] = state.origins[key] if before is not None and before[3] == candidate[3] else p
        state.last, state.origins = found, origins
    state.windows, state.ids = windows, ids


def step_set(
    facts: ItemFacts,
    history: Iterable[Mapping[str, Any]],
    rules: RuleSet,
    until: dt.datetime,
    *,
    strict: bool = False,
    skip: Container[_Key] = (),
    acknowledged: Mapping[tuple[str, int], dt.datetime] | None = None,
    memo: StepMemo | None = None,
) -> StepSet:
    """The steps ``history`` leads to by ``until``, each as the first window that had it saw it.

    ``strict`` (replay): only steps due before ``until``, from events before it.
    Otherwise (live) steps due at ``until`` count too.  Steps whose
    (metric, cycle, step) is in ``skip`` (already published) are left out, and
    so are the ladder steps of a (metric, cycle) due after its escalation was
    ``acknowledged`` (an acknowledgement stops the rest of the ladder).

    Each step's ``caused_by`` is the event that set the instant it was due at:
    the event after which that instant has had its final value (the opening,
    the priority change under ``recompute``, the reopen that started the cycle
    or resumed it, the end of the pause that moved it, the resolve that met
    it).  A step due before the event of the window that produced it (its
    instant was already past when the event happened) was only known then: it
    carries ``detected_at``, that event's instant, and that event is its cause.
    ``next_at``: when the next step may be due
    (strict: once ``until`` has passed it), ``None`` when only an event can
    change anything.
    """
    until_us = to_us(until)
    acknowledged = acknowledged or {}
    records = history if isinstance(history, list) else list(history)
    state = memo.get(facts) if memo is not None else None
    if state is None:
        state = ItemSteps()
        if memo is not None:
            memo.put(facts, state)
    given = tuple(str(event["event_id"]) for event in records)
    if given != state.given:
        ordered = order_events(records)
        where = {id(event): n for n, event in enumerate(records)}
        state.given, state.times = given, tuple(t for t, _ in ordered)
        state.places = tuple(where[id(event)] for _, event in ordered)
    events = [records[n] for n in state.places]
    ids = tuple(given[n] for n in state.places)
    windows, unseen = _windows(state.times, events, until_us, strict)
    if windows != state.windows or ids != state.ids:
        _follow(state, facts, events, ids, windows, rules)

    def stopped(key: _Key, candidate: _Candidate) -> bool:
        ack = acknowledged.get(key[:2])
        return candidate[0] == "escalation" and ack is not None and candidate[3] > to_us(ack)

    first = dict(state.closed)
    if windows:
        p = len(windows) - 1
        for key, candidate in state.last.items():
            if key not in first and (
                _belongs(candidate, until_us) or (candidate[3] == until_us and not strict)
            ):
                first[key] = (p, candidate, state.origins[key])
    crossed = []
    for key, (p, candidate, origin) in first.items():
        if key in skip or stopped(key, candidate):
            continue
        due, start = candidate[3], windows[p][0]
        crossed.append(
            _crossing(key, candidate, state.ids[windows[origin][1]], start if due < start else None)
        )
    crossed.sort(key=lambda c: (c.due_at, c.metric, c.cycle, c.step))
    heading = (
        [
            candidate[3]
            for key, candidate in state.last.items()
            if key not in first and key not in skip and not stopped(key, candidate)
        ]
        if windows
        else []
    )
    if unseen is not None:
        heading.append(unseen)
    return StepSet(
        crossed=tuple(crossed), next_at=_dt(min(heading, default=None)), rules_version=rules.version
    )
