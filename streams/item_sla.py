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
from sla_rules import ItemFacts, RuleSet, evaluate

#: Tier assumed while a customer's profile has not arrived (the strictest
#: assumption would page managers for a stranger; the loosest never alerts).
UNKNOWN_TIER = "public"
_SUMMARY_FIELDS = ("state", "deadline", "target_seconds", "elapsed_seconds",
                   "remaining_seconds", "overdue_seconds", "paused", "pause_reason",
                   "met_at", "breached_at", "cancelled_at", "calendar_id", "cycle",
                   "next_change_at")


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
    """The events that happened to the item (rejected transitions do not move clocks)."""
    return [{"event_id": r["event_id"], "event_type": r["event_type"],
             "occurred_at": datetime.fromisoformat(r["occurred_at"]), "payload": r["payload"]}
            for r in item["history"] if r.get("outcome") == "applied"]


def sla_summary(view: dict[str, Any], item: dict[str, Any], rules: RuleSet) -> dict | None:
    """Each clock's state as of the item's latest event; ``None`` before it opened."""
    history = clock_history(item)
    if not history or item["state"] is None:
        return None
    at = max(r["occurred_at"] for r in history)
    evaluation = evaluate(item_facts(view, item), history, rules, at)
    evaluated = evaluation.to_dict()
    metrics = {}
    for name, status in evaluated["metrics"].items():
        summary = {field: status.get(field) for field in _SUMMARY_FIELDS}
        summary["policy"] = f"{status['policy_id']} v{status['policy_version']}"
        summary["paused_seconds_by_reason"] = status.get("paused_seconds_by_reason") or {}
        metrics[name] = summary
    return {"as_of": evaluated["at"], "rules_version": evaluation.rules_version,
            "tier_assumed": not (view.get("profile") or {}).get("tier"),
            "next_change_at": evaluated["next_change_at"], "metrics": metrics}


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
                        "policy": policy, **payload}}))

    for name, status in evaluation.metrics.items():
        s = status.to_dict()
        policy, cycle, deadline = f"{s['policy_id']} v{s['policy_version']}", s["cycle"], s["deadline"]
        for warning in s["warnings"]:
            if warning["reached"] and warning["due_at"]:
                add("sla.warning_reached", name, cycle, f"warning:{warning['label']}",
                    warning["due_at"], policy, threshold=warning["label"],
                    deadline=deadline or warning["due_at"])
        if s["breached_at"]:
            add("sla.breached", name, cycle, "breach", s["breached_at"], policy,
                deadline=s["breached_at"])
        ack_at = acked.get((name, cycle))
        for number, step in enumerate(s["escalations"], start=1):
            if step["reached"] and step["due_at"] and (
                    ack_at is None or datetime.fromisoformat(step["due_at"]) <= ack_at):
                add("sla.escalation_due", name, cycle, f"step:{number}", step["due_at"],
                    policy, step=number, role=step["label"])
        if s["state"] == "met" and s["met_at"] and deadline:
            add("sla.met", name, cycle, "met", s["met_at"], policy, deadline=deadline)
    due.sort(key=lambda e: (e.occurred_at, _STEP_ORDER[e.event_type],
                            e.payload.get("step", 0), e.event_id))
    return due, evaluation.next_change_at
