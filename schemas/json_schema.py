"""Publishes the event catalogue as JSON Schema (draft 2020-12), one file per event type.

The files under ``schemas/json/`` are generated from :mod:`schemas.event_catalogue`
(``keydesk schemas write``) and a test fails when they drift from it, so the
published contract and the decoder can never disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from schemas.envelope import ID_MAX_LENGTH
from schemas.event_catalogue import EVENT_TYPES, SCHEMA_VERSION, SOURCES, Field

SCHEMA_DIR = Path(__file__).parent / "json"
_ID = {"type": "string", "minLength": 1, "maxLength": ID_MAX_LENGTH, "pattern": r"\S"}
_INSTANT = {
    "type": "string",
    "format": "date-time",
    "pattern": r"(Z|z|[+-]\d{2}:\d{2})$",
    "description": "ISO-8601 instant with a UTC offset; naive times are rejected",
}


def _field_schema(spec: Field) -> dict[str, Any]:
    if spec.type == "string":
        schema: dict[str, Any] = {"type": "string", "minLength": 1, "pattern": r"\S"}
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
        schema = _object_schema(spec.properties or {})
    else:
        schema = {"type": "array", "items": _object_schema(spec.properties or {})}
    if spec.description:
        schema["description"] = spec.description
    return schema


def _object_schema(fields: dict[str, Field]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: _field_schema(spec) for name, spec in fields.items()},
        "required": [name for name, spec in fields.items() if spec.required],
        "additionalProperties": False,
    }


def event_schema(event_type: str) -> dict[str, Any]:
    """The complete JSON Schema of one event type: envelope plus its payload."""
    schema = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://keydesk.dev/schemas/v{SCHEMA_VERSION}/{event_type}.schema.json",
        "title": event_type,
        "type": "object",
        "properties": {
            "event_id": {"type": "string", "format": "uuid",
                         "pattern": "^[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}$"},
            "event_type": {"const": event_type},
            "schema_version": {"const": SCHEMA_VERSION},
            "customer_id": _ID,
            "entity_id": {**_ID, "description": "fault/ticket/order id; customer_id for customer events"},
            "occurred_at": {**_INSTANT, "description": "when it happened (event time)"},
            "recorded_at": {**_INSTANT, "description": "when a system recorded it"},
            "source": {"enum": list(SOURCES)},
            "actor": {**_ID, "description": "who: staff id, alarm system, customer portal user"},
            "payload": _object_schema(EVENT_TYPES[event_type]),
        },
        "required": ["event_id", "event_type", "schema_version", "customer_id", "entity_id",
                     "occurred_at", "recorded_at", "source", "actor", "payload"],
        "additionalProperties": False,
    }
    return schema


def render_all() -> dict[str, bytes]:
    """File name -> file bytes for every event type."""
    return {
        f"{event_type}.schema.json": orjson.dumps(event_schema(event_type),
                                                   option=orjson.OPT_INDENT_2) + b"\n"
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
