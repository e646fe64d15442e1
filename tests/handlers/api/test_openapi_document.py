"""The operations' declarations against the app's routes, and the OpenAPI document built from them.

The document is only worth having if it is the whole API and says what the
handlers enforce: every route a worker registers has its declaration and
every declaration its route; the bounds in the document are the ones
``handlers/api/input_limits.py`` names; and the handlers refuse through the
declarations (the refusals below come from the same objects the document is
built from).
"""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import jsonschema_rs
import pytest
from openapi_spec_validator import validate

from handlers.api.actions import ACTIONS
from handlers.api.http_guard import BadRequest, has_control_character
from handlers.api.input_limits import DEFAULT_QUEUE_LIMIT, MAX_ID_LENGTH, MAX_QUEUE_LIMIT, MAX_WAIT_SECONDS
from handlers.api.openapi_document import build_document
from handlers.api.operations import OPERATIONS, STEPS, operation, routes
from handlers.api.rules_routes import text_of
from handlers.composition import build_worker_streams
from streams.settings import Settings


@pytest.fixture(scope="module")
def registered(tmp_path_factory) -> set[tuple[str, str]]:
    """(method, pattern) of every /api route a worker registers (built, never started: no broker needed)."""
    data = tmp_path_factory.mktemp("routes")
    settings = Settings(kafka="127.0.0.1:9", data_dir=data, db_url=f"sqlite:///{data / 'r.sqlite'}")
    streams = build_worker_streams(settings)
    found = set()
    for route in streams.app.web.web_app.router.routes():
        pattern = route.resource.canonical if route.resource is not None else ""
        if pattern.startswith("/api/") and route.method != "HEAD":  # aiohttp adds HEAD to every GET
            found.add((route.method, pattern))
    return found


def document() -> dict:
    return build_document()


class TestEveryRouteIsDeclared:
    def test_routes_and_declarations_are_the_same_set(self, registered):
        undeclared, unrouted = sorted(registered - routes()), sorted(routes() - registered)
        assert not undeclared, f"routes with no declaration in handlers/api/operations.py: {undeclared}"
        assert not unrouted, f"declarations with no route: {unrouted}"

    def test_each_route_is_declared_once_except_the_steps_which_are_one_per_action(self):
        by_route: dict[tuple[str, str], list[str]] = {}
        for op in OPERATIONS:
            by_route.setdefault((op.method, op.route_pattern), []).append(op.operation_id)
        for (method, pattern), ids in by_route.items():
            if pattern.endswith("/{action}"):
                kind = pattern.split("/")[2].removesuffix("s")
                assert sorted(ids) == sorted(STEPS[(kind, a)].operation_id for a in ACTIONS[kind])
            else:
                assert len(ids) == 1, (method, pattern, ids)

    def test_every_step_of_every_loop_is_one_documented_path(self):
        paths = document()["paths"]
        for kind, steps in ACTIONS.items():
            for action in steps:
                assert "post" in paths[f"/api/{kind}s/{{item_id}}/{action}"], (kind, action)

    def test_operation_ids_are_unique(self):
        ids = [op.operation_id for op in OPERATIONS]
        assert len(ids) == len(set(ids))


