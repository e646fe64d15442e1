"""The report oracle gives the hand-computed figures of small, readable scenarios.

All scenarios happen on Monday 2026-11-23 (Beijing time) unless a test says
otherwise; diamond, platinum and gold policies run on 7x24 calendars, so
business seconds equal calendar seconds there.
"""

from __future__ import annotations

import random
import subprocess
import sys
import uuid
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from sla_rules import load_rules
from tests.builders import at, event, fault, order, ticket
from tests.month_of_events import generate_month
from tests.report_oracle import DIMENSIONS, expected_report, replay_steps

ZONE = ZoneInfo("Asia/Shanghai")
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def registered(customer: str, tier: str, when: str = "08:00", **payload):
    return event("customer.registered", customer, when, customer=customer, tier=tier, **payload)


def report(
    events, rules, *, as_of, group_by=(), steps=(), start=("00:00", "2026-11-23"), end=("00:00", "2026-11-24")
):
    return expected_report(
        events,
        rules,
        period_start=at(*start),
        period_end=at(*end),
        as_of=as_of,
        group_by=list(group_by),
        zone=ZONE,
        steps=steps,
    )


def late_diamond_fault():
    """Diamond P1 fault: acknowledged in 3 min, restored at 12:00 against 11:00; acked 11:40."""
    return [
        registered("C-D", "diamond", region="广州"),
        fault("F-1", "reported", "09:00", customer="C-D"),
        fault("F-1", "acknowledged", "09:03", customer="C-D"),
        event(
            "sla.escalation_acknowledged",
            "F-1",
            "11:40",
            customer="C-D",
            item_kind="fault",
            metric="restore",
            cycle=1,
            note="处理中",
        ),
        fault("F-1", "restored", "12:00", customer="C-D"),
    ]


def gold_tickets():
    """Gold complaints P1 (response 30m, resolve 8h): one paused, one left running."""
    return [
        registered("C-G", "gold"),
        ticket("T-1", "opened", "09:00", customer="C-G", priority="P1"),
        ticket("T-1", "acknowledged", "09:10", customer="C-G"),
        ticket("T-1", "status_changed", "09:30", customer="C-G", status="pending_customer"),
        ticket("T-2", "opened", "09:00", customer="C-G", priority="P1"),
        ticket("T-2", "acknowledged", "09:05", customer="C-G"),
    ]


def closed_items():
    """Three closed items, two of them revisited (F-1 twice), and a cancelled order."""
    c = {"customer": "C-R"}
    return [
        registered("C-R", "platinum"),
        fault("F-1", "reported", "09:00", **c),
        fault("F-1", "restored", "10:00", **c),
        fault("F-1", "closed", "10:30", **c),
        fault("F-1", "revisit_recorded", "11:00", satisfaction=4, **c),
        fault("F-1", "revisit_recorded", "15:00", satisfaction=2, **c),
        fault("F-2", "reported", "09:00", **c),
        fault("F-2", "restored", "10:00", **c),
        fault("F-2", "closed", "10:30", **c),
        fault("F-2", "revisit_recorded", "11:00", satisfaction=5, **c),
        ticket("T-1", "opened", "09:00", **c),
        ticket("T-1", "resolved", "10:00", **c),
        ticket("T-1", "closed", "11:00", **c),
        order("O-1", "received", "09:00", **c),
        order("O-1", "cancelled", "10:00", **c),
        fault("F-3", "reported", "09:00", **c),
    ]


