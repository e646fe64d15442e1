"""The archive's list and search against the reporting database the sink writes, SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from handlers.api.customer_search import ArchiveQuery, archive_query, list_customers
from handlers.api.http_guard import BadRequest
from schemas.reporting_db import open_engine, upgrade
from sla_rules import DEFAULT_RULES_PATH, load_rules
from streams.sink_writer import SinkWriter
from tests.builders import at, event

RULES = load_rules(DEFAULT_RULES_PATH)


def customer(customer_id: str, when: str = "08:00", event_type: str = "customer.registered", **fields):
    return event(event_type, customer_id, when, customer=customer_id, **fields)


EVENTS = [
    customer(
        "C-GOV-001",
        name="省政府办公厅",
        tier="diamond",
        region="广东/广州",
        account_manager={"id": "AM-LI", "name": "李敏", "phone": "13900000001"},
        services=[{"service": "MPLS VPN", "circuit_id": "GZ-MPLS-0001"}],
    ),
    customer(
        "C-BANK-001",
        name="招商银行",
        tier="platinum",
        region="广东/深圳",
        account_manager={"id": "AM-ZHAO", "name": "赵"},
    ),
    # a public customer: no tier, no account manager (the builder's registration would give both)
    customer("C_SHOP_1", "08:00", "customer.updated", name="个体户 100%", region="广东"),
    # the bank's fault, acknowledged two hours after its 10-minute response target
    event("fault.reported", "F-1", "09:00", customer="C-BANK-001"),
    event("fault.acknowledged", "F-1", "11:00", customer="C-BANK-001"),
    # the government's fault, closed after a late response: not open any more
    event("fault.reported", "F-2", "09:00", customer="C-GOV-001"),
    event("fault.acknowledged", "F-2", "11:00", customer="C-GOV-001"),
    event("fault.closed", "F-2", "12:00", customer="C-GOV-001", closed_unresolved="duplicate"),
    customer(
        "C-GOV-001", "13:00", "customer.updated", services=[{"service": "SD-WAN", "circuit_id": "GZ-SDWAN-9"}]
    ),
    # the hospital's fault, reported and never acknowledged: its 5-minute response ran out at 09:05
    customer("C-HOSP-1", "08:00", "customer.updated", name="市人民医院", tier="diamond"),
    event("fault.reported", "F-3", "09:00", customer="C-HOSP-1"),
]
NOW = at("18:00")


@pytest.fixture
def engine(reporting_db_url):
    engine = open_engine(reporting_db_url)
    upgrade(engine)
    SinkWriter(engine, RULES, "sink").write(
        "keydesk.events", 0, [(n, e.to_bytes()) for n, e in enumerate(EVENTS)]
    )
    yield engine
    engine.dispose()


def found(engine, now=NOW, **query) -> list[str]:
    return [c["customer_id"] for c in list_customers(engine, ArchiveQuery(**query), now)["customers"]]


def test_filters(engine):
    assert found(engine) == ["C-BANK-001", "C-GOV-001", "C-HOSP-1", "C_SHOP_1"]
    assert found(engine, tier="diamond") == ["C-GOV-001", "C-HOSP-1"]
    assert found(engine, tier="public") == ["C_SHOP_1"]
    assert found(engine, region="广东") == ["C-BANK-001", "C-GOV-001", "C_SHOP_1"]
    assert found(engine, region="广东/深圳") == ["C-BANK-001"]
    assert found(engine, account_manager="AM-LI") == ["C-GOV-001"]


def test_open_breaches_count_open_items_only(engine):
    assert found(engine, has_open_breaches=True) == ["C-BANK-001", "C-HOSP-1"]
    assert found(engine, has_open_breaches=False) == ["C-GOV-001", "C_SHOP_1"]


def test_a_clock_nobody_acted_on_is_breached_once_its_deadline_has_passed(engine):
    assert found(engine, now=at("09:04"), has_open_breaches=True) == ["C-BANK-001"]
    assert found(engine, now=at("09:06"), has_open_breaches=True) == ["C-BANK-001", "C-HOSP-1"]
    (hospital,) = list_customers(engine, ArchiveQuery(q="C-HOSP-1"), NOW)["customers"]
    assert hospital["open_breaches"] == 1
    page = list_customers(engine, ArchiveQuery(q="C-BANK-001"), NOW)["customers"]
    assert [c["open_breaches"] for c in page] == [1]


def test_search_by_name_id_circuit_and_phone(engine):
    assert found(engine, q="办公") == ["C-GOV-001"]
    assert found(engine, q="c-bank") == ["C-BANK-001"]
    assert found(engine, q="gz-sdwan-9") == ["C-GOV-001"]
    assert found(engine, q="GZ-MPLS-0001") == []  # replaced by the update
    assert found(engine, q="+86 139 0000 0001") == ["C-GOV-001"]


def test_like_wildcards_in_the_search_are_plain_text(engine):
    assert found(engine, q="100%") == ["C_SHOP_1"]
    assert found(engine, q="%") == ["C_SHOP_1"]
    assert found(engine, q="C_") == ["C_SHOP_1"]


def test_pages_continue_after_the_last_id(engine):
    first = list_customers(engine, ArchiveQuery(limit=2), NOW)
    assert [c["customer_id"] for c in first["customers"]] == ["C-BANK-001", "C-GOV-001"]
    assert first["next"] == "C-GOV-001"
    rest = list_customers(engine, ArchiveQuery(limit=2, after=first["next"]), NOW)
    assert [c["customer_id"] for c in rest["customers"]] == ["C-HOSP-1", "C_SHOP_1"] and rest["next"] is None


@pytest.mark.parametrize(
    "params, field",
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "²"}, "limit"),
        ({"limit": "9" * 5000}, "limit"),
        ({"tier": "gold-ish"}, "tier"),
        ({"has_open_breaches": "yes"}, "has_open_breaches"),
        ({"q": "x" * 121}, "q"),
        ({"after": "C" * 65}, "after"),
        ({"page": "2"}, "page"),
    ],
)
def test_a_bad_parameter_is_named(params, field):
    with pytest.raises(BadRequest) as refused:
        archive_query(params)
    assert (refused.value.status, refused.value.field) == (422, field)
