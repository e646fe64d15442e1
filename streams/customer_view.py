"""The one-stop customer view (一站式服务) and the pure fold of events into it.

A view is a plain JSON-able dict so that it can live in a faust table and be
served as is.  :func:`fold` applies one validated event to it, in place, and
says what happened.  Two properties hold whatever order Kafka delivers in:

* idempotent: an ``event_id`` already in the view changes nothing;
* order-aware: each item keeps its history in the one order of its events
  (``streams/event_order.py``: event time, then the lifecycle's causal order,
  then the source's order); an event that arrives late, or at an instant the
  item already has events at, is put at its place and the item is refolded
  from that history, so the state is what it would have been had events come
  in order.  The outcome depends neither on event ids nor on arrival order.

Each history record keeps where the source put the event: ``position``, the
record's offset on the customer's partition (passed by the worker), or, when
the caller has none, ``arrival``, the order this item received its events in.

One event per id: an id names one event of one customer, the first its log
holds.  A later customer or item event whose id names something else of the
customer (another item, the profile, an SLA log) is ``rejected`` with the
reason ("event id already used for fault F-1") and folded into nothing.  The
SQL sink applies the same rule; ``streams/event_ids.py`` says what the view
remembers of ids and where the two can still differ.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, tzinfo
from typing import Any

from schemas.envelope import Event, utc_iso
from schemas.event_catalogue import TIERS
from streams import event_ids, event_order, lifecycles
from streams.customer_services import SERVICE_EVENT_TYPES
from streams.event_ids import EVENT_OWNERS, PROFILE, Owner
from streams.vocabulary import ITEM_KINDS, SEVERITY_PRIORITY

RECENT_CLOSED_LIMIT = 20  # closed items kept with full history, newest first
PROFILE_EVENT_IDS_LIMIT = 200  # customer events remembered for de-duplication

# Payload fields copied into an item's attributes when the event is accepted.
_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "fault.reported": ("severity", "priority", "summary", "service", "circuit_id", "location"),
    "fault.dispatched": ("team", "engineer"),
    "fault.restored": ("cause",),
    "fault.closed": ("resolution",),
    "ticket.opened": ("kind", "priority", "subject", "description"),
    "ticket.assigned": ("assignee", "group"),
    "ticket.priority_changed": ("priority",),
    "ticket.resolved": ("resolution",),
    "order.received": ("product", "urgency", "bandwidth", "sites"),
    "order.milestone_reached": ("milestone",),
    "order.cancelled": ("reason",),
}
_STATUS_EVENTS = {"fault.status_changed", "ticket.status_changed", "order.status_changed"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What folding one event did: ``applied``, ``rejected``, ``duplicate`` or ``archived``.

    ``evicted``: items that left the view for the archive as a result (the
    oldest recent-closed ones), as (kind, id) pairs, so the store can say so.
    ``id_reused``: rejected because its id names another event of the customer
    (then it was folded into nothing, not even a rejected history record).
    """

    status: str
    state: str | None = None
    reason: str | None = None
    late: bool = False
    evicted: tuple[tuple[str, str], ...] = ()
    id_reused: bool = False


def new_view(customer_id: str) -> dict[str, Any]:
    """An empty view: a customer we have heard nothing about yet."""
    return {
        "customer_id": customer_id,
        "profile": None,
        "profile_stamps": {},
        "profile_event_ids": [],
        "open": {kind: {} for kind in ITEM_KINDS},
        "recent_closed": [],
        "archived_ids": set(),  # "kind:id" of items evicted to the archive (all of them)
        "counters": {
            "events_applied": 0,
            "duplicates_ignored": 0,
            "transitions_rejected": 0,
            "late_events": 0,
            "closed_total": 0,
            "ids_reused": 0,
        },
        "last_event_at": None,
    }


Position = int | tuple[int, ...]


