"""From stored events to the reporting database's derived rows: pure functions.

The sink (``streams/sink_writer.py``) keeps every event in ``event_log``; each
derived row (customer, item, SLA outcome, paused time, revisit) is computed
here from *all* stored events of its customer or item, never patched
incrementally.  That is what makes the projection idempotent and order-proof:
a duplicate, a late event or a replay gives the rows that in-order delivery
would have given, because the rows are a function of the set of events.

The same fold as the one-stop view (``streams/customer_view.fold``), with each
event's stored ``(partition, offset)`` as its source position, and the same SLA
engine are used, so the database and the live view put an item's events in
the one order (``streams/event_order.py``) and cannot disagree on its state or
clocks.  One difference is deliberate: the view measures an
item under the customer's *current* profile; here an item is measured under the
profile *as of its latest event* (event time), so that a report of last month
does not change when a customer is upgraded today.  See docs/compliance_reports.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

from schemas.envelope import Event, utc_iso
from sla_rules import RuleSet, evaluate
from sla_rules.results import MetricStatus
from streams import customer_services
from streams.customer_archive import circuit_term, search_terms
from streams.customer_view import find_item, fold, new_view
from streams.item_sla import UNKNOWN_TIER, clock_history, item_facts

#: The clock that decides an item's policy: the first one to start.
FIRST_CLOCK = {"fault": "response", "ticket": "response", "order": "provision"}


class StoredEvent(NamedTuple):
    """An event as stored in ``event_log``, with where it was read: (partition, offset)."""

    event: Event
    position: tuple[int, int]


def profile_view(
    customer_id: str, customer_events: Iterable[Event], as_of: datetime | None = None
) -> dict[str, Any]:
    """A view holding only the customer's profile, from events up to ``as_of``.

    Profile fields are last-writer-wins by event time, so the folding order
    does not matter; event time keeps the fold's counters the same every time.
    """
    view = new_view(customer_id)
    for event in sorted(customer_events, key=lambda e: (e.occurred_at, e.event_id)):
        if event.event_type in customer_services.SERVICE_EVENT_TYPES:
            continue  # the service register is its own table (service_row)
        if as_of is None or event.occurred_at <= as_of:
            fold(view, event)
    return view


def customer_row(customer_id: str, customer_events: Sequence[Event]) -> dict[str, Any] | None:
    """The ``customers`` row: the profile folded last-writer-wins per field."""
    if not customer_events:
        return None
    profile = profile_view(customer_id, customer_events)["profile"] or {}
    manager = profile.get("account_manager") or {}
    return {
        "customer_id": customer_id,
        "name": profile.get("name"),
        "tier": profile.get("tier"),
        "industry": profile.get("industry"),
        "region": profile.get("region"),
        "account_manager_id": manager.get("id"),
        "account_manager_name": manager.get("name"),
        "profile": profile,
        "updated_at": max(e.occurred_at for e in customer_events),
    }


def customer_search_rows(customer_id: str, profile: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The ``customer_search_terms`` rows of a customer: what its archive is found by.

    Derived from the same folded profile as :func:`customer_row`
    (``streams/customer_archive.search_terms``), rewritten whole with it.
    """
    return [{"customer_id": customer_id, "kind": kind, "term": term} for kind, term in search_terms(profile)]


def service_row(
    event: Event, current: dict[str, Any] | None, active_count: int
) -> tuple[customer_services.Change, dict[str, Any] | None]:
    """What one register event does to its ``customer_services`` row: the change and the new row.

    ``current``: the row as stored (``None``: never had it); ``active_count``:
    the customer's active services now.  The row is ``None`` when nothing
    changes (a stale or repeated event).  The one rule of
    ``streams/customer_services.apply``; the sink applies the events in the
    order of the customer's partition.
    """
    change = customer_services.apply(
        current,
        event.event_type,
        event.payload,
        customer_services.stamp(utc_iso(event.occurred_at), event.event_id),
        active_count,
    )
    if change.entry is None:
        return change, None
    circuit = change.entry.get("circuit_id")
    row = {
        "customer_id": event.customer_id,
        **change.entry,
        "event_id": event.event_id,
        "updated_at": event.occurred_at,
        "circuit_term": circuit_term(circuit) if circuit else None,
    }
    return change, row


@dataclass
class ItemRows:
    """Every derived row of one item."""

    item: dict[str, Any]
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    paused: list[dict[str, Any]] = field(default_factory=list)
    revisits: list[dict[str, Any]] = field(default_factory=list)


