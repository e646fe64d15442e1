"""The HTTP API, served by every worker through faust's web server.

Writes (log a fault, open a ticket, place an order, post a raw event) become
validated events on the events topic; the answer is 202 once the broker has
acknowledged the event.  Reads of a customer's one-stop view are routed by
faust to the worker that owns that customer's partition, so any worker answers
for any customer.  Invalid requests get a 4xx whose body names the field.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from faust.web import Request, Response, View

from handlers.dispatch_queue import local_queue, queue_order
from schemas.envelope import InvalidEvent, event_from_dict, new_event, parse_instant, utc_iso
from schemas.event_catalogue import SOURCES
from streams.app import Streams
from sla_rules import evaluate, format_explanation
from streams.customer_view import ITEM_KINDS, find_item, present
from streams.item_sla import clock_history, item_facts
from streams.settings import Settings

MAX_WAIT_SECONDS = 10.0
_ENVELOPE_KEYS = {"customer_id", "actor", "source", "occurred_at"}


class BadRequest(Exception):
    """A request keydesk will not act on; ``field`` names the culprit."""

    def __init__(self, status: int, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.status, self.field, self.reason = status, field, reason


def new_entity_id(prefix: str) -> str:
    """A short id staff can read out on the phone: F-9K3M7Q2XWD."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    return f"{prefix}-" + "".join(secrets.choice(alphabet) for _ in range(10))


async def _json_body(request: Request) -> dict[str, Any]:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, None, f"body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest(400, None, "body must be a JSON object")
    return body


def command_to_event(body: dict[str, Any], event_type: str, id_field: str, id_prefix: str,
                     now: datetime, default_source: str = "hotline"):
    """Turn a command body (envelope keys + payload fields) into a validated event.

    Field errors name the request's own field (``severity``), not the payload path.
    """
    customer_id = body.get("customer_id")
    if not isinstance(customer_id, str) or not customer_id.strip():
        raise BadRequest(422, "customer_id", "is required and must be a non-empty string")
    entity_id = body.get(id_field) or new_entity_id(id_prefix)
    occurred_at = None
    if body.get("occurred_at") is not None:
        try:
            occurred_at = parse_instant(body["occurred_at"], "occurred_at")
        except InvalidEvent as exc:
            raise BadRequest(422, exc.field, exc.reason) from None
    payload = {k: v for k, v in body.items() if k not in _ENVELOPE_KEYS | {id_field}}
    try:
        event = new_event(event_type, customer_id, entity_id, payload,
                          source=body.get("source") or default_source,
                          actor=body.get("actor") or "hotline", occurred_at=occurred_at,
                          now=now)
    except InvalidEvent as exc:
        field = exc.field.removeprefix("payload.") if exc.field else None
        raise BadRequest(422, field, exc.reason) from None
    return event


