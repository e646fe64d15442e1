"""The items the screenshots show that ``keydesk up --demo`` has not made, put in through the desk's API.

The demo logs one fault, seconds old: its clocks run, but nothing has breached, so
the escalations inbox and an item's ladder would be empty.  The screenshot script
adds what those screens need the way the desk's own users would, through its API
as the demo hotline user (never into its database), and only what an earlier run
against the same desk has not already added (:func:`already_open`):

* a fault of C-GOV-001 (钻石) that the customer reported 45 minutes before it was
  logged (``occurred_at``) and nobody acknowledged: its 5-minute response target
  breached 40 minutes ago, so the SLA timers send at once, as for any fault logged
  late (their ``detected_at``), its warnings, the breach and the ladder's first two
  steps (the account manager at the breach, the department head 30 minutes on);
* a complaint of the same customer, waiting for the customer: a paused clock;
* an urgent order of C-HOSP-003, so that the queue spans customers and kinds.

A fault logged late rather than a short demo policy: the rules in force stay the
shipped ones, so every screen shows the policies a desk really gets (a replace of
the rules could not shorten a policy in force anyway, only add a new one for later,
``sla_rules/rules_history.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from schemas.envelope import utc_iso
from streams.item_sla import step_event_id

#: the customer whose pages are shot: the demo's own (``handlers.cli.on_ready.DEMO_CUSTOMER``)
CUSTOMER = "C-GOV-001"
#: a step's own wait for its fold, and the waits for a view (the API's bound: 10 s)
WAIT_SECONDS = 10

#: one API call as a demo user: (method, path, body) -> the JSON answer, or an error raised
Call = Callable[[str, str, dict[str, Any] | None], dict[str, Any]]


@dataclass(frozen=True)
class Staged:
    """One item to put in: logged ``ago`` before now, then the ``then`` steps taken."""

    #: the name the screens' paths and selectors use for its id: ``{fault}``
    name: str
    kind: str
    customer_id: str
    #: the body of ``POST /api/{kind}s`` (without ``customer_id`` and ``occurred_at``)
    body: dict[str, Any]
    #: the attribute and value that tell it among the customer's open items
    mark: tuple[str, str]
    ago: timedelta = timedelta(0)
    #: steps of its loop after it is logged: (action, the step's body without ``customer_id``)
    then: tuple[tuple[str, dict[str, Any]], ...] = ()
    #: SLA steps (metric, cycle, step) to wait for in the owner's view before the shots
    awaited: tuple[tuple[str, int, str], ...] = field(default=())


STAGED = (
    Staged(
        "fault",
        "fault",
        CUSTOMER,
        {
            "severity": "critical",
            "service": "MPLS VPN",
            "circuit_id": "GZ-MPLS-0001",
            "summary": "省政府专网 MPLS VPN 中断, 客户 45 分钟前报障",
            "location": "广州市越秀区",
        },
        ("summary", "省政府专网 MPLS VPN 中断, 客户 45 分钟前报障"),
        ago=timedelta(minutes=45),
        awaited=(("response", 1, "step:2"),),
    ),
    Staged(
        "ticket",
        "ticket",
        CUSTOMER,
        {"kind": "complaint", "priority": "P2", "subject": "11 月账单专线费用有误"},
        ("subject", "11 月账单专线费用有误"),
        ago=timedelta(minutes=20),
        then=(("pending", {"status": "pending_customer"}),),
    ),
    Staged(
        "order",
        "order",
        "C-HOSP-003",
        {
            "product": "数字电路专线",
            "urgency": "urgent",
            "bandwidth": "200M",
            "sites": [{"address": "佛山市禅城区岭南大道北 81 号"}, {"address": "佛山市南海区桂城街道"}],
        },
        ("product", "数字电路专线"),
        ago=timedelta(days=1),
    ),
)


def already_open(view: Mapping[str, Any], kind: str, mark: tuple[str, str]) -> str | None:
    """The id of the customer's open item of ``kind`` whose attribute ``mark[0]`` is ``mark[1]``."""
    attribute, value = mark
    for item_id, item in sorted((view.get("open") or {}).get(kind, {}).items()):
        if (item.get("attributes") or {}).get(attribute) == value:
            return str(item_id)
    return None


def view_path(customer_id: str) -> str:
    return f"/api/customers/{quote(customer_id, safe='')}/view"


def stage(call: Call, now: datetime | None = None, staged: tuple[Staged, ...] = STAGED) -> dict[str, str]:
    """Put in each of ``staged`` not yet open, wait until its SLA steps are folded: their ids by name."""
    now = now or datetime.now(UTC)
    ids: dict[str, str] = {}
    for item in staged:
        view = call("GET", view_path(item.customer_id), None)
        found = already_open(view, item.kind, item.mark)
        if found is None:
            body = {**item.body, "customer_id": item.customer_id, "occurred_at": utc_iso(now - item.ago)}
            made = call("POST", f"/api/{item.kind}s", body)
            found = str(made[f"{item.kind}_id"])
            call(
                "GET",
                f"{view_path(item.customer_id)}?wait_for={made['event_id']}&timeout={WAIT_SECONDS}",
                None,
            )
            for action, step in item.then:
                path = f"/api/{item.kind}s/{quote(found, safe='')}/{action}?wait={WAIT_SECONDS}"
                call("POST", path, {**step, "customer_id": item.customer_id})
        for metric, cycle, step_name in item.awaited:
            event_id = step_event_id(item.customer_id, item.kind, found, metric, cycle, step_name)
            call("GET", f"{view_path(item.customer_id)}?wait_for={event_id}&timeout={WAIT_SECONDS}", None)
        ids[item.name] = found
    return ids
