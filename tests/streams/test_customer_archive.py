"""The customer archive (客户档案): the record, its fold and the terms it is found by."""

from __future__ import annotations

import pytest

from schemas.envelope import InvalidEvent, utc_iso
from streams.customer_archive import (
    CIRCUIT,
    PHONE,
    archive_record,
    circuit_term,
    latest_stamp,
    phone_term,
    query_terms,
    search_terms,
)
from streams.customer_view import fold, new_view
from streams.sql_projection import customer_row, customer_search_rows
from tests.builders import event

GOVERNMENT = {
    "name": "省政府办公厅",
    "tier": "diamond",
    "region": "广东/广州",
    "account_manager": {"id": "AM-1", "name": "李敏", "phone": "+86 139-0000-0001"},
    "escalation_chain": [
        {"role": "department_head", "id": "DH-7", "name": "王强", "phone": "020-8888 1234"},
    ],
    "contacts": [{"name": "陈主任", "title": "信息中心主任", "phone": "13800138000"}],
    "services": [
        {"service": "MPLS VPN", "circuit_id": "gz-mpls-0001", "address": "广州市越秀区"},
        {"service": "dedicated internet", "circuit_id": "GZ-DIA 0002"},
        {"service": "IDC rack"},
    ],
}


def registered(when: str = "09:00", **fields):
    return event("customer.registered", "C-GOV-001", when, customer="C-GOV-001", **{**GOVERNMENT, **fields})


def updated(when: str, **fields):
    return event("customer.updated", "C-GOV-001", when, customer="C-GOV-001", **fields)


class TestTheContract:
    def test_contacts_services_and_a_chain_step_s_staff_id_are_part_of_a_registration(self):
        profile = registered().payload
        assert profile["contacts"][0]["title"] == "信息中心主任"
        assert profile["services"][0]["circuit_id"] == "gz-mpls-0001"
        assert profile["escalation_chain"][0]["id"] == "DH-7"

    def test_a_ninth_contact_is_refused_naming_the_list(self):
        with pytest.raises(InvalidEvent) as refused:
            updated("10:00", contacts=[{"name": f"联系人{i}"} for i in range(9)])
        assert refused.value.field == "payload.contacts"

    def test_a_service_needs_its_name(self):
        with pytest.raises(InvalidEvent) as refused:
            updated("10:00", services=[{"circuit_id": "GZ-1"}])
        assert "service" in refused.value.field and "services" in refused.value.field


class TestTheFold:
    def test_an_update_changes_only_the_fields_it_gives(self):
        view = new_view("C-GOV-001")
        fold(view, registered())
        fold(view, updated("10:00", tier="platinum"))
        assert view["profile"]["tier"] == "platinum" and view["profile"]["region"] == "广东/广州"
        assert view["profile"]["services"] == GOVERNMENT["services"]

    def test_a_list_is_replaced_whole_not_merged(self):
        view = new_view("C-GOV-001")
        fold(view, registered())
        fold(view, updated("10:00", services=[{"service": "SD-WAN", "circuit_id": "GZ-SDWAN-9"}]))
        assert view["profile"]["services"] == [{"service": "SD-WAN", "circuit_id": "GZ-SDWAN-9"}]

    def test_a_late_update_loses_to_a_later_one_per_field_in_the_view_and_the_database_alike(self):
        events = [
            registered(),
            updated("12:00", contacts=[{"name": "新主任"}]),
            updated("11:00", contacts=[]),
        ]
        view = new_view("C-GOV-001")
        for e in reversed(events):  # delivered out of order
            fold(view, e)
        row = customer_row("C-GOV-001", events)
        assert view["profile"]["contacts"] == row["profile"]["contacts"] == [{"name": "新主任"}]
        assert latest_stamp(view["profile_stamps"]).startswith("2026-11-23T04:00:00")

    def test_the_record_is_the_same_from_the_view_and_from_the_database_row(self):
        events = [registered(), updated("10:00", region="广东/深圳")]
        view = new_view("C-GOV-001")
        for e in events:
            fold(view, e)
        row = customer_row("C-GOV-001", events)
        from_view = archive_record("C-GOV-001", view["profile"], latest_stamp(view["profile_stamps"]))
        from_row = archive_record("C-GOV-001", row["profile"], utc_iso(row["updated_at"]))
        assert from_view == from_row
        assert from_view["region"] == "广东/深圳" and from_view["tier_label"] == "钻石"

    def test_a_customer_registered_bare_has_empty_lists_not_missing_fields(self):
        record = archive_record("C-PUB-1", {"name": "个体户"}, None)
        assert record["contacts"] == record["services"] == record["escalation_chain"] == []
        assert record["tier"] is None and record["account_manager"] is None


class TestSearchTerms:
    def test_every_circuit_and_every_phone_on_the_archive_is_a_term(self):
        assert search_terms(GOVERNMENT) == [
            (CIRCUIT, "GZ-DIA0002"),
            (CIRCUIT, "GZ-MPLS-0001"),
            (PHONE, "02088881234"),
            (PHONE, "13800138000"),
            (PHONE, "13900000001"),
        ]

    @pytest.mark.parametrize(
        "typed",
        [
            "+86 139-0000-0001",
            "0086 13900000001",
            "8613900000001",
            "13900000001",
            "139 0000 0001",
            "(139) 0000-0001",
        ],
    )
    def test_a_phone_typed_any_usual_way_is_one_number(self, typed):
        assert phone_term(typed) == "13900000001"
        assert (PHONE, "13900000001") in query_terms(typed)

    def test_a_fixed_line_keeps_its_area_code_however_it_is_written(self):
        assert phone_term("+86 20 8888 1234") == phone_term("020-8888 1234") == "02088881234"

    def test_another_country_s_number_keeps_its_country_code(self):
        assert phone_term("+852 2345 6789") == phone_term("00852 2345 6789") == "0085223456789"

    def test_a_circuit_id_is_found_whatever_its_case_and_spacing(self):
        assert circuit_term(" gz-mpls 0001 ") == "GZ-MPLS0001"
        assert query_terms("gz-mpls-0001") == [(CIRCUIT, "GZ-MPLS-0001")]

    def test_a_name_is_not_taken_for_a_phone_number(self):
        assert query_terms("省政府") == [(CIRCUIT, "省政府")]
        assert all(kind != PHONE for kind, _ in query_terms("GZ-1234"))

    def test_the_same_number_twice_is_one_term_and_a_profile_without_any_has_none(self):
        twice = {"contacts": [{"name": "a", "phone": "13800138000"}, {"name": "b", "phone": "138 0013 8000"}]}
        assert search_terms(twice) == [(PHONE, "13800138000")]
        assert search_terms({"name": "个体户"}) == search_terms(None) == []

    def test_the_database_rows_are_the_terms_of_the_folded_profile(self):
        events = [registered(), updated("10:00", services=[{"service": "SD-WAN", "circuit_id": "SZ-9"}])]
        row = customer_row("C-GOV-001", events)
        rows = customer_search_rows("C-GOV-001", row["profile"])
        assert {(r["kind"], r["term"]) for r in rows if r["kind"] == CIRCUIT} == {(CIRCUIT, "SZ-9")}
        assert all(r["customer_id"] == "C-GOV-001" for r in rows)
