"""Roles, permissions and the one policy deciding who may do what to which customer.

Pure: no SQL, no aiohttp.  The middleware (``handlers/identity/guard.py``) asks
:func:`may` with the identity a request carries and the permission its operation
needs (``handlers/identity/operations.py``), and, for an operation about one
customer, :func:`may_for_customer` with what the reporting database knows of
that customer (:class:`CustomerFacts`).  Everything not granted here is refused.

Roles (issue 11, point 4); a user may hold several:

* ``hotline``: reads every customer (a call can be about anyone), lists and
  searches the archive (一点受理), logs faults, opens tickets, places orders,
  takes every step of their loops, reads the dispatch queue;
* ``account_manager``: reads (views, clocks, archive records) and acts on the
  customers whose account manager (``account_manager.id``) or escalation chain
  (a step's ``id``) names the user's staff id, and acknowledges the escalations
  addressed to them (:func:`may_acknowledge`); not the archive's list and
  search, which spans every customer;
* ``manager``: the same for the customers of their chain or of their region
  (the user's ``region`` equals the customer's; ``*``: every region, a head
  office's manager), plus the compliance reports and reading the SLA rules
  (the policies their clocks run under);
* ``report_reader``: the reports and the sink's status only;
* ``admin``: users, roles, tokens, the audit trail, the customer archive and the
  rules; no ticket work unless the user also holds a desk role.

Integration tokens hold no role: they may publish the event types they were
given (:func:`may_publish`), with the ``source`` they were given, for any
customer (a network alarm system does not know account managers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

ROLES = ("hotline", "account_manager", "manager", "report_reader", "admin")
#: roles that work tickets (the others need one of these for any item work)
DESK_ROLES = ("hotline", "account_manager", "manager")

# Permissions.  The scoped ones are about one customer and checked against it.
CUSTOMER_READ = "customer.read"  # a view, an item's clocks, what the fold did with an event
ITEM_WRITE = "item.write"  # log a fault, open a ticket, place an order, a step of a loop
ESCALATION_ACK = "escalation.ack"  # acknowledge an escalation of an item's clock
QUEUE_READ = "queue.read"  # the dispatch queue (every customer's open items)
REPORT_READ = "report.read"  # compliance reports and exports
SINK_READ = "sink.read"  # the SQL sink's status
USERS_ADMIN = "users.admin"  # add, change, disable users; roles
TOKENS_ADMIN = "tokens.admin"  # create, list, revoke API tokens
AUDIT_READ = "audit.read"
ARCHIVE_READ = "archive.read"  # list and search the customer archive
ARCHIVE_WRITE = "archive.write"  # register and update customers (customer.* events)
RULES_WRITE = "rules.write"  # the SLA rules file
RULES_READ = "rules.read"  # read the SLA rules in force, check a draft against them
#: any signed-in user, whatever their roles: who am I, sign out, change my password
SELF = "self"

PERMISSIONS = (
    CUSTOMER_READ,
    ITEM_WRITE,
    ESCALATION_ACK,
    QUEUE_READ,
    REPORT_READ,
    SINK_READ,
    USERS_ADMIN,
    TOKENS_ADMIN,
    AUDIT_READ,
    ARCHIVE_READ,
    ARCHIVE_WRITE,
    RULES_WRITE,
    RULES_READ,
    SELF,
)
#: permissions about one customer: granted per customer by the role's scope
SCOPED = frozenset({CUSTOMER_READ, ITEM_WRITE, ESCALATION_ACK})

ROLE_PERMISSIONS: Mapping[str, frozenset[str]] = {
    "hotline": frozenset({CUSTOMER_READ, ITEM_WRITE, QUEUE_READ, ARCHIVE_READ}),
    "account_manager": frozenset({CUSTOMER_READ, ITEM_WRITE, ESCALATION_ACK}),
    "manager": frozenset({CUSTOMER_READ, ITEM_WRITE, ESCALATION_ACK, REPORT_READ, RULES_READ}),
    "report_reader": frozenset({REPORT_READ, SINK_READ}),
    "admin": frozenset(
        {
            USERS_ADMIN,
            TOKENS_ADMIN,
            AUDIT_READ,
            ARCHIVE_READ,
            ARCHIVE_WRITE,
            RULES_READ,
            RULES_WRITE,
            SINK_READ,
        }
    ),
}

#: a manager's region covering every customer (head office, 总部), projected by the sink or not
EVERY_REGION = "*"

#: the event ``source`` a user's writes carry, by the role that allows them (first match)
_ROLE_SOURCE = (
    ("hotline", "hotline"),
    ("account_manager", "account_manager"),
    ("manager", "account_manager"),
)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who a request comes from: a signed-in user (session or personal token) or an integration token."""

    #: the username, or the integration token's name: the ``actor`` of what they publish
    name: str
    kind: Literal["user", "integration"]
    #: the public id of the session or token (the audit's ``credential``), never its secret
    credential: str
    roles: frozenset[str] = frozenset()
    #: the id customers' profiles name (account manager, chain steps); the username if unset
    staff_id: str | None = None
    region: str | None = None
    #: an integration token's event types and source
    event_types: frozenset[str] = frozenset()
    source: str | None = None
    must_change_password: bool = False
    #: ``cookie`` (a browser: writes need the CSRF token) or ``bearer``
    via: Literal["cookie", "bearer"] = "bearer"

    @property
    def staff(self) -> str:
        return self.staff_id or self.name

    def permissions(self) -> frozenset[str]:
        if self.kind == "integration":
            return frozenset()
        granted = {SELF}
        for role in self.roles:
            granted |= ROLE_PERMISSIONS.get(role, frozenset())
        return frozenset(granted)


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """What scoping needs to know of a customer, from the reporting database's ``customers`` row."""

    customer_id: str
    account_manager_id: str | None = None
    region: str | None = None
    #: the staff ids its escalation chain's steps name
    chain_ids: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class SentStep:
    """A ladder step the timers sent for one clock's cycle, as the customer's owner knows it.

    ``addressed_to``: the staff ids of the people it is addressed to (the chain
    entries of its role, and the account manager for an ``account_manager``
    step: ``handlers/alerts/routing.escalation_recipients``), not who got a copy.
    """

    metric: str
    cycle: int
    step: int
    role: str
    addressed_to: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


