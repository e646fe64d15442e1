"""Between the one-stop view and the SLA engine: which facts and history an item's
clocks are computed from, and the compact SLA state the view keeps per item.

Pure: the rules are passed in and the instant is the item's own latest event
time ("at event time"), so replaying the same events gives the same view.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from schemas.envelope import Event, event_from_dict, utc_iso
from sla_rules import CLOCK_EVENT_TYPES, ItemFacts, RuleSet, evaluate
from sla_rules.evaluation import StepMemo, step_set
from sla_rules.instants import iso_instant
from streams.customer_services import SERVICE_EVENT_TYPES
from streams.customer_view import Outcome
from streams.vocabulary import ITEM_KINDS

#: Tier assumed while a customer's profile has not arrived (the strictest
#: assumption would page managers for a stranger; the loosest never alerts).
UNKNOWN_TIER = "public"
_SUMMARY_FIELDS = (
    "state",
    "deadline",
    "target_seconds",
    "elapsed_seconds",
    "remaining_seconds",
    "overdue_seconds",
    "paused",
    "pause_reason",
    "met_at",
    "breached_at",
    "cancelled_at",
    "calendar_id",
    "cycle",
    "next_change_at",
)


def items_touched_by(
    view: dict[str, Any], event: Event, outcome: Outcome | None = None
) -> set[tuple[str, str]]:
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
    if event.event_type in SERVICE_EVENT_TYPES:  # the register changes no clock
        return set()
    if event.kind == "customer":
        return {(kind, item_id) for kind in ITEM_KINDS for item_id in view["open"][kind]}
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
    return ItemFacts(
        customer_id=view["customer_id"],
        tier=profile.get("tier", UNKNOWN_TIER),
        kind=kind,
        priority=attributes.get("priority"),
        urgency=attributes.get("urgency"),
        region=profile.get("region"),
        entity_id=item["id"],
    )


def clock_history(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The events that happened to the item (rejected transitions do not move clocks).

    With what the engine needs to put them in the view's order (``recorded_at``
    and the source position), so that both read one order of events.
    """
    history = []
    for r in item["history"]:
        if r.get("outcome") != "applied":
            continue
        entry = {
            "event_id": r["event_id"],
            "event_type": r["event_type"],
            "occurred_at": datetime.fromisoformat(r["occurred_at"]),
            "recorded_at": r["recorded_at"],
            "payload": r["payload"],
        }
        for name in ("position", "arrival"):
            if name in r:
                entry[name] = r[name]
        history.append(entry)
    return history


def sla_summary(view: dict[str, Any], item: dict[str, Any], rules: RuleSet) -> dict[str, Any] | None:
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
            "state": m.state,
            "deadline": iso_instant(m.deadline),
            "target_seconds": m.target.total_seconds(),
            "elapsed_seconds": m.elapsed.total_seconds(),
            "remaining_seconds": m.remaining.total_seconds(),
            "overdue_seconds": m.overdue.total_seconds(),
            "paused": m.paused,
            "pause_reason": m.pause_reason,
            "met_at": iso_instant(m.met_at),
            "breached_at": iso_instant(m.breached_at),
            "cancelled_at": iso_instant(m.cancelled_at),
            "calendar_id": m.calendar_id,
            "cycle": m.cycle,
            "next_change_at": iso_instant(m.next_change_at),
            "policy": f"{m.policy_id} v{m.policy_version}",
            "paused_seconds_by_reason": {k: v.total_seconds() for k, v in sorted(m.paused_by_reason.items())},
        }
    summary = {
        "as_of": iso_instant(evaluation.at),
        "rules_version": evaluation.rules_version,
        "tier_assumed": not (view.get("profile") or {}).get("tier"),
        "next_change_at": iso_instant(evaluation.next_change_at),
        "metrics": metrics,
    }
    if not metrics and not evaluation.voided:
        # Clocks start when the item opens, so that is the instant the rules are asked at.
        opened_at = min(r["occurred_at"] for r in history)
        reason = rules.not_measured(facts, evaluation.priority, opened_at)
        if reason is not None:
            summary["not_measured"] = reason
    return summary


# -- timer steps: what is due for an item at an instant ---------------------------

# At one instant: the breach before the escalation it triggers.
_STEP_ORDER = {"sla.met": 0, "sla.warning_reached": 1, "sla.breached": 2, "sla.escalation_due": 3}
_EVENT_TYPES = {
    "warning": "sla.warning_reached",
    "breach": "sla.breached",
    "escalation": "sla.escalation_due",
    "met": "sla.met",
}
_STEP_NAMESPACE = uuid.UUID("5d7f3c2a-9a61-4e1b-8c44-0f6b2d9e7a13")


