"""Between the one-stop view and the SLA engine: which facts and history an item's
clocks are computed from, and the compact SLA state the view keeps per item.

Pure: the rules are passed in and the instant is the item's own latest event
time ("at event time"), so replaying the same events gives the same view.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

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
