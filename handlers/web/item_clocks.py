"""An item's clocks at the instant a page is drawn: the API's evaluation, drawn as bars.

The same four calls as ``GET /api/customers/{id}/items/{kind}/{item_id}/sla``
(``handlers/api/routes.py``): the item's facts and clock history from the view,
the engine's ``evaluate`` at now, and ``format_explanation`` for the trace; so a
bar follows its target when a priority change or a reopen moves it, and the
page says what ``keydesk sla explain`` says.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from handlers.web.clock_bars import ClockBar, clock_bars
from sla_rules import ItemEvaluation, ItemFacts, RuleSet, evaluate, format_explanation
from streams.item_sla import clock_history, item_facts


@dataclass(frozen=True)
class ItemClocks:
    """Every clock of one item at one instant: the evaluation, its bars, and what it needs to explain."""

    facts: ItemFacts
    evaluation: ItemEvaluation | None
    bars: list[ClockBar]
    history: list[dict[str, Any]]

    def explanation(self, rules: RuleSet) -> str:
        if self.evaluation is None:
            return ""
        return format_explanation(self.facts, self.evaluation, rules)


def item_clocks(view: dict[str, Any], item: dict[str, Any], rules: RuleSet, at: datetime) -> ItemClocks:
    """The item's clocks at ``at``; none before the item has opened (every event of it refused)."""
    facts, history = item_facts(view, item), clock_history(item)
    if not history or item.get("state") is None:
        return ItemClocks(facts, None, [], history)
    evaluation = evaluate(facts, history, rules, at)
    return ItemClocks(facts, evaluation, clock_bars(dict(evaluation.metrics)), history)
