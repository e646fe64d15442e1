"""The compliance report's figures, from hand-built reporting rows, on SQLite and PostgreSQL.

Each test inserts the few rows a situation needs and checks the figure that
``docs/compliance_reports.md`` defines for it, computed by hand.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, text

from handlers.identity.roles import CUSTOMER_READ, CustomerFacts, Identity, may_for_customer, report_scope
from handlers.local.postgres_server import create_database, drop_database
from handlers.reports.arguments import DIMENSIONS, parse_group_by, parse_period
from handlers.reports.queries import compliance_report, week_starts
from schemas.reporting_db import open_engine, upgrade
from schemas.reporting_tables import Customer, Item, Revisit, SlaOutcome, SlaPausedTime, SlaStep

BEIJING = ZoneInfo("Asia/Shanghai")
PERIOD = (datetime(2026, 11, 1, tzinfo=BEIJING), datetime(2026, 12, 1, tzinfo=BEIJING))
AS_OF = datetime(2026, 11, 30, 12, tzinfo=BEIJING)
HOUR = 3600.0


def local(day: int, clock: str = "09:00", month: int = 11) -> datetime:
    """An instant in Beijing on a day of November 2026 (the 23rd is a Monday)."""
    return datetime.fromisoformat(f"2026-{month:02d}-{day:02d}T{clock}+08:00")


# -- the databases ---------------------------------------------------------------------

REPORT_TABLES = (Item, SlaOutcome, SlaPausedTime, Revisit, SlaStep)


@pytest.fixture(scope="session")
def postgres_reporting(postgres_url):
    """One migrated PostgreSQL database for the session; tests empty it before use."""
    url = create_database(postgres_url, "report")
    engine = open_engine(url)
    upgrade(engine)
    yield engine
    engine.dispose()
    drop_database(postgres_url, url)


@pytest.fixture(params=["sqlite", "postgres"])
def engine(request, tmp_path):
    """A migrated reporting database of each kind, with no rows from other tests.

    PostgreSQL is emptied with TRUNCATE rather than created per test: a new
    database costs half a second, a TRUNCATE a few milliseconds.
    """
    if request.param == "postgres":
        postgres = request.getfixturevalue("postgres_reporting")
        tables = ", ".join(t.__tablename__ for t in REPORT_TABLES)
        with postgres.begin() as connection:
            connection.execute(text(f"TRUNCATE {tables}"))
        yield postgres
        return
    sqlite = open_engine(f"sqlite:///{tmp_path / 'report.sqlite'}")
    upgrade(sqlite)
    yield sqlite
    sqlite.dispose()


# -- rows ------------------------------------------------------------------------------


def item(
    item_id: str,
    kind: str = "fault",
    *,
    opened: datetime | None = None,
    customer: str = "C-1",
    tier: str = "diamond",
    closed: bool = False,
    state: str = "dispatched",
    **columns,
) -> dict:
    opened = opened or local(10)
    return {
        "customer_id": customer,
        "kind": kind,
        "item_id": item_id,
        "state": state,
        "closed": closed,
        "opened_at": opened,
        "updated_at": opened,
        "closed_at": None,
        "last_event_at": opened,
        "priority": "P1",
        "subtype": None,
        "tier": tier,
        "tier_assumed": False,
        "region": "广州",
        "account_manager_id": "AM-1",
        "account_manager_name": "李敏",
        "policy": f"{tier} v1",
        "reopen_count": 0,
        "revisit_count": 0,
        "last_satisfaction": None,
        "attributes": {},
        "milestones": {},
    } | columns


def clock(
    of: dict,
    metric: str,
    state: str,
    *,
    cycle: int = 1,
    deadline: datetime | None = None,
    met_at: datetime | None = None,
    business: float = 0.0,
    paused: bool = False,
    **columns,
) -> dict:
    started = of["opened_at"]
    return {
        "customer_id": of["customer_id"],
        "item_kind": of["kind"],
        "item_id": of["item_id"],
        "metric": metric,
        "cycle": cycle,
        "policy_id": of["tier"],
        "policy_version": 1,
        "calendar_id": "24x7",
        "priority": of["priority"],
        "target_seconds": 4 * HOUR,
        "started_at": started,
        "deadline": deadline or started + timedelta(hours=4),
        "state": state,
        "paused": paused,
        "pause_reason": "pending_customer" if paused else None,
        "met_at": met_at,
        "breached_at": None,
        "cancelled_at": None,
        "business_seconds": business,
        "calendar_seconds": (met_at - started).total_seconds() if met_at else None,
        "paused_seconds": 0.0,
        "evaluated_at": started,
    } | columns


def paused_time(of: dict, reason: str, seconds: float, cycle: int = 1) -> dict:
    return {
        "customer_id": of["customer_id"],
        "item_kind": of["item_kind"],
        "item_id": of["item_id"],
        "metric": of["metric"],
        "cycle": cycle,
        "reason": reason,
        "seconds": seconds,
    }


def revisit(of: dict, satisfaction: int, when: datetime, event_id: str | None = None) -> dict:
    return {
        "event_id": event_id or uuid.uuid4().hex,
        "customer_id": of["customer_id"],
        "item_kind": of["kind"],
        "item_id": of["item_id"],
        "occurred_at": when,
        "satisfaction": satisfaction,
        "comment": None,
        "actor": "回访员",
    }


def step(of: dict, event_type: str, when: datetime, event_id: str | None = None, **columns) -> dict:
    return {
        "event_id": event_id or uuid.uuid4().hex,
        "event_type": event_type,
        "customer_id": of["customer_id"],
        "item_kind": of["item_kind"],
        "item_id": of["item_id"],
        "metric": of["metric"],
        "cycle": of["cycle"],
        "occurred_at": when,
        "step": None,
        "role": None,
        "threshold": None,
        "deadline": of["deadline"],
        "policy": None,
        "actor": None,
        "note": None,
    } | columns


def store(engine, *rows: dict) -> None:
    """Insert rows, each into the table its keys belong to.

    An item's revisit summary is filled from the revisits stored with it, as the
    sink's projection does.
    """
    tables = {frozenset(c.name for c in t.__table__.columns): t.__table__ for t in REPORT_TABLES}
    revisits: dict[tuple, list[dict]] = {}
    for row in rows:
        if "satisfaction" in row:
            revisits.setdefault((row["customer_id"], row["item_kind"], row["item_id"]), []).append(row)
    with engine.begin() as connection:
        for row in rows:
            if tables[frozenset(row)] is Item.__table__:
                calls = revisits.get((row["customer_id"], row["kind"], row["item_id"]), [])
                if calls:
                    latest = max(calls, key=lambda r: (r["occurred_at"], r["event_id"]))
                    row = row | {"revisit_count": len(calls), "last_satisfaction": latest["satisfaction"]}
            connection.execute(insert(tables[frozenset(row)]), row)


def report(engine, group_by=(), as_of=AS_OF, period=PERIOD) -> dict:
    return compliance_report(
        engine, period_start=period[0], period_end=period[1], as_of=as_of, group_by=group_by, zone=BEIJING
    ).to_dict()


# -- the figures -----------------------------------------------------------------------


class TestClockOutcomes:
    def test_a_diamond_fault_restored_late_counts_as_a_repair_breach(self, engine):
        """A restore clock met after its deadline stays breached: 0 % repair, one breach."""
        fault = item("F-1")
        store(
            engine,
            fault,
            clock(fault, "response", "met", met_at=local(10, "09:10"), business=600),
            clock(fault, "restore", "breached", met_at=local(10, "15:00"), business=6 * HOUR),
        )
        total = report(engine)["total"]
        assert (total["repair_met"], total["repair_breached"]) == (0, 1)
        assert total["repair_met_pct"] == 0.0
        assert total["response_met_pct"] == 100.0 and total["breaches"] == 1

    def test_a_paused_overdue_clock_is_open_not_breached(self, engine):
        """Waiting for the customer past the deadline is not a breach: the clock stopped."""
        fault = item("F-1")
        store(engine, fault, clock(fault, "restore", "pending", paused=True, deadline=local(10, "13:00")))
        result = report(engine)
        assert (result["total"]["repair_open"], result["total"]["repair_breached"]) == (1, 0)
        assert result["total"]["repair_met_pct"] is None and result["breaches"] == []

    def test_a_running_clock_past_its_deadline_is_an_overdue_breach(self, engine):
        """Pending, unpaused and late at as_of: breached, and listed as overdue."""
        fault = item("F-1")
        restore = clock(fault, "restore", "pending", deadline=local(10, "13:00"))
        store(engine, fault, restore)
        result = report(engine)
        assert result["total"]["repair_breached"] == 1 and result["total"]["breaches"] == 1
        assert [b["overdue"] for b in result["breaches"]] == [True]

    def test_overdue_depends_on_as_of(self, engine):
        """The same running clock is open when the report is taken before its deadline."""
        fault = item("F-1")
        store(engine, fault, clock(fault, "restore", "pending", deadline=local(10, "13:00")))
        total = report(engine, as_of=local(10, "12:59"))["total"]
        assert (total["repair_open"], total["repair_breached"]) == (1, 0)

    def test_an_orders_restore_pct_is_null(self, engine):
        """An order has only a provision clock; response and repair are over nothing."""
        order = item("O-1", "order", priority="urgent")
        store(engine, order, clock(order, "provision", "met", met_at=local(12)))
        total = report(engine)["total"]
        assert total["repair_met_pct"] is None and total["response_met_pct"] is None
        assert (total["provision_met"], total["provision_met_pct"]) == (1, 100.0)

    def test_cancelled_clocks_count_nowhere(self, engine):
        """A cancelled clock is neither met, breached, open nor in the breach list."""
        ticket = item("T-1", "ticket")
        store(engine, ticket, clock(ticket, "resolve", "cancelled", deadline=local(10, "10:00")))
        total = report(engine)["total"]
        assert (total["repair_met"], total["repair_breached"], total["repair_open"]) == (0, 0, 0)
        assert total["breaches"] == 0

    def test_a_faults_resolve_clock_is_a_breach_but_not_repair(self, engine):
        """Repair is restore for faults and resolve for tickets; every breach is counted."""
        fault, ticket = item("F-1"), item("T-1", "ticket")
        store(
            engine,
            fault,
            ticket,
            clock(fault, "resolve", "breached"),
            clock(ticket, "resolve", "met", met_at=local(10, "10:00")),
            clock(ticket, "revisit", "breached"),
        )
        total = report(engine)["total"]
        assert (total["repair_met"], total["repair_breached"], total["breaches"]) == (1, 0, 2)

    def test_every_cycle_of_a_reopened_item_counts(self, engine):
        """A reopen starts cycle 2: both restore clocks are in the percentage."""
        fault = item("F-1")
        store(
            engine,
            fault,
            clock(fault, "restore", "met", met_at=local(10, "10:00")),
            clock(fault, "restore", "breached", cycle=2),
        )
        assert report(engine)["total"]["repair_met_pct"] == 50.0


class TestMeansAndPauses:
    def test_mtta_and_mttr_average_clocks_with_a_met_at(self, engine):
        """On time or late, a stopped clock counts; a running one does not."""
        one, two, three = item("F-1"), item("F-2"), item("F-3")
        store(
            engine,
            one,
            two,
            three,
            clock(one, "response", "met", met_at=local(10, "09:10"), business=600),
            clock(two, "response", "breached", met_at=local(10, "09:20"), business=1200),
            clock(three, "response", "pending", business=50),
            clock(one, "restore", "met", met_at=local(10, "11:00"), business=HOUR),
        )
        total = report(engine)["total"]
        assert (total["mtta_business_s"], total["mtta_calendar_s"]) == (900.0, 900.0)
        assert (total["mttr_business_s"], total["mttr_calendar_s"]) == (HOUR, 2 * HOUR)

    def test_means_over_nothing_are_null(self, engine):
        """No stopped response clock: the MTTA is empty, not 0."""
        fault = item("F-1")
        store(engine, fault, clock(fault, "response", "pending"))
        assert report(engine)["total"]["mtta_business_s"] is None

    def test_paused_time_is_summed_by_reason_over_repair_and_provision_clocks(self, engine):
        """Restore and provision pauses count; a paused response or cancelled clock does not."""
        fault, order = item("F-1"), item("O-1", "order")
        restore, provision = (
            clock(fault, "restore", "met", met_at=local(11)),
            clock(order, "provision", "pending"),
        )
        response, cancelled = (
            clock(fault, "response", "met", met_at=local(10, "09:05")),
            clock(fault, "restore", "cancelled", cycle=2),
        )
        store(
            engine,
            fault,
            order,
            restore,
            provision,
            response,
            cancelled,
            paused_time(restore, "pending_customer", 600),
            paused_time(provision, "pending_customer", 400),
            paused_time(provision, "pending_third_party", 50),
            paused_time(response, "pending_customer", 7),
            paused_time(cancelled, "pending_customer", 1000, cycle=2),
        )
        assert report(engine)["total"]["paused_s"] == {
            "pending_customer": 1000.0,
            "pending_third_party": 50.0,
        }


class TestClosureAndRevisits:
    def test_cancelled_orders_are_not_closed_items(self, engine):
        """Closed counts closed faults/tickets and completed orders, not cancelled ones."""
        store(
            engine,
            item("F-1", closed=True, state="closed"),
            item("O-1", "order", closed=True, state="completed"),
            item("O-2", "order", closed=True, state="cancelled"),
            item("F-2"),
        )
        total = report(engine)["total"]
        assert (total["items"], total["closed"]) == (4, 2)

    def test_revisit_rate_is_over_closed_items(self, engine):
        """One of two closed items was called back: 50 %."""
        called, forgotten = (
            item("F-1", closed=True, state="closed"),
            item("F-2", closed=True, state="closed"),
        )
        store(
            engine,
            called,
            forgotten,
            revisit(called, 4, local(12)),
            clock(called, "revisit", "met", met_at=local(12)),
            clock(forgotten, "revisit", "breached"),
        )
        total = report(engine)["total"]
        assert total["revisit_rate_pct"] == 50.0 and total["revisit_measured"] is True

    def test_without_a_revisit_clock_the_revisit_rate_is_not_measured(self, engine):
        """A policy without revisit targets: closed items but no revisit clock, so null, not 0 %."""
        closed = item("F-1", closed=True, state="closed")
        store(
            engine,
            closed,
            clock(closed, "response", "met", met_at=local(10, "09:05")),
            clock(closed, "restore", "met", met_at=local(10, "11:00")),
        )
        total = report(engine)["total"]
        assert total["closed"] == 1
        assert total["revisit_rate_pct"] is None and total["revisit_measured"] is False

    def test_the_revisit_rate_is_measured_per_group(self, engine):
        """Grouped by kind: faults promise a revisit here, tickets do not."""
        fault, ticket = (
            item("F-1", closed=True, state="closed"),
            item("T-1", "ticket", closed=True, state="closed"),
        )
        store(
            engine,
            fault,
            ticket,
            clock(fault, "revisit", "pending"),
            clock(ticket, "resolve", "met", met_at=local(10, "10:00")),
        )
        lines = {g["key"]["kind"]: g for g in report(engine, group_by=("kind",))["groups"]}
        assert (lines["fault"]["revisit_rate_pct"], lines["fault"]["revisit_measured"]) == (0.0, True)
        assert (lines["ticket"]["revisit_rate_pct"], lines["ticket"]["revisit_measured"]) == (None, False)

    def test_satisfaction_is_the_latest_revisit_of_each_item(self, engine):
        """Latest by event time, then event id; one vote per item, however many calls."""
        first, second = item("F-1", closed=True), item("F-2", closed=True)
        store(
            engine,
            first,
            second,
            revisit(first, 1, local(12), "a"),
            revisit(first, 5, local(13), "b"),
            revisit(second, 2, local(14), "y"),
            revisit(second, 4, local(14), "x"),
        )
        assert report(engine)["total"]["avg_satisfaction"] == 3.5

    def test_no_closed_items_means_no_revisit_rate(self, engine):
        """Nothing closed yet: the rate is empty, not 0 %."""
        store(engine, item("F-1"))
        total = report(engine)["total"]
        assert total["revisit_rate_pct"] is None and total["avg_satisfaction"] is None


class TestNotMeasured:
    def test_a_desk_without_orders_does_not_measure_provision(self, engine):
        """Faults only: response and repair are measured, provision has no clock at all."""
        fault = item("F-1")
        store(
            engine,
            fault,
            clock(fault, "response", "met", met_at=local(10, "09:05")),
            clock(fault, "restore", "pending"),
        )
        total = report(engine)["total"]
        assert (total["response_measured"], total["repair_measured"]) == (True, True)
        assert (total["provision_met_pct"], total["provision_measured"]) == (None, False)

    def test_a_running_clock_is_measured_though_not_decided_yet(self, engine):
        """An open clock makes the figure measured: its percentage is null for another reason."""
        fault = item("F-1")
        store(engine, fault, clock(fault, "restore", "pending"))
        total = report(engine, as_of=local(10, "10:00"))["total"]
        assert total["repair_open"] == 1
        assert total["repair_met_pct"] is None and total["repair_measured"] is True

    def test_cancelled_clocks_measure_nothing(self, engine):
        """A clock that counts nowhere does not make its figure measured either."""
        ticket = item("T-1", "ticket")
        store(engine, ticket, clock(ticket, "resolve", "cancelled"))
        assert report(engine)["total"]["repair_measured"] is False

    def test_an_empty_period_measures_nothing(self, engine):
        """No items: every figure is not measured."""
        total = report(engine)["total"]
        assert not any(total[f"{name}_measured"] for name in ("response", "repair", "provision", "revisit"))


class TestRepairLabel:
    """The repair figures count faults' restore and tickets' resolve clocks; the label says which."""

    def labels(self, engine) -> str:
        return compliance_report(
            engine, period_start=PERIOD[0], period_end=PERIOD[1], as_of=AS_OF, zone=BEIJING
        ).label("repair")

    def test_a_tickets_only_report_calls_it_resolve(self, engine):
        ticket = item("T-1", "ticket")
        store(engine, ticket, clock(ticket, "resolve", "met", met_at=local(10, "10:00")))
        assert self.labels(engine) == "resolve"

    def test_a_faults_only_report_calls_it_repair(self, engine):
        fault = item("F-1")
        store(engine, fault, clock(fault, "restore", "pending"), clock(fault, "resolve", "pending"))
        assert self.labels(engine) == "repair"

    def test_both_kinds_are_named_when_both_are_counted(self, engine):
        fault, ticket = item("F-1"), item("T-1", "ticket")
        store(engine, fault, ticket, clock(fault, "restore", "pending"), clock(ticket, "resolve", "pending"))
        assert self.labels(engine) == "repair/resolve"


class TestPeriodAndGroups:
    def test_items_are_in_the_period_they_were_opened_in_local_time(self, engine):
        """Beijing's 1 November starts at 16:00 UTC the day before; 1 December is out."""
        store(
            engine,
            item("F-early", opened=local(31, "23:59", month=10)),
            item("F-first", opened=local(1, "00:00")),
            item("F-last", opened=local(30, "23:59")),
            item("F-next", opened=local(1, "00:00", month=12)),
        )
        assert report(engine)["total"]["items"] == 2

    def test_no_group_is_one_line_for_everything(self, engine):
        """Without --group-by the single group is the total, even for an empty period."""
        result = report(engine)
        assert result["groups"] == [{"key": {}, **result["total"]}]

    def test_groups_are_sorted_and_missing_values_are_dashes(self, engine):
        """Items without a region are grouped under '-'."""
        store(engine, item("F-1", tier="gold"), item("F-2", region=None), item("F-3", tier="gold"))
        groups = report(engine, group_by=("tier", "region"))["groups"]
        assert [(g["key"], g["items"]) for g in groups] == [
            ({"tier": "diamond", "region": "-"}, 1),
            ({"tier": "gold", "region": "广州"}, 2),
        ]

    def test_every_dimension_groups(self, engine):
        """Each named dimension maps to its column."""
        store(engine, item("F-1", account_manager_id=None, customer="C-9"))
        keys = report(engine, group_by=DIMENSIONS)["groups"][0]["key"]
        assert keys == {
            "tier": "diamond",
            "customer": "C-9",
            "priority": "P1",
            "kind": "fault",
            "region": "广州",
            "account_manager": "-",
            "policy": "diamond v1",
        }

    def test_group_figures_are_the_groups_own(self, engine):
        """A breach of a gold item is not counted in the diamond line."""
        gold, diamond = item("F-1", tier="gold"), item("F-2")
        store(
            engine,
            gold,
            diamond,
            clock(gold, "restore", "breached"),
            clock(diamond, "restore", "met", met_at=local(10, "10:00")),
        )
        lines = {g["key"]["tier"]: g for g in report(engine, group_by=["tier"])["groups"]}
        assert (lines["gold"]["breaches"], lines["diamond"]["breaches"]) == (1, 0)
        assert lines["diamond"]["repair_met_pct"] == 100.0

    def test_an_unknown_dimension_is_refused_by_name(self, engine):
        with pytest.raises(ValueError, match="'colour'"):
            report(engine, group_by=("tier", "colour"))


