"""The speed-ups change nothing: caches, memos and deferred detail are invisible.

What is cached (see ``sla_rules.evaluation``): rule-match outcomes on the
RuleSet, threshold plans on each policy, calendar days, instant/duration
conversions and duration texts; what is deferred: a clock's trace, warnings
and escalations, built on first read. Every test here compares a result
computed cold (fresh RuleSet, emptied memos) with one computed warm (a
RuleSet that has served many other items first), or a deferred value with
the eagerly built one.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import pickle
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sla_rules import (
    BusinessCalendar,
    ItemFacts,
    MetricStatus,
    Threshold,
    evaluate,
    format_duration,
    format_explanation,
    instants,
    load_rules,
    parse_rules,
)
from sla_rules.business_calendar import DAY_US, HOUR_US, MAX_WALK_DAYS, MINUTE_US, to_us
from sla_rules.clock import INF, reach_instants

from .test_properties import any_history

DEFAULT_TEXT = load_rules().source
UTC = dt.UTC

# The shipped rules plus a rule whose policy only starts mid-2026 (so some
# matches name the instant and must not be cached), a region rule, and a
# policy with two versions and the from_change / new_cycle modes.
EXTRA_POLICIES = """
[[policies]]
id = "late"
version = 1
effective_from = 2026-06-01
calendar = "cn-business"
priority_change = "from_change"
reopen = "new_cycle"
ladder = [{ role = "account_manager", after = "0m" }, { role = "executive", after = "1h" }]
targets.fault.P1 = { response = "15m", restore = "4h", resolve = "8h", revisit = "1d" }
targets.fault.P2 = { response = "30m", restore = "8h", resolve = "1d", revisit = "1d" }
targets.fault.P3 = { response = "1h", restore = "1d", resolve = "2d", revisit = "2d" }
targets.fault.P4 = { response = "2h", restore = "2d", resolve = "3d", revisit = "2d" }
targets.complaint.P1 = { response = "15m", resolve = "4h", revisit = "1d" }
targets.complaint.P2 = { response = "30m", resolve = "8h", revisit = "1d" }
targets.complaint.P3 = { response = "1h", resolve = "1d", revisit = "2d" }
targets.complaint.P4 = { response = "2h", resolve = "2d", revisit = "2d" }
targets.order.urgent = { provision = "5d", acceptance = "2d", revisit = "2d" }
targets.order.normal = { provision = "10d", acceptance = "3d", revisit = "3d" }
targets.order.extra_urgent = { provision = "2d", acceptance = "1d", revisit = "1d" }

[[policies]]
id = "late"
version = 2
effective_from = 2026-10-01
calendar = "24x7"
targets.fault.P1 = { response = "10m", restore = "3h", resolve = "6h", revisit = "1d" }
targets.fault.P2 = { response = "20m", restore = "6h", resolve = "12h", revisit = "1d" }
targets.fault.P3 = { response = "1h", restore = "12h", resolve = "1d", revisit = "2d" }
targets.fault.P4 = { response = "2h", restore = "1d", resolve = "2d", revisit = "2d" }
targets.complaint.P1 = { response = "15m", resolve = "4h", revisit = "1d" }
targets.complaint.P2 = { response = "30m", resolve = "8h", revisit = "1d" }
targets.complaint.P3 = { response = "1h", resolve = "1d", revisit = "2d" }
targets.complaint.P4 = { response = "2h", resolve = "2d", revisit = "2d" }
targets.order.urgent = { provision = "5d", acceptance = "2d", revisit = "2d" }
targets.order.normal = { provision = "10d", acceptance = "3d", revisit = "3d" }
targets.order.extra_urgent = { provision = "2d", acceptance = "1d", revisit = "1d" }

"""
EXTRA_RULES = """
[[rules]]
name = "late starters"
tier = ["gold", "vip"]
kind = ["fault", "complaint", "order"]
policy = "late"

