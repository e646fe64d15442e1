"""What ``keydesk up`` does once its worker is processing: samples, a banner, a demo."""

from __future__ import annotations

import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from handlers.api.commands import command_to_event
from schemas.envelope import decode_event
from streams.app import Streams
from streams.settings import Settings

log = structlog.get_logger("keydesk.up")
DEMO_CUSTOMER = "C-GOV-001"


def announce_when_ready(
    settings: Settings,
    *,
    samples: Path | None,
    demo: bool,
    own_broker: bool,
    identity_lines: list[str] | None = None,
) -> Callable[[Streams], Awaitable[None]]:
    async def on_ready(streams: Streams) -> None:
        customers: set[str] = set()
        if samples is not None:
            # Fixed event ids: loading the samples again on every start changes nothing.
            # A customer's registration, then its archive (contacts, services, staff ids).
            for line in samples.read_bytes().splitlines():
                if line.strip():
                    customer_id = decode_event(line).customer_id
                    await streams.publisher.publish_bytes(customer_id, line)
                    customers.add(customer_id)
        loaded = len(customers)
        http = str(streams.app.conf.canonical_url).rstrip("/")
        out = sys.stdout
        out.write(
            "\nkeydesk is up\n"
            f"  Kafka       {settings.kafka}{' (own Apache Kafka broker)' if own_broker else ''}"
            f", topic {settings.events_topic}, dead letters {settings.dead_letter_topic}\n"
            f"  HTTP API    {http}/api/health\n"
            f"  database    {settings.database_url} "
            f"({'fed by the sink' if settings.sink == 'on' else 'KEYDESK_SINK=off'}; keydesk db status)\n"
            f"  a view      {http}/api/customers/{DEMO_CUSTOMER}/view\n"
            f"  samples     {loaded} key-account customers loaded\n"
            + "".join(f"{line}\n" for line in identity_lines or ())
            + "  sign in     keydesk login (or KEYDESK_TOKEN=<token>; tokens: keydesk token create)\n"
            f"  log a fault keydesk fault log --customer {DEMO_CUSTOMER} --severity critical "
            "--service 'MPLS VPN' --summary '专线中断' --wait\n"
            "  Ctrl-C stops the worker and the broker.\n"
        )
        out.flush()
        if demo:
            await _demo(streams, http, settings)

    return on_ready


async def _demo(streams: Streams, http: str, settings: Settings) -> None:
    """Log one fault the way the hotline does and show it arriving in the view."""
    started = time.perf_counter()
    event = command_to_event(
        {
            "customer_id": DEMO_CUSTOMER,
            "severity": "critical",
            "service": "MPLS VPN",
            "summary": "省政府专网 MPLS VPN 中断 (demo)",
            "circuit_id": "GZ-MPLS-0001",
        },
        "fault.reported",
        "fault_id",
        "F",
        datetime.now(UTC),
        actor="hotline-demo",  # published by `keydesk up` itself, not through the API
        source="hotline",
    )
    sent = await streams.publisher.publish(event)
    arrived = await streams.processor.wait_for_event(DEMO_CUSTOMER, event.event_id, 10.0)
    elapsed_ms = (time.perf_counter() - started) * 1000
    fault = streams.views.get(DEMO_CUSTOMER)["open"]["fault"].get(event.entity_id) if arrived else None
    sys.stdout.write(
        f"\ndemo: logged fault {event.entity_id} for {DEMO_CUSTOMER}; "
        + (
            f"in the one-stop view after {elapsed_ms:.0f} ms, state {fault['state']}\n"
            f"  keydesk view {DEMO_CUSTOMER}, or curl -s -H 'Authorization: Bearer <token>' "
            f"{http}/api/customers/{DEMO_CUSTOMER}/view\n"
            if fault
            else "NOT in the view after 10 s\n"
        )
    )
    if streams.sink is not None:
        today = datetime.now(settings.zone).date()
        try:
            await streams.sink.wait_until_stored(
                {(sent.topic_partition.topic, sent.topic_partition.partition): sent.offset + 1}, timeout=30
            )
            sys.stdout.write(
                f"  in the reporting database after {(time.perf_counter() - started) * 1000:.0f}"
                " ms, with its SLA clocks\n"
                f"  keydesk report compliance --from {today} --to {today + timedelta(days=1)} "
                "--group-by tier\n"
            )
        except TimeoutError:
            sys.stdout.write(f"  NOT in the reporting database after 30 s: {streams.sink.status.to_dict()}\n")
    sys.stdout.flush()