def may(identity: Identity, permission: str) -> Decision:
    """Whether ``identity`` holds ``permission`` at all (before any customer is looked at)."""
    if identity.kind == "integration":
        if permission == ITEM_WRITE or permission == ARCHIVE_WRITE:
            return Decision(True, "an integration token publishes its event types")
        return Decision(False, f"integration token {identity.name} may only publish events")
    if identity.must_change_password and permission != SELF:
        return Decision(False, "change the one-time password first (POST /api/me/password)")
    if permission in identity.permissions():
        return Decision(True, "granted by role")
    held = ", ".join(sorted(identity.roles)) or "no role"
    return Decision(False, f"{permission} is not granted to {held}")


def may_for_customer(identity: Identity, permission: str, customer: CustomerFacts | None) -> Decision:
    """Whether ``identity`` may use ``permission`` on this customer; ``None``: not in the database.

    A customer the reporting database does not (yet) hold is every customer's
    to the hotline and nobody's to the scoped roles: a just-registered customer
    becomes visible to its account manager once the sink has projected it.
    """
    general = may(identity, permission)
    if not general or permission not in SCOPED or identity.kind == "integration":
        return general
    for role in sorted(identity.roles):
        if permission not in ROLE_PERMISSIONS.get(role, frozenset()):
            continue
        if role == "hotline":
            return Decision(True, "the hotline serves every customer")
        if role == "manager" and identity.region == EVERY_REGION:
            return Decision(True, "a head-office manager covers every region")
        if customer is None:
            continue
        staff = identity.staff
        if role in ("account_manager", "manager") and (
            staff == customer.account_manager_id or staff in customer.chain_ids
        ):
            return Decision(True, f"{staff} is the customer's account manager or in its chain")
        if role == "manager" and identity.region and identity.region == customer.region:
            return Decision(True, f"the customer is in {identity.region}")
    name = customer.customer_id if customer else "this customer"
    return Decision(False, f"{identity.name} may not {permission} for {name}")


