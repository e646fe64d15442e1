"""The service register's rule (streams/customer_services.py) and what the view does with its events."""

from __future__ import annotations

import itertools

import orjson
import pytest

from schemas.envelope import utc_iso
from streams import customer_services as register
from streams.customer_view import PROFILE_EVENT_IDS_LIMIT, fold, new_view
from streams.item_sla import items_touched_by
from tests.builders import event

ID_LOW = "00000000-0000-4000-8000-000000000001"
ID_HIGH = "ffffffff-ffff-4fff-bfff-ffffffffffff"


def added(service_id: str, when: str = "09:00", event_id: str | None = None, **fields):
    fields.setdefault("service", "MPLS VPN")
    return event("customer.service_added", "C-1", when, event_id=event_id, service_id=service_id, **fields)


def removed(service_id: str, when: str = "09:00", event_id: str | None = None):
    return event("customer.service_removed", "C-1", when, event_id=event_id, service_id=service_id)


def replay(events) -> dict[str, dict]:
    """The register after ``events`` in this order, as the sink keeps it (by service id)."""
    entries: dict[str, dict] = {}
    for e in events:
        active = sum(entry["state"] == register.ACTIVE for entry in entries.values())
        change = register.apply(
            entries.get(e.payload["service_id"]),
            e.event_type,
            e.payload,
            register.stamp(utc_iso(e.occurred_at), e.event_id),
            active,
        )
        if change.entry is not None:
            entries[e.payload["service_id"]] = change.entry
    return entries


def active(entries: dict[str, dict]) -> dict[str, str | None]:
    return {k: v["circuit_id"] for k, v in sorted(entries.items()) if v["state"] == register.ACTIVE}


class TestRule:
    def test_the_latest_event_of_a_service_wins_whatever_order_they_arrive_in(self):
        """An add, a change, a remove and a re-add of one service give one register in every order."""
        events = [
            added("S-1", "09:00", circuit_id="GZ-1"),
            added("S-1", "10:00", circuit_id="GZ-2"),
            removed("S-1", "11:00"),
            added("S-2", "09:30", circuit_id="GZ-9"),
        ]
        outcomes = {str(active(replay(order))) for order in itertools.permutations(events)}
        assert outcomes == {str({"S-2": "GZ-9"})}

    def test_a_remove_keeps_an_older_add_read_later_from_bringing_the_service_back(self):
        """The tombstone carries the remove's stamp."""
        entries = replay([removed("S-1", "11:00"), added("S-1", "10:00", circuit_id="GZ-1")])
        assert active(entries) == {} and entries["S-1"]["state"] == register.REMOVED_STATE

    @pytest.mark.parametrize(
        "add_id, remove_id, left", [(ID_LOW, ID_HIGH, {}), (ID_HIGH, ID_LOW, {"S-1": "GZ-1"})]
    )
    def test_an_add_and_a_remove_at_one_instant_are_ordered_by_event_id(self, add_id, remove_id, left):
        """Same instant: the greater event id is the later one, in either arrival order."""
        add = added("S-1", "09:00", event_id=add_id, circuit_id="GZ-1")
        remove = removed("S-1", "09:00", event_id=remove_id)
        assert active(replay([add, remove])) == left
        assert active(replay([remove, add])) == left

    def test_the_same_event_again_is_a_duplicate_and_changes_nothing(self):
        add = added("S-1", circuit_id="GZ-1")
        entries = replay([add])
        again = register.apply(entries["S-1"], add.event_type, add.payload, entries["S-1"]["stamp"], 1)
        assert again.outcome == "duplicate" and again.entry is None

    def test_an_add_past_the_bound_is_refused_and_stays_refused(self, monkeypatch):
        """The bound holds; a refused add is remembered, so its redelivery after a remove is refused too."""
        monkeypatch.setattr(register, "MAX_SERVICES", 3)
        events = [added(f"S-{n}", f"09:0{n}", circuit_id=f"GZ-{n}") for n in range(1, 5)]
        entries = replay(events)
        assert list(active(entries)) == ["S-1", "S-2", "S-3"]
        assert entries["S-4"]["state"] == register.REFUSED
        entries = replay([*events, removed("S-1", "10:00"), events[3]])  # a redelivery of the refused add
        assert list(active(entries)) == ["S-2", "S-3"]
        # a change to a service already held is no new service: never refused at the bound
        entries = replay([*events, added("S-2", "10:00", circuit_id="GZ-22")])
        assert active(entries)["S-2"] == "GZ-22"

    def test_the_bound_is_five_thousand_services(self):
        assert register.MAX_SERVICES == 5000


class TestView:
    def test_register_events_leave_the_profile_as_it_was_and_are_remembered_once(self):
        """The view keeps no services (the register is the database's): only the event ids, once."""
        view = new_view("C-1")
        fold(view, event("customer.registered", "C-1", "08:00", customer="C-1", name="省政府"))
        profile = dict(view["profile"])
        add = added("S-1", circuit_id="GZ-1")
        assert fold(view, add).status == "applied"
        assert fold(view, removed("S-1", "10:00")).status == "applied"
        assert view["profile"] == profile
        assert fold(view, add).status == "duplicate"
        assert view["counters"]["duplicates_ignored"] == 1

    def test_a_register_event_touches_no_clock(self):
        view = new_view("C-1")
        fold(view, event("fault.reported", "F-1", "08:00", customer="C-1"))
        add = added("S-1")
        assert items_touched_by(view, add, fold(view, add)) == set()

    def test_a_thousand_adds_do_not_grow_the_view(self):
        """What the worker persists for a customer stays the same size however many services it has."""
        view = new_view("C-1")
        fold(view, event("customer.registered", "C-1", "08:00", customer="C-1", name="省政府"))
        before = orjson.dumps({k: view[k] for k in ("profile", "profile_stamps")})
        for n in range(1000):
            assert fold(view, added(f"S-{n:04d}", circuit_id=f"GZ-{n:04d}")).status == "applied"
        assert len(view["profile_event_ids"]) == PROFILE_EVENT_IDS_LIMIT
        assert orjson.dumps({k: view[k] for k in ("profile", "profile_stamps")}) == before
