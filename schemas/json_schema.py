"""Publishes the event catalogue as JSON Schema (draft 2020-12), one file per event type.

The files under ``schemas/json/`` are generated from :mod:`schemas.event_catalogue`
and :mod:`schemas.wire_formats` (``keydesk schemas write``); a test fails when they
drift from the generator, and a property test (tests/schemas/test_schema_agreement.py)
checks that they and the decoder accept and refuse the same events.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson

from schemas.event_catalogue import EVENT_TYPES, SCHEMA_VERSION, SOURCES, Field
from schemas.wire_formats import (
    EVENT_ID_PATTERN,
    FIRST_DAY,
    ID_MAX_LENGTH,
    INSTANT_PATTERN,
    LAST_DAY,
    MAX_EVENT_BYTES,
    NON_BLANK_PATTERN,
)

SCHEMA_DIR = Path(__file__).parent / "json"
#: Rules of the decoder that JSON Schema cannot state, named in the schema as
#: annotations (validators ignore unknown keywords; 2020-12 allows them).
EQUALS_KEYWORD = "x-keydesk-equals"
MAX_BYTES_KEYWORD = "x-keydesk-max-bytes"

_ID = {"type": "string", "minLength": 1, "maxLength": ID_MAX_LENGTH, "pattern": NON_BLANK_PATTERN}
_INSTANT = {
    "type": "string",
    "format": "date-time",
    "pattern": INSTANT_PATTERN,
}
_INSTANT_RULE = (
    f"RFC 3339 date-time with a UTC offset (naive times are refused), dated "
    f"{FIRST_DAY} to {LAST_DAY} as written; on {FIRST_DAY} the offset must be "
    f"UTC or west of it, on {LAST_DAY} UTC or east of it; 1-9 fractional digits, "
    "kept to the microsecond"
)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """An optional field may also be ``null``, which means left out."""
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {**schema, "type": [schema["type"], "null"]}


def field_schema(spec: Field) -> dict[str, Any]:
    """One declared field as JSON Schema (also the HTTP API's request bodies, handlers/api/operations.py)."""
    if spec.type == "string":
        schema: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": NON_BLANK_PATTERN}
        if spec.max_length is not None:
            schema["maxLength"] = spec.max_length
        if spec.enum is not None:
            schema = {"enum": list(spec.enum)}
    elif spec.type == "integer":
        schema = {"type": "integer"}
        if spec.minimum is not None:
            schema["minimum"] = spec.minimum
        if spec.maximum is not None:
            schema["maximum"] = spec.maximum
    elif spec.type == "object":
        schema = object_schema(spec.properties or {})
    else:
        schema = {"type": "array", "items": object_schema(spec.properties or {})}
        if spec.max_items is not None:
            schema["maxItems"] = spec.max_items
    if not spec.required:
        schema = _nullable(schema)
    if spec.description:
        schema["description"] = spec.description
    return schema


def object_schema(fields: Mapping[str, Field]) -> dict[str, Any]:
    """An object of declared fields: those and no others, the required ones required."""
    return {
        "type": "object",
        "properties": {name: field_schema(spec) for name, spec in fields.items()},
        "required": [name for name, spec in fields.items() if spec.required],
        "additionalProperties": False,
    }


def _entity_id_schema(event_type: str) -> dict[str, Any]:
    if not event_type.startswith("customer."):
        return {**_ID, "description": "the fault, ticket or order id"}
    return {
        **_ID,
        EQUALS_KEYWORD: "customer_id",
        "description": "the customer id: must equal customer_id (checked by the decoder; "
        "JSON Schema cannot compare two fields)",
    }


def event_schema(event_type: str) -> dict[str, Any]:
    """The complete JSON Schema of one event type: envelope plus its payload."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://keydesk.dev/schemas/v{SCHEMA_VERSION}/{event_type}.schema.json",
        "title": event_type,
        "description": f"One event as UTF-8 JSON text of at most {MAX_EVENT_BYTES} bytes, "
        "with no key twice in one object (I-JSON, RFC 7493); the decoder checks "
        "both, which JSON Schema cannot state",
        MAX_BYTES_KEYWORD: MAX_EVENT_BYTES,
        "type": "object",
        "properties": {
            "event_id": {
                "type": "string",
                "format": "uuid",
                "pattern": EVENT_ID_PATTERN,
                "description": "canonical UUID: lowercase hex, hyphenated 8-4-4-4-12",
            },
            "event_type": {"const": event_type},
            "schema_version": {"const": SCHEMA_VERSION},
            "customer_id": _ID,
            "entity_id": _entity_id_schema(event_type),
            "occurred_at": {**_INSTANT, "description": f"when it happened (event time): {_INSTANT_RULE}"},
            "recorded_at": {**_INSTANT, "description": f"when a system recorded it: {_INSTANT_RULE}"},
            "source": {"enum": list(SOURCES)},
            "actor": {**_ID, "description": "who: staff id, alarm system, customer portal user"},
            "payload": object_schema(EVENT_TYPES[event_type]),
        },
        "required": [
            "event_id",
            "event_type",
            "schema_version",
            "customer_id",
            "entity_id",
            "occurred_at",
            "recorded_at",
            "source",
            "actor",
            "payload",
        ],
        "additionalProperties": False,
    }
    return schema


def render_all() -> dict[str, bytes]:
    """File name -> file bytes for every event type."""
    return {
        f"{event_type}.schema.json": orjson.dumps(event_schema(event_type), option=orjson.OPT_INDENT_2)
        + b"\n"
        for event_type in EVENT_TYPES
    }


def write_all(directory: Path = SCHEMA_DIR) -> list[Path]:
    """(Re)write the published schema files; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, content in render_all().items():
        path = directory / name
        path.write_bytes(content)
        written.append(path)
    return written
