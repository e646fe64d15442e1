"""The TOML rules file: the shipped default and validation of bad files."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from handlers.cli import cmd_sla_check
from sla_rules import (
    KINDS,
    PRIORITIES,
    TIERS,
    URGENCIES,
    ItemFacts,
    RulesError,
    check_rules_file,
    evaluate,
    explain,
    format_duration,
    load_rules,
    parse_duration,
)
from sla_rules.policies import METRICS_BY_KIND

AT = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)

MINIMAL = """
schema = 1
version = "t1"
time_zone = "Asia/Shanghai"
[calendars."24x7"]
always_on = true
[calendars.biz]
time_zone = "Asia/Shanghai"
hours.mon = ["09:00-18:00"]

[[policies]]
id = "std"
version = 1
effective_from = 2026-01-01
calendar = "biz"
targets.fault.P1 = { response = "15m", restore = "4h", resolve = "8h", revisit = "1d" }
targets.complaint.P1 = { response = "15m", resolve = "8h" }
targets.service_request.P1 = { response = "15m", resolve = "8h" }
targets.inquiry.P1 = { response = "15m", resolve = "8h" }
targets.order.urgent = { provision = "5d", acceptance = "2d" }

[[rules]]
name = "diamond"
tier = ["diamond"]
policy = "std"

[[rules]]
name = "all"
policy = "std"
"""


class TestShippedRules:
    RULES = load_rules()

    def test_default_file_is_valid(self, tmp_path):
        """The shipped default file passes the checker."""
        from sla_rules import DEFAULT_RULES_PATH

        assert check_rules_file(DEFAULT_RULES_PATH) == []

    @pytest.mark.parametrize("tier", list(TIERS))
    @pytest.mark.parametrize("kind", KINDS)
    def test_every_tier_and_kind_has_targets(self, tier, kind):
        """Every tier x kind x priority class has a target for every metric of the kind."""
        classes = URGENCIES if kind == "order" else PRIORITIES
        for cls in classes:
            match = self.RULES.match(ItemFacts("C-X", tier, kind), cls, AT)
            assert match is not None
            for metric in METRICS_BY_KIND[kind]:
                assert match.policy.target(kind, cls, metric) is not None, (tier, kind, cls, metric)

    def test_diamond_is_tightest_and_around_the_clock(self):
        """Diamond P1 fault restore is tighter than every other tier, on 7x24."""

        def restore(tier):
            return self.RULES.match(ItemFacts("C-X", tier, "fault"), "P1", AT).policy

        assert restore("diamond").calendar_id == "24x7"
        assert restore("public").calendar_id == "cn-business"
        tightest = restore("diamond").target("fault", "P1", "restore")
        assert all(tightest <= restore(t).target("fault", "P1", "restore") for t in TIERS)

    def test_contract_override_wins_over_tier(self):
        """The sample contract customer gets its contract policy for faults, its tier for the rest."""
        assert self.RULES.match(ItemFacts("C-0001", "gold", "fault"), "P1", AT).policy.id == "contract-C-0001"
        assert self.RULES.match(ItemFacts("C-0001", "gold", "complaint"), "P1", AT).policy.id == "gold"

    def test_policy_version_by_effective_date(self):
        """The contract's version 2 applies from 2027-01-01 (Asia/Shanghai midnight)."""
        facts = ItemFacts("C-0001", "gold", "fault")
        before = dt.datetime(2026, 12, 31, 15, 59, tzinfo=dt.UTC)
        after = dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.UTC)
        assert self.RULES.match(facts, "P1", before).policy.version == 1
        assert self.RULES.match(facts, "P1", after).policy.version == 2

    def test_unknown_tier_falls_to_catch_all(self):
        """An item no specific rule matches gets the catch-all policy, and the trace says why."""
        match = self.RULES.match(ItemFacts("C-X", "public", "inquiry"), "P2", AT)
        assert match.rule.is_catch_all and match.policy.id == "public"
        assert any("tier 'public' not in ['diamond']" in line for line in match.why())


