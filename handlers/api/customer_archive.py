"""The customer archive (客户档案) over HTTP: register, update, read, list and search customers.

* ``POST /api/customers`` registers (``customer.registered``), ``PATCH
  /api/customers/{id}`` changes the fields it is given (``customer.updated``;
  a list such as ``services`` is replaced whole).  Both are taken by whichever
  worker receives them and published to the customer's home partition (never
  routed: a write's body would be lost), like every other write; the log is the
  truth.  Whether the customer is registered is asked of the worker that owns
  the customer (a routed read of its view, the fold of the log up to a few
  milliseconds ago), not of the reporting database, whose sink lag would let a
  register-then-update a moment later be refused as unknown.  Two registrations
  of one new id racing each other are both published; the fold merges them
  last-writer-wins per field.
* ``GET /api/customers/{id}`` is the owner's record (fresh, ``?wait_for=EVENT_ID``
  for read-your-writes).
* ``GET /api/customers`` lists and searches every customer from the reporting
  database (``handlers/api/customer_search.py``): the same page from every
  worker, behind by the sink's lag (``GET /api/sink``).

Every write answers 202 once the broker has the event; with ``?wait=S`` it
answers 200 with the record once the owner has folded it, or 202 ``published``
if the owner cannot say within ``S`` seconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import structlog
from faust.web import Request, Response, View
from sqlalchemy.exc import DBAPIError
from yarl import URL

from handlers.api.commands import command_to_event
from handlers.api.customer_search import archive_query, list_customers
from handlers.api.http_guard import BadRequest, Slots, error_body, read_json_object
from handlers.api.input_limits import (
    ARCHIVE_QUERY_SECONDS,
    MAX_CONCURRENT_ARCHIVE_READS,
    OWNER_CHECK_TIMEOUT_SECONDS,
    ROUTED_READ_TIMEOUT_SECONDS,
)
from handlers.api.operations import operation
from handlers.identity.guard import audit_change, author
from schemas.envelope import Event
from schemas.reporting_db import open_engine
from streams.customer_archive import archive_record, latest_stamp
from streams.publisher import HomePublisher

__all__ = ["OwnerReads", "OwnerRecord", "register_customer_archive_routes"]

log = structlog.get_logger("keydesk.archive")

_ENVELOPE_KEYS = ("occurred_at",)


#: The owner's archive record of a customer: ``(200, record)``, ``(404, error)``, or ``None``
#: when the owner cannot say now.
OwnerRecord = Callable[[str], Awaitable[tuple[int, dict[str, Any]] | None]]


@dataclass(frozen=True)
class OwnerReads:
    """What the archive needs of the read routing built in ``handlers/api/routes.py``."""

    routed_read: Callable[[Callable[..., Awaitable[Response]]], Callable[..., Awaitable[Response]]]
    owner_of: Callable[[str], URL | None]
    is_me: Callable[[URL], bool]
    ready: Callable[[], bool]
    views: Any  # the customers table: customer id -> view
    wait_for_event: Callable[[str, str, float], Awaitable[bool]]
    waits: Slots
    http_client: Callable[[], aiohttp.ClientSession]
    #: the headers of a read forwarded to ``target``: routed and signed (``handlers/identity/hop.py``)
    hop: Callable[[URL], dict[str, str]]


def register_customer_archive_routes(
    app: Any,
    publisher: HomePublisher,
    owners: OwnerReads,
    database_url: str,
    clock: Callable[[], datetime],
) -> OwnerRecord:
    """Attach ``/api/customers`` (POST, GET) and ``/api/customers/{customer_id}`` (GET, PATCH).

    Returns how to ask the owner for a record, for the service register's writes
    (``handlers/api/customer_services.py``), which check the customer the same way.
    """
    engine = open_engine(database_url)
    pool = ThreadPoolExecutor(MAX_CONCURRENT_ARCHIVE_READS, thread_name_prefix="keydesk-archive")
    reads = Slots(MAX_CONCURRENT_ARCHIVE_READS, "archive lists")

    async def answer_here(
        customer_id: str, event_id: str | None, timeout: float
    ) -> tuple[int, dict[str, Any]]:
        """The record from this worker's view (it owns the customer): status and body."""
        if not owners.ready():
            return 503, error_body("worker is rebalancing or recovering; retry shortly", None)
        if event_id is not None:
            with owners.waits.take():
                if not await owners.wait_for_event(customer_id, event_id, timeout):  # a 404, not a 5xx
                    return 404, error_body(f"event {event_id} not folded after {timeout:g} s", "wait_for")
        view = owners.views.get(customer_id)
        if view is None or view.get("profile") is None:
            return 404, error_body(f"no customer {customer_id} is registered", "customer_id")
        return 200, archive_record(customer_id, view["profile"], latest_stamp(view["profile_stamps"]))

    async def owner_record(
        customer_id: str, event_id: str | None = None, timeout: float = 0.0
    ) -> tuple[int, dict[str, Any]] | None:
        """The owner's answer (200 record, 404 no such customer), or ``None`` if it cannot say now."""
        owner = owners.owner_of(customer_id)
        if owner is None:
            return None
        if owners.is_me(owner):
            try:
                status, body = await answer_here(customer_id, event_id, timeout)
            except BadRequest:  # no wait slot left
                return None
        else:
            path = f"/api/customers/{quote(customer_id, safe='')}"
            if event_id is not None:
                path += f"?wait_for={event_id}&timeout={timeout:g}"
            limit = ROUTED_READ_TIMEOUT_SECONDS if event_id else OWNER_CHECK_TIMEOUT_SECONDS
            target = owner.join(URL(path, encoded=True))
            try:
                async with owners.http_client().get(
                    target,
                    headers=owners.hop(target),
                    timeout=aiohttp.ClientTimeout(total=limit),
                ) as answer:
                    status, body = answer.status, orjson.loads(await answer.read())
            except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
                return None
            if not isinstance(body, dict):
                return None
        if status == 404 and body.get("field") != "customer_id":
            return None
        return (status, body) if status in (200, 404) else None

    def cannot_say() -> BadRequest:
        return BadRequest(
            503,
            "customer_id",
            "the worker owning this customer cannot say now whether it is registered; retry",
            {"Retry-After": "1"},
        )

    def wait_of(request: Request, operation_id: str) -> float | None:
        """``?wait=S`` as the operation declares it (``?wait`` alone: 2 s; none: no wait)."""
        wait: float | None = operation(operation_id).read(request)["wait"]
        return wait

    async def published(
        web: View, request: Request, event: Event, wait: float | None, before: dict[str, Any] | None
    ) -> Response:
        """The answer to an archive write the broker has: 202, or with ``wait`` the owner's record.

        Audited (an admin change): the owner's record before, the event's fields after.
        """
        await publisher.publish(event)
        await audit_change(
            request,
            event.event_type,
            event.customer_id,
            before=before,
            after={"event_id": event.event_id, **event.payload},
        )
        answer: dict[str, Any] = {
            "customer_id": event.customer_id,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "outcome": "published",
        }
        log.info("archive.published", customer_id=event.customer_id, event_type=event.event_type)
        if wait is None:
            return web.json(answer, status=202)
        found = await owner_record(event.customer_id, event.event_id, wait)
        if found is None or found[0] != 200:
            return web.json({**answer, "waited": wait}, status=202)
        return web.json({**answer, "outcome": "applied", "customer": found[1]}, status=200)

    async def archive_event(request: Request, event_type: str, body: dict[str, Any]) -> Event:
        """The checked event of a write, by the signed-in admin; a 422 names the request's field."""
        customer_id = body.get("customer_id")
        if not isinstance(customer_id, str) or not customer_id.strip():
            raise BadRequest(422, "customer_id", "is required and must be a non-empty string")
        actor, source = await author(request, event_type, customer_id)
        event: Event = command_to_event(
            body, event_type, "customer_id", "C", clock(), actor=actor, source=source
        )
        if not event.payload:
            raise BadRequest(
                422, "body", "nothing to change: give at least one archive field (name, tier, services, ...)"
            )
        return event

    @app.page("/api/customers")
    class CustomersView(View):
        """Register a customer (POST); list and search the archive (GET, from the reporting database)."""

        async def post(self, request: Request) -> Response:
            """``{customer_id, name, [tier, region, industry, account_manager, escalation_chain,
            contacts, services, occurred_at]}``: 202, or 409 if already registered."""
            wait = wait_of(request, "register_customer")
            body = operation("register_customer").check_body(await read_json_object(request))
            event = await archive_event(request, "customer.registered", body)
            found = await owner_record(event.customer_id)
            if found is None:
                raise cannot_say()
            if found[0] == 200:
                raise BadRequest(
                    409,
                    "customer_id",
                    f"customer {event.customer_id} is already registered; change it with "
                    f"PATCH /api/customers/{event.customer_id}",
                )
            return await published(self, request, event, wait, None)

        async def get(self, request: Request) -> Response:
            """One page: ``?tier=&region=&account_manager=&has_open_breaches=&q=&limit=&after=``.

            Every worker answers from the reporting database, so the same page
            whichever is asked; it is behind the log by the sink's lag.
            """
            operation("list_customers").read(
                request
            )  # the declared spellings and bounds, then the query's own
            query = archive_query(request.query)
            reads.acquire()
            loop = asyncio.get_running_loop()
            try:
                work = pool.submit(list_customers, engine, query, clock())
            except BaseException:
                reads.release()
                raise
            work.add_done_callback(lambda _: loop.call_soon_threadsafe(reads.release))
            try:
                page = await asyncio.wrap_future(work)
            except DBAPIError as exc:
                log.warning("archive.database_unavailable", error=str(exc).splitlines()[0][:300])
                if "interrupt" in str(exc).lower() or "statement timeout" in str(exc).lower():
                    raise BadRequest(
                        422, "q", f"the search did not finish within {ARCHIVE_QUERY_SECONDS:g} s; narrow it"
                    ) from None
                raise BadRequest(
                    503, None, "the reporting database did not answer; retry later", {"Retry-After": "5"}
                ) from None
            return self.bytes(orjson.dumps(page), content_type="application/json")

    async def read_record(web: View, request: Request, customer_id: str) -> Response:
        """The owner's archive record; ``?wait_for=EVENT_ID&timeout=S`` once that event is folded."""
        asked = operation("get_customer").read(request)
        status, body = await answer_here(customer_id, asked["wait_for"], asked["timeout"])
        headers = {"Retry-After": "1"} if status == 503 else None
        return web.bytes(orjson.dumps(body), status=status, content_type="application/json", headers=headers)

    @app.page("/api/customers/{customer_id}")
    class CustomerView(View):
        """One customer's archive record (GET, routed to its owner); change it (PATCH, any worker)."""

        get = owners.routed_read(read_record)

        async def patch(self, request: Request, customer_id: str) -> Response:
            """The fields to change, ``[occurred_at]``: 202; 404 for an unknown customer."""
            wait = wait_of(request, "update_customer")
            body = operation("update_customer").check_body(await read_json_object(request))
            if not set(body) - set(_ENVELOPE_KEYS):
                raise BadRequest(422, "body", "nothing to change: give at least one archive field")
            event = await archive_event(request, "customer.updated", {**body, "customer_id": customer_id})
            found = await owner_record(customer_id)
            if found is None:
                raise cannot_say()
            if found[0] == 404:
                raise BadRequest(404, "customer_id", f"no customer {customer_id} is registered")
            return await published(self, request, event, wait, found[1])

    return owner_record
