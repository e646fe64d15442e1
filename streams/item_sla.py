"""Between the one-stop view and the SLA engine: which facts and history an item's
clocks are computed from, and the compact SLA state the view keeps per item.

Pure: the rules are passed in and the instant is the item's own latest event
time ("at event time"), so replaying the same events gives the same view.
"""

from __future__ import annotations

import bisect
import uuid
from datetime import datetime
from typing import Any

from schemas.envelope import Event, event_from_dict, utc_iso
from streams.customer_view import Outcome
from sla_rules import CLOCK_EVENT_TYPES, ItemFacts, RuleSet, evaluate
from sla_rules.instants import iso_instant

#: Tier assumed while a customer's profile has not arrived (the strictest
#: assumption would page managers for a stranger; the loosest never alerts).
UNKNOWN_TIER = "public"
_SUMMARY_FIELDS = ("state", "deadline", "target_seconds", "elapsed_seconds",
                   "remaining_seconds", "overdue_seconds", "paused", "pause_reason",
                   "met_at", "breached_at", "cancelled_at", "calendar_id", "cycle",
                   "next_change_at")


def items_touched_by(view: dict[str, Any], event: Event,
                     outcome: Outcome | None = None) -> set[tuple[str, str]]:
    """The items whose clocks folding ``event`` may have changed: (kind, id) pairs.

    A customer event may change the tier, hence every open clock of the customer.
    A duplicate or a rejected transition changes nothing; an event type the
    engine does not read changes nothing either, unless it arrived late (a
    refold can turn an earlier rejected event into an applied one).  A step
    coming back from the SLA topic changes no clock; an acknowledgement stops
    a ladder.  (Measured: re-summarising items for their own step events made a
    third of the timer's evaluations find nothing; BENCHMARKS.md.)
    """
    if outcome is not None and outcome.status != "applied":
        return set()
    if event.kind == "customer":
        return {(kind, item_id) for kind in ("fault", "ticket", "order")
                for item_id in view["open"][kind]}
    if event.kind == "sla":
        if event.event_type == "sla.escalation_acknowledged":
            return {(event.payload["item_kind"], event.entity_id)}
        return set()
    late = outcome is not None and outcome.late
    if event.event_type not in CLOCK_EVENT_TYPES and not late:
        return set()
    return {(event.kind, event.entity_id)}


def item_facts(view: dict[str, Any], item: dict[str, Any]) -> ItemFacts:
    """The engine's facts: tier from the profile, kind/priority/urgency from the item."""
    profile = view.get("profile") or {}
    attributes = item["attributes"]
    kind = attributes.get("kind", "complaint") if item["kind"] == "ticket" else item["kind"]
    return ItemFacts(customer_id=view["customer_id"], tier=profile.get("tier", UNKNOWN_TIER),
                     kind=kind, priority=attributes.get("priority"),
                     urgency=attributes.get("urgency"), region=profile.get("region"),
                     entity_id=item["id"])


