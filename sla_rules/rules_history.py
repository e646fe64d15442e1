"""What a new rules document may change: the future, never the past.

Every clock keydesk has computed names the policy version it ran under, and
``keydesk replay`` and the SQL sink recompute clocks from the event log with
the rules in force.  So a replacement of the rules must leave every evaluation
at an instant up to the replacement exactly as it was.  The rule, checked by
:func:`history_problems` at the instant ``now`` of the replacement:

1. **Policy versions in force are frozen.**  A version whose ``effective_from``
   is at or before ``now`` (in the old document *or* the new one) must be in
   both, identical (targets, calendar, warnings, ladder, pauses, modes,
   description).  So it can be neither changed, nor dropped, nor added
   backdated: a new version must take effect strictly after ``now``.  A version
   still in the future may be changed or dropped freely.
2. **Matching up to now is frozen.**  Rules are matched in order, skipping a
   rule whose policy has no version in force at the item's instant.  The rules
   whose policy has a version at or before ``now`` (in either document) must
   be the same, in the same order, with the same conditions and names.  A
   rule naming a policy whose every version is in the future may be added
   anywhere (it cannot match before then): that is how a new contract rule
   is introduced.
3. **The calendars of frozen versions keep their past.**  Weekly hours, time
   zone and make-up hours stay; holidays and make-up days on or before the
   local date of ``now`` stay; later ones may be added or removed (next
   year's holidays).

Calendars that no frozen version uses, the file's ``version`` string and its
description may change freely.  Pure: both documents are parsed rule sets.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from .business_calendar import BusinessCalendar
from .policies import Policy, Rule, RuleSet
from .rule_problems import RuleProblem

__all__ = ["frozen_versions", "history_problems", "rules_summary"]


def frozen_versions(rules: RuleSet, now: dt.datetime) -> dict[tuple[str, int], Policy]:
    """The policy versions in force at or before ``now``: ``(id, version) -> version``."""
    return {
        (p.id, p.version): p
        for versions in rules.policies.values()
        for p in versions
        if p.effective_from <= now
    }


def _rule_key(rule: Rule) -> tuple[Any, ...]:
    return (rule.name, rule.policy_id, rule.customer_ids, rule.tiers, rule.kinds, rule.classes, rule.regions)


def _calendar_problems(
    old: BusinessCalendar, new: BusinessCalendar | None, now: dt.datetime, users: str, source: str
) -> list[RuleProblem]:
    where = f"calendars.{old.id}"
    if new is None:
        return [RuleProblem(source, where, f"is used by {users}, in force already: it cannot be dropped")]
    same_shape = (
        old.always_on == new.always_on
        and old.time_zone == new.time_zone
        and old.week == new.week
        and old.makeup_spans == new.makeup_spans
    )
    if not same_shape:
        return [
            RuleProblem(
                source,
                where,
                f"is used by {users}, in force already: its hours, make-up hours and time zone "
                "cannot change (make a new calendar for a new policy version)",
            )
        ]
    today = now.astimezone(old.tz).date() if old.tz else now.astimezone(dt.UTC).date()
    problems = []
    for name, before, after in (
        ("holidays", old.holidays, new.holidays),
        ("makeup_days", old.makeup_days, new.makeup_days),
    ):
        changed = sorted(d for d in before ^ after if d <= today)
        if changed:
            problems.append(
                RuleProblem(
                    source,
                    f"{where}.{name}",
                    f"{', '.join(map(str, changed[:5]))}: days up to today ({today}) are history for "
                    f"{users}; only later days may be added or removed",
                )
            )
    return problems


def history_problems(
    old: RuleSet, new: RuleSet, now: dt.datetime, source: str = "<rules>"
) -> list[RuleProblem]:
    """Why ``new`` would rewrite what ``old`` already decided up to ``now`` (empty: it would not)."""
    problems: list[RuleProblem] = []
    before, after = frozen_versions(old, now), frozen_versions(new, now)
    for key in sorted(before.keys() | after.keys()):
        pid, version = key
        where = f"policies(id={pid}).version={version}"
        was, will = before.get(key), after.get(key)
        if was is None:
            assert will is not None
            problems.append(
                RuleProblem(
                    source,
                    where,
                    f"{will.label} would be effective from {will.effective_from.isoformat()}, at or before "
                    f"now ({now.isoformat()}): a new version must take effect in the future",
                )
            )
            continue
        current = {p.version: p for p in new.policies.get(pid, ())}.get(version)
        if current is None:
            problems.append(
                RuleProblem(
                    source,
                    where,
                    f"{was.label} is in force since {was.effective_from.isoformat()}: it cannot be dropped "
                    "(clocks computed under it must stay explainable); add a new version instead",
                )
            )
        elif current != was:
            problems.append(
                RuleProblem(
                    source,
                    where,
                    f"{was.label} is in force since {was.effective_from.isoformat()}: it cannot change; "
                    f"add version {max(p.version for p in new.policies[pid]) + 1} effective in the future",
                )
            )
    frozen_ids = {pid for pid, _ in before.keys() | after.keys()}
    old_rules = [_rule_key(r) for r in old.rules if r.policy_id in frozen_ids]
    new_rules = [_rule_key(r) for r in new.rules if r.policy_id in frozen_ids]
    if old_rules != new_rules:
        first = next(
            (i for i, (a, b) in enumerate(zip(old_rules, new_rules)) if a != b),
            min(len(old_rules), len(new_rules)),
        )
        name = (new_rules[first] if first < len(new_rules) else old_rules[first])[0]
        problems.append(
            RuleProblem(
                source,
                "rules",
                f"rule {name!r}: the rules sending items to policies in force already must stay as "
                "they are, in the same order; a new rule may only name a policy whose versions are all "
                "in the future",
            )
        )
    users: dict[str, list[str]] = {}
    for policy in before.values():
        users.setdefault(policy.calendar_id, []).append(policy.label)
    for cal_id, labels in sorted(users.items()):
        problems += _calendar_problems(
            old.calendars[cal_id], new.calendars.get(cal_id), now, ", ".join(sorted(labels)), source
        )
    return problems


def _instant(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


def rules_summary(rules: RuleSet, now: dt.datetime) -> dict[str, Any]:
    """What a rules document holds, for people: policies with their versions, calendars, rules."""
    return {
        "version": rules.version,
        "description": rules.description,
        "policies": [
            {
                "id": pid,
                "versions": [
                    {
                        "version": p.version,
                        "effective_from": _instant(p.effective_from),
                        "frozen": p.effective_from <= now,  # in force at or before now: unchangeable
                        "calendar": p.calendar_id,
                        "description": p.description,
                        "kinds": sorted(p.kinds),
                    }
                    for p in versions
                ],
            }
            for pid, versions in sorted(rules.policies.items())
        ],
        "calendars": [
            {
                "id": cal.id,
                "description": cal.description,
                "always_on": cal.always_on,
                "time_zone": cal.time_zone,
                "holidays": len(cal.holidays),
                "makeup_days": len(cal.makeup_days),
            }
            for _, cal in sorted(rules.calendars.items())
        ],
        "rules": [{"name": r.name, "policy": r.policy_id} for r in rules.rules],
        "warnings": [p.to_dict() for p in rules.warnings],
    }
