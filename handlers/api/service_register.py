"""The service register's reads (``GET /api/customers/{id}/services``): its SQL, blocking.

The register lives in the reporting database only (``customer_services``, written
by the sink: ``streams/customer_services.py`` says why), so every worker answers
the same page for the same question, behind the log by the sink's lag
(``GET /api/sink``).  Pages are ordered by service id and continued by keyset
(``after`` = the last id of the previous page), so a page never repeats or skips
a service because others were added in between.  The HTTP edge runs these in a
thread (``handlers/api/customer_services.py``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from schemas.reporting_tables import CustomerService
from streams.customer_services import ACTIVE, shown

_COLUMNS = CustomerService.__table__.c


def list_services(engine: Engine, customer_id: str, limit: int, after: str | None) -> dict[str, Any]:
    """``{customer_id, count, services: [...], next}``: one page of the customer's active services."""
    statement = select(CustomerService.__table__).where(
        _COLUMNS.customer_id == customer_id, _COLUMNS.state == ACTIVE
    )
    if after:
        statement = statement.where(_COLUMNS.service_id > after)
    statement = statement.order_by(_COLUMNS.service_id).limit(limit + 1)
    with engine.connect() as conn:
        rows = [dict(row) for row in conn.execute(statement).mappings()]
        count = active_count_on(conn, customer_id)
    page, more = rows[:limit], len(rows) > limit
    return {
        "customer_id": customer_id,
        "count": count,
        "services": [shown(row) for row in page],
        "next": page[-1]["service_id"] if more else None,
    }


def active_count_on(conn: Any, customer_id: str) -> int:
    counted = select(func.count()).where(_COLUMNS.customer_id == customer_id, _COLUMNS.state == ACTIVE)
    return int(conn.execute(counted).scalar_one())


def service_state(engine: Engine, customer_id: str, service_id: str) -> tuple[str | None, int]:
    """The service's state in the register (``None``: never in it) and the customer's active count."""
    with engine.connect() as conn:
        state = conn.execute(
            select(_COLUMNS.state).where(
                _COLUMNS.customer_id == customer_id, _COLUMNS.service_id == service_id
            )
        ).scalar_one_or_none()
        return state, active_count_on(conn, customer_id)
