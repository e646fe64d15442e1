"""Readable builders for events in tests: ``fault("F1", "reported", at="09:00")``."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from schemas.envelope import Event, event_from_dict, utc_iso

DAY = "2026-11-23"  # a Monday
_NS = uuid.UUID("0b8a4c2e-52a1-4d3c-8f0e-6d2f1e3c4b5a")

DEFAULT_PAYLOADS = {
    "customer.registered": {
        "name": "省政府办公厅",
        "tier": "diamond",
        "account_manager": {"id": "AM-1", "name": "李敏"},
    },
    "customer.service_added": {"service_id": "S-1", "service": "MPLS VPN", "circuit_id": "GZ-MPLS-0001"},
    "customer.service_removed": {"service_id": "S-1"},
    "fault.reported": {"severity": "critical", "summary": "专线中断", "service": "MPLS VPN"},
    "fault.dispatched": {"team": "广州传输一班"},
    "fault.reopened": {"reason": "link down again"},
    "fault.revisit_recorded": {"satisfaction": 5},
    "ticket.opened": {"kind": "complaint", "priority": "P2", "subject": "账单有误"},
    "ticket.assigned": {"assignee": "staff-7"},
    "ticket.resolved": {"resolution": "credited"},
    "ticket.reopened": {"reason": "not credited"},
    "order.received": {"product": "leased_line", "urgency": "urgent"},
    "order.cancelled": {"reason": "customer withdrew"},
}


def at(clock: str, day: str = DAY, offset: str = "+08:00") -> datetime:
    """An instant from a wall-clock time in Beijing (by default) on the test day."""
    return datetime.fromisoformat(f"{day}T{clock}{offset}")


def event(
    event_type: str,
    entity_id: str,
    when: str | datetime = "09:00",
    *,
    customer: str = "C-1",
    event_id: str | None = None,
    source: str = "hotline",
    recorded: str | datetime | None = None,
    **payload,
) -> Event:
    """A valid event; its id is derived from its content unless given."""
    occurred = at(when) if isinstance(when, str) else when
    recorded_at = (at(recorded) if isinstance(recorded, str) else recorded) or occurred
    body = dict(DEFAULT_PAYLOADS.get(event_type, {}))
    body.update(payload)
    eid = event_id or str(
        uuid.uuid5(_NS, f"{event_type}|{entity_id}|{utc_iso(occurred)}|{sorted(body.items())}")
    )
    return event_from_dict(
        {
            "event_id": eid,
            "event_type": event_type,
            "schema_version": 1,
            "customer_id": customer,
            "entity_id": customer if event_type.startswith("customer.") else entity_id,
            "occurred_at": utc_iso(occurred),
            "recorded_at": utc_iso(recorded_at),
            "source": source,
            "actor": "tester",
            "payload": body,
        }
    )


def fault(entity_id: str, step: str, when: str | datetime = "09:00", **kw) -> Event:
    return event(f"fault.{step}", entity_id, when, **kw)


def ticket(entity_id: str, step: str, when: str | datetime = "09:00", **kw) -> Event:
    return event(f"ticket.{step}", entity_id, when, **kw)


def order(entity_id: str, step: str, when: str | datetime = "09:00", **kw) -> Event:
    return event(f"order.{step}", entity_id, when, **kw)


def minutes_later(instant: datetime, minutes: int) -> datetime:
    return instant + timedelta(minutes=minutes)