class TestClockOutcomes:
    def test_a_diamond_fault_restored_late_is_a_repair_breach(self, rules):
        """Restore (2 h) met at 12:00 against 11:00: breached, met late, with its escalation."""
        events = late_diamond_fault()
        got = report(events, rules, as_of=at("12:30"), steps=replay_steps(events, rules))
        total = got["total"]
        assert (total["items"], total["response_met"], total["response_met_pct"]) == (1, 1, 100.0)
        assert (total["repair_met"], total["repair_breached"], total["repair_met_pct"]) == (0, 1, 0.0)
        assert (total["mtta_business_s"], total["mtta_calendar_s"]) == (180.0, 180.0)
        assert (total["mttr_business_s"], total["mttr_calendar_s"]) == (3 * 3600.0, 3 * 3600.0)
        # resolve (4 h, due 13:00) is still running and not overdue at 12:30
        assert total["breaches"] == 1 and got["breaches_by_tier"] == {"diamond": 1}
        [breach] = got["breaches"]
        assert {k: v for k, v in breach.items() if k != "steps"} == {
            "customer_id": "C-D",
            "item_kind": "fault",
            "item_id": "F-1",
            "metric": "restore",
            "cycle": 1,
            "tier": "diamond",
            "priority": "P1",
            "deadline": "2026-11-23T03:00:00+00:00",
            "met_at": "2026-11-23T04:00:00+00:00",
            "overdue": False,
        }
        assert [
            (s["event_type"], s["occurred_at"][11:16], s["threshold"] or s["role"]) for s in breach["steps"]
        ] == [
            ("sla.warning_reached", "02:00", "50%"),
            ("sla.warning_reached", "02:30", "75%"),
            ("sla.warning_reached", "02:48", "90%"),
            ("sla.breached", "03:00", None),
            ("sla.escalation_due", "03:00", "account_manager"),
            ("sla.escalation_due", "03:30", "department_head"),
            ("sla.escalation_acknowledged", "03:40", None),
        ]
        assert (breach["steps"][-1]["actor"], breach["steps"][-1]["note"]) == ("tester", "处理中")
        assert [b["count"] for b in got["mttr_distribution"]] == [0, 0, 1, 0, 0, 0, 0]

    def test_an_open_paused_clock_is_open_and_an_unpaused_one_past_due_is_overdue(self, rules):
        """Next morning: T-1's paused resolve is open; T-2's (due 17:00) counts as breached."""
        got = report(gold_tickets(), rules, as_of=at("09:00", "2026-11-24"))
        total = got["total"]
        assert (total["response_met"], total["mtta_business_s"]) == (2, 450.0)
        assert (total["repair_met"], total["repair_breached"], total["repair_open"]) == (0, 1, 1)
        assert total["repair_met_pct"] == 0.0 and total["mttr_business_s"] is None
        assert total["paused_s"] == {}  # measured up to T-1's latest event, when it paused
        [breach] = got["breaches"]
        assert (
            breach["item_id"],
            breach["metric"],
            breach["overdue"],
            breach["met_at"],
            breach["deadline"],
        ) == ("T-2", "resolve", True, None, "2026-11-23T09:00:00+00:00")

    def test_before_its_deadline_a_running_clock_is_open(self, rules):
        """The same tickets at 16:00: nothing is breached yet, and open clocks are no percentage."""
        total = report(gold_tickets(), rules, as_of=at("16:00"))["total"]
        assert (total["repair_open"], total["repair_breached"], total["breaches"]) == (2, 0, 0)
        assert total["repair_met_pct"] is None

    def test_paused_time_counts_out_and_is_reported_by_reason(self, rules):
        """Paused 10:00-12:00 for a third party: 3 h business, 5 h calendar, 2 h paused."""
        c = {"customer": "C-G"}
        events = [
            registered("C-G", "gold"),
            ticket("T-3", "opened", "09:00", priority="P1", **c),
            ticket("T-3", "acknowledged", "09:05", **c),
            ticket("T-3", "status_changed", "10:00", status="pending_third_party", **c),
            ticket("T-3", "status_changed", "12:00", status="in_progress", **c),
            ticket("T-3", "resolved", "14:00", **c),
        ]
        total = report(events, rules, as_of=at("15:00"))["total"]
        assert (total["repair_met"], total["repair_met_pct"]) == (1, 100.0)
        assert (total["mttr_business_s"], total["mttr_calendar_s"]) == (3 * 3600.0, 5 * 3600.0)
        assert total["paused_s"] == {"pending_third_party": 2 * 3600.0}

    def test_every_cycle_of_a_reopened_clock_counts(self, rules):
        """C-0001's contract reopens as a new cycle: cycle 1 met in 1 h, cycle 2 late (1h30)."""
        c = {"customer": "C-0001"}
        events = [
            registered("C-0001", "diamond"),
            fault("F-1", "reported", "09:00", **c),
            fault("F-1", "acknowledged", "09:02", **c),
            fault("F-1", "restored", "10:00", **c),
            fault("F-1", "reopened", "11:00", **c),
            fault("F-1", "restored", "13:00", **c),
        ]
        got = report(events, rules, as_of=at("13:00"))
        total = got["total"]
        assert (total["repair_met"], total["repair_breached"], total["repair_met_pct"]) == (1, 1, 50.0)
        assert (total["mttr_business_s"], total["mttr_calendar_s"]) == (5400.0, 5400.0)
        assert (total["mtta_business_s"], total["response_met"]) == (120.0, 1)
        # the fault's resolve clock (3 h) ran past 12:00 too; breaches sort by deadline
        assert [(b["metric"], b["cycle"], b["deadline"][11:16]) for b in got["breaches"]] == [
            ("resolve", 1, "04:00"),
            ("restore", 2, "04:30"),
        ]
        assert got["groups"][0]["key"] == {} and got["groups"][0]["breaches"] == 2
        assert [b["count"] for b in got["mttr_distribution"]] == [0, 1, 1, 0, 0, 0, 0]


