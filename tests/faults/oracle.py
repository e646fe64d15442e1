"""What must be there after a run, computed apart from the workers.

The SLA steps due are what ``keydesk replay``'s engine (streams/replay.py) says
the events lead to, completed by the steps due at the end of the run; the alerts
due are what routing (handlers/alerts/routing.py) makes of those steps for the
customers' profiles.  Neither reads anything a worker wrote.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from handlers.alerts.routing import WEBHOOK, Alert, route
from schemas.envelope import Event
from sla_rules import RuleSet
from streams.customer_view import ITEM_KINDS, find_item, fold
from streams.item_sla import due_steps
from streams.replay import replay


def items_of(view: dict[str, Any]) -> Iterable[dict[str, Any]]:
    """Every item a view shows: open ones and the recently closed."""
    for kind in ITEM_KINDS:
        yield from view["open"][kind].values()
    yield from view["recent_closed"]


def steps_due(
    events: list[Event], rules: RuleSet, at: datetime, partitions: int = 4
) -> tuple[dict[str, Event], dict[str, dict[str, Any]]]:
    """The step events ``events`` lead to by ``at`` (by id), and the views they fold into."""
    result = replay((e.to_bytes() for e in events), rules, partitions)
    steps = {step.event_id: step for step in result.steps}
    for view in result.views.values():
        for item in list(items_of(view)):
            while due := due_steps(view, item, rules, at, replay=True)[0]:
                for step in due:
                    fold(view, step)
                    steps[step.event_id] = step
    return steps, result.views


def webhook_alerts_due(steps: dict[str, Event], views: dict[str, dict[str, Any]]) -> dict[str, Alert]:
    """The alerts the steps call for that go out by webhook, by alert id."""
    alerts: dict[str, Alert] = {}
    for step in steps.values():
        view = views.get(step.customer_id) or {}
        item = find_item(view, step.payload["item_kind"], step.entity_id) if view else None
        for alert in route(step, view.get("profile"), item):
            if WEBHOOK in alert.channels:
                alerts[alert.alert_id] = alert
    return alerts
