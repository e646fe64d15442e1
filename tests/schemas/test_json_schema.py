"""The published JSON Schema files: current, and in agreement with the decoder."""

import jsonschema
import orjson
import pytest

from schemas.envelope import InvalidEvent, decode_event
from schemas.event_catalogue import EVENT_TYPES
from schemas.json_schema import SCHEMA_DIR, event_schema, render_all
from tests.builders import DEFAULT_PAYLOADS, event

CHECKER = jsonschema.FormatChecker()


def schema_accepts(body: dict) -> bool:
    schema = orjson.loads((SCHEMA_DIR / f"{body.get('event_type')}.schema.json").read_bytes())
    return jsonschema.Draft202012Validator(schema, format_checker=CHECKER).is_valid(body)


def decoder_accepts(body: dict) -> bool:
    try:
        decode_event(orjson.dumps(body))
        return True
    except InvalidEvent:
        return False


class TestPublishedFiles:
    def test_there_is_one_file_per_event_type(self):
        """A producer finds a schema for every event type keydesk reads."""
        assert {p.name for p in SCHEMA_DIR.glob("*.schema.json")} == {f"{t}.schema.json" for t in EVENT_TYPES}

    def test_files_match_the_catalogue(self):
        """The committed files are what `keydesk schemas write` generates now."""
        for name, content in render_all().items():
            assert (SCHEMA_DIR / name).read_bytes() == content, f"{name}: run keydesk schemas write"

    @pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
    def test_every_schema_is_valid_json_schema(self, event_type):
        """Each file is itself a valid draft 2020-12 schema."""
        jsonschema.Draft202012Validator.check_schema(event_schema(event_type))


SAMPLE_PAYLOADS = {
    "fault.restored": {"cause": "fibre cut"},
    "fault.status_changed": {"status": "pending_customer", "reason": "site closed"},
    "ticket.status_changed": {"status": "pending_third_party"},
    "order.status_changed": {"status": "in_progress"},
    "ticket.priority_changed": {"priority": "P1"},
    "ticket.revisit_recorded": {"satisfaction": 4},
    "order.revisit_recorded": {"satisfaction": 3, "comment": "慢"},
    "order.resource_shortfall": {"reason": "no spare port"},
    "order.milestone_reached": {"milestone": "fibre_laid"},
    "customer.updated": {"region": "广东省"},
    "sla.warning_reached": {
        "item_kind": "fault",
        "metric": "restore",
        "cycle": 1,
        "due_at": "2026-11-23T01:30:00Z",
        "policy": "diamond v1",
        "threshold": "50%",
        "deadline": "2026-11-23T02:00:00Z",
    },
    "sla.breached": {
        "item_kind": "fault",
        "metric": "restore",
        "cycle": 1,
        "due_at": "2026-11-23T02:00:00Z",
        "policy": "diamond v1",
        "deadline": "2026-11-23T02:00:00Z",
    },
    "sla.escalation_due": {
        "item_kind": "ticket",
        "metric": "resolve",
        "cycle": 2,
        "due_at": "2026-11-23T02:00:00Z",
        "policy": "gold v1",
        "step": 2,
        "role": "department_head",
    },
    "sla.met": {
        "item_kind": "order",
        "metric": "provision",
        "cycle": 1,
        "due_at": "2026-11-23T02:00:00Z",
        "policy": "vip v1",
        "deadline": "2026-11-25T02:00:00Z",
    },
    "sla.escalation_acknowledged": {"item_kind": "fault", "metric": "restore", "cycle": 1},
}


class TestAgreement:
    @pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
    def test_a_valid_event_of_each_type_passes_both(self, event_type):
        """What the decoder accepts, the published schema accepts too."""
        payload = SAMPLE_PAYLOADS.get(event_type, DEFAULT_PAYLOADS.get(event_type, {}))
        body = event(event_type, "E-1", **payload).to_wire()
        assert decoder_accepts(body) and schema_accepts(body)

    @pytest.mark.parametrize(
        "change",
        [
            {"occurred_at": "2026-11-23T09:00:00"},
            {"source": "fax"},
            {"schema_version": 2},
            {"customer_id": ""},
            {"extra": 1},
            {"payload": {"severity": "critical", "summary": "x"}},
            {"payload": {"severity": "fatal", "summary": "x", "service": "y"}},
            {"payload": {"severity": "critical", "summary": "x", "service": "y", "typo": 1}},
        ],
    )
    def test_an_invalid_event_fails_both(self, change):
        """What the decoder refuses, the published schema refuses too."""
        body = event("fault.reported", "F-1").to_wire()
        body.update(change)
        assert not decoder_accepts(body) and not schema_accepts(body)