class TestValidation:
    # (what, replace this, with this, expected location fragment, expected reason fragment)
    CASES = [
        (
            "unknown tier",
            'tier = ["diamond"]',
            'tier = ["bronze"]',
            "rules[0].tier",
            "unknown value 'bronze'",
        ),
        (
            "negative target",
            'response = "15m"',
            'response = "-15m"',
            "targets.fault.P1.response",
            "negative target",
        ),
        (
            "zero target",
            'response = "15m"',
            'response = "0m"',
            "targets.fault.P1.response",
            "must be positive",
        ),
        ("bad duration", 'resolve = "8h"', 'resolve = "8 hours"', "targets.fault.P1.resolve", "bad duration"),
        (
            "metric not for the kind",
            'revisit = "1d"',
            'revisit = "1d", provision = "1d"',
            "targets.fault.P1.provision",
            "does not apply",
        ),
        (
            "unknown priority class",
            "targets.fault.P1",
            "targets.fault.P9",
            "targets.fault.P9",
            "unknown priority class",
        ),
        (
            "calendar without time zone",
            'time_zone = "Asia/Shanghai"\nhours',
            "hours",
            "calendars.biz",
            "calendar without time zone",
        ),
        (
            "unknown time zone",
            'time_zone = "Asia/Shanghai"\nhours',
            'time_zone = "Mars/Olympus"\nhours',
            "calendars.biz.time_zone",
            "unknown time zone",
        ),
        ("bad span", '"09:00-18:00"', '"18:00-09:00"', "calendars.biz.hours.mon", "start < end"),
        (
            "unknown calendar",
            'calendar = "biz"',
            'calendar = "moon"',
            "policies[0](id=std).calendar",
            "unknown calendar",
        ),
        (
            "unknown policy in a rule",
            'policy = "std"\n\n[[rules]]\nname = "all"',
            'policy = "nope"\n\n[[rules]]\nname = "all"',
            "rules[0].policy",
            "unknown policy",
        ),
        (
            "rule hidden by an earlier one",
            'name = "diamond"\ntier = ["diamond"]',
            'name = "diamond"',
            "rules[1]",
            "can never match",
        ),
        (
            "contract override after a tier rule",
            'name = "all"\npolicy = "std"',
            'name = "contract"\ncustomer_id = ["C-1"]\npolicy = "std"\n\n'
            '[[rules]]\nname = "all"\npolicy = "std"',
            "rules[1]",
            "put customer rules first",
        ),
        (
            "no final catch-all",
            'name = "all"\npolicy',
            'name = "all"\nkind = ["fault"]\npolicy',
            "rules[1]",
            "catch-all",
        ),
        (
            "misspelt key",
            "effective_from = 2026-01-01",
            'effective_from = 2026-01-01\ncalender = "biz"',
            "policies[0](id=std).calender",
            "unknown key",
        ),
        (
            "bad warnings",
            'calendar = "biz"',
            'calendar = "biz"\nwarnings = [0.5, 1.5]',
            "warnings",
            "strictly between 0 and 1",
        ),
        (
            "unknown ladder role",
            'calendar = "biz"',
            'calendar = "biz"\nladder = [{ role = "ceo", after = "1h" }]',
            "ladder[0]",
            "role must be",
        ),
        (
            "unknown reopen mode",
            'calendar = "biz"',
            'calendar = "biz"\nreopen = "restart"',
            "reopen",
            "unknown mode",
        ),
        (
            "unknown close_unresolved mode",
            'calendar = "biz"',
            'calendar = "biz"\nclose_unresolved = "ignore"',
            "close_unresolved",
            "unknown mode 'ignore' (allowed: stop, cancel)",
        ),
        (
            "holiday that is also a make-up day",
            "hours.mon",
            "holidays = [2026-02-14]\nmakeup_days = [2026-02-14]\nhours.mon",
            "makeup_days",
            "both a holiday",
        ),
        (
            "make-up day on a working weekday",
            "hours.mon",
            "makeup_days = [2026-03-02]\nhours.mon",
            "makeup_days",
            "already a working day",
        ),
        ("missing effective_from", "effective_from = 2026-01-01\n", "", "effective_from", "required"),
        (
            "an empty list where one is required",
            'tier = ["diamond"]',
            "tier = []",
            "rules[0].tier",
            "non-empty list",
        ),
        ("not TOML", "schema = 1", "schema = = 1", "2:", "not valid TOML"),
    ]

    @pytest.mark.parametrize(("what", "old", "new", "location", "reason"), CASES, ids=[c[0] for c in CASES])
    def test_bad_file_reports_file_location_and_reason(self, tmp_path, what, old, new, location, reason):
        """A broken rules file yields a FILE:LOCATION: reason problem naming the mistake."""
        assert old in MINIMAL, what
        path = tmp_path / "rules.toml"
        path.write_text(MINIMAL.replace(old, new, 1), encoding="utf-8")
        problems = check_rules_file(path)
        text = "\n".join(str(p) for p in problems)
        assert any(location in p.location and reason in p.reason for p in problems), text
        assert all(str(p).startswith(f"{path}:") for p in problems)

    def test_minimal_file_is_valid(self, tmp_path):
        """The fixture file itself is valid, so each case tests exactly one mistake."""
        path = tmp_path / "rules.toml"
        path.write_text(MINIMAL, encoding="utf-8")
        assert check_rules_file(path) == []

    @pytest.mark.parametrize(
        ("line", "mode"),
        [("", "stop"), ('close_unresolved = "stop"\n', "stop"), ('close_unresolved = "cancel"\n', "cancel")],
    )
    def test_close_unresolved_is_stop_unless_the_policy_says_cancel(self, tmp_path, line, mode):
        """What closing an unresolved item does to its clocks is a per-policy setting, stop by default."""
        path = tmp_path / "rules.toml"
        path.write_text(
            MINIMAL.replace('calendar = "biz"\n', f'calendar = "biz"\n{line}', 1), encoding="utf-8"
        )
        assert check_rules_file(path) == []
        (policy,) = load_rules(path).policies["std"]
        assert policy.close_unresolved == mode

    def test_the_default_rules_stop_clocks_of_items_closed_unresolved(self):
        """Every shipped policy keeps the default: such clocks stop, met or breached."""
        assert {p.close_unresolved for vs in load_rules().policies.values() for p in vs} == {"stop"}

    def test_load_rules_raises_with_every_problem(self, tmp_path):
        """load_rules refuses an invalid file and its message lists every problem, one per line."""
        path = tmp_path / "rules.toml"
        path.write_text(
            MINIMAL.replace('tier = ["diamond"]', 'tier = ["bronze"]').replace('"8h"', '"-8h"', 1),
            encoding="utf-8",
        )
        with pytest.raises(RulesError) as info:
            load_rules(path)
        lines = str(info.value).splitlines()
        assert len(lines) == len(info.value.problems) == 2
        assert all(line.startswith(str(path)) for line in lines)

    def test_location_carries_the_line_of_the_table(self, tmp_path):
        """Problems inside [[policies]] point at the line of that table header."""
        path = tmp_path / "rules.toml"
        path.write_text(MINIMAL.replace('"4h"', '"-4h"'), encoding="utf-8")
        (problem,) = check_rules_file(path)
        header_line = MINIMAL.splitlines().index("[[policies]]") + 1
        assert problem.location.startswith(f"{header_line}:")

    def test_missing_file(self, tmp_path):
        """A missing file is a problem, not a crash."""
        assert "cannot read" in check_rules_file(tmp_path / "nope.toml")[0].reason


