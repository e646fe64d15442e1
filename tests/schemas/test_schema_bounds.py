"""Every field of every published schema, one at a time, and the largest event each allows.

Drawn documents rarely reach a bound (seventeen escalation steps, a field at
exactly its maxLength) or visit every optional field, so these walk the schema
files systematically; the verdicts still come from both sides separately.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import orjson
import pytest

from schemas.envelope import decode_event
from tests.schemas.published_schemas import (
    FORMATS,
    MAX_BYTES,
    PUBLISHED,
    decoder_accepts,
    ecma_regex,
    equal_fields,
    schema_accepts,
    schema_accepts_bytes,
)

# Strings a pattern in the files may ask for: ordinary text, an instant, an event id.
_CANDIDATES = ["x", "2026-11-23T09:00:00+08:00", "0b0e8a3c-6f0e-4c35-9a53-0f3a2f2c9d11"]


def _string(schema: dict[str, Any], fill: str | None) -> str:
    """The first candidate the schema allows; ``fill`` repeated to maxLength if free text."""
    for candidate in _CANDIDATES:
        if (
            ecma_regex(schema.get("pattern", "")).search(candidate)
            and len(candidate) <= schema.get("maxLength", len(candidate))
            and FORMATS.conforms(candidate, schema.get("format", ""))
        ):
            if fill and candidate == "x" and "maxLength" in schema:
                return fill * schema["maxLength"]
            return candidate
    raise AssertionError(f"no candidate string fits {schema}")


def build(schema: dict[str, Any], mode: str = "smallest", fill: str = "\x01") -> Any:
    """A document the schema allows: ``smallest``, ``full`` or ``largest``.

    The smallest has only the required members, with short values; the full one
    every member, with short values and one item per array; the largest every
    member at its bound: free text at maxLength of a character JSON must escape,
    the longest enum value, arrays at maxItems (which must therefore exist).
    """
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        values = [v for v in schema["enum"] if v is not None]
        return max(values, key=len) if mode == "largest" else values[0]
    kind = schema["type"][0] if isinstance(schema["type"], list) else schema["type"]
    if kind == "string":
        return _string(schema, fill if mode == "largest" else None)
    if kind == "integer":
        return (
            max(schema["minimum"], schema["maximum"], key=lambda n: len(str(n)))
            if mode == "largest"
            else schema["minimum"]
        )
    if kind == "array":
        if mode != "largest":
            return [build(schema["items"], mode, fill)] if mode == "full" else []
        assert "maxItems" in schema, "an unbounded array leaves events without a size limit"
        return [build(schema["items"], mode, fill)] * schema["maxItems"]
    return {
        name: build(sub, mode, fill)
        for name, sub in schema["properties"].items()
        if mode != "smallest" or name in schema["required"]
    }


def valid(event_type: str, mode: str = "smallest") -> dict[str, Any]:
    schema = PUBLISHED[event_type]
    return with_equal_fields(schema, build(schema, mode), ())


def with_equal_fields(schema: dict[str, Any], document: dict[str, Any], changed: tuple):
    """Apply x-keydesk-equals, copying whichever side of each pair was just changed."""
    for name, other in equal_fields(schema):
        if changed == (name,):
            document[other] = document[name]
        else:
            document[name] = document[other]
    return document


def members(schema: dict[str, Any], document: Any, path: tuple = ()):
    """(path, member schema) of every object member the schema declares and the document has."""
    if isinstance(document, dict) and "properties" in schema:
        for name, sub in schema["properties"].items():
            if name in document:
                yield (*path, name), sub
                yield from members(sub, document[name], (*path, name))
    elif isinstance(document, list) and "items" in schema:
        for index, item in enumerate(document):
            yield from members(schema["items"], item, (*path, index))


def changed(document: Any, path: tuple, value: Any, remove: bool = False) -> Any:
    document = copy.deepcopy(document)
    *parents, last = path
    target = document
    for step in parents:
        target = target[step]
    if remove:
        del target[last]
    else:
        target[last] = value
    return document


EVENT_TYPES = sorted(PUBLISHED)
REPLACEMENTS = [None, "", " ", 0, 4.0, True, [], {}, "\x01" * 20001]


class TestEveryField:
    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_the_smallest_and_largest_events_are_accepted_by_both(self, event_type):
        """Only the required members, or every member at its bound: both accept."""
        for document in (valid(event_type), valid(event_type, "full"), valid(event_type, "largest")):
            raw = orjson.dumps(document)
            assert schema_accepts_bytes(raw) and decoder_accepts(raw)

    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_each_member_left_out_null_or_retyped_gets_one_verdict(self, event_type):
        """Every declared member, at every depth, removed or replaced: both sides agree."""
        schema = PUBLISHED[event_type]
        for mode in ("smallest", "full"):
            document = valid(event_type, mode)
            for path, _ in list(members(schema, document)):
                variants = [changed(document, path, None, remove=True)]
                variants += [changed(document, path, value) for value in REPLACEMENTS]
                for variant in variants:
                    raw = json.dumps(variant).encode()
                    assert decoder_accepts(raw) == schema_accepts(variant), (path, variant)

    @pytest.mark.parametrize("event_type", EVENT_TYPES)
    def test_a_string_at_its_max_length_passes_and_one_more_character_fails(self, event_type):
        """maxLength counts characters (code points), in the schema and the decoder alike."""
        schema = PUBLISHED[event_type]
        document = valid(event_type, "full")
        for path, sub in list(members(schema, document)):
            if "maxLength" in sub:
                for text, expected in (
                    ("界" * sub["maxLength"], True),
                    ("😀" * (sub["maxLength"] + 1), False),
                ):
                    variant = with_equal_fields(schema, changed(document, path, text), path)
                    raw = orjson.dumps(variant)
                    verdicts = (decoder_accepts(raw), schema_accepts(variant))
                    assert verdicts == (expected, expected), path


class TestSize:
    def test_every_event_the_schemas_allow_fits_the_size_limit(self):
        """Written compactly, even the largest event of each type stays under MAX_EVENT_BYTES."""
        sizes = {t: len(orjson.dumps(valid(t, "largest"))) for t in EVENT_TYPES}
        assert max(sizes.values()) <= MAX_BYTES, sizes

    def test_an_array_at_max_items_passes_and_one_more_item_fails(self):
        """The escalation chain and the order's sites are bounded in both."""
        for event_type, field in (("customer.registered", "escalation_chain"), ("order.received", "sites")):
            document = valid(event_type, "largest")
            assert decode_event(orjson.dumps(document)).payload[field]
            document["payload"][field].append(document["payload"][field][0])
            raw = orjson.dumps(document)
            assert not decoder_accepts(raw) and not schema_accepts_bytes(raw)

    def test_a_message_over_the_limit_is_refused_with_its_size(self):
        """The reason gives the message's size and the limit; no field is to blame."""
        from schemas.envelope import InvalidEvent

        raw = orjson.dumps(valid("fault.reported"))
        raw = raw[:-1] + b" " * (MAX_BYTES - len(raw) + 1) + b"}"
        with pytest.raises(InvalidEvent) as caught:
            decode_event(raw)
        assert caught.value.field is None
        assert str(MAX_BYTES + 1) in caught.value.reason and str(MAX_BYTES) in caught.value.reason
