"""Publishing events to the events topic from outside a worker (CLI, tools, tests).

Uses an idempotent aiokafka producer keyed by ``customer_id`` with Kafka's
default partitioner, so events land on the partition their customer's view
lives on.  Lines are checked against the contract first; bad lines are reported
with their line number and, unless asked to, not sent.

Managers' acknowledgements in a file (an imported history) go to the events
topic like every other event of the item's log, in file order, signed with the
desk's secret (``streams/desk_signature.py``); without the secret they are
refused.  The timers' own step events (warnings, breaches, escalations, met)
are refused: the workers derive those from the log, and a copied one would be
a forgery (issue 9).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer

from schemas.envelope import InvalidEvent, decode_lines
from streams.desk_signature import signature_headers
from streams.topic_rules import ACKNOWLEDGEMENT


@dataclass
class PublishReport:
    """What a publish run did: lines sent, and the lines refused with reasons."""

    sent: int = 0
    refused: list[tuple[int, str]] = field(default_factory=list)


async def publish_lines(
    bootstrap: str,
    topic: str,
    lines: Iterable[bytes],
    *,
    validate: bool = True,
    secret: bytes | None = None,
    security: Mapping[str, Any] | None = None,
) -> PublishReport:
    """Send each non-blank line as one event; returns once the broker acked all.

    ``secret``: the desk's, to sign acknowledgements with (none: they are refused).
    ``security``: the producer's TLS/SASL options (``streams.kafka_security.client_options``).
    """
    report = PublishReport()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        max_batch_size=256 * 1024,
        **(security or {}),
    )
    await producer.start()
    try:
        pending = []
        for number, line, event in decode_lines(lines):
            key = None
            if isinstance(event, InvalidEvent):
                if validate:
                    report.refused.append((number, str(event)))
                    continue
            else:
                key = event.customer_id.encode()
            headers = None
            if not isinstance(event, InvalidEvent) and event.kind == "sla":
                if event.event_type != ACKNOWLEDGEMENT:
                    report.refused.append(
                        (number, f"{event.event_type}: step events are the SLA timers' own; not published")
                    )
                    continue
                if not secret:
                    report.refused.append(
                        (
                            number,
                            f"{event.event_type}: an acknowledgement needs the desk's secret to be signed",
                        )
                    )
                    continue
                headers = signature_headers(secret, line)
            pending.append(await producer.send(topic, line, key=key, headers=headers))
            report.sent += 1
            if len(pending) >= 10_000:
                for fut in pending:
                    await fut
                pending.clear()
        for fut in pending:
            await fut
    finally:
        await producer.stop()
    return report
