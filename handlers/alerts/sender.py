"""Sending escalation alerts: a consumer of the SLA topic in every worker.

For each warning, breach or ladder step it routes alerts to the customer's
people (``routing.py``), sends each alert id once (``channels.py``), and
records every outcome on the item in the one-stop view, so whoever looks at the
customer sees who was told what and whether it arrived.  Alerts that still fail
after the dispatcher's retries go to ``<prefix>.alerts-failed`` with the reasons:
kept and visible, never lost.

Exactly once: alert ids are derived from the step (its event id) and the
recipient; an id already delivered is skipped, so a re-published step, a
restart or a rebalance sends nothing twice.  The narrow window that remains (a
crash after a send, before the outcome is recorded) repeats the same id, which
receivers can use to de-duplicate (``Message-ID``, ``Idempotency-Key``); the
outcome is flushed to the changelog before the next alert, so that window is
the few milliseconds between the receiver's acceptance and the broker's ack.
On a rebalance the sender hands over explicitly (:meth:`AlertSender.on_revoked`):
the revocation waits for the alert in flight to be sent and recorded, no new
alert starts until the rebalance is over, and then only if this worker still
owns the customer's partition; otherwise the new owner, which has recovered
every recorded outcome, sends it.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import faust
import orjson
import structlog

from handlers.alerts.channels import Dispatcher, EmailChannel, LogChannel, RetryPolicy, WebhookChannel
from handlers.alerts.routing import ALERTING_EVENTS, RoutingConfig, route
from schemas.envelope import InvalidEvent, decode_event, utc_iso
from streams.app import Streams
from streams.customer_view import find_item
from streams.event_batches import event_batches
from streams.partitioning import Placement
from streams.settings import Settings

log = structlog.get_logger("keydesk.alerts")
ALERTS_KEPT_PER_ITEM = 200


# One alert may hold its partition's alert stream (and a rebalance, which waits
# for events in hand) for at most ~3 x 5 s + 1 + 2 s; longer outages end on the
# alerts-failed topic instead of stalling every other customer's alerts.
HANDOVER_SECONDS = 30.0  # longer than one alert's retry budget below
IN_AGENT_RETRY = RetryPolicy(attempts=3, base_delay=1.0, max_delay=4.0)
CHANNEL_TIMEOUT = 5.0


def build_dispatcher(settings: Settings) -> Dispatcher:
    """Channels as configured: email only with an SMTP server, webhooks and the log always."""
    channels: list[Any] = [LogChannel()]
    if settings.alert_delivery == "send":
        channels.append(WebhookChannel(timeout=CHANNEL_TIMEOUT))
        if settings.smtp:
            host, _, port = settings.smtp.rpartition(":")
            channels.append(
                EmailChannel(
                    host,
                    int(port),
                    settings.smtp_from,
                    starttls=settings.smtp_starttls,
                    username=settings.smtp_user,
                    password=settings.smtp_password,
                    timeout=CHANNEL_TIMEOUT,
                )
            )
    return Dispatcher(channels, retry=IN_AGENT_RETRY)


class AlertSender:
    """Routes and sends the alerts of one SLA step event, once per alert id."""

    def __init__(
        self,
        streams: Streams,
        dispatcher: Dispatcher,
        failed: faust.TopicT,
        config: RoutingConfig | None = None,
        *,
        placement: Placement,
        sla_topic: str,
    ) -> None:
        self.app = streams.app
        self.partition_of = placement.home
        self.sla_topic = sla_topic  # its partitions' owners send their customers' alerts
        self.views = streams.views
        self.flush = streams.app.producer.flush
        self.idle = asyncio.Event()  # set while no alert is being sent
        self.idle.set()
        self.settled = asyncio.Event()  # set while no rebalance is under way
        self.settled.set()
        self.stats = streams.processor.stats  # shown by /api/health
        self.dispatcher = dispatcher
        self.failed = failed
        self.config = config or RoutingConfig()

    async def on_revoked(self) -> None:
        """Rebalance begins: stop starting alerts, let the one in flight finish."""
        self.settled.clear()
        try:
            await asyncio.wait_for(self.idle.wait(), HANDOVER_SECONDS)
        except TimeoutError:
            log.warning("alert.handover_timeout", seconds=HANDOVER_SECONDS)

    def on_settled(self) -> None:
        """Rebalance done (and tables recovered): alerts may go out again."""
        self.settled.set()

    async def _may_send(self, customer_id: str) -> bool:
        await self.settled.wait()
        partition = self.partition_of(customer_id)
        return any(
            tp.topic == self.sla_topic and tp.partition == partition
            for tp in self.app.assignor.assigned_actives()
        )

    async def handle(self, raw: bytes) -> int | None:
        """Send what a step event calls for; returns how many alerts were sent now.

        ``None``: this worker no longer owns the customer's partition, and the
        step (left unacked by the caller) is the new owner's to send.
        """
        try:
            event = decode_event(raw)
        except InvalidEvent:
            return 0  # the fold agent dead-letters it
        if event.event_type not in ALERTING_EVENTS:
            return 0
        customer_id, kind, item_id = event.customer_id, event.payload["item_kind"], event.entity_id
        view = self.views.get(customer_id)
        item = find_item(view, kind, item_id) if view else None
        sent = 0
        for alert in route(event, (view or {}).get("profile"), item, self.config):
            # Re-read after every await: the fold may have replaced the item meanwhile.
            item = self.views.find_item(customer_id, kind, item_id)
            if item is not None and _delivered(item, alert.alert_id):
                continue
            if not await self._may_send(event.customer_id):
                log.info("alert.left_to_new_owner", alert_id=alert.alert_id, customer_id=event.customer_id)
                return None
            self.idle.clear()
            try:
                sent += await self._send(event, alert)
            finally:
                self.idle.set()
        return sent

    async def handle_or_keep(self, raw: bytes) -> int | None:
        """:meth:`handle`, and a step it cannot handle is kept on the failed-alerts topic.

        A bug in routing one step must not stop the alerts of every customer
        behind it on the partition, nor vanish: it is kept with the reason.
        """
        try:
            return await self.handle(raw)
        except Exception as exc:
            log.exception("alert.step_failed")
            self.stats["alert_steps_failed"] += 1
            await self.failed.send(
                key=None,
                key_serializer="raw",
                value_serializer="raw",
                value=orjson.dumps(
                    {
                        "step": raw.decode(errors="replace"),
                        "reason": repr(exc)[:1000],
                        "failed_at": utc_iso(datetime.now(UTC)),
                    }
                ),
            )
            return 0

    async def _send(self, event, alert) -> int:
        """Dispatch one alert, record the outcome durably, keep what failed.

        The outcome is written into the item as it is *after* the dispatch (it
        is looked up again, no await in between), and only the item's alerts
        change: the sender owns nothing else of the view.
        """
        usable = tuple(c for c in alert.channels if c in self.dispatcher.channels)
        report = await self.dispatcher.dispatch(_with_channels(alert, usable))
        outcome = {
            r.channel: {"status": str(r.status), "attempts": r.attempts, "reason": r.reason}
            for r in report.results
        }
        customer_id, kind = event.customer_id, event.payload["item_kind"]
        item = self.views.find_item(customer_id, kind, event.entity_id)
        if item is not None:
            _record(item, alert, outcome, report.delivered)
            # Durable before the next alert: a crash now repeats nothing sent.
            self.views.save_item(customer_id, kind, event.entity_id)
            await self.flush()
            self.stats["alerts_recorded"] += 1  # durable: in the changelog
        if report.failures:
            await self.failed.send(
                key=event.customer_id.encode(),
                key_serializer="raw",
                value_serializer="raw",
                value=orjson.dumps(
                    {"alert": alert.to_dict(), "outcome": outcome, "failed_at": utc_iso(datetime.now(UTC))}
                ),
            )
            log.warning(
                "alert.kept_failed", alert_id=alert.alert_id, customer_id=event.customer_id, outcome=outcome
            )
        return 1


def _with_channels(alert, channels):
    return replace(alert, channels=channels)


def _delivered(item: dict[str, Any], alert_id: str) -> bool:
    return any(a["alert_id"] == alert_id and a["delivered"] for a in item.get("alerts", ()))


def _record(item: dict[str, Any], alert, outcome: dict, delivered: bool) -> None:
    alerts = item.setdefault("alerts", [])
    alerts[:] = [a for a in alerts if a["alert_id"] != alert.alert_id]
    alerts.append(
        {
            "alert_id": alert.alert_id,
            "event_id": alert.event_id,
            "event_type": alert.event_type,
            "recipient": alert.recipient.name,
            "role": alert.recipient.role,
            "copy": alert.copy,
            "delivered": delivered,
            "channels": outcome,
            "at": utc_iso(datetime.now(UTC)),
        }
    )
    del alerts[:-ALERTS_KEPT_PER_ITEM]


def register_alert_agent(
    streams: Streams, settings: Settings, placement: Placement, sla_topic: faust.TopicT
) -> AlertSender:
    """The ``send-alerts`` agent on ``sla_topic``, and the failed-alerts topic."""
    app = streams.app
    failed = app.topic(
        settings.alerts_failed_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    sender = AlertSender(
        streams, build_dispatcher(settings), failed, placement=placement, sla_topic=sla_topic.get_topic_name()
    )

    # At a revocation the alert in flight finishes and records its outcome
    # *before* the views are dropped (streams/sla_agents.py runs this hook first).
    streams.processor.before_drop.append(sender.on_revoked)

    @app.on_rebalance_complete.connect
    async def _resume(sender_app, **kwargs) -> None:
        sender.on_settled()

    sender.hooks = (_resume,)  # keep the receiver referenced with the sender

    @app.agent(sla_topic, name="send-alerts")
    async def send_alerts(stream):
        """Alerts go out one step at a time, in the order steps became due.

        A step is acked only once its alerts are sent and recorded, and never
        skipped unacked-as-done on a rebalance (see ``streams.event_batches``).
        """
        async for batch in event_batches(stream, 1, idle=0.0, linger=0.0, stats=streams.processor.stats):
            for event in list(batch):
                if await sender.handle_or_keep(event.message.value) is None:
                    batch.remove(event)  # not ours any more: unacked, the new owner sends

    return sender
