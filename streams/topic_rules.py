"""Which events belong on which topic: one rule for the worker's fold and the SQL sink.

SLA step events (warnings, breaches, escalations, met) are keydesk's timers' own
and travel on ``<prefix>.sla``.  The same event on the events topic is a forgery
or a mistake (issue 9: a forged breach showed in the view and in ``sla_steps``
while the real clock was pending), and anything else on the SLA topic does not
belong there either, except a manager's acknowledgement (older versions wrote
them there; they are still read).

Acknowledgements are written to the events topic, signed with the desk's
secret (``streams/desk_signature.py``): a manager's act is part of the item's
log, and must be ordered with its other events on the customer's partition.
On the SLA topic it met the events in whatever order the worker happened to
fetch the two topics, so whether a ladder step due after it was published
depended on that (issue 10: a replay-clock worker published ladder steps that
`keydesk replay`, reading the same file in order, had stopped).  Unsigned on
the events topic, it is a forgery or a mistake like a step there.  The worker
dead-letters such a record with the reason; the sink, which reads the same
topics, refuses it so it never reaches the reports.  Topic ACLs (who may write
``<prefix>.sla``) stay the cluster's business.
"""

from __future__ import annotations

from schemas.envelope import Event

SLA_TOPIC_SUFFIX = ".sla"
ACKNOWLEDGEMENT = "sla.escalation_acknowledged"  # a manager's, not a timer's


def is_sla_topic(topic: str) -> bool:
    """Whether ``topic`` is a deployment's SLA topic (``<prefix>.sla``)."""
    return topic.endswith(SLA_TOPIC_SUFFIX)


def misplaced(event: Event, topic: str, signed: bool = False) -> str | None:
    """Why ``event`` may not be taken from ``topic``, or ``None`` when it may.

    ``signed``: the record carries the desk's signature of its bytes.
    """
    on_sla_topic = is_sla_topic(topic)
    if event.event_type == ACKNOWLEDGEMENT:
        if on_sla_topic or signed:
            return None
        return (
            f"{event.event_type} on the events topic is accepted only from keydesk's "
            "acknowledge API or keydesk publish (signed with the desk's secret)"
        )
    if event.kind == "sla" and not on_sla_topic:
        return f"{event.event_type} is accepted only on the SLA topic (written by keydesk's timers)"
    if event.kind != "sla" and on_sla_topic:
        return f"{event.event_type} does not belong on the SLA topic; publish it to the events topic"
    return None
