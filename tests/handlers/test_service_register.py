"""The service register in the reporting database the sink writes, SQLite and PostgreSQL.

A key account's services come one event each; the archive must find the
customer by the circuit id of every one of them, page through them, and drop
a removed one from the search, whatever batches the sink reads them in.
"""

from __future__ import annotations

import pytest

from handlers.api.customer_search import ArchiveQuery, list_customers
from handlers.api.service_register import list_services, service_state
from schemas.reporting_db import open_engine, upgrade
from sla_rules import DEFAULT_RULES_PATH, load_rules
from streams import customer_services
from streams.sink_writer import SinkWriter
from tests.builders import at, event

RULES = load_rules(DEFAULT_RULES_PATH)
NOW = at("18:00")
ID_LOW = "00000000-0000-4000-8000-000000000001"
ID_HIGH = "ffffffff-ffff-4fff-bfff-ffffffffffff"


def added(n: int, when: str = "09:00", customer: str = "C-GOV-001", **fields):
    fields.setdefault("service", "MPLS VPN")
    fields.setdefault("circuit_id", f"gz-mpls {n:04d}")
    return event(
        "customer.service_added", customer, when, customer=customer, service_id=f"S-{n:04d}", **fields
    )


def removed(n: int, when: str = "10:00", customer: str = "C-GOV-001", **kw):
    return event("customer.service_removed", customer, when, customer=customer, service_id=f"S-{n:04d}", **kw)


REGISTERED = event(
    "customer.registered",
    "C-GOV-001",
    "08:00",
    customer="C-GOV-001",
    name="省政府办公厅",
    services=[{"service": "MPLS VPN", "circuit_id": "GZ-LIST-0001"}],
)
OTHER = event("customer.registered", "C-BANK-001", "08:00", customer="C-BANK-001", name="招商银行")


@pytest.fixture
def engine(reporting_db_url):
    engine = open_engine(reporting_db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


class Sink:
    """The sink's writer over one partition, offsets counted on."""

    def __init__(self, engine):
        self.writer = SinkWriter(engine, RULES, "sink")
        self.offset = 0

    def write(self, *events):
        records = []
        for e in events:
            records.append((self.offset, e.to_bytes()))
            self.offset += 1
        return self.writer.write("keydesk.events", 0, records)


def found(engine, q: str) -> list[str]:
    return [c["customer_id"] for c in list_customers(engine, ArchiveQuery(q=q), NOW)["customers"]]


def test_every_added_circuit_finds_the_customer_and_a_removed_one_no_longer(engine):
    """A thousand services in batches of any size: each circuit id finds the customer; the list's too."""
    sink = Sink(engine)
    sink.write(REGISTERED, OTHER)
    services = [added(n) for n in range(1, 1001)]
    sink.write(*services[:1])
    sink.write(*services[1:700])
    for one in services[700:]:  # one batch each, as HTTP adds come
        sink.write(one)
    assert found(engine, "GZ-MPLS0001") == ["C-GOV-001"]  # typed upper or lower, spaces or not
    assert found(engine, "gz-mpls1000") == ["C-GOV-001"]
    assert found(engine, "GZ-LIST-0001") == ["C-GOV-001"]  # the profile's own list still finds it
    assert list_services(engine, "C-GOV-001", 5, None)["count"] == 1000
    sink.write(removed(1000))
    assert found(engine, "GZ-MPLS1000") == []
    assert found(engine, "GZ-MPLS0999") == ["C-GOV-001"]
    assert service_state(engine, "C-GOV-001", "S-1000") == (customer_services.REMOVED_STATE, 999)


def test_the_register_pages_by_service_id_and_counts_the_active_services(engine):
    sink = Sink(engine)
    sink.write(REGISTERED, *[added(n, bandwidth="100M") for n in range(1, 8)], removed(3))
    first = list_services(engine, "C-GOV-001", 4, None)
    assert [s["service_id"] for s in first["services"]] == ["S-0001", "S-0002", "S-0004", "S-0005"]
    assert first["count"] == 6 and first["next"] == "S-0005"
    assert first["services"][0] == {
        "service_id": "S-0001",
        "service": "MPLS VPN",
        "circuit_id": "gz-mpls 0001",
        "bandwidth": "100M",
        "updated_at": "2026-11-23T01:00:00.000000+00:00",
    }
    second = list_services(engine, "C-GOV-001", 4, first["next"])
    assert [s["service_id"] for s in second["services"]] == ["S-0006", "S-0007"] and second["next"] is None
    assert list_services(engine, "C-BANK-001", 4, None) == {
        "customer_id": "C-BANK-001",
        "count": 0,
        "services": [],
        "next": None,
    }


def test_a_redelivery_and_an_older_add_read_after_the_remove_change_nothing(engine):
    sink = Sink(engine)
    add, remove = added(1, "09:00"), removed(1, "10:00")
    sink.write(REGISTERED, remove)
    result = sink.write(add, remove)  # the older add, late; the remove again
    assert result.duplicates == 1
    assert found(engine, "GZ-MPLS0001") == []
    assert service_state(engine, "C-GOV-001", "S-0001") == (customer_services.REMOVED_STATE, 0)


def test_an_add_and_a_remove_at_one_instant_are_ordered_by_event_id_in_either_arrival_order(engine):
    sink = Sink(engine)
    sink.write(
        REGISTERED,
        removed(1, "09:00", event_id=ID_HIGH),
        added(1, "09:00", event_id=ID_LOW),
        added(2, "09:00", event_id="11111111-1111-4111-8111-111111111111"),
        removed(2, "09:00", event_id="22222222-2222-4222-8222-222222222222"),
    )
    assert service_state(engine, "C-GOV-001", "S-0001")[0] == customer_services.REMOVED_STATE
    assert service_state(engine, "C-GOV-001", "S-0002")[0] == customer_services.REMOVED_STATE
    sink.write(
        added(3, "09:00", event_id=ID_HIGH.replace("f", "e")),
        removed(3, "09:00", event_id=ID_LOW.replace("1", "2")),
    )
    assert service_state(engine, "C-GOV-001", "S-0003")[0] == customer_services.ACTIVE


def test_register_events_leave_the_customers_row_and_its_items_as_they_were(engine):
    """The profile's row is folded from the profile's events only; no item is re-measured."""
    sink = Sink(engine)
    sink.write(REGISTERED, event("fault.reported", "F-1", "09:00", customer="C-GOV-001"))
    before = list_customers(engine, ArchiveQuery(), NOW)["customers"]
    result = sink.write(added(1, "11:00"), removed(1, "12:00"))
    assert result.items == 0 and result.customers == 0
    assert list_customers(engine, ArchiveQuery(), NOW)["customers"] == before


def test_past_the_bound_an_add_is_refused_in_the_partitions_order(engine, monkeypatch):
    monkeypatch.setattr(customer_services, "MAX_SERVICES", 3)
    sink = Sink(engine)
    sink.write(REGISTERED, added(1), added(2))
    sink.write(added(3), added(4), added(2, "09:30", circuit_id="GZ-NEW-2"))  # a change is no new service
    assert list_services(engine, "C-GOV-001", 10, None)["count"] == 3
    assert service_state(engine, "C-GOV-001", "S-0004") == (customer_services.REFUSED, 3)
    assert found(engine, "GZ-MPLS0004") == [] and found(engine, "GZ-NEW-2") == ["C-GOV-001"]
