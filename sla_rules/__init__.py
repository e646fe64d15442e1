"""keydesk SLA rules engine: pure, explainable SLA clocks.

No I/O except reading a rules file on request, no wall clock: every instant is
passed in. Entry points:

- ``load_rules(path=None)`` / ``check_rules_file(path)``: the TOML rules file;
- ``evaluate(facts, history, rules, at)``: status of every clock of an item;
- ``explain(facts, history, rules, at)``: the human-readable derivation.

Semantics chosen where the issue is silent (each is visible in ``explain``):

- Business time only runs inside calendar working intervals; an instant is
  working when its local date is a working day and its local wall time lies in
  a span (DST gaps are skipped, repeated hours count twice). "1d" = 24 h of
  business time. A deadline is the earliest instant the target is complete, so
  it closes a working interval (e.g. 18:00, never 03:00 on a business calendar).
- At the deadline instant itself a running clock counts as breached; a clock
  met exactly at its deadline is met. Met late = state ``breached`` with
  ``met_at`` set. Cancelled orders: running clocks become ``cancelled``.
- Response is met by acknowledgement or, if none came, by restore/resolve/close.
  Closing meets any still-running restore/resolve. Closing a fault or ticket
  that was not restored / resolved since it was last opened (a duplicate,
  withdrawn, no fault found) follows the policy's ``close_unresolved``: ``stop``
  (default) stops running clocks at the close, met or breached, and starts the
  revisit; ``cancel`` makes them ``cancelled`` and starts no revisit. A reopen
  brings cancelled restore/resolve (and response) clocks back like stopped ones. Revisit starts at closure
  (fault.closed, ticket.closed, order.customer_accepted) and is voided
  (``cancelled``, listed under ``voided``) by a reopen; the next closure starts
  a new one. Metrics not started yet are absent from ``metrics``.
- Pauses are item status intervals (pending_* statuses); a policy chooses which
  statuses pause which metrics (default: restore, resolve, provision; never
  response; an empty ``pause_metrics`` or ``pause_statuses`` list: no clock of
  the policy ever pauses). A reopen ends a pending status.
- A policy need not have targets for every kind: a deployment without orders
  gives none. ``keydesk sla check`` warns (``RuleSet.warnings``) and accepts the
  file; an item of such a kind has no clock, and ``RuleSet.not_measured`` says
  why (the view's SLA summary carries it as ``not_measured``). A rule that names
  a kind explicitly and sends it to a policy without targets for it is refused. Paused time is reported as the
  business time that did not count, per status.
- Priority changes touch running clocks only; the rule is re-matched with the
  new priority but the policy version in force at the clock's start is kept.
  ``recompute``: new target from the original start; ``from_change``: new
  target counted from the change (``measured_from``; elapsed restarts there).
- Reopen ``resume``: the stopped clock runs on, the time between stop and
  reopen does not count. ``new_cycle``: a fresh clock with the full target for
  the current priority and the same policy version; old cycles are kept in
  ``previous_cycles``.
- Warnings, breach and escalation steps are instants at which elapsed
  business time reaches a fraction of / the target / target + step delay.
  While paused they are undetermined (None) and ``next_change_at`` is None:
  only an event can change anything.
- Events later than ``at`` are ignored; duplicates (same event_id) count once;
  events at one instant are in the lifecycle's causal order, then by
  recorded_at, then by source position (``streams/event_order.py``: the
  one order the view, this engine and the SQL projection share), never by id.
"""

from .business_calendar import BusinessCalendar
from .evaluation import ItemEvaluation, MetricStatus, Threshold, evaluate
from .explanation import explain, format_explanation
from .item_history import HANDLERS as _HANDLERS
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

#: Event types the engine reads; any other event cannot move a clock by itself.
CLOCK_EVENT_TYPES = frozenset(_HANDLERS)

__all__ = [
    "BusinessCalendar",
    "CLOCK_EVENT_TYPES",
    "DEFAULT_RULES_PATH",
    "ItemEvaluation",
    "ItemFacts",
    "KINDS",
    "LadderStep",
    "METRICS",
    "Match",
    "MetricStatus",
    "PRIORITIES",
    "Policy",
    "ROLES",
    "Rule",
    "RuleProblem",
    "RuleSet",
    "RulesError",
    "TIERS",
    "Threshold",
    "URGENCIES",
    "check_rules_file",
    "evaluate",
    "explain",
    "format_duration",
    "format_explanation",
    "load_rules",
    "order_events",
    "parse_duration",
    "parse_rules",
]
