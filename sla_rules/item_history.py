"""Folding one item's event history into clock tracks.

This is the only place that knows what each event type means for the clocks
(an explicit routing table, ``HANDLERS``). The output is plain data: for each
metric a ``Track`` (running windows, target, policy version, notes) and the
item's status intervals (which become pauses). Measuring happens later in
``evaluation``; keeping the two apart keeps each small and testable.

Ordering: events are sorted by (occurred_at, fixed precedence of the event
type, event_id) and de-duplicated by event_id, so the order in which equal
events arrived never changes the result.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .instants import iso_us, td_us, to_us
from .policies import KINDS, SEVERITY_PRIORITY, ItemFacts, Match, Policy, Rule, RuleSet
from .durations import format_duration

# Tie-break for events at the same instant: the natural life-cycle order.
PRECEDENCE = {
    "reported": 0, "opened": 0, "received": 0,
    "priority_changed": 1, "status_changed": 2, "acknowledged": 3,
    "assigned": 4, "dispatched": 4, "resource_confirmed": 4, "resource_shortfall": 4,
    "repair_started": 5, "provisioning_started": 5, "milestone_reached": 5,
    "restored": 6, "resolved": 7, "activated": 7,
    "customer_confirmed": 8, "customer_accepted": 8, "closed": 9,
    "revisit_recorded": 10, "reopened": 11, "cancelled": 12,
}
OPENING = {"fault.reported": "fault", "ticket.opened": "ticket", "order.received": "order"}
DEFAULT_CLASS = {"fault": "P3", "ticket": "P3", "order": "normal"}


def _ts(value: Any) -> int:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if not isinstance(value, dt.datetime):
        raise ValueError(f"occurred_at must be an aware datetime, got {value!r}")
    return to_us(value)


def _fmt(us: int) -> str:
    return iso_us(us)


def _event_key(item: tuple[int, Mapping[str, Any]]) -> tuple[int, int, str, str, str]:
    """Full ordering key; the last two parts only separate (broken) duplicates deterministically."""
    t, event = item
    suffix = str(event["event_type"]).rpartition(".")[2]
    return t, PRECEDENCE.get(suffix, 50), str(event["event_id"]), str(event["event_type"]), repr(event.get("payload"))


def order_events(history: Iterable[Mapping[str, Any]], until_us: int | None = None) -> list[tuple[int, Mapping[str, Any]]]:
    """Deterministic order of events up to ``until_us``, duplicates (same event_id) dropped.

    Of duplicates the one with the smallest full key is kept. The survivors
    have distinct event_ids, so (instant, precedence, event_id) already
    orders them totally: the costly tail of the key (the payload's repr) is
    only computed when a duplicate turns up.
    """
    seen: dict[str, tuple[int, Mapping[str, Any]]] = {}
    for event in history:
        item = (_ts(event["occurred_at"]), event)
        if until_us is not None and item[0] > until_us:
            continue
        event_id = str(event["event_id"])
        kept = seen.get(event_id)
        if kept is None or _event_key(item) < _event_key(kept):
            seen[event_id] = item
    keyed = sorted((t, PRECEDENCE.get(str(event["event_type"]).rpartition(".")[2], 50), event_id, event)
                   for event_id, (t, event) in seen.items())
    return [(t, event) for t, _, _, event in keyed]


@dataclass
class Track:
    """One cycle of one metric's clock, as built from the history."""

    metric: str
    cycle: int
    policy: Policy
    rule: Rule
    cls: str
    target: int
    started_at: int
    measured_from: int
    windows: list[list[int | None]]
    met_at: int | None = None
    cancelled_at: int | None = None
    notes: list[str] = field(default_factory=list)
    previous: list[Track] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return self.met_at is None and self.cancelled_at is None and self.windows[-1][1] is None

    def stop(self, t: int) -> None:
        self.windows[-1][1] = t


@dataclass
class Timeline:
    """Everything the history says about the clocks of one item."""

    facts: ItemFacts
    rules: RuleSet
    family: str | None = None  # fault | ticket | order
    cls: str | None = None
    opened_at: int | None = None
    match: Match | None = None
    tracks: dict[str, Track] = field(default_factory=dict)
    statuses: list[list[Any]] = field(default_factory=list)  # [start, end|None, status, reason]
    notes: list[str] = field(default_factory=list)
    voided: list[Track] = field(default_factory=list)

    # ------------------------------------------------------------- helpers
    def note(self, t: int, text: str) -> None:
        self.notes.append(f"{_fmt(t)} {text}")

    def start(self, metric: str, t: int, *, policy: Policy | None = None, rule: Rule | None = None, cycle: int = 1) -> Track | None:
        """Start a metric's clock under the policy version in force at ``t`` (or a kept one)."""
        if policy is None or rule is None:
            match = self.rules.match_index.match(self.facts, self.cls, t)
            if match is None:
                self.note(t, f"{metric}: no rule/policy in force, clock not started")
                return None
            policy, rule = match.policy, match.rule
            if self.match is None:
                self.match = match
        target = policy.target(self.facts.kind, self.cls or "", metric)
        if target is None:
            self.note(t, f"{metric}: {policy.label} has no {metric} target for {self.facts.kind} {self.cls}; not tracked")
            return None
        track = Track(metric, cycle, policy, rule, self.cls or "", td_us(target), t, t, [[t, None]])
        track.notes.append(f"{_fmt(t)} started (cycle {cycle}) under {policy.label}, {self.facts.kind} {self.cls}: target {format_duration(target)}")
        self.tracks[metric] = track
        return track

    def meet(self, metric: str, t: int, why: str) -> None:
        """Stop a running clock as met at ``t`` (a stopped clock is left alone)."""
        track = self.tracks.get(metric)
        if track is not None and track.running:
            track.stop(t)
            track.met_at = t
            track.notes.append(f"{_fmt(t)} met by {why}")

    def set_status(self, t: int, status: str, reason: str | None) -> None:
        """Record a status change; pending_* statuses open an interval that may pause clocks."""
        if self.statuses and self.statuses[-1][1] is None:
            if self.statuses[-1][2] == status:
                return
            self.statuses[-1][1] = t
        if status.startswith("pending_"):
            self.statuses.append([t, None, status, reason])


# ------------------------------------------------------------------ handlers
Handler = Callable[[Timeline, int, Mapping[str, Any]], None]


def _open(tl: Timeline, t: int, event: Mapping[str, Any]) -> None:
    if tl.opened_at is not None:
        tl.note(t, f"ignored second opening event {event['event_type']}")
        return
    family = OPENING[event["event_type"]]
    payload = event.get("payload") or {}
    kind = payload.get("kind") if family == "ticket" else family
    if kind in KINDS and kind != tl.facts.kind:
        tl.note(t, f"kind {kind!r} from {event['event_type']} overrides the facts' {tl.facts.kind!r}")
        tl.facts = replace(tl.facts, kind=kind)
    if family == "fault":
        cls = payload.get("priority") or SEVERITY_PRIORITY.get(payload.get("severity", "")) or tl.facts.priority
    elif family == "ticket":
        cls = payload.get("priority") or tl.facts.priority
    else:
        cls = payload.get("urgency") or tl.facts.urgency
    if not cls:
        cls = DEFAULT_CLASS[family]
        tl.note(t, f"no priority on the opening event or the facts: assumed {cls}")
    tl.family, tl.cls, tl.opened_at = family, cls, t
    metrics = {"fault": ("response", "restore", "resolve"), "ticket": ("response", "resolve"), "order": ("provision",)}[family]
    for metric in metrics:
        tl.start(metric, t)


def _meets(*metrics: str) -> Handler:
    def handler(tl: Timeline, t: int, event: Mapping[str, Any]) -> None:
        for metric in metrics:
            tl.meet(metric, t, event["event_type"])
    return handler


def _closing(*metrics: str) -> Handler:
    """Meets ``metrics`` and starts the revisit (回访) clock."""
    def handler(tl: Timeline, t: int, event: Mapping[str, Any]) -> None:
        _meets(*metrics)(tl, t, event)
        revisit = tl.tracks.get("revisit")
        if revisit is None or not revisit.running:
            tl.start("revisit", t)
    return handler


def _activated(tl: Timeline, t: int, event: Mapping[str, Any]) -> None:
    tl.meet("provision", t, event["event_type"])
    if "acceptance" not in tl.tracks:
        tl.start("acceptance", t)


def _status(tl: Timeline, t: int, event: Mapping[str, Any]) -> None:
    payload = event.get("payload") or {}
    tl.set_status(t, str(payload.get("status", "")), payload.get("reason"))


def _priority(tl: Timeline, t: int, event: Mapping[str, Any]) -> None:
    new = (event.get("payload") or {}).get("priority")
    if not new or new == tl.cls:
        return
    old, tl.cls = tl.cls, new
    tl.note(t, f"priority {old} -> {new}")
    for track in tl.tracks.values():
        if not track.running:
            continue
        match = tl.rules.match_index.match(tl.facts, new, track.started_at)
        target = match.policy.target(tl.facts.kind, new, track.metric) if match else None
        if match is None or target is None:
            track.notes.append(f"{_fmt(t)} priority {old} -> {new}: no {track.metric} target for {new}, target kept")
            continue
        mode = track.policy.priority_change
        if mode == "from_change":
            track.measured_from = t
        track.notes.append(
            f"{_fmt(t)} priority {old} -> {new} ({mode}): target {format_duration(dt.timedelta(microseconds=track.target))}"
            f" -> {format_duration(target)} under {match.policy.label}, counted from "
            + ("the change" if mode == "from_change" else "the original start"))
        track.policy, track.rule, track.cls, track.target = match.policy, match.rule, new, td_us(target)


def _reopen(tl: Timeline, t: int, event: Mapping[str, Any]) -> None:
    reason = (event.get("payload") or {}).get("reason")
    tl.note(t, f"reopened{': ' + reason if reason else ''}")
    if tl.statuses and tl.statuses[-1][1] is None:
        tl.statuses[-1][1] = t  # a reopened item is being worked on again
    revisit = tl.tracks.pop("revisit", None)
    if revisit is not None:
        if revisit.running:
            revisit.stop(t)
            revisit.cancelled_at = t
        revisit.notes.append(f"{_fmt(t)} voided by reopen; a new revisit clock starts at the next closure")
        tl.voided.append(revisit)
    metrics = ("restore", "resolve") if tl.family == "fault" else ("resolve",)
    for metric in metrics:
        track = tl.tracks.get(metric)
        if track is None or track.running or track.cancelled_at is not None:
            continue
        if track.policy.reopen == "resume":
            track.windows.append([t, None])
            track.met_at = None
            track.notes.append(f"{_fmt(t)} reopened (resume): clock runs again from where it stopped")
        else:
            new = tl.start(metric, t, policy=track.policy, rule=track.rule, cycle=track.cycle + 1)
            if new is None:
                tl.tracks[metric] = track
                continue
            new.previous = track.previous + [track]
            track.previous = []
            new.notes.insert(0, f"{_fmt(t)} reopened (new_cycle): cycle {track.cycle} closed, new cycle with full target")


def _cancel(tl: Timeline, t: int, event: Mapping[str, Any]) -> None:
    tl.note(t, f"cancelled: {(event.get('payload') or {}).get('reason', '')}")
    for track in tl.tracks.values():
        if track.running:
            track.stop(t)
            track.cancelled_at = t
            track.notes.append(f"{_fmt(t)} cancelled with the order")


HANDLERS: dict[str, Handler] = {
    "fault.reported": _open,
    "fault.acknowledged": _meets("response"),
    # Restoring or closing proves the fault was handled: any response still
    # pending is met then (a missing acknowledgement is not an eternal breach).
    "fault.restored": _meets("response", "restore"),
    "fault.closed": _closing("response", "restore", "resolve"),
    "fault.reopened": _reopen,
    "fault.revisit_recorded": _meets("revisit"),
    "fault.status_changed": _status,
    "fault.priority_changed": _priority,
    "ticket.opened": _open,
    "ticket.acknowledged": _meets("response"),
    "ticket.status_changed": _status,
    "ticket.priority_changed": _priority,
    "ticket.resolved": _meets("response", "resolve"),
    "ticket.reopened": _reopen,
    "ticket.closed": _closing("response", "resolve"),
    "ticket.revisit_recorded": _meets("revisit"),
    "order.received": _open,
    "order.activated": _activated,
    "order.customer_accepted": _closing("provision", "acceptance"),
    "order.cancelled": _cancel,
    "order.revisit_recorded": _meets("revisit"),
    "order.status_changed": _status,
}


def fold_history(facts: ItemFacts, history: Iterable[Mapping[str, Any]], rules: RuleSet, at_us: int) -> Timeline:
    """Replay the history (events up to ``at_us``) into a Timeline."""
    tl = Timeline(facts, rules)
    for t, event in order_events(history, at_us):
        handler = HANDLERS.get(str(event["event_type"]))
        if handler is None:
            continue  # no clock meaning (dispatched, milestone_reached, ...)
        if handler is not _open and tl.opened_at is None:
            tl.note(t, f"ignored {event['event_type']} before the opening event")
            continue
        handler(tl, t, event)
    return tl
