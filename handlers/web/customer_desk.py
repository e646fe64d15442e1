"""What the customer pages read and write, behind one narrow interface: :class:`CustomerDesk`.

A worker's pages read a customer from the worker that owns it and publish to
the customer's home partition through the same closures as the API
(``handlers/api/routes.DeskReads``): the view as ``GET /api/customers/{id}/view``
serves it, a step's outcome as ``?wait`` learns it, an acknowledgement checked
against the owner's clocks.  The archive's search and the compliance figures
are the API's and the report's own functions on the reporting database
(``list_customers``, ``compliance_report``), run off the event loop.

The browser tests give the pages another :class:`CustomerDesk`, one that folds
what is published into views in memory and projects it into SQLite with the
sink's writer (``tests/web/customer_desk_fixture.py``).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol
from urllib.parse import quote
from zoneinfo import ZoneInfo

import aiohttp
import orjson
import structlog
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from yarl import URL

from handlers.api.customer_search import ArchiveQuery, list_customers
from handlers.api.http_guard import BadRequest, Slots
from handlers.api.input_limits import ROUTED_READ_TIMEOUT_SECONDS
from handlers.api.routes import DeskReads
from handlers.reports.model import Figures
from handlers.reports.queries import compliance_report
from schemas.envelope import Event
from sla_rules import RuleSet
from streams.customer_view import present
from streams.publisher import HomePublisher

log = structlog.get_logger("keydesk.web")

#: searches and compliance figures at once per worker from the pages (each a database query)
MAX_CONCURRENT_PAGE_QUERIES = 4


def unavailable(what: str = "the worker owning this customer cannot answer now") -> BadRequest:
    return BadRequest(503, None, f"{what}; retry shortly", {"Retry-After": "1"})


class CustomerDesk(Protocol):
    """The reads and writes of the customer pages (the worker's, or the browser tests' in memory)."""

    zone: ZoneInfo

    def rules(self) -> RuleSet: ...

    async def view(self, customer_id: str) -> dict[str, Any] | None:
        """The one-stop view as the API serves it; ``None``: no events for the customer.
        Raises a 503 :class:`BadRequest` when its owner cannot say now."""

    async def search(self, query: ArchiveQuery, now: datetime) -> dict[str, Any]:
        """A page of the archive (``list_customers``)."""

    async def month(self, customer_id: str, now: datetime) -> Figures | None:
        """The customer's compliance figures for the local month of ``now``; ``None``: no database."""

    async def publish(self, event: Event, *, signed: bool = False) -> None: ...

    async def outcome(
        self, customer_id: str, kind: str, item_id: str, event_id: str, timeout: float
    ) -> dict[str, Any] | None:
        """What the owner's fold did with the event (``fold_outcome``), ``None`` if it cannot say in time."""

    async def acknowledgement(
        self, customer_id: str, kind: str, item_id: str, body: dict[str, Any], actor: str, source: str
    ) -> Event:
        """The checked acknowledgement event (the API's ``acknowledgement_event``)."""


def month_bounds(now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The local calendar month holding ``now``: its first instant and the next month's."""
    local = now.astimezone(zone)
    start = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    following = (start + timedelta(days=32)).replace(day=1)
    return start, following


@dataclass
class WorkerCustomerDesk:
    """:class:`CustomerDesk` of a worker: its API's routing, publisher, rules and reporting database."""

    reads: DeskReads
    publisher: HomePublisher
    rules_of: Any  # () -> RuleSet: the worker's rules
    zone: ZoneInfo
    engine: Engine

    def __post_init__(self) -> None:
        self.queries = Slots(MAX_CONCURRENT_PAGE_QUERIES, "page searches")

    def rules(self) -> RuleSet:
        rules: RuleSet = self.rules_of()
        return rules

    async def view(self, customer_id: str) -> dict[str, Any] | None:
        owners = self.reads.owners
        owner = owners.owner_of(customer_id)
        if owner is None:
            raise unavailable("this desk's workers are rebalancing")
        if owners.is_me(owner):
            if not owners.ready():
                raise unavailable("this worker is recovering its tables")
            view = owners.views.get(customer_id)
            return None if view is None else present(view, self.zone)
        target = owner.join(URL(f"/api/customers/{quote(customer_id, safe='')}/view", encoded=True))
        try:
            async with owners.http_client().get(
                target,
                headers=owners.hop(target),
                timeout=aiohttp.ClientTimeout(total=ROUTED_READ_TIMEOUT_SECONDS),
            ) as answer:
                status, body = answer.status, orjson.loads(await answer.read())
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            raise unavailable() from None
        if status == 404 and isinstance(body, dict) and body.get("field") == "customer_id":
            return None
        if status != 200 or not isinstance(body, dict):
            raise unavailable()
        return body

    async def _in_thread(self, work: Any, *args: Any, **kwargs: Any) -> Any:
        with self.queries.take():
            return await asyncio.to_thread(work, *args, **kwargs)

    async def search(self, query: ArchiveQuery, now: datetime) -> dict[str, Any]:
        try:
            page: dict[str, Any] = await self._in_thread(list_customers, self.engine, query, now)
        except SQLAlchemyError as exc:
            log.warning("web.search_failed", error=str(exc).splitlines()[0][:300])
            raise unavailable("the reporting database did not answer") from None
        return page

    async def month(self, customer_id: str, now: datetime) -> Figures | None:
        start, end = month_bounds(now, self.zone)
        try:
            report = await self._in_thread(
                compliance_report,
                self.engine,
                period_start=start,
                period_end=end,
                as_of=now,
                zone=self.zone,
                breach_limit=0,
                customer_id=customer_id,
            )
        except SQLAlchemyError as exc:  # no tables yet, or the database away: the page says so
            log.warning("web.compliance_failed", error=str(exc).splitlines()[0][:300])
            return None
        figures: Figures = report.total
        return figures

    async def publish(self, event: Event, *, signed: bool = False) -> None:
        await self.publisher.publish(event, signed=signed)

    async def outcome(
        self, customer_id: str, kind: str, item_id: str, event_id: str, timeout: float
    ) -> dict[str, Any] | None:
        found: dict[str, Any] | None = await self.reads.owner_outcome(
            customer_id, kind, item_id, event_id, timeout
        )
        return found

    async def acknowledgement(
        self, customer_id: str, kind: str, item_id: str, body: dict[str, Any], actor: str, source: str
    ) -> Event:
        event, _ = await self.reads.acknowledgement_event(customer_id, kind, item_id, body, actor, source)
        return event
