"""The wire contract: what decodes, and how what does not is explained."""

import uuid

import orjson
import pytest

from schemas.envelope import MAX_EVENT_BYTES, InvalidEvent, decode_event, parse_instant
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
    @pytest.mark.parametrize(
        "body, field, words",
        [
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
        ],
    )
    def test_envelope_errors_name_the_field(self, body, field, words):
        """Every envelope violation says which field and what is wrong."""
        error = reason_for(body)
        assert error.field == field
        assert words in error.reason

    @pytest.mark.parametrize(
        "payload, field, words",
        [
            ({"severity": "critical", "summary": "x"}, "payload.service", "is required"),
            ({"severity": "fatal", "summary": "x", "service": "y"}, "payload.severity", "one of"),
            ({"severity": "critical", "summary": " ", "service": "y"}, "payload.summary", "non-empty"),
            (
                {"severity": "critical", "summary": "x", "service": "y", "severty": "z"},
                "payload.severty",
                "unknown field",
            ),
        ],
    )
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
        body = {
            "event_id": str(uuid.uuid4()),
            "event_type": "customer.updated",
            "schema_version": 1,
            "customer_id": "C-1",
            "entity_id": "C-1",
            "occurred_at": "2026-11-23T09:00:00+08:00",
            "recorded_at": "2026-11-23T09:00:00+08:00",
            "source": "account_manager",
            "actor": "AM-1",
            "payload": {"escalation_chain": [{"role": "ceo", "name": "x"}]},
        }
        assert reason_for(body).field == "payload.escalation_chain[0].role"

    def test_customer_events_are_about_the_customer(self):
        """For customer events the entity is the customer itself."""
        body = {
            "event_id": str(uuid.uuid4()),
            "event_type": "customer.updated",
            "schema_version": 1,
            "customer_id": "C-1",
            "entity_id": "C-2",
            "occurred_at": "2026-11-23T09:00:00+08:00",
            "recorded_at": "2026-11-23T09:00:00+08:00",
            "source": "account_manager",
            "actor": "AM-1",
            "payload": {"region": "广州"},
        }
        assert reason_for(body).field == "entity_id"


class TestOneSpellingOfAnEventId:
    @pytest.mark.parametrize(
        "spelling",
        [str.upper, lambda t: t.replace("-", ""), lambda t: "{" + t + "}", lambda t: "urn:uuid:" + t],
    )
    def test_another_spelling_of_the_uuid_is_refused_with_the_canonical_one(self, spelling):
        """The id is compared as a string to apply each event once, so only one spelling will do."""
        canonical = str(uuid.uuid4())
        error = reason_for(wire(event_id=spelling(canonical)))
        assert error.field == "event_id" and repr(canonical) in error.reason

    def test_the_canonical_spelling_is_kept_as_sent(self):
        """A lowercase hyphenated UUID is the event id, unchanged."""
        canonical = str(uuid.uuid4())
        assert decode_event(orjson.dumps(wire(event_id=canonical))).event_id == canonical


class TestNormalisation:
    def test_an_integral_float_is_held_as_an_integer(self):
        """JSON Schema calls 4.0 an integer; the payload holds 4."""
        body = fault("F-1", "revisit_recorded").to_wire()
        body["payload"] = {"satisfaction": 4.0}
        satisfaction = decode_event(orjson.dumps(body)).payload["satisfaction"]
        assert satisfaction == 4 and type(satisfaction) is int

    def test_null_in_an_optional_field_is_the_field_left_out(self):
        """A producer that writes nulls means "not given"; no None reaches the view."""
        payload = {"severity": "major", "summary": "x", "service": "y", "priority": None, "circuit_id": None}
        assert decode_event(orjson.dumps(wire(payload=payload))).payload == {
            "severity": "major",
            "summary": "x",
            "service": "y",
        }

    def test_null_in_a_required_field_is_refused(self):
        """null is no value, so a required field that is null is missing."""
        payload = {"severity": None, "summary": "x", "service": "y"}
        assert reason_for(wire(payload=payload)).field == "payload.severity"

    def test_fractions_beyond_microseconds_are_cut_off(self):
        """Nanoseconds (Java, Go) keep their first six digits; the instant never rounds up."""
        body = wire(occurred_at="2026-11-23T09:00:00.123456789+08:00")
        decoded = decode_event(orjson.dumps(body))
        assert decoded.occurred_at.microsecond == 123456