class TestBreachList:
    def test_breaches_carry_their_escalation_history_in_event_time(self, engine):
        """Steps of that clock only, ordered by occurred_at then event id."""
        fault = item("F-1")
        restore = clock(fault, "restore", "breached", deadline=local(10, "13:00"), met_at=local(10, "15:00"))
        store(
            engine,
            fault,
            restore,
            clock(fault, "restore", "met", cycle=2),
            step(restore, "sla.escalation_due", local(10, "13:30"), "e2", step=1, role="account_manager"),
            step(restore, "sla.breached", local(10, "13:00"), "e1"),
            step(
                restore,
                "sla.escalation_acknowledged",
                local(10, "13:30"),
                "e3",
                actor="李敏",
                note="已联系客户",
            ),
            step(restore | {"cycle": 2}, "sla.met", local(11)),
        )
        [breach] = report(engine)["breaches"]
        assert breach | {"steps": None} == {
            "customer_id": "C-1",
            "item_kind": "fault",
            "item_id": "F-1",
            "metric": "restore",
            "cycle": 1,
            "tier": "diamond",
            "priority": "P1",
            "deadline": "2026-11-10T05:00:00+00:00",
            "met_at": "2026-11-10T07:00:00+00:00",
            "overdue": False,
            "steps": None,
        }
        assert [(s["event_type"], s["step"], s["role"], s["actor"], s["note"]) for s in breach["steps"]] == [
            ("sla.breached", None, None, None, None),
            ("sla.escalation_due", 1, "account_manager", None, None),
            ("sla.escalation_acknowledged", None, None, "李敏", "已联系客户"),
        ]
        assert breach["steps"][0]["occurred_at"] == "2026-11-10T05:00:00+00:00"

    def test_breaches_are_listed_by_deadline_and_counted_by_tier(self, engine):
        """Earliest deadline first; the tier count matches the list."""
        late, early, gold = item("F-1"), item("F-2"), item("F-3", tier="gold")
        store(
            engine,
            late,
            early,
            gold,
            clock(late, "restore", "breached", deadline=local(12)),
            clock(early, "response", "breached", deadline=local(11)),
            clock(gold, "restore", "pending", deadline=local(13)),
        )
        result = report(engine)
        assert [b["item_id"] for b in result["breaches"]] == ["F-2", "F-1", "F-3"]
        assert result["breaches_by_tier"] == {"diamond": 2, "gold": 1}

    def test_a_shortened_breach_list_keeps_the_earliest_and_every_count(self, engine):
        """A report for people lists a few breaches; the figures still count them all."""
        late, early, gold = item("F-1"), item("F-2"), item("F-3", tier="gold")
        store(
            engine,
            late,
            early,
            gold,
            clock(late, "restore", "breached", deadline=local(12)),
            clock(early, "response", "breached", deadline=local(11)),
            clock(gold, "restore", "pending", deadline=local(13)),
        )
        result = compliance_report(
            engine, period_start=PERIOD[0], period_end=PERIOD[1], as_of=AS_OF, zone=BEIJING, breach_limit=1
        ).to_dict()
        assert [b["item_id"] for b in result["breaches"]] == ["F-2"]
        assert result["total"]["breaches"] == 3
        assert result["breaches_by_tier"] == {"diamond": 2, "gold": 1}

    def test_a_missing_priority_is_a_dash_as_in_the_groups(self, engine):
        order = item("O-1", "order", priority=None)
        store(engine, order, clock(order, "provision", "breached"))
        assert report(engine)["breaches"][0]["priority"] == "-"


