"""The schema side of the agreement tests: what the published files alone say.

Everything here reads ``schemas/json/*.schema.json`` and nothing of the decoder
or the catalogue, so that a test comparing the two compares two readings of the
contract.  A document passes when it is one I-JSON text (read by orjson, plus a
repeated-key check of our own) no larger than the size the schema names, valid
under jsonschema's Draft 2020-12 validator with ``uuid`` and ``date-time`` format
checking, and satisfies the schema's ``x-keydesk-equals`` annotation.
"""

from __future__ import annotations

import functools
import json
import re
from typing import Any

import jsonschema
import orjson
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, FormatChecker, ValidationError

from schemas.envelope import InvalidEvent, decode_event
from schemas.json_schema import SCHEMA_DIR

PUBLISHED: dict[str, dict[str, Any]] = {
    path.name.removesuffix(".schema.json"): orjson.loads(path.read_bytes())
    for path in sorted(SCHEMA_DIR.glob("*.schema.json"))
}
FORMATS = FormatChecker()
# Without rfc3339-validator jsonschema skips "date-time" silently; then these tests
# would claim a check they do not make.
assert {"uuid", "date-time"} <= set(FORMATS.checkers), "pip install rfc3339-validator"


@functools.cache
def ecma_regex(pattern: str) -> re.Pattern[str]:
    """A schema pattern as ECMA-262 reads it: ``$`` is the end of the string.

    Python's ``$`` also matches before a final newline, which ECMA's does not.
    The published patterns use ``$`` only as their last character.
    """
    assert "$" not in pattern[:-1], pattern
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)


def _ecma_pattern(validator, pattern, instance, schema):
    if validator.is_type(instance, "string") and not ecma_regex(pattern).search(instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = jsonschema.validators.extend(Draft202012Validator, {"pattern": _ecma_pattern})
VALIDATORS = {name: EcmaValidator(schema, format_checker=FORMATS) for name, schema in PUBLISHED.items()}
MAX_BYTES = {schema["x-keydesk-max-bytes"] for schema in PUBLISHED.values()}.pop()


def equal_fields(schema: dict[str, Any]) -> list[tuple[str, str]]:
    """(field, other) for each envelope property the schema says must equal another."""
    return [
        (name, prop["x-keydesk-equals"])
        for name, prop in schema["properties"].items()
        if "x-keydesk-equals" in prop
    ]


def schema_accepts(document: Any) -> bool:
    """Whether a parsed JSON document is an event by the published schemas.

    Each schema fixes ``event_type`` with ``const``, so the one schema that can
    accept a document is the one its ``event_type`` names.
    """
    if not isinstance(document, dict):
        return False
    event_type = document.get("event_type")
    if not isinstance(event_type, str) or event_type not in VALIDATORS:
        return False
    if not VALIDATORS[event_type].is_valid(document):
        return False
    return all(document[a] == document[b] for a, b in equal_fields(PUBLISHED[event_type]))


class _Repeated(ValueError):
    pass


def _pairs_without_repeats(pairs):
    keys = [key for key, _ in pairs]
    if len(set(keys)) != len(keys):
        raise _Repeated
    return dict(pairs)


def read_i_json(raw: bytes) -> tuple[bool, Any]:
    """(True, value) if ``raw`` is one I-JSON text, else (False, None)."""
    try:
        value = orjson.loads(raw)  # UTF-8, no NaN/Infinity, no lone surrogates, finite
        json.loads(raw.decode(), object_pairs_hook=_pairs_without_repeats)
    except (ValueError, RecursionError):  # orjson.JSONDecodeError and _Repeated are ValueErrors
        return False, None
    return True, value


def schema_accepts_bytes(raw: bytes) -> bool:
    if len(raw) > MAX_BYTES:
        return False
    ok, document = read_i_json(raw)
    return ok and schema_accepts(document)


def decoder_accepts(raw: bytes) -> bool:
    """Whether the decoder accepts ``raw``; any exception but InvalidEvent fails the test."""
    try:
        decode_event(raw)
    except InvalidEvent:
        return False
    return True


# -- documents drawn from the published schemas ------------------------------------


def from_schema(schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    """Values valid under ``schema``, for the subset of JSON Schema the files use.

    Integers are drawn as ints and as integral floats (``4.0``), both of which
    JSON Schema calls integers.  Unknown keywords make this fail, rather than
    quietly draw values the schema does not allow.
    """
    known = {
        "$schema",
        "$id",
        "title",
        "description",
        "type",
        "properties",
        "required",
        "additionalProperties",
        "const",
        "enum",
        "minLength",
        "maxLength",
        "pattern",
        "format",
        "minimum",
        "maximum",
        "items",
        "maxItems",
        "x-keydesk-equals",
        "x-keydesk-max-bytes",
    }
    assert set(schema) <= known, set(schema) - known
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    return st.one_of(*(_typed(kind, schema) for kind in types))


def _typed(kind: str, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
    if kind == "null":
        return st.none()
    if kind == "integer":
        ints = st.integers(schema.get("minimum"), schema.get("maximum"))
        return ints | ints.map(float)
    if kind == "string":
        return _strings(schema)
    if kind == "array":
        return st.lists(from_schema(schema["items"]), max_size=min(schema.get("maxItems", 3), 3))
    assert kind == "object" and schema.get("additionalProperties") is False, schema
    properties = {name: from_schema(sub) for name, sub in schema["properties"].items()}
    required = set(schema.get("required", ()))
    return st.fixed_dictionaries(
        {name: s for name, s in properties.items() if name in required},
        optional={name: s for name, s in properties.items() if name not in required},
    )


def _strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    pattern = schema.get("pattern")
    if pattern and pattern.startswith("^") and pattern.endswith("$"):
        strings = st.from_regex(pattern[1:-1], fullmatch=True)
    elif pattern:
        core = st.from_regex(pattern, fullmatch=True)
        strings = st.tuples(st.text(max_size=8), core, st.text(max_size=8)).map("".join)
    else:
        strings = st.text(max_size=20)
    return strings.filter(lambda s: low <= len(s) <= (high if high is not None else len(s)))


def valid_documents(event_type: str) -> st.SearchStrategy[dict[str, Any]]:
    """Documents of one event type, with the schema's x-keydesk-equals rule applied."""
    schema = PUBLISHED[event_type]

    def apply_equals(document: dict[str, Any]) -> dict[str, Any]:
        for name, other in equal_fields(schema):
            document[name] = document[other]
        return document

    return from_schema(schema).map(apply_equals)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
