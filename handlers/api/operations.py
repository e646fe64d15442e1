"""Every operation of the HTTP API, declared once: what the handlers validate with and the document says.

An :class:`Operation` is one method on one path: its parameters (path and
query, with their types, bounds and defaults), its request body (declared
fields: the event catalogue's payload fields of the event it writes, plus the
command's own envelope fields) and its answers by status.  The handlers read
their parameters and bodies *through* these declarations
(:meth:`Operation.params`, :meth:`Body.check`), and ``GET /api/openapi.json``
is generated from them (``handlers/api/openapi_document.py``), so the document
cannot say one thing while a handler enforces another.  The bounds are the
constants of ``handlers/api/input_limits.py``; the shapes of the answers are in
``handlers/api/answer_schemas.py``.

Each operation's ``permission`` is the one the identity's table of operations
(``handlers/identity/operations.py``, deny by default) gives its method and
route; an operation without a line there cannot be declared.

Pure: no faust, no aiohttp request objects (a request is anything with
``query`` and ``match_info`` mappings).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from handlers.api import answer_schemas as answers
from handlers.api.actions import ACKNOWLEDGEMENT, ACTIONS, COLLECTIONS, CREATIONS, Action, Creation
from handlers.api.http_guard import BadRequest, check_instant_years
from handlers.api.input_limits import (
    DEFAULT_ARCHIVE_PAGE,
    DEFAULT_QUEUE_LIMIT,
    DEFAULT_WAIT_SECONDS,
    MAX_ARCHIVE_PAGE,
    MAX_ID_LENGTH,
    MAX_QUEUE_LIMIT,
    MAX_REPORT_BREACHES,
    MAX_RULES_CHARACTERS,
    MAX_SEARCH_LENGTH,
    MAX_SERVICE_PAGE,
    MAX_WAIT_SECONDS,
    MAX_YEAR,
    MIN_YEAR,
    RULES_TEXT_PATTERN,
)
from handlers.identity.operations import find_operation as find_permission
from handlers.identity.roles import ROLES
from handlers.reports.arguments import DIMENSIONS, REPORT_FORMATS
from schemas.envelope import InvalidEvent, parse_instant, validate_fields
from schemas.event_catalogue import EVENT_TYPES, TIERS, Field
from schemas.json_schema import event_schema, object_schema
from streams.vocabulary import ITEM_KINDS

ParamKind = Literal["string", "integer", "number", "uuid", "instant", "enum"]


class HasParams(Protocol):
    """What :meth:`Operation.params` reads of a request (aiohttp's and faust's have both)."""

    @property
    def query(self) -> Mapping[str, str]: ...

    @property
    def match_info(self) -> Mapping[str, str]: ...


_SAME = object()  # Param.empty: an empty value means the default

# The spellings a query value may have, checked before it is converted: Python's int()
# and float() also take " 7", "1_000", "inf" and other scripts' digits, which the
# document's integer and number do not, and uuid.UUID() braces and "urn:uuid:".
_INTEGER = re.compile("[+-]?[0-9]+")
_NUMBER = re.compile("[+-]?([0-9]+([.][0-9]*)?|[.][0-9]+)([eE][+-]?[0-9]+)?")
_UUID = re.compile("[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
#: A query instant begins with a date and a time of day; the rest is parse_instant's (an offset, 1970-2999).
INSTANT_PATTERN = "^[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}"
_INSTANT = re.compile(INSTANT_PATTERN)


@dataclass(frozen=True, slots=True)
class Param:
    """One path or query parameter: how it is read, refused (422 naming it) and documented."""

    name: str
    kind: ParamKind
    description: str
    where: Literal["path", "query"] = "query"
    required: bool = False
    default: Any = None
    #: the value of a parameter given empty (``?wait`` alone: wait 2 s); refused if not said
    empty: Any = _SAME  # (and any other empty value is refused)
    minimum: float | None = None
    maximum: float | None = None
    enum: tuple[str, ...] | None = None
    max_length: int | None = None

    @property
    def means_something_when_empty(self) -> bool:
        """Whether ``?name`` alone differs from leaving it out (``?wait``: wait 2 s)."""
        return self.empty is not _SAME

    def read(self, text: str | None) -> Any:
        """The value of the parameter as sent (``None``: not sent), checked and converted."""
        if text is None:
            if self.required:
                raise BadRequest(422, self.name, "is required")
            return self.default
        if text == "":  # ``?at=``: refused, unless the declaration says what it means (``?wait``)
            if self.empty is _SAME:
                raise BadRequest(422, self.name, "is empty; leave it out or give a value")
            return self.empty
        if self.max_length is not None and len(text) > self.max_length:
            raise BadRequest(422, self.name, f"longer than {self.max_length} characters")
        if self.kind in ("integer", "number"):
            return self._number(text)
        if self.kind == "enum":
            if text not in (self.enum or ()):
                raise BadRequest(422, self.name, f"must be one of {', '.join(self.enum or ())}")
            return text
        if self.kind == "uuid":
            if _UUID.fullmatch(text) is None:
                raise BadRequest(422, self.name, "must be an event id (a UUID) returned by a write")
            return text.lower()
        if self.kind == "instant":
            if _INSTANT.match(text) is None:
                raise BadRequest(
                    422, self.name, "must be an ISO-8601 instant such as 2026-11-23T09:00:00+08:00"
                )
            check_instant_years({self.name: text}, self.name)
            try:
                return parse_instant(text, self.name)
            except InvalidEvent as exc:
                raise BadRequest(422, self.name, exc.reason) from None
        return text

    def _number(self, text: str) -> float:
        value: float | None = None
        if (_INTEGER if self.kind == "integer" else _NUMBER).fullmatch(text):
            try:
                value = int(text) if self.kind == "integer" else float(text)
            except ValueError:  # int() refuses more than 4,300 digits
                value = None
        low = -math.inf if self.minimum is None else self.minimum
        high = math.inf if self.maximum is None else self.maximum
        if value is None or value != value or not low <= value <= high:  # value != value: NaN
            what = "a whole number" if self.kind == "integer" else "a number"
            raise BadRequest(422, self.name, f"must be {what} from {low:g} to {high:g}")
        return value

    def schema(self) -> dict[str, Any]:
        """The parameter's JSON Schema."""
        schema: dict[str, Any]
        if self.kind in ("integer", "number"):
            schema = {"type": self.kind}
            if self.minimum is not None:
                schema["minimum"] = self.minimum
            if self.maximum is not None:
                schema["maximum"] = self.maximum
        elif self.kind == "enum":
            schema = {"type": "string", "enum": list(self.enum or ())}
        elif self.kind == "uuid":
            schema = {"type": "string", "format": "uuid"}
        elif self.kind == "instant":  # not format date-time: "2026-11-23 09:00+08:00" will do too
            schema = {"type": "string", "pattern": INSTANT_PATTERN}
        else:
            schema = {"type": "string", "minLength": 1}
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.default is not None:
            schema["default"] = self.default
        return schema


