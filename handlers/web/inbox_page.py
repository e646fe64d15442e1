"""Screen 6, the escalations inbox: ``/inbox``, its table ``/inbox/table``, and acknowledging a step.

The steps are the reporting database's (every worker answers the same), joined
with those the live feed has read in the last minutes, which the sink may not
have written yet; likewise the acknowledgements.  A new step in the user's
scope arrives through the live stream (``/live?for=inbox``) as a row put on
top of the table with a visible cue (and, if the user turned it on, a sound);
an acknowledgement from anyone reloads the table.

The "new" cue belongs to the page, not to the row's first rendering: the page
remembers when it was shown (``since``, carried by every reload of its table
and every acknowledgement posted from it), and a reload marks fresh every step
the live feed read after that (the feed's clock, not event time: a replayed or
late step is new to the page when it arrives, whatever time it carries).
Otherwise the reload that a stream's opening ``sync`` or anyone's
acknowledgement triggers would wipe the cue off a step that came in live a
moment before.  A reload answered before such a step arrived lacks it
altogether; ``static/live.js`` puts those rows back.

Acknowledging is a form (``POST /inbox/acknowledge``) that works without
JavaScript; with htmx it replaces the table only.  It runs the API's own
acknowledgement (``POST /api/customers/{id}/items/{kind}/{item_id}/acknowledge``:
the same body check, the same authorization for that customer, the same check
against the owner's clocks, signed and published the same way): the function
handed over as ``LiveDesk.acknowledge``, not a second copy.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from aiohttp import web

from handlers.api.http_guard import BadRequest
from handlers.api.input_limits import MAX_NOTE_LENGTH
from handlers.identity.guard import identity_of
from handlers.identity.roles import Identity
from handlers.web import inbox_reads
from handlers.web.inbox_model import Acknowledgement, Customer, InboxRow, inbox
from handlers.web.live_desk import LiveDesk, local_time, utc_text
from handlers.web.pages import CSRF_COOKIE, render


def row_context(row: InboxRow, live: LiveDesk, *, fresh: bool = False) -> dict[str, Any]:
    """What the template shows of one inbox row; times local with their UTC in ``datetime``."""
    step, ack = row.step, row.acknowledged
    return {
        "id": f"step-{step.event_id}",
        "event_type": step.event_type,
        "customer_id": step.customer_id,
        "customer": (row.customer.name if row.customer else None) or step.customer_id,
        "tier": row.customer.tier if row.customer else None,
        "kind": step.item_kind,
        "item_id": step.item_id,
        "metric": step.metric,
        "cycle": step.cycle,
        "step": step.step,
        "role": step.role,
        "at_local": local_time(step.occurred_at, live.zone),
        "at_utc": utc_text(step.occurred_at),
        "deadline_local": local_time(step.deadline, live.zone),
        "to_me": row.to_me,
        "ack": None
        if ack is None
        else {
            "actor": ack.actor,
            "at_local": local_time(ack.occurred_at, live.zone),
            "at_utc": utc_text(ack.occurred_at),
            "note": ack.note,
        },
        "fresh": fresh,
    }


#: how far back a page's ``since`` may go (a page older than the live feed's memory shows no cue)
SINCE_RANGE_SECONDS = 7 * 24 * 3600.0


def page_since(text: str | None, now: float) -> float | None:
    """The ``since`` a reload carries: seconds since the epoch, within the last week, or 422 naming it."""
    if text is None or text == "":
        return None
    try:
        since = float(text) if len(text) <= 32 else float("nan")
    except ValueError:
        since = float("nan")
    if not (now - SINCE_RANGE_SECONDS <= since <= now + 60.0):
        raise BadRequest(422, "since", "must be the page's time, seconds since 1970 within the last week")
    return since


async def inbox_rows(
    live: LiveDesk, viewer: Identity, only_mine: bool, extra: Iterable[Acknowledgement] = ()
) -> tuple[list[InboxRow], dict[str, float]]:
    """The rows, and when the live feed read each of its recent steps (by event id)."""
    now = live.clock()
    steps = await live.run_sql(inbox_reads.recent_steps, live.engine, now)
    recent = live.hub.recent()
    steps += [c.step for c in recent if c.step is not None]
    read_at = {c.step.event_id: c.read_at for c in recent if c.step is not None}
    customers: dict[str, Customer] = await live.run_sql(
        inbox_reads.customers, live.engine, {s.customer_id for s in steps}
    )
    acks = await live.run_sql(inbox_reads.acknowledgements, live.engine, {s.key for s in steps})
    acks += [c.ack for c in recent if c.ack is not None]
    return inbox(steps, customers, [*acks, *extra], viewer, only_mine=only_mine), read_at


def arrived_since(row: InboxRow, read_at: dict[str, float], since: float | None) -> bool:
    """Whether the live feed read the row's step after the page was shown at ``since``."""
    return since is not None and read_at.get(row.step.event_id, float("-inf")) >= since


