"""Human-readable trace of how each SLA deadline was derived.

The trace is what a manager reads when a customer disputes a breach, so it
names the rule and policy version that matched (and which rules were skipped
and why), the calendar, every pause with its reason and business time lost,
every recalculation (priority change, reopen) and the resulting deadline,
warnings and escalation steps.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from .durations import format_duration
from .evaluation import ItemEvaluation, MetricStatus, evaluate, iso_instant
from .policies import TIERS, ItemFacts, RuleSet


def _status_lines(status: MetricStatus, rules: RuleSet, indent: str = "  ") -> list[str]:
    calendar = rules.calendars[status.calendar_id]
    lines = [
        f"{indent}{status.metric} (cycle {status.cycle}): {status.state.upper()}",
        f"{indent}  policy {status.policy_id} v{status.policy_version} via rule {status.rule!r}, "
        f"priority {status.priority}",
        f"{indent}  calendar {calendar.describe()}",
        f"{indent}  target {format_duration(status.target)} of business time, "
        f"counted from {iso_instant(status.measured_from)}"
        + (
            f" (clock started {iso_instant(status.started_at)})"
            if status.measured_from != status.started_at
            else ""
        ),
    ]
    lines += [f"{indent}  - {note}" for note in status.trace]
    for reason, lost in sorted(status.paused_by_reason.items()):
        lines.append(f"{indent}  paused business time, {reason}: {format_duration(lost)}")
    lines.append(
        f"{indent}  elapsed {format_duration(status.elapsed)}, remaining {format_duration(status.remaining)}"
        + (f", overdue {format_duration(status.overdue)}" if status.overdue else "")
        + (
            f"; PAUSED ({status.pause_reason}{': ' + status.pause_detail if status.pause_detail else ''})"
            if status.paused
            else ""
        )
    )
    deadline = iso_instant(status.deadline) or "undetermined while paused"
    if status.deadline is not None and calendar.tz is not None:
        deadline += f" ({status.deadline.astimezone(calendar.tz):%Y-%m-%d %H:%M} {calendar.time_zone})"
    lines.append(f"{indent}  deadline {deadline}")
    if status.met_at:
        lines.append(f"{indent}  met at {iso_instant(status.met_at)}")
    if status.breached_at:
        lines.append(f"{indent}  breached at {iso_instant(status.breached_at)}")
    if status.cancelled_at:
        lines.append(f"{indent}  cancelled at {iso_instant(status.cancelled_at)}")
    for step in status.warnings + status.escalations:
        what = f"warning {step.label}" if step.kind == "warning" else f"escalate to {step.label}"
        if step.due_at is not None:
            when = iso_instant(step.due_at)
        elif status.paused:
            when = "undetermined while paused"
        else:
            when = "never (the clock stopped first)"
        lines.append(
            f"{indent}  {what} at elapsed {format_duration(step.at_elapsed)}: "
            f"{when}{' (reached)' if step.reached else ''}"
        )
    if status.next_change_at:
        lines.append(f"{indent}  next change {iso_instant(status.next_change_at)}")
    for previous in status.previous_cycles:
        lines += _status_lines(previous, rules, indent + "    ")
    return lines


def format_explanation(
    facts: ItemFacts, evaluation: ItemEvaluation, rules: RuleSet, opened_at: dt.datetime | None = None
) -> str:
    """Render an evaluation as the multi-line trace.

    An item without clocks says why when the rules do not measure it (no
    targets for its kind or priority, no rule matched when it opened at
    ``opened_at``): "none started" alone would read like a bug.
    """
    lines = [
        f"SLA explanation for {facts.entity_id or 'item'} of customer {facts.customer_id} "
        f"at {iso_instant(evaluation.at)}",
        f"tier {facts.tier} ({TIERS.get(facts.tier, '?')}), kind {evaluation.kind}, "
        f"priority {evaluation.priority}" + (f", region {facts.region}" if facts.region else ""),
        f"rules {rules.source} version {rules.version}",
        "policy matching (first match wins):",
    ]
    lines += [f"  {line}" for line in evaluation.match_trace] or ["  no rule matched"]
    if evaluation.notes:
        lines.append("item events:")
        lines += [f"  {note}" for note in evaluation.notes]
    lines.append("clocks:")
    if not evaluation.metrics:
        reason = (
            None
            if evaluation.voided or opened_at is None
            else rules.not_measured(facts, evaluation.priority, opened_at)
        )
        lines.append("  none started" + (f": not measured, {reason}" if reason else ""))
    for status in evaluation.metrics.values():
        lines += _status_lines(status, rules)
    for status in evaluation.voided:
        lines.append("  voided clock:")
        lines += _status_lines(status, rules, "    ")
    lines.append(
        "next change of the whole item: "
        f"{iso_instant(evaluation.next_change_at) or 'none (waiting for an event)'}"
    )
    return "\n".join(lines)


def explain(facts: ItemFacts, history: Iterable[Mapping[str, Any]], rules: RuleSet, at: dt.datetime) -> str:
    """Evaluate and explain an item in one call (what the CLI and HTTP API show)."""
    history = list(history)
    instants = [r["occurred_at"] for r in history]
    opened_at = min(
        (dt.datetime.fromisoformat(t) if isinstance(t, str) else t for t in instants), default=None
    )
    return format_explanation(facts, evaluate(facts, history, rules, at), rules, opened_at)