class TestDurations:
    @pytest.mark.parametrize(
        ("text", "minutes"), [("15m", 15), ("4h", 240), ("1d", 1440), ("1d12h", 2160), ("7h30m", 450)]
    )
    def test_parse(self, text, minutes):
        """Durations read as d/h/m of business time."""
        assert parse_duration(text) == dt.timedelta(minutes=minutes)

    @pytest.mark.parametrize("text", ["", "4", "4 hours", "h4", "-1h", 5])
    def test_rejects(self, text):
        """Anything else is refused with a hint."""
        with pytest.raises(ValueError):
            parse_duration(text)

    def test_format_round_trips(self):
        """format_duration writes what parse_duration reads."""
        assert format_duration(parse_duration("1d13h30m")) == "1d13h30m"


NO_ORDERS = MINIMAL.replace('targets.order.urgent = { provision = "5d", acceptance = "2d" }\n', "")


def history(*steps: tuple[str, str, dict]) -> list[dict]:
    """An item's events as the engine reads them: (event type, UTC time on 2026-06-01, payload)."""
    return [
        {
            "event_id": f"e{n}",
            "event_type": event_type,
            "payload": payload,
            "occurred_at": dt.datetime.fromisoformat(f"2026-06-01T{when}+00:00"),
        }
        for n, (event_type, when, payload) in enumerate(steps)
    ]


