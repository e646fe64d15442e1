"""A write's body, checked and turned into an event: commands, item actions, acknowledgements.

Pure (no faust, no broker): whichever worker receives a write checks it here
before publishing; ``keydesk up --demo`` logs its fault through the same
:func:`command_to_event`, and a step of an item's loop (``handlers/api/actions.py``)
goes through it too, by :func:`action_to_event`.  Every refusal is a :class:`BadRequest` naming the
request's own field.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from handlers.api.actions import Action
from handlers.api.http_guard import BadRequest
from handlers.api.input_limits import MAX_CYCLE, MAX_NOTE_LENGTH
from schemas.envelope import InvalidEvent, new_event, parse_instant
from sla_rules import METRICS
from streams.vocabulary import ITEM_KINDS

_ENVELOPE_KEYS = {"customer_id", "occurred_at"}
_ACK_FIELDS = ("metric", "cycle", "note")
#: set from the signed-in identity or the token (``handlers/identity``), never from a body
IDENTITY_FIELDS = ("actor", "source")


def refuse_identity_fields(body: dict[str, Any]) -> None:
    """A body naming its own ``actor`` or ``source`` is refused: who acts is the sign-in's to say."""
    for name in IDENTITY_FIELDS:
        if name in body:
            raise BadRequest(422, name, "is set from the signed-in user or the token; leave it out")


def new_entity_id(prefix: str) -> str:
    """A short id staff can read out on the phone: F-9K3M7Q2XWD."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return f"{prefix}-" + "".join(secrets.choice(alphabet) for _ in range(10))


def command_to_event(
    body: dict[str, Any],
    event_type: str,
    id_field: str,
    id_prefix: str,
    now: datetime,
    *,
    actor: str,
    source: str,
):
    """Turn a command body (envelope keys + payload fields) into a validated event.

    ``actor`` and ``source`` are the caller's identity's
    (``handlers/identity/guard.author``); a body naming them is refused.  Field
    errors name the request's own field (``severity``, ``fault_id``), not the
    envelope's or the payload's path.
    """
    refuse_identity_fields(body)
    customer_id = body.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id.strip():
        raise BadRequest(422, "customer_id", "is required and must be a non-empty string")
    entity_id = body.get(id_field) or new_entity_id(id_prefix)
    occurred_at = None
    if body.get("occurred_at") is not None:
        try:
            occurred_at = parse_instant(body["occurred_at"], "occurred_at")
        except InvalidEvent as exc:
            raise BadRequest(422, exc.field, exc.reason) from None
    payload = {k: v for k, v in body.items() if k not in _ENVELOPE_KEYS | {id_field}}
    try:
        event = new_event(
            event_type,
            customer_id,
            entity_id,
            payload,
            source=source,
            actor=actor,
            occurred_at=occurred_at,
            now=now,
        )
    except InvalidEvent as exc:
        field = exc.field.removeprefix("payload.") if exc.field else None
        raise BadRequest(422, id_field if field == "entity_id" else field, exc.reason) from None
    return event


def action_to_event(
    action: Action, item_id: str, body: dict[str, Any], now: datetime, *, actor: str, source: str
):
    """The event of one step of an item's loop: envelope keys + the action's payload fields.

    The catalogue's validation (through :func:`command_to_event`) checks the
    fields; here only what the action itself adds: the fields it sets (refused
    when sent) and the enums it narrows (``pending``: a pausing status only).
    """
    for name in action.fixed:
        if name in body:
            raise BadRequest(422, name, f"set by this action ({name} = {action.fixed[name]}); leave it out")
    for name, allowed in action.only.items():
        if name in body and body[name] not in allowed:
            raise BadRequest(422, name, f"must be one of {', '.join(allowed)}")
    if "item_id" in body:
        raise BadRequest(422, "item_id", "is the path's; leave it out of the body")
    command = {**action.defaults, **body, **action.fixed, "item_id": item_id}
    return command_to_event(command, action.event_type, "item_id", "", now, actor=actor, source=source)


def acknowledgement(body: dict[str, Any], kind: str) -> tuple[str, int | None, dict[str, Any]]:
    """The checked fields of an acknowledgement: metric, cycle (or ``None``) and the rest.

    Checked here, on whichever worker receives it, against the rules'
    vocabulary; whether the item has that clock is for its owner to say.
    Who acknowledges is the signed-in identity's to say, not the body's.
    """
    refuse_identity_fields(body)
    unknown = sorted(set(body) - set(_ACK_FIELDS))
    if unknown:
        raise BadRequest(422, unknown[0][:64], f"unknown field; send {', '.join(_ACK_FIELDS)}")
    if kind not in ITEM_KINDS:
        raise BadRequest(422, "kind", f"must be one of {', '.join(ITEM_KINDS)}")
    metric = body.get("metric")
    if not isinstance(metric, str) or metric not in METRICS:
        raise BadRequest(422, "metric", f"must be one of {', '.join(METRICS)}")
    cycle = body.get("cycle")
    if cycle is not None and (
        not isinstance(cycle, int) or isinstance(cycle, bool) or not 1 <= cycle <= MAX_CYCLE
    ):
        raise BadRequest(422, "cycle", f"must be a whole number from 1 to {MAX_CYCLE}")
    note = body.get("note")
    if note is not None and not isinstance(note, str):
        raise BadRequest(422, "note", "must be a string")
    if note and len(note) > MAX_NOTE_LENGTH:
        raise BadRequest(422, "note", f"longer than {MAX_NOTE_LENGTH} characters")
    extra = {"note": note} if note and note.strip() else {}
    return metric, cycle, extra
