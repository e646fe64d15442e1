"""An SLA clock as the desk draws it: a bar of the target's share used, and what it says.

Every clock of an item is drawn, not only the nearest (zammad#3928), and each
bar follows its target: a priority change or a reopen gives the clock a new
target and the bar is measured against that one (glpi#3268, #3576), because
it is drawn from the evaluation at the instant the page is rendered, never
from a stored percentage.  Pure: the page handlers evaluate, this draws.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sla_rules.results import MetricStatus

#: The bar's tone, in the order a reader must notice them.
TONES = ("breached", "warning", "paused", "running", "met", "cancelled")
WARNING_SHARE = 0.75  # past three quarters of its target a running clock is drawn as a warning


@dataclass(frozen=True, slots=True)
class ClockBar:
    """What one clock's bar shows: ``share`` of the target used (0..1, more when overdue)."""

    metric: str
    cycle: int
    tone: str
    share: float
    target_seconds: float
    remaining_seconds: float
    overdue_seconds: float
    deadline: dt.datetime | None
    stopped_at: dt.datetime | None
    pause_reason: str | None

    @property
    def percent(self) -> int:
        """The bar's filled width in percent, full at the target (an overdue bar is full)."""
        return round(min(self.share, 1.0) * 100)


def clock_bar(metric: str, status: MetricStatus) -> ClockBar:
    """The bar of one clock as evaluated at the page's instant."""
    target = status.target.total_seconds()
    used = status.elapsed.total_seconds()
    share = used / target if target > 0 else (1.0 if used > 0 else 0.0)
    if status.state == "breached" or status.overdue > dt.timedelta(0):
        tone = "breached"
    elif status.state == "met":
        tone = "met"
    elif status.state == "cancelled":
        tone = "cancelled"
    elif status.paused:
        tone = "paused"
    elif share >= WARNING_SHARE:
        tone = "warning"
    else:
        tone = "running"
    return ClockBar(
        metric=metric,
        cycle=status.cycle,
        tone=tone,
        share=max(share, 0.0),
        target_seconds=target,
        remaining_seconds=status.remaining.total_seconds(),
        overdue_seconds=status.overdue.total_seconds(),
        deadline=status.deadline,
        stopped_at=status.met_at or status.cancelled_at,
        pause_reason=status.pause_reason if status.paused else None,
    )


def clock_bars(metrics: dict[str, MetricStatus]) -> list[ClockBar]:
    """Every clock of an item, the one a reader must look at first first, then by name."""
    bars = [clock_bar(name, status) for name, status in metrics.items()]
    return sorted(bars, key=lambda b: (TONES.index(b.tone), -b.share, b.metric))
