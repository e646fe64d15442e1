"""Which steps a page offers on an item, the fields each asks for, and the item's escalation ladder.

Pure.  A step is offered when the item's lifecycle (``streams/lifecycles.py``)
accepts it in the item's state and the signed-in user's role allows it for the
customer (``handlers/identity/roles.py``); no other button is drawn.  The
lifecycle is asked, not copied: :func:`next_steps` runs each action's event
type through ``lifecycles.transition``.  A status change that would leave
the item where it is (``pending`` while pending, ``resume`` while working) is
no step anyone means to take, so it is not offered either.

The ladder joins an item's SLA log (warnings, breaches, escalation steps and
acknowledgements, as folded into the view) with the alerts the sender
recorded for each step: who was told, on which channel, with what outcome.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any

from handlers.api.actions import ACKNOWLEDGEMENT, ACTIONS
from handlers.api.http_guard import BadRequest
from schemas.event_catalogue import Field
from streams import lifecycles

#: what a form asks for a field: a choice of values, a whole number in a range, a line of text, or a
#: longer text (a ticket's details)
FORM_FIELD_KINDS = ("choice", "number", "text", "long_text")
#: a text field allowed more than this is asked in a box of several lines
LINE_LENGTH = 2000


@dataclass(frozen=True, slots=True)
class FormField:
    """One input of a form (a step's, or a new item's)."""

    name: str
    kind: str  # one of FORM_FIELD_KINDS
    required: bool
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    max_length: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """A step the page offers: the action's name and what its form asks."""

    action: str
    fields: tuple[FormField, ...]


#: optional fields a step's form asks for all the same: why an item is closed unresolved
_ASKED_WHEN_OPTIONAL = frozenset({"closed_unresolved", "comment", "status"})


def form_inputs(fields: Mapping[str, Field], asked: Iterable[str] = ()) -> tuple[FormField, ...]:
    """The inputs of a form over the catalogue's ``fields``: each required one, and the optional ones
    named in ``asked``, in the catalogue's order, each as the kind of input its declaration calls for."""
    wanted = frozenset(asked)
    shown = []
    for name, f in fields.items():
        if not (f.required or name in wanted):
            continue
        if f.enum:
            shown.append(FormField(name, "choice", f.required, choices=tuple(f.enum)))
        elif f.type == "integer":
            shown.append(FormField(name, "number", f.required, minimum=f.minimum, maximum=f.maximum))
        else:
            long = f.max_length is not None and f.max_length > LINE_LENGTH
            shown.append(
                FormField(name, "long_text" if long else "text", f.required, max_length=f.max_length)
            )
    return tuple(shown)


def form_fields(kind: str, action: str) -> tuple[FormField, ...]:
    """The inputs of a step's form: the catalogue's required fields, and a few optional ones worth asking."""
    return form_inputs(ACTIONS[kind][action].fields(), _ASKED_WHEN_OPTIONAL)


def read_inputs(inputs: Iterable[FormField], form: Mapping[str, Any]) -> dict[str, Any]:
    """A posted form's values of ``inputs``, trimmed, left out when empty, whole numbers as ``int``.

    Not the check of the values: that is the API's declared body's, which the
    caller runs next.  Only what a form cannot send as it is: a number, refused
    (422 naming it) unless it is one.
    """
    body: dict[str, Any] = {}
    for f in inputs:
        value = str(form.get(f.name, "")).strip()
        if not value:
            continue
        if f.kind == "number":
            if not (value.isascii() and value.isdigit() and len(value) <= 4):
                raise BadRequest(422, f.name, "must be a whole number")
            body[f.name] = int(value)
        else:
            body[f.name] = value
    return body


def next_steps(kind: str, state: str | None, *, may_work: bool) -> list[Step]:
    """The steps of the item's loop the lifecycle accepts now, if the user may work the item."""
    if not may_work or kind not in ACTIONS:
        return []
    offered = []
    for name, action in ACTIONS[kind].items():
        if action.event_type == ACKNOWLEDGEMENT:  # a manager's, on the ladder: see open_escalations
            continue
        payload = {**action.defaults, **action.fixed}
        result = lifecycles.transition(kind, state, action.event_type, payload)
        if isinstance(result, lifecycles.Rejected):
            continue
        if "status" in payload and result.state == state:  # pending while pending, resume while working
            continue
        offered.append(Step(name, form_fields(kind, name)))
    return offered


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert of a step: to whom, on which channel, with what outcome."""

    recipient: str
    role: str | None
    channel: str
    status: str
    attempts: int | None
    reason: str | None
    copy: bool


@dataclass(frozen=True, slots=True)
class LadderRow:
    """One SLA step of an item (warning, breach, escalation, met, acknowledgement)."""

    event_type: str
    metric: str
    cycle: int
    at: str  # ISO instant, as the view holds it
    step: int | None
    role: str | None
    threshold: str | None
    actor: str | None
    note: str | None
    deliveries: tuple[Delivery, ...]


def ladder(item: dict[str, Any]) -> list[LadderRow]:
    """The item's SLA steps in the order they were due, each with its alerts' outcomes."""
    alerts_by_step: dict[str, list[Delivery]] = {}
    for alert in item.get("alerts") or ():
        for channel, outcome in sorted((alert.get("channels") or {}).items()):
            alerts_by_step.setdefault(alert.get("event_id", ""), []).append(
                Delivery(
                    recipient=str(alert.get("recipient", "")),
                    role=alert.get("role"),
                    channel=channel,
                    status=str((outcome or {}).get("status", "")),
                    attempts=(outcome or {}).get("attempts"),
                    reason=(outcome or {}).get("reason"),
                    copy=bool(alert.get("copy")),
                )
            )
    rows = []
    for record in item.get("sla_log") or ():
        rows.append(
            LadderRow(
                event_type=record["event_type"],
                metric=str(record.get("metric", "")),
                cycle=int(record.get("cycle") or 1),
                at=record["occurred_at"],
                step=record.get("step"),
                role=record.get("role"),
                threshold=record.get("threshold"),
                actor=record.get("actor") if record["event_type"] == ACKNOWLEDGEMENT else None,
                note=record.get("note"),
                deliveries=tuple(alerts_by_step.get(record["event_id"], ())),
            )
        )
    return rows


def open_escalations(item: dict[str, Any]) -> list[tuple[str, int]]:
    """(metric, cycle) of the item's escalations that nobody has acknowledged yet, in ladder order."""
    log = item.get("sla_log") or ()
    acknowledged = {(r["metric"], r["cycle"]) for r in log if r["event_type"] == ACKNOWLEDGEMENT}
    found: list[tuple[str, int]] = []
    for r in log:
        key = (r.get("metric"), r.get("cycle"))
        if r["event_type"] == "sla.escalation_due" and key not in acknowledged and key not in found:
            found.append((str(key[0]), int(key[1] or 1)))
    return found


def revisit_recorded(item: dict[str, Any]) -> bool:
    """Whether the follow-up call (回访) of a closed item has been recorded."""
    return any(
        r["event_type"].endswith(".revisit_recorded") and r.get("outcome") == "applied"
        for r in item.get("history") or ()
    )


def local_time(instant: str | datetime | None, zone: tzinfo) -> str:
    """An instant as staff read it: their desk's local date and time to the minute (stored in UTC)."""
    if instant is None or instant == "":
        return ""
    moment = datetime.fromisoformat(instant) if isinstance(instant, str) else instant
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def duration_text(seconds: float) -> str:
    """A span as ``2d 3h``, ``1h 05m``, ``4m``: what a bar's remaining or overdue time says."""
    whole = int(abs(seconds))
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{whole}s"
