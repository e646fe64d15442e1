"""The shapes of the API's answers, as JSON Schema (2020-12, as OpenAPI 3.1 takes it).

Read by the operations' declarations (``handlers/api/operations.py``) and
published in ``GET /api/openapi.json``; ``tests/e2e/test_openapi_contract.py``
checks every answer a running worker gives against them.  They state what a
client may rely on (the keys always present, their types); objects stay open
to keys added later, except the error body, which is exactly two keys.
"""

from __future__ import annotations

from typing import Any

from schemas.event_catalogue import ITEM_KINDS, SLA_METRICS, SOURCES

Schema = dict[str, Any]


def _object(required: dict[str, Schema], optional: dict[str, Schema] | None = None) -> Schema:
    return {
        "type": "object",
        "properties": {**required, **(optional or {})},
        "required": list(required),
    }


_STRING: Schema = {"type": "string"}
_NULLABLE_STRING: Schema = {"type": ["string", "null"]}
_INTEGER: Schema = {"type": "integer"}
_OBJECT: Schema = {"type": "object"}
#: Any JSON object (the identity's answers: described by the README, not pinned field by field)
OBJECT: Schema = _OBJECT
_EVENT_ID: Schema = {"type": "string", "format": "uuid"}
_KIND: Schema = {"type": "string", "enum": list(ITEM_KINDS)}

#: The one error body (``http_guard.error_body``): what is wrong, and the request's field it is about.
ERROR: Schema = {
    "type": "object",
    "properties": {"error": _STRING, "field": _NULLABLE_STRING},
    "required": ["error", "field"],
}
#: A refusal that also says where the step stands (409 of a step).
_ERROR_KEYS = {"error": _STRING, "field": _NULLABLE_STRING}

#: One fault, ticket or order as the view holds it.
ITEM: Schema = _object(
    {
        "id": _STRING,
        "kind": _KIND,
        "state": _NULLABLE_STRING,
        "attributes": _OBJECT,
        "history": {"type": "array", "items": _OBJECT},
    },
    {"sla": {"type": ["object", "null"]}, "sla_log": {"type": "array", "items": _OBJECT}},
)


def command_accepted(id_field: str) -> Schema:
    """202 of ``POST /api/faults`` (tickets, orders)."""
    return _object({id_field: _STRING, "event_id": _EVENT_ID, "customer_id": _STRING, "view": _STRING})


EVENT_ACCEPTED: Schema = _object({"event_id": _EVENT_ID, "customer_id": _STRING})

CUSTOMER_VIEW: Schema = _object(
    {
        "customer_id": _STRING,
        "profile": {"type": ["object", "null"]},
        "open": {
            "type": "object",
            "properties": {kind: {"type": "object", "additionalProperties": ITEM} for kind in ITEM_KINDS},
            "required": list(ITEM_KINDS),
        },
        "recent_closed": {"type": "array", "items": ITEM},
        "counters": {"type": "object", "additionalProperties": _INTEGER},
        "open_counts": {"type": "object", "additionalProperties": _INTEGER},
        "last_event_at": _NULLABLE_STRING,
    }
)

ITEM_SLA: Schema = _object(
    {
        "evaluation": _object({"metrics": {"type": "object", "additionalProperties": _OBJECT}}),
        "explanation": _STRING,
    }
)

ACKNOWLEDGED: Schema = _object(
    {
        "event_id": _EVENT_ID,
        "item_kind": _KIND,
        "metric": {"type": "string", "enum": list(SLA_METRICS)},
        "cycle": {"type": "integer", "minimum": 1},
        "item_checked": {"type": "boolean"},
    },
    {"note": _STRING},
)

FOLD_OUTCOME: Schema = _object(
    {
        "outcome": {"enum": ["applied", "rejected"]},
        "reason": _NULLABLE_STRING,
        "state": _NULLABLE_STRING,
        "item": ITEM,
    }
)

