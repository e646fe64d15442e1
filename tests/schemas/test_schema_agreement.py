"""The published JSON Schemas and the decoder accept and refuse exactly the same events.

The schema side (tests/schemas/published_schemas.py) reads only the files under
schemas/json; the decoder is what the worker runs.  Documents are drawn from the
schema files, then mutated with hostile values, and both must give one verdict.
The decoder's rules that JSON Schema cannot state are named in the files
(``x-keydesk-equals``, ``x-keydesk-max-bytes``, and I-JSON in the description)
and the schema side applies them as written there.
"""

from __future__ import annotations

import json
import uuid

import orjson
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from schemas.envelope import InvalidEvent, decode_event, event_from_dict
from tests.schemas.near_misses import event_ids, instants, numbers_near
from tests.schemas.published_schemas import (
    MAX_BYTES,
    PUBLISHED,
    decoder_accepts,
    json_values,
    schema_accepts,
    schema_accepts_bytes,
    valid_documents,
)

EVENT_TYPES = sorted(PUBLISHED)


def examples(n: int) -> settings:
    """Few enough examples to run in seconds; drawing instants from the pattern is slow."""
    return settings(
        max_examples=n,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# Built once: a strategy drawing from a schema's patterns is costly to construct.
_DOCUMENTS = {event_type: valid_documents(event_type) for event_type in EVENT_TYPES}
any_valid_document = st.sampled_from(EVENT_TYPES).flatmap(_DOCUMENTS.__getitem__)


@st.composite
def encodings(draw, document):
    """The same document as different producers write it: compact, spaced, ASCII-escaped."""
    style = draw(st.sampled_from(["orjson", "json", "json_ascii", "indented"]))
    if style == "orjson":
        return orjson.dumps(document)
    return json.dumps(
        document, ensure_ascii=style == "json_ascii", indent=2 if style == "indented" else None
    ).encode()


UUID = uuid.UUID("0b0e8a3c-6f0e-4c35-9a53-0f3a2f2c9d11")
HOSTILE = [
    None,
    True,
    False,
    0,
    1,
    -1,
    1.0,
    4.0,
    4.5,
    -0.0,
    1e300,
    2**63,
    2**64,
    10**30,
    6,
    1000,
    1001,
    "",
    " ",
    "\t",
    "\x1c",
    "\ufeff",
    "\u3000",
    "\u3000x",
    "x",
    "a" * 65,
    "b" * 2001,
    [],
    {},
    [1],
    [{}],
    {"a": 1},
    [None],
    [[]],
    str(UUID),
    str(UUID).upper(),
    UUID.hex,
    "{" + str(UUID) + "}",
    UUID.urn,
    str(UUID) + "\n",
    "2026-11-23T09:00:00+08:00",
    "2026-11-23t01:00:00z",
    "2026-11-23 01:00:00Z",
    "2026-11-23T01:00Z",
    "2026-11-23T01:00:00+0800",
    "2026-11-23T01:00:00.1234567891Z",
    "2026-11-23T01:00:00,5Z",
    "2026-11-23T01:00:00Z\n",
    "2026-02-29T00:00:00Z",
    "2024-02-29T00:00:00Z",
    "2100-02-29T00:00:00Z",
    "2400-02-29T23:59:59.999999999-23:59",
    "0001-01-01T00:00:00+08:00",
    "9999-12-31T23:00:00-08:00",
    "1970-01-01T00:00:00+14:00",
    "1970-01-01T00:00:00-05:00",
    "1969-12-31T23:59:59-01:00",
    "2999-12-31T23:00:00-08:00",
    "2999-12-31T23:59:59.999999+14:00",
    "3000-01-01T00:00:00Z",
    "2026-11-23T24:00:00Z",
    "2026-11-23T23:59:60Z",
    "2026-11-23T09:00:00+24:00",
    "2026-11-23T09:00:00-00:00",
    "fault.reported",
    "customer.registered",
    "customer.updated",
    "sla.met",
    "critical",
    "P1",
    "hotline",
    "fax",
    "C-1",
    "diamond",
    "in_progress",
    "restore",
    "fault",
]


def paths(document):
    """Every (container, key) in a document, so that any member can be changed."""
    if isinstance(document, dict):
        for key, value in document.items():
            yield document, key
            yield from paths(value)
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield document, index
            yield from paths(value)


def near_values(key, value) -> st.SearchStrategy:
    """Replacements for a member: mostly near misses of its own kind, sometimes anything."""
    if key in ("occurred_at", "recorded_at"):
        near = instants()
    elif key == "event_id":
        near = event_ids()
    elif isinstance(value, int | float) and not isinstance(value, bool):
        near = numbers_near(value)
    else:
        near = st.sampled_from([None, "", " ", "\u3000x", "x" * 65, value])
    return near | near | st.sampled_from(HOSTILE) | json_values


@st.composite
def mutated_documents(draw):
    """A valid document with one or two members changed, removed or added."""
    document = draw(any_valid_document)
    for _ in range(draw(st.integers(1, 2))):
        places = list(paths(document))
        container, key = draw(st.sampled_from(places))
        action = draw(st.sampled_from(["replace", "replace", "replace", "remove", "add"]))
        if action == "replace":
            container[key] = draw(near_values(key, container[key]))
        elif action == "remove":
            container.pop(key)
        elif isinstance(container, dict):
            container[draw(st.sampled_from(["extra", "note", "cause", "colour", "event_id"]))] = draw(
                st.sampled_from(HOSTILE)
            )
    if draw(st.booleans()) and isinstance(document.get("customer_id"), str):
        document["entity_id"] = document["customer_id"]  # customer events need it
    return document


def dict_accepted(document) -> bool:
    try:
        event_from_dict(document)
    except InvalidEvent:
        return False
    return True


class TestDrawnFromTheSchemas:
    @examples(150)
    @given(data=st.data())
    def test_every_event_the_schemas_allow_decodes(self, data):
        """A document valid under its published schema decodes, however it is encoded."""
        document = data.draw(any_valid_document)
        assert schema_accepts(document)  # else the drawing, not the decoder, is wrong
        raw = data.draw(encodings(document))
        assert schema_accepts_bytes(raw)
        decoded = decode_event(raw)
        assert decode_event(decoded.to_bytes()) == decoded

    @examples(50)
    @given(document=any_valid_document)
    def test_the_decoded_payload_is_normalised(self, document):
        """Nulls in optional fields are dropped and 4.0 is held as 4."""
        assert schema_accepts(document)
        payload = decode_event(orjson.dumps(document)).payload

        def plain(value):
            if isinstance(value, dict):
                return all(v is not None and plain(v) for v in value.values())
            if isinstance(value, list):
                return all(plain(v) for v in value)
            return not isinstance(value, float)

        assert plain(payload)


class TestHostileDocuments:
    @examples(300)
    @given(document=mutated_documents())
    def test_a_changed_event_gets_one_verdict_from_both(self, document):
        """Bad types, edge instants, 4.0, bools, odd UUIDs, nulls: both accept or both refuse."""
        raw = json.dumps(document, ensure_ascii=False).encode()  # orjson stops at 64-bit ints
        verdict = decoder_accepts(raw)
        event("accepted" if verdict else "refused")
        assert verdict == schema_accepts_bytes(raw)
        assert verdict == dict_accepted(document)  # the HTTP API's way in

    @examples(150)
    @given(value=json_values)
    def test_any_json_value_gets_one_verdict_from_both(self, value):
        """Arbitrary JSON, not shaped like an event at all, is refused by both."""
        raw = json.dumps(value).encode()
        assert decoder_accepts(raw) == schema_accepts_bytes(raw)

    @examples(150)
    @given(raw=st.binary(max_size=200) | st.text(max_size=60).map(str.encode))
    def test_any_bytes_are_an_event_or_an_invalid_event(self, raw):
        """Nothing the decoder is given makes it raise anything but InvalidEvent."""
        assert decoder_accepts(raw) == schema_accepts_bytes(raw)


def padded(body: bytes, size: int) -> bytes:
    """The same JSON text, grown to ``size`` bytes with whitespace before its last brace."""
    return body[:-1] + b" " * (size - len(body)) + b"}"


def a_valid_fault() -> dict:
    return {
        "event_id": str(UUID),
        "event_type": "fault.reported",
        "schema_version": 1,
        "customer_id": "C-GOV-001",
        "entity_id": "F-1",
        "occurred_at": "2026-11-23T09:00:00+08:00",
        "recorded_at": "2026-11-23T09:00:02+08:00",
        "source": "network_alarm",
        "actor": "nms-1",
        "payload": {"severity": "critical", "summary": "LOS", "service": "MPLS VPN"},
    }


RAW_CASES = {
    "a repeated envelope key": (b'{"event_id":"x",' + orjson.dumps(a_valid_fault())[1:], False),
    "a repeated payload key": (
        orjson.dumps(a_valid_fault()).replace(
            b'"severity":"critical"', b'"severity":"minor","severity":"critical"'
        ),
        False,
    ),
    "NaN": (orjson.dumps(a_valid_fault()).replace(b'"schema_version":1', b'"schema_version":NaN'), False),
    "a number too large for a double": (
        orjson.dumps(a_valid_fault()).replace(b'"schema_version":1', b'"schema_version":1e400'),
        False,
    ),
    "an unpaired surrogate escape": (
        orjson.dumps(a_valid_fault()).replace(b'"LOS"', b'"LOS \\ud800"'),
        False,
    ),
    "a surrogate pair escape": (
        orjson.dumps(a_valid_fault()).replace(b'"LOS"', b'"LOS \\ud83d\\ude00"'),
        True,
    ),
    "a byte order mark": (b"\xef\xbb\xbf" + orjson.dumps(a_valid_fault()), False),
    "whitespace around": (b" \n\t" + orjson.dumps(a_valid_fault()) + b"\r\n", True),
    "a second document": (orjson.dumps(a_valid_fault()) * 2, False),
    "deep nesting": (orjson.dumps(a_valid_fault()).replace(b'"LOS"', b"[" * 50_000 + b"]" * 50_000), False),
    "an integer of 5000 digits": (
        orjson.dumps(a_valid_fault()).replace(b'"schema_version":1', b'"schema_version":' + b"1" * 5000),
        False,
    ),
    "just over the size limit": (padded(orjson.dumps(a_valid_fault()), MAX_BYTES + 1), False),
    "exactly the size limit": (padded(orjson.dumps(a_valid_fault()), MAX_BYTES), True),
    "schema_version 1.0": (
        orjson.dumps(a_valid_fault()).replace(b'"schema_version":1', b'"schema_version":1.0'),
        True,
    ),
    "schema_version true": (
        orjson.dumps(a_valid_fault()).replace(b'"schema_version":1', b'"schema_version":true'),
        False,
    ),
}


class TestEdgeCases:
    @pytest.mark.parametrize("name", sorted(RAW_CASES))
    def test_document_level_rules_agree(self, name):
        """Repeats, NaN, surrogates, BOM, nesting, size: the decoder and the schema side agree."""
        raw, expected = RAW_CASES[name]
        assert (decoder_accepts(raw), schema_accepts_bytes(raw)) == (expected, expected)

    @pytest.mark.parametrize(
        "field, value, expected",
        [
            ("occurred_at", "0001-01-01T00:00:00+08:00", False),
            ("occurred_at", "9999-12-31T23:00:00-08:00", False),
            ("occurred_at", "1970-01-01T00:00:00+14:00", False),
            ("occurred_at", "1970-01-01T00:00:00-05:00", True),
            ("recorded_at", "2999-12-31T23:59:59.999999999+14:00", True),
            ("recorded_at", "2026-11-23t01:00:00z", True),
            ("recorded_at", "2026-11-23 01:00:00Z", False),
            ("event_type", [], False),
            ("event_type", {}, False),
            ("event_id", str(UUID).upper(), False),
            ("event_id", UUID.hex, False),
            ("schema_version", True, False),
            ("customer_id", "\u3000", False),
            ("customer_id", "\x1c", False),
        ],
    )
    def test_envelope_edge_values_agree(self, field, value, expected):
        """The examples of issue 9, each with the verdict both sides give."""
        raw = orjson.dumps({**a_valid_fault(), field: value})
        assert (decoder_accepts(raw), schema_accepts_bytes(raw)) == (expected, expected)

    @pytest.mark.parametrize(
        "satisfaction, expected",
        [
            (4, True),
            (4.0, True),
            (4.5, False),
            (True, False),
            (0, False),
            (6, False),
            (None, False),
            (2**64, False),
            ("4", False),
        ],
    )
    def test_integers_are_json_schema_integers(self, satisfaction, expected):
        """4.0 is an integer and is held as 4; true is not; bounds apply to big ones too."""
        document = {
            **a_valid_fault(),
            "event_type": "fault.revisit_recorded",
            "payload": {"satisfaction": satisfaction},
        }
        raw = json.dumps(document).encode()
        assert (decoder_accepts(raw), schema_accepts_bytes(raw)) == (expected, expected)
        if expected:
            assert type(decode_event(raw).payload["satisfaction"]) is int

    def test_customer_events_are_the_one_decoder_only_rule(self):
        """entity_id = customer_id is named in the customer schemas and in no other."""
        assert {
            name
            for name, schema in PUBLISHED.items()
            if "x-keydesk-equals" in schema["properties"]["entity_id"]
        } == {name for name in PUBLISHED if name.startswith("customer.")}
        document = {
            **a_valid_fault(),
            "event_type": "customer.updated",
            "entity_id": "C-2",
            "payload": {"region": "广州"},
        }
        assert not decoder_accepts(orjson.dumps(document))
        assert not schema_accepts(document)
        document["entity_id"] = document["customer_id"]
        assert decoder_accepts(orjson.dumps(document)) and schema_accepts(document)

    def test_refusals_are_only_ever_invalid_event(self):
        """Types a caller might pass by mistake are refused, not crashed on."""
        for value in (None, 12, [b"{}"], bytearray(b"{}"), memoryview(b"[]"), "\ud800"):
            with pytest.raises(InvalidEvent):
                decode_event(value)