[[rules]]
name = "south region"
region = ["south"]
policy = "platinum"

"""


def variant_text() -> str:
    with open(DEFAULT_TEXT, encoding="utf-8") as fh:
        text = fh.read()
    first_rule = text.index("\n[[rules]]\n") + 1
    diamond = text.index('[[rules]]\nname = "钻石 diamond"')
    return text[:first_rule] + EXTRA_POLICIES + text[first_rule:diamond] + EXTRA_RULES + text[diamond:]


def fresh_rules(which: str):
    """A RuleSet nobody has used yet, with every module-level memo emptied too."""
    for memo in (
        instants._datetimes,
        instants._microseconds,
        instants._iso_texts,
        instants._iso_of_utc,
        instants._timedeltas,
    ):
        memo.clear()
    format_duration.cache_clear()
    if which == "default":
        return load_rules()
    rules, problems = parse_rules(variant_text(), "<variant>")
    assert rules is not None, problems
    return rules


WARM = {"default": fresh_rules("default"), "variant": fresh_rules("variant")}


def snapshot(facts: ItemFacts, events: list[dict], rules, at: dt.datetime) -> tuple:
    evaluation = evaluate(facts, events, rules, at)
    return repr(evaluation), evaluation.to_dict(), format_explanation(facts, evaluation, rules)


class TestWarmEqualsCold:
    @settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        any_history(),
        st.sampled_from(["default", "variant"]),
        st.sampled_from([None, "south"]),
        st.sampled_from([None, "P1", "P4"]),
    )
    def test_fresh_ruleset_and_warmed_ruleset_agree(self, case, which, region, priority):
        """An evaluation on a RuleSet that served many items equals one on a fresh RuleSet with empty
        memos."""
        facts, events, at = case
        facts = dataclasses.replace(facts, region=region, priority=priority)
        warm = snapshot(facts, events, WARM[which], at)
        cold = snapshot(facts, events, fresh_rules(which), at)
        assert warm == cold
        assert snapshot(facts, events, WARM[which], at) == warm  # and again, now surely from the caches

    def test_match_index_equals_trying_every_rule(self):
        """The memoised match equals the rule-by-rule reference, including before a policy exists."""
        rules = WARM["variant"]
        instants_ = [
            dt.datetime(2026, 1, 1, tzinfo=UTC),
            dt.datetime(2026, 5, 31, 23, 59, tzinfo=UTC),
            dt.datetime(2026, 6, 1, tzinfo=UTC) - dt.timedelta(hours=8),  # 2026-06-01 in Shanghai
            dt.datetime(2026, 7, 1, tzinfo=UTC),
            dt.datetime(2026, 10, 5, tzinfo=UTC),
        ]
        for tier in ("diamond", "gold", "vip", "public"):
            for kind, classes in (("fault", ("P1", "P4")), ("order", ("urgent", None))):
                for cls in classes:
                    for region in (None, "south"):
                        facts = ItemFacts("C-0001" if tier == "gold" else "C-9", tier, kind, region=region)
                        for at in instants_ * 2:  # the second round is served from the index
                            assert rules.match(facts, cls, at) == rules.match_uncached(facts, cls, at)
        names = [m for m in (rules.match(ItemFacts("C-9", "gold", "fault"), "P1", instants_[0]),) if m]
        assert any(
            "no version of policy 'late' in force at 2026-01-01T00:00:00+00:00" in s for s in names[0].skipped
        )


class TestDeferredDetail:
    HISTORY = [
        {
            "event_id": "a",
            "event_type": "fault.reported",
            "occurred_at": dt.datetime(2026, 11, 23, 1, 0, tzinfo=UTC),
            "payload": {"severity": "critical"},
        },
        {
            "event_id": "b",
            "event_type": "fault.acknowledged",
            "occurred_at": dt.datetime(2026, 11, 23, 1, 5, tzinfo=UTC),
            "payload": {},
        },
        {
            "event_id": "c",
            "event_type": "fault.status_changed",
            "occurred_at": dt.datetime(2026, 11, 23, 1, 20, tzinfo=UTC),
            "payload": {"status": "pending_customer", "reason": "no access"},
        },
        {
            "event_id": "d",
            "event_type": "fault.status_changed",
            "occurred_at": dt.datetime(2026, 11, 23, 2, 20, tzinfo=UTC),
            "payload": {"status": "in_progress"},
        },
    ]
    FACTS = ItemFacts("C-1", "gold", "fault", priority="P1", entity_id="F-1")
    AT = dt.datetime(2026, 11, 23, 2, 20, tzinfo=UTC)

    def statuses(self) -> list[MetricStatus]:
        return list(evaluate(self.FACTS, self.HISTORY, WARM["default"], self.AT).metrics.values())

    def test_assembled_objects_equal_constructed_ones(self):
        """What the engine builds equals what the dataclass constructors build from the same values."""
        for status in self.statuses():
            values = {f.name: getattr(status, f.name) for f in dataclasses.fields(status)}
            rebuilt = MetricStatus(**values)
            assert (
                rebuilt == status and repr(rebuilt) == repr(status) and rebuilt.to_dict() == status.to_dict()
            )
            for step in status.warnings + status.escalations:
                assert Threshold(step.kind, step.label, step.at_elapsed, step.due_at, step.reached) == step

    def test_detail_reads_the_same_before_and_after_rendering(self):
        """Reading trace/warnings/escalations first or via to_dict first gives the same values."""
        first, second = self.statuses(), self.statuses()
        early = [(s.trace, s.warnings, s.escalations) for s in first]
        dicts = [s.to_dict() for s in second]
        assert early == [(s.trace, s.warnings, s.escalations) for s in second]
        assert [s.to_dict() for s in first] == dicts
        restore = next(s for s in first if s.metric == "restore")
        assert (
            "paused 2026-11-23T01:20:00Z -> 2026-11-23T02:20:00Z (pending_customer: no access)"
            in restore.trace
        )
        assert [w.label for w in restore.warnings] == ["50%", "75%", "90%"]

    def test_results_pickle_copy_and_replace(self):
        """Deferred detail never leaks: results pickle, copy and replace like plain dataclasses."""
        for status in self.statuses():
            assert pickle.loads(pickle.dumps(status)) == status
        for status in self.statuses():
            assert copy.deepcopy(status) == status
            assert dataclasses.replace(status, state="met").trace == status.trace

    def test_results_stay_frozen(self):
        status = self.statuses()[0]
        for name in ("trace", "warnings", "state"):
            try:
                setattr(status, name, ())
            except dataclasses.FrozenInstanceError:
                continue
            raise AssertionError(f"{name} could be assigned")


def walk_day_by_day(calendar: BusinessCalendar, a: int, b: int | None, need: int) -> tuple[int, int | None]:
    """``measure_until`` the obvious way: every local day's working intervals in turn, clipped to
    [a, b), for MAX_WALK_DAYS days from the day before a's local date. No day jumps, no cache."""
    if need <= 0:
        return 0, a
    if calendar.always_on:
        if b is None or need <= b - a:
            return need, a + need
        return b - a, None
    got = 0
    first = calendar.local_date(a) - dt.timedelta(days=1)
    for n in range(MAX_WALK_DAYS):
        for s, e in calendar.day_intervals(first + dt.timedelta(days=n)):
            s, e = max(s, a), e if b is None else min(e, b)
            if e <= s:
                continue
            if got + (e - s) >= need:
                return need, s + (need - got)
            got += e - s
    return got, None


