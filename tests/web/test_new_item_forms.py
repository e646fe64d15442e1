"""The forms for a new fault, ticket or order: drawn from the API's bodies, read back into them."""

from __future__ import annotations

import pytest
from multidict import MultiDict

from handlers.api.http_guard import BadRequest
from handlers.api.operations import operation
from handlers.web.new_item_forms import NEW_ITEM_FORMS, form_body, placed, problem_input, site_addresses

SERVICES = [
    {"service": "MPLS VPN", "circuit_id": "GZ-MPLS-0001", "address": "天河路 1 号"},
    {"service": "互联网专线", "circuit_id": "GZ-DIA-0042", "address": "越秀区东风中路"},
    {"service": "SD-WAN", "address": "天河路 1 号"},
]


def names(kind: str, services=SERVICES) -> list[tuple[str, str, bool]]:
    return [(f.name, f.kind, f.required) for f in NEW_ITEM_FORMS[kind].inputs_for(services)]


class TestTheFormsInputs:
    def test_each_kind_asks_its_events_fields_in_the_catalogues_order(self):
        assert names("fault") == [
            ("severity", "choice", True),
            ("summary", "text", True),
            ("location", "text", False),
        ]
        assert names("ticket") == [
            ("kind", "choice", True),
            ("priority", "choice", True),
            ("subject", "text", True),
            ("description", "long_text", False),
        ]
        assert names("order") == [
            ("product", "text", True),
            ("urgency", "choice", True),
            ("bandwidth", "text", False),
        ]

    def test_a_fault_for_a_customer_without_services_has_its_service_typed(self):
        assert names("fault", [])[0] == ("service", "text", True)

    def test_the_focus_is_on_the_first_text_to_type_or_on_the_refused_input(self):
        fault = NEW_ITEM_FORMS["fault"]
        assert fault.focused(SERVICES, None) == "summary"
        assert fault.focused(SERVICES, "location") == "location"
        assert fault.focused(SERVICES, "circuit_id") == "summary"  # the pick: not an input
        assert NEW_ITEM_FORMS["order"].focused(SERVICES, None) == "product"


class TestReadingAPostedForm:
    def test_a_fault_takes_the_picked_service_and_its_circuit(self):
        form = MultiDict(severity="major", summary=" 专网中断 ", location="", service_pick="1")
        body = form_body(NEW_ITEM_FORMS["fault"], "C-1", form, SERVICES)
        assert body == {
            "customer_id": "C-1",
            "severity": "major",
            "summary": "专网中断",
            "service": "互联网专线",
            "circuit_id": "GZ-DIA-0042",
        }
        assert operation("log_fault").check_body(body)["circuit_id"] == "GZ-DIA-0042"

    @pytest.mark.parametrize("forged", ["3", "-1", "x", "", "99999"])
    def test_a_pick_naming_no_service_fills_nothing_and_the_api_refuses_the_missing_service(self, forged):
        body = form_body(
            NEW_ITEM_FORMS["fault"],
            "C-1",
            MultiDict(severity="minor", summary="慢", service_pick=forged),
            SERVICES,
        )
        assert "service" not in body and "circuit_id" not in body
        with pytest.raises(BadRequest) as refused:
            operation("log_fault").check_body(body)
        assert (refused.value.status, refused.value.field) == (422, "service")

    def test_an_orders_sites_are_the_boxes_ticked_and_another_address_each_once(self):
        form = MultiDict([("product", "leased_line"), ("urgency", "urgent"), ("site", "1"), ("site", "0")])
        form.add("site", "7")  # no such address: left out
        form.add("site_other", "天河路 1 号")  # the same as a ticked one: once
        body = form_body(NEW_ITEM_FORMS["order"], "C-1", form, SERVICES)
        assert site_addresses(SERVICES) == ["天河路 1 号", "越秀区东风中路"]
        assert body["sites"] == [{"address": "越秀区东风中路"}, {"address": "天河路 1 号"}]
        assert operation("place_order").check_body(body)["urgency"] == "urgent"

    def test_an_order_with_no_site_sends_none(self):
        body = form_body(NEW_ITEM_FORMS["order"], "C-1", MultiDict(product="p", urgency="normal"), SERVICES)
        assert "sites" not in body

    def test_a_blank_subject_is_left_out_and_refused_by_the_api_naming_it(self):
        form = MultiDict(kind="complaint", priority="P2", subject="   ")
        body = form_body(NEW_ITEM_FORMS["ticket"], "C-1", form, SERVICES)
        with pytest.raises(BadRequest) as refused:
            operation("open_ticket").check_body(body)
        assert refused.value.field == "subject"


class TestWhereARefusalIsShown:
    @pytest.mark.parametrize(
        ("field", "shown"),
        [
            ("subject", "subject"),
            ("sites[0].address", "sites"),
            (None, "body"),
            ("", "body"),
            ("<b>", "body"),
        ],
    )
    def test_the_refused_field_is_the_forms_name_for_it(self, field, shown):
        assert problem_input(field) == shown

    def test_next_to_an_input_or_a_pick_else_at_the_top(self):
        fault, order = NEW_ITEM_FORMS["fault"], NEW_ITEM_FORMS["order"]
        assert placed(fault, SERVICES, "summary") and placed(fault, SERVICES, "circuit_id")
        assert placed(order, SERVICES, "sites")
        assert not placed(fault, SERVICES, "customer_id") and not placed(fault, SERVICES, "body")
        assert not placed(NEW_ITEM_FORMS["ticket"], SERVICES, "sites")