class TestNoPausing:
    """A desk whose contract stops the clock for nothing writes an empty list."""

    @pytest.mark.parametrize("key", ["pause_metrics", "pause_statuses"])
    def test_an_empty_pause_list_is_accepted(self, tmp_path, key):
        """`pause_metrics = []` (or `pause_statuses = []`) is a valid policy: no pausing."""
        path = tmp_path / "rules.toml"
        path.write_text(
            MINIMAL.replace('calendar = "biz"\n', f'calendar = "24x7"\n{key} = []\n', 1), encoding="utf-8"
        )
        assert check_rules_file(path) == []
        (policy,) = load_rules(path).policies["std"]
        assert getattr(policy, key) == frozenset()
        assert not any(policy.pauses(metric, "pending_customer") for metric in METRICS_BY_KIND["fault"])

    def test_waiting_for_the_customer_does_not_stop_the_clock(self, tmp_path):
        """Under "no pausing" a ticket pending the customer keeps using its resolve time."""
        path = tmp_path / "rules.toml"
        path.write_text(
            MINIMAL.replace('calendar = "biz"\n', 'calendar = "24x7"\npause_metrics = []\n', 1),
            encoding="utf-8",
        )
        events = history(
            ("ticket.opened", "09:00:00", {"kind": "complaint", "priority": "P1"}),
            ("ticket.status_changed", "10:00:00", {"status": "pending_customer"}),
        )
        at = dt.datetime(2026, 6, 1, 16, 0, tzinfo=dt.UTC)
        resolve = evaluate(ItemFacts("C-1", "gold", "complaint", "P1"), events, load_rules(path), at).metrics[
            "resolve"
        ]
        assert resolve.paused is False and resolve.paused_by_reason == {}
        assert resolve.elapsed == dt.timedelta(hours=7)

    def test_a_pause_list_of_something_else_than_strings_is_still_refused(self, tmp_path):
        """Only the empty list is new: a list of numbers remains a mistake."""
        path = tmp_path / "rules.toml"
        path.write_text(
            MINIMAL.replace('calendar = "biz"\n', 'calendar = "biz"\npause_metrics = [1]\n', 1),
            encoding="utf-8",
        )
        (problem,) = check_rules_file(path)
        assert "pause_metrics" in problem.location and "list of strings" in problem.reason


