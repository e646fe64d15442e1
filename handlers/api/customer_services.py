"""The service register (业务清单) over HTTP: add, remove and page through a customer's services.

* ``POST /api/customers/{id}/services`` adds a service or changes one
  (``customer.service_added``), ``DELETE /api/customers/{id}/services/{service_id}``
  takes one out (``customer.service_removed``).  Taken by whichever worker
  receives them and published to the customer's home partition, like every
  write; audited as admin changes of the archive, with the register's entry
  before.  The customer must be registered: asked of its owner, as a ``PATCH``
  of the record does.
* ``GET /api/customers/{id}/services?limit=&after=`` pages through the register,
  ordered by service id, from the reporting database
  (``handlers/api/service_register.py``): the same page from every worker,
  behind the log by the sink's lag.

The register lives in the reporting database only (``streams/customer_services.py``
says why), so the checks a write makes of it (a service to remove is there, the
register is not full) read it with the sink's lag; the sink's rule is the last
word (an add past the bound that got through is refused there, in log order).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

import orjson
import structlog
from faust.web import Request, Response, View
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from handlers.api.commands import command_to_event
from handlers.api.customer_archive import OwnerRecord
from handlers.api.http_guard import BadRequest, Slots, read_json_object
from handlers.api.input_limits import MAX_CONCURRENT_ARCHIVE_READS
from handlers.api.operations import operation
from handlers.api.service_register import list_services, service_state
from handlers.identity.guard import audit_change, author
from schemas.envelope import Event
from schemas.reporting_db import open_engine
from schemas.reporting_tables import Customer
from streams.customer_services import ACTIVE, ADDED, MAX_SERVICES, REMOVED
from streams.publisher import HomePublisher

__all__ = ["register_customer_service_routes"]

log = structlog.get_logger("keydesk.archive")

T = TypeVar("T")


def register_customer_service_routes(
    app: Any,
    publisher: HomePublisher,
    owner_record: OwnerRecord,
    database_url: str,
    clock: Callable[[], datetime],
) -> None:
    """Attach ``/api/customers/{customer_id}/services`` (GET, POST) and ``.../{service_id}`` (DELETE)."""
    engine = open_engine(database_url)
    pool = ThreadPoolExecutor(MAX_CONCURRENT_ARCHIVE_READS, thread_name_prefix="keydesk-services")
    reads = Slots(MAX_CONCURRENT_ARCHIVE_READS, "service register reads")

    async def in_thread(work: Callable[..., T], *args: Any) -> T:
        """``work(*args)`` on the database, off the event loop; 429 past the bound, 503 if it fails."""
        reads.acquire()
        try:
            return await asyncio.get_running_loop().run_in_executor(pool, work, *args)
        except SQLAlchemyError as exc:
            log.warning("services.database_unavailable", error=str(exc).splitlines()[0][:300])
            raise BadRequest(
                503, None, "the reporting database did not answer; retry later", {"Retry-After": "5"}
            ) from None
        finally:
            reads.release()

    async def registered(customer_id: str) -> dict[str, Any]:
        """The owner's record of the customer: 404 if it has none, 503 if it cannot say now."""
        found = await owner_record(customer_id)
        if found is None:
            raise BadRequest(
                503,
                "customer_id",
                "the worker owning this customer cannot say now whether it is registered; retry",
                {"Retry-After": "1"},
            )
        if found[0] != 200:
            raise BadRequest(404, "customer_id", f"no customer {customer_id} is registered")
        return found[1]

    def entry(customer_id: str, service_id: str) -> tuple[str | None, int]:
        return service_state(engine, customer_id, service_id)

    async def publish(request: Request, event: Event, before: dict[str, Any] | None) -> dict[str, Any]:
        await publisher.publish(event)
        await audit_change(
            request,
            event.event_type,
            f"{event.customer_id}/services/{event.payload['service_id']}",
            before=before,
            after={"event_id": event.event_id, **event.payload},
        )
        log.info(
            "archive.published",
            customer_id=event.customer_id,
            event_type=event.event_type,
            service_id=event.payload["service_id"],
        )
        return {
            "customer_id": event.customer_id,
            "event_id": event.event_id,
            "event_type": event.event_type,
            "outcome": "published",
        }

    async def checked_event(request: Request, event_type: str, body: dict[str, Any]) -> Event:
        actor, source = await author(request, event_type, body["customer_id"])
        event: Event = command_to_event(
            body, event_type, "customer_id", "C", clock(), actor=actor, source=source
        )
        return event

    def json(web: View, body: dict[str, Any], status: int) -> Response:
        return web.bytes(orjson.dumps(body), status=status, content_type="application/json")

    @app.page("/api/customers/{customer_id}/services")
    class ServicesView(View):
        """Page through the customer's register (GET, the database); add a service (POST, any worker)."""

        async def get(self, request: Request, customer_id: str) -> Response:
            asked = operation("list_customer_services").read(request)
            page = await in_thread(list_services, engine, customer_id, asked["limit"], asked["after"])
            if not page["count"] and not page["services"]:
                known = await in_thread(customer_known, customer_id)
                if not known:
                    raise BadRequest(
                        404, "customer_id", f"no customer {customer_id} in the reporting database"
                    )
            return json(self, page, 200)

        async def post(self, request: Request, customer_id: str) -> Response:
            """``{service_id, service, [circuit_id, address, bandwidth, note, occurred_at]}``: 202."""
            body = operation("add_customer_service").check_body(await read_json_object(request))
            event = await checked_event(request, ADDED, {**body, "customer_id": customer_id})
            await registered(customer_id)
            service_id = event.payload["service_id"]
            state, count = await in_thread(entry, customer_id, service_id)
            if state != ACTIVE and count >= MAX_SERVICES:
                raise BadRequest(
                    409,
                    "service_id",
                    f"customer {customer_id} has {count} services, the register's bound; remove one first",
                )
            before = {"service_id": service_id, "state": state} if state else None
            return json(self, await publish(request, event, before), 202)

    def customer_known(customer_id: str) -> bool:
        with engine.connect() as conn:
            found = conn.execute(select(Customer.customer_id).where(Customer.customer_id == customer_id))
            return found.first() is not None

    @app.page("/api/customers/{customer_id}/services/{service_id}")
    class ServiceView(View):
        """Take one service out of the register (DELETE, any worker)."""

        async def delete(self, request: Request, customer_id: str, service_id: str) -> Response:
            operation("remove_customer_service").read(request)
            event = await checked_event(
                request, REMOVED, {"customer_id": customer_id, "service_id": service_id}
            )
            await registered(customer_id)
            state, _ = await in_thread(entry, customer_id, service_id)
            if state != ACTIVE:
                raise BadRequest(
                    404,
                    "service_id",
                    f"customer {customer_id} has no service {service_id} in the register "
                    "(a service added a moment ago is there once the sink has written it)",
                )
            return json(self, await publish(request, event, {"service_id": service_id, "state": state}), 202)
