"""The HTTP API, served by every worker through faust's web server.

Writes (log a fault, open a ticket, place an order, take a step of an item's
loop, post a raw event, acknowledge an escalation) are taken by whichever
worker receives them: it validates the body and publishes the event, and
answers 202 once the broker has acknowledged it (a step asked to ``wait``
answers with the owner's outcome instead, learnt by a routed read).  Writes
are never forwarded by faust's table routing, which passes on a request's
method and headers but not its body (faust 0.15.3, ``Router._route_req``):
the owner waited for a body that never came (issue 9).
Only reads are routed: a customer's one-stop view and an item's clocks are
answered by the worker that owns the customer's partition, so any worker
answers for any customer.  keydesk routes them itself (``routed_read`` in
:func:`register_routes`), not through ``@app.table_route``: faust finds the
owner through the producer's metadata for the table's changelog topic, which a
worker that has not written to that topic lacks (a ``TypeError``: a 500); and it
forwards every request header while dropping the answer's.  Every refusal is a
4xx whose body names the field; the bounds are in ``handlers/api/input_limits.py``,
their enforcement in ``handlers/api/http_guard.py``.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
from faust.web import Request, Response, View
from yarl import URL

from handlers.api.actions import CREATIONS, Creation, fold_outcome
from handlers.api.commands import acknowledgement
from handlers.api.customer_archive import ArchiveDesk, OwnerReads, register_customer_archive_routes
from handlers.api.customer_services import register_customer_service_routes
from handlers.api.dispatch_queue import register_dispatch_queue_route
from handlers.api.escalations_sent import from_json, sent_steps, to_json
from handlers.api.http_guard import (
    BadRequest,
    Slots,
    error_body,
    install_http_guard,
    read_body,
    read_json_object,
)
from handlers.api.input_limits import (
    MAX_CONCURRENT_WAITS,
    OWNER_CHECK_TIMEOUT_SECONDS,
    ROUTED_READ_TIMEOUT_SECONDS,
)
from handlers.api.item_creation import new_item_event
from handlers.api.item_steps import register_item_step_routes
from handlers.api.openapi_document import document_bytes
from handlers.api.operations import operation
from handlers.api.worker_health import WorkerHealth
from handlers.identity.guard import IdentityGuard, audit_change, author, identity_of, refuse
from handlers.identity.hop import ROUTED_HEADER, hop_headers
from handlers.identity.roles import SentStep, may_acknowledge
from schemas.envelope import Event, InvalidEvent, decode_event, new_event
from schemas.event_catalogue import SOURCES
from sla_rules import evaluate, format_explanation
from streams.app import Streams
from streams.customer_view import find_item, present, present_item
from streams.item_sla import clock_history, item_facts
from streams.partitioning import Placement
from streams.publisher import HomePublisher
from streams.settings import Settings

__all__ = ["DeskReads", "register_routes"]


@dataclasses.dataclass(frozen=True)
class DeskReads:
    """What the web desk's pages need of the API's routing (``handlers/web/customer_desk.py``).

    The same closures the API's handlers use, so a page reads a customer from
    its owner, checks an acknowledgement and learns a step's outcome exactly as
    the API does, with no second copy.
    """

    owners: OwnerReads
    acknowledgement_event: Callable[..., Awaitable[tuple[Event, bool]]]
    owner_outcome: Callable[..., Awaitable[dict[str, Any] | None]]
    acknowledge: Callable[[Request, str, str, str, dict[str, Any]], Awaitable[tuple[Event, bool]]]
    archive: ArchiveDesk


def _item_clocks(item: dict[str, Any]) -> dict[str, int]:
    """Each clock of an item as stored in the view, with its current cycle."""
    metrics = (item.get("sla") or {}).get("metrics") or {}
    return {name: int(m.get("cycle") or 1) for name, m in metrics.items()}


@dataclasses.dataclass(frozen=True, slots=True)
class OwnerClocks:
    """An item's clocks as its owner knows them, and the ladder steps it has sent."""

    #: metric: its current cycle
    clocks: dict[str, int]
    #: ``None``: the owner's answer did not say (an account manager's acknowledgement waits for it)
    sent: list[SentStep] | None