def fold(view: dict[str, Any], event: Event, position: Position | None = None) -> Outcome:
    """Apply ``event`` to ``view`` in place; the result says what happened.

    ``position``: where the source delivered the event (its offset on the
    customer's partition, a file's line number).  It orders an item's events
    that share an instant and its ``recorded_at`` once their lifecycle has
    had its say; without it the order of folding stands in for it.
    """
    if event.kind == "customer":
        outcome = _fold_profile(view, event)
    elif event.kind == "sla":
        outcome = _fold_sla(view, event)
    else:
        outcome = _fold_item(view, event, position)
    counters = view["counters"]
    if outcome.status == "duplicate":
        counters["duplicates_ignored"] += 1
    elif outcome.id_reused:  # in no item, no clock: only counted (and logged by the caller)
        counters["ids_reused"] = counters.get("ids_reused", 0) + 1
    elif outcome.status in ("applied", "rejected"):
        counters["events_applied"] += 1
        counters["transitions_rejected"] += outcome.status == "rejected"
        counters["late_events"] += outcome.late
        occurred = utc_iso(event.occurred_at)
        if view["last_event_at"] is None or occurred > view["last_event_at"]:
            view["last_event_at"] = occurred
    return outcome


# -- one event per id (streams/event_ids.py) ------------------------------------------


def _reused(view: dict[str, Any], event: Event, owner: Owner) -> Outcome | None:
    """``duplicate`` or ``rejected`` if the id is taken (by this owner, by another), else ``None``."""
    taken = event_ids.owners(view).get(event.event_id)
    if taken is None:
        return None
    if taken == owner:
        return Outcome("duplicate")
    return Outcome("rejected", reason=event_ids.reuse_reason(taken), id_reused=True)


# -- the customer profile (客户档案) -------------------------------------------------


def _fold_profile(view: dict[str, Any], event: Event) -> Outcome:
    """Merge profile fields, last writer by event time wins per field."""
    seen = view["profile_event_ids"]
    if event.event_id in seen:
        return Outcome("duplicate")
    taken = _reused(view, event, PROFILE)
    if taken is not None:
        return taken
    seen.append(event.event_id)
    event_ids.owners(view)[event.event_id] = PROFILE
    event_ids.forget_profile_ids(view, seen[:-PROFILE_EVENT_IDS_LIMIT])
    del seen[:-PROFILE_EVENT_IDS_LIMIT]
    if event.event_type in SERVICE_EVENT_TYPES:
        # The service register lives in the reporting database, not in the view
        # (streams/customer_services.py): only the id is remembered, as a profile event's.
        return Outcome("applied")
    stamp = f"{utc_iso(event.occurred_at)}|{event.event_id}"
    stamps = view["profile_stamps"]
    profile = view["profile"] or {}
    late = False
    for name, value in event.payload.items():
        if stamps.get(name, "") < stamp:
            profile[name] = value
            stamps[name] = stamp
        else:
            late = True
    if "tier" in profile:
        profile["tier_label"] = TIERS[profile["tier"]]
    view["profile"] = profile
    return Outcome("applied", late=late)


# -- faults, tickets and orders ---------------------------------------------------


def _record(event: Event, position: Position | None, arrival: int) -> dict[str, Any]:
    record: dict[str, Any] = {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "occurred_at": utc_iso(event.occurred_at),
        "recorded_at": utc_iso(event.recorded_at),
        "source": event.source,
        "actor": event.actor,
        "payload": event.payload,
    }
    if position is None:
        record["arrival"] = arrival
    else:
        record["position"] = position
    return record


def _new_item(kind: str, entity_id: str) -> dict[str, Any]:
    return {
        "id": entity_id,
        "kind": kind,
        "state": None,
        "opened_at": None,
        "updated_at": None,
        "closed_at": None,
        "attributes": {},
        "milestones": {},
        "history": [],
    }


def find_item(view: dict[str, Any], kind: str, entity_id: str) -> dict[str, Any] | None:
    """The open or recently closed item, or ``None``."""
    item: dict[str, Any] | None = view["open"][kind].get(entity_id)
    if item is None:
        item = next((i for i in view["recent_closed"] if i["id"] == entity_id and i["kind"] == kind), None)
    return item


