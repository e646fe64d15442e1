"""The desk's words, each spelt once: item kinds, severities and the priority each implies, roles.

The values are the event catalogue's (``schemas/event_catalogue.py``, the
wire contract); what the catalogue does not say is here: the priority a
fault gets from its severity when the hotline gives none (``critical`` is
P1 ... ``warning`` P4; the catalogue's ``fault.reported`` says so in words).
Pure, no faust: the view fold, the HTTP API, the CLI and the tests' oracles
and generators all read the same tuples.
"""

from __future__ import annotations

from schemas.event_catalogue import (
    ESCALATION_ROLES,
    FAULT_SEVERITIES,
    ITEM_KINDS,
    ORDER_URGENCIES,
    PRIORITIES,
    SLA_METRICS,
)

__all__ = [
    "ESCALATION_ROLES",
    "FAULT_SEVERITIES",
    "ITEM_KINDS",
    "ORDER_URGENCIES",
    "PRIORITIES",
    "SEVERITY_PRIORITY",
    "SLA_METRICS",
]

#: A fault's priority when the report gives none, by severity.
SEVERITY_PRIORITY: dict[str, str] = {"critical": "P1", "major": "P2", "minor": "P3", "warning": "P4"}
