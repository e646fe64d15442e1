"""The hotline console (一点受理): one search box to the customer, and logging a fault on one screen.

The search is the archive's (``list_customers``, what ``GET /api/customers?q=``
answers): a part of the name, the start of a customer or circuit id, a whole
phone number.  When it finds exactly one customer the console goes straight to
that customer's page (a caller who quotes a circuit id means that customer).
Logging a fault is the API's ``POST /api/faults``: its declared body checked,
the caller made its author, ``command_to_event``, published to the customer's
home partition; the console then waits (briefly) for the owner to fold it, so
the customer page it goes to shows the new fault with its clocks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import structlog
from aiohttp import web

from handlers.api.commands import command_to_event
from handlers.api.customer_search import ArchiveQuery
from handlers.api.http_guard import BadRequest
from handlers.api.input_limits import MAX_SEARCH_LENGTH
from handlers.api.operations import operation
from handlers.identity.guard import author
from handlers.web.customer_desk import CustomerDesk
from handlers.web.page_context import base_context
from handlers.web.pages import render
from streams.customer_archive import CIRCUIT, archive_record, circuit_term, query_terms
from streams.vocabulary import FAULT_SEVERITIES

log = structlog.get_logger("keydesk.web")

#: how long logging a fault waits for the owner's fold before going to the customer page anyway
FOLD_WAIT_SECONDS = 3.0
#: customers the console lists for one search
RESULTS_SHOWN = 20


def customer_path(customer_id: str) -> str:
    return f"/customers/{quote(customer_id, safe='')}"


def matching_circuit(profile: dict[str, Any], searched: str) -> str | None:
    """The customer's circuit the search named, to pick it in the fault form."""
    wanted = {term for kind, term in query_terms(searched) if kind == CIRCUIT}
    for service in profile.get("services") or ():
        circuit = str(service.get("circuit_id") or "")
        if circuit and any(circuit_term(circuit).startswith(term) for term in wanted):
            return circuit
    return None


def register_console(web_app: web.Application, data: CustomerDesk, clock: Callable[[], datetime]) -> None:
    async def console(request: web.Request) -> web.StreamResponse:
        searched = request.query.get("q", "").strip()[:MAX_SEARCH_LENGTH]
        context: dict[str, Any] = {**base_context(request), "q": searched, "results": None}
        if searched:
            page = await data.search(ArchiveQuery(q=searched, limit=RESULTS_SHOWN), clock())
            results = page["customers"]
            if len(results) == 1:
                found = results[0]
                circuit = matching_circuit(found, searched)
                going = customer_path(found["customer_id"])
                if circuit:
                    going += "?" + urlencode({"circuit": circuit})
                return web.Response(status=303, headers={"Location": going})
            context.update(results=results, more=page["next"] is not None)
        return render(request, "console.html", context)

    async def fault_form(request: web.Request) -> web.Response:
        customer_id = request.match_info["customer_id"]
        view = await data.view(customer_id)
        profile = (view or {}).get("profile")
        if profile is None:
            raise BadRequest(404, "customer_id", f"no customer {customer_id} is registered")
        context = {
            **base_context(request),
            "customer_id": customer_id,
            "profile": archive_record(customer_id, profile, None),
            "severities": FAULT_SEVERITIES,
            "picked": request.query.get("circuit", ""),
            "problem": None,
            "given": {},
        }
        return render(request, "fault_form.html", context)

    async def log_fault(request: web.Request) -> web.StreamResponse:
        customer_id = request.match_info["customer_id"]
        form = await request.post()
        view = await data.view(customer_id)
        profile = (view or {}).get("profile")
        if profile is None:
            raise BadRequest(404, "customer_id", f"no customer {customer_id} is registered")
        body: dict[str, Any] = {"customer_id": customer_id}
        for name in ("severity", "summary", "location"):
            value = str(form.get(name, "")).strip()
            if value:
                body[name] = value
        services = profile.get("services") or []
        picked = str(form.get("service_pick", "")).strip()
        if picked.isdigit() and int(picked) < len(services):
            chosen = services[int(picked)]
            body["service"] = chosen.get("service")
            if chosen.get("circuit_id"):
                body["circuit_id"] = chosen["circuit_id"]
        elif str(form.get("service", "")).strip():
            body["service"] = str(form.get("service")).strip()
        try:
            body = operation("log_fault").check_body(body)
            actor, source = await author(request, "fault.reported", customer_id)
            event = command_to_event(
                body, "fault.reported", "fault_id", "F", clock(), actor=actor, source=source
            )
        except BadRequest as exc:
            if exc.status != 422:
                raise
            context = {
                **base_context(request),
                "customer_id": customer_id,
                "profile": archive_record(customer_id, profile, None),
                "severities": FAULT_SEVERITIES,
                "picked": str(body.get("circuit_id", "")),
                "problem": exc.field or "body",
                "given": {k: str(form.get(k, "")) for k in ("severity", "summary", "location", "service")},
            }
            return render(request, "fault_form.html", context, status=422)
        published = time.perf_counter()
        await data.publish(event)
        folded = await data.outcome(customer_id, "fault", event.entity_id, event.event_id, FOLD_WAIT_SECONDS)
        log.info(
            "web.fault_logged",
            customer_id=customer_id,
            fault_id=event.entity_id,
            folded=folded is not None,
            ms=round((time.perf_counter() - published) * 1000, 1),
        )
        going = f"{customer_path(customer_id)}?{urlencode({'step': event.event_id})}#fault-{event.entity_id}"
        return web.Response(status=303, headers={"Location": going})

    web_app.router.add_get("/console", console)
    web_app.router.add_get("/customers/{customer_id}/faults/new", fault_form)
    web_app.router.add_post("/customers/{customer_id}/faults", log_fault)