class TestGroups:
    def test_grouping_by_tier_splits_the_items(self, rules):
        """A diamond fault and an unprofiled customer's inquiry land in two groups."""
        events = late_diamond_fault() + [
            ticket("T-9", "opened", "09:00", customer="C-X", kind="inquiry", priority="P1"),
            ticket("T-9", "acknowledged", "09:30", customer="C-X"),
        ]
        got = report(events, rules, as_of=at("12:30"), group_by=["tier"])
        assert [(g["key"], g["items"], g["response_met"], g["repair_breached"]) for g in got["groups"]] == [
            ({"tier": "diamond"}, 1, 1, 1),
            ({"tier": "public"}, 1, 1, 0),
        ]
        assert got["groups"][1]["mtta_business_s"] == 1800.0
        assert got["total"]["items"] == 2 and got["total"]["response_met"] == 2

    def test_missing_profile_fields_group_under_a_dash(self, rules):
        """No profile: tier public (its policy), region and account manager '-'."""
        events = late_diamond_fault() + [
            ticket("T-9", "opened", "09:00", customer="C-X", kind="inquiry", priority="P1")
        ]
        got = report(
            events,
            rules,
            as_of=at("12:30"),
            group_by=["account_manager", "region", "policy", "kind", "priority"],
        )
        assert [g["key"] for g in got["groups"]] == [
            {
                "account_manager": "-",
                "region": "-",
                "policy": "public v1",
                "kind": "ticket",
                "priority": "P1",
            },
            {
                "account_manager": "AM-1",
                "region": "广州",
                "policy": "diamond v1",
                "kind": "fault",
                "priority": "P1",
            },
        ]

    def test_an_item_is_measured_under_the_profile_as_of_its_latest_event(self, rules):
        """Upgraded to diamond at 12:00: items whose latest event is at or after it follow."""
        c = {"customer": "C-U"}
        events = [
            registered("C-U", "vip", account_manager={"id": "AM-1", "name": "李敏"}),
            event(
                "customer.updated",
                "C-U",
                "12:00",
                tier="diamond",
                account_manager={"id": "AM-2", "name": "王芳"},
                **c,
            ),
            fault("F-1", "reported", "09:00", **c),
            fault("F-1", "restored", "10:00", **c),
            fault("F-2", "reported", "09:05", **c),
            fault("F-2", "acknowledged", "12:00", **c),
        ]
        got = report(events, rules, as_of=at("12:00"), group_by=["tier", "account_manager", "policy"])
        assert [
            (g["key"]["tier"], g["key"]["account_manager"], g["key"]["policy"], g["items"])
            for g in got["groups"]
        ] == [("diamond", "AM-2", "diamond v1", 1), ("vip", "AM-1", "vip v1", 1)]

    def test_revisit_rate_and_satisfaction(self, rules):
        """2 of 3 closed items revisited; the cancelled order is no closure; latest score counts."""
        total = report(closed_items(), rules, as_of=at("16:00"))["total"]
        assert (total["items"], total["closed"]) == (5, 3)
        assert total["revisit_rate_pct"] == pytest.approx(200 / 3)
        assert total["avg_satisfaction"] == 3.5  # F-1's latest (2) and F-2's (5)

    def test_no_items_no_percentages(self, rules):
        """A period with nothing in it: no groups, zero counts, every ratio null."""
        got = report(
            closed_items(),
            rules,
            as_of=at("16:00"),
            group_by=["tier"],
            start=("00:00", "2026-11-24"),
            end=("00:00", "2026-11-25"),
        )
        assert got["groups"] == [] and got["breaches"] == [] and got["weekly_trend"] == []
        assert got["total"]["items"] == 0 and got["total"]["avg_satisfaction"] is None
        assert all(got["total"][f"{f}_met_pct"] is None for f in ("response", "repair", "provision"))

    def test_unknown_dimensions_are_refused(self, rules):
        """Only the documented dimensions can group a report."""
        assert "account_manager" in DIMENSIONS
        with pytest.raises(ValueError):
            report(closed_items(), rules, as_of=at("16:00"), group_by=["colour"])


