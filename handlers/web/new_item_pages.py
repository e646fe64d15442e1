"""The hotline's forms for a new item, each on one screen: log a fault, open a ticket, place an order.

``GET /customers/{id}/{faults|tickets|orders}/new`` shows the kind's form
(``new_item_forms``) with the customer's services and circuits to pick where
the kind takes them; posting it to ``/customers/{id}/{faults|tickets|orders}``
is the API's ``POST /api/faults`` (tickets, orders) through the same
:func:`~handlers.api.item_creation.new_item_event` (its declared body checked,
the caller made the author) and the worker's one publisher; the page then
waits (briefly) for the owner to fold the event and goes to the customer's
page, which shows the new item with its clocks.  Who may open which kind is
the identity's: the table of operations lets in those with ``item.write`` for
the customer, and ``author`` checks the kind's event type again.

A field the API refuses (its 422 ``field``) is shown next to its input.
Without JavaScript the answer is a page: the form again (422), or a redirect
to the customer's page; with htmx (``HX-Request``) it is the form alone to
swap in place, or an ``HX-Redirect`` to the customer's page.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import structlog
from aiohttp import web

from handlers.api.http_guard import BadRequest
from handlers.api.item_creation import new_item_event
from handlers.web.console import FOLD_WAIT_SECONDS, customer_path
from handlers.web.customer_desk import CustomerDesk
from handlers.web.new_item_forms import (
    NEW_ITEM_FORMS,
    NewItemForm,
    form_body,
    given_values,
    placed,
    problem_input,
    site_addresses,
)
from handlers.web.page_context import base_context, wants_fragment
from handlers.web.pages import render
from streams.customer_archive import archive_record

log = structlog.get_logger("keydesk.web")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def register_new_item_pages(
    web_app: web.Application, desk: CustomerDesk, clock: Callable[[], datetime]
) -> None:
    async def profile_of(customer_id: str) -> dict[str, Any]:
        view = await desk.view(customer_id)
        profile = (view or {}).get("profile")
        if profile is None:
            raise BadRequest(404, "customer_id", f"no customer {customer_id} is registered")
        return archive_record(customer_id, profile, None)

    def form_context(
        request: web.Request,
        spec: NewItemForm,
        profile: dict[str, Any],
        given: dict[str, Any],
        problem: str | None,
    ) -> dict[str, Any]:
        services = profile.get("services") or []
        at_input = placed(spec, services, problem)
        return {
            **base_context(request),
            "customer_id": profile["customer_id"],
            "profile": profile,
            "form": spec,
            "inputs": spec.inputs_for(services),
            "services": services,
            "sites": site_addresses(services),
            "given": given,
            "problem": problem if at_input else None,
            "loose_problem": None if at_input else problem,
            "focus": spec.focused(services, problem),
        }

    def show(spec: NewItemForm) -> Handler:
        async def form_page(request: web.Request) -> web.StreamResponse:
            profile = await profile_of(request.match_info["customer_id"])
            circuit = request.query.get("circuit", "")
            picked = next(
                (
                    str(i)
                    for i, s in enumerate(profile["services"])
                    if circuit and s.get("circuit_id") == circuit
                ),
                "0",
            )
            context = form_context(request, spec, profile, {"service_pick": picked}, None)
            return render(request, "new_item.html", context)

        return form_page

    def create(spec: NewItemForm) -> Handler:
        async def open_item(request: web.Request) -> web.StreamResponse:
            customer_id = request.match_info["customer_id"]
            form = await request.post()
            profile = await profile_of(customer_id)
            services = profile.get("services") or []
            try:
                body = form_body(spec, customer_id, form, services)
                event = await new_item_event(request, spec.creation, body, clock())
            except BadRequest as exc:
                if exc.status != 422:
                    raise
                problem = problem_input(exc.field)
                context = form_context(request, spec, profile, given_values(spec, form, services), problem)
                if wants_fragment(request):  # htmx swaps the form in place (it leaves 4xx answers unswapped)
                    return render(request, "new_item_form.html", context)
                return render(request, "new_item.html", context, status=422)
            published = time.perf_counter()
            await desk.publish(event)
            folded = await desk.outcome(
                customer_id, spec.kind, event.entity_id, event.event_id, FOLD_WAIT_SECONDS
            )
            log.info(
                "web.item_opened",
                customer_id=customer_id,
                kind=spec.kind,
                item_id=event.entity_id,
                folded=folded is not None,
                ms=round((time.perf_counter() - published) * 1000, 1),
            )
            query = urlencode({"step": event.event_id})
            going = f"{customer_path(customer_id)}?{query}#{spec.kind}-{event.entity_id}"
            if wants_fragment(request):
                return web.Response(status=200, headers={"HX-Redirect": going})
            return web.Response(status=303, headers={"Location": going})

        return open_item

    for spec in NEW_ITEM_FORMS.values():
        collection = f"/customers/{{customer_id}}/{spec.creation.collection}"
        web_app.router.add_get(f"{collection}/new", show(spec))
        web_app.router.add_post(collection, create(spec))