class TestTrendAndDistribution:
    def test_weeks_start_on_local_mondays(self, engine):
        """Sunday 23:30 in Beijing is the week before; Monday 00:00 starts the next."""
        sunday = item("F-1", opened=local(22, "23:30"))
        monday = item("F-2", opened=local(23, "00:00"))
        store(
            engine,
            sunday,
            monday,
            clock(monday, "response", "met", met_at=local(23, "00:05")),
            clock(sunday, "response", "breached"),
        )
        weeks = {w["week_start"]: w for w in report(engine)["weekly_trend"]}
        assert list(weeks) == ["2026-11-16", "2026-11-23"]  # quiet weeks are not listed
        assert (weeks["2026-11-16"]["items"], weeks["2026-11-16"]["response_met_pct"]) == (1, 0.0)
        assert weeks["2026-11-23"] == {
            "week_start": "2026-11-23",
            "items": 1,
            "response_met_pct": 100.0,
            "repair_met_pct": None,
            "provision_met_pct": None,
        }

    def test_mttr_buckets_are_half_open_business_hours(self, engine):
        """59:59 is under an hour; exactly one hour is in 1-2h; three days is '>3d'."""
        faults = [item(f"F-{n}") for n in range(4)]
        seconds = [HOUR - 1, HOUR, 72 * HOUR, 5 * HOUR]
        store(
            engine,
            *faults,
            *[clock(f, "restore", "met", met_at=local(12), business=s) for f, s in zip(faults, seconds)],
            clock(faults[0], "restore", "pending", cycle=2, business=10),
        )
        assert report(engine)["mttr_distribution"] == [
            {"bucket": "0-1h", "count": 1},
            {"bucket": "1-2h", "count": 1},
            {"bucket": "2-4h", "count": 0},
            {"bucket": "4-8h", "count": 1},
            {"bucket": "8-24h", "count": 0},
            {"bucket": "1-3d", "count": 0},
            {"bucket": ">3d", "count": 1},
        ]

    @pytest.mark.parametrize("group_by", [("customer",), ("customer", "kind")])
    def test_grouped_by_customer_the_tiers_and_buckets_are_the_same(self, engine, group_by):
        """By customer they come from a pass of their own; the figures must not change."""
        rows = []
        for n, (tier, seconds) in enumerate([("diamond", HOUR - 1), ("gold", 5 * HOUR), ("gold", 72 * HOUR)]):
            fault = item(f"F-{n}", customer=f"C-{n}", tier=tier)
            rows += [
                fault,
                clock(fault, "restore", "breached", met_at=local(12), business=seconds),
                clock(fault, "response", "met", met_at=local(10, "09:05"), business=300),
            ]
        store(engine, *rows)
        whole, grouped = report(engine), report(engine, group_by=group_by)
        assert grouped["breaches_by_tier"] == whole["breaches_by_tier"] == {"diamond": 1, "gold": 2}
        assert grouped["mttr_distribution"] == whole["mttr_distribution"]
        assert grouped["total"] == whole["total"]