class TestOrderProofing:
    def test_duplicates_and_late_events_change_nothing(self, rules):
        """Shuffled arrival, repeated events and a profile arriving last give the same report."""
        events = late_diamond_fault() + gold_tickets() + closed_items()
        steps = replay_steps(events, rules)
        expected = report(events, rules, as_of=at("16:00"), group_by=["tier", "kind"], steps=steps)
        messy = events[1:] + events[:1] + events[3:9]
        random.Random(3).shuffle(messy)
        assert (
            report(messy, rules, as_of=at("16:00"), group_by=["tier", "kind"], steps=steps + steps[:4])
            == expected
        )

    def test_a_late_event_can_turn_a_rejected_transition_into_an_applied_one(self, rules):
        """A close that arrives before its restore still counts once the restore is in."""
        c = {"customer": "C-R"}
        in_order = [
            registered("C-R", "platinum"),
            fault("F-1", "reported", "09:00", **c),
            fault("F-1", "restored", "10:00", **c),
            fault("F-1", "closed", "10:30", **c),
        ]
        late = [in_order[0], in_order[1], in_order[3], in_order[2]]
        assert report(late, rules, as_of=at("11:00"))["total"]["closed"] == 1
        assert report(late, rules, as_of=at("11:00")) == report(in_order, rules, as_of=at("11:00"))


class TestPeriod:
    def test_period_and_weeks_are_local_shanghai_dates(self, rules):
        """November in Beijing time: 00:00 on the 1st is in, 00:00 on 1 December is out."""
        openings = [
            ("23:59:59", "2026-10-31"),
            ("00:00", "2026-11-01"),
            ("07:00", "2026-11-02"),
            ("23:30", "2026-11-30"),
            ("00:00", "2026-12-01"),
        ]
        events = [fault(f"F-{n}", "reported", at(*when), customer="C-X") for n, when in enumerate(openings)]
        got = report(
            events,
            rules,
            as_of=at("00:00", "2026-12-02"),
            start=("00:00", "2026-11-01"),
            end=("00:00", "2026-12-01"),
        )
        assert got["period"] == {"from": "2026-10-31T16:00:00+00:00", "to": "2026-11-30T16:00:00+00:00"}
        assert got["total"]["items"] == 3 and got["timezone"] == "Asia/Shanghai"
        # 1 Nov 2026 is a Sunday; 07:00 on Monday 2 Nov is still Sunday in UTC
        assert [(w["week_start"], w["items"]) for w in got["weekly_trend"]] == [
            ("2026-10-26", 1),
            ("2026-11-02", 1),
            ("2026-11-30", 1),
        ]


