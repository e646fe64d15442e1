"""Policies, rules and the rule set: SLA promises as plain, immutable data.

A *policy* says how fast (targets per kind x priority class x metric), on
which calendar, with which warnings, escalation ladder, pausing statuses and
recalculation modes. Policies are versioned: each version has an
``effective_from`` instant, and a clock keeps the version in force when it
started. A *rule* says which policy an item gets; rules are tried in file
order, the first match wins and the last rule must be a catch-all, so "why
this policy?" always has a one-line answer. A policy has targets only for the
kinds (and priority classes) it measures; an item matched to a policy without
targets for it has no clock, and ``RuleSet.not_measured`` says why.
"""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

from schemas.event_catalogue import ESCALATION_ROLES as ROLES

# The vocabulary is the wire contract's: one place for tiers, priorities, metrics.
# Re-exported (see __all__): sla_rules and its users read it from here.
from schemas.event_catalogue import ORDER_URGENCIES as URGENCIES
from schemas.event_catalogue import PRIORITIES, TICKET_KINDS, TIERS
from schemas.event_catalogue import SLA_METRICS as METRICS

from .business_calendar import BusinessCalendar
from .instants import from_us, to_us
from .rule_problems import RuleProblem

__all__ = [
    "CLOSE_UNRESOLVED_MODES",
    "KINDS",
    "METRICS",
    "METRICS_BY_KIND",
    "PRIORITIES",
    "PRIORITY_CHANGE_MODES",
    "REOPEN_MODES",
    "ROLES",
    "SEVERITY_PRIORITY",
    "TIERS",
    "URGENCIES",
    "ItemFacts",
    "LadderStep",
    "Match",
    "MatchIndex",
    "Policy",
    "Rule",
    "RuleSet",
    "classes_for",
]

KINDS = ("fault", *TICKET_KINDS, "order")
METRICS_BY_KIND = {
    "fault": ("response", "restore", "resolve", "revisit"),
    "complaint": ("response", "resolve", "revisit"),
    "service_request": ("response", "resolve", "revisit"),
    "inquiry": ("response", "resolve", "revisit"),
    "order": ("provision", "acceptance", "revisit"),
}
PRIORITY_CHANGE_MODES = ("recompute", "from_change")
REOPEN_MODES = ("resume", "new_cycle")
#: What closing a fault or ticket without resolution does to its running clocks:
#: ``stop`` them at the close (met or breached), or ``cancel`` them (not counted).
CLOSE_UNRESOLVED_MODES = ("stop", "cancel")
SEVERITY_PRIORITY = {"critical": "P1", "major": "P2", "minor": "P3", "warning": "P4"}


def classes_for(kind: str) -> tuple[str, ...]:
    """Priority classes of a kind: urgency for orders, P1-P4 for the rest."""
    return URGENCIES if kind == "order" else PRIORITIES


@dataclass(frozen=True)
class ItemFacts:
    """What the engine must know about an item besides its event history.

    ``tier`` and ``customer_id`` come from the customer profile; ``kind`` and
    the opening ``priority``/``urgency`` from the opening event (when the
    history's opening event carries them, the history wins).
    """

    customer_id: str
    tier: str
    kind: str
    priority: str | None = None
    urgency: str | None = None
    region: str | None = None
    entity_id: str | None = None


@dataclass(frozen=True)
class LadderStep:
    """One escalation step: who is called, how long (business time) after breach."""

    role: str
    after: dt.timedelta


