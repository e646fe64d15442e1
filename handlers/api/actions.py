"""Every step of the fault, ticket and order closed loops, by the name staff give it.

One table, ``(kind, action) -> event type``, read by the HTTP API
(``POST /api/{faults|tickets|orders}/{id}/{action}``) and the CLI
(``keydesk fault ack ID ...``) alike, so that both offer the same steps under
the same names.  An action's fields are not declared here: they are the
catalogue's payload fields of its event type (``schemas/event_catalogue.py``,
the wire contract), less those the action sets itself (``resume`` is a
``status_changed`` with ``status`` in_progress).  Whether a step is allowed in
the item's state is not decided here either: the owner's fold asks the
lifecycle (``streams/lifecycles.py``) and the answer carries its reason.

Pure data and one read of a view, no faust, no aiohttp: the CLI builds its parsers from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from schemas.event_catalogue import EVENT_TYPES, ITEM_KINDS, WORK_STATUSES, Field
from streams.customer_view import find_item

#: Statuses that pause a clock (``pending_customer``, ``pending_third_party``).
PENDING_STATUSES = tuple(s for s in WORK_STATUSES if s.startswith("pending"))
#: A manager's acknowledgement of an escalation (or an account manager's, of a step
#: addressed to them): checked against the owner's clocks and sent steps and
#: published signed (``handlers/api/routes.py``), not a lifecycle step.
ACKNOWLEDGEMENT = "sla.escalation_acknowledged"


@dataclass(frozen=True, slots=True)
class Action:
    """One step: its event type, what it sets itself, and what it narrows."""

    event_type: str
    help: str
    #: payload values the action sets; a request giving one of them is refused
    fixed: Mapping[str, str] = field(default_factory=dict)
    #: payload values used when the request gives none
    defaults: Mapping[str, str] = field(default_factory=dict)
    #: enum fields narrowed to these values (``pending``: only the pausing statuses)
    only: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def fields(self) -> dict[str, Field]:
        """The request's payload fields: the catalogue's, less the fixed ones, narrowed."""
        if self.event_type == ACKNOWLEDGEMENT:  # cycle: the owner's current one unless given
            chosen = {n: f for n, f in EVENT_TYPES[self.event_type].items() if n != "item_kind"}
            return {**chosen, "cycle": _optional(chosen["cycle"])}
        return {
            name: _narrowed(f, self.only.get(name), name in self.defaults)
            for name, f in EVENT_TYPES[self.event_type].items()
            if name not in self.fixed
        }


def _optional(f: Field) -> Field:
    return replace(f, required=False)


def _narrowed(f: Field, only: tuple[str, ...] | None, defaulted: bool) -> Field:
    f = _optional(f) if defaulted else f
    return f if only is None else replace(f, enum=only)


def _pending(event_type: str, help: str) -> Action:
    """A ``status_changed`` that pauses: the customer's wait unless the request says a third party's."""
    return Action(
        event_type, help, defaults={"status": PENDING_STATUSES[0]}, only={"status": PENDING_STATUSES}
    )


def _resume(event_type: str, help: str) -> Action:
    """A ``status_changed`` back to work: ``in_progress``, which the request cannot change."""
    return Action(event_type, help, fixed={"status": "in_progress"})


_COMMON = {
    "revisit": Action("{kind}.revisit_recorded", "record the follow-up call (回访) and satisfaction"),
    "ack-escalation": Action(ACKNOWLEDGEMENT, "a manager acknowledges an escalation of one clock"),
}

#: kind -> action -> step.  Opening an item is ``POST /api/faults`` (``tickets``,
#: ``orders``); every later step of its loop is here.
ACTIONS: dict[str, dict[str, Action]] = {
    "fault": {
        "ack": Action("fault.acknowledged", "the desk acknowledges the fault (stops the response clock)"),
        "dispatch": Action("fault.dispatched", "dispatch a repair team"),
        "repair": Action("fault.repair_started", "repair starts"),
        "pending": _pending("fault.status_changed", "wait for the customer or a third party"),
        "resume": _resume("fault.status_changed", "work goes on after a pending wait"),
        "restore": Action("fault.restored", "service restored (stops the restore clock)"),
        "confirm": Action("fault.customer_confirmed", "the customer confirms the restoration"),
        "close": Action("fault.closed", "close; closed_unresolved says why if never restored"),
        "reopen": Action("fault.reopened", "reopen a restored, confirmed or closed fault"),
    },
    "ticket": {
        "ack": Action("ticket.acknowledged", "acknowledge the ticket (stops the response clock)"),
        "assign": Action("ticket.assigned", "assign (or reassign a resolved ticket for follow-up)"),
        "start": _resume("ticket.status_changed", "work starts, or goes on after a pending wait"),
        "pending": _pending("ticket.status_changed", "wait for the customer or a third party"),
        "priority": Action("ticket.priority_changed", "change the ticket's priority"),
        "resolve": Action("ticket.resolved", "resolved (stops the resolve clock)"),
        "close": Action("ticket.closed", "close; closed_unresolved says why if never resolved"),
        "reopen": Action("ticket.reopened", "reopen a resolved or closed ticket"),
    },
    "order": {
        "confirm-resources": Action("order.resource_confirmed", "resources confirmed (资源确认)"),
        "shortfall": Action("order.resource_shortfall", "resources are short"),
        "provision": Action("order.provisioning_started", "provisioning starts (开通)"),
        "milestone": Action("order.milestone_reached", "a provisioning milestone is reached"),
        "pending": _pending("order.status_changed", "wait for the customer or a third party"),
        "resume": _resume("order.status_changed", "work goes on after a pending wait"),
        "activate": Action("order.activated", "the service is active (stops the provision clock)"),
        "accept": Action("order.customer_accepted", "the customer accepts (验收)"),
        "cancel": Action("order.cancelled", "cancel the order"),
    },
}
for _kind, _steps in ACTIONS.items():
    for _name, _step in _COMMON.items():
        _steps[_name] = Action(_step.event_type.format(kind=_kind), _step.help)

#: kind -> the plural of its collection in paths: ``/api/faults/{id}/{action}``.
COLLECTIONS = {kind: f"{kind}s" for kind in ITEM_KINDS}


@dataclass(frozen=True, slots=True)
class Creation:
    """The first step of a kind's loop: the API's operation that opens one, the event, the new id.

    ``POST /api/faults`` (tickets, orders) and the web desk's forms for a new
    item (``handlers/web/item_forms.py``) both open an item through
    ``handlers/api/commands.new_item_event`` with this.
    """

    kind: str
    operation_id: str
    event_type: str
    #: the body's field for the item's id, and the prefix of an id made for it (F-9K3M7Q2XWD)
    id_field: str
    id_prefix: str

    @property
    def collection(self) -> str:
        return COLLECTIONS[self.kind]


#: kind -> how one is opened: log a fault, open a ticket, place an order
CREATIONS: Mapping[str, Creation] = {
    c.kind: c
    for c in (
        Creation("fault", "log_fault", "fault.reported", "fault_id", "F"),
        Creation("ticket", "open_ticket", "ticket.opened", "ticket_id", "T"),
        Creation("order", "place_order", "order.received", "order_id", "O"),
    )
}


def find_action(kind: str, name: str) -> Action | None:
    """The step called ``name`` for a ``kind`` item, or ``None``."""
    return ACTIONS.get(kind, {}).get(name)


def fold_outcome(
    view: dict[str, Any] | None, kind: str, item_id: str, event_id: str
) -> dict[str, Any] | None:
    """What the owner's fold did with ``event_id`` on the item, or ``None`` if not in it (yet).

    ``{"outcome": "applied" | "rejected", "reason", "state", "item"}``: the
    lifecycle's outcome as the item's history records it now (a late event may
    still change it: the history is refolded in the one order of its events),
    or ``applied`` for an acknowledgement in the item's ``sla_log``.
    """
    if view is None:
        return None
    item = find_item(view, kind, item_id)
    if item is None:
        return None
    record = next((r for r in item["history"] if r["event_id"] == event_id), None)
    if record is None and any(r["event_id"] == event_id for r in item.get("sla_log", ())):
        record = {"outcome": "applied"}
    if record is None:
        return None
    return {
        "outcome": record["outcome"],
        "reason": record.get("reason"),
        "state": item["state"],
        "item": item,
    }
