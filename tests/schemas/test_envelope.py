"""The wire contract: what decodes, and how what does not is explained."""

import uuid

import orjson
import pytest

from schemas.envelope import InvalidEvent, decode_event
from tests.builders import fault


def wire(**changes) -> dict:
    body = fault("F-1", "reported").to_wire()
    body.update(changes)
    return body


def reason_for(body) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(orjson.dumps(body) if not isinstance(body, bytes) else body)
    return caught.value


class TestDecoding:
    def test_a_valid_event_round_trips(self):
        """An event encoded to the wire decodes to an equal event."""
        original = fault("F-1", "reported", circuit_id="GZ-001")
        assert decode_event(original.to_bytes()) == original

    def test_instants_are_normalised_to_utc(self):
        """A Beijing-time instant is the same instant, held in UTC."""
        decoded = decode_event(orjson.dumps(wire(occurred_at="2026-11-23T09:00:00+08:00")))
        assert decoded.occurred_at.isoformat() == "2026-11-23T01:00:00+00:00"

    def test_z_suffix_is_accepted(self):
        """Producers in other languages often write UTC as Z."""
        assert decode_event(orjson.dumps(wire(occurred_at="2026-11-23T01:00:00Z"))).occurred_at.hour == 1

    def test_fault_priority_is_optional(self):
        """The hotline gives a severity; the priority may be left to keydesk."""
        assert "priority" not in decode_event(fault("F-1", "reported").to_bytes()).payload


class TestRejections:
    @pytest.mark.parametrize("body, field, words", [
        (b"{not json", None, "not valid UTF-8 JSON"),
        (b"\xff\xfe", None, "not valid UTF-8 JSON"),
        (b"[1, 2]", None, "JSON object"),
        (wire(event_type="fault.exploded"), "event_type", "unknown event type"),
        (wire(schema_version=2), "schema_version", "unsupported version"),
        (wire(event_id="not-a-uuid"), "event_id", "UUID"),
        (wire(occurred_at="2026-11-23T09:00:00"), "occurred_at", "no UTC offset"),
        (wire(occurred_at="yesterday"), "occurred_at", "not an ISO-8601"),
        (wire(source="fax"), "source", "must be one of"),
        (wire(customer_id=""), "customer_id", "non-empty"),
        (wire(customer_id="C" * 65), "customer_id", "longer than 64"),
        (wire(payload=None), "payload", "JSON object"),
        (wire(colour="red"), "colour", "unknown envelope field"),
    ])
    def test_envelope_errors_name_the_field(self, body, field, words):
        """Every envelope violation says which field and what is wrong."""
        error = reason_for(body)
        assert error.field == field
        assert words in error.reason

    @pytest.mark.parametrize("payload, field, words", [
        ({"severity": "critical", "summary": "x"}, "payload.service", "is required"),
        ({"severity": "fatal", "summary": "x", "service": "y"}, "payload.severity", "one of"),
        ({"severity": "critical", "summary": " ", "service": "y"}, "payload.summary", "non-empty"),
        ({"severity": "critical", "summary": "x", "service": "y", "severty": "z"},
         "payload.severty", "unknown field"),
    ])
    def test_payload_errors_name_the_field(self, payload, field, words):
        """A payload typo is refused rather than silently dropped."""
        error = reason_for(wire(payload=payload))
        assert (error.field, words in error.reason) == (field, True)

    def test_revisit_score_is_one_to_five(self):
        """Satisfaction on the follow-up call is a 1-5 score."""
        body = fault("F-1", "revisit_recorded").to_wire()
        body["payload"] = {"satisfaction": 6}
        assert reason_for(body).field == "payload.satisfaction"

    def test_nested_escalation_chain_is_checked(self):
        """A manager in the escalation chain needs a known role."""
        body = {"event_id": str(uuid.uuid4()), "event_type": "customer.updated",
                "schema_version": 1, "customer_id": "C-1", "entity_id": "C-1",
                "occurred_at": "2026-11-23T09:00:00+08:00",
                "recorded_at": "2026-11-23T09:00:00+08:00", "source": "account_manager",
                "actor": "AM-1", "payload": {"escalation_chain": [{"role": "ceo", "name": "x"}]}}
        assert reason_for(body).field == "payload.escalation_chain[0].role"

    def test_customer_events_are_about_the_customer(self):
        """For customer events the entity is the customer itself."""
        body = {"event_id": str(uuid.uuid4()), "event_type": "customer.updated",
                "schema_version": 1, "customer_id": "C-1", "entity_id": "C-2",
                "occurred_at": "2026-11-23T09:00:00+08:00",
                "recorded_at": "2026-11-23T09:00:00+08:00", "source": "account_manager",
                "actor": "AM-1", "payload": {"region": "广州"}}
        assert reason_for(body).field == "entity_id"


class TestEventFiles:
    def test_each_line_is_numbered_and_a_bad_one_does_not_stop_the_rest(self):
        """Blank lines are skipped; a bad line yields its error; later lines still decode."""
        from schemas.envelope import decode_lines
        good = fault("F-1", "reported")
        rows = list(decode_lines([good.to_bytes() + b"\n", b"   \n", b"{oops\n", good.to_bytes()]))
        assert [number for number, _, _ in rows] == [1, 3, 4]
        assert rows[0][2] == good and rows[2][2] == good
        assert isinstance(rows[1][2], InvalidEvent) and rows[1][1] == b"{oops"