def step_event_id(customer_id: str, item_kind: str, item_id: str, metric: str, cycle: int, step: str) -> str:
    """The id of an SLA step event: the same step always has the same id.

    That is what makes timers exactly-once in effect: a timer that fires twice, a
    worker restarted between a deadline and its alert, or a replay of the stream
    all produce the one event, and the fold and the alerts ignore repeats.
    """
    name = f"{customer_id}|{item_kind}|{item_id}|{metric}|{cycle}|{step}"
    return str(uuid.uuid5(_STEP_NAMESPACE, name))


def _logged_step(record: dict[str, Any]) -> tuple[str, int, str] | None:
    """The (metric, cycle, step) of a step event in an item's SLA log; ``None`` for others."""
    event_type = record["event_type"]
    if event_type == "sla.warning_reached":
        step = f"warning:{record.get('threshold')}"
    elif event_type == "sla.escalation_due":
        step = f"step:{record.get('step')}"
    elif event_type == "sla.breached":
        step = "breach"
    elif event_type == "sla.met":
        step = "met"
    else:
        return None
    return record["metric"], record["cycle"], step


def due_steps(
    view: dict[str, Any],
    item: dict[str, Any],
    rules: RuleSet,
    now: datetime,
    *,
    replay: bool = False,
    memo: StepMemo | None = None,
) -> tuple[list[Event], datetime | None]:
    """SLA events due for ``item`` by ``now`` and not yet in its log, and the next instant.

    The steps are a function of the item's event log and ``now`` alone
    (:func:`sla_rules.evaluation.step_set`): every warning, breach, ladder
    step and met of every cycle whose instant the log has passed, including a
    breach a later event undid and one that was already past when an event
    made it due (then with ``detected_at``).  ``replay``: only what is due
    before ``now`` (a watermark), from events before it, so that a batch cut
    at the watermark's instant changes nothing.  An acknowledged escalation
    stops the later steps of its cycle.

    Each event's ``occurred_at`` is the instant it was due, so live and replay
    runs produce the same events; ``recorded_at`` is ``now`` live, and in
    replay the instant it was known (due, or detected): a replay must not
    depend on when it ran.  The payload names what was in force in that
    window: the cycle's priority, target, policy version and the rules
    version; ``caused_by`` is the event that set the instant it was due at.

    The next instant is when the next step may be due (for a replay: due once
    the watermark has passed it), ``None`` when only an event can change that.
    """
    history = clock_history(item)
    if not history or item["state"] is None:
        return [], None
    log = item.get("sla_log", ())
    logged = {r["event_id"] for r in log}
    published = {key for key in map(_logged_step, log) if key is not None}
    acked = {
        (r["metric"], r["cycle"]): datetime.fromisoformat(r["occurred_at"])
        for r in log
        if r["event_type"] == "sla.escalation_acknowledged"
    }
    steps = step_set(
        item_facts(view, item),
        history,
        rules,
        now,
        strict=replay,
        skip=published,
        acknowledged=acked,
        memo=memo,
    )
    customer_id, kind, item_id = view["customer_id"], item["kind"], item["id"]
    due: list[Event] = []
    for step in steps.crossed:
        event_id = step_event_id(customer_id, kind, item_id, step.metric, step.cycle, step.step)
        if event_id in logged:
            continue
        at = iso_instant(step.due_at)
        payload: dict[str, Any] = {
            "item_kind": kind,
            "metric": step.metric,
            "cycle": step.cycle,
            "due_at": at,
            "policy": f"{step.policy_id} v{step.policy_version}",
            "caused_by": step.caused_by,
            "priority": step.priority or None,
            "target_seconds": int(step.target.total_seconds()),
            "rules_version": steps.rules_version,
        }
        if step.detected_at is not None:
            payload["detected_at"] = iso_instant(step.detected_at)
        if step.kind == "warning":
            payload.update(threshold=step.label, deadline=iso_instant(step.deadline))
        elif step.kind == "escalation":
            payload.update(step=step.number, role=step.label)
        else:
            payload["deadline"] = iso_instant(step.deadline)
        known = step.detected_at or step.due_at
        due.append(
            event_from_dict(
                {
                    "event_id": event_id,
                    "event_type": _EVENT_TYPES[step.kind],
                    "schema_version": 1,
                    "customer_id": customer_id,
                    "entity_id": item_id,
                    "occurred_at": at,
                    "recorded_at": utc_iso(known) if replay else utc_iso(now),
                    "source": "system",
                    "actor": "keydesk-sla-timer",
                    "payload": payload,
                }
            )
        )
    due.sort(key=lambda e: (e.occurred_at, _STEP_ORDER[e.event_type], e.payload.get("step", 0), e.event_id))
    return due, steps.next_at
