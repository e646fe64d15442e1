"""The reporting database's derived rows, computed from an item's stored events."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from sla_rules import load_rules
from streams.sql_projection import customer_row, item_rows
from tests.builders import at, event, fault, ticket

RULES = load_rules()
DIAMOND = event("customer.registered", "C-1", "08:00", region="广东/广州")


def rows_of(events, customer_events=(DIAMOND,), kind="fault", item="F-1"):
    return item_rows("C-1", kind, item, events, list(customer_events), RULES)


def outcome(rows, metric, cycle=1):
    return next(o for o in rows.outcomes if o["metric"] == metric and o["cycle"] == cycle)


def test_a_diamond_p1_fault_restored_after_three_hours_breaches_its_two_hour_restore():
    rows = rows_of(
        [
            fault("F-1", "reported", "09:00"),
            fault("F-1", "acknowledged", "09:03"),
            fault("F-1", "restored", "12:00"),
        ]
    )
    assert rows.item["state"] == "restored" and not rows.item["closed"]
    assert (rows.item["tier"], rows.item["priority"], rows.item["policy"]) == ("diamond", "P1", "diamond v1")
    response, restore = outcome(rows, "response"), outcome(rows, "restore")
    assert (
        response["state"],
        response["met_at"],
        response["business_seconds"],
        response["calendar_seconds"],
    ) == ("met", at("09:03"), 180.0, 180.0)
    assert restore["state"] == "breached" and restore["deadline"] == at("11:00")
    assert restore["met_at"] == at("12:00") and restore["calendar_seconds"] == 3 * 3600


def test_paused_time_is_kept_per_reason_and_not_counted_as_business_time():
    rows = rows_of(
        [
            fault("F-1", "reported", "09:00"),
            fault("F-1", "status_changed", "09:30", status="pending_customer"),
            fault("F-1", "status_changed", "10:30", status="in_progress"),
            fault("F-1", "restored", "11:30"),
        ]
    )
    restore = outcome(rows, "restore")
    assert restore["state"] == "met" and restore["business_seconds"] == 3600 + 1800
    assert restore["paused_seconds"] == 3600
    assert [(p["metric"], p["reason"], p["seconds"]) for p in rows.paused if p["metric"] == "restore"] == [
        ("restore", "pending_customer", 3600.0)
    ]


def test_duplicates_and_arrival_order_do_not_change_any_row():
    events = [
        fault("F-1", "reported", "09:00"),
        fault("F-1", "acknowledged", "09:04"),
        fault("F-1", "dispatched", "09:10"),
        fault("F-1", "restored", "10:00"),
        fault("F-1", "closed", "10:30"),
        fault("F-1", "revisit_recorded", "15:00", satisfaction=4),
    ]
    expected = rows_of(events)
    shuffled = events + events[:3]
    random.Random(7).shuffle(shuffled)
    assert rows_of(shuffled) == expected
    assert [r["satisfaction"] for r in expected.revisits] == [4]


def test_a_reopen_under_a_new_cycle_contract_keeps_both_restore_clocks():
    contract = event("customer.registered", "C-0001", "08:00", customer="C-0001")
    events = [
        fault("F-9", "reported", "09:00", customer="C-0001"),
        fault("F-9", "restored", "09:30", customer="C-0001"),
        fault("F-9", "reopened", "10:00", customer="C-0001"),
        fault("F-9", "restored", "12:00", customer="C-0001"),
    ]
    rows = item_rows("C-0001", "fault", "F-9", events, [contract], RULES)
    assert rows.item["reopen_count"] == 1
    assert rows.item["policy"] == "contract-C-0001 v1"
    cycles = sorted((o["cycle"], o["state"]) for o in rows.outcomes if o["metric"] == "restore")
    assert cycles == [(1, "met"), (2, "breached")]


def test_an_item_is_measured_under_the_profile_as_of_its_latest_event():
    upgrade = event("customer.updated", "C-1", "20:00", tier="public")
    events = [fault("F-1", "reported", "09:00"), fault("F-1", "restored", "10:00")]
    before = rows_of(events, customer_events=(DIAMOND, upgrade))
    assert before.item["tier"] == "diamond"
    later = rows_of(
        events + [fault("F-1", "reopened", "21:00", reason="again")], customer_events=(DIAMOND, upgrade)
    )
    assert later.item["tier"] == "public" and later.item["region"] == "广东/广州"


def test_without_a_profile_the_tier_is_assumed_public():
    rows = rows_of([ticket("T-1", "opened", "09:00")], customer_events=(), kind="ticket", item="T-1")
    assert (rows.item["tier"], rows.item["tier_assumed"]) == ("public", True)


def test_an_item_whose_opening_event_has_not_arrived_has_a_row_but_no_clocks():
    rows = rows_of([fault("F-1", "restored", "10:00")])
    assert rows.item["state"] is None and rows.item["opened_at"] is None
    assert rows.outcomes == [] and rows.item["last_event_at"] == at("10:00")


def test_the_customer_row_is_the_profile_folded_last_writer_wins_by_event_time():
    moved = event("customer.updated", "C-1", "12:00", region="广东/深圳")
    stale = event("customer.updated", "C-1", "10:00", region="广东/佛山")
    row = customer_row("C-1", [DIAMOND, moved, stale])
    assert (row["tier"], row["region"], row["account_manager_id"]) == ("diamond", "广东/深圳", "AM-1")
    assert row["updated_at"] == at("12:00")
    assert customer_row("C-1", []) is None


@pytest.mark.parametrize("minutes", [4, 6])
def test_late_response_is_a_breach_with_its_met_instant(minutes):
    ack = at("09:00") + timedelta(minutes=minutes)
    rows = rows_of([fault("F-1", "reported", "09:00"), fault("F-1", "acknowledged", ack)])
    response = outcome(rows, "response")
    assert response["met_at"] == ack
    assert response["state"] == ("met" if minutes <= 5 else "breached")


def test_stored_events_are_ordered_by_their_offsets_not_by_the_order_they_are_loaded_in():
    from streams.sql_projection import StoredEvent

    opened = ticket("T-1", "opened", "09:00")
    # ids in the opposite order to the offsets: the ids must not matter
    first = ticket(
        "T-1", "assigned", "09:30", assignee="first", event_id="f" * 8 + "-0000-4000-8000-" + "0" * 12
    )
    second = ticket(
        "T-1", "assigned", "09:30", assignee="second", event_id="0" * 8 + "-0000-4000-8000-" + "f" * 12
    )
    for loaded in ([opened, first, second], [second, first, opened]):
        positions = {opened.event_id: 3, first.event_id: 7, second.event_id: 9}
        rows = item_rows(
            "C-1",
            "ticket",
            "T-1",
            [StoredEvent(e, (1, positions[e.event_id])) for e in loaded],
            [DIAMOND],
            RULES,
        )
        assert rows.item["attributes"]["assignee"] == "second"


def test_an_item_closed_without_resolution_is_closed_with_its_clocks_stopped():
    rows = rows_of(
        [
            fault("F-1", "reported", "09:00"),
            fault("F-1", "closed", "09:30", closed_unresolved="no_fault_found"),
        ]
    )
    assert (rows.item["state"], rows.item["closed"]) == ("closed", True)
    assert rows.item["attributes"]["closed_unresolved"] == "no_fault_found"
    states = {(o["metric"], o["state"]) for o in rows.outcomes}
    assert states == {
        ("response", "breached"),
        ("restore", "met"),
        ("resolve", "met"),
        ("revisit", "pending"),
    }


def test_under_a_cancelling_policy_the_outcome_rows_say_cancelled():
    from sla_rules import DEFAULT_RULES_PATH, parse_rules

    marker = 'id = "diamond"\nversion = 1\n'
    rules, _ = parse_rules(
        DEFAULT_RULES_PATH.read_text(encoding="utf-8").replace(
            marker, marker + 'close_unresolved = "cancel"\n', 1
        )
    )
    rows = item_rows(
        "C-1",
        "fault",
        "F-1",
        [
            fault("F-1", "reported", "09:00"),
            fault("F-1", "acknowledged", "09:02"),
            fault("F-1", "closed", "09:30", closed_unresolved="duplicate"),
        ],
        [DIAMOND],
        rules,
    )
    assert {(o["metric"], o["state"], o["cancelled_at"]) for o in rows.outcomes} == {
        ("response", "met", None),
        ("restore", "cancelled", at("09:30")),
        ("resolve", "cancelled", at("09:30")),
    }
