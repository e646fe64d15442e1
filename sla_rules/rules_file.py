"""Reading and validating the TOML rules file.

The file is edited by operations people, so validation aims to catch every
mistake at once and to say *where*: each problem is ``FILE:LOCATION: reason``
with the line of the table it sits in when it can be found. A file with any
problem is refused as a whole (the worker must not start on half a policy).
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .business_calendar import WEEKDAYS, BusinessCalendar, Span
from .durations import format_duration, parse_duration
from .policies import (
    CLOSE_UNRESOLVED_MODES,
    KINDS,
    METRICS_BY_KIND,
    PRIORITY_CHANGE_MODES,
    REOPEN_MODES,
    ROLES,
    TIERS,
    LadderStep,
    Policy,
    Rule,
    RuleSet,
    classes_for,
)
from .rule_problems import ProblemCollector, RuleProblem, RulesError

__all__ = [
    "DEFAULT_RULES_PATH",
    "RuleProblem",
    "RulesError",
    "check_rules_file",
    "format_duration",
    "load_rules",
    "parse_duration",
    "parse_rules",
]

DEFAULT_RULES_PATH = Path(__file__).with_name("default_rules.toml")
_SPAN = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")
_TOP_KEYS = {"schema", "version", "description", "time_zone", "calendars", "policies", "rules"}
_CAL_KEYS = {
    "always_on",
    "time_zone",
    "description",
    "hours",
    "makeup_hours",
    "holidays",
    "makeup_days",
    "notes",
}
_POLICY_KEYS = {
    "id",
    "version",
    "effective_from",
    "calendar",
    "description",
    "targets",
    "warnings",
    "ladder",
    "pause_statuses",
    "pause_metrics",
    "priority_change",
    "reopen",
    "close_unresolved",
}
_RULE_KEYS = {"name", "policy", "customer_id", "tier", "kind", "priority", "region"}


def _to_instant(value: Any, tz: dt.tzinfo) -> dt.datetime | None:
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=tz)
    return None


def _spans(ck: ProblemCollector, value: Any, location: str, line: int | None) -> tuple[Span, ...]:
    if not isinstance(value, list):
        ck.add(location, "must be a list of 'HH:MM-HH:MM' strings", line)
        return ()
    spans: list[Span] = []
    for text in value:
        m = _SPAN.match(text) if isinstance(text, str) else None
        if not m:
            ck.add(location, f"bad span {text!r} (write 'HH:MM-HH:MM', end may be 24:00)", line)
            continue
        h1, m1, h2, m2 = map(int, m.groups())
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if m1 > 59 or m2 > 59 or end > 24 * 60 or start >= end:
            ck.add(location, f"span {text!r} must have start < end within 00:00-24:00", line)
            continue
        spans.append((start, end))
    spans.sort()
    for (s1, e1), (s2, _e2) in zip(spans, spans[1:]):
        if s2 < e1:
            ck.add(
                location,
                f"spans overlap ({s1 // 60:02d}:{s1 % 60:02d} and {s2 // 60:02d}:{s2 % 60:02d})",
                line,
            )
    return tuple(spans)


def _dates(ck: ProblemCollector, value: Any, location: str, line: int | None) -> list[dt.date]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(v, dt.date) and not isinstance(v, dt.datetime) for v in value
    ):
        ck.add(location, "must be a list of dates (YYYY-MM-DD, unquoted)", line)
        return []
    return list(value)


def _calendar(ck: ProblemCollector, cal_id: str, raw: Any) -> BusinessCalendar | None:
    loc = f"calendars.{cal_id}"
    line = ck.line_of(rf"^\[calendars\.\"?{re.escape(cal_id)}\"?\]")
    if not isinstance(raw, dict):
        ck.add(loc, "must be a table", line)
        return None
    ck.unknown_keys(raw, _CAL_KEYS, loc, line)
    description = str(raw.get("description", ""))
    if raw.get("always_on") is True:
        if "hours" in raw:
            ck.add(loc, "an always_on calendar cannot have hours", line)
        return BusinessCalendar(cal_id, week=None, description=description)
    tz_name = raw.get("time_zone")
    if not tz_name:
        ck.add(
            loc, "calendar without time zone (set time_zone, e.g. 'Asia/Shanghai', or always_on = true)", line
        )
        return None
    try:
        ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        ck.add(f"{loc}.time_zone", f"unknown time zone {tz_name!r}", line)
        return None
    hours = raw.get("hours")
    if not isinstance(hours, dict) or not hours:
        ck.add(f"{loc}.hours", "working hours per weekday are required (mon = ['09:00-18:00'], ...)", line)
        return None
    week: dict[int, tuple[Span, ...]] = {}
    for day_name, value in hours.items():
        if day_name not in WEEKDAYS:
            ck.add(f"{loc}.hours.{day_name}", f"unknown weekday (use {', '.join(WEEKDAYS)})", line)
            continue
        week[WEEKDAYS.index(day_name)] = _spans(ck, value, f"{loc}.hours.{day_name}", line)
    if not any(week.values()):
        ck.add(f"{loc}.hours", "no working time in the week", line)
    makeup_spans = (
        _spans(ck, raw["makeup_hours"], f"{loc}.makeup_hours", line) if "makeup_hours" in raw else None
    )
    holidays = _dates(ck, raw.get("holidays"), f"{loc}.holidays", line)
    makeups = _dates(ck, raw.get("makeup_days"), f"{loc}.makeup_days", line)
    for day in sorted(set(holidays) & set(makeups)):
        ck.add(f"{loc}.makeup_days", f"{day} is both a holiday and a make-up working day", line)
    for day in makeups:
        if week.get(day.weekday()):
            ck.add(f"{loc}.makeup_days", f"{day} is a {WEEKDAYS[day.weekday()]}, already a working day", line)
    return BusinessCalendar(
        cal_id,
        time_zone=tz_name,
        week=week,
        holidays=holidays,
        makeup_days=makeups,
        makeup_spans=makeup_spans,
        description=description,
    )


def _pause_list(
    ck: ProblemCollector, value: Any, location: str, line: int | None, allowed: tuple[str, ...] | None = None
) -> frozenset[str] | None:
    """A pause_statuses / pause_metrics list; unlike other lists it may be empty (no pausing)."""
    if value == []:
        return frozenset()
    return ck.str_list(value, location, line, allowed)


def _policy(
    ck: ProblemCollector, n: int, raw: Any, calendars: Collection[str], tz: dt.tzinfo
) -> Policy | None:
    line = ck.line_of(r"^\[\[policies\]\]", n)
    pid = raw.get("id") if isinstance(raw, dict) else None
    loc = f"policies[{n}]" + (f"(id={pid})" if pid else "")
    if not isinstance(raw, dict):
        ck.add(loc, "must be a table", line)
        return None
    before = len(ck.problems)
    ck.unknown_keys(raw, _POLICY_KEYS, loc, line)
    if not isinstance(pid, str) or not pid:
        ck.add(f"{loc}.id", "policy id is required", line)
    version = raw.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        ck.add(f"{loc}.version", "version must be an integer >= 1", line)
    effective = _to_instant(raw.get("effective_from"), tz)
    if effective is None:
        ck.add(f"{loc}.effective_from", "effective_from date (YYYY-MM-DD) is required", line)
    calendar_id = raw.get("calendar")
    if calendar_id not in calendars:
        ck.add(
            f"{loc}.calendar",
            f"unknown calendar {calendar_id!r} (defined: {', '.join(sorted(calendars))})",
            line,
        )
    warnings = raw.get("warnings", [0.5, 0.75, 0.9])
    if not isinstance(warnings, list) or not all(isinstance(w, (int, float)) and 0 < w < 1 for w in warnings):
        ck.add(f"{loc}.warnings", "warnings must be fractions of the target strictly between 0 and 1", line)
        warnings = []
    elif warnings != sorted(set(warnings)):
        ck.add(f"{loc}.warnings", "warnings must be increasing without repeats", line)
    ladder: list[LadderStep] = []
    for i, step in enumerate(raw.get("ladder", [])):
        sloc = f"{loc}.ladder[{i}]"
        if not isinstance(step, dict) or step.get("role") not in ROLES:
            ck.add(sloc, f"role must be one of {', '.join(ROLES)}", line)
            continue
        try:
            after = parse_duration(step.get("after"))
        except ValueError as exc:
            ck.add(f"{sloc}.after", str(exc), line)
            continue
        if ladder and after < ladder[-1].after:
            ck.add(f"{sloc}.after", "ladder delays must not decrease", line)
        ladder.append(LadderStep(step["role"], after))
    # An empty list is how "no pausing" is written: no status (or no metric) pauses.
    pause_statuses = _pause_list(
        ck,
        raw.get("pause_statuses", ["pending_customer", "pending_third_party"]),
        f"{loc}.pause_statuses",
        line,
    )
    for status in pause_statuses or ():
        if not status.startswith("pending_"):
            ck.add(f"{loc}.pause_statuses", f"{status!r}: only pending_* statuses can pause a clock", line)
    pause_metrics = _pause_list(
        ck,
        raw.get("pause_metrics", ["restore", "resolve", "provision"]),
        f"{loc}.pause_metrics",
        line,
        ("response", "restore", "resolve", "provision", "acceptance", "revisit"),
    )
    modes = {}
    for key, allowed, default in (
        ("priority_change", PRIORITY_CHANGE_MODES, "recompute"),
        ("reopen", REOPEN_MODES, "resume"),
        ("close_unresolved", CLOSE_UNRESOLVED_MODES, "stop"),
    ):
        modes[key] = raw.get(key, default)
        if modes[key] not in allowed:
            ck.add(f"{loc}.{key}", f"unknown mode {modes[key]!r} (allowed: {', '.join(allowed)})", line)
    targets: dict[tuple[str, str, str], dt.timedelta] = {}
    raw_targets = raw.get("targets")
    if not isinstance(raw_targets, dict) or not raw_targets:
        ck.add(f"{loc}.targets", "targets are required", line)
        raw_targets = {}
    for kind, per_class in raw_targets.items():
        kloc = f"{loc}.targets.{kind}"
        if kind not in KINDS:
            ck.add(kloc, f"unknown kind {kind!r} (allowed: {', '.join(KINDS)})", line)
            continue
        if not isinstance(per_class, dict):
            ck.add(kloc, "must be a table of priority classes", line)
            continue
        for cls, metrics in per_class.items():
            cloc = f"{kloc}.{cls}"
            if cls not in classes_for(kind):
                ck.add(
                    cloc,
                    f"unknown priority class {cls!r} for {kind} (allowed: {', '.join(classes_for(kind))})",
                    line,
                )
                continue
            if not isinstance(metrics, dict):
                ck.add(cloc, "must be a table of metric = duration", line)
                continue
            for metric, text in metrics.items():
                mloc = f"{cloc}.{metric}"
                if metric not in METRICS_BY_KIND[kind]:
                    ck.add(
                        mloc,
                        f"metric {metric!r} does not apply to {kind} "
                        f"(allowed: {', '.join(METRICS_BY_KIND[kind])})",
                        line,
                    )
                    continue
                try:
                    target = parse_duration(text)
                except ValueError as exc:
                    reason = (
                        f"negative target {text!r}"
                        if isinstance(text, str) and text.strip().startswith("-")
                        else str(exc)
                    )
                    ck.add(mloc, reason, line)
                    continue
                if target <= dt.timedelta(0):
                    ck.add(mloc, f"target must be positive, got {text!r}", line)
                    continue
                targets[(kind, cls, metric)] = target
    # (each isinstance below holds once no problem was added: it only tells the type checker)
    if (
        len(ck.problems) > before
        or not isinstance(pid, str)
        or not isinstance(version, int)
        or effective is None
        or not isinstance(calendar_id, str)
    ):
        return None
    return Policy(
        id=pid,
        version=version,
        effective_from=effective,
        calendar_id=calendar_id,
        description=str(raw.get("description", "")),
        targets=targets,
        warnings=tuple(float(w) for w in warnings),
        ladder=tuple(ladder),
        pause_statuses=pause_statuses or frozenset(),
        pause_metrics=pause_metrics or frozenset(),
        priority_change=modes["priority_change"],
        reopen=modes["reopen"],
        close_unresolved=modes["close_unresolved"],
    )


def _rule(ck: ProblemCollector, n: int, raw: Any, policy_ids: set[str]) -> Rule | None:
    line = ck.line_of(r"^\[\[rules\]\]", n)
    loc = f"rules[{n}]"
    if not isinstance(raw, dict):
        ck.add(loc, "must be a table", line)
        return None
    before = len(ck.problems)
    ck.unknown_keys(raw, _RULE_KEYS, loc, line)
    if raw.get("policy") not in policy_ids:
        ck.add(f"{loc}.policy", f"unknown policy {raw.get('policy')!r}", line)
    rule = Rule(
        index=n,
        name=str(raw.get("name", f"rule {n + 1}")),
        policy_id=raw.get("policy", ""),
        customer_ids=ck.str_list(raw.get("customer_id"), f"{loc}.customer_id", line),
        tiers=ck.str_list(raw.get("tier"), f"{loc}.tier", line, tuple(TIERS)),
        kinds=ck.str_list(raw.get("kind"), f"{loc}.kind", line, KINDS),
        classes=ck.str_list(
            raw.get("priority"), f"{loc}.priority", line, classes_for("fault") + classes_for("order")
        ),
        regions=ck.str_list(raw.get("region"), f"{loc}.region", line),
    )
    return rule if len(ck.problems) == before else None


def parse_rules(text: str, source: str = "<rules>") -> tuple[RuleSet | None, list[RuleProblem]]:
    """Parse and validate rules text; returns the rule set (None if invalid) and all problems."""
    ck = ProblemCollector(source, text)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(exc))
        location = f"{m.group(1)}:{m.group(2)}" if m else "1"
        return None, [RuleProblem(source, location, f"not valid TOML: {exc}")]
    ck.unknown_keys(doc, _TOP_KEYS, "<top>", None)
    if doc.get("schema") != 1:
        ck.add("schema", "schema = 1 is required")
    if not isinstance(doc.get("version"), str) or not doc.get("version"):
        ck.add("version", "a version string for the whole file is required")
    try:
        tz = ZoneInfo(doc.get("time_zone", "UTC"))
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        ck.add("time_zone", f"unknown time zone {doc.get('time_zone')!r}")
        tz = ZoneInfo("UTC")
    calendars: dict[str, BusinessCalendar] = {}
    raw_cals = doc.get("calendars", {})
    if not isinstance(raw_cals, dict) or not raw_cals:
        ck.add("calendars", "at least one calendar is required")
        raw_cals = {}
    for cal_id, raw in raw_cals.items():
        cal = _calendar(ck, cal_id, raw)
        if cal is not None:
            calendars[cal_id] = cal
    policies: dict[str, list[Policy]] = {}
    raw_policies = doc.get("policies", [])
    if not raw_policies:
        ck.add("policies", "at least one policy is required")
    known_ids = {p.get("id") for p in raw_policies if isinstance(p, dict)}
    for n, raw in enumerate(raw_policies):
        policy = _policy(ck, n, raw, {*calendars, *raw_cals}, tz)
        if policy is None:
            continue
        versions = policies.setdefault(policy.id, [])
        for other in versions:
            if other.version == policy.version:
                ck.add(
                    f"policies[{n}](id={policy.id}).version",
                    f"version {policy.version} defined twice",
                    ck.line_of(r"^\[\[policies\]\]", n),
                )
            elif (other.version < policy.version) != (other.effective_from < policy.effective_from):
                ck.add(
                    f"policies[{n}](id={policy.id}).effective_from",
                    f"version {policy.version} and version {other.version} are effective in the wrong order",
                    ck.line_of(r"^\[\[policies\]\]", n),
                )
        versions.append(policy)
    rules: list[Rule] = []
    raw_rules = doc.get("rules", [])
    for n, raw in enumerate(raw_rules):
        rule = _rule(ck, n, raw, {i for i in known_ids if isinstance(i, str)})
        if rule is not None:
            rules.append(rule)
    for later in rules:
        for earlier in rules:
            if earlier.index >= later.index:
                break
            if earlier.covers(later):
                ck.add(
                    f"rules[{later.index}]",
                    f"rule {later.name!r} can never match: hidden by earlier {earlier.describe()}",
                    ck.line_of(r"^\[\[rules\]\]", later.index),
                )
                break
            if later.customer_ids is not None and earlier.customer_ids is None and earlier.overlaps(later):
                # A contract override must win over tier defaults: it has to come first.
                ck.add(
                    f"rules[{later.index}]",
                    f"contract rule {later.name!r} is partly hidden by earlier {earlier.describe()}; "
                    "put customer rules first",
                    ck.line_of(r"^\[\[rules\]\]", later.index),
                )
                break
    warnings = ProblemCollector(source, text)
    for rule in rules:
        line = ck.line_of(r"^\[\[rules\]\]", rule.index)
        for policy in policies.get(rule.policy_id, ()):
            if rule.kinds is not None:
                # A rule that names a kind and sends it nowhere measurable is a mistake.
                for kind in sorted(rule.kinds - policy.kinds):
                    ck.add(
                        f"rules[{rule.index}]",
                        f"rule {rule.name!r} names kind {kind} but sends it to {policy.label}, "
                        f"which has no {kind} targets",
                        line,
                    )
                continue
            # A deployment gives targets only for the kinds it uses: accepted, said once per rule.
            unmeasured = [kind for kind in KINDS if kind not in policy.kinds]
            if unmeasured:
                warnings.add(
                    f"rules[{rule.index}]",
                    f"rule {rule.name!r} sends {', '.join(unmeasured)} items to {policy.label}, "
                    f"which has no targets for {'them' if len(unmeasured) > 1 else 'that kind'}: "
                    "such items get no SLA clock",
                    line,
                )
    if not raw_rules:
        ck.add("rules", "at least one rule is required")
    elif not (isinstance(raw_rules[-1], dict) and set(raw_rules[-1]) <= {"name", "policy"}):
        ck.add(
            f"rules[{len(raw_rules) - 1}]",
            "the last rule must be a catch-all (only name and policy)",
            ck.line_of(r"^\[\[rules\]\]", len(raw_rules) - 1),
        )
    if ck.problems:
        return None, ck.problems
    return RuleSet(
        version=doc["version"],
        source=source,
        calendars=calendars,
        policies={
            pid: tuple(sorted(vs, key=lambda p: (p.effective_from, p.version)))
            for pid, vs in policies.items()
        },
        rules=tuple(rules),
        description=str(doc.get("description", "")),
        warnings=tuple(warnings.problems),
    ), []


def check_rules_file(path: str | Path) -> list[RuleProblem]:
    """Validate a rules file; an empty list means it is usable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        return [RuleProblem(str(path), "0", f"cannot read file: {exc}")]
    return parse_rules(text, str(path))[1]


def load_rules(path: str | Path | None = None) -> RuleSet:
    """Load a rules file (None: the shipped default); raise RulesError listing every problem."""
    path = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RulesError([RuleProblem(str(path), "0", f"cannot read file: {exc}")]) from exc
    ruleset, problems = parse_rules(text, str(path))
    if ruleset is None:
        raise RulesError(problems)
    return ruleset