def _fold_item(view: dict[str, Any], event: Event, position: Position | None) -> Outcome:
    kind, entity_id = event.kind, event.entity_id
    item = find_item(view, kind, entity_id)
    if item is None and f"{kind}:{entity_id}" in view["archived_ids"]:
        return Outcome("archived", reason=f"{kind} {entity_id} is archived")
    taken = _reused(view, event, (kind, entity_id))
    if taken is not None:
        return replace(taken, state=item["state"] if item is not None else None)
    if item is None:
        item = _new_item(kind, entity_id)
        view["open"][kind][entity_id] = item
    history = item["history"]
    event_ids.owners(view)[event.event_id] = (kind, entity_id)
    for index, older in enumerate(history):  # kept before positions were: their order stands
        if "position" not in older:
            older.setdefault("arrival", index)
    record = _record(event, position, len(history))
    if not history or record["occurred_at"] > history[-1]["occurred_at"]:
        # a new latest instant: nothing before it can move (utc_iso text sorts as time)
        history.append(record)
        _apply(
            item,
            record,
            lifecycles.transition(item["kind"], item["state"], record["event_type"], record["payload"]),
        )
        late = False
    else:
        before = [(r["event_id"], r["outcome"]) for r in history]
        history.append(record)
        _refold(item)
        late = [(r["event_id"], r["outcome"]) for r in history[:-1]] != before
    evicted = _file_item(view, item)
    return Outcome(record["outcome"], item["state"], record.get("reason"), late, evicted)


def _refold(item: dict[str, Any]) -> None:
    """Recompute the item from its history put in the one order, as if events had come in it."""
    item.update(state=None, opened_at=None, updated_at=None, closed_at=None, attributes={}, milestones={})
    placed = event_order.causal_order(item["kind"], item["history"])
    item["history"][:] = [p.record for p in placed]
    for p in placed:
        _apply(item, p.record, p.outcome)


def _apply(
    item: dict[str, Any], record: dict[str, Any], result: lifecycles.Accepted | lifecycles.Rejected
) -> None:
    """Record ``result`` (the lifecycle's outcome for ``record`` in the item's state) on the item."""
    event_type, payload, at = record["event_type"], record["payload"], record["occurred_at"]
    if isinstance(result, lifecycles.Rejected):
        record["outcome"], record["reason"] = "rejected", result.reason
        return
    record["outcome"] = "applied"
    record.pop("reason", None)
    unresolved = lifecycles.closes_unresolved(item["kind"], item["state"], event_type)
    item["state"] = result.state
    item["updated_at"] = at
    if item["opened_at"] is None:
        item["opened_at"] = at
    item["milestones"][event_type.partition(".")[2]] = at
    attributes = item["attributes"]
    for name in _ATTRIBUTES.get(event_type, ()):
        if name in payload:
            attributes[name] = payload[name]
    if event_type == "fault.reported" and "priority" not in payload:
        attributes["priority"] = SEVERITY_PRIORITY[payload["severity"]]
    if event_type in _STATUS_EVENTS:
        attributes["status"] = payload["status"]
    if event_type.endswith(".revisit_recorded"):
        attributes["satisfaction"] = payload["satisfaction"]
    if unresolved:  # shown on the item: closed without restoration/resolution, and why
        attributes["closed_unresolved"] = payload.get("closed_unresolved", "other")
    elif event_type.endswith(".reopened"):
        attributes.pop("closed_unresolved", None)
    closed = lifecycles.is_closed(item["kind"], item["state"])
    item["closed_at"] = (item["closed_at"] or at) if closed else None