class TestIndependence:
    def test_the_oracle_does_not_import_the_production_report_path(self):
        """Importing the oracle pulls in neither the view, the projection, the sink nor SQL."""
        forbidden = [
            "streams.customer_view",
            "streams.item_sla",
            "streams.sql_projection",
            "streams.sql_sink",
            "handlers.reports.queries",
            "schemas.reporting_db",
            "schemas.reporting_tables",
            "sqlalchemy",
        ]
        code = f"import sys, tests.report_oracle; print([m for m in {forbidden!r} if m in sys.modules])"
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
        )
        assert out.stdout.strip() == "[]"


class TestOnAMonth:
    def test_the_figures_of_a_generated_month_add_up(self, rules):
        """Groups sum to the total, breaches list the breached clocks, weeks cover every item."""
        events = generate_month(customers=80, month_start=datetime(2026, 11, 1, tzinfo=ZONE))
        got = expected_report(
            events,
            rules,
            period_start=datetime(2026, 11, 1, tzinfo=ZONE),
            period_end=datetime(2026, 12, 1, tzinfo=ZONE),
            as_of=datetime(2026, 12, 1, tzinfo=ZONE),
            group_by=["tier", "kind"],
            zone=ZONE,
            steps=[],
        )
        total = got["total"]
        for name in ("items", "response_met", "repair_breached", "provision_open", "breaches", "closed"):
            assert sum(g[name] for g in got["groups"]) == total[name], name
        assert len(got["breaches"]) == total["breaches"] == sum(got["breaches_by_tier"].values())
        assert any(b["overdue"] for b in got["breaches"])
        assert sum(w["items"] for w in got["weekly_trend"]) == total["items"]
        assert {g["key"]["tier"] for g in got["groups"]} == {
            "diamond",
            "platinum",
            "gold",
            "vip",
            "business",
            "public",
        }
        assert 0 < total["repair_met_pct"] < 100 and 0 < total["revisit_rate_pct"] < 100
        assert set(total["paused_s"]) == {"pending_customer", "pending_third_party"}


def cancelling_rules(tier: str):
    """The shipped rules with ``tier``'s policy cancelling the clocks of items closed unresolved."""
    from sla_rules import DEFAULT_RULES_PATH, parse_rules

    marker = f'id = "{tier}"\nversion = 1\n'
    text = DEFAULT_RULES_PATH.read_text(encoding="utf-8")
    rules, problems = parse_rules(text.replace(marker, marker + 'close_unresolved = "cancel"\n', 1))
    assert rules is not None, problems
    return rules


def duplicate_fault():
    """A platinum P1 fault nobody acknowledged, closed after 40 min as a duplicate."""
    c = {"customer": "C-P"}
    return [
        registered("C-P", "platinum"),
        fault("F-1", "reported", "09:00", **c),
        fault("F-1", "closed", "09:40", closed_unresolved="duplicate", **c),
    ]


class TestCloseWithoutResolution:
    def test_under_stop_its_clocks_count_as_stopped_at_the_close(self, rules):
        """Response (10 min) breached and met late at the close; restore (3 h) met; the item is closed."""
        got = report(duplicate_fault(), rules, as_of=at("12:00"))
        total = got["total"]
        assert (total["items"], total["closed"]) == (1, 1)
        assert (total["response_met"], total["response_breached"], total["response_open"]) == (0, 1, 0)
        assert (total["repair_met"], total["repair_breached"], total["repair_open"]) == (1, 0, 0)
        assert total["mttr_business_s"] == 40 * 60.0
        assert [(b["metric"], b["met_at"]) for b in got["breaches"]] == [
            ("response", "2026-11-23T01:40:00+00:00")
        ]

    def test_under_cancel_its_clocks_count_nowhere(self, rules):
        """The policy cancels: no met, no breach, no open clock; the item is still opened and closed."""
        total = report(duplicate_fault(), cancelling_rules("platinum"), as_of=at("12:00"))["total"]
        assert (total["items"], total["closed"], total["breaches"]) == (1, 1, 0)
        for family in ("response", "repair"):
            assert (total[f"{family}_met"], total[f"{family}_breached"], total[f"{family}_open"]) == (
                0,
                0,
                0,
            ), family
        assert total["response_met_pct"] is None and total["mtta_business_s"] is None