@dataclass(frozen=True)
class Policy:
    """One version of one SLA policy."""

    id: str
    version: int
    effective_from: dt.datetime
    calendar_id: str
    description: str
    targets: Mapping[tuple[str, str, str], dt.timedelta]
    warnings: tuple[float, ...] = (0.5, 0.75, 0.9)
    ladder: tuple[LadderStep, ...] = ()
    pause_statuses: frozenset[str] = frozenset({"pending_customer", "pending_third_party"})
    pause_metrics: frozenset[str] = frozenset({"restore", "resolve", "provision"})
    priority_change: str = "recompute"
    reopen: str = "resume"
    close_unresolved: str = "stop"

    def target(self, kind: str, cls: str, metric: str) -> dt.timedelta | None:
        """Target of a metric for a kind and priority class (None: not tracked)."""
        return self.targets.get((kind, cls, metric))

    def pauses(self, metric: str, status: str) -> bool:
        """True when ``status`` pauses ``metric`` under this policy."""
        return metric in self.pause_metrics and status in self.pause_statuses

    @cached_property
    def kinds(self) -> frozenset[str]:
        """The item kinds this policy has at least one target for (the others it does not measure)."""
        return frozenset(kind for kind, _, _ in self.targets)

    @cached_property
    def kind_classes(self) -> frozenset[tuple[str, str]]:
        """The (kind, priority class) pairs with at least one target."""
        return frozenset((kind, cls) for kind, cls, _ in self.targets)

    @cached_property
    def label(self) -> str:
        """'id vN', as shown in traces."""
        return f"{self.id} v{self.version}"


@dataclass(frozen=True)
class Rule:
    """An ordered matching rule; a condition left out (None) matches anything."""

    index: int
    name: str
    policy_id: str
    customer_ids: frozenset[str] | None = None
    tiers: frozenset[str] | None = None
    kinds: frozenset[str] | None = None
    classes: frozenset[str] | None = None
    regions: frozenset[str] | None = None

    def _conditions(self) -> tuple[tuple[str, frozenset[str] | None], ...]:
        return (
            ("customer_id", self.customer_ids),
            ("tier", self.tiers),
            ("kind", self.kinds),
            ("priority", self.classes),
            ("region", self.regions),
        )

    @property
    def is_catch_all(self) -> bool:
        return all(values is None for _, values in self._conditions())

    def mismatch(self, facts: ItemFacts, cls: str | None) -> str | None:
        """Why the rule does not match (None when it does)."""
        actual = {
            "customer_id": facts.customer_id,
            "tier": facts.tier,
            "kind": facts.kind,
            "priority": cls,
            "region": facts.region,
        }
        for name, values in self._conditions():
            if values is not None and actual[name] not in values:
                return f"{name} {actual[name]!r} not in {sorted(values)}"
        return None

    def covers(self, other: Rule) -> bool:
        """True when every item ``other`` matches is matched by this rule too."""
        for (_, mine), (_, theirs) in zip(self._conditions(), other._conditions()):
            if mine is None:
                continue
            if theirs is None or not theirs <= mine:
                return False
        return True

    def overlaps(self, other: Rule) -> bool:
        """True when some item could match both rules."""
        for (_, mine), (_, theirs) in zip(self._conditions(), other._conditions()):
            if mine is not None and theirs is not None and not mine & theirs:
                return False
        return True

    def describe(self) -> str:
        conds = [f"{n} in {sorted(v)}" for n, v in self._conditions() if v is not None]
        return (
            f"rule #{self.index + 1} {self.name!r} ({' and '.join(conds) or 'catch-all'}) -> {self.policy_id}"
        )


@dataclass(frozen=True)
class Match:
    """The outcome of rule matching, with the reasons needed to explain it."""

    rule: Rule
    policy: Policy
    skipped: tuple[str, ...]

    def why(self) -> list[str]:
        return list(self.trace)

    @cached_property
    def trace(self) -> tuple[str, ...]:
        """The lines of ``why()``, rendered once: a cached Match serves many items."""
        lines = [f"skipped {s}" for s in self.skipped]
        lines.append(
            f"matched {self.rule.describe()}; {self.policy.label} "
            f"in force since {self.policy.effective_from.isoformat()}"
        )
        return tuple(lines)


