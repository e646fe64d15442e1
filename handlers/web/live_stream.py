"""``GET /live?for=queue|inbox``: the pages' server-sent event stream, from this worker's live feed.

Events (htmx's SSE extension acts on their names, ``handlers/web/templates``):

* ``sync``: reload what you show; sent first on every (re)connection, which
  closes the gap between the page's render and the stream's start, and when
  the feed restarted and may have missed changes;
* ``queue``: an item in your scope changed; at most one a second
  (:data:`QUEUE_EVERY`), the last change never held back longer;
* ``step``: a new step in your scope, as the table row to put on top, in the
  page's language; ``news``: the same in words for the live region (screen
  readers);
* ``ack``: a step of your scope was acknowledged: reload the table.

A comment every :data:`KEEPALIVE` seconds finds a gone client.  A stream ends
after :data:`LIFETIME` seconds (the browser reconnects, and is authenticated
again: a revoked session does not stream on), when it cannot keep up
(``live_feed.Subscriber``), or when the worker stops.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from handlers.api.http_guard import BadRequest
from handlers.identity.guard import identity_of
from handlers.web.inbox_model import Customer, one_row
from handlers.web.inbox_page import row_context
from handlers.web.live_desk import LiveDesk
from handlers.web.live_feed import LiveChange, TooManyStreams
from handlers.web.pages import ENVIRONMENTS, language_of
from streams.vocabulary import ITEM_KINDS

QUEUE_EVERY = 1.0
KEEPALIVE = 15.0
RENDERED_KEPT = 4096
LIFETIME = 600.0


def sse(event: str, data: str) -> bytes:
    """One server-sent event; every line of ``data`` its own ``data:`` line."""
    lines = "".join(f"data: {line}\n" for line in (data.splitlines() or [""]))
    return f"event: {event}\n{lines}\n".encode()


def register_live_stream(web_app: web.Application, live: LiveDesk) -> None:
    #: a step's row as sent, by (event id, language, addressed to the viewer): rendered once for all
    #: the streams it goes to, not once a stream (200 streams: 200 renders of one row otherwise)
    rendered_rows: OrderedDict[tuple[str, str, bool], bytes] = OrderedDict()

    async def stream(request: web.Request) -> web.StreamResponse:
        viewer = identity_of(request)
        assert viewer is not None
        interest = request.query.get("for", "")
        if interest not in ("queue", "inbox"):
            raise BadRequest(422, "for", "must be queue or inbox")
        kind = request.query.get("kind", "")
        if kind and kind not in ITEM_KINDS:
            raise BadRequest(422, "kind", f"must be one of {', '.join(ITEM_KINDS)}")
        try:
            subscriber = live.hub.subscribe(viewer, "inbox" if interest == "inbox" else "queue", kind)
        except TooManyStreams as exc:
            raise BadRequest(503, None, str(exc), {"Retry-After": "5"}) from None
        language = language_of(request)
        only_mine = request.query.get("mine") == "1"

        def rendered(template: str, context: dict[str, Any]) -> str:
            return aiohttp_jinja2.render_string(
                template, request, {**context, "language": language}, app_key=ENVIRONMENTS[language]
            )

        def step_events(change: LiveChange, customer: Customer | None) -> bytes:
            assert change.step is not None
            row = one_row(change.step, customer, None, viewer)
            if row is None or (only_mine and not row.to_me):
                return b""
            key = (change.step.event_id, language, row.to_me)
            found = rendered_rows.get(key)
            if found is None:
                context = row_context(row, live, fresh=True)
                # no CSRF field: a live row exists only with htmx, which sends the page's token as a header
                found = sse("step", rendered("inbox_row.html", {"row": context, "csrf_token": None})) + sse(
                    "news", rendered("inbox_news.html", {"row": context})
                )
                rendered_rows[key] = found
                while len(rendered_rows) > RENDERED_KEPT:
                    rendered_rows.popitem(last=False)
            return found

        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        loop = asyncio.get_running_loop()
        ends = loop.time() + LIFETIME
        try:
            await response.prepare(request)
            await response.write(sse("sync", ""))
            queue_due: float | None = None
            last_queue = 0.0
            while not subscriber.dropped and loop.time() < ends:
                now = loop.time()
                wait = KEEPALIVE if queue_due is None else max(0.0, queue_due - now)
                found = await subscriber.take(min(wait, ends - now))
                out = b""
                for change, customer in found:
                    if change.kind == "sync":
                        out += sse("sync", "")
                    elif change.kind == "item" and queue_due is None:
                        queue_due = max(loop.time(), last_queue + QUEUE_EVERY)
                    elif change.kind == "step":
                        out += step_events(change, customer)
                    elif change.kind == "ack":
                        out += sse("ack", "")
                if queue_due is not None and loop.time() >= queue_due:
                    out += sse("queue", "")
                    queue_due, last_queue = None, loop.time()
                if not found and not out:
                    out = b": keepalive\n\n"
                if out:
                    await response.write(out)
        except ConnectionResetError:  # the browser went away
            pass
        finally:
            live.hub.leave(subscriber)
        return response

    web_app.router.add_get("/live", stream)
