"""keydesk SLA rules engine: pure, explainable SLA clocks.

No I/O except reading a rules file on request, no wall clock: every instant is
passed in. Entry points:

- ``load_rules(path=None)`` / ``check_rules_file(path)``: the TOML rules file;
- ``evaluate(facts, history, rules, at)``: status of every clock of an item;
- ``explain(facts, history, rules, at)``: the human-readable derivation.
"""

from .business_calendar import BusinessCalendar
from .evaluation import ItemEvaluation, MetricStatus, Threshold, evaluate
from .explanation import explain, format_explanation
from .item_history import order_events
from .policies import (
    KINDS,
    METRICS,
    PRIORITIES,
    ROLES,
    TIERS,
    URGENCIES,
    ItemFacts,
    LadderStep,
    Match,
    Policy,
    Rule,
    RuleSet,
)
from .rules_file import (
    DEFAULT_RULES_PATH,
    RuleProblem,
    RulesError,
    check_rules_file,
    format_duration,
    load_rules,
    parse_duration,
    parse_rules,
)

__all__ = [
    "BusinessCalendar", "DEFAULT_RULES_PATH", "ItemEvaluation", "ItemFacts", "KINDS", "LadderStep", "METRICS",
    "Match", "MetricStatus", "PRIORITIES", "Policy", "ROLES", "Rule", "RuleProblem", "RuleSet", "RulesError",
    "TIERS", "Threshold", "URGENCIES", "check_rules_file", "evaluate", "explain", "format_duration",
    "format_explanation", "load_rules", "order_events", "parse_duration", "parse_rules",
]