class TestArguments:
    def test_a_local_date_is_local_midnight(self):
        start, end = parse_period("2026-11-01", "2026-12-01", BEIJING)
        assert start.astimezone(UTC) == datetime(2026, 10, 31, 16, tzinfo=UTC)
        assert end.astimezone(UTC) == datetime(2026, 11, 30, 16, tzinfo=UTC)

    def test_an_instant_with_an_offset_is_taken_as_is(self):
        start, _ = parse_period("2026-11-01T00:00:00+00:00", "2026-11-02", BEIJING)
        assert start == datetime(2026, 11, 1, tzinfo=UTC)

    def test_to_must_be_after_from(self):
        with pytest.raises(ValueError, match="must be after"):
            parse_period("2026-11-02", "2026-11-01", BEIJING)

    def test_a_naive_time_is_refused(self):
        with pytest.raises(ValueError, match="from: .* no UTC offset"):
            parse_period("2026-11-01T09:00", "2026-11-02", BEIJING)

    def test_garbage_names_the_bound(self):
        with pytest.raises(ValueError, match="to: 'soon'"):
            parse_period("2026-11-01", "soon", BEIJING)

    def test_group_by_text_is_split_and_checked(self):
        assert parse_group_by("tier, customer") == ("tier", "customer")
        with pytest.raises(ValueError, match="listed twice"):
            parse_group_by("tier,tier")

    def test_weeks_across_a_dst_change_start_at_local_midnight(self):
        """In Berlin the week of the autumn change is 169 hours long."""
        berlin = ZoneInfo("Europe/Berlin")
        starts = week_starts(
            datetime(2026, 10, 20, tzinfo=berlin), datetime(2026, 11, 3, tzinfo=berlin), berlin
        )
        assert [(s.date().isoformat(), s.hour) for s in starts] == [
            ("2026-10-19", 0),
            ("2026-10-26", 0),
            ("2026-11-02", 0),
        ]
        assert starts[1].astimezone(UTC) - starts[0].astimezone(UTC) == timedelta(hours=169)