def clock_history(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The events that happened to the item (rejected transitions do not move clocks).

    With what the engine needs to put them in the view's order (``recorded_at``
    and the source position), so that both read one order of events.
    """
    history = []
    for r in item["history"]:
        if r.get("outcome") != "applied":
            continue
        entry = {"event_id": r["event_id"], "event_type": r["event_type"],
                 "occurred_at": datetime.fromisoformat(r["occurred_at"]),
                 "recorded_at": r["recorded_at"], "payload": r["payload"]}
        for name in ("position", "arrival"):
            if name in r:
                entry[name] = r[name]
        history.append(entry)
    return history


def sla_summary(view: dict[str, Any], item: dict[str, Any], rules: RuleSet) -> dict | None:
    """Each clock's state as of the item's latest event; ``None`` before it opened.

    An item the rules give no target for (a kind a deployment does not
    measure) has no clock; then ``not_measured`` says why, instead of an
    empty ``metrics`` that would look like a bug.

    Reads the evaluation's attributes rather than ``to_dict()``: the worker calls
    this for every touched item, and the traces and thresholds it does not keep
    are then never rendered.
    """
    history = clock_history(item)
    if not history or item["state"] is None:
        return None
    at = max(r["occurred_at"] for r in history)
    facts = item_facts(view, item)
    evaluation = evaluate(facts, history, rules, at)
    metrics = {}
    for name, m in evaluation.metrics.items():
        metrics[name] = {
            "state": m.state, "deadline": iso_instant(m.deadline),
            "target_seconds": m.target.total_seconds(), "elapsed_seconds": m.elapsed.total_seconds(),
            "remaining_seconds": m.remaining.total_seconds(),
            "overdue_seconds": m.overdue.total_seconds(), "paused": m.paused,
            "pause_reason": m.pause_reason, "met_at": iso_instant(m.met_at),
            "breached_at": iso_instant(m.breached_at), "cancelled_at": iso_instant(m.cancelled_at),
            "calendar_id": m.calendar_id, "cycle": m.cycle,
            "next_change_at": iso_instant(m.next_change_at),
            "policy": f"{m.policy_id} v{m.policy_version}",
            "paused_seconds_by_reason": {k: v.total_seconds()
                                         for k, v in sorted(m.paused_by_reason.items())},
        }
    summary = {"as_of": iso_instant(evaluation.at), "rules_version": evaluation.rules_version,
               "tier_assumed": not (view.get("profile") or {}).get("tier"),
               "next_change_at": iso_instant(evaluation.next_change_at), "metrics": metrics}
    if not metrics and not evaluation.voided:
        # Clocks start when the item opens, so that is the instant the rules are asked at.
        opened_at = min(r["occurred_at"] for r in history)
        reason = rules.not_measured(facts, evaluation.priority, opened_at)
        if reason is not None:
            summary["not_measured"] = reason
    return summary


# -- timer steps: what is due for an item at an instant ---------------------------

# At one instant: the breach before the escalation it triggers.
_STEP_ORDER = {"sla.met": 0, "sla.warning_reached": 1, "sla.breached": 2,
               "sla.escalation_due": 3}
_STEP_NAMESPACE = uuid.UUID("5d7f3c2a-9a61-4e1b-8c44-0f6b2d9e7a13")


def step_event_id(customer_id: str, item_kind: str, item_id: str, metric: str, cycle: int,
                  step: str) -> str:
    """The id of an SLA step event: the same step always has the same id.

    That is what makes timers exactly-once in effect: a timer that fires twice, a
    worker restarted between a deadline and its alert, or a replay of the stream
    all produce the one event, and the fold and the alerts ignore repeats.
    """
    name = f"{customer_id}|{item_kind}|{item_id}|{metric}|{cycle}|{step}"
    return str(uuid.uuid5(_STEP_NAMESPACE, name))


def due_steps(view: dict[str, Any], item: dict[str, Any], rules: RuleSet, now: datetime, *,
              replay: bool = False) -> tuple[list[Event], datetime | None]:
    """SLA events due for ``item`` by ``now`` and not yet in its log, and the next instant.

    Warnings and escalation steps come from the engine's thresholds (reached by
    ``now``); a breach is the deadline passing; met is a clock stopped in time.
    Paused clocks have no reached thresholds, met or cancelled clocks stop their
    ladder, and an acknowledged escalation stops the later steps of its cycle.
    Each event's ``occurred_at`` is the instant it was due, so live and replay
    runs produce the same events; ``recorded_at`` is ``now`` live, and the due
    instant in replay (a replay must not depend on when it ran).
    """
    history = clock_history(item)
    if not history or item["state"] is None:
        return [], None
    evaluation = evaluate(item_facts(view, item), history, rules, now)
    logged = {r["event_id"] for r in item.get("sla_log", ())}
    acked = {(r["metric"], r["cycle"]): datetime.fromisoformat(r["occurred_at"])
             for r in item.get("sla_log", ())
             if r["event_type"] == "sla.escalation_acknowledged"}
    customer_id, kind, item_id = view["customer_id"], item["kind"], item["id"]
    due: list[Event] = []
    instants = [r["occurred_at"] for r in history]  # history is in event-time order

    def cause(at: str) -> str:
        index = bisect.bisect_right(instants, datetime.fromisoformat(at)) - 1
        return history[max(index, 0)]["event_id"]

    def add(event_type: str, metric: str, cycle: int, step_name: str, at: str, policy: str,
            **payload) -> None:
        event_id = step_event_id(customer_id, kind, item_id, metric, cycle, step_name)
        if event_id in logged:
            return
        due.append(event_from_dict({
            "event_id": event_id, "event_type": event_type, "schema_version": 1,
            "customer_id": customer_id, "entity_id": item_id, "occurred_at": at,
            "recorded_at": at if replay else utc_iso(now), "source": "system",
            "actor": "keydesk-sla-timer",
            "payload": {"item_kind": kind, "metric": metric, "cycle": cycle, "due_at": at,
                        "policy": policy, "caused_by": cause(at), **payload}}))

    for name, m in evaluation.metrics.items():
        policy, cycle, deadline = f"{m.policy_id} v{m.policy_version}", m.cycle, m.deadline
        for warning in m.warnings:
            if warning.reached and warning.due_at:
                add("sla.warning_reached", name, cycle, f"warning:{warning.label}",
                    iso_instant(warning.due_at), policy, threshold=warning.label,
                    deadline=iso_instant(deadline or warning.due_at))
        if m.breached_at:
            add("sla.breached", name, cycle, "breach", iso_instant(m.breached_at), policy,
                deadline=iso_instant(m.breached_at))
        ack_at = acked.get((name, cycle))
        for number, step in enumerate(m.escalations, start=1):
            if step.reached and step.due_at and (ack_at is None or step.due_at <= ack_at):
                add("sla.escalation_due", name, cycle, f"step:{number}", iso_instant(step.due_at),
                    policy, step=number, role=step.label)
        if m.state == "met" and m.met_at and deadline:
            add("sla.met", name, cycle, "met", iso_instant(m.met_at), policy,
                deadline=iso_instant(deadline))
    due.sort(key=lambda e: (e.occurred_at, _STEP_ORDER[e.event_type],
                            e.payload.get("step", 0), e.event_id))
    return due, evaluation.next_change_at
