"""The dispatch queue (零时延, "zero delay"): open items, most urgent first.

Urgency is time to breach: the earliest deadline among an item's running clocks,
minus now (already breached items come first, most overdue first); ties go to
the higher tier, then the higher priority.  Paused items have no deadline and
come after every running one.  Each worker lists the customers of its own
partitions; the HTTP API merges every worker's list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from streams.customer_view import ITEM_KINDS

TIER_RANK = {"diamond": 0, "platinum": 1, "gold": 2, "vip": 3, "business": 4, "public": 5}
PRIORITY_RANK = {"P1": 0, "P2": 1, "P3": 2, "P4": 3, "extra_urgent": 0, "urgent": 1, "normal": 2}


def queue_row(view: dict[str, Any], item: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """One queue row, or ``None`` when the item has no running clock."""
    metrics = ((item.get("sla") or {}).get("metrics") or {})
    running = {name: m for name, m in metrics.items() if m.get("state") in ("pending", "breached")
               and not m.get("met_at") and not m.get("cancelled_at")}
    if not running:
        return None
    deadlines = [(datetime.fromisoformat(m["deadline"]), name) for name, m in running.items()
                 if m.get("deadline") and not m.get("paused")]
    profile = view.get("profile") or {}
    attributes = item["attributes"]
    first = min(deadlines) if deadlines else None
    return {
        "customer_id": view["customer_id"], "customer": profile.get("name"),
        "tier": profile.get("tier"), "kind": item["kind"], "id": item["id"],
        "state": item["state"], "priority": attributes.get("priority") or attributes.get("urgency"),
        "summary": attributes.get("summary") or attributes.get("subject") or attributes.get("product"),
        "next_deadline": first[0].isoformat() if first else None,
        "metric": first[1] if first else None,
        "seconds_to_breach": round((first[0] - now).total_seconds(), 3) if first else None,
        "paused": not deadlines,
    }


def local_queue(views, processor, now: datetime) -> list[dict[str, Any]]:
    """Rows for every open item of the customers on this worker's partitions."""
    owned = set(processor.timers.indexes)
    rows = []
    for customer_id, view in views.items():
        if processor.home_partition(customer_id) not in owned:
            continue
        for kind in ITEM_KINDS:
            for item in view["open"][kind].values():
                row = queue_row(view, item, now)
                if row is not None:
                    rows.append(row)
    return rows


def queue_order(row: dict[str, Any]) -> tuple:
    waiting = row["seconds_to_breach"]
    return (row["paused"], waiting if waiting is not None else float("inf"),
            TIER_RANK.get(row["tier"], 9), PRIORITY_RANK.get(row["priority"], 9),
            row["customer_id"], row["id"])
