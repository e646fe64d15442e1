"""The dispatch queue (零时延, "zero delay"): open items, most urgent first.

Urgency is time to breach: the earliest deadline among an item's running clocks,
minus now (already breached items come first, most overdue first); ties go to
the higher tier, then the higher priority.  Paused items have no deadline and
come after every running one.  Each worker lists the customers of its own
partitions; ``GET /api/dispatch-queue`` merges every worker's list.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from faust.web import Request, Response
from yarl import URL

from handlers.api.http_guard import Slots, error_body
from handlers.api.input_limits import MAX_CONCURRENT_QUEUES
from handlers.api.operations import operation
from handlers.identity.hop import hop_headers
from schemas.envelope import utc_iso
from streams.partitioning import Placement
from streams.vocabulary import ITEM_KINDS

TIER_RANK = {"diamond": 0, "platinum": 1, "gold": 2, "vip": 3, "business": 4, "public": 5}
PRIORITY_RANK = {"P1": 0, "P2": 1, "P3": 2, "P4": 3, "extra_urgent": 0, "urgent": 1, "normal": 2}


def queue_row(view: dict[str, Any], item: dict[str, Any], now: datetime) -> dict[str, Any] | None:
    """One queue row, or ``None`` when the item has no running clock."""
    metrics = (item.get("sla") or {}).get("metrics") or {}
    running = {
        name: m
        for name, m in metrics.items()
        if m.get("state") in ("pending", "breached") and not m.get("met_at") and not m.get("cancelled_at")
    }
    if not running:
        return None
    deadlines = [
        (datetime.fromisoformat(m["deadline"]), name)
        for name, m in running.items()
        if m.get("deadline") and not m.get("paused")
    ]
    profile = view.get("profile") or {}
    attributes = item["attributes"]
    first = min(deadlines) if deadlines else None
    return {
        "customer_id": view["customer_id"],
        "customer": profile.get("name"),
        "tier": profile.get("tier"),
        "kind": item["kind"],
        "id": item["id"],
        "state": item["state"],
        "priority": attributes.get("priority") or attributes.get("urgency"),
        "summary": attributes.get("summary") or attributes.get("subject") or attributes.get("product"),
        "next_deadline": first[0].isoformat() if first else None,
        "metric": first[1] if first else None,
        "seconds_to_breach": round((first[0] - now).total_seconds(), 3) if first else None,
        "paused": not deadlines,
    }


def local_queue(views, placement: Placement, now: datetime) -> list[dict[str, Any]]:
    """Rows for every open item of the customers on this worker's partitions."""
    owned = set(placement.owned())
    rows = []
    for customer_id, view in views.items():
        if placement.home(customer_id) not in owned:
            continue
        for kind in ITEM_KINDS:
            for item in view["open"][kind].values():
                row = queue_row(view, item, now)
                if row is not None:
                    rows.append(row)
    return rows


def queue_order(row: dict[str, Any]) -> tuple:
    waiting = row["seconds_to_breach"]
    return (
        row["paused"],
        waiting if waiting is not None else float("inf"),
        TIER_RANK.get(row["tier"], 9),
        PRIORITY_RANK.get(row["priority"], 9),
        row["customer_id"],
        row["id"],
    )


def register_dispatch_queue_route(
    app, views, placement: Placement, clock: Callable[[], datetime], hop_key: bytes
) -> None:
    """``GET /api/dispatch-queue[?limit=N]``: this worker's rows and every other worker's.

    Each call walks every owned view, and without ``local=1`` asks every other
    worker to do the same: at most :data:`MAX_CONCURRENT_QUEUES` at once (429
    beyond), each peer call bounded by the app's HTTP client deadline.
    """
    queues = Slots(MAX_CONCURRENT_QUEUES, "dispatch queue reads")

    def other_workers() -> list[str]:
        me = str(app.conf.canonical_url).rstrip("/")
        hosts = {str(url).rstrip("/") for url in app.router.tables_metadata()}
        return sorted(h for h in hosts if h != me)

    @app.page("/api/dispatch-queue")
    async def dispatch_queue(web, request: Request) -> Response:
        """Open items across customers, most urgent first (零时延): every worker's, merged."""
        asked = operation("get_dispatch_queue").read(request)
        limit = int(asked["limit"])
        with queues.take():
            now = clock()
            rows = local_queue(views, placement, now)
            if asked["local"] != "1":
                for url in other_workers():
                    try:
                        target = URL(f"{url}/api/dispatch-queue").with_query(local="1", limit=str(limit))
                        async with app.http_client.get(target, headers=hop_headers(hop_key, target)) as r:
                            rows.extend((await r.json())["items"])
                    except Exception as exc:  # a worker going away mid-rebalance: say so
                        return web.json(
                            error_body(f"worker {url} did not answer: {exc!r}"[:300], None),
                            status=503,
                            headers={"Retry-After": "1"},
                        )
        rows.sort(key=queue_order)
        return web.json({"as_of": utc_iso(now), "items": rows[:limit]})