def register_routes(
    streams: Streams,
    settings: Settings,
    publisher: HomePublisher,
    placement: Placement,
    identity: IdentityGuard,
    worker_health: WorkerHealth,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> DeskReads:
    """Attach the API, and the guards every route runs behind, to the streams' faust app.

    Returns the reads and the acknowledgement of an escalation the web desk's pages call too
    (:class:`DeskReads`): one way to read an owner's customer, one way to acknowledge.

    Writes go out through ``publisher`` (to the customer's home partition, 202
    once the broker has them); reads are routed by ``placement``.  ``identity``
    authenticates and authorizes every request (``handlers/identity/guard.py``);
    what a write publishes names the caller as its ``actor`` and ``source``.  Answers the
    customer archive's writes and reads, for the web desk's admin pages.
    ``worker_health`` says whether this worker may answer from its views, and
    is ``/api/health``'s verdict.
    """
    app, views = streams.app, streams.views
    install_http_guard(app, [identity.middleware()])
    hop_key = identity.hop_key
    # The faust table whose partition owners serve a customer's reads.
    routing = views.customers
    waits = Slots(MAX_CONCURRENT_WAITS, "read-your-writes waits")

    def command_view(creation: Creation) -> type[View]:
        class CommandView(View):
            async def post(self, request: Request) -> Response:
                event = await new_item_event(request, creation, await read_json_object(request), clock())
                await publisher.publish(event)
                return self.json(
                    {
                        creation.id_field: event.entity_id,
                        "event_id": event.event_id,
                        "customer_id": event.customer_id,
                        "view": f"/api/customers/{event.customer_id}/view",
                    },
                    status=202,
                )

        return CommandView

    for creation in CREATIONS.values():
        app.page(f"/api/{creation.collection}")(command_view(creation))

    @app.page("/api/events")
    class RawEventView(View):
        """Any customer, fault, ticket or order event, as its JSON envelope.

        Checked as a Kafka producer's bytes would be; its ``actor`` and
        ``source`` are then replaced by the caller's (an integration token: its
        name and its configured source), who must be allowed that event type
        for that customer.
        """

        async def post(self, request: Request) -> Response:
            body = operation("post_event").check_body(await read_json_object(request))  # 400: not an object
            if str(body.get("event_type")).startswith("sla."):  # the timers' own, or the ack's
                raise BadRequest(
                    422,
                    "event_type",
                    "SLA events are written by keydesk's "
                    "timers; acknowledge through POST /api/customers/{id}/items/"
                    "{kind}/{item_id}/acknowledge",
                )
            try:  # the bytes, as a Kafka producer's: the wire's rules, duplicate keys included
                event = decode_event(await read_body(request))
            except InvalidEvent as exc:
                raise BadRequest(422, exc.field, exc.reason) from None
            actor, source = await author(request, event.event_type, event.customer_id)
            event = dataclasses.replace(event, actor=actor, source=source)
            await publisher.publish(event)
            if event.event_type.startswith("customer."):
                # A change of the archive, as POST/PATCH /api/customers audit theirs (no "before"
                # here: a raw event is not read against the owner's record first).
                await audit_change(
                    request,
                    event.event_type,
                    event.customer_id,
                    after={"event_id": event.event_id, **event.payload},
                )
            return self.json({"event_id": event.event_id, "customer_id": event.customer_id}, status=202)

    ready = worker_health.ready

    def recovering(web) -> Response:
        # Never answer from a half-recovered table: a stale view looks like a true one.
        return web.json(
            error_body("worker is rebalancing or recovering; retry shortly", None),
            status=503,
            headers={"Retry-After": "1"},
        )

    def is_me(url: URL) -> bool:
        me = URL(str(app.conf.canonical_url))
        return (url.host, url.port) == (me.host, me.port)

    def owner_of(customer_id: str) -> URL | None:
        """The worker whose active partitions hold the customer; ``None`` before assignment."""
        partition = placement.home(customer_id)
        topic = routing.changelog_topic.get_topic_name()
        for url, topics in app.router.table_metadata(routing.name).items():
            if partition in topics.get(topic, ()):
                return URL(str(url))
        return None

    def routed_read(handler: Callable[..., Awaitable[Response]]):
        """Answer here if this worker owns the customer, else ask the owner: GETs only.

        Only the path and query travel (no body, no caller's headers); the
        owner's status, body, content type and ``Retry-After`` come back.
        """

        @functools.wraps(handler)
        async def read(web, request: Request, customer_id: str, **kwargs) -> Response:
            owner = owner_of(customer_id)
            if owner is not None and is_me(owner):
                return await handler(web, request, customer_id, **kwargs)
            if owner is None or ROUTED_HEADER in request.headers:  # no owner, or a loop
                return recovering(web)
            target = owner.join(request.rel_url)
            async with app.http_client.get(target, headers=hop_headers(hop_key, target)) as answer:
                body = await answer.read()
                headers = {"Content-Type": answer.headers.get("Content-Type", "application/json")}
                if "Retry-After" in answer.headers:
                    headers["Retry-After"] = answer.headers["Retry-After"]
                return web.bytes(body, status=answer.status, headers=headers)

        return read

    @app.page("/api/customers/{customer_id}/view")
    @routed_read
    async def customer_view(web, request: Request, customer_id: str) -> Response:
        """The one-stop view; ``?wait_for=EVENT_ID&timeout=S`` waits until that event is in."""
        asked = operation("get_customer_view").read(request)
        if not ready():
            return recovering(web)
        if asked["wait_for"] is not None:
            event_id, timeout = asked["wait_for"], asked["timeout"]
            with waits.take():
                arrived = await streams.processor.wait_for_event(customer_id, event_id, timeout)
            if not arrived:  # not a 5xx: this worker did its job, the event is not (yet) there
                return web.json(
                    error_body(f"event {event_id} not in the view after {timeout:g} s", "wait_for"),
                    status=404,
                )
        view = views.get(customer_id)
        if view is None:
            return web.json(error_body(f"no events for customer {customer_id}", "customer_id"), status=404)
        return web.bytes(orjson.dumps(present(view, settings.zone)), content_type="application/json")

    @app.page("/api/customers/{customer_id}/items/{kind}/{item_id}/sla")
    @routed_read
    async def item_sla(web, request: Request, customer_id: str, kind: str, item_id: str) -> Response:
        """Every clock of one item at ``?at=`` (default now), with its explanation."""
        asked = operation("get_item_sla").read(request)
        if not ready():
            return recovering(web)
        at = asked["at"] or clock()
        view = views.get(customer_id)
        item = find_item(view, kind, item_id) if view else None
        if item is None:
            return web.json(
                error_body(f"no {kind} {item_id} for customer {customer_id}", "item_id"), status=404
            )
        facts, history = item_facts(view, item), clock_history(item)
        evaluation = evaluate(facts, history, streams.rules, at)
        return web.bytes(
            orjson.dumps(
                {
                    "evaluation": evaluation.to_dict(),
                    "explanation": format_explanation(facts, evaluation, streams.rules),
                    # what an acknowledgement taken by another worker is checked against
                    "escalations_sent": to_json(sent_steps(view.get("profile"), item)),
                }
            ),
            content_type="application/json",
        )

    async def owner_clocks(customer_id: str, kind: str, item_id: str) -> OwnerClocks | None:
        """The item's clocks (metric: current cycle) as its owner knows them, and the steps it sent.

        ``None`` when the owner cannot tell now (rebalancing, recovering, not
        answering within the check's deadline); a 404 when it says there is no
        such item.  On another worker this is a routed *read* (a GET, no body).
        """
        owner = owner_of(customer_id)
        if owner is None:
            return None
        if is_me(owner):
            if not ready():
                return None
            view = views.get(customer_id)
            item = find_item(view, kind, item_id) if view else None
            if item is None:
                raise BadRequest(404, "item_id", f"no {kind} {item_id} for customer {customer_id}")
            return OwnerClocks(_item_clocks(item), sent_steps(view.get("profile"), item))
        path = f"/api/customers/{quote(customer_id, safe='')}/items/{kind}/{quote(item_id, safe='')}/sla"
        target = owner.join(URL(path, encoded=True))
        try:
            async with app.http_client.get(
                target,
                headers=hop_headers(hop_key, target),
                timeout=aiohttp.ClientTimeout(total=OWNER_CHECK_TIMEOUT_SECONDS),
            ) as answer:
                found = orjson.loads(await answer.read())
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return None
        if not isinstance(found, dict):
            return None
        if status == 404 and found.get("field") == "item_id":
            raise BadRequest(404, "item_id", f"no {kind} {item_id} for customer {customer_id}")
        if status != 200:
            return None
        try:
            clocks = {name: int(m.get("cycle") or 1) for name, m in found["evaluation"]["metrics"].items()}
        except (KeyError, TypeError, AttributeError, ValueError):  # not what our owner sends
            return None
        return OwnerClocks(clocks, from_json(found.get("escalations_sent")))

    async def acknowledgement_event(
        request: Request,
        customer_id: str,
        kind: str,
        item_id: str,
        body: dict[str, Any],
        actor: str,
        source: str,
    ) -> tuple[Event, bool]:
        """An acknowledgement, checked against the owner's clocks: the event and ``item_checked``.

        The caller (``author`` has allowed them acknowledgements for this
        customer) must also be one this clock's escalation may be acknowledged
        by: an account manager only once a step of that cycle was addressed to
        them, as the owner says (``roles.may_acknowledge``).
        """
        metric, cycle, extra = acknowledgement(body, kind)
        owner = await owner_clocks(customer_id, kind, item_id)
        clocks = owner.clocks if owner is not None else None
        if clocks is not None and metric not in clocks:
            raise BadRequest(
                422, "metric", f"must be one of the item's clocks: {', '.join(sorted(clocks)) or 'none'}"
            )
        if cycle is None and clocks is None:
            # Which cycle runs is the owner's to say; guessing 1 would leave a
            # reopened item's ladder running behind a 202.
            raise BadRequest(
                503,
                "cycle",
                "the worker owning this customer cannot say "
                "which cycle of the clock runs right now; retry, or give "
                "cycle",
                {"Retry-After": "1"},
            )
        payload = {"item_kind": kind, "metric": metric, "cycle": cycle or clocks[metric]}
        caller = identity_of(request)
        if caller is None:  # author() lets no hop or anonymous request this far; never publish unnamed
            raise BadRequest(403, None, "an acknowledgement needs a signed-in user")
        allowed = may_acknowledge(caller, metric, payload["cycle"], owner.sent if owner else None)
        if not allowed and (owner is None or owner.sent is None):
            raise BadRequest(503, None, allowed.reason, {"Retry-After": "1"})
        if not allowed:
            await refuse(request, customer_id, allowed.reason, "metric")
        if "note" in extra:
            payload["note"] = extra["note"]
        try:
            event = new_event(
                "sla.escalation_acknowledged",
                customer_id,
                item_id,
                payload,
                source=source,
                actor=actor,
                now=clock(),
            )
        except InvalidEvent as exc:
            raise BadRequest(422, (exc.field or "").removeprefix("payload.") or None, exc.reason) from None
        return event, clocks is not None

    @app.page("/api/customers/{customer_id}/items/{kind}/{item_id}/acknowledge")
    class AcknowledgeView(View):
        """A manager acknowledges an escalation: later ladder steps of that cycle stop.

        Taken by any worker (no table routing: see the module's docstring) and
        published to the events topic on the customer's home partition, in
        order with the item's other events and signed with the desk's secret
        (``streams/desk_signature.py``), where the owner folds it into the
        item's ``sla_log``.
        """

        async def post(self, request: Request, customer_id: str, kind: str, item_id: str) -> Response:
            operation("acknowledge_escalation").read(request)
            body = await read_json_object(request)
            event, checked = await acknowledge(request, customer_id, kind, item_id, body)
            return self.json(
                {"event_id": event.event_id, **event.payload, "item_checked": checked}, status=202
            )

    async def acknowledge(
        request: Request, customer_id: str, kind: str, item_id: str, body: dict[str, Any]
    ) -> tuple[Event, bool]:
        """The one acknowledgement of an escalation, the API's and the web desk's inbox's: the body
        checked, the caller authorized for the customer, the owner's clocks checked, published signed."""
        body = operation("acknowledge_escalation").check_body(body)
        actor, source = await author(request, "sla.escalation_acknowledged", customer_id)
        event, checked = await acknowledgement_event(request, customer_id, kind, item_id, body, actor, source)
        await publisher.publish(event, signed=True)
        return event, checked

    @app.page("/api/customers/{customer_id}/items/{kind}/{item_id}/events/{event_id}")
    @routed_read
    async def item_event(web, request: Request, customer_id: str, kind: str, item_id: str, event_id: str):
        """What the owner's fold did with one event of the item, ``?timeout=S`` waiting for it.

        The read behind an action's ``wait`` (``POST /api/{kind}s/{id}/{action}``):
        a worker that took the write asks the owner here (a GET, no body).
        """
        asked = operation("get_item_event_outcome").read(request)
        if not ready():
            return recovering(web)
        event_id, timeout = asked["event_id"], asked["timeout"]
        with waits.take():
            await streams.processor.wait_for_event(customer_id, event_id, timeout)
        found = fold_outcome(views.get(customer_id), kind, item_id, event_id)
        if found is None:  # a 404, not a 504: nothing failed, the event is not (yet) in the item
            return web.json(
                error_body(f"event {event_id} not in {kind} {item_id} after {timeout:g} s", "event_id"),
                status=404,
            )
        return web.bytes(
            orjson.dumps({**found, "item": present_item(found["item"], settings.zone)}),
            content_type="application/json",
        )

    async def owner_outcome(
        customer_id: str, kind: str, item_id: str, event_id: str, timeout: float
    ) -> dict[str, Any] | None:
        """The owner's fold outcome of an event once folded, or ``None`` if it cannot say in time."""
        owner = owner_of(customer_id)
        if owner is None:
            return None
        if is_me(owner):
            if not ready():
                return None
            try:
                with waits.take():
                    await streams.processor.wait_for_event(customer_id, event_id, timeout)
            except BadRequest:  # no wait slot: the step is published all the same, say so (202)
                return None
            found = fold_outcome(views.get(customer_id), kind, item_id, event_id)
            return None if found is None else {**found, "item": present_item(found["item"], settings.zone)}
        path = (
            f"/api/customers/{quote(customer_id, safe='')}/items/{kind}/"
            f"{quote(item_id, safe='')}/events/{event_id}?timeout={timeout:g}"
        )
        target = owner.join(URL(path, encoded=True))
        try:
            async with app.http_client.get(
                target,
                headers=hop_headers(hop_key, target),
                timeout=aiohttp.ClientTimeout(total=ROUTED_READ_TIMEOUT_SECONDS),
            ) as answer:
                found = orjson.loads(await answer.read())
                status = answer.status
        except (aiohttp.ClientError, TimeoutError, orjson.JSONDecodeError):
            return None
        if (
            status != 200
            or not isinstance(found, dict)
            or found.get("outcome") not in ("applied", "rejected")
        ):
            return None
        return found

    register_item_step_routes(app, publisher, clock, acknowledgement_event, owner_outcome)
    owners = OwnerReads(
        routed_read=routed_read,
        owner_of=owner_of,
        is_me=is_me,
        ready=ready,
        views=views,
        wait_for_event=streams.processor.wait_for_event,
        waits=waits,
        http_client=lambda: app.http_client,
        hop=lambda target: hop_headers(hop_key, target),
    )
    archive = register_customer_archive_routes(app, publisher, owners, settings.database_url, clock)
    register_customer_service_routes(app, publisher, archive.owner_record, settings.database_url, clock)

    register_dispatch_queue_route(app, views, placement, clock, hop_key)

    @app.page("/api/sink")
    async def sink_status(web, request: Request) -> Response:
        """The SQL sink in this worker: state, records behind per partition, totals."""
        if streams.sink is None:
            return web.json(
                error_body("no SQL sink runs in this worker (KEYDESK_SINK=off)", None), status=404
            )
        if streams.sink.status.state in ("running", "retrying"):
            await streams.sink.lag()
        return web.json(streams.sink.status.to_dict())

    @app.page("/api/openapi.json")
    async def openapi_document(web, request: Request) -> Response:
        """This API's OpenAPI 3.1 document, generated from the declarations the handlers validate with."""
        return web.bytes(document_bytes(), content_type="application/json")

    @app.page("/api/health")
    async def health(web, request: Request) -> Response:
        """The truth about this worker (handlers/api/worker_health.py), what it owns and has done."""
        assignment = app.assignor.assigned_actives() if app.assignor else set()
        status, verdict = await worker_health.report()
        return web.json(
            {
                **verdict,
                "worker": str(app.conf.canonical_url),
                "events_topic": settings.events_topic,
                "partitions": sorted(tp.partition for tp in assignment if tp.topic == settings.events_topic),
                "processed": dict(streams.processor.stats),
                "sources": list(SOURCES),
            },
            status=status,
        )

    return DeskReads(owners, acknowledgement_event, owner_outcome, acknowledge, archive)