class TestTotality:
    def test_a_repeated_key_is_refused_naming_where_it_is(self):
        """Last-wins would drop one of the values silently; the reason says which key."""
        raw = orjson.dumps(wire()).replace(
            b'"severity":"critical"', b'"severity":"critical","severity":"minor"'
        )
        error = reason_for(raw)
        assert error.field == "payload.severity" and "twice" in error.reason

    def test_a_repeated_key_inside_an_array_is_located(self):
        """The path runs through arrays too, as the decoder's other reasons do."""
        body = {
            "event_id": str(uuid.uuid4()),
            "event_type": "customer.updated",
            "schema_version": 1,
            "customer_id": "C-1",
            "entity_id": "C-1",
            "occurred_at": "2026-11-23T09:00:00+08:00",
            "recorded_at": "2026-11-23T09:00:00+08:00",
            "source": "account_manager",
            "actor": "AM-1",
            "payload": {"escalation_chain": [{"role": "executive", "name": "x"}]},
        }
        raw = orjson.dumps(body).replace(b'"name":"x"', b'"name":"x","name":"y"')
        assert reason_for(raw).field == "payload.escalation_chain[0].name"

    def test_a_message_over_the_size_limit_is_refused_before_it_is_parsed(self):
        """The reason gives both numbers and blames no field."""
        raw = b"[" + b" " * MAX_EVENT_BYTES + b"]"
        error = reason_for(raw)
        assert (
            error.field is None
            and f"{MAX_EVENT_BYTES + 2} bytes" in error.reason
            and str(MAX_EVENT_BYTES) in error.reason
        )

    @pytest.mark.parametrize("occurred_at", ["0001-01-01T00:00:00+08:00", "9999-12-31T23:00:00-08:00"])
    def test_an_instant_beyond_what_python_can_hold_is_an_invalid_event(self, occurred_at):
        """These used to raise OverflowError and stop the partition."""
        assert reason_for(wire(occurred_at=occurred_at)).field == "occurred_at"

    @pytest.mark.parametrize("event_type", [[], {}, ["fault.reported"], 1, None])
    def test_an_event_type_that_is_not_a_string_is_an_invalid_event(self, event_type):
        """An unhashable event type used to raise TypeError."""
        assert reason_for(wire(event_type=event_type)).field == "event_type"

    def test_reasons_fit_in_a_kafka_header_whatever_the_message_held(self):
        """A long or surrogate-bearing key is cut short and made encodable as UTF-8."""
        error = InvalidEvent("payload." + "\ud800" * 1000, "unknown field")
        assert len(error.field) <= 300 and error.field.encode()
        long_key = reason_for(wire(payload={"k" * 100_000: 1}))
        assert len(long_key.field) <= 300

    def test_a_person_typed_instant_is_laxer_but_held_to_the_same_range(self):
        """parse_instant (CLI, HTTP queries) reads '2026-11-23 09:00+08:00' but not year 1."""
        assert parse_instant("2026-11-23 09:00+08:00", "at").hour == 1
        with pytest.raises(InvalidEvent) as caught:
            parse_instant("0001-01-01T00:00:00+08:00", "at")
        assert caught.value.field == "at"


class TestEventFiles:
    def test_each_line_is_numbered_and_a_bad_one_does_not_stop_the_rest(self):
        """Blank lines are skipped; a bad line yields its error; later lines still decode."""
        from schemas.envelope import decode_lines

        good = fault("F-1", "reported")
        rows = list(decode_lines([good.to_bytes() + b"\n", b"   \n", b"{oops\n", good.to_bytes()]))
        assert [number for number, _, _ in rows] == [1, 3, 4]
        assert rows[0][2] == good and rows[2][2] == good
        assert isinstance(rows[1][2], InvalidEvent) and rows[1][1] == b"{oops"
