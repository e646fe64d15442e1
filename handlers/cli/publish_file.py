"""Publishing events to the events topic from outside a worker (CLI, tools, tests).

Through the one publisher of a customer's records (``streams/publisher.py``:
keyed by ``customer_id``, on the customer's home partition of the topic's
partitions, acknowledged by the broker), over an idempotent aiokafka producer,
so events land on the partition their customer's view lives on.  Lines are
checked against the contract first; bad lines are reported with their line
number and, unless asked to, not sent (then as they are, unkeyed: a line that
is not an event names no customer).

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

from schemas.envelope import Event, InvalidEvent, decode_lines
from streams.publisher import HomePublisher, ProducerTopic
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
        publisher: HomePublisher | None = None  # made at the first event: the topic's partitions known
        pending = []
        for number, line, event in decode_lines(lines):
            refusal = _refusal(event, validate=validate, secret=secret)
            if refusal is not None:
                report.refused.append((number, refusal))
                continue
            if isinstance(event, InvalidEvent):  # sent as it is, as asked: unkeyed, it names no customer
                pending.append(await producer.send(topic, line))
            else:
                if publisher is None:
                    partitions = len(await producer.partitions_for(topic))
                    publisher = HomePublisher(ProducerTopic(producer, topic), partitions, secret=secret)
                pending.append(await publisher.enqueue(event.customer_id, line, signed=event.kind == "sla"))
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


def _refusal(event: Event | InvalidEvent, *, validate: bool, secret: bytes | None) -> str | None:
    """Why a line is not sent, or ``None``: a bad line (when validating), a step, an unsignable ack."""
    if isinstance(event, InvalidEvent):
        return str(event) if validate else None
    if event.kind != "sla":
        return None
    if event.event_type != ACKNOWLEDGEMENT:
        return f"{event.event_type}: step events are the SLA timers' own; not published"
    if not secret:
        return f"{event.event_type}: an acknowledgement needs the desk's secret to be signed"
    return None