class TestKindsWithoutTargets:
    """A deployment gives targets only for the kinds it uses (this one takes no orders)."""

    def test_a_catch_all_without_order_targets_is_accepted(self, tmp_path):
        """No problem, but one warning per rule sending orders to a policy without order targets."""
        path = tmp_path / "rules.toml"
        path.write_text(NO_ORDERS, encoding="utf-8")
        assert check_rules_file(path) == []
        warnings = load_rules(path).warnings
        assert [w.location.split(":")[1] for w in warnings] == ["rules[0]", "rules[1]"]
        assert all(
            "sends order items to std v1, which has no targets for that kind" in w.reason for w in warnings
        )
        assert all(str(w).startswith(f"{path}:") for w in warnings)

    def test_a_file_that_measures_every_kind_has_no_warnings(self):
        """The shipped rules cover every kind, so checking them says nothing."""
        assert load_rules().warnings == ()

    def test_an_order_then_has_no_clock_and_the_rules_say_why(self, tmp_path):
        """The order is valid, it is simply not measured, and the reason names kind, policy and rule."""
        path = tmp_path / "rules.toml"
        path.write_text(NO_ORDERS, encoding="utf-8")
        rules = load_rules(path)
        order = ItemFacts("C-1", "public", "order", urgency="urgent")
        events = history(("order.received", "09:00:00", {"product": "leased_line", "urgency": "urgent"}))
        assert evaluate(order, events, rules, AT.replace(hour=12)).metrics == {}
        assert (
            rules.not_measured(order, "urgent", AT)
            == "no targets for kind order in policy std v1 (rule 'all')"
        )

    def test_sla_explain_says_why_an_order_has_no_clock(self, tmp_path):
        """`keydesk sla explain` gives the reason, not a bare "none started"."""
        path = tmp_path / "rules.toml"
        path.write_text(NO_ORDERS, encoding="utf-8")
        order = ItemFacts("C-1", "public", "order", urgency="urgent")
        events = history(("order.received", "09:00:00", {"product": "leased_line", "urgency": "urgent"}))
        text = explain(order, events, load_rules(path), AT.replace(hour=12))
        assert "none started: not measured, no targets for kind order in policy std v1 (rule 'all')" in text

    def test_a_measured_item_has_no_reason(self, tmp_path):
        """A fault of the same deployment is measured: nothing to explain."""
        path = tmp_path / "rules.toml"
        path.write_text(NO_ORDERS, encoding="utf-8")
        assert load_rules(path).not_measured(ItemFacts("C-1", "public", "fault", "P1"), "P1", AT) is None

    def test_a_priority_class_without_targets_is_not_measured_either(self, tmp_path):
        """Targets for P1 faults only: a P3 fault has no clock, and the reason names the class."""
        rules = load_rules(self._write(tmp_path, MINIMAL))
        reason = rules.not_measured(ItemFacts("C-1", "public", "fault", "P3"), "P3", AT)
        assert reason == "no targets for fault P3 in policy std v1 (rule 'all')"

    def test_a_rule_that_names_a_kind_its_policy_cannot_measure_is_refused(self, tmp_path):
        """Writing `kind = ["order"]` asks for orders to be measured: without order targets that is a
        mistake."""
        text = NO_ORDERS.replace(
            'name = "diamond"\ntier = ["diamond"]',
            'name = "diamond"\ntier = ["diamond"]\nkind = ["fault", "order"]',
        )
        (problem,) = check_rules_file(self._write(tmp_path, text))
        assert problem.location.endswith(":rules[0]")
        assert (
            problem.reason
            == "rule 'diamond' names kind order but sends it to std v1, which has no order targets"
        )

    def test_sla_check_warns_and_succeeds(self, tmp_path, capsys):
        """`keydesk sla check` prints each warning as FILE:LINE:where: reason and exits 0."""
        path = self._write(tmp_path, NO_ORDERS)
        assert cmd_sla_check(SimpleNamespace(file=str(path)), None) == 0
        out, err = capsys.readouterr()
        lines = err.splitlines()
        assert len(lines) == 2 and all(line.startswith(f"warning: {path}:") for line in lines)
        assert "which has no targets for that kind" in lines[0]
        assert out.startswith(f"{path}: ok,") and out.rstrip().endswith("2 warning(s)")

    @staticmethod
    def _write(tmp_path, text: str):
        path = tmp_path / "rules.toml"
        path.write_text(text, encoding="utf-8")
        return path