class TestTheDocument:
    def test_is_valid_openapi_3_1(self):
        doc = document()
        assert doc["openapi"].startswith("3.1")
        validate(doc)  # raises on any error

    def test_publishes_the_bounds_the_handlers_enforce(self):
        paths = document()["paths"]
        limit = next(p for p in paths["/api/dispatch-queue"]["get"]["parameters"] if p["name"] == "limit")
        assert limit["schema"] == {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_QUEUE_LIMIT,
            "default": DEFAULT_QUEUE_LIMIT,
        }
        view = paths["/api/customers/{customer_id}/view"]["get"]["parameters"]
        assert view[0]["schema"]["maxLength"] == MAX_ID_LENGTH
        timeout = next(p for p in view if p["name"] == "timeout")
        assert timeout["schema"]["maximum"] == MAX_WAIT_SECONDS

    def test_a_rules_text_is_blank_to_the_handler_exactly_when_it_is_to_the_document(self):
        # Clients read the document's pattern as an ECMA-262 regex (jsonschema-rs, which schemathesis
        # validates with); a byte-order mark alone was once refused by it and accepted by the handler.
        body = document()["paths"]["/api/rules/check"]["post"]["requestBody"]["content"]
        text_schema = body["application/json"]["schema"]["properties"]["text"]
        by_document = jsonschema_rs.Draft202012Validator(text_schema)
        disagree = []
        for code in range(0x110000):
            if 0xD800 <= code < 0xE000 or has_control_character(chr(code)):
                continue  # surrogates are not JSON text; controls are refused in every body
            for text in (chr(code), f" {chr(code)}\n"):
                try:
                    text_of({"text": text})
                    accepted = True
                except BadRequest:
                    accepted = False
                if accepted != by_document.is_valid(text):
                    disagree.append(hex(code))
        assert disagree == []
        assert not by_document.is_valid("\ufeff \u3000\n") and by_document.is_valid("\ufeff[x]")

    def test_a_step_body_is_its_events_payload_fields_less_what_the_action_sets(self):
        paths = document()["paths"]
        dispatch = paths["/api/faults/{item_id}/dispatch"]["post"]["requestBody"]["content"]
        schema = dispatch["application/json"]["schema"]
        assert set(schema["required"]) == {"customer_id", "team"}
        assert schema["additionalProperties"] is False
        resume = paths["/api/faults/{item_id}/resume"]["post"]["requestBody"]["content"]
        assert "status" not in resume["application/json"]["schema"]["properties"]
        pending = paths["/api/tickets/{item_id}/pending"]["post"]["requestBody"]["content"]
        status = pending["application/json"]["schema"]["properties"]["status"]
        assert status["enum"] == ["pending_customer", "pending_third_party", None]

    def test_an_operation_that_needs_a_permission_documents_401_and_403(self):
        guarded = replace(operation("get_dispatch_queue"), permission="queue:read")
        doc = build_document((guarded,))
        get = doc["paths"]["/api/dispatch-queue"]["get"]
        assert {"401", "403"} <= set(get["responses"]) and get["x-keydesk-permission"] == "queue:read"
        assert not {"401", "403"} & set(document()["paths"]["/api/health"]["get"]["responses"])

    def test_every_operation_declares_its_errors_as_the_one_error_body(self):
        for op in OPERATIONS:
            statuses = {a.status for a in op.answers}
            assert 500 in statuses, op.operation_id
            if op.params or op.body:
                assert 422 in statuses, op.operation_id
            for answer in op.answers:
                if answer.status >= 400 and op.operation_id != "get_health":
                    assert answer.schema is not None
                    assert {"error", "field"} <= set(answer.schema["required"]), op.operation_id


def request(query: dict | None = None, **path: str) -> SimpleNamespace:
    return SimpleNamespace(query=query or {}, match_info=path)