def register_inbox_page(web_app: web.Application, live: LiveDesk) -> None:
    async def context(
        request: web.Request,
        extra: Iterable[Acknowledgement] = (),
        problem: str | None = None,
        since: str | None = None,
    ) -> dict[str, Any]:
        """The page's or table's context; ``since`` the page's time a reload carries (none: a new page)."""
        viewer = identity_of(request)
        assert viewer is not None
        only_mine = request.query.get("mine") == "1"
        shown_at = page_since(since, time.time())
        rows, read_at = await inbox_rows(live, viewer, only_mine, extra)
        return {
            "rows": [row_context(r, live, fresh=arrived_since(r, read_at, shown_at)) for r in rows],
            "since": f"{time.time():.3f}" if shown_at is None else f"{shown_at:.3f}",
            "open_count": sum(r.acknowledged is None for r in rows),
            "mine": only_mine,
            "caller": viewer,
            "csrf_token": request.cookies.get(CSRF_COOKIE, ""),
            "problem": problem,
            "note_max": MAX_NOTE_LENGTH,
            "as_of": local_time(live.clock(), live.zone),
        }

    async def inbox_page(request: web.Request) -> web.Response:
        return render(request, "inbox.html", await context(request))

    async def inbox_table(request: web.Request) -> web.Response:
        return render(request, "inbox_table.html", await context(request, since=request.query.get("since")))

    async def acknowledge(request: web.Request) -> web.Response:
        """A manager acknowledges one clock's escalation with a note: the API's acknowledgement."""
        form = await request.post()
        customer_id = str(form.get("customer_id", ""))
        kind, item_id = str(form.get("kind", "")), str(form.get("item_id", ""))
        body: dict[str, Any] = {"metric": str(form.get("metric", ""))}
        cycle = str(form.get("cycle", "")).strip()
        note = str(form.get("note", "")).strip()
        partial = request.headers.get("HX-Request") == "true"
        since = str(form.get("since", "")) or None
        try:
            page_since(since, time.time())  # a bad one refused before anything is published
            if not customer_id or not item_id:
                raise BadRequest(422, "customer_id" if not customer_id else "item_id", "is required")
            if cycle:
                if not cycle.isdigit() or len(cycle) > 6:
                    raise BadRequest(422, "cycle", "must be a whole number")
                body["cycle"] = int(cycle)
            if note:
                body["note"] = note
            event, _ = await live.acknowledge(request, customer_id, kind, item_id, body)
        except BadRequest as exc:
            problem = f"{exc.field or 'request'}: {exc.reason}" if exc.field else exc.reason
            found = await context(request, problem=problem, since=None if exc.field == "since" else since)
            if partial:  # htmx swaps only 2xx answers: the table with the problem in it
                return render(request, "inbox_table.html", found)
            return render(request, "inbox.html", found, status=exc.status)
        ack = Acknowledgement(
            (customer_id, kind, item_id, body["metric"], event.payload["cycle"]),
            event.actor,
            event.occurred_at,
            event.payload.get("note"),
        )
        found = await context(request, extra=[ack], since=since)
        return render(request, "inbox_table.html" if partial else "inbox.html", found)

    web_app.router.add_get("/inbox", inbox_page)
    web_app.router.add_get("/inbox/table", inbox_table)
    web_app.router.add_post("/inbox/acknowledge", acknowledge)
