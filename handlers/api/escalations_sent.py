"""Which ladder steps an item's owner has sent, and to whom: what an acknowledgement is checked against.

An account manager may acknowledge a clock's escalation only once a step of
that cycle was addressed to them (``handlers/identity/roles.may_acknowledge``).
What was sent is the owner's to say: the ``sla.escalation_due`` records in the
item's ``sla_log``; to whom, the customer's profile in the owner's view, by the
same rule the alerts follow (``handlers/alerts/routing.escalation_recipients``).
The worker that takes an acknowledgement asks the owner for an item's clocks
(``GET .../sla``, a routed read); that answer carries these steps as
``escalations_sent`` (:func:`to_json`), read back by :func:`from_json`.

Addressees come from the profile as it is when asked, not as it was when the
step went out: a chain changed since (a new account manager, a colleague
standing in) hands the acknowledgement to whoever holds that place now.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from handlers.alerts.routing import escalation_recipients
from handlers.identity.roles import SentStep

__all__ = ["from_json", "sent_steps", "to_json"]

#: The ``sla_log`` record of a ladder step the timers sent.
ESCALATION_DUE = "sla.escalation_due"


def sent_steps(profile: Mapping[str, Any] | None, item: Mapping[str, Any]) -> list[SentStep]:
    """Every ladder step in the item's ``sla_log`` (each once), with the staff ids it is addressed to."""
    seen: set[tuple[str, int, int]] = set()
    steps: list[SentStep] = []
    for record in item.get("sla_log") or ():
        if record.get("event_type") != ESCALATION_DUE:
            continue
        key = (str(record["metric"]), int(record["cycle"]), int(record["step"]))
        if key in seen:
            continue
        seen.add(key)
        role = str(record["role"])
        addressed = frozenset(p.id for p in escalation_recipients(profile, role) if p.id)
        steps.append(SentStep(*key, role=role, addressed_to=addressed))
    return sorted(steps, key=lambda s: (s.metric, s.cycle, s.step))


def to_json(steps: Sequence[SentStep]) -> list[dict[str, Any]]:
    """The steps as the owner's ``GET .../sla`` answer carries them (``escalations_sent``)."""
    return [
        {
            "metric": s.metric,
            "cycle": s.cycle,
            "step": s.step,
            "role": s.role,
            "addressed_to": sorted(s.addressed_to),
        }
        for s in steps
    ]


def from_json(found: object) -> list[SentStep] | None:
    """The steps read back from an owner's answer; ``None`` unless it is exactly :func:`to_json`'s shape.

    ``None`` (the owner did not say: an older worker, a mangled answer) refuses
    an account manager's acknowledgement with a retry rather than guessing.
    """
    if not isinstance(found, list):
        return None
    steps = []
    for entry in found:
        if not isinstance(entry, dict):
            return None
        metric, cycle, step, role = (entry.get(k) for k in ("metric", "cycle", "step", "role"))
        addressed = entry.get("addressed_to")
        if not (
            isinstance(metric, str)
            and isinstance(role, str)
            and type(cycle) is int
            and type(step) is int
            and isinstance(addressed, list)
            and all(isinstance(a, str) for a in addressed)
        ):
            return None
        steps.append(SentStep(metric, cycle, step, role, frozenset(addressed)))
    return steps