class TestTheWalkItself:
    def test_measure_until_equals_the_day_by_day_walk(self):
        """Random calendars and spans, DST zones included: the same working time and instant."""
        rnd = random.Random(20261201)
        for _ in range(400):
            tz = rnd.choice(["Asia/Shanghai", "Europe/Berlin", "America/New_York"])
            week = {
                wd: [(rnd.randint(0, 600), rnd.randint(660, 1440))] for wd in range(7) if rnd.random() < 0.7
            }
            start = dt.date(2026, 1, 1) + dt.timedelta(days=rnd.randint(0, 400))
            holidays = [start + dt.timedelta(days=rnd.randint(0, 30)) for _ in range(rnd.randint(0, 4))]
            calendar = BusinessCalendar("c", time_zone=tz, week=week, holidays=holidays)
            a = to_us(dt.datetime.combine(start, dt.time(), UTC)) + rnd.randint(0, 48 * 60) * MINUTE_US
            b = None if rnd.random() < 0.3 else a + rnd.randint(1, 20 * 24) * HOUR_US
            need = rnd.randint(1, 15 * 24) * 10 * MINUTE_US
            assert calendar.measure_until(a, b, need) == walk_day_by_day(calendar, a, b, need)
            if b is not None:
                assert calendar.working_time(a, b) == walk_day_by_day(calendar, a, b, b - a + 1)[0]