def item_rows(
    customer_id: str,
    kind: str,
    item_id: str,
    item_events: Sequence[StoredEvent | Event],
    customer_events: Sequence[Event],
    rules: RuleSet,
) -> ItemRows:
    """The item's row, its clocks' outcomes, paused time and revisits, from its events.

    Stored events carry their source position; plain events are taken to be
    in the order their source delivered them (the first copy of each counts).
    """
    positioned: dict[str, tuple[Any, Event]] = {}
    for index, entry in enumerate(item_events):
        event, position = entry if isinstance(entry, StoredEvent) else (entry, (index,))
        kept = positioned.get(event.event_id)
        if kept is None or position < kept[0]:
            positioned[event.event_id] = (position, event)
    # Folded in event time only to spare refolds: with positions, any order gives the same item.
    by_time = sorted(positioned.values(), key=lambda p: (p[1].occurred_at, p[0]))
    events = [event for _, event in by_time]
    items_view = new_view(customer_id)
    for position, event in by_time:
        fold(items_view, event, position)
    item = find_item(items_view, kind, item_id)
    assert item is not None  # folded from the item's own events
    history = clock_history(item)
    applied = [r for r in item["history"] if r.get("outcome") == "applied"]
    at = max((r["occurred_at"] for r in history), default=None)
    view = profile_view(customer_id, customer_events, as_of=at)
    profile = view["profile"] or {}
    manager = profile.get("account_manager") or {}
    attributes = item["attributes"]
    row = {
        "customer_id": customer_id,
        "kind": kind,
        "item_id": item_id,
        "state": item["state"],
        "closed": item["closed_at"] is not None,
        "opened_at": _instant(item["opened_at"]),
        "updated_at": _instant(item["updated_at"]),
        "closed_at": _instant(item["closed_at"]),
        "last_event_at": max(e.occurred_at for e in events),
        "priority": attributes.get("urgency") if kind == "order" else attributes.get("priority"),
        "subtype": {
            "fault": attributes.get("severity"),
            "ticket": attributes.get("kind"),
            "order": attributes.get("product"),
        }[kind],
        "tier": profile.get("tier", UNKNOWN_TIER),
        "tier_assumed": "tier" not in profile,
        "region": profile.get("region"),
        "account_manager_id": manager.get("id"),
        "account_manager_name": manager.get("name"),
        "policy": None,
        "reopen_count": sum(r["event_type"].endswith(".reopened") for r in applied),
        "revisit_count": 0,
        "last_satisfaction": None,
        "attributes": attributes,
        "milestones": item["milestones"],
    }
    rows = ItemRows(row)
    if at is None:
        return rows  # nothing applied yet: the opening event has not arrived
    evaluation = evaluate(item_facts(view, item), history, rules, at)
    key = {"customer_id": customer_id, "item_kind": kind, "item_id": item_id}
    for metric, status in evaluation.metrics.items():
        for clock in (*status.previous_cycles, status):
            rows.outcomes.append({**key, **_outcome(clock, at)})
            rows.paused.extend(
                {
                    **key,
                    "metric": metric,
                    "cycle": clock.cycle,
                    "reason": reason,
                    "seconds": spent.total_seconds(),
                }
                for reason, spent in sorted(clock.paused_by_reason.items())
            )
    first = evaluation.metrics.get(FIRST_CLOCK[kind])
    if first is not None:
        first = (first.previous_cycles or (first,))[0]
        row["policy"] = f"{first.policy_id} v{first.policy_version}"
    rows.revisits = [
        {
            "event_id": r["event_id"],
            **key,
            "occurred_at": _instant(r["occurred_at"]),
            "satisfaction": r["payload"]["satisfaction"],
            "comment": r["payload"].get("comment"),
            "actor": r["actor"],
        }
        for r in applied
        if r["event_type"].endswith(".revisit_recorded")
    ]
    if rows.revisits:
        latest = max(rows.revisits, key=lambda r: (r["occurred_at"], r["event_id"]))
        row.update(revisit_count=len(rows.revisits), last_satisfaction=latest["satisfaction"])
    return rows


def _outcome(clock: MetricStatus, at: datetime) -> dict[str, Any]:
    stopped = clock.met_at
    return {
        "metric": clock.metric,
        "cycle": clock.cycle,
        "policy_id": clock.policy_id,
        "policy_version": clock.policy_version,
        "calendar_id": clock.calendar_id,
        "priority": clock.priority,
        "target_seconds": clock.target.total_seconds(),
        "started_at": clock.started_at,
        "deadline": clock.deadline,
        "state": clock.state,
        "paused": clock.paused,
        "pause_reason": clock.pause_reason,
        "met_at": clock.met_at,
        "breached_at": clock.breached_at,
        "cancelled_at": clock.cancelled_at,
        "business_seconds": clock.elapsed.total_seconds(),
        "calendar_seconds": (stopped - clock.started_at).total_seconds() if stopped else None,
        "paused_seconds": sum(d.total_seconds() for d in clock.paused_by_reason.values()),
        "evaluated_at": at,
    }


def step_row(event: Event) -> dict[str, Any]:
    """The ``sla_steps`` row of an SLA event (timer step or acknowledgement)."""
    payload = event.payload
    deadline = payload.get("deadline")
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "customer_id": event.customer_id,
        "item_kind": payload["item_kind"],
        "item_id": event.entity_id,
        "metric": payload["metric"],
        "cycle": payload["cycle"],
        "occurred_at": event.occurred_at,
        "step": payload.get("step"),
        "role": payload.get("role"),
        "threshold": payload.get("threshold"),
        "deadline": datetime.fromisoformat(deadline) if deadline else None,
        "policy": payload.get("policy"),
        "actor": event.actor,
        "note": payload.get("note"),
    }


def event_row(event: Event, topic: str, partition: int, offset: int, stored_at: datetime) -> dict[str, Any]:
    """The ``event_log`` row: the event as read, and where it was read from."""
    return {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "customer_id": event.customer_id,
        "entity_kind": event.kind,
        "entity_id": event.entity_id,
        "occurred_at": event.occurred_at,
        "recorded_at": event.recorded_at,
        "schema_version": event.schema_version,
        "source": event.source,
        "actor": event.actor,
        "payload": event.payload,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "stored_at": stored_at,
    }


def stored_event(row: Any) -> StoredEvent:
    """An ``event_log`` row's event with its (partition, offset), its source position."""
    return StoredEvent(event_from_row(row), (row.partition, row.offset))


def event_from_row(row: Any) -> Event:
    """The event back from its ``event_log`` row (it was validated when first read)."""
    return Event(
        event_id=row.event_id,
        event_type=row.event_type,
        customer_id=row.customer_id,
        entity_id=row.entity_id,
        occurred_at=row.occurred_at,
        recorded_at=row.recorded_at,
        source=row.source,
        actor=row.actor,
        payload=row.payload,
        schema_version=row.schema_version,
    )


def _instant(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None
