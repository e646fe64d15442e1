"""A refused page is a page: the API's error answers turned into HTML for the desk's pages.

The identity refuses a page as it refuses the API (403 for an account manager
opening another's customer, a forged form without its CSRF token), and a
page's handler raises the API's :class:`~handlers.api.http_guard.BadRequest`
(404, 422, 503); the HTTP guard turns each into the API's JSON error.  A
person in a browser needs a page in their language that says what happened
and where to go, with the same status: this middleware, outermost, turns a
JSON refusal of an operation marked ``page`` in the table of operations into
that page.  The API's own answers are left as they are.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from handlers.identity.operations import find_operation
from handlers.web.pages import render

#: the statuses a refusal page explains in words of its own (others: the generic sentence)
EXPLAINED = (400, 401, 403, 404, 409, 413, 422, 429, 503)


def is_page(request: web.Request) -> bool:
    match = request.match_info
    if match.http_exception is not None:
        return False
    resource = match.route.resource
    operation = find_operation(request.method, resource.canonical if resource else "")
    return operation is not None and operation.page


def page_refusals() -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware; it must run outside the HTTP guard (first in the application's list)."""

    @web.middleware
    async def refusal_page(request: web.Request, handler: Any) -> web.StreamResponse:
        response = await handler(request)
        if (
            response.status < 400
            or not isinstance(response, web.Response)
            or response.content_type != "application/json"
            or not is_page(request)
        ):
            return response
        try:
            field = orjson.loads(response.body or b"{}").get("field")  # type: ignore[arg-type]
        except (orjson.JSONDecodeError, AttributeError):
            field = None
        page = render(
            request,
            "refused.html",
            {"status": response.status, "explained": response.status in EXPLAINED, "field": field},
            status=response.status,
        )
        if "Retry-After" in response.headers:
            page.headers["Retry-After"] = response.headers["Retry-After"]
        return page

    return refusal_page


_INSTALLED = web.AppKey("keydesk_page_refusals", bool)


def install_page_refusals(web_app: web.Application) -> None:
    """Put the middleware outside every other (the HTTP guard makes the JSON it reads), once:
    every group of screens asks for it."""
    if web_app.get(_INSTALLED):
        return
    web_app[_INSTALLED] = True
    web_app.middlewares.insert(0, page_refusals())
