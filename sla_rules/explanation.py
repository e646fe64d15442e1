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

from .evaluation import ItemEvaluation, MetricStatus, _iso, evaluate
from .policies import TIERS, ItemFacts, RuleSet
from .rules_file import format_duration


def _status_lines(status: MetricStatus, rules: RuleSet, indent: str = "  ") -> list[str]:
    calendar = rules.calendars[status.calendar_id]
    lines = [
        f"{indent}{status.metric} (cycle {status.cycle}): {status.state.upper()}",
        f"{indent}  policy {status.policy_id} v{status.policy_version} via rule {status.rule!r}, priority {status.priority}",
        f"{indent}  calendar {calendar.describe()}",
        f"{indent}  target {format_duration(status.target)} of business time, counted from {_iso(status.measured_from)}"
        + (f" (clock started {_iso(status.started_at)})" if status.measured_from != status.started_at else ""),
    ]
    lines += [f"{indent}  - {note}" for note in status.trace]
    for reason, lost in sorted(status.paused_by_reason.items()):
        lines.append(f"{indent}  paused business time, {reason}: {format_duration(lost)}")
    lines.append(
        f"{indent}  elapsed {format_duration(status.elapsed)}, remaining {format_duration(status.remaining)}"
        + (f", overdue {format_duration(status.overdue)}" if status.overdue else "")
        + (f"; PAUSED ({status.pause_reason}{': ' + status.pause_detail if status.pause_detail else ''})" if status.paused else "")
    )
    lines.append(f"{indent}  deadline {_iso(status.deadline) or 'undetermined while paused'}")
    if status.met_at:
        lines.append(f"{indent}  met at {_iso(status.met_at)}")
    if status.breached_at:
        lines.append(f"{indent}  breached at {_iso(status.breached_at)}")
    if status.cancelled_at:
        lines.append(f"{indent}  cancelled at {_iso(status.cancelled_at)}")
    for step in status.warnings + status.escalations:
        what = f"warning {step.label}" if step.kind == "warning" else f"escalate to {step.label}"
        when = _iso(step.due_at) or "not due"
        lines.append(f"{indent}  {what} at elapsed {format_duration(step.at_elapsed)}: {when}{' (reached)' if step.reached else ''}")
    if status.next_change_at:
        lines.append(f"{indent}  next change {_iso(status.next_change_at)}")
    for previous in status.previous_cycles:
        lines += _status_lines(previous, rules, indent + "    ")
    return lines


def format_explanation(facts: ItemFacts, evaluation: ItemEvaluation, rules: RuleSet) -> str:
    """Render an evaluation as the multi-line trace."""
    lines = [
        f"SLA explanation for {facts.entity_id or 'item'} of customer {facts.customer_id} at {_iso(evaluation.at)}",
        f"tier {facts.tier} ({TIERS.get(facts.tier, '?')}), kind {facts.kind}, priority {evaluation.priority}"
        + (f", region {facts.region}" if facts.region else ""),
        f"rules {rules.source} version {rules.version}",
        "policy matching (first match wins):",
    ]
    lines += [f"  {line}" for line in evaluation.match_trace] or ["  no rule matched"]
    if evaluation.notes:
        lines.append("item events:")
        lines += [f"  {note}" for note in evaluation.notes]
    lines.append("clocks:")
    if not evaluation.metrics:
        lines.append("  none started")
    for status in evaluation.metrics.values():
        lines += _status_lines(status, rules)
    for status in evaluation.voided:
        lines.append("  voided clock:")
        lines += _status_lines(status, rules, "    ")
    lines.append(f"next change of the whole item: {_iso(evaluation.next_change_at) or 'none (waiting for an event)'}")
    return "\n".join(lines)


def explain(facts: ItemFacts, history: Iterable[Mapping[str, Any]], rules: RuleSet, at: dt.datetime) -> str:
    """Evaluate and explain an item in one call (what the CLI and HTTP API show)."""
    history = list(history)
    return format_explanation(facts, evaluate(facts, history, rules, at), rules)
