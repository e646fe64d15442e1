"""What a compliance report is: its figures, breaches, weekly trend, and its JSON shape.

Apart from the SQL that computes it (``handlers/reports/queries.py``) so that the
renderings (``output.py``), the commands and the tests can build and read a
report without SQLAlchemy.  ``to_dict`` is the contract shared with the oracle
(``tests/report_oracle.py``) and ``docs/compliance_reports.md``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

#: What each kind calls the clock the ``repair`` figures count (domain.md): a fault is
#: repaired (its restore clock), a ticket resolved (its resolve clock).
REPAIR_LABELS = {"fault": "repair", "ticket": "resolve"}


@dataclass(frozen=True)
class Figures:
    """One line of the report: the figures of ``docs/compliance_reports.md`` for a group.

    ``*_measured`` is false when the group has no clock of that figure at all (a
    deployment without orders, a policy without revisit targets): its percentage
    is then null and the outputs say "not measured", never 0 %.
    """

    items: int = 0
    response_met: int = 0
    response_breached: int = 0
    response_open: int = 0
    response_met_pct: float | None = None
    response_measured: bool = False
    repair_met: int = 0
    repair_breached: int = 0
    repair_open: int = 0
    repair_met_pct: float | None = None
    repair_measured: bool = False
    provision_met: int = 0
    provision_breached: int = 0
    provision_open: int = 0
    provision_met_pct: float | None = None
    provision_measured: bool = False
    mtta_business_s: float | None = None
    mtta_calendar_s: float | None = None
    mttr_business_s: float | None = None
    mttr_calendar_s: float | None = None
    paused_s: dict[str, float] = field(default_factory=dict)
    breaches: int = 0
    closed: int = 0
    revisit_rate_pct: float | None = None
    revisit_measured: bool = False
    avg_satisfaction: float | None = None


@dataclass(frozen=True)
class Step:
    """An SLA step event of a breached clock: warning, breach, escalation, met, ack."""

    event_type: str
    occurred_at: datetime
    step: int | None
    role: str | None
    threshold: str | None
    actor: str | None
    note: str | None


@dataclass(frozen=True)
class Breach:
    """A breached clock (metric and cycle) of an item, with its escalation history."""

    customer_id: str
    item_kind: str
    item_id: str
    metric: str
    cycle: int
    tier: str
    priority: str | None
    deadline: datetime | None
    met_at: datetime | None
    overdue: bool  # still pending at ``as_of``, past its deadline and not paused
    steps: tuple[Step, ...] = ()


@dataclass(frozen=True)
class Week:
    """Compliance of the items opened in one local week (Monday 00:00).

    Only weeks in which an item was opened are listed (the docs' "per week of
    ``opened_at``"); a chart places them by date, so a quiet week is a gap.
    """

    week_start: date
    items: int
    response_met_pct: float | None
    repair_met_pct: float | None
    provision_met_pct: float | None


@dataclass(frozen=True)
class ComplianceReport:
    """Everything the report shows; ``to_dict`` is the JSON shape shared with the oracle."""

    period_start: datetime
    period_end: datetime
    as_of: datetime
    group_by: tuple[str, ...]
    zone: ZoneInfo
    groups: list[tuple[dict[str, str], Figures]]
    total: Figures
    breaches: list[Breach]
    weekly_trend: list[Week]
    breaches_by_tier: dict[str, int]
    mttr_distribution: list[tuple[str, int]]
    #: The kinds whose clocks the repair figures counted (faults' restore, tickets'
    #: resolve); labels only, so not in ``to_dict``, whose keys are the contract.
    repair_kinds: tuple[str, ...] = tuple(REPAIR_LABELS)

    def label(self, family: str) -> str:
        """What the report calls a clock family: the repair of faults, the resolve of tickets."""
        if family != "repair":
            return family
        return "/".join(REPAIR_LABELS[kind] for kind in self.repair_kinds or REPAIR_LABELS)

    def to_dict(self) -> dict:
        return {
            "period": {"from": iso(self.period_start), "to": iso(self.period_end)},
            "as_of": iso(self.as_of),
            "group_by": list(self.group_by),
            "timezone": self.zone.key,
            "groups": [{"key": dict(key), **asdict(figures)} for key, figures in self.groups],
            "total": asdict(self.total),
            "breaches": [_breach_dict(b) for b in self.breaches],
            "weekly_trend": [
                {**asdict(w), "week_start": w.week_start.isoformat()} for w in self.weekly_trend
            ],
            "breaches_by_tier": dict(self.breaches_by_tier),
            "mttr_distribution": [{"bucket": b, "count": n} for b, n in self.mttr_distribution],
        }


def iso(instant: datetime | None) -> str | None:
    """The report's spelling of an instant: UTC, ``isoformat()``."""
    return None if instant is None else instant.astimezone(UTC).isoformat()


def _breach_dict(breach: Breach) -> dict:
    steps = [{**asdict(s), "occurred_at": iso(s.occurred_at)} for s in breach.steps]
    return {**asdict(breach), "deadline": iso(breach.deadline), "met_at": iso(breach.met_at), "steps": steps}
