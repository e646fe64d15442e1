"""The event envelope: decoding and validating wire bytes into :class:`Event`.

The wire format is plain JSON (UTF-8) so that any Kafka client can publish
events; the rules here are the same ones the published JSON Schema files state.
Decoding never guesses: a message that is not valid JSON, or that breaks the
contract, raises :class:`InvalidEvent` naming the field, and the caller sends
the original bytes to the dead-letter topic.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.event_catalogue import EVENT_TYPES, SCHEMA_VERSION, SOURCES, Field

ENVELOPE_FIELDS = ("event_id", "event_type", "schema_version", "customer_id", "entity_id",
                   "occurred_at", "recorded_at", "source", "actor", "payload")
ID_MAX_LENGTH = 64


class InvalidEvent(ValueError):
    """An event that breaks the contract; ``field`` is the dotted path at fault."""

    def __init__(self, field: str | None, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


@dataclass(frozen=True, slots=True)
class Event:
    """One validated event.  Instants are timezone-aware and normalised to UTC."""

    event_id: str
    event_type: str
    customer_id: str
    entity_id: str
    occurred_at: datetime
    recorded_at: datetime
    source: str
    actor: str
    payload: dict[str, Any]
    schema_version: int = SCHEMA_VERSION

    @property
    def kind(self) -> str:
        """The entity kind: ``customer``, ``fault``, ``ticket`` or ``order``."""
        return self.event_type.partition(".")[0]

    def to_wire(self) -> dict[str, Any]:
        """The JSON-able envelope, as published on the topic."""
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "schema_version": self.schema_version,
            "customer_id": self.customer_id,
            "entity_id": self.entity_id,
            "occurred_at": utc_iso(self.occurred_at),
            "recorded_at": utc_iso(self.recorded_at),
            "source": self.source,
            "actor": self.actor,
            "payload": self.payload,
        }

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.to_wire())


def utc_iso(instant: datetime) -> str:
    """Fixed-width UTC ISO-8601, so that stored instants also sort as strings."""
    return instant.astimezone(UTC).isoformat(timespec="microseconds")


def parse_instant(value: Any, field: str) -> datetime:
    """An ISO-8601 instant with an offset; naive times are refused, not assumed."""
    if not isinstance(value, str):
        raise InvalidEvent(field, "must be an ISO-8601 string with a UTC offset")
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(field, f"not an ISO-8601 instant: {value[:40]!r}") from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InvalidEvent(field, "has no UTC offset; send e.g. 2026-11-22T09:30:00+08:00")
    return instant.astimezone(UTC)


def _require_id(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidEvent(name, "is required and must be a non-empty string")
    if len(value) > ID_MAX_LENGTH:
        raise InvalidEvent(name, f"longer than {ID_MAX_LENGTH} characters")
    return value


def decode_event(raw: bytes | str) -> Event:
    """Decode wire bytes into a validated :class:`Event` or raise :class:`InvalidEvent`."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(None, f"not valid UTF-8 JSON: {exc}") from None
    return event_from_dict(obj)


def decode_lines(lines: Iterable[bytes]) -> Iterator[tuple[int, bytes, Event | InvalidEvent]]:
    """Each non-blank line of a JSON-lines event file: its number, bytes, and event or error.

    Errors are yielded, not raised, so that a file with one bad line still
    reports every line (publish, replay and offline explain all read files).
    """
    for number, line in enumerate(lines, start=1):
        line = line.strip()
        if not line:
            continue
        try:
            yield number, line, decode_event(line)
        except InvalidEvent as exc:
            yield number, line, exc


