"""Screen 5, the dispatch queue (零时延): ``/queue``, its table ``/queue/rows``, and ``/queue/local``.

The rows are the owners' views, as the API's queue: each worker lists its own
customers' open items (``handlers/web/queue_model.py``: the viewer's scope and
the filters applied there, before the limit) and the worker the browser is on
merges them.  The other workers are asked at ``/queue/local``, a read only a
worker can make: signed with the desk's secret (``handlers/identity/hop.py``),
whose signed query carries who is looking, so that the owner applies that
viewer's scope.  Without the signature nobody may call it (its permission is
held by no role).

The table reloads itself when the live stream (``/live?for=queue``) says an
item in the viewer's scope changed, and once a minute for the times to
breach; without JavaScript the filter form and a reload do the same.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import structlog
from aiohttp import web
from yarl import URL

from handlers.api.http_guard import BadRequest
from handlers.identity.guard import identity_of
from handlers.identity.hop import hop_headers
from handlers.identity.roles import Identity
from handlers.web.live_desk import LiveDesk, local_time, span, utc_text
from handlers.web.pages import render
from handlers.web.queue_model import PAGE_ROWS, TIERS, FilterProblem, QueueFilters, local_rows, merged
from streams.vocabulary import ITEM_KINDS

log = structlog.get_logger("keydesk.web.queue")

#: queue tables one worker builds at once (each walks its views and asks every other worker)
CONCURRENT_TABLES = 8
PEER_SECONDS = 5.0


def viewer_query(viewer: Identity) -> dict[str, str]:
    """Who is looking, for the signed query of ``/queue/local``."""
    query = {"as_name": viewer.name, "as_roles": ",".join(sorted(viewer.roles))}
    if viewer.staff_id:
        query["as_staff"] = viewer.staff_id
    if viewer.region:
        query["as_region"] = viewer.region
    return query


def viewer_of(query: Any) -> Identity:
    return Identity(
        name=str(query.get("as_name", ""))[:64],
        kind="user",
        credential="hop",
        roles=frozenset(r for r in str(query.get("as_roles", "")).split(",") if r),
        staff_id=query.get("as_staff") or None,
        region=query.get("as_region") or None,
    )


def filters_of(request: web.Request) -> QueueFilters:
    try:
        return QueueFilters.from_query(request.query)
    except FilterProblem as exc:
        raise BadRequest(422, exc.field, exc.reason) from None


def register_dispatch_page(web_app: web.Application, live: LiveDesk) -> None:
    tables = asyncio.Semaphore(CONCURRENT_TABLES)

    async def ask(url: str, query: dict[str, str]) -> list[dict[str, Any]]:
        target = URL(f"{url}/queue/local").with_query(query)
        async with live.http().get(
            target,
            headers=hop_headers(live.hop_key, target),
            timeout=aiohttp.ClientTimeout(total=PEER_SECONDS),
        ) as answer:
            if answer.status != 200:
                raise aiohttp.ClientResponseError(answer.request_info, (), status=answer.status)
            found: list[dict[str, Any]] = orjson.loads(await answer.read())["items"]
            return found

    async def queue_table(request: web.Request, filters: QueueFilters) -> dict[str, Any]:
        """The merged rows of every worker for the request's viewer, and which workers did not answer."""
        viewer = identity_of(request)
        assert viewer is not None
        now = live.clock()
        async with tables:
            rows = local_rows(live.views(), live.owns, now, viewer, filters)
            query = {**filters.to_query(), **viewer_query(viewer)}
            peers = live.peers()
            answers = await asyncio.gather(*(ask(url, query) for url in peers), return_exceptions=True)
        missing = []
        for url, answer in zip(peers, answers, strict=True):
            if isinstance(answer, BaseException):
                log.warning("queue.peer_unavailable", peer=url, error=repr(answer)[:200])
                missing.append(url)
            else:
                rows.extend(answer)
        shown = merged(rows, PAGE_ROWS)
        for row in shown:
            row["deadline_local"] = local_time(row["next_deadline"], live.zone)
            row["deadline_utc"] = utc_text(row["next_deadline"])
            row["wait"] = span(row["seconds_to_breach"])
        return {
            "rows": shown,
            "missing": missing,
            "as_of": local_time(now, live.zone),
            "as_of_utc": utc_text(now),
            "filters": filters,
            "query": filters.to_query(),
        }

    async def queue_page(request: web.Request) -> web.Response:
        filters = filters_of(request)
        caller = identity_of(request)
        context = await queue_table(request, filters)
        return render(
            request,
            "queue.html",
            {**context, "caller": caller, "tiers": TIERS, "kinds": ITEM_KINDS, "live_url": live_url(filters)},
        )

    async def queue_rows(request: web.Request) -> web.Response:
        return render(request, "queue_table.html", await queue_table(request, filters_of(request)))

    async def queue_local(request: web.Request) -> web.Response:
        """This worker's rows for the viewer named in the signed query (a hop from another worker)."""
        filters = filters_of(request)
        rows = local_rows(live.views(), live.owns, live.clock(), viewer_of(request.query), filters)
        return web.Response(body=orjson.dumps({"items": rows}), content_type="application/json")

    web_app.router.add_get("/queue", queue_page)
    web_app.router.add_get("/queue/rows", queue_rows)
    web_app.router.add_get("/queue/local", queue_local)


def live_url(filters: QueueFilters) -> str:
    query = {"for": "queue", **({"kind": filters.kind} if filters.kind else {})}
    return str(URL("/live").with_query(query))
