"""One item's page: its history, every clock with its explanation, and its escalation ladder.

The explanation is the engine's (``format_explanation``: what ``keydesk sla
explain`` and ``GET .../sla`` give), evaluated at the instant the page is
drawn; the page lays out its parts (the policy matched and why, the calendar,
each pause, each recalculation) beside each clock's bar, and keeps the whole
trace as the engine wrote it.  The ladder is the item's SLA log with the
alerts the sender recorded for each step (``next_steps.ladder``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from handlers.api.http_guard import BadRequest
from handlers.identity.store import IdentityDb
from handlers.web.customer_desk import CustomerDesk
from handlers.web.customer_page import item_card, template_helpers
from handlers.web.item_clocks import item_clocks
from handlers.web.next_steps import ladder
from handlers.web.page_context import base_context, rights_on
from handlers.web.pages import render
from sla_rules.durations import format_duration
from streams.customer_archive import archive_record
from streams.customer_view import find_item
from streams.vocabulary import ITEM_KINDS


def register_item_page(
    web_app: web.Application, desk: CustomerDesk, identity: IdentityDb, clock: Callable[[], datetime]
) -> None:
    async def item_page(request: web.Request) -> web.Response:
        customer_id, kind = request.match_info["customer_id"], request.match_info["kind"]
        item_id = request.match_info["item_id"]
        if kind not in ITEM_KINDS:
            raise BadRequest(404, "kind", f"must be one of {', '.join(ITEM_KINDS)}")
        view = await desk.view(customer_id)
        item = find_item(view, kind, item_id) if view else None
        if view is None or item is None:
            raise BadRequest(404, "item_id", f"no {kind} {item_id} for customer {customer_id}")
        now, rules = clock(), desk.rules()
        clocks = item_clocks(view, item, rules, now)
        statuses = dict(clocks.evaluation.metrics) if clocks.evaluation else {}
        context = {
            **base_context(request),
            **template_helpers(desk),
            "customer_id": customer_id,
            "profile": archive_record(customer_id, view.get("profile"), None),
            "card": item_card(view, item, desk, await rights_on(request, identity, customer_id), now),
            "evaluation": clocks.evaluation,
            "statuses": statuses,
            "calendars": {name: rules.calendars[s.calendar_id].describe() for name, s in statuses.items()},
            "explanation": clocks.explanation(rules),
            "history": list(reversed(item.get("history") or [])),
            "ladder": ladder(item),
            "duration": format_duration,
            "now": now,
            "notice": None,
        }
        return render(request, "item.html", context)

    web_app.router.add_get("/customers/{customer_id}/items/{kind}/{item_id}", item_page)