def _file_item(view: dict[str, Any], item: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """Keep the item in the open list or the recent-closed list, as its state says.

    Returns the items evicted to the archive.  Their ids are all remembered, so
    a straggler for an evicted item is recognised however long ago it closed.
    """
    kind, entity_id = item["kind"], item["id"]
    open_items, recent = view["open"][kind], view["recent_closed"]
    closed = lifecycles.is_closed(kind, item["state"])
    if closed and entity_id in open_items:
        del open_items[entity_id]
        recent.insert(0, item)
        view["counters"]["closed_total"] += 1
    elif not closed and any(i is item for i in recent):
        recent[:] = [i for i in recent if i is not item]
        open_items[entity_id] = item
        view["counters"]["closed_total"] -= 1
    if closed:
        recent.sort(key=lambda i: i["closed_at"], reverse=True)
    evicted = tuple((old["kind"], old["id"]) for old in recent[RECENT_CLOSED_LIMIT:])
    for old in recent[RECENT_CLOSED_LIMIT:]:
        view["archived_ids"].add(f"{old['kind']}:{old['id']}")
        event_ids.forget_item(view, old)
    del recent[RECENT_CLOSED_LIMIT:]
    return evicted


# -- SLA events: timers' warnings, breaches and escalations, managers' acknowledgements


def _fold_sla(view: dict[str, Any], event: Event) -> Outcome:
    """Record an SLA event in its item's ``sla_log`` (in due-time order, once)."""
    payload = event.payload
    item = find_item(view, payload["item_kind"], event.entity_id)
    if item is None:
        return Outcome("archived", reason=f"{payload['item_kind']} {event.entity_id} is not in the view")
    log = item.setdefault("sla_log", [])
    if any(r["event_id"] == event.event_id for r in log):
        return Outcome("duplicate", state=item["state"])
    # Never refused for an id that names something else (streams/event_ids.py):
    # a refused step would be published again at every tick.
    event_ids.owners(view).setdefault(event.event_id, ("sla", payload["item_kind"], event.entity_id))
    record = {
        "event_id": event.event_id,
        "event_type": event.event_type,
        "occurred_at": utc_iso(event.occurred_at),
        "actor": event.actor,
        **payload,
    }
    late = bool(log) and (record["occurred_at"], record["event_id"]) < (
        log[-1]["occurred_at"],
        log[-1]["event_id"],
    )
    log.append(record)
    if late:
        log.sort(key=lambda r: (r["occurred_at"], r["event_id"]))
    return Outcome("applied", state=item["state"], late=late)


def present(view: dict[str, Any], zone: tzinfo | None = None) -> dict[str, Any]:
    """The view as served: bookkeeping dropped, open counts added, instants in ``zone``.

    Instants are stored in UTC; staff read them in their local time, with the
    offset shown so the value stays exact.
    """
    shown = {
        k: v
        for k, v in view.items()
        if k not in ("profile_stamps", "profile_event_ids", "archived_ids", EVENT_OWNERS)
    }
    shown["open_counts"] = {kind: len(items) for kind, items in view["open"].items()}
    return _localize(shown, zone) if zone is not None else shown


def present_item(item: dict[str, Any], zone: tzinfo | None = None) -> dict[str, Any]:
    """One item as served: instants in ``zone`` (see :func:`present`)."""
    return _localize(item, zone) if zone is not None else item


def _localize(value: Any, zone: tzinfo) -> Any:
    if isinstance(value, dict):
        return {k: _localize(v, zone) for k, v in value.items()}
    if isinstance(value, list):
        return [_localize(v, zone) for v in value]
    if (
        isinstance(value, str)
        and 20 <= len(value) <= 32
        and value[10:11] == "T"
        and (value.endswith("Z") or value.endswith("+00:00"))
    ):
        try:
            return datetime.fromisoformat(value).astimezone(zone).isoformat(timespec="microseconds")
        except ValueError:
            return value
    return value


def view_contains_event(view: dict[str, Any] | None, event_id: str) -> bool:
    """Whether ``event_id`` has been folded into ``view`` (applied, rejected or late)."""
    if view is None:
        return False
    if event_id in view["profile_event_ids"]:
        return True
    items = [*view["recent_closed"]]
    for by_id in view["open"].values():
        items.extend(by_id.values())
    return any(
        r["event_id"] == event_id for item in items for r in (*item["history"], *item.get("sla_log", ()))
    )
