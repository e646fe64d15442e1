"""Closed-loop lifecycles of faults, tickets and orders as explicit state machines.

Pure data and one function, no I/O.  Each kind's table says, per event type,
from which states it may happen and the state it leads to.  An impossible
transition is not an exception: it is a :class:`Rejected` outcome with a reason
that the customer view records, because in a Kafka stream "impossible" often
only means "an earlier event has not arrived yet" and a later refold may accept it.

States follow TMF621 (trouble ticket) and TMF641 (service order) where they fit;
see ``schemas/README.md``.

Real desks close items that were never restored or resolved (duplicates,
withdrawn requests, "no fault found"), so ``fault.closed`` and ``ticket.closed``
may come from any open state: :func:`closes_unresolved` says which closures are
those, and the SLA policy says what they do to running clocks
(``close_unresolved`` in the rules file).  They also reassign resolved tickets
for follow-up or review, so ``ticket.assigned`` is allowed in ``resolved``.

These tables are also the causal order of events that share an instant
(``streams/event_order.py``): what the lifecycle cannot accept yet waits for
what it can.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

NEW = None  # the state of an item before its opening event

# Transition tables: event type -> (states it may come from, state it leads to).
# A ``None`` target keeps the current state (events that record facts only).
_FAULT_ACTIVE: set[str | None] = {
    "reported",
    "acknowledged",
    "dispatched",
    "in_repair",
    "reopened",
    "pending",
    "in_progress",
}
_TICKET_ACTIVE: set[str | None] = {"open", "acknowledged", "in_progress", "pending", "reopened"}
#: event type -> (states it may come from, state it leads to)
_Table = dict[str, tuple[set[str | None], str | None]]
_FAULT: _Table = {
    "fault.reported": ({NEW}, "reported"),
    "fault.acknowledged": ({"reported", "reopened"}, "acknowledged"),
    "fault.dispatched": (
        {"reported", "acknowledged", "dispatched", "in_repair", "reopened", "pending", "in_progress"},
        "dispatched",
    ),
    "fault.repair_started": (
        {"reported", "acknowledged", "dispatched", "reopened", "pending", "in_progress"},
        "in_repair",
    ),
    "fault.status_changed": (
        {"reported", "acknowledged", "dispatched", "in_repair", "reopened", "pending", "in_progress"},
        "<status>",
    ),
    "fault.restored": (
        {"reported", "acknowledged", "dispatched", "in_repair", "reopened", "pending", "in_progress"},
        "restored",
    ),
    "fault.customer_confirmed": ({"restored"}, "confirmed"),
    # from an active state: closed without restoration (duplicate, no fault found, ...)
    "fault.closed": (_FAULT_ACTIVE | {"restored", "confirmed"}, "closed"),
    "fault.reopened": ({"restored", "confirmed", "closed"}, "reopened"),
    "fault.revisit_recorded": ({"closed"}, None),
}
_TICKET: _Table = {
    "ticket.opened": ({NEW}, "open"),
    "ticket.acknowledged": ({"open", "reopened"}, "acknowledged"),
    # a resolved ticket may be reassigned for follow-up or quality review
    "ticket.assigned": (_TICKET_ACTIVE | {"resolved"}, None),
    "ticket.status_changed": ({"open", "acknowledged", "in_progress", "pending", "reopened"}, "<status>"),
    "ticket.priority_changed": ({"open", "acknowledged", "in_progress", "pending", "reopened"}, None),
    "ticket.resolved": ({"open", "acknowledged", "in_progress", "pending", "reopened"}, "resolved"),
    "ticket.reopened": ({"resolved", "closed"}, "reopened"),
    # from an active state: closed without resolution (duplicate, withdrawn, ...)
    "ticket.closed": (_TICKET_ACTIVE | {"resolved"}, "closed"),
    "ticket.revisit_recorded": ({"closed"}, None),
}
_ORDER: _Table = {
    "order.received": ({NEW}, "acknowledged"),
    "order.resource_confirmed": ({"acknowledged", "resource_shortfall", "pending"}, "resource_confirmed"),
    "order.resource_shortfall": ({"acknowledged", "resource_confirmed", "pending"}, "resource_shortfall"),
    "order.status_changed": (
        {"acknowledged", "resource_confirmed", "resource_shortfall", "in_progress", "pending"},
        "<status>",
    ),
    "order.provisioning_started": ({"resource_confirmed", "pending"}, "in_progress"),
    "order.milestone_reached": ({"in_progress", "pending"}, None),
    "order.activated": ({"resource_confirmed", "in_progress", "pending"}, "activated"),
    "order.customer_accepted": ({"activated"}, "completed"),
    "order.cancelled": (
        {"acknowledged", "resource_confirmed", "resource_shortfall", "in_progress", "pending", "activated"},
        "cancelled",
    ),
    "order.revisit_recorded": ({"completed"}, None),
}

TRANSITIONS: dict[str, _Table] = {
    "fault": _FAULT,
    "ticket": _TICKET,
    "order": _ORDER,
}

#: States in which an item's loop is closed; it leaves the open list.
CLOSED_STATES = {"fault": {"closed"}, "ticket": {"closed"}, "order": {"completed", "cancelled"}}
#: States from which a closing event closes an item that was restored / resolved.
_RESOLVED_STATES = {"fault.closed": {"restored", "confirmed"}, "ticket.closed": {"resolved"}}


@dataclass(frozen=True, slots=True)
class Accepted:
    """The transition happened; ``state`` is the item's state after it."""

    state: str


@dataclass(frozen=True, slots=True)
class Rejected:
    """The event cannot happen in the item's current state, and why."""

    reason: str


def transition(
    kind: str, state: str | None, event_type: str, payload: Mapping[str, Any]
) -> Accepted | Rejected:
    """The outcome of ``event_type`` happening to a ``kind`` item in ``state``."""
    table = TRANSITIONS[kind]
    rule = table.get(event_type)
    if rule is None:
        return Rejected(f"{event_type} is not a {kind} event")
    sources, target = rule
    if state not in sources:
        if state is NEW:
            opening = next(name for name, (src, _) in table.items() if NEW in src)
            return Rejected(f"{event_type} before {opening}")
        if NEW in sources:
            return Rejected(f"{kind} already exists (state {state})")
        return Rejected(f"{event_type} not allowed in state {state}")
    if target == "<status>":
        # pending_customer / pending_third_party pause clocks; in_progress resumes.
        status = payload.get("status") or ""
        target = "pending" if status.startswith("pending") else "in_progress"
    if target is None:
        assert state is not None  # a None target records a fact: no opening event has one
        return Accepted(state)
    return Accepted(target)


def is_closed(kind: str, state: str | None) -> bool:
    """Whether an item in ``state`` has completed its closed loop."""
    return state in CLOSED_STATES[kind]


def closes_unresolved(kind: str, state: str | None, event_type: str) -> bool:
    """Whether ``event_type`` in ``state`` closes the item without restoring or resolving it.

    Decided by the state, not by the payload: a fault closed before its service
    was restored, or a ticket closed before it was resolved, was closed
    unresolved whatever the closing event says (``closed_unresolved`` only says why).
    """
    resolved = _RESOLVED_STATES.get(event_type)
    return resolved is not None and state not in resolved and state in TRANSITIONS[kind][event_type][0]
