"""What the inbox reads of the reporting database: recent SLA steps, acknowledgements, customers.

The sink writes every step and acknowledgement to ``sla_steps`` and every
customer's profile to ``customers``, so any worker answers the same inbox
(behind the log by the sink's lag, which the live feed's recent changes cover:
``handlers/web/inbox_page.py``).  Blocking SQLAlchemy calls, run in the
identity database's thread pool.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import select, tuple_
from sqlalchemy.engine import Engine

from handlers.alerts.routing import ALERTING_EVENTS
from handlers.web.inbox_model import Acknowledgement, Customer, CycleKey, Step
from handlers.web.queue_model import profile_facts
from schemas.reporting_tables import Customer as CustomerRow
from schemas.reporting_tables import SlaStep

#: how far back the inbox looks, and how many steps it reads at most before scoping
INBOX_DAYS = 30
INBOX_READ = 5000
#: ids per ``IN`` list
CHUNK = 500


def recent_steps(
    engine: Engine, now: datetime, days: int = INBOX_DAYS, limit: int = INBOX_READ
) -> list[Step]:
    """The newest steps (warnings, breaches, ladder steps) of the last ``days``, newest first."""
    query = (
        select(SlaStep)
        .where(SlaStep.event_type.in_(ALERTING_EVENTS), SlaStep.occurred_at >= now - timedelta(days=days))
        .order_by(SlaStep.occurred_at.desc())
        .limit(limit)
    )
    with engine.connect() as conn:
        rows = conn.execute(query).all()
    return [
        Step(
            event_id=r.event_id,
            event_type=r.event_type,
            customer_id=r.customer_id,
            item_kind=r.item_kind,
            item_id=r.item_id,
            metric=r.metric,
            cycle=r.cycle,
            occurred_at=r.occurred_at,
            step=r.step,
            role=r.role,
            deadline=r.deadline,
        )
        for r in rows
    ]


def acknowledgements(engine: Engine, keys: Iterable[CycleKey]) -> list[Acknowledgement]:
    """The acknowledgements of these cycles."""
    wanted = sorted(set(keys))
    found: list[Acknowledgement] = []
    with engine.connect() as conn:
        for start in range(0, len(wanted), CHUNK):
            chunk = wanted[start : start + CHUNK]
            rows = conn.execute(
                select(SlaStep).where(
                    SlaStep.event_type == "sla.escalation_acknowledged",
                    tuple_(
                        SlaStep.customer_id, SlaStep.item_kind, SlaStep.item_id, SlaStep.metric, SlaStep.cycle
                    ).in_(chunk),
                )
            ).all()
            found += [
                Acknowledgement(
                    (r.customer_id, r.item_kind, r.item_id, r.metric, r.cycle), r.actor, r.occurred_at, r.note
                )
                for r in rows
            ]
    return found


def customers(engine: Engine, ids: Iterable[str]) -> dict[str, Customer]:
    """The customers the database holds among ``ids``: their scoping facts, name, tier and profile."""
    wanted = sorted(set(ids))
    found: dict[str, Customer] = {}
    with engine.connect() as conn:
        for start in range(0, len(wanted), CHUNK):
            rows = conn.execute(
                select(
                    CustomerRow.customer_id, CustomerRow.name, CustomerRow.tier, CustomerRow.profile
                ).where(CustomerRow.customer_id.in_(wanted[start : start + CHUNK]))
            ).all()
            for r in rows:
                profile = r.profile or {}
                found[r.customer_id] = Customer(
                    profile_facts(r.customer_id, profile), r.name, r.tier, profile
                )
    return found
