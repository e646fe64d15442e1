"""A realistic stream of keydesk events for benchmarks: customers across tiers, faults,
tickets and orders going through their loops, with a few late and duplicated events.

Deterministic for a seed and a start instant, so two runs measure the same work.
The default start is fixed (2 November 2026); a benchmark of a *live* worker
passes its own start (see ``bench/throughput.py``): the worker's timers run on
the wall clock, so with fixed dates the share of clocks already overdue, and
with it the step events the worker publishes and folds back, would grow with
the calendar day the benchmark is run on.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import orjson

TIERS = ["diamond", "platinum", "gold", "vip", "business", "public"]
TIER_WEIGHTS = [1, 3, 6, 20, 30, 40]
FAULT_LOOP = [
    "reported",
    "acknowledged",
    "dispatched",
    "repair_started",
    "restored",
    "customer_confirmed",
    "closed",
    "revisit_recorded",
]
TICKET_LOOP = [
    "opened",
    "acknowledged",
    "assigned",
    "status_changed",
    "resolved",
    "closed",
    "revisit_recorded",
]
ORDER_LOOP = [
    "received",
    "resource_confirmed",
    "provisioning_started",
    "milestone_reached",
    "activated",
    "customer_accepted",
    "revisit_recorded",
]
PAYLOADS = {
    "fault.reported": lambda r: {
        "severity": r.choice(["critical", "major", "minor", "warning"]),
        "summary": "专线中断",
        "service": r.choice(["MPLS VPN", "DIA", "leased line"]),
        "circuit_id": f"GZ-{r.randrange(10**6):06d}",
    },
    "fault.dispatched": lambda r: {"team": f"team-{r.randrange(40)}"},
    "fault.revisit_recorded": lambda r: {"satisfaction": r.randint(3, 5)},
    "ticket.opened": lambda r: {
        "kind": r.choice(["complaint", "service_request", "inquiry"]),
        "priority": r.choice(["P1", "P2", "P3", "P4"]),
        "subject": "账单疑问",
    },
    "ticket.assigned": lambda r: {"assignee": f"staff-{r.randrange(200)}"},
    "ticket.status_changed": lambda r: {"status": "pending_customer", "reason": "awaiting documents"},
    "ticket.resolved": lambda r: {"resolution": "explained and credited"},
    "ticket.revisit_recorded": lambda r: {"satisfaction": r.randint(1, 5)},
    "order.received": lambda r: {
        "product": r.choice(["leased_line", "mpls_vpn", "dedicated_internet"]),
        "urgency": r.choice(["normal", "urgent", "extra_urgent"]),
    },
    "order.milestone_reached": lambda r: {"milestone": "fibre_laid"},
    "order.revisit_recorded": lambda r: {"satisfaction": r.randint(2, 5)},
}


def _envelope(rng, event_type, customer, entity, at, seq) -> dict:
    payload = PAYLOADS.get(event_type, lambda r: {})(rng)
    return {
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "event_type": event_type,
        "schema_version": 1,
        "customer_id": customer,
        "entity_id": entity,
        "occurred_at": at.isoformat(),
        "recorded_at": at.isoformat(),
        "source": "system",
        "actor": "bench",
        "payload": payload,
    }


#: Where the mix's month begins unless a benchmark says otherwise.
FIXED_START = datetime(2026, 11, 2, tzinfo=UTC)


def generate(
    total: int,
    customers: int = 2000,
    seed: int = 7,
    late_share: float = 0.03,
    duplicate_share: float = 0.01,
    start: datetime = FIXED_START,
) -> Iterator[tuple[bytes, bytes]]:
    """Yield ``(key, value)`` wire messages, ``total`` of them, in the four weeks from ``start``."""
    rng = random.Random(seed)
    ids = [f"C-{n:05d}" for n in range(customers)]
    produced = 0
    for cid in ids:
        at = start
        body = {
            "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "event_type": "customer.registered",
            "schema_version": 1,
            "customer_id": cid,
            "entity_id": cid,
            "occurred_at": at.isoformat(),
            "recorded_at": at.isoformat(),
            "source": "account_manager",
            "actor": "bench",
            "payload": {
                "name": f"客户{cid}",
                "tier": rng.choices(TIERS, TIER_WEIGHTS)[0],
                "account_manager": {"id": "AM-1", "name": "李敏"},
            },
        }
        yield cid.encode(), orjson.dumps(body)
        produced += 1
    seq = 0
    held: list[tuple[bytes, bytes]] = []
    while produced < total:
        cid = rng.choice(ids)
        kind, loop = rng.choice([("fault", FAULT_LOOP), ("ticket", TICKET_LOOP), ("order", ORDER_LOOP)])
        seq += 1
        entity = f"{kind[0].upper()}-{seq:07d}"
        at = start + timedelta(minutes=rng.randrange(60 * 24 * 28))
        for step in loop:
            at += timedelta(minutes=rng.randint(1, 240))
            message = (cid.encode(), orjson.dumps(_envelope(rng, f"{kind}.{step}", cid, entity, at, seq)))
            if rng.random() < late_share:
                held.append(message)  # delivered later than its successors
                continue
            yield message
            produced += 1
            if rng.random() < duplicate_share:
                yield message
                produced += 1
            if held and rng.random() < 0.5:
                yield held.pop(0)
                produced += 1
            if produced >= total:
                return
    for message in held[: max(0, total - produced)]:
        yield message