@dataclass(frozen=True, slots=True)
class Body:
    """A JSON object body: its declared fields (checked here), or a schema its handler's decoder enforces.

    ``fields`` are :class:`~schemas.event_catalogue.Field` s, checked by the
    catalogue's own :func:`~schemas.envelope.validate_fields` and published by
    :func:`~schemas.json_schema.object_schema`: the same declaration both ways.
    ``refused``: fields that must not be sent, with the reason (``status`` of
    ``resume`` is the action's; ``item_id`` is the path's).  Raw events have no
    ``fields``: their ``schema`` is the published event schemas, which the
    decoder is held to by ``tests/schemas/test_schema_agreement.py``.
    """

    description: str
    fields: Mapping[str, Field] | None = None
    refused: Mapping[str, str] = field(default_factory=dict)
    schema: dict[str, Any] | None = None

    def check(self, body: dict[str, Any]) -> dict[str, Any]:
        """``body`` checked against the declared fields and normalised (``null`` = left out), or a 422."""
        for name, reason in self.refused.items():
            if name in body:
                raise BadRequest(422, name, reason)
        if self.fields is None:
            return body
        try:
            return validate_fields(body, dict(self.fields), "body")
        except InvalidEvent as exc:
            raise BadRequest(422, (exc.field or "").removeprefix("body.")[:200] or None, exc.reason) from None

    def json_schema(self) -> dict[str, Any]:
        if self.schema is not None:
            return self.schema
        return object_schema(dict(self.fields or {}))


@dataclass(frozen=True, slots=True)
class Answer:
    """One status an operation answers with: what it means and its body's schema per media type."""

    status: int
    description: str
    schema: dict[str, Any] | None = None
    media: tuple[str, ...] = ("application/json",)
    headers: tuple[str, ...] = ()  # names of response headers it carries (``Retry-After``)