class TestHandlersReadThroughTheDeclarations:
    @pytest.mark.parametrize(
        "limit", ["0", str(MAX_QUEUE_LIMIT + 1), "ten", "nan", "1.5", " 7", "1_0", "\u0667", "9" * 5000]
    )
    def test_a_limit_out_of_bounds_is_refused_naming_it(self, limit):
        with pytest.raises(BadRequest) as refused:
            operation("get_dispatch_queue").read(request({"limit": limit}))
        assert (refused.value.status, refused.value.field) == (422, "limit")

    def test_defaults_are_the_declared_ones(self):
        assert operation("get_dispatch_queue").read(request()) == {"limit": DEFAULT_QUEUE_LIMIT, "local": "0"}

    def test_a_steps_wait_absent_is_no_wait_and_given_empty_is_two_seconds(self):
        step = STEPS[("fault", "ack")]
        assert step.read(request(item_id="F-1"))["wait"] is None
        assert step.read(request({"wait": ""}, item_id="F-1"))["wait"] == 2.0
        with pytest.raises(BadRequest) as refused:
            step.read(request({"wait": "11"}, item_id="F-1"))
        assert refused.value.field == "wait"

    @pytest.mark.parametrize(
        ("operation_id", "name"), [("get_item_sla", "at"), ("get_customer_view", "wait_for")]
    )
    def test_an_empty_value_is_refused_unless_declared_to_mean_something(self, operation_id, name):
        """``?at=`` was taken as now, ``?wait_for=`` as no wait; the document says an instant, a UUID."""
        with pytest.raises(BadRequest) as refused:
            operation(operation_id).read(request({name: ""}, customer_id="C", kind="fault", item_id="F"))
        assert (refused.value.status, refused.value.field) == (422, name)

    def test_an_unknown_kind_and_a_bad_event_id_are_named(self):
        outcome = operation("get_item_event_outcome")
        with pytest.raises(BadRequest) as refused:
            outcome.read(request(customer_id="C", kind="invoice", item_id="F", event_id="x"))
        assert refused.value.field == "kind"
        for spelling in ("x", "{0b0e8a3c-6f0e-4c35-9a53-0f3a2f2c9d11}", "0b0e8a3c6f0e4c359a530f3a2f2c9d11"):
            with pytest.raises(BadRequest) as refused:
                outcome.read(request(customer_id="C", kind="fault", item_id="F", event_id=spelling))
            assert refused.value.field == "event_id"
        upper = outcome.read(
            request(
                customer_id="C", kind="fault", item_id="F", event_id="0B0E8A3C-6F0E-4C35-9A53-0F3A2F2C9D11"
            )
        )
        assert upper["event_id"] == "0b0e8a3c-6f0e-4c35-9a53-0f3a2f2c9d11"

    @pytest.mark.parametrize(
        "at",
        ["0001-01-01T00:00:00+08:00", "2026-11-23T09:00:00", "noon", "20261123T090000+0800", "2026-W48-1"],
    )
    def test_an_instant_out_of_range_or_naive_is_refused(self, at):
        with pytest.raises(BadRequest) as refused:
            operation("get_item_sla").read(request({"at": at}, customer_id="C", kind="fault", item_id="F"))
        assert (refused.value.status, refused.value.field) == (422, "at")

    def test_an_instant_is_read_as_people_write_it(self):
        sla = operation("get_item_sla")
        at = sla.read(request({"at": "2026-11-23 09:00+08:00"}, customer_id="C", kind="fault", item_id="F"))[
            "at"
        ]
        assert at.isoformat() == "2026-11-23T01:00:00+00:00"

    def test_a_body_field_the_action_sets_is_refused_with_why(self):
        with pytest.raises(BadRequest) as refused:
            STEPS[("fault", "resume")].check_body({"customer_id": "C", "status": "pending_customer"})
        assert refused.value.field == "status"
        assert "set by this action" in refused.value.reason

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"severity": "critical", "summary": "s", "service": "x"}, "customer_id"),
            ({"customer_id": "C", "severity": "grave", "summary": "s", "service": "x"}, "severity"),
            (
                {"customer_id": "C", "severity": "critical", "summary": "s", "service": "x", "colour": 1},
                "colour",
            ),
            (
                {"customer_id": "C" * 65, "severity": "critical", "summary": "s", "service": "x"},
                "customer_id",
            ),
            (
                {"customer_id": "C", "severity": "critical", "summary": "s", "service": "x", "source": "fax"},
                "source",
            ),
        ],
    )
    def test_a_command_body_is_checked_field_by_field(self, body, field):
        with pytest.raises(BadRequest) as refused:
            operation("log_fault").check_body(body)
        assert (refused.value.status, refused.value.field) == (422, field)

    def test_a_nested_field_is_named_by_its_path(self):
        body = {"customer_id": "C", "product": "leased_line", "urgency": "urgent", "sites": [{"addr": "x"}]}
        with pytest.raises(BadRequest) as refused:
            operation("place_order").check_body(body)
        assert refused.value.field == "sites[0].addr"