def event_from_dict(obj: Any) -> Event:
    """Validate an already-parsed JSON object against the envelope and payload contract."""
    if not isinstance(obj, dict):
        raise InvalidEvent(None, "an event must be a JSON object")
    unknown = obj.keys() - set(ENVELOPE_FIELDS)
    if unknown:
        raise InvalidEvent(sorted(unknown)[0], "unknown envelope field")
    event_type = obj.get("event_type")
    if event_type not in EVENT_TYPES:
        raise InvalidEvent("event_type", f"unknown event type {str(event_type)[:60]!r}")
    version = obj.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        raise InvalidEvent("schema_version", f"unsupported version {version!r}; "
                                             f"this worker reads {SCHEMA_VERSION}")
    event_id = obj.get("event_id")
    try:
        event_id = str(uuid.UUID(event_id)) if isinstance(event_id, str) else None
    except ValueError:
        event_id = None
    if event_id is None:
        raise InvalidEvent("event_id", "must be a UUID string")
    source = obj.get("source")
    if source not in SOURCES:
        raise InvalidEvent("source", f"must be one of {', '.join(SOURCES)}")
    payload = obj.get("payload")
    if not isinstance(payload, dict):
        raise InvalidEvent("payload", "is required and must be a JSON object")
    validate_fields(payload, EVENT_TYPES[event_type], "payload")
    customer_id = _require_id(obj, "customer_id")
    entity_id = _require_id(obj, "entity_id")
    if event_type.startswith("customer.") and entity_id != customer_id:
        raise InvalidEvent("entity_id", "must equal customer_id for customer events")
    return Event(
        event_id=event_id,
        event_type=event_type,
        customer_id=customer_id,
        entity_id=entity_id,
        occurred_at=parse_instant(obj.get("occurred_at"), "occurred_at"),
        recorded_at=parse_instant(obj.get("recorded_at"), "recorded_at"),
        source=source,
        actor=_require_id(obj, "actor"),
        payload=payload,
    )


def validate_fields(obj: dict[str, Any], fields: dict[str, Field], path: str) -> None:
    """Check a JSON object against declared fields; unknown fields are errors (typos lose data)."""
    for name in obj.keys() - fields.keys():
        raise InvalidEvent(f"{path}.{name}", "unknown field")
    for name, spec in fields.items():
        where = f"{path}.{name}"
        if name not in obj or obj[name] is None:
            if spec.required:
                raise InvalidEvent(where, "is required")
            continue
        _validate_value(obj[name], spec, where)


def _validate_value(value: Any, spec: Field, where: str) -> None:
    if spec.type == "string":
        if not isinstance(value, str) or not value.strip():
            raise InvalidEvent(where, "must be a non-empty string")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise InvalidEvent(where, f"longer than {spec.max_length} characters")
        if spec.enum is not None and value not in spec.enum:
            raise InvalidEvent(where, f"must be one of {', '.join(spec.enum)}")
    elif spec.type == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidEvent(where, "must be an integer")
        if spec.minimum is not None and value < spec.minimum:
            raise InvalidEvent(where, f"must be at least {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise InvalidEvent(where, f"must be at most {spec.maximum}")
    elif spec.type == "object":
        if not isinstance(value, dict):
            raise InvalidEvent(where, "must be a JSON object")
        validate_fields(value, spec.properties or {}, where)
    elif spec.type == "array":
        if not isinstance(value, list):
            raise InvalidEvent(where, "must be a JSON array")
        for index, item in enumerate(value):
            if not isinstance(item, dict):
                raise InvalidEvent(f"{where}[{index}]", "must be a JSON object")
            validate_fields(item, spec.properties or {}, f"{where}[{index}]")


def new_event(event_type: str, customer_id: str, entity_id: str, payload: dict[str, Any], *,
              source: str, actor: str, occurred_at: datetime | None = None,
              now: datetime) -> Event:
    """Build and validate an event from our own entry points (HTTP, CLI).

    ``now`` is passed in (the caller's clock) so this stays free of the wall clock.
    """
    wire = {
        "event_id": str(uuid.uuid4()),
        "event_type": event_type,
        "schema_version": SCHEMA_VERSION,
        "customer_id": customer_id,
        "entity_id": entity_id,
        "occurred_at": utc_iso(occurred_at or now),
        "recorded_at": utc_iso(now),
        "source": source,
        "actor": actor,
        "payload": payload,
    }
    return event_from_dict(wire)