class TestNotMeasured:
    def test_a_figure_without_any_clock_in_the_group_is_not_measured(self, rules):
        """Tickets only: response and repair are measured, provision is not (null, never 0 %)."""
        total = report(gold_tickets(), rules, as_of=at("12:00"))["total"]
        assert (total["response_measured"], total["repair_measured"]) == (True, True)
        assert (total["provision_measured"], total["provision_met_pct"]) == (False, None)

    def test_a_running_clock_is_measured_before_it_is_decided(self, rules):
        """T-2's resolve clock runs: repair is measured though no percentage exists yet."""
        events = [registered("C-G", "gold"), *gold_tickets()[4:]]
        total = report(events, rules, as_of=at("10:00"))["total"]
        assert (total["repair_measured"], total["repair_met_pct"]) == (True, None)

    def test_without_a_revisit_clock_the_revisit_rate_is_not_measured(self, rules):
        """Nothing closed yet, so no revisit clock has started."""
        total = report(gold_tickets(), rules, as_of=at("12:00"))["total"]
        assert (total["revisit_measured"], total["revisit_rate_pct"]) == (False, None)

    def test_a_close_without_resolution_starts_a_revisit_clock_only_under_stop(self, rules):
        """Under stop the duplicate awaits its revisit (0 %); under cancel the rate is not measured."""
        stop = report(duplicate_fault(), rules, as_of=at("12:00"))["total"]
        assert (stop["closed"], stop["revisit_measured"], stop["revisit_rate_pct"]) == (1, True, 0.0)
        cancel = report(duplicate_fault(), cancelling_rules("platinum"), as_of=at("12:00"))["total"]
        assert (cancel["closed"], cancel["revisit_measured"], cancel["revisit_rate_pct"]) == (1, False, None)


class TestEventsAtOneInstant:
    def test_an_acknowledgement_listed_before_its_report_still_meets_the_response(self, rules):
        """Same occurred_at and recorded_at, the ack first in the file: the lifecycle orders them."""
        c = {"customer": "C-P"}
        for _ in range(20):
            events = [
                registered("C-P", "platinum"),
                fault("F-1", "acknowledged", "09:00", event_id=str(uuid.uuid4()), **c),
                fault("F-1", "reported", "09:00", event_id=str(uuid.uuid4()), **c),
            ]
            total = report(events, rules, as_of=at("12:00"))["total"]
            assert (total["response_met"], total["mtta_business_s"]) == (1, 0.0)

    def test_events_either_order_allows_follow_the_file_never_the_ids(self, rules):
        """Raised to P1 at the acknowledgement: priority first breaches the response, ack first meets it."""
        c = {"customer": "C-G"}
        outcomes = set()
        for attempt in range(20):
            opened = ticket("T-1", "opened", "09:00", priority="P4", **c)  # gold P4 response 8h, P1 30m
            ack = ticket("T-1", "acknowledged", "10:00", event_id=str(uuid.uuid4()), **c)
            raised = ticket(
                "T-1", "priority_changed", "10:00", priority="P1", event_id=str(uuid.uuid4()), **c
            )
            listed = [ack, raised] if attempt % 2 else [raised, ack]
            total = report([registered("C-G", "gold"), opened, *listed], rules, as_of=at("12:00"))["total"]
            outcomes.add((attempt % 2, total["response_met"], total["response_breached"]))
        assert outcomes == {(1, 1, 0), (0, 0, 1)}