@dataclass(frozen=True, slots=True)
class Operation:
    """One method on one path of the API.

    ``path`` is the path as documented; ``route`` the pattern the handler is
    registered on, when one route serves several operations (the steps of a
    loop: ``/api/faults/{item_id}/{action}`` is one route and one documented
    operation per action, each with its own body).  ``permission``: what a
    caller needs (from ``handlers/identity/operations.py``); ``None``: open.
    """

    operation_id: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"]
    path: str
    summary: str
    tag: str
    params: tuple[Param, ...] = ()
    body: Body | None = None
    answers: tuple[Answer, ...] = ()
    route: str | None = None
    description: str = ""
    permission: str | None = None

    @property
    def route_pattern(self) -> str:
        return self.route or self.path

    def documented_answers(self) -> tuple[Answer, ...]:
        """Its answers, and once it needs a permission the refusals of a caller without one (401, 403)."""
        if self.permission is None:
            return self.answers
        declared = {a.status for a in self.answers}
        return (*self.answers, *(a for a in CREDENTIAL_ANSWERS if a.status not in declared))

    def read(self, request: HasParams) -> dict[str, Any]:
        """The declared parameters of ``request``, checked and converted (422 names the first bad one)."""
        return self.read_values(request.query, request.match_info)

    def read_values(self, query: Mapping[str, str], path: Mapping[str, str] | None = None) -> dict[str, Any]:
        """:meth:`read` of a query string's and a route's values."""
        values: dict[str, Any] = {}
        for param in self.params:
            source = (path or {}) if param.where == "path" else query
            values[param.name] = param.read(source.get(param.name))
        return values

    def check_body(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.body is None:
            raise BadRequest(400, "body", f"{self.method} {self.path} takes no body")
        return self.body.check(body)


# -- parameters -----------------------------------------------------------------------------


def _id_param(name: str, what: str) -> Param:
    return Param(name, "string", what, where="path", required=True, max_length=MAX_ID_LENGTH)


CUSTOMER_ID = _id_param("customer_id", "the customer's id")
ITEM_ID = _id_param("item_id", "the fault, ticket or order id")
KIND = Param("kind", "enum", "the item's kind", where="path", required=True, enum=ITEM_KINDS)
EVENT_ID = Param("event_id", "uuid", "the event's id, as a write returned it", where="path", required=True)


def _wait_seconds(name: str, description: str, *, default: float | None = DEFAULT_WAIT_SECONDS) -> Param:
    return Param(name, "number", description, minimum=0, maximum=MAX_WAIT_SECONDS, default=default)


# -- bodies ---------------------------------------------------------------------------------


def _string(description: str, *, required: bool = False, max_length: int | None = MAX_ID_LENGTH) -> Field:
    return Field("string", required, description=description, max_length=max_length)


_CUSTOMER = {"customer_id": _string("the customer's id", required=True)}
#: No ``actor`` nor ``source``: they are the signed-in caller's (``handlers/identity``), and a body
#: naming them is refused (an unknown field).
_ENVELOPE = {
    "occurred_at": _string(
        "when it happened: an ISO-8601 instant with a UTC offset, 1970-2999 (default: now)", max_length=40
    ),
}

#: An acknowledgement is published with the receiving worker's clock: no occurred_at.
_ENVELOPE_ACK = {k: v for k, v in _ENVELOPE.items() if k != "occurred_at"}


def command_body(event_type: str, id_field: str, what: str) -> Body:
    """The body of ``POST /api/faults`` (tickets, orders): the event's payload fields and the envelope's."""
    own = {id_field: _string(f"the {what}'s id (default: a new one such as F-9K3M7Q2XWD)")}
    return Body(
        f"a new {what}: {event_type} payload fields plus the envelope's",
        {**_CUSTOMER, **own, **EVENT_TYPES[event_type], **_ENVELOPE},
    )


def step_body(action: Action) -> Body:
    """One step's body: its event's payload fields (less those the action sets), and the envelope's."""
    refused = {
        name: f"set by this action ({name} = {value}); leave it out" for name, value in action.fixed.items()
    }
    refused["item_id"] = "is the path's; leave it out of the body"
    envelope = _ENVELOPE_ACK if action.event_type == ACKNOWLEDGEMENT else _ENVELOPE
    return Body(f"{action.help}: {action.event_type}", {**_CUSTOMER, **action.fields(), **envelope}, refused)


def acknowledgement_body() -> Body:
    fields = {n: f for n, f in EVENT_TYPES[ACKNOWLEDGEMENT].items() if n != "item_kind"}
    return Body(
        "which clock's escalation is acknowledged; cycle: the owner's current one unless given",
        {**fields, "cycle": replace(fields["cycle"], required=False), **_ENVELOPE_ACK},
    )


def _archive_wait() -> Param:
    return replace(
        _wait_seconds(
            "wait",
            "wait up to this many seconds for the owner's record (given empty: 2 s)",
            default=None,
        ),
        empty=DEFAULT_WAIT_SECONDS,
    )


def _archive_operations() -> list[Operation]:
    """The customer archive (客户档案, ``handlers/api/customer_archive.py``): register, change, read, list."""
    registered, updated = EVENT_TYPES["customer.registered"], EVENT_TYPES["customer.updated"]
    write_answers = _with_body(
        Answer(200, "folded by the owner (wait given)", answers.ARCHIVE_APPLIED),
        Answer(
            202, "on the log; the owner could not say within wait (or none asked)", answers.ARCHIVE_PUBLISHED
        ),
        RECOVERING,
    )
    return [
        Operation(
            "register_customer",
            "POST",
            "/api/customers",
            "register a customer in the archive (customer.registered)",
            "customer archive",
            params=(_archive_wait(),),
            body=Body(
                "the customer.registered fields; the id is the caller's (CRM or billing id), never generated",
                {**_CUSTOMER, **registered, **_ENVELOPE},
            ),
            answers=(*write_answers, _error(409, "the customer is already registered")),
        ),
        Operation(
            "list_customers",
            "GET",
            "/api/customers",
            "list and search the archive, a page at a time (from the reporting database)",
            "customer archive",
            params=(
                Param(
                    "tier",
                    "enum",
                    "customers of this tier (public: also those without one)",
                    enum=tuple(TIERS),
                ),
                Param("region", "string", "this region and those under it", max_length=MAX_SEARCH_LENGTH),
                Param(
                    "account_manager", "string", "the account manager's staff id", max_length=MAX_ID_LENGTH
                ),
                Param(
                    "has_open_breaches", "enum", "an open item with a breached clock", enum=("true", "false")
                ),
                Param(
                    "q",
                    "string",
                    "part of the name, start of a customer or circuit id, or a whole phone number",
                    max_length=MAX_SEARCH_LENGTH,
                ),
                Param(
                    "limit",
                    "integer",
                    "most customers on the page",
                    minimum=1,
                    maximum=MAX_ARCHIVE_PAGE,
                    default=DEFAULT_ARCHIVE_PAGE,
                ),
                Param("after", "string", "the next of the previous page", max_length=MAX_ID_LENGTH),
            ),
            answers=_read(
                Answer(200, "one page", answers.ARCHIVE_PAGE),
                BUSY,
                _error(503, "the reporting database did not answer", "Retry-After"),
            ),
            description="No other query parameter is taken (422 naming it).",
        ),
        Operation(
            "get_customer",
            "GET",
            "/api/customers/{customer_id}",
            "one customer's archive record, from the worker that owns the customer",
            "customer archive",
            params=(
                CUSTOMER_ID,
                Param("wait_for", "uuid", "an event id returned by a write: answer once it is folded"),
                _wait_seconds("timeout", "how long to wait for wait_for, seconds"),
            ),
            answers=_read(
                Answer(200, "the record", answers.ARCHIVE_RECORD),
                Answer(404, "no such customer, or wait_for not folded within timeout", answers.ERROR),
                BUSY,
                RECOVERING,
            ),
        ),
        Operation(
            "update_customer",
            "PATCH",
            "/api/customers/{customer_id}",
            "change the archive fields given (customer.updated; a list is replaced whole)",
            "customer archive",
            params=(CUSTOMER_ID, _archive_wait()),
            body=Body(
                "the customer.updated fields to change (at least one)",
                {**updated, **_ENVELOPE},
                {"customer_id": "is the path's; leave it out of the body"},
            ),
            answers=(*write_answers, Answer(404, "no such customer", answers.ERROR)),
        ),
    ]


def _service_operations() -> list[Operation]:
    """The service register (业务清单, ``handlers/api/customer_services.py``): add, remove, page through."""
    service_id = _id_param("service_id", "the service's id in the register")
    published = Answer(202, "on the log (the broker has it)", answers.ARCHIVE_PUBLISHED)
    unknown = Answer(404, "no such customer (customer_id), or no such service (service_id)", answers.ERROR)
    database = _error(503, "the owner or the reporting database did not answer; retry", "Retry-After")
    return [
        Operation(
            "add_customer_service",
            "POST",
            "/api/customers/{customer_id}/services",
            "add a service to the customer's register, or change one (customer.service_added)",
            "customer archive",
            params=(CUSTOMER_ID,),
            body=Body(
                "the customer.service_added fields: the service's id, what it is, its circuit id",
                {**EVENT_TYPES["customer.service_added"], **_ENVELOPE},
                {"customer_id": "is the path's; leave it out of the body"},
            ),
            answers=_with_body(
                published,
                unknown,
                _error(409, "the register holds its bound of services; remove one first"),
                database,
            ),
            description="Published to the customer's home partition by whichever worker receives it; "
            "the register is the reporting database's, so the service is listed and found by its "
            "circuit id once the sink has written it (GET /api/sink: its lag).",
        ),
        Operation(
            "remove_customer_service",
            "DELETE",
            "/api/customers/{customer_id}/services/{service_id}",
            "take a service out of the customer's register (customer.service_removed)",
            "customer archive",
            params=(CUSTOMER_ID, service_id),
            answers=_read(published, unknown, database),
        ),
        Operation(
            "list_customer_services",
            "GET",
            "/api/customers/{customer_id}/services",
            "the customer's service register, a page at a time (from the reporting database)",
            "customer archive",
            params=(
                CUSTOMER_ID,
                Param(
                    "limit",
                    "integer",
                    "most services on the page",
                    minimum=1,
                    maximum=MAX_SERVICE_PAGE,
                    default=DEFAULT_ARCHIVE_PAGE,
                ),
                Param("after", "string", "the next of the previous page", max_length=MAX_ID_LENGTH),
            ),
            answers=_read(
                Answer(200, "one page", answers.SERVICE_PAGE),
                Answer(404, "no such customer in the reporting database", answers.ERROR),
                BUSY,
                _error(503, "the reporting database did not answer", "Retry-After"),
            ),
            description="Ordered by service id; next is the after of the next page (null on the last).",
        ),
    ]


def _body_schema(required: dict[str, Any], optional: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A closed JSON object: these fields and no other (the identity's handlers refuse the rest)."""
    return {
        "type": "object",
        "properties": {**required, **optional},
        "required": list(required),
        "additionalProperties": False,
        **extra,
    }


def _identity_operations() -> list[Operation]:
    """Sign-in, me, users, tokens and the audit (``handlers/identity/routes.py``)."""
    text = {"type": "string", "minLength": 1, "maxLength": MAX_ID_LENGTH}
    secret = {"type": "string", "minLength": 1, "maxLength": 200}
    roles = {"type": "array", "items": {"type": "string", "enum": list(ROLES)}}
    unavailable = _error(503, "the identity database did not answer", "Retry-After")
    user = Answer(200, "the user", answers.OBJECT)
    return [
        Operation(
            "login",
            "POST",
            "/api/login",
            "sign in: a session (HttpOnly SameSite=Strict cookie; the secret too if bearer)",
            "identity",
            body=Body(
                "username and password",
                schema=_body_schema({"username": text, "password": secret}, {"bearer": {"type": "boolean"}}),
            ),
            answers=_with_body(
                Answer(200, "signed in: session id, CSRF token, expiry, roles", answers.OBJECT),
                _error(401, "wrong username or password"),
                _error(429, "too many failed sign-ins for this username or address", "Retry-After"),
                unavailable,
            ),
        ),
        Operation(
            "logout",
            "POST",
            "/api/logout",
            "end this session",
            "identity",
            answers=(
                Answer(200, "signed out", answers.OBJECT),
                _error(422, "a token is revoked, not signed out"),
                unavailable,
                INTERNAL,
            ),
        ),
        Operation(
            "me",
            "GET",
            "/api/me",
            "who this request is: name, roles, scope, credential",
            "identity",
            answers=_read(Answer(200, "the caller", answers.OBJECT), unavailable),
        ),
        Operation(
            "change_password",
            "POST",
            "/api/me/password",
            "change my password (ends a one-time password)",
            "identity",
            body=Body(
                "the current password and the new one (10 to 200 characters)",
                schema=_body_schema({"password": secret, "new_password": secret}, {}),
            ),
            answers=_with_body(
                Answer(200, "changed", answers.OBJECT),
                _error(403, "the current password is wrong"),
                unavailable,
            ),
        ),
        Operation(
            "list_users",
            "GET",
            "/api/users",
            "every user: roles, staff id, region, disabled",
            "identity",
            answers=_read(Answer(200, "the users", answers.OBJECT), unavailable),
        ),
        Operation(
            "add_user",
            "POST",
            "/api/users",
            "add a user (no password: a one-time one, in this answer only)",
            "identity",
            body=Body(
                "the user",
                schema=_body_schema(
                    {"username": text},
                    {
                        "password": secret,
                        "roles": roles,
                        "staff_id": text,
                        "region": {"type": "string", "minLength": 1, "maxLength": 120},
                    },
                ),
            ),
            answers=_with_body(
                Answer(201, "added", answers.OBJECT), _error(409, "the username is taken"), unavailable
            ),
        ),
        Operation(
            "change_user",
            "PATCH",
            "/api/users/{username}",
            "change roles, disable or enable, staff id, region, or reset the password",
            "identity",
            params=(_id_param("username", "the user's name"),),
            body=Body(
                "the changes (at least one)",
                schema=_body_schema(
                    {},
                    {
                        "roles": roles,
                        "disabled": {"type": "boolean"},
                        "staff_id": {"type": ["string", "null"], "maxLength": MAX_ID_LENGTH},
                        "region": {"type": ["string", "null"], "maxLength": 120},
                        "password": {"type": ["string", "null"], "maxLength": 200},
                    },
                    minProperties=1,
                ),
            ),
            answers=_with_body(
                user,
                Answer(404, "no such user", answers.ERROR),
                _error(409, "the last admin can neither lose the role nor be disabled"),
                unavailable,
            ),
        ),
        Operation(
            "list_tokens",
            "GET",
            "/api/tokens",
            "every API token: scope, expiry, last use (never a secret)",
            "identity",
            answers=_read(Answer(200, "the tokens", answers.OBJECT), unavailable),
        ),
        Operation(
            "create_token",
            "POST",
            "/api/tokens",
            "a personal token (username) or an integration's (event_types, source); its secret once",
            "identity",
            body=Body(
                "the token",
                schema=_body_schema(
                    {"name": text},
                    {
                        "username": text,
                        "event_types": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                        "source": {"type": "string"},
                        "expires_in_days": {"type": "integer", "minimum": 1, "maximum": 3650},
                    },
                ),
            ),
            answers=_with_body(
                Answer(201, "created: the secret is in this answer only", answers.OBJECT),
                _error(409, "a token of that name exists"),
                unavailable,
            ),
        ),
        Operation(
            "revoke_token",
            "DELETE",
            "/api/tokens/{token_id}",
            "revoke a token: refused by every worker from the next request on",
            "identity",
            params=(_id_param("token_id", "the token's public id"),),
            answers=_read(
                Answer(200, "revoked", answers.OBJECT),
                Answer(404, "no such token", answers.ERROR),
                unavailable,
            ),
        ),
        Operation(
            "read_audit",
            "GET",
            "/api/audit",
            "the audit trail, newest first, a page at a time",
            "identity",
            params=(
                Param("kind", "string", "login, login_failed, denied, user.changed, ...", max_length=300),
                Param("actor", "string", "a username or token name", max_length=300),
                Param("target", "string", "what the record is about", max_length=300),
                Param("since", "string", "from this instant (ISO-8601 with an offset)", max_length=40),
                Param("until", "string", "before this instant", max_length=40),
                Param("limit", "integer", "most records on the page", minimum=1, maximum=500, default=100),
                Param("before", "integer", "the next_before of the previous page", minimum=1, maximum=2**62),
            ),
            answers=_read(Answer(200, "one page", answers.OBJECT), unavailable),
        ),
    ]


def _rules_operations() -> list[Operation]:
    """The SLA rules in force, a check of a draft, a replace (``handlers/api/rules_routes.py``)."""
    document = Body(
        "a rules document: the whole TOML text (sla_rules/default_rules.toml shows the format)",
        schema=_body_schema(
            {
                "text": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": MAX_RULES_CHARACTERS,
                    "pattern": RULES_TEXT_PATTERN,
                }
            },
            {},
        ),
    )
    return [
        Operation(
            "get_rules",
            "GET",
            "/api/rules",
            "the SLA rules in force on this worker: text, revision, who replaced them when, a summary",
            "rules",
            answers=_read(Answer(200, "the rules in force", answers.RULES_IN_FORCE)),
        ),
        Operation(
            "check_rules",
            "POST",
            "/api/rules/check",
            "what a replace by this document would refuse, changing nothing",
            "rules",
            body=document,
            answers=_with_body(
                Answer(200, "valid, or its problems with path and line", answers.RULES_CHECKED)
            ),
            description="Problems of kind invalid (the document itself) and history (what it would change "
            "of policy versions, rules and calendars in force already: sla_rules/rules_history.py).",
        ),
        Operation(
            "replace_rules",
            "PUT",
            "/api/rules",
            "replace the SLA rules: a new revision on the rules topic, followed by every worker and sink",
            "rules",
            params=(
                replace(
                    _wait_seconds(
                        "wait",
                        "wait up to this many seconds until this worker has the revision in force "
                        "(given empty: 2 s); without it the answer is 202 once the broker has it",
                        default=None,
                    ),
                    empty=DEFAULT_WAIT_SECONDS,
                ),
            ),
            body=document,
            answers=(
                Answer(200, "in force on this worker (or the same text already was)", answers.RULES_REPLACED),
                Answer(202, "on the rules topic: the broker has it", answers.RULES_REPLACED),
                Answer(
                    409,
                    "it would rewrite history (a policy version in force changed or dropped, ...), "
                    "or another replace came first",
                    answers.RULES_REFUSED,
                ),
                Answer(
                    422,
                    "the document is not valid rules (every problem named), or a field refused",
                    answers.RULES_REFUSED,
                ),
                _error(503, "the broker did not take the revision", "Retry-After"),
                *_BODY_ERRORS,
                INTERNAL,
            ),
        ),
    ]


def _raw_event_schema() -> dict[str, Any]:
    return {"oneOf": [{"$ref": f"#/components/schemas/{t}"} for t in RAW_EVENT_TYPES]}


#: Event types ``POST /api/events`` takes: every one but the SLA steps (the timers') and acknowledgements.
RAW_EVENT_TYPES = tuple(t for t in EVENT_TYPES if not t.startswith("sla."))


def raw_event_components() -> dict[str, dict[str, Any]]:
    """The published event schemas (``schemas/json/``) as components, without their ``$schema``/``$id``."""
    return {
        t: {k: v for k, v in event_schema(t).items() if k not in ("$schema", "$id")} for t in RAW_EVENT_TYPES
    }


# -- answers --------------------------------------------------------------------------------


def _error(status: int, description: str, *headers: str) -> Answer:
    return Answer(status, description, answers.ERROR, headers=headers)


INTERNAL = _error(500, "an unexpected error, logged as http.unhandled")
#: Added to every operation that names a permission (:meth:`Operation.documented_answers`).
CREDENTIAL_ANSWERS = (
    _error(401, "no valid session or token"),
    _error(403, "the caller's role or token does not allow this operation"),
)
RECOVERING = _error(
    503, "the worker is rebalancing or recovering, or the owner did not answer; retry", "Retry-After"
)
REFUSED = _error(422, "a parameter or field refused; field names it")
BUSY = _error(429, "too many requests of this kind at once on this worker", "Retry-After")
_BODY_ERRORS = (
    _error(400, "the body is not a JSON object, or not valid gzip"),
    _error(413, "the body is larger than 256 KiB (also once decompressed)"),
    _error(415, "a Content-Encoding other than identity or gzip"),
    BUSY,
)


def _with_body(*own: Answer) -> tuple[Answer, ...]:
    return (*own, REFUSED, *_BODY_ERRORS, INTERNAL)


def _read(*own: Answer) -> tuple[Answer, ...]:
    return (*own, REFUSED, INTERNAL)


# -- the operations -------------------------------------------------------------------------


def _command(creation: Creation) -> Operation:
    return Operation(
        creation.operation_id,
        "POST",
        f"/api/{creation.collection}",
        f"log a new {creation.kind} ({creation.event_type})",
        "commands",
        body=command_body(creation.event_type, creation.id_field, creation.kind),
        answers=_with_body(
            Answer(202, "on the log (the broker has it)", answers.command_accepted(creation.id_field))
        ),
        description="Taken by whichever worker receives it and published to the customer's home partition.",
    )


def _step(kind: str, name: str, action: Action) -> Operation:
    collection = COLLECTIONS[kind]
    return Operation(
        f"{kind}_{name.replace('-', '_')}",
        "POST",
        f"/api/{collection}/{{item_id}}/{name}",
        f"{kind} {name}: {action.help}",
        f"{kind} steps",
        params=(
            ITEM_ID,
            replace(
                _wait_seconds(
                    "wait",
                    "wait up to this many seconds for the owner's outcome (given empty: 2 s); "
                    "without it the answer is 202 once the broker has the step",
                    default=None,
                ),
                empty=DEFAULT_WAIT_SECONDS,
            ),
        ),
        body=step_body(action),
        answers=_with_body(
            Answer(200, "applied by the owner's fold", answers.STEP_APPLIED),
            Answer(
                202,
                "published; the owner could not say within wait (or no wait asked)",
                answers.STEP_PUBLISHED,
            ),
            Answer(404, "no such item (an acknowledgement checks the owner)", answers.ERROR),
            Answer(409, "rejected by the item's lifecycle, with its reason", answers.STEP_REJECTED),
            RECOVERING,
        ),
        route=f"/api/{collection}/{{item_id}}/{{action}}",
        description=f"One step of a {kind}'s loop (handlers/api/actions.py), publishing {action.event_type}.",
    )


def _all_operations() -> tuple[Operation, ...]:
    ops = [
        *(_command(creation) for creation in CREATIONS.values()),
        Operation(
            "post_event",
            "POST",
            "/api/events",
            "publish any customer, fault, ticket or order event as its JSON envelope",
            "commands",
            body=Body(
                "one event envelope (schemas/json/); sla.* events are refused",
                schema=_raw_event_schema(),
            ),
            answers=_with_body(Answer(202, "on the log", answers.EVENT_ACCEPTED)),
        ),
        Operation(
            "get_customer_view",
            "GET",
            "/api/customers/{customer_id}/view",
            "the customer's one-stop view; wait_for answers once that event is folded",
            "reads",
            params=(
                CUSTOMER_ID,
                Param("wait_for", "uuid", "an event id returned by a write: answer once it is folded"),
                _wait_seconds("timeout", "how long to wait for wait_for, seconds"),
            ),
            answers=_read(
                Answer(200, "the view", answers.CUSTOMER_VIEW),
                Answer(
                    404,
                    "no events for this customer (customer_id), or wait_for not in the view "
                    "within timeout (wait_for: not written, or not folded yet)",
                    answers.ERROR,
                ),
                BUSY,
                RECOVERING,
            ),
        ),
        Operation(
            "get_item_sla",
            "GET",
            "/api/customers/{customer_id}/items/{kind}/{item_id}/sla",
            "every clock of an item at an instant, with the explanation",
            "reads",
            params=(
                CUSTOMER_ID,
                KIND,
                ITEM_ID,
                Param(
                    "at", "instant", f"evaluate at this instant, years {MIN_YEAR}-{MAX_YEAR} (default now)"
                ),
            ),
            answers=_read(
                Answer(200, "the evaluation", answers.ITEM_SLA),
                Answer(404, "no such item", answers.ERROR),
                RECOVERING,
            ),
        ),
        Operation(
            "acknowledge_escalation",
            "POST",
            "/api/customers/{customer_id}/items/{kind}/{item_id}/acknowledge",
            "a manager acknowledges an escalation: later ladder steps of that cycle stop",
            "commands",
            params=(CUSTOMER_ID, KIND, ITEM_ID),
            body=acknowledgement_body(),
            answers=_with_body(
                Answer(202, "on the log, signed", answers.ACKNOWLEDGED),
                _error(
                    403,
                    "the caller's role does not allow this operation for this customer, or (an account "
                    "manager) no ladder step of that cycle sent so far was addressed to them (field: metric)",
                ),
                Answer(404, "the owner says there is no such item", answers.ERROR),
                RECOVERING,
            ),
            description=(
                "A manager acknowledges within their scope (their chain or region); an account manager "
                "only a clock whose ladder has sent a step of that cycle addressed to them: their staff "
                "id on a chain entry of the step's role, or they are the customer's account manager and "
                "the step's role is account_manager (as the owner's view says; 503 while it cannot)."
            ),
        ),
        Operation(
            "get_item_event_outcome",
            "GET",
            "/api/customers/{customer_id}/items/{kind}/{item_id}/events/{event_id}",
            "what the owner's fold did with one event of an item (the read behind a step's wait)",
            "reads",
            params=(
                CUSTOMER_ID,
                KIND,
                ITEM_ID,
                EVENT_ID,
                _wait_seconds("timeout", "how long to wait, seconds"),
            ),
            answers=_read(
                Answer(200, "applied or rejected", answers.FOLD_OUTCOME),
                Answer(
                    404,
                    "the event is not in the item within timeout (not written, or not yet folded)",
                    answers.ERROR,
                ),
                BUSY,
                RECOVERING,
            ),
        ),
    ]
    for kind, steps in ACTIONS.items():
        ops.extend(_step(kind, name, action) for name, action in steps.items())
    ops += _archive_operations()
    ops += _service_operations()
    ops += _identity_operations()
    ops += _rules_operations()
    ops += [
        Operation(
            "get_dispatch_queue",
            "GET",
            "/api/dispatch-queue",
            "open items of all customers, most urgent first (零时延)",
            "reads",
            params=(
                Param(
                    "limit",
                    "integer",
                    "most rows",
                    minimum=1,
                    maximum=MAX_QUEUE_LIMIT,
                    default=DEFAULT_QUEUE_LIMIT,
                ),
                Param(
                    "local",
                    "enum",
                    "1: this worker's rows only (how workers ask each other)",
                    enum=("0", "1"),
                    default="0",
                ),
            ),
            answers=_read(Answer(200, "the queue", answers.DISPATCH_QUEUE), BUSY, RECOVERING),
        ),
        Operation(
            "get_sink_status",
            "GET",
            "/api/sink",
            "this worker's SQL sink: state, lag, totals, last error",
            "operations",
            answers=_read(
                Answer(200, "the sink's status", answers.SINK_STATUS),
                Answer(404, "no sink runs in this worker (KEYDESK_SINK=off)", answers.ERROR),
            ),
        ),
        Operation(
            "get_health",
            "GET",
            "/api/health",
            "whether this worker is doing its job, and if not what is wrong",
            "operations",
            answers=(
                Answer(200, "ok or recovering", answers.HEALTH),
                Answer(503, "degraded: the problems are named", answers.HEALTH),
                INTERNAL,
            ),
        ),
        Operation(
            "get_compliance_report",
            "GET",
            "/api/reports/compliance",
            "the SLA compliance report of the items opened in a period",
            "reports",
            params=(
                Param(
                    "from",
                    "string",
                    "first local date (2026-11-01) or ISO instant",
                    required=True,
                    max_length=64,
                ),
                Param(
                    "to",
                    "string",
                    "end of the period, exclusive; at most 366 days",
                    required=True,
                    max_length=64,
                ),
                Param(
                    "group_by", "string", f"comma-separated, any of {', '.join(DIMENSIONS)}", max_length=200
                ),
                Param("as_of", "string", "the instant the figures are true at (default now)", max_length=64),
                Param("format", "enum", "the answer's format", enum=tuple(REPORT_FORMATS), default="json"),
                Param(
                    "breaches",
                    "integer",
                    "list the first N breaches by deadline",
                    minimum=1,
                    maximum=MAX_REPORT_BREACHES,
                    default=200,
                ),
            ),
            answers=_read(
                Answer(
                    200,
                    "the report in the format asked",
                    answers.COMPLIANCE_REPORT,
                    media=tuple(dict.fromkeys(REPORT_FORMATS.values())),
                ),
                BUSY,
                _error(503, "the reporting database has no tables yet, or did not answer"),
            ),
        ),
        Operation(
            "get_openapi_document",
            "GET",
            "/api/openapi.json",
            "this document: OpenAPI 3.1, generated from the declarations the handlers validate with",
            "operations",
            answers=(Answer(200, "the document", {"type": "object"}), INTERNAL),
        ),
    ]
    return tuple(ops)


def _with_permission(op: Operation) -> Operation:
    """The operation with the permission the identity's table gives it (``None``: open to anyone)."""
    found = find_permission(op.method, op.route_pattern)
    if found is None:
        raise AssertionError(f"{op.method} {op.route_pattern} has no line in handlers/identity/operations.py")
    return op if found.open else replace(op, permission=" or ".join(found.any_of))


#: Every operation of the API, each with the permission it needs.
OPERATIONS: tuple[Operation, ...] = tuple(_with_permission(op) for op in _all_operations())
BY_ID: dict[str, Operation] = {op.operation_id: op for op in OPERATIONS}
#: (kind, action) -> the step's operation, for the one route per collection.
STEPS: dict[tuple[str, str], Operation] = {
    (kind, name): BY_ID[f"{kind}_{name.replace('-', '_')}"]
    for kind, steps in ACTIONS.items()
    for name in steps
}


def operation(operation_id: str) -> Operation:
    return BY_ID[operation_id]


def routes() -> set[tuple[str, str]]:
    """(method, route pattern) of every declared operation: what the app must register, no more."""
    return {(op.method, op.route_pattern) for op in OPERATIONS}
