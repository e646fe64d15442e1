"""The escalations inbox: the SLA steps of a user's customers, unacknowledged first.  Pure.

A step is a warning, a breach or a ladder step (``sla.warning_reached``,
``sla.breached``, ``sla.escalation_due``) of one clock's cycle.  The inbox
holds the steps of every customer the user may acknowledge for (their scope:
``roles.may_for_customer`` with ``escalation.ack``: account manager, chain,
region, head office); those the alerts' own routing addresses to the user
(``handlers/alerts/routing.addressees``: the chain entries of the step's role,
the account manager, the account manager's copy from step 2 on) are marked
"to me" and come before the rest.  An acknowledgement covers its clock's whole
cycle, so every step of an acknowledged cycle shows it.

Where the steps come from is the page's business (the reporting database's
``sla_steps``, and the live feed's recent ones that the sink may not have
written yet); this module orders and marks them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from handlers.alerts.routing import ALERTING_EVENTS, addressees
from handlers.identity.roles import ESCALATION_ACK, CustomerFacts, Identity, may_for_customer

#: steps the inbox shows at most
INBOX_ROWS = 200
#: (customer, item kind, item id, metric, cycle): what one acknowledgement covers
CycleKey = tuple[str, str, str, str, int]


@dataclass(frozen=True, slots=True)
class Step:
    """One SLA step as the inbox shows it."""

    event_id: str
    event_type: str
    customer_id: str
    item_kind: str
    item_id: str
    metric: str
    cycle: int
    occurred_at: datetime
    step: int | None = None
    role: str | None = None
    deadline: datetime | None = None

    @property
    def key(self) -> CycleKey:
        return (self.customer_id, self.item_kind, self.item_id, self.metric, self.cycle)

    @classmethod
    def from_payload(
        cls, event_id: str, event_type: str, customer_id: str, item_id: str, occurred_at: datetime, p: Any
    ) -> Step:
        """A step from an SLA event's payload (the live feed's), as the sink's row would hold it."""
        deadline = p.get("deadline")
        return cls(
            event_id=event_id,
            event_type=event_type,
            customer_id=customer_id,
            item_kind=str(p["item_kind"]),
            item_id=item_id,
            metric=str(p["metric"]),
            cycle=int(p["cycle"]),
            occurred_at=occurred_at,
            step=p.get("step"),
            role=p.get("role"),
            deadline=datetime.fromisoformat(deadline) if isinstance(deadline, str) else None,
        )


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    key: CycleKey
    actor: str | None
    occurred_at: datetime
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    """What the inbox needs of a customer: its scoping facts, name, tier and profile (for routing)."""

    facts: CustomerFacts
    name: str | None
    tier: str | None
    profile: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class InboxRow:
    step: Step
    customer: Customer | None
    to_me: bool
    acknowledged: Acknowledgement | None


def is_step(event_type: str) -> bool:
    return event_type in ALERTING_EVENTS


def addressed_to(step: Step, profile: Mapping[str, Any] | None, viewer: Identity) -> bool:
    """Whether the alerts' routing sends this step to the viewer (by staff id)."""
    staff = viewer.staff
    return any(p.id == staff for p in addressees(step.event_type, step.role, step.step, profile))


def may_see(viewer: Identity, customer: Customer | None, customer_id: str) -> bool:
    facts = customer.facts if customer else None
    if facts is None:
        return bool(may_for_customer(viewer, ESCALATION_ACK, None))
    return bool(may_for_customer(viewer, ESCALATION_ACK, facts))


def inbox(
    steps: Iterable[Step],
    customers: Mapping[str, Customer],
    acknowledgements: Iterable[Acknowledgement],
    viewer: Identity,
    *,
    only_mine: bool = False,
    limit: int = INBOX_ROWS,
) -> list[InboxRow]:
    """The viewer's inbox: unacknowledged first, then those to them, then newest first; one row a step."""
    acked: dict[CycleKey, Acknowledgement] = {}
    for ack in acknowledgements:
        if ack.key not in acked or ack.occurred_at < acked[ack.key].occurred_at:
            acked[ack.key] = ack  # the first one stopped the ladder
    rows: dict[str, InboxRow] = {}
    for step in steps:
        if step.event_id in rows or not is_step(step.event_type):
            continue
        customer = customers.get(step.customer_id)
        if not may_see(viewer, customer, step.customer_id):
            continue
        to_me = addressed_to(step, customer.profile if customer else None, viewer)
        if only_mine and not to_me:
            continue
        rows[step.event_id] = InboxRow(step, customer, to_me, acked.get(step.key))
    ordered = sorted(
        rows.values(),
        key=lambda r: (
            r.acknowledged is not None,
            not r.to_me,
            -r.step.occurred_at.timestamp(),
            r.step.event_id,
        ),
    )
    return ordered[:limit]


def one_row(
    step: Step, customer: Customer | None, acknowledgement: Acknowledgement | None, viewer: Identity
) -> InboxRow | None:
    """The row of one step for the viewer (a step arriving live), or ``None`` outside their scope.

    What :func:`inbox` makes of this one step, without its ordering: a live step goes to every
    connected stream of its scope, so this runs once per stream and step.
    """
    if not is_step(step.event_type) or not may_see(viewer, customer, step.customer_id):
        return None
    return InboxRow(
        step, customer, addressed_to(step, customer.profile if customer else None, viewer), acknowledgement
    )