@dataclass(frozen=True)
class RuleSet:
    """A validated rules file: calendars, versioned policies and ordered rules."""

    version: str
    source: str
    calendars: Mapping[str, BusinessCalendar]
    policies: Mapping[str, tuple[Policy, ...]]  # per id, sorted by effective_from
    rules: tuple[Rule, ...]
    description: str = ""
    #: What ``keydesk sla check`` warns about but accepts (e.g. a kind without targets).
    warnings: tuple[RuleProblem, ...] = field(default=(), compare=False)

    def policy_in_force(self, policy_id: str, at: dt.datetime) -> Policy | None:
        """The version of ``policy_id`` in force at ``at`` (latest effective_from <= at)."""
        chosen = None
        for policy in self.policies.get(policy_id, ()):
            if policy.effective_from <= at:
                chosen = policy
        return chosen

    def match(self, facts: ItemFacts, cls: str | None, at: dt.datetime) -> Match | None:
        """First rule matching the facts whose policy has a version in force at ``at``."""
        return self.match_index.match(facts, cls, to_us(at), at)

    @cached_property
    def match_index(self) -> MatchIndex:
        """Memo of ``match`` outcomes (a cache kept on the immutable RuleSet, not a field)."""
        return MatchIndex(self)

    def not_measured(self, facts: ItemFacts, cls: str | None, at: dt.datetime) -> str | None:
        """Why an item opened at ``at`` gets no SLA clock at all (None: the rules measure it).

        A deployment gives targets only for the kinds it uses (a catch-all rule
        need not cover orders where there are none): an item of another kind is
        valid, it simply has no clock, and the view says why (``not_measured``
        in the item's SLA summary).
        """
        match = self.match(facts, cls, at)
        if match is None:
            return f"no rule matched with a policy in force at {at.isoformat()}"
        where = f"{match.policy.label} (rule {match.rule.name!r})"
        if facts.kind not in match.policy.kinds:
            return f"no targets for kind {facts.kind} in policy {where}"
        if (facts.kind, cls or "") not in match.policy.kind_classes:
            return f"no targets for {facts.kind} {cls or '(no priority)'} in policy {where}"
        return None

    def match_uncached(self, facts: ItemFacts, cls: str | None, at: dt.datetime) -> Match | None:
        """``match`` from first principles: every rule tried in file order (the reference)."""
        return self._try_rules(facts, cls, at)[0]

    def _try_rules(self, facts: ItemFacts, cls: str | None, at: dt.datetime) -> tuple[Match | None, bool]:
        """The first match, and whether its explanation names ``at`` itself.

        It does when a matching rule was skipped because its policy had no
        version in force yet: that line quotes the instant.
        """
        skipped: list[str] = []
        names_instant = False
        for rule in self.rules:
            reason = rule.mismatch(facts, cls)
            if reason is None:
                policy = self.policy_in_force(rule.policy_id, at)
                if policy is not None:
                    return Match(rule, policy, tuple(skipped)), names_instant
                reason = f"no version of policy {rule.policy_id!r} in force at {at.isoformat()}"
                names_instant = True
            skipped.append(f"rule #{rule.index + 1} {rule.name!r}: {reason}")
        return None, names_instant


_MISSING = object()


class MatchIndex:
    """``RuleSet.match`` without re-trying every rule for every clock start.

    The outcome of matching depends on the facts the rules test (customer,
    tier, kind, priority class, region) and on *which policy versions are in
    force*, and the latter only changes at the ``effective_from`` instants of
    the file. So an outcome is computed once per (facts, epoch between two
    consecutive ``effective_from``) and reused. The one outcome that depends
    on the exact instant (a matching rule whose policy has no version in force
    yet: its "skipped" line names the instant) is never cached. The index
    belongs to one RuleSet, which is immutable; it is bounded and starts over
    when full.
    """

    LIMIT = 100_000

    def __init__(self, rules: RuleSet) -> None:
        self.rules = rules
        self.epochs = sorted(
            {to_us(p.effective_from) for versions in rules.policies.values() for p in versions}
        )
        # (customer, tier, kind, priority class, region, epoch) -> the outcome
        self.matches: dict[tuple[str, str, str, str | None, str | None, int], Match | None] = {}

    def match(
        self, facts: ItemFacts, cls: str | None, at_us: int, at: dt.datetime | None = None
    ) -> Match | None:
        """``RuleSet.match`` at ``at_us`` (``at``: the same instant as given, for the trace text)."""
        key = (facts.customer_id, facts.tier, facts.kind, cls, facts.region, bisect_right(self.epochs, at_us))
        found = self.matches.get(key, _MISSING)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        result, names_instant = self.rules._try_rules(facts, cls, from_us(at_us) if at is None else at)
        if not names_instant:
            if len(self.matches) >= self.LIMIT:
                self.matches.clear()
            self.matches[key] = result
        return result
