"""One event per id: one rule for the view's fold and the SQL sink.

An event id names one event of one customer: the first event the customer's
log holds with it (the order of the customer's partition, which the worker
folds in and the sink stores in).  A later event with the same id

* for the same thing (the same item, the customer's profile, the same item's
  SLA log) is a duplicate: a redelivery, a producer's retry; ignored;
* for anything else is refused with a reason naming what the id is used for
  ("event id already used for fault F-1"): the view folds it into nothing
  (``rejected``, counted in ``ids_reused``), the sink stores nothing of it and
  parks it on the dead-letter topic with the same reason
  (``streams/sink_writer.py``).  Before this rule the view de-duplicated ids
  per item (a reused id opened a second item) and the sink globally (the
  second item silently never existed): the view and the reports disagreed.

Why refuse rather than take the second event: the id is the only thing that
tells a redelivery from a new event, and a reused id makes them
indistinguishable.  Whichever copy came second, keeping it would make the
outcome depend on which of two readers (the worker, the sink) saw what first.

What each side can see, and where they can still differ:

* The view remembers the ids of what it holds: every event of its items (all
  open ones and the ``RECENT_CLOSED_LIMIT`` most recently closed, their
  histories and SLA logs) and of the last ``PROFILE_EVENT_IDS_LIMIT`` profile
  events (``streams/customer_view.py``).  An id first used by an item since
  archived, or by an older profile event, is past that memory: the view folds
  the event as a new one.  The sink's ``event_log`` keeps every id and
  refuses it; its dead letter is the copy that says the reports lack an event
  the view shows.
* An id already used by another customer: no customer's view can see it, and
  ``event_log`` (keyed by the id alone) cannot hold both.  The sink refuses it
  the same way ("... for fault F-1 of customer C-1").  Keying ``event_log`` by
  (customer, id) would let the sink apply exactly the view's per-customer rule.
* SLA events are not refused by the view (their ids are keydesk's own: derived
  from the step, or new for an acknowledgement): a refused step never reaches
  its item's log, so the timers would publish it again at every tick.  An
  item or profile event that reuses an SLA event's id is refused.

The view's memory of ids is an index kept in the view under
:data:`EVENT_OWNERS`: transient (never stored, never served), rebuilt from
what the view holds whenever it is missing (a view assembled from the store,
reloaded, copied without it), so a rebuilt view refuses exactly what the
working one did.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from schemas.envelope import Event

EVENT_OWNERS = "event_owners"

Owner = tuple[str, ...]  # ("customer",), (kind, item id) or ("sla", kind, item id)
PROFILE: Owner = ("customer",)


def event_owner(event: Event) -> Owner:
    """What an event's id names in its customer's view: the profile, an item, an item's SLA log."""
    if event.kind == "customer":
        return PROFILE
    if event.kind == "sla":
        return "sla", str(event.payload.get("item_kind")), event.entity_id
    return event.kind, event.entity_id


def owner_label(owner: Owner) -> str:
    """``("fault", "F-1")`` as staff read it: ``fault F-1``."""
    if owner == PROFILE:
        return "the profile"
    if owner[0] == "sla":
        return f"the SLA log of {owner[1]} {owner[2]}"
    return f"{owner[0]} {owner[1]}"


def reuse_reason(owner: Owner, customer_id: str | None = None) -> str:
    """Why an event is refused whose id already names an event of ``owner``.

    ``customer_id``: the owner's customer when it is not the event's own
    (only the SQL sink can see that case).
    """
    where = owner_label(owner) + (f" of customer {customer_id}" if customer_id else "")
    return f"event id already used for {where}"


def owners(view: dict[str, Any]) -> dict[str, Owner]:
    """The view's index, event id -> what it names, built from the view when missing."""
    index = view.get(EVENT_OWNERS)
    if index is None:
        index = {}
        for event_id in view["profile_event_ids"]:
            index.setdefault(event_id, PROFILE)
        for item in _held_items(view):
            for event_id, owner in _ids_of(item):
                index.setdefault(event_id, owner)
        view[EVENT_OWNERS] = index
    return index


def forget_item(view: dict[str, Any], item: dict[str, Any]) -> None:
    """An item left the view (archived): its ids leave the view's memory with it."""
    index = owners(view)
    for event_id, owner in _ids_of(item):
        if index.get(event_id) == owner:
            del index[event_id]


def forget_profile_ids(view: dict[str, Any], event_ids: Iterable[str]) -> None:
    """Profile event ids dropped from the header's window."""
    index = owners(view)
    for event_id in event_ids:
        if index.get(event_id) == PROFILE:
            del index[event_id]


def _held_items(view: dict[str, Any]) -> list[dict[str, Any]]:
    items = [item for by_id in view["open"].values() for item in by_id.values()]
    closed: list[dict[str, Any]] = view["recent_closed"]
    return items + closed


def _ids_of(item: dict[str, Any]) -> Iterable[tuple[str, Owner]]:
    mine = (item["kind"], item["id"])
    for record in item["history"]:
        yield record["event_id"], mine
    for record in item.get("sla_log", ()):
        yield record["event_id"], ("sla", *mine)


__all__ = [
    "EVENT_OWNERS",
    "PROFILE",
    "Owner",
    "event_owner",
    "forget_item",
    "forget_profile_ids",
    "owner_label",
    "owners",
    "reuse_reason",
]
