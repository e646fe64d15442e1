"""The event envelope: decoding and validating wire bytes into :class:`Event`.

The wire format is plain JSON (UTF-8) so that any Kafka client can publish
events; the rules here are the same ones the published JSON Schema files state,
and a property test holds the two to it.  Decoding never guesses and never
fails any other way: for any input, :func:`decode_event` returns an event or
raises :class:`InvalidEvent` naming the field, and the caller sends the
original bytes to the dead-letter topic.  A worker that crashed on a message
instead would retry it for ever and stop its partition.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.event_catalogue import EVENT_TYPES, SCHEMA_VERSION, SOURCES, Field
from schemas.json_text import JsonTextError, parse_json_text
from schemas.wire_formats import (
    ID_MAX_LENGTH,
    MAX_EVENT_BYTES,
    check_range,
    is_blank,
    is_event_id,
    read_instant,
)

__all__ = [
    "ENVELOPE_FIELDS",
    "ID_MAX_LENGTH",
    "MAX_EVENT_BYTES",
    "Event",
    "InvalidEvent",
    "decode_event",
    "decode_lines",
    "event_from_dict",
    "new_event",
    "parse_instant",
    "utc_iso",
    "validate_fields",
]

ENVELOPE_FIELDS = (
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
)
_ENVELOPE = frozenset(ENVELOPE_FIELDS)
# Reasons and fields travel in Kafka headers and HTTP answers: keep them short,
# and encodable as UTF-8 whatever the message held.
_REASON_LIMIT = 300


def _printable(text: str) -> str:
    return text[:_REASON_LIMIT].encode("utf-8", "backslashreplace").decode("utf-8")[:_REASON_LIMIT]


class InvalidEvent(ValueError):
    """An event that breaks the contract; ``field`` is the dotted path at fault."""

    def __init__(self, field: str | None, reason: str) -> None:
        self.field = _printable(str(field)) if field is not None else None
        self.reason = _printable(reason)
        super().__init__(f"{self.field}: {self.reason}" if self.field else self.reason)


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
    """An ISO-8601 instant with an offset, as a person types it (CLI, HTTP query, commands).

    Laxer than the wire (``2026-11-23 09:00+08:00`` will do) but held to the same
    range, so that the instant can always be written into an event.  Naive times
    are refused, not assumed.
    """
    if not isinstance(value, str):
        raise InvalidEvent(field, "must be an ISO-8601 string with a UTC offset")
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidEvent(field, f"not an ISO-8601 instant: {value[:40]!r}") from None
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise InvalidEvent(field, "has no UTC offset; send e.g. 2026-11-22T09:30:00+08:00")
    try:
        check_range(instant)
    except ValueError as exc:
        raise InvalidEvent(field, str(exc)) from None
    return instant.astimezone(UTC)


def _wire_instant(value: Any, field: str) -> datetime:
    if not isinstance(value, str):
        raise InvalidEvent(
            field, "must be an RFC 3339 string with a UTC offset, e.g. 2026-11-23T09:00:00+08:00"
        )
    try:
        return read_instant(value)
    except ValueError as exc:
        raise InvalidEvent(field, f"{value[:40]!r}: {exc}") from None


def _describe(value: Any) -> str:
    """A value for a reason: strings quoted and cut short, anything else by its JSON type."""
    if isinstance(value, str):
        return repr(value[:60])
    if value is None or isinstance(value, bool):
        return orjson.dumps(value).decode()
    if isinstance(value, float) or (isinstance(value, int) and value.bit_length() <= 128):
        return repr(value)[:40]
    if isinstance(value, int):  # str() of a huge int is slow, and refused past 4300 digits
        return "an integer of more than 38 digits"
    names: dict[type, str] = {dict: "an object", list: "an array"}
    return names.get(type(value), type(value).__name__)


def _require_id(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str) or is_blank(value):
        raise InvalidEvent(name, "is required and must be a non-empty string")
    if len(value) > ID_MAX_LENGTH:
        raise InvalidEvent(name, f"longer than {ID_MAX_LENGTH} characters")
    return value


def _event_id(value: Any) -> str:
    if isinstance(value, str) and is_event_id(value):
        return value
    try:  # say what the canonical spelling would have been, if it is a UUID at all
        expected = f"; send {str(uuid.UUID(value))!r}" if isinstance(value, str) else ""
    except ValueError:
        expected = ""
    raise InvalidEvent(
        "event_id",
        "must be a UUID in canonical form, 8-4-4-4-12 lowercase "
        f"hex digits such as 0b0e8a3c-6f0e-4c35-9a53-0f3a2f2c9d11"
        f"{expected}",
    )


def _integer(value: Any) -> int | None:
    """``value`` as an int if JSON Schema calls it an integer (``4`` or ``4.0``), else None."""
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    return None


def decode_event(raw: object) -> Event:
    """Decode wire bytes into a validated :class:`Event` or raise :class:`InvalidEvent`.

    Any input at all gives one or the other, never a different exception (so ``raw`` is typed
    ``object``: wire bytes or text are what it decodes, anything else is an InvalidEvent).
    """
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidEvent(None, "not valid UTF-8 JSON: text with an unpaired surrogate") from None
    elif isinstance(raw, bytearray | memoryview):
        raw = bytes(raw)
    elif not isinstance(raw, bytes):
        raise InvalidEvent(None, f"an event is bytes of JSON, not {type(raw).__name__}")
    if len(raw) > MAX_EVENT_BYTES:
        raise InvalidEvent(
            None, f"message is {len(raw)} bytes, over the limit of {MAX_EVENT_BYTES} bytes (MAX_EVENT_BYTES)"
        )
    try:
        document = parse_json_text(raw)
    except JsonTextError as exc:
        raise InvalidEvent(exc.path, exc.reason) from None
    return event_from_dict(document)


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
    """Validate an already-parsed JSON object against the envelope and payload contract.

    The returned payload is normalised: ``null`` in an optional field means the
    field is absent and is dropped, and an integral number such as ``4.0`` is
    the integer ``4``.
    """
    if not isinstance(obj, dict):
        raise InvalidEvent(None, "an event must be a JSON object")
    unknown = [name for name in obj if name not in _ENVELOPE]
    if unknown:
        raise InvalidEvent(min(map(str, unknown)), "unknown envelope field")
    event_type = obj.get("event_type")
    if not isinstance(event_type, str) or event_type not in EVENT_TYPES:
        raise InvalidEvent("event_type", f"unknown event type {_describe(event_type)}")
    version = obj.get("schema_version")
    if _integer(version) != SCHEMA_VERSION:
        raise InvalidEvent(
            "schema_version", f"unsupported version {_describe(version)}; this worker reads {SCHEMA_VERSION}"
        )
    event_id = _event_id(obj.get("event_id"))
    source = obj.get("source")
    if not isinstance(source, str) or source not in SOURCES:
        raise InvalidEvent("source", f"must be one of {', '.join(SOURCES)}")
    payload = obj.get("payload")
    if not isinstance(payload, dict):
        raise InvalidEvent("payload", "is required and must be a JSON object")
    payload = validate_fields(payload, EVENT_TYPES[event_type], "payload")
    customer_id = _require_id(obj, "customer_id")
    entity_id = _require_id(obj, "entity_id")
    if event_type.startswith("customer.") and entity_id != customer_id:
        # The one rule JSON Schema cannot state; the schema names it (x-keydesk-equals).
        raise InvalidEvent("entity_id", "must equal customer_id for customer events")
    return Event(
        event_id=event_id,
        event_type=event_type,
        customer_id=customer_id,
        entity_id=entity_id,
        occurred_at=_wire_instant(obj.get("occurred_at"), "occurred_at"),
        recorded_at=_wire_instant(obj.get("recorded_at"), "recorded_at"),
        source=source,
        actor=_require_id(obj, "actor"),
        payload=payload,
    )


def validate_fields(obj: dict[str, Any], fields: dict[str, Field], path: str) -> dict[str, Any]:
    """Check a JSON object against declared fields and return it normalised.

    Unknown fields are errors (a typo must not lose data); ``null`` in an
    optional field is the field left out.
    """
    for name in obj:
        if name not in fields:
            raise InvalidEvent(f"{path}.{name}", "unknown field")
    clean: dict[str, Any] = {}
    for name, value in obj.items():
        if value is not None:
            clean[name] = _validated(value, fields[name], f"{path}.{name}")
    for name, spec in fields.items():
        if spec.required and name not in clean:
            raise InvalidEvent(f"{path}.{name}", "is required")
    return clean


def _validated(value: Any, spec: Field, where: str) -> Any:
    if spec.type == "string":
        if not isinstance(value, str) or is_blank(value):
            raise InvalidEvent(where, "must be a non-empty string")
        if spec.max_length is not None and len(value) > spec.max_length:
            raise InvalidEvent(where, f"longer than {spec.max_length} characters")
        if spec.enum is not None and value not in spec.enum:
            raise InvalidEvent(where, f"must be one of {', '.join(spec.enum)}")
        return value
    if spec.type == "integer":
        number = _integer(value)
        if number is None:
            raise InvalidEvent(where, "must be an integer")
        if spec.minimum is not None and number < spec.minimum:
            raise InvalidEvent(where, f"must be at least {spec.minimum}")
        if spec.maximum is not None and number > spec.maximum:
            raise InvalidEvent(where, f"must be at most {spec.maximum}")
        return number
    if spec.type == "object":
        if not isinstance(value, dict):
            raise InvalidEvent(where, "must be a JSON object")
        return validate_fields(value, spec.properties or {}, where)
    if not isinstance(value, list):
        raise InvalidEvent(where, "must be a JSON array")
    if spec.max_items is not None and len(value) > spec.max_items:
        raise InvalidEvent(where, f"more than {spec.max_items} items")
    items = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise InvalidEvent(f"{where}[{index}]", "must be a JSON object")
        items.append(validate_fields(item, spec.properties or {}, f"{where}[{index}]"))
    return items


def new_event(
    event_type: str,
    customer_id: str,
    entity_id: str,
    payload: dict[str, Any],
    *,
    source: str,
    actor: str,
    occurred_at: datetime | None = None,
    now: datetime,
) -> Event:
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
