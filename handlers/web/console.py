"""The hotline console (一点受理): one search box to the customer.

The search is the archive's (``list_customers``, what ``GET /api/customers?q=``
answers): a part of the name, the start of a customer or circuit id, a whole
phone number.  When it finds exactly one customer the console goes straight to
that customer's page (a caller who quotes a circuit id means that customer,
and the fault form linked from there picks that circuit).  Logging a fault,
opening a ticket and placing an order are the forms of ``new_item_pages``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import structlog
from aiohttp import web

from handlers.api.customer_search import ArchiveQuery
from handlers.api.input_limits import MAX_SEARCH_LENGTH
from handlers.web.customer_desk import CustomerDesk
from handlers.web.page_context import base_context
from handlers.web.pages import render
from streams.customer_archive import CIRCUIT, circuit_term, query_terms

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

    web_app.router.add_get("/console", console)
