"""The customer's one-stop page (一站式), and the forms on it: a step of an item, an acknowledgement.

The page is the view ``GET /api/customers/{id}/view`` serves, from the worker
that owns the customer (``CustomerDesk.view``), with every clock of every open
item evaluated at the instant it is drawn (``item_clocks``) and the customer's
compliance of the month from the reporting database (the report's own query,
for this customer).  Each item shows the steps its state and the user's role
allow (``next_steps``), as forms that post here; a step is the API's
``POST /api/{kind}s/{id}/{action}``: its declared body checked, the caller made
its author, ``action_to_event``, published, then the owner's outcome waited
for.  Without JavaScript a step answers with a redirect to the page, which
says what became of it (``?step=<event id>``: applied, or refused and why);
with htmx it answers with the item's card alone, swapped in place.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import structlog
from aiohttp import web

from handlers.api.actions import ACKNOWLEDGEMENT, ACTIONS, COLLECTIONS
from handlers.api.commands import action_to_event
from handlers.api.http_guard import BadRequest
from handlers.api.input_limits import MAX_NOTE_LENGTH
from handlers.api.operations import STEPS
from handlers.identity.guard import author
from handlers.identity.store import IdentityDb
from handlers.web.console import FOLD_WAIT_SECONDS, customer_path
from handlers.web.customer_desk import CustomerDesk
from handlers.web.item_clocks import item_clocks
from handlers.web.next_steps import (
    duration_text,
    form_fields,
    local_time,
    next_steps,
    open_escalations,
    read_inputs,
    revisit_recorded,
)
from handlers.web.page_context import Rights, base_context, rights_on, wants_fragment
from handlers.web.pages import render
from streams.customer_archive import archive_record
from streams.customer_view import find_item
from streams.vocabulary import ITEM_KINDS

log = structlog.get_logger("keydesk.web")

#: closed items listed under "recently closed", newest first
RECENT_CLOSED_SHOWN = 10
_TONE_ORDER = ("breached", "warning", "paused", "running", "met", "cancelled")


def item_title(item: dict[str, Any]) -> str:
    """What an item is about, in the words it was opened with."""
    attributes = item.get("attributes") or {}
    for name in ("summary", "subject", "product"):
        if attributes.get(name):
            return str(attributes[name])
    return ""


def form_field_name(given: str) -> str | None:
    """A field name a step's redirect named (``?problem=``), or ``None``: never other text to show."""
    return given if 0 < len(given) <= 40 and all(c.islower() or c == "_" for c in given) else None


def step_notice(view: dict[str, Any], event_id: str | None) -> dict[str, Any] | None:
    """What became of a step the user just took: found in an item's history, or not folded yet."""
    if not event_id:
        return None
    items = [*view.get("recent_closed", ())]
    for kind in ITEM_KINDS:
        items.extend((view.get("open") or {}).get(kind, {}).values())
    for item in items:
        for record in (*item.get("history", ()), *item.get("sla_log", ())):
            if record.get("event_id") == event_id:
                return {
                    "outcome": record.get("outcome", "applied"),
                    "reason": record.get("reason"),
                    "kind": item["kind"],
                    "id": item["id"],
                    "event_type": record.get("event_type"),
                }
    return {"outcome": "published", "reason": None, "kind": None, "id": None, "event_type": None}


def item_card(
    view: dict[str, Any], item: dict[str, Any], desk: CustomerDesk, rights: Rights, now: datetime
) -> dict[str, Any]:
    """Everything one item's card shows: its clocks at ``now``, its next steps, its open escalations."""
    clocks = item_clocks(view, item, desk.rules(), now)
    revisited = revisit_recorded(item)
    # The lifecycle takes a second revisit (a fact, no change of state); once one is recorded the
    # card says so instead of offering the form again.
    steps = next_steps(item["kind"], item.get("state"), may_work=rights.work)
    if revisited:
        steps = [s for s in steps if s.action != "revisit"]
    return {
        "item": item,
        "title": item_title(item),
        "opened": local_time(item.get("opened_at"), desk.zone),
        "closed": local_time(item.get("closed_at"), desk.zone),
        "bars": clocks.bars,
        "not_measured": clocks.evaluation is not None and not clocks.bars,
        "steps": steps,
        "escalations": open_escalations(item) if rights.acknowledge else [],
        "revisited": revisited,
        "satisfaction": (item.get("attributes") or {}).get("satisfaction"),
    }


def _worst(card: dict[str, Any]) -> tuple[int, str]:
    tones = [_TONE_ORDER.index(b.tone) for b in card["bars"]] or [len(_TONE_ORDER)]
    return min(tones), str(card["item"].get("opened_at") or "")


def template_helpers(desk: CustomerDesk) -> dict[str, Any]:
    return {
        "local": lambda instant: local_time(instant, desk.zone),
        "span": duration_text,
        "zone_name": str(desk.zone),
    }


