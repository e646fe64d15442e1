"""A customer's service register (业务清单): thousands of circuits, one event each. Pure functions.

Why a register apart from the profile's ``services`` list: a key account has
hundreds to thousands of circuits, and one ``customer.registered`` or
``customer.updated`` event can carry at most 32 services (its byte limit, once
an escalation chain is at its bound).  So services also come one at a time,
``customer.service_added`` (one service, named by its ``service_id``) and
``customer.service_removed`` (a ``service_id``), into a register of at most
:data:`MAX_SERVICES` services per customer.

How the two interact: they don't.  The profile's ``services`` list stays what it
was (part of the record, replaced whole by an update, at most 32: existing
events fold exactly as before); the register is edited only by add and remove,
so an update of the profile (a CRM sync of the short list, say) can never wipe
thousands of circuits.  A customer's services are both: the archive finds a
customer by the circuit id of either, and ``GET /api/customers/{id}/services``
pages through the register.

Where the register lives: only in the reporting database (``customer_services``,
one row per (customer, service id), written by the sink), not in the worker's
view.  A view persists as bounded changelog records (``streams/customer_store.py``)
and nothing the fold or the SLA clocks do reads a service, so keeping 5,000 of
them in a header (up to ~2 MB at the fields' bounds) would be the crash of
issue 9 again, and a table of its own in every worker would be state nobody
reads; the view only remembers the events' ids, in its bounded window of
profile event ids.  The price: the register is read with the sink's lag, like
the archive's list and search.

The rule, one per service id, the same as the profile's fields: the event with
the latest stamp ``(occurred_at, event_id)`` wins, so two events at the same
instant (an add and a remove) are ordered by event id, whatever order they
arrive in.  A remove leaves a tombstone with its stamp, so an older add arriving
later cannot bring the service back; a repeat of an event (same stamp) changes
nothing.  The one order-dependent rule is the bound: an add of a new service to
a register already holding :data:`MAX_SERVICES` is refused, decided in the order
of the customer's partition, which every reader of the log sees alike; the
refusal is remembered as the service's entry (with the add's stamp), so a
redelivery is refused again even after a remove made room.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from schemas.event_catalogue import MAX_REGISTER_SERVICES

ADDED = "customer.service_added"
REMOVED = "customer.service_removed"
#: The customer events that edit the register, not the profile.
SERVICE_EVENT_TYPES = frozenset({ADDED, REMOVED})
#: Most services in one customer's register (an add past it is refused).
MAX_SERVICES = MAX_REGISTER_SERVICES

ACTIVE = "active"
REMOVED_STATE = "removed"
REFUSED = "refused"

#: The service fields an add carries into the register, besides its id.
SERVICE_FIELDS = ("service", "circuit_id", "address", "bandwidth", "note")


def stamp(occurred_at_utc: str, event_id: str) -> str:
    """The order of a service's events: event time (UTC ISO text sorts as time), then event id."""
    return f"{occurred_at_utc}|{event_id}"


@dataclass(frozen=True, slots=True)
class Change:
    """What one register event does to its service's entry.

    ``entry`` is the new entry, or ``None`` when it changes nothing (a stale or
    repeated event).  ``outcome``: ``applied``, ``stale`` (an entry with a
    later stamp stands), ``duplicate`` (the same stamp: this very event again)
    or ``refused`` (the register is full), with ``reason``.
    """

    outcome: str
    entry: dict[str, Any] | None = None
    reason: str | None = None


def apply(
    current: Mapping[str, Any] | None,
    event_type: str,
    payload: Mapping[str, Any],
    event_stamp: str,
    active_count: int,
) -> Change:
    """The entry of ``payload['service_id']`` after one register event, given the current entry.

    ``current``: the service's entry (``state``, ``stamp`` and its fields), or
    ``None`` if the register never had it; ``active_count``: how many services
    the register holds now.  Entries are plain dicts with the fields of
    :data:`SERVICE_FIELDS` (``None`` when not given), ``state`` and ``stamp``.
    """
    if current is not None:
        if current["stamp"] == event_stamp:
            return Change("duplicate")
        if current["stamp"] > event_stamp:
            return Change("stale")
    base = {"service_id": payload["service_id"], "stamp": event_stamp}
    if event_type == REMOVED:
        kept = {name: (current or {}).get(name) for name in SERVICE_FIELDS}
        return Change("applied", {**base, **kept, "state": REMOVED_STATE})
    if event_type != ADDED:
        raise ValueError(f"not a register event: {event_type}")
    fields = {name: payload.get(name) for name in SERVICE_FIELDS}
    held = current is not None and current["state"] == ACTIVE
    if not held and active_count >= MAX_SERVICES:
        reason = f"the register already holds {MAX_SERVICES} services, its bound; remove one first"
        return Change("refused", {**base, **fields, "state": REFUSED}, reason)
    return Change("applied", {**base, **fields, "state": ACTIVE})


def shown(entry: Mapping[str, Any]) -> dict[str, Any]:
    """A service as the API answers it: its id, its fields given, and since when (event time)."""
    service = {"service_id": entry["service_id"]}
    service.update({name: entry[name] for name in SERVICE_FIELDS if entry.get(name) is not None})
    service["updated_at"] = entry["stamp"].partition("|")[0]
    return service
