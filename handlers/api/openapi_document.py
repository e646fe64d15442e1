"""``GET /api/openapi.json``: the OpenAPI 3.1 document, generated from the operations' declarations.

Nothing here is written by hand about an operation: paths, parameters, bounds,
bodies and answers all come from ``handlers/api/operations.py``, which the
handlers validate with, and from the event catalogue behind it.  Pure.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import orjson

from handlers.api.answer_schemas import ERROR
from handlers.api.input_limits import MAX_BODY_BYTES
from handlers.api.operations import OPERATIONS, Answer, Operation, Param, raw_event_components

OPENAPI_VERSION = "3.1.0"
_JSON = "application/json"


def _parameter(param: Param) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": param.name,
        "in": param.where,
        "required": param.required or param.where == "path",
        "description": param.description,
        "schema": param.schema(),
    }
    if param.means_something_when_empty:
        spec["allowEmptyValue"] = True  # ``?wait`` alone means 2 s
    return spec


def _answer(answer: Answer) -> dict[str, Any]:
    spec: dict[str, Any] = {"description": answer.description}
    if answer.schema is not None:
        spec["content"] = {
            media: {"schema": answer.schema if media == _JSON else {"type": "string"}}
            for media in answer.media
        }
    if answer.headers:
        spec["headers"] = {
            name: {"schema": {"type": "string"}, "description": "seconds to wait before retrying"}
            for name in answer.headers
        }
    return spec


def _operation(op: Operation) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": op.operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": {
            str(a.status): _answer(a) for a in sorted(op.documented_answers(), key=lambda a: a.status)
        },
    }
    if op.description:
        spec["description"] = op.description
    if op.params:
        spec["parameters"] = [_parameter(p) for p in op.params]
    if op.body is not None:
        spec["requestBody"] = {
            "required": True,
            "description": f"{op.body.description}; at most {MAX_BODY_BYTES} bytes, gzip allowed",
            "content": {_JSON: {"schema": op.body.json_schema()}},
        }
    if op.permission is not None:
        spec["x-keydesk-permission"] = op.permission
    # a bearer token or session secret, or the browser's session cookie; none for the open ones
    spec["security"] = [] if op.permission is None else [{"bearer": []}, {"session": []}]
    return spec


def build_document(
    operations: tuple[Operation, ...] = OPERATIONS, server: str | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``operations``, served by ``server`` (or relative to the document)."""
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "info": {
            "title": "keydesk",
            "version": "1",
            "description": "The HTTP API every keydesk worker serves (README, 'HTTP API'). "
            "Every refusal is a 4xx whose body is {error, field}, field naming the culprit.",
        },
        "paths": paths,
        "components": {
            "schemas": {"Error": ERROR, **raw_event_components()},
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API token or a session"},
                "session": {"type": "apiKey", "in": "cookie", "name": "keydesk_session"},
            },
        },
    }
    if server is not None:
        document["servers"] = [{"url": server}]
    return document


@lru_cache(maxsize=4)
def document_bytes(server: str | None = None) -> bytes:
    """The document as served (built once per server address: the declarations do not change)."""
    return orjson.dumps(build_document(server=server))
