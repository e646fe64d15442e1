"""The Alembic migrations build exactly the tables the models declare, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import insert, inspect, select

from schemas.reporting_db import current_revision, head_revision, open_engine, upgrade
from schemas.reporting_tables import REPORTING_TABLES, Customer, CustomerSearchTerm


@pytest.fixture
def engine(reporting_db_url):
    engine = open_engine(reporting_db_url)
    yield engine
    engine.dispose()


def test_an_empty_database_is_migrated_to_the_models_and_a_second_upgrade_is_a_no_op(engine):
    assert current_revision(engine) is None
    upgrade(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        assert compare_metadata(context, REPORTING_TABLES) == []
    assert set(inspect(engine).get_table_names()) == set(REPORTING_TABLES.tables) | {"alembic_version"}


def test_instants_come_back_aware_and_in_utc_whatever_zone_they_were_written_in(engine):
    upgrade(engine)
    beijing = datetime(2026, 11, 23, 9, 0, tzinfo=timezone(timedelta(hours=8)))
    with engine.begin() as conn:
        conn.execute(insert(Customer), {"customer_id": "C-1", "profile": {}, "updated_at": beijing})
        stored = conn.execute(select(Customer.updated_at)).scalar_one()
    assert stored == beijing and stored.tzinfo is not None and stored.utcoffset() == timedelta(0)


def test_a_naive_instant_is_refused_rather_than_guessed(engine):
    upgrade(engine)
    with pytest.raises(Exception, match="naive datetime"), engine.begin() as conn:
        conn.execute(
            insert(Customer),
            {"customer_id": "C-1", "profile": {}, "updated_at": datetime(2026, 11, 23, 9, 0)},
        )


def test_the_revisit_summary_migration_fills_existing_items_from_their_revisits(engine):
    upgrade(engine, "0001")
    opened = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)
    item = {
        "customer_id": "C-1",
        "kind": "fault",
        "item_id": "F-1",
        "state": "closed",
        "closed": True,
        "last_event_at": opened,
        "tier": "gold",
        "tier_assumed": False,
        "reopen_count": 0,
        "attributes": {},
        "milestones": {},
    }
    revisits = [
        {
            "event_id": f"R-{n}",
            "customer_id": "C-1",
            "item_kind": "fault",
            "item_id": "F-1",
            "occurred_at": opened + timedelta(hours=n),
            "satisfaction": score,
        }
        for n, score in ((1, 2), (3, 5), (2, 4))
    ]
    with engine.begin() as conn:
        conn.execute(insert(REPORTING_TABLES.tables["items"]), item)
        conn.execute(insert(REPORTING_TABLES.tables["items"]), {**item, "item_id": "F-2"})
        conn.execute(insert(REPORTING_TABLES.tables["revisits"]), revisits)
    upgrade(engine)
    with engine.connect() as conn:
        items = REPORTING_TABLES.tables["items"]
        rows = conn.execute(
            select(items.c.item_id, items.c.revisit_count, items.c.last_satisfaction).order_by(
                items.c.item_id
            )
        ).all()
    assert rows == [("F-1", 3, 5), ("F-2", 0, None)]


def test_the_archive_migration_finds_existing_customers_by_their_circuits_and_phones(engine):
    upgrade(engine, "0002")
    profile = {
        "name": "省政府办公厅",
        "account_manager": {"id": "AM-1", "name": "李敏", "phone": "+86 139 0000 0001"},
        "services": [{"service": "MPLS VPN", "circuit_id": "gz-mpls-0001"}],
    }
    with engine.begin() as conn:
        conn.execute(
            insert(Customer),
            [
                {"customer_id": "C-1", "profile": profile, "updated_at": datetime.now(UTC)},
                {"customer_id": "C-2", "profile": {"name": "个体户"}, "updated_at": datetime.now(UTC)},
            ],
        )
    upgrade(engine)
    with engine.connect() as conn:
        terms = conn.execute(
            select(CustomerSearchTerm.customer_id, CustomerSearchTerm.kind, CustomerSearchTerm.term).order_by(
                CustomerSearchTerm.kind
            )
        ).all()
    assert terms == [("C-1", "circuit", "GZ-MPLS-0001"), ("C-1", "phone", "13900000001")]