def register_routes(streams: Streams, settings: Settings,
                    clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
    """Attach the API to the streams' faust app."""
    app, views = streams.app, streams.views

    def problem(view: View, exc: BadRequest) -> Response:
        return view.json({"error": exc.reason, "field": exc.field}, status=exc.status)

    async def publish(event) -> None:
        sent = await streams.events.send(key=event.customer_id.encode(), value=event.to_bytes(),
                                         key_serializer="raw", value_serializer="raw")
        await sent  # 202 means the broker has it, not that it sits in a buffer

    def command_view(event_type: str, id_field: str, id_prefix: str) -> type[View]:
        class CommandView(View):
            async def post(self, request: Request) -> Response:
                try:
                    body = await _json_body(request)
                    event = command_to_event(body, event_type, id_field, id_prefix, clock())
                except BadRequest as exc:
                    return problem(self, exc)
                await publish(event)
                return self.json({id_field: event.entity_id, "event_id": event.event_id,
                                  "customer_id": event.customer_id,
                                  "view": f"/api/customers/{event.customer_id}/view"},
                                 status=202)
        return CommandView

    app.page("/api/faults")(command_view("fault.reported", "fault_id", "F"))
    app.page("/api/tickets")(command_view("ticket.opened", "ticket_id", "T"))
    app.page("/api/orders")(command_view("order.received", "order_id", "O"))

    @app.page("/api/events")
    class RawEventView(View):
        """Any event of the catalogue, as its JSON envelope (what a Kafka client would send)."""

        async def post(self, request: Request) -> Response:
            try:
                body = await _json_body(request)
                try:
                    event = event_from_dict(body)
                except InvalidEvent as exc:
                    raise BadRequest(422, exc.field, exc.reason) from None
            except BadRequest as exc:
                return problem(self, exc)
            await publish(event)
            return self.json({"event_id": event.event_id, "customer_id": event.customer_id},
                             status=202)

    def ready() -> bool:
        """Rebalanced and recovered: the table holds every owned customer's latest view."""
        return not app.rebalancing and not getattr(app, "in_recovery", False)

    def recovering(web) -> Response:
        # Never answer from a half-recovered table: a stale view looks like a true one.
        return web.json({"error": "worker is rebalancing or recovering; retry shortly",
                         "field": None}, status=503, headers={"Retry-After": "1"})

    @app.page("/api/customers/{customer_id}/view")
    @app.table_route(table=views, match_info="customer_id")
    async def customer_view(web, request: Request, customer_id: str) -> Response:
        """The one-stop view; ``?wait_for=EVENT_ID&timeout=S`` waits until that event is in."""
        if not ready():
            return recovering(web)
        wait_for = request.query.get("wait_for")
        if wait_for:
            try:
                timeout = min(float(request.query.get("timeout", "2")), MAX_WAIT_SECONDS)
            except ValueError:
                return web.json({"error": "must be a number of seconds", "field": "timeout"},
                                status=422)
            if not await streams.processor.wait_for_event(customer_id, wait_for, timeout):
                return web.json({"error": f"event {wait_for} not in the view after {timeout} s",
                                 "field": "wait_for"}, status=504)
        view = views.get(customer_id)
        if view is None:
            return web.json({"error": f"no events for customer {customer_id}",
                             "field": "customer_id"}, status=404)
        return web.bytes(orjson.dumps(present(view, settings.zone)),
                         content_type="application/json")

    @app.page("/api/customers/{customer_id}/items/{kind}/{item_id}/sla")
    @app.table_route(table=views, match_info="customer_id")
    async def item_sla(web, request: Request, customer_id: str, kind: str,
                       item_id: str) -> Response:
        """Every clock of one item at ``?at=`` (default now), with its explanation."""
        if not ready():
            return recovering(web)
        if kind not in ITEM_KINDS:
            return web.json({"error": f"must be one of {', '.join(ITEM_KINDS)}",
                             "field": "kind"}, status=422)
        try:
            at = parse_instant(request.query["at"], "at") if "at" in request.query else clock()
        except InvalidEvent as exc:
            return web.json({"error": exc.reason, "field": exc.field}, status=422)
        view = views.get(customer_id)
        item = find_item(view, kind, item_id) if view else None
        if item is None:
            return web.json({"error": f"no {kind} {item_id} for customer {customer_id}",
                             "field": "item_id"}, status=404)
        facts, history = item_facts(view, item), clock_history(item)
        evaluation = evaluate(facts, history, streams.rules, at)
        return web.bytes(orjson.dumps({
            "evaluation": evaluation.to_dict(),
            "explanation": format_explanation(facts, evaluation, streams.rules)}),
            content_type="application/json")

    @app.page("/api/customers/{customer_id}/items/{kind}/{item_id}/acknowledge")
    class AcknowledgeView(View):
        """A manager acknowledges an escalation: later ladder steps of that cycle stop."""

        @app.table_route(table=views, match_info="customer_id")
        async def post(self, request: Request, customer_id: str, kind: str,
                       item_id: str) -> Response:
            if not ready():
                return recovering(self)
            try:
                body = await _json_body(request)
            except BadRequest as exc:
                return problem(self, exc)
            view = views.get(customer_id)
            item = find_item(view, kind, item_id) if view and kind in ITEM_KINDS else None
            if item is None:
                return self.json({"error": f"no {kind} {item_id} for customer {customer_id}",
                                  "field": "item_id"}, status=404)
            metric = body.get("metric")
            clocks = ((item.get("sla") or {}).get("metrics") or {})
            if metric not in clocks:
                return self.json({"error": f"must be one of the item's clocks: "
                                           f"{', '.join(sorted(clocks)) or 'none'}",
                                  "field": "metric"}, status=422)
            payload = {"item_kind": kind, "metric": metric,
                       "cycle": body.get("cycle") or clocks[metric].get("cycle") or 1}
            if body.get("note"):
                payload["note"] = body["note"]
            try:
                event = new_event("sla.escalation_acknowledged", customer_id, item_id, payload,
                                  source=body.get("source") or "account_manager",
                                  actor=body.get("actor") or "manager", now=clock())
            except InvalidEvent as exc:
                return problem(self, BadRequest(422, (exc.field or "").removeprefix("payload."),
                                                exc.reason))
            sent = await streams.processor.sla_topic.send(
                key=customer_id.encode(), value=event.to_bytes(),
                partition=streams.processor.home_partition(customer_id),
                key_serializer="raw", value_serializer="raw")
            await sent
            return self.json({"event_id": event.event_id, **payload}, status=202)

    @app.page("/api/dispatch-queue")
    async def dispatch_queue(web, request: Request) -> Response:
        """Open items across customers, most urgent first (零时延): every worker's, merged."""
        try:
            limit = max(1, min(int(request.query.get("limit", "50")), 1000))
        except ValueError:
            return web.json({"error": "must be a whole number", "field": "limit"}, status=422)
        now = clock()
        rows = local_queue(views, streams.processor, now)
        if request.query.get("local") != "1":
            for url in other_workers():
                try:
                    async with app.http_client.get(f"{url}/api/dispatch-queue",
                                                   params={"local": "1", "limit": str(limit)}) as r:
                        rows.extend((await r.json())["items"])
                except Exception as exc:  # a worker going away mid-rebalance: say so
                    return web.json({"error": f"worker {url} did not answer: {exc!r}",
                                     "field": None}, status=503, headers={"Retry-After": "1"})
        rows.sort(key=queue_order)
        return web.json({"as_of": utc_iso(now), "items": rows[:limit]})

    def other_workers() -> list[str]:
        me = str(app.conf.canonical_url).rstrip("/")
        hosts = {str(url).rstrip("/") for url in app.router.tables_metadata()}
        return sorted(h for h in hosts if h != me)

    @app.page("/api/sink")
    async def sink_status(web, request: Request) -> Response:
        """The SQL sink in this worker: state, records behind per partition, totals."""
        if streams.sink is None:
            return web.json({"error": "no SQL sink runs in this worker (KEYDESK_SINK=off)",
                             "field": None}, status=404)
        if streams.sink.status.state in ("running", "retrying"):
            await streams.sink.lag()
        return web.json(streams.sink.status.to_dict())

    @app.page("/api/health")
    async def health(web, request: Request) -> Response:
        """Liveness plus what this worker owns and has done."""
        assignment = app.assignor.assigned_actives() if app.assignor else set()
        return web.json({
            "status": "ok" if ready() else "recovering",
            "ready": ready(),
            "worker": str(app.conf.canonical_url),
            "events_topic": settings.events_topic,
            "partitions": sorted(tp.partition for tp in assignment
                                 if tp.topic == settings.events_topic),
            "processed": dict(streams.processor.stats),
            "sources": list(SOURCES),
        })