def chained_reach(
    calendar: BusinessCalendar, running: list[tuple[int, int]], amounts: list[int]
) -> list[int | None]:
    """The reference for ``reach_instants``: one day-by-day walk per amount, each from the previous
    instant."""
    result: list[int | None] = []
    got, i = 0, 0
    for a, b in running:
        pos = a
        while i < len(amounts):
            measured, reached = walk_day_by_day(calendar, pos, None if b >= INF else b, amounts[i] - got)
            got += measured
            if reached is None:
                break
            result.append(reached)
            pos = reached
            i += 1
        if i == len(amounts):
            break
    return result + [None] * (len(amounts) - len(result))


class TestOneWalkForAllThresholds:
    def test_one_walk_equals_one_walk_per_amount(self):
        """Random calendars (incl. DST zones, 7x24, almost no working days): same instants either way."""
        rnd = random.Random(20261122)
        for _ in range(300):
            start = dt.date(2026, 1, 1) + dt.timedelta(days=rnd.randint(0, 400))
            tz = rnd.choice(["Asia/Shanghai", "Europe/Berlin", "America/New_York"])
            shape = rnd.random()
            if shape < 0.15:
                calendar = BusinessCalendar("c")
            elif shape < 0.35:  # working time only on a few make-up days years apart: walks hit MAX_WALK_DAYS
                days = [start + dt.timedelta(days=rnd.randint(0, 9000)) for _ in range(rnd.randint(1, 4))]
                calendar = BusinessCalendar(
                    "c", time_zone=tz, week={}, makeup_days=days, makeup_spans=[(600, 660)]
                )
            else:
                week = {
                    wd: [(rnd.randint(0, 600), rnd.randint(660, 1440))]
                    for wd in range(7)
                    if rnd.random() < 0.7
                }
                holidays = [start + dt.timedelta(days=rnd.randint(0, 30)) for _ in range(rnd.randint(0, 4))]
                calendar = BusinessCalendar("c", time_zone=tz, week=week, holidays=holidays)
            a = to_us(dt.datetime.combine(start, dt.time(), UTC)) + rnd.randint(0, 48 * 60) * MINUTE_US
            running: list[tuple[int, int]] = []
            for _ in range(rnd.randint(1, 3)):
                b = a + rnd.randint(1, 40 * 24) * HOUR_US
                running.append((a, b))
                a = b + rnd.randint(1, 30) * HOUR_US
            if rnd.random() < 0.6:
                running[-1] = (running[-1][0], INF)
            amounts = sorted({rnd.randint(0, 200) * HOUR_US // 4 for _ in range(rnd.randint(1, 8))})
            if rnd.random() < 0.1:
                amounts = [0, 30 * DAY_US]
            assert reach_instants(calendar, running, amounts) == chained_reach(calendar, running, amounts)
