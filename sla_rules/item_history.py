"""Folding one item's event history into clock tracks.

This is the only place that knows what each event type means for the clocks
(an explicit routing table, ``HANDLERS``). The output is plain data: for each
metric a ``Track`` (running windows, target, policy version, notes) and the
item's status intervals (which become pauses). Measuring happens later in
``evaluation``; keeping the two apart keeps each small and testable.

Ordering: events are de-duplicated by event_id and put in the one order of an
item's events (``streams/event_order.py``, the same as the one-stop view's):
by occurred_at, then the lifecycle's causal order, then recorded_at, then the
source's position. Never by event id, and the order in which a caller passes
events with their positions never changes the result (without positions the
order given is taken as the source's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from streams.event_order import in_order, item_kind, source_key

from .durations import format_duration
from .instants import iso_us, td_us, to_us
from .policies import KINDS, SEVERITY_PRIORITY, ItemFacts, Match, Policy, Rule, RuleSet

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


def _content_key(t: int, event: Mapping[str, Any]) -> tuple[int, str, str]:
    """What two copies under one event_id must share to be the same event."""
    return t, str(event["event_type"]), repr(event.get("payload"))


def order_events(
    history: Iterable[Mapping[str, Any]], until_us: int | None = None
) -> list[tuple[int, Mapping[str, Any]]]:
    """The item's events up to ``until_us`` in the one order, duplicates (same event_id) dropped.

    Of identical copies the one the source delivered first is kept; of two
    different events under one id (a broken producer) the one with the
    smallest (instant, type, payload), whichever arrived first. The content
    key is only computed when a duplicate turns up.
    """
    seen: dict[str, tuple[int, int, Mapping[str, Any]]] = {}
    for index, event in enumerate(history):
        t = _ts(event["occurred_at"])
        if until_us is not None and t > until_us:
            continue
        event_id = str(event["event_id"])
        kept = seen.get(event_id)
        if kept is None:
            seen[event_id] = (t, index, event)
            continue
        mine, theirs = _content_key(t, event), _content_key(kept[0], kept[2])
        if mine < theirs or (mine == theirs and source_key(event, index) < source_key(kept[2], kept[1])):
            seen[event_id] = (t, index, event)
    # In the order given: without a position, that is where the source put an event.
    in_source_order = sorted(seen.values(), key=lambda k: k[1])
    instant_of = {id(event): t for t, _, event in in_source_order}
    survivors = [event for _, _, event in in_source_order]
    return [(instant_of[id(event)], event) for event in in_order(item_kind(survivors), survivors)]


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
    resolved: bool = False  # restored (faults) / resolved (tickets) since the last (re)opening

    # ------------------------------------------------------------- helpers
    def note(self, t: int, text: str) -> None:
        self.notes.append(f"{_fmt(t)} {text}")

    def start(
        self, metric: str, t: int, *, policy: Policy | None = None, rule: Rule | None = None, cycle: int = 1
    ) -> Track | None:
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
            self.note(
                t,
                f"{metric}: {policy.label} has no {metric} target for {self.facts.kind} {self.cls}; "
                "not tracked",
            )
            return None
        track = Track(metric, cycle, policy, rule, self.cls or "", td_us(target), t, t, [[t, None]])
        track.notes.append(
            f"{_fmt(t)} started (cycle {cycle}) under {policy.label}, {self.facts.kind} {self.cls}: "
            f"target {format_duration(target)}"
        )
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
        cls = (
            payload.get("priority") or SEVERITY_PRIORITY.get(payload.get("severity", "")) or tl.facts.priority
        )
    elif family == "ticket":
        cls = payload.get("priority") or tl.facts.priority
    else:
        cls = payload.get("urgency") or tl.facts.urgency
    if not cls:
        cls = DEFAULT_CLASS[family]
        tl.note(t, f"no priority on the opening event or the facts: assumed {cls}")
    tl.family, tl.cls, tl.opened_at = family, cls, t
    metrics = {
        "fault": ("response", "restore", "resolve"),
        "ticket": ("response", "resolve"),
        "order": ("provision",),
    }[family]
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
        _start_revisit(tl, t)

    return handler


def _start_revisit(tl: Timeline, t: int) -> None:
    """Start the revisit clock at a closure, unless one runs; numbered after the earlier ones.

    A reopen voids the revisit clock of the closure before it, and the next
    closure starts a new one: cycle 2, 3, ... so that its steps have ids of
    their own.  Numbered 1 again, they had the voided clock's ids, and its
    warnings and breach, already published, were never published again.
    """
    revisit = tl.tracks.get("revisit")
    if revisit is not None and revisit.running:
        return
    earlier = sum(v.metric == "revisit" for v in tl.voided) + (revisit is not None)
    tl.start("revisit", t, cycle=earlier + 1)


def _resolving(*metrics: str) -> Handler:
    """Meets ``metrics``; the item counts as resolved until it is reopened."""
    meets = _meets(*metrics)

    def handler(tl: Timeline, t: int, event: Mapping[str, Any]) -> None:
        meets(tl, t, event)
        tl.resolved = True

    return handler


def _closed(*metrics: str) -> Handler:
    """A fault or ticket closed: after its resolution a closure, else a close without one.

    Closed without resolution (never restored / resolved since it was last
    opened: a duplicate, a withdrawn request, no fault found), each running
    clock follows the ``close_unresolved`` mode of the policy version it runs
    under: ``stop`` ends it at the close, met or breached by the time it had
    used (a closure like any other, so the revisit clock starts); ``cancel``
    makes it ``cancelled``, counted nowhere, and no revisit clock starts when
    the version in force at the close says ``cancel``. Clocks already stopped
    (an acknowledged response) keep their outcome.
    """
    closing = _closing(*metrics)

    def handler(tl: Timeline, t: int, event: Mapping[str, Any]) -> None:
        if tl.resolved:
            closing(tl, t, event)
            return
        reason = (event.get("payload") or {}).get("closed_unresolved") or "other"
        tl.note(t, f"closed without resolution ({reason})")
        for track in tl.tracks.values():
            if not track.running:
                continue
            track.stop(t)
            if track.policy.close_unresolved == "cancel":
                track.cancelled_at = t
                track.notes.append(
                    f"{_fmt(t)} cancelled: closed without resolution ({reason}), "
                    f"{track.policy.label} close_unresolved = cancel; not counted"
                )
            else:
                track.met_at = t
                track.notes.append(
                    f"{_fmt(t)} stopped: closed without resolution ({reason}), "
                    f"{track.policy.label} close_unresolved = stop"
                )
        match = tl.rules.match_index.match(tl.facts, tl.cls, t)
        if match is not None and match.policy.close_unresolved == "cancel":
            tl.note(
                t,
                f"revisit: not started, {match.policy.label} cancels the clocks of items "
                "closed without resolution",
            )
            return
        _start_revisit(tl, t)

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
            track.notes.append(
                f"{_fmt(t)} priority {old} -> {new}: no {track.metric} target for {new}, target kept"
            )
            continue
        mode = track.policy.priority_change
        if mode == "from_change":
            track.measured_from = t
        track.notes.append(
            f"{_fmt(t)} priority {old} -> {new} ({mode}): "
            f"target {format_duration(dt.timedelta(microseconds=track.target))}"
            f" -> {format_duration(target)} under {match.policy.label}, counted from "
            + ("the change" if mode == "from_change" else "the original start")
        )
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
    tl.resolved = False
    response = tl.tracks.get("response")
    if response is not None and response.cancelled_at is not None:
        # cancelled by a close without resolution: never met, it runs on
        response.windows.append([t, None])
        response.cancelled_at = None
        response.notes.append(f"{_fmt(t)} reopened: the cancelled clock runs again from where it stopped")
    metrics = ("restore", "resolve") if tl.family == "fault" else ("resolve",)
    for metric in metrics:
        track = tl.tracks.get(metric)
        if track is None or track.running:
            continue  # (stopped clocks: met, or cancelled by a close without resolution)
        if track.policy.reopen == "resume":
            track.windows.append([t, None])
            track.met_at = None
            track.cancelled_at = None
            track.notes.append(f"{_fmt(t)} reopened (resume): clock runs again from where it stopped")
        else:
            new = tl.start(metric, t, policy=track.policy, rule=track.rule, cycle=track.cycle + 1)
            if new is None:
                tl.tracks[metric] = track
                continue
            new.previous = track.previous + [track]
            track.previous = []
            new.notes.insert(
                0, f"{_fmt(t)} reopened (new_cycle): cycle {track.cycle} closed, new cycle with full target"
            )


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
    "fault.restored": _resolving("response", "restore"),
    "fault.closed": _closed("response", "restore", "resolve"),
    "fault.reopened": _reopen,
    "fault.revisit_recorded": _meets("revisit"),
    "fault.status_changed": _status,
    "fault.priority_changed": _priority,
    "ticket.opened": _open,
    "ticket.acknowledged": _meets("response"),
    "ticket.status_changed": _status,
    "ticket.priority_changed": _priority,
    "ticket.resolved": _resolving("response", "resolve"),
    "ticket.reopened": _reopen,
    "ticket.closed": _closed("response", "resolve"),
    "ticket.revisit_recorded": _meets("revisit"),
    "order.received": _open,
    "order.activated": _activated,
    "order.customer_accepted": _closing("provision", "acceptance"),
    "order.cancelled": _cancel,
    "order.revisit_recorded": _meets("revisit"),
    "order.status_changed": _status,
}


def fold_history(
    facts: ItemFacts, history: Iterable[Mapping[str, Any]], rules: RuleSet, at_us: int
) -> Timeline:
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
