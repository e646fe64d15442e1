"""The catalogue of keydesk event types: the one place the wire contract is declared.

Every event is an envelope (see :mod:`schemas.envelope`) whose ``payload`` shape
depends on ``event_type``.  The payload shapes are declared here as data, once;
the decoder validates against them and :mod:`schemas.json_schema` publishes them
as JSON Schema files so that producers in any language can check their events.
Field and state names follow TM Forum TMF621 (trouble ticket) and TMF641
(service order) where they fit; ``schemas/README.md`` gives the mapping.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

SCHEMA_VERSION = 1

# Wire codes for customer tiers, with the labels staff use (domain.md).
TIERS: dict[str, str] = {
    "diamond": "钻石",
    "platinum": "白金",
    "gold": "黄金",
    "vip": "贵宾",
    "business": "商业",
    "public": "公众",
}
PRIORITIES = ("P1", "P2", "P3", "P4")
SOURCES = ("hotline", "web", "network_alarm", "account_manager", "system")
FAULT_SEVERITIES = ("critical", "major", "minor", "warning")
TICKET_KINDS = ("complaint", "service_request", "inquiry")
ORDER_URGENCIES = ("normal", "urgent", "extra_urgent")
WORK_STATUSES = ("in_progress", "pending_customer", "pending_third_party")
ESCALATION_ROLES = ("account_manager", "department_head", "branch_leader", "executive")
ITEM_KINDS = ("fault", "ticket", "order")
SLA_METRICS = ("response", "restore", "resolve", "provision", "acceptance", "revisit")

# Entity kinds and the prefix of their event types.
ENTITY_KINDS = ("customer", "fault", "ticket", "order", "sla")


@dataclass(frozen=True, slots=True)
class Field:
    """One payload field: its JSON type and the constraints the decoder enforces."""

    type: str  # "string" | "integer" | "object" | "array"
    required: bool = True
    enum: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = 2000
    properties: dict[str, Field] | None = None  # for "object", and array items
    description: str = ""
    max_items: int | None = None  # for "array": bounded, so every valid event has a size limit


def _s(
    description: str = "",
    *,
    required: bool = True,
    enum: Iterable[str] | None = None,
    max_length: int | None = 2000,
) -> Field:
    return Field(
        "string", required, tuple(enum) if enum else None, description=description, max_length=max_length
    )


_PERSON = {
    "name": _s("person's name"),
    "email": _s("email address for alerts", required=False, max_length=254),
    "phone": _s("phone number", required=False, max_length=40),
    "webhook": _s("group-robot or chat webhook URL for alerts", required=False),
}
_STAFF_ID = _s("staff id, to match the person to a staff user", required=False, max_length=64)
_CHAIN_STEP = {"role": _s("escalation role", enum=ESCALATION_ROLES), "id": _STAFF_ID, **_PERSON}
#: The customer's own people (客户联系人): who to call about a fault, an order, a bill.
#: The bounds of contacts and services are what the event's byte limit leaves
#: once an escalation chain is at its bound (tests/schemas/test_schema_bounds.py
#: builds that largest event): 8 contacts and 32 services per customer.
_CONTACT = {
    "name": _s("contact's name", max_length=64),
    "title": _s("role or title at the customer, e.g. 信息中心主任", required=False, max_length=64),
    "phone": _s("phone number", required=False, max_length=40),
    "email": _s("email address", required=False, max_length=128),
}
#: What the customer buys from us, each with its circuit (电路编号), so that a caller
#: quoting a circuit id finds the customer.
_SERVICE = {
    "service": _s("service or product, e.g. MPLS VPN, dedicated internet", max_length=64),
    "circuit_id": _s("circuit id (电路编号), e.g. GZ-MPLS-0001", required=False, max_length=64),
    "address": _s("site address", required=False, max_length=100),
}

#: One service of the customer's service register (业务清单), added and removed one at a
#: time (``customer.service_added``/``customer.service_removed``): a key account has
#: hundreds to thousands of circuits, far more than one event's ``services`` list can
#: carry.  ``service_id`` names it in the register (the operator's product instance
#: or service id; the circuit id will do when there is no other).
MAX_REGISTER_SERVICES = 5000
_REGISTER_SERVICE = {
    "service_id": _s("the service's id in the register, e.g. a product instance id", max_length=64),
    **_SERVICE,
    "bandwidth": _s("e.g. 100M, 10G", required=False, max_length=32),
    "note": _s("free text: the site's contact, the access type, ...", required=False, max_length=500),
}

# Public customers (公众客户) have neither a tier nor an account manager, so both
# may be left out: the SLA rules then evaluate the customer as tier public, and
# alerts go to the duty desk (handlers/alerts/routing.py).
_CUSTOMER_FIELDS = {
    "name": _s("customer name, e.g. 省政府办公厅"),
    "tier": _s(
        "customer tier; labels: "
        + ", ".join(f"{k}={v}" for k, v in TIERS.items())
        + "; a customer without one is evaluated as public",
        required=False,
        enum=TIERS,
    ),
    "industry": _s("industry code, GB/T 4754", required=False, max_length=16),
    "region": _s("management region, e.g. province/city", required=False, max_length=120),
    "account_manager": Field(
        "object",
        properties={"id": _s("staff id", max_length=64), **_PERSON},
        required=False,
        description="first responsible person (第一责任人); for a "
        "customer without one (public customers) alerts go "
        "to the duty desk",
    ),
    "escalation_chain": Field(
        "array",
        properties=_CHAIN_STEP,
        required=False,
        max_items=16,
        description="managers alerted on SLA breach, in ladder order; an update replaces the whole chain",
    ),
    "contacts": Field(
        "array",
        properties=_CONTACT,
        required=False,
        max_items=8,
        description="the customer's contacts (客户联系人); an update replaces the whole list",
    ),
    "services": Field(
        "array",
        properties=_SERVICE,
        required=False,
        max_items=32,
        description="the customer's services and their circuit ids; an update replaces the whole list",
    ),
}


def _optional(fields: dict[str, Field]) -> dict[str, Field]:
    return {name: replace(f, required=False) for name, f in fields.items()}


_REVISIT = {
    "satisfaction": Field(
        "integer", minimum=1, maximum=5, description="customer satisfaction on the follow-up call, 1-5"
    ),
    "comment": _s("what the customer said", required=False),
}
_STATUS = {
    "status": _s("work status; pending_* statuses pause SLA clocks", enum=WORK_STATUSES),
    "reason": _s("why", required=False),
}
_NOTHING: dict[str, Field] = {}
_CLOCK = {
    "item_kind": _s("fault, ticket or order", enum=ITEM_KINDS),
    "metric": _s("the clock", enum=SLA_METRICS),
    "cycle": Field("integer", minimum=1, maximum=1000, description="clock cycle (reopens)"),
    "due_at": _s("the instant the step was due (ISO-8601, event time)", max_length=40),
    "policy": _s("policy and version in force when the step was due, e.g. diamond v1", max_length=64),
    "caused_by": _s(
        "event id of the item's event that set the instant the step was due at "
        "(the opening, a priority change, a reopen, the end of a pause, ...); for "
        "a step only known after its instant (detected_at), the event that made "
        "it due",
        required=False,
        max_length=64,
    ),
    "detected_at": _s(
        "only on a step that was already past when it became due (a priority "
        "raised past the deadline): the instant (ISO-8601, event time) of the "
        "event that made it due, i.e. when it was known",
        required=False,
        max_length=40,
    ),
    "priority": _s(
        "priority (order: urgency) of the clock's cycle when the step was due, "
        "whose target it is measured against",
        required=False,
        enum=PRIORITIES + ORDER_URGENCIES,
    ),
    "target_seconds": Field(
        "integer",
        required=False,
        minimum=0,
        maximum=1_000_000_000,
        description="the target in force when the step was due, in business seconds of the policy's calendar",
    ),
    "rules_version": _s(
        "version of the SLA rules file the step was computed under", required=False, max_length=64
    ),
}
_REASON = {"reason": _s("why")}
#: Why a fault or ticket is closed without having been restored or resolved.
UNRESOLVED_REASONS = ("duplicate", "withdrawn", "no_fault_found", "other")
_CLOSED_UNRESOLVED = {
    "closed_unresolved": _s(
        "closed without restoration/resolution, and why (duplicate, withdrawn, no_fault_found, "
        "other); a close before the item was restored/resolved is one whether or not this is "
        "given (then: other), and the SLA policy's close_unresolved says what it does to "
        "running clocks; on an item already restored/resolved it changes nothing",
        required=False,
        enum=UNRESOLVED_REASONS,
    )
}
_NOTE = {"note": _s("free text", required=False)}

#: event_type -> payload fields.  Adding an event type here is the whole change
#: to the contract; the JSON Schema files are regenerated from it.
EVENT_TYPES: dict[str, dict[str, Field]] = {
    "customer.registered": _CUSTOMER_FIELDS,
    "customer.updated": _optional(_CUSTOMER_FIELDS),
    # The register: one service per event, last writer by (occurred_at, event_id) wins per
    # service id; the profile's ``services`` list above is apart from it (streams/customer_services.py).
    "customer.service_added": _REGISTER_SERVICE,
    "customer.service_removed": {
        "service_id": _s("the id of the service to take out of the register", max_length=64),
        **_NOTE,
    },
    "fault.reported": {
        "severity": _s("fault severity", enum=FAULT_SEVERITIES),
        "priority": _s(
            "SLA priority; defaults from severity (critical=P1 ... warning=P4)",
            required=False,
            enum=PRIORITIES,
        ),
        "summary": _s("what the customer or the alarm reports"),
        "service": _s("affected service, e.g. MPLS VPN, dedicated internet"),
        "circuit_id": _s("affected circuit", required=False, max_length=120),
        "location": _s("site address", required=False),
    },
    "fault.acknowledged": _NOTE,
    "fault.dispatched": {"team": _s("repair team"), "engineer": _s("engineer", required=False)},
    "fault.repair_started": _NOTE,
    "fault.restored": {"cause": _s("root cause", required=False), **_NOTE},
    "fault.customer_confirmed": _NOTE,
    "fault.closed": {"resolution": _s("how it was fixed", required=False), **_CLOSED_UNRESOLVED},
    "fault.reopened": _REASON,
    "fault.status_changed": _STATUS,
    "fault.revisit_recorded": _REVISIT,
    "ticket.opened": {
        "kind": _s("ticket kind", enum=TICKET_KINDS),
        "priority": _s("SLA priority", enum=PRIORITIES),
        "subject": _s("one-line subject"),
        "description": _s("details", required=False, max_length=20000),
    },
    "ticket.acknowledged": _NOTE,
    "ticket.assigned": {"assignee": _s("staff id or name"), "group": _s("team", required=False)},
    "ticket.status_changed": _STATUS,
    "ticket.priority_changed": {
        "priority": _s("new priority", enum=PRIORITIES),
        "reason": _s("why", required=False),
    },
    "ticket.resolved": {"resolution": _s("what was done")},
    "ticket.reopened": _REASON,
    "ticket.closed": {**_NOTE, **_CLOSED_UNRESOLVED},
    "ticket.revisit_recorded": _REVISIT,
    "order.received": {
        "product": _s("product, e.g. leased_line, dedicated_internet, mpls_vpn", max_length=64),
        "urgency": _s("provisioning class", enum=ORDER_URGENCIES),
        "sites": Field(
            "array",
            required=False,
            properties={"address": _s("site address")},
            max_items=32,
            description="sites to connect",
        ),
        "bandwidth": _s("e.g. 100M", required=False, max_length=32),
    },
    "order.resource_confirmed": _NOTE,
    "order.resource_shortfall": _REASON,
    "order.provisioning_started": _NOTE,
    "order.milestone_reached": {
        "milestone": _s("e.g. fibre_laid, equipment_installed", max_length=120),
        **_NOTE,
    },
    "order.activated": _NOTE,
    "order.customer_accepted": _NOTE,
    "order.cancelled": _REASON,
    "order.status_changed": _STATUS,
    "order.revisit_recorded": _REVISIT,
    # SLA events: published by keydesk's timers on the SLA topic (entity_id = the
    # item's id), except escalation_acknowledged, which a manager sends.  Their
    # event ids are derived from (customer, item, metric, cycle, step), so the
    # same step is one event however often a timer fires or a stream is replayed.
    "sla.warning_reached": {
        **_CLOCK,
        "threshold": _s("e.g. 75%", max_length=16),
        "deadline": _s("the clock's deadline (ISO-8601)", max_length=40),
    },
    "sla.breached": {**_CLOCK, "deadline": _s("the deadline that passed", max_length=40)},
    "sla.escalation_due": {
        **_CLOCK,
        "step": Field("integer", minimum=1, maximum=20, description="1 = first ladder step"),
        "role": _s("who is escalated to", enum=ESCALATION_ROLES),
    },
    "sla.met": {**_CLOCK, "deadline": _s("the deadline it was met against", max_length=40)},
    "sla.escalation_acknowledged": {
        "item_kind": _s("fault, ticket or order", enum=ITEM_KINDS),
        "metric": _s("the clock", enum=SLA_METRICS),
        "cycle": Field("integer", minimum=1, maximum=1000, description="clock cycle (reopens)"),
        "note": _s("what the manager says", required=False),
    },
}


def entity_kind(event_type: str) -> str:
    """The entity kind an event type belongs to: ``fault.closed`` -> ``fault``."""
    return event_type.partition(".")[0]


def describe() -> dict[str, Any]:
    """A plain summary of the catalogue, for ``keydesk schemas`` and the docs."""
    return {name: sorted(fields) for name, fields in EVENT_TYPES.items()}