def register_customer_page(
    web_app: web.Application, desk: CustomerDesk, identity: IdentityDb, clock: Callable[[], datetime]
) -> None:
    async def load(customer_id: str) -> dict[str, Any]:
        view = await desk.view(customer_id)
        if view is None:
            raise BadRequest(404, "customer_id", f"no customer {customer_id}")
        return view

    async def customer_page(request: web.Request) -> web.Response:
        customer_id = request.match_info["customer_id"]
        started = time.perf_counter()
        view = await load(customer_id)
        rights = await rights_on(request, identity, customer_id)
        read = time.perf_counter()
        now = clock()
        open_cards = [
            item_card(view, item, desk, rights, now)
            for kind in ITEM_KINDS
            for item in (view.get("open") or {}).get(kind, {}).values()
        ]
        open_cards.sort(key=_worst)
        closed_cards = [
            item_card(view, item, desk, rights, now)
            for item in (view.get("recent_closed") or [])[:RECENT_CLOSED_SHOWN]
        ]
        context = {
            **base_context(request),
            **template_helpers(desk),
            "customer_id": customer_id,
            "profile": archive_record(customer_id, view.get("profile"), None),
            "has_profile": view.get("profile") is not None,
            "open_cards": open_cards,
            "closed_cards": closed_cards,
            "rights": rights,
            "collections": COLLECTIONS,
            "month": await desk.month(customer_id, now),
            "notice": step_notice(view, request.query.get("step")),
            "problem": form_field_name(request.query.get("problem", "")),
            "picked": request.query.get("circuit", ""),
            "now": local_time(now, desk.zone),
        }
        page = render(request, "customer.html", context)
        log.info(
            "web.customer_page",
            customer_id=customer_id,
            items=len(open_cards) + len(closed_cards),
            read_ms=round((read - started) * 1000, 1),
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return page

    async def answer_step(
        request: web.Request,
        customer_id: str,
        kind: str,
        item_id: str,
        event_id: str | None,
        problem: str | None,
    ) -> web.Response:
        """After a step: htmx gets the item's card as it is now, a plain form a redirect to the page."""
        if not wants_fragment(request):
            query = urlencode({"step": event_id} if event_id else {"problem": problem or ""})
            return web.Response(
                status=303, headers={"Location": f"{customer_path(customer_id)}?{query}#{kind}-{item_id}"}
            )
        view = await load(customer_id)
        item = find_item(view, kind, item_id)
        if item is None:
            raise BadRequest(404, "item_id", f"no {kind} {item_id} for customer {customer_id}")
        rights = await rights_on(request, identity, customer_id)
        context = {
            **base_context(request),
            **template_helpers(desk),
            "customer_id": customer_id,
            "card": item_card(view, item, desk, rights, clock()),
            "notice": step_notice(view, event_id) if event_id else None,
            "card_problem": problem,
        }
        return render(request, "item_card.html", context)

    async def take_step(request: web.Request) -> web.Response:
        customer_id, kind = request.match_info["customer_id"], request.match_info["kind"]
        item_id, action = request.match_info["item_id"], request.match_info["action"]
        step = ACTIONS.get(kind, {}).get(action)
        if step is None or step.event_type == ACKNOWLEDGEMENT:
            raise BadRequest(422, "action", f"not a step of a {kind}")
        form = await request.post()
        try:
            body = {"customer_id": customer_id, **read_inputs(form_fields(kind, action), form)}
            body = STEPS[(kind, action)].check_body(body)
            actor, source = await author(request, step.event_type, customer_id)
            event = action_to_event(step, item_id, body, clock(), actor=actor, source=source)
        except BadRequest as exc:
            if exc.status != 422:
                raise
            return await answer_step(request, customer_id, kind, item_id, None, exc.field or "body")
        await desk.publish(event)
        await desk.outcome(customer_id, kind, item_id, event.event_id, FOLD_WAIT_SECONDS)
        return await answer_step(request, customer_id, kind, item_id, event.event_id, None)

    async def acknowledge(request: web.Request) -> web.Response:
        """A manager's acknowledgement of an escalation: the API's, checked against the owner's clocks."""
        customer_id, kind = request.match_info["customer_id"], request.match_info["kind"]
        item_id = request.match_info["item_id"]
        if kind not in ITEM_KINDS:
            raise BadRequest(422, "kind", f"must be one of {', '.join(ITEM_KINDS)}")
        form = await request.post()
        body: dict[str, Any] = {"metric": str(form.get("metric", ""))}
        cycle = str(form.get("cycle", "")).strip()
        if cycle:
            if not (cycle.isascii() and cycle.isdigit() and len(cycle) <= 4):
                return await answer_step(request, customer_id, kind, item_id, None, "cycle")
            body["cycle"] = int(cycle)
        note = str(form.get("note", "")).strip()[: MAX_NOTE_LENGTH + 1]
        if note:
            body["note"] = note
        try:
            actor, source = await author(request, ACKNOWLEDGEMENT, customer_id)
            event = await desk.acknowledgement(customer_id, kind, item_id, body, actor, source)
        except BadRequest as exc:
            if exc.status != 422:
                raise
            return await answer_step(request, customer_id, kind, item_id, None, exc.field or "body")
        await desk.publish(event, signed=True)
        await desk.outcome(customer_id, kind, item_id, event.event_id, FOLD_WAIT_SECONDS)
        return await answer_step(request, customer_id, kind, item_id, event.event_id, None)

    item = "/customers/{customer_id}/items/{kind}/{item_id}"
    web_app.router.add_get("/customers/{customer_id}", customer_page)
    web_app.router.add_post(f"{item}/steps/{{action}}", take_step)
    web_app.router.add_post(f"{item}/acknowledge", acknowledge)
