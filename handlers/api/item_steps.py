"""The HTTP side of an item's steps: ``POST /api/{faults|tickets|orders}/{id}/{action}``.

One route per collection over the one table of steps (``handlers/api/actions.py``).
The worker that receives a step checks and publishes it itself (a write is never
routed: faust's table routing drops its body); what the owner's fold made of it
is asked of the owner by ``owner_outcome``, a routed read built with the other
reads in ``handlers/api/routes.py``, which hands this module its collaborators.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import faust
from faust.web import Request, Response, View

from handlers.api.actions import ACKNOWLEDGEMENT, ACTIONS, COLLECTIONS, find_action
from handlers.api.commands import action_to_event
from handlers.api.http_guard import BadRequest, error_body, read_json_object
from handlers.api.operations import STEPS
from handlers.identity.guard import author
from schemas.envelope import Event
from streams.publisher import HomePublisher

__all__ = ["register_item_step_routes"]

#: (request, customer_id, kind, item_id, body, actor, source) -> the checked acknowledgement and
#: whether its item was checked
Acknowledge = Callable[[Request, str, str, str, dict[str, Any], str, str], Awaitable[tuple[Event, bool]]]
#: (customer_id, kind, item_id, event_id, timeout) -> the owner's fold outcome, or None
OwnerOutcome = Callable[[str, str, str, str, float], Awaitable[dict[str, Any] | None]]


def register_item_step_routes(
    app: faust.App,
    publisher: HomePublisher,
    clock: Callable[[], datetime],
    acknowledgement_event: Acknowledge,
    owner_outcome: OwnerOutcome,
) -> None:
    """Attach ``POST /api/{faults|tickets|orders}/{item_id}/{action}`` to ``app``."""

    def item_action_view(kind: str) -> type[View]:
        class ItemActionView(View):
            """One step of a ``kind`` item's loop (``handlers/api/actions.py``), ``?wait=S`` for its outcome.

            Taken by whichever worker receives it and published to the
            customer's home partition (never routed: a write's body would be
            lost).  Without ``wait``: 202 once the broker has it.  With it: 200
            ``applied`` or 409 ``rejected`` with the lifecycle's reason once the
            owner has folded it, or 202 ``published`` if it cannot say within
            ``wait`` seconds (the event is on the log either way: retrying
            would be a second step).
            """

            async def post(self, request: Request, item_id: str, action: str) -> Response:
                step, declared = find_action(kind, action), STEPS.get((kind, action))
                if step is None or declared is None:
                    raise BadRequest(422, "action", f"a {kind}'s actions are {', '.join(ACTIONS[kind])}")
                wait = declared.read(request)["wait"]
                body = declared.check_body(await read_json_object(request))
                customer_id = body["customer_id"]
                # who takes the step: the signed-in identity, allowed it for this customer
                actor, source = await author(request, step.event_type, customer_id)
                if step.event_type == ACKNOWLEDGEMENT:
                    rest = {k: v for k, v in body.items() if k != "customer_id"}
                    event, _ = await acknowledgement_event(
                        request, customer_id, kind, item_id, rest, actor, source
                    )
                    await publisher.publish(event, signed=True)
                else:
                    event = action_to_event(step, item_id, body, clock(), actor=actor, source=source)
                    await publisher.publish(event)
                answer: dict[str, Any] = {
                    "event_id": event.event_id,
                    "event_type": event.event_type,
                    "customer_id": customer_id,
                    "kind": kind,
                    "id": item_id,
                    "action": action,
                    "outcome": "published",
                }
                if wait is None:
                    return self.json(answer, status=202)
                found = await owner_outcome(customer_id, kind, item_id, event.event_id, wait)
                if found is None:
                    return self.json({**answer, "waited": wait}, status=202)
                answer.update(outcome=found["outcome"], state=found["state"])
                if found["outcome"] == "rejected":
                    return self.json({**error_body(found["reason"], "action"), **answer}, status=409)
                return self.json({**answer, "item": found["item"]}, status=200)

        return ItemActionView

    for kind, collection in COLLECTIONS.items():
        app.page(f"/api/{collection}/{{item_id}}/{{action}}")(item_action_view(kind))
