"""Opening an item (log a fault, open a ticket, place an order): one way, for the API and the web desk.

``POST /api/faults`` (tickets, orders) and the desk's forms for a new item
(``handlers/web/item_forms.py``) both turn their body into the event here: the
operation's declared body checked (a 422 naming the field), the caller made
the event's author (a 403 if their role may not open that kind for the
customer), then :func:`~handlers.api.commands.command_to_event`.  Each then
publishes the event with the worker's one publisher.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aiohttp import web

from handlers.api.actions import Creation
from handlers.api.commands import command_to_event
from handlers.api.operations import operation
from handlers.identity.guard import author
from schemas.envelope import Event


async def new_item_event(
    request: web.Request, creation: Creation, body: dict[str, Any], now: datetime
) -> Event:
    """The event opening a new item from ``body``, authored by the request's caller."""
    checked = operation(creation.operation_id).check_body(body)
    actor, source = await author(request, creation.event_type, checked["customer_id"])
    event: Event = command_to_event(
        checked, creation.event_type, creation.id_field, creation.id_prefix, now, actor=actor, source=source
    )
    return event