_STEP_KEYS: dict[str, Schema] = {
    "event_id": _EVENT_ID,
    "event_type": _STRING,
    "customer_id": _STRING,
    "kind": _KIND,
    "id": _STRING,
    "action": _STRING,
}
STEP_PUBLISHED: Schema = _object(
    {**_STEP_KEYS, "outcome": {"const": "published"}}, {"waited": {"type": "number", "minimum": 0}}
)
STEP_APPLIED: Schema = _object(
    {**_STEP_KEYS, "outcome": {"const": "applied"}, "state": _NULLABLE_STRING, "item": ITEM}
)
STEP_REJECTED: Schema = _object(
    {**_ERROR_KEYS, **_STEP_KEYS, "outcome": {"const": "rejected"}, "state": _NULLABLE_STRING}
)

DISPATCH_QUEUE: Schema = _object(
    {
        "as_of": _STRING,
        "items": {
            "type": "array",
            "items": _object(
                {
                    "customer_id": _STRING,
                    "kind": _KIND,
                    "id": _STRING,
                    "state": _NULLABLE_STRING,
                    "next_deadline": _NULLABLE_STRING,
                    "seconds_to_breach": {"type": ["number", "null"]},
                    "paused": {"type": "boolean"},
                }
            ),
        },
    }
)

SINK_STATUS: Schema = _object(
    {
        "state": {"enum": ["starting", "running", "retrying", "stopped"]},
        "lag_total": _INTEGER,
        "lag": {"type": "object", "additionalProperties": _INTEGER},
        "totals": {"type": "object", "additionalProperties": _INTEGER},
        "retries": _INTEGER,
        "dead_lettered": _INTEGER,
        "last_error": _NULLABLE_STRING,
    }
)

HEALTH: Schema = _object(
    {
        "status": {"enum": ["ok", "recovering", "degraded"]},
        "ready": {"type": "boolean"},
        "problems": {"type": "object", "additionalProperties": _STRING},
        "worker": _STRING,
        "events_topic": _STRING,
        "partitions": {"type": "array", "items": _INTEGER},
        "processed": {"type": "object"},
        "sources": {"type": "array", "items": {"enum": list(SOURCES)}},
    }
)

#: The report as JSON (``handlers/reports/model.py`` ``to_dict``); CSV, HTML and the table are text.
COMPLIANCE_REPORT: Schema = _object(
    {
        "period": _object({"from": _STRING, "to": _STRING}),
        "as_of": _STRING,
        "group_by": {"type": "array", "items": _STRING},
        "groups": {"type": "array", "items": _OBJECT},
        "total": _OBJECT,
        "breaches": {"type": "array", "items": _OBJECT},
    }
)

#: One customer's archive record (``streams/customer_archive.py`` ``archive_record``).
ARCHIVE_RECORD: Schema = _object(
    {
        "customer_id": _STRING,
        "name": _NULLABLE_STRING,
        "tier": _NULLABLE_STRING,
        "escalation_chain": {"type": "array", "items": _OBJECT},
        "contacts": {"type": "array", "items": _OBJECT},
        "services": {"type": "array", "items": _OBJECT},
        "updated_at": _NULLABLE_STRING,
    },
    {"account_manager": {"type": ["object", "null"]}, "region": _NULLABLE_STRING},
)
ARCHIVE_PAGE: Schema = _object(
    {
        "customers": {
            "type": "array",
            "items": {**ARCHIVE_RECORD, "required": [*ARCHIVE_RECORD["required"], "open_breaches"]},
        },
        "next": _NULLABLE_STRING,
    }
)
#: One page of a customer's service register (``handlers/api/service_register.py``).
SERVICE_PAGE: Schema = _object(
    {
        "customer_id": _STRING,
        "count": _INTEGER,
        "services": {
            "type": "array",
            "items": _object({"service_id": _STRING, "updated_at": _STRING}, {"circuit_id": _STRING}),
        },
        "next": _NULLABLE_STRING,
    }
)
_ARCHIVE_KEYS: dict[str, Schema] = {"customer_id": _STRING, "event_id": _EVENT_ID, "event_type": _STRING}
ARCHIVE_PUBLISHED: Schema = _object(
    {**_ARCHIVE_KEYS, "outcome": {"const": "published"}}, {"waited": {"type": "number", "minimum": 0}}
)
ARCHIVE_APPLIED: Schema = _object(
    {**_ARCHIVE_KEYS, "outcome": {"const": "applied"}, "customer": ARCHIVE_RECORD}
)