class TestManagerScope:
    """A manager's report counts their own customers only (``roles.report_scope``), by the rule of
    their reads: account manager, escalation chain or region, from the ``customers`` rows."""

    CUSTOMERS = {
        "C-MINE": {"account_manager_id": "DH-1", "region": "湖南省/长沙市", "chain": []},
        "C-CHAIN": {"account_manager_id": "AM-9", "region": "湖南省/长沙市", "chain": ["AM-9", "DH-1"]},
        "C-REGION": {"account_manager_id": "AM-7", "region": "广东省/深圳市", "chain": ["AM-7"]},
        "C-ELSE": {"account_manager_id": "AM-8", "region": "广东省/广州市", "chain": ["AM-8"]},
    }

    def fill(self, engine) -> None:
        with engine.begin() as connection:
            connection.execute(Customer.__table__.delete())  # PostgreSQL's database is the session's
            for customer_id, facts in self.CUSTOMERS.items():
                connection.execute(
                    insert(Customer),
                    {
                        "customer_id": customer_id,
                        "account_manager_id": facts["account_manager_id"],
                        "region": facts["region"],
                        "profile": {
                            "escalation_chain": [{"role": "account_manager", "id": i} for i in facts["chain"]]
                        },
                        "updated_at": local(1),
                    },
                )
        rows = []
        for n, customer_id in enumerate(self.CUSTOMERS):
            fault = item(f"F-{n}", customer=customer_id)
            rows += [fault, clock(fault, "restore", "breached", met_at=local(10, "15:00"))]
        store(engine, *rows)

    def test_a_regional_managers_report_has_their_customers_and_nobody_elses(self, engine):
        self.fill(engine)
        manager = Identity(
            "m", "user", "s-1", roles=frozenset({"manager"}), staff_id="DH-1", region="广东省/深圳市"
        )
        scoped = compliance_report(
            engine,
            period_start=PERIOD[0],
            period_end=PERIOD[1],
            as_of=AS_OF,
            group_by=("customer",),
            zone=BEIJING,
            customers=report_scope(manager),
        ).to_dict()
        assert [g["key"]["customer"] for g in scoped["groups"]] == ["C-CHAIN", "C-MINE", "C-REGION"]
        assert scoped["total"]["breaches"] == 3
        assert {b["customer_id"] for b in scoped["breaches"]} == {"C-CHAIN", "C-MINE", "C-REGION"}
        for agreeing in self.CUSTOMERS:  # the report's rule is the reads' rule
            facts = self.CUSTOMERS[agreeing]
            read = may_for_customer(
                manager,
                CUSTOMER_READ,
                CustomerFacts(
                    agreeing, facts["account_manager_id"], facts["region"], frozenset(facts["chain"])
                ),
            )
            assert bool(read) == (agreeing != "C-ELSE")

    def test_a_report_reader_and_a_head_office_manager_see_every_customer(self, engine):
        self.fill(engine)
        for who in (
            Identity("r", "user", "s-2", roles=frozenset({"report_reader"})),
            Identity("hq", "user", "s-3", roles=frozenset({"manager"}), region="*"),
            Identity(
                "both", "user", "s-4", roles=frozenset({"manager", "report_reader"}), region="湖南省/长沙市"
            ),
        ):
            assert report_scope(who) is None
        assert report(engine)["total"]["breaches"] == 4