def may_acknowledge(identity: Identity, metric: str, cycle: int, sent: Iterable[SentStep] | None) -> Decision:
    """Whether ``identity``, already allowed to acknowledge for the customer, may acknowledge this clock.

    A manager acknowledges within their scope (their chain or region, checked by
    :func:`may_for_customer`), sent steps or not: reassigning and standing in
    is their job.  An account manager only once a ladder step of that clock's
    cycle has been sent to them: the acknowledgement stops the steps above
    them, which is not theirs to do for a step that went to a colleague, nor
    before anything was sent.  ``sent``: the steps the owner has sent (any
    clock, any cycle); ``None`` when the owner could not say, which refuses an
    account manager (the caller answers 503: retry).
    """
    if identity.kind == "integration" or ESCALATION_ACK not in identity.permissions():
        return may(identity, ESCALATION_ACK)
    if "manager" in identity.roles:
        return Decision(True, "a manager acknowledges within their scope")
    if sent is None:
        return Decision(False, "the customer's owner cannot say now which escalations were sent; retry")
    staff = identity.staff
    steps = sorted((s for s in sent if s.metric == metric and s.cycle == cycle), key=lambda s: s.step)
    mine = [s for s in steps if staff in s.addressed_to]
    if mine:
        return Decision(True, f"step {mine[0].step} ({mine[0].role}) was addressed to {staff}")
    clock = f"{metric} cycle {cycle}"
    if not steps:
        return Decision(False, f"no escalation of {clock} has been sent yet: nothing to acknowledge")
    went = ", ".join(f"step {s.step} to the {s.role}" for s in steps)
    return Decision(False, f"no escalation of {clock} sent so far was addressed to staff id {staff} ({went})")


@dataclass(frozen=True, slots=True)
class ReportScope:
    """The customers a manager's compliance report covers: the same rule as :func:`may_for_customer`.

    A customer whose account manager or escalation chain step is ``staff``, or
    (``region`` set) whose region is ``region``; the customers' rows in the
    reporting database decide, as they do for the manager's reads.
    """

    staff: str
    region: str | None


def report_scope(identity: Identity) -> ReportScope | None:
    """Whose items ``identity``'s compliance report may count: ``None`` for all of them.

    A report reader's (the role is for reports across the desk) or a head-office
    manager's (region ``*``) covers everyone; a manager's otherwise covers their
    own customers only, so that grouping by customer or account manager shows
    nobody else's.  Whoever may not read reports at all is refused before this.
    """
    if "report_reader" in identity.roles or identity.kind != "user":
        return None
    if "manager" in identity.roles and identity.region != EVERY_REGION:
        return ReportScope(identity.staff, identity.region)
    return None


def may_publish(identity: Identity, event_type: str) -> Decision:
    """Whether an identity may publish an event of this type (integration tokens: their scope only)."""
    if identity.kind == "integration":
        if event_type in identity.event_types:
            return Decision(True, "in the token's scope")
        return Decision(False, f"token {identity.name} may not publish {event_type}")
    return may(identity, permission_to_publish(event_type))


def permission_to_publish(event_type: str) -> str:
    """The permission a user needs to publish ``event_type``."""
    if event_type == "sla.escalation_acknowledged":
        return ESCALATION_ACK
    return ARCHIVE_WRITE if event_type.startswith("customer.") else ITEM_WRITE


def event_source(identity: Identity, permission: str) -> str:
    """The envelope ``source`` of what ``identity`` publishes under ``permission``.

    An integration token's own; a user's from the role that allows it (an
    acknowledgement is the account side's; a write of a user who also works
    the hotline is the hotline's); ``web`` otherwise (the archive from an admin).
    """
    if identity.kind == "integration":
        return identity.source or "system"
    if permission == ESCALATION_ACK:
        return "account_manager"
    for role, source in _ROLE_SOURCE:
        if role in identity.roles:
            return source
    return "web"


def unknown_roles(roles: Iterable[str]) -> list[str]:
    return sorted(set(roles) - set(ROLES))
