"""The HTTP edge's guard: bounded bodies, one error shape, no request that can hurt a worker.

A worker's web server shares the event loop that consumes Kafka and heartbeats
to the consumer group, so a request must never hold it long nor fill its
memory (issue 9: 3,565 hostile requests left a worker at 8.8 GB, out of its
group).  What this module does for every route, before and around the handlers
of ``handlers/api/routes.py`` and ``handlers/reports/commands.py``:

* bodies: at most :data:`~handlers.api.input_limits.MAX_BODY_BYTES`, counted after
  decompression too; ``Content-Encoding`` identity or gzip only.  aiohttp's own
  decompression is switched off: it answered a bad gzip body with a plain-text
  400 or an exception in the handler, and a bomb is better stopped by the same
  byte count as a plain body;
* path parameters no longer than an id; no body on a GET (faust's table routing
  forwards a GET's headers, ``Content-Length`` included, without its body);
* every refusal is ``{"error": ..., "field": ...}`` with a 4xx; anything a
  handler did not expect is a logged 500 with the same shape, never aiohttp's
  text page;
* :class:`Slots`: how many of a costly kind of request run at once; the next
  one is answered 429 with ``Retry-After`` at once instead of queueing.

All bounds are named in ``handlers/api/input_limits.py``.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import faust
import orjson
import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from handlers.api.input_limits import (
    BODY_ENCODINGS,
    BUSY_RETRY_AFTER_SECONDS,
    MAX_BODY_BYTES,
    MAX_CONCURRENT_BODIES,
    MAX_ID_LENGTH,
    MAX_YEAR,
    MIN_YEAR,
    ROUTED_READ_TIMEOUT_SECONDS,
)

log = structlog.get_logger("keydesk.http")
_BODILESS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


class BadRequest(Exception):
    """A request keydesk will not act on; ``field`` names the culprit."""

    def __init__(
        self, status: int, field: str | None, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(reason)
        self.status, self.field, self.reason, self.headers = status, field, reason, headers

    def response(self) -> web.Response:
        return problem(self.status, self.field, self.reason, self.headers)


def error_body(reason: str, field: str | None) -> dict[str, str | None]:
    """The API's one error shape: what is wrong, and the request's field it is about (or null).

    Built here only, for the guard's refusals, the routes' answers and the
    report commands' alike, so that a client reads every refusal the same way.
    """
    return {"error": reason, "field": field}


def problem(
    status: int, field: str | None, reason: str, headers: dict[str, str] | None = None
) -> web.Response:
    """A refusal as a response: :func:`error_body` with its status (and headers)."""
    return web.Response(
        body=orjson.dumps(error_body(reason, field)),
        status=status,
        content_type="application/json",
        headers=headers,
    )


class Slots:
    """At most ``size`` requests of one kind at once; the next is refused, not queued.

    Queueing would let a flood pile up in memory and answer long after the
    caller gave up; a 429 with ``Retry-After`` tells it when to come back.
    (One event loop: a counter needs no lock.)
    """

    def __init__(self, size: int, what: str, retry_after: int = BUSY_RETRY_AFTER_SECONDS) -> None:
        self.size, self.what, self.retry_after, self.used = size, what, retry_after, 0

    def acquire(self) -> None:
        """Take a slot or raise the 429."""
        if self.used >= self.size:
            raise BadRequest(
                429,
                None,
                f"{self.size} {self.what} already running on this worker; retry in {self.retry_after} s",
                {"Retry-After": str(self.retry_after)},
            )
        self.used += 1

    def release(self) -> None:
        self.used -= 1

    @contextmanager
    def take(self) -> Iterator[None]:
        self.acquire()
        try:
            yield
        finally:
            self.release()


def install_http_guard(
    app: faust.App, inner: Sequence[Callable[..., Awaitable[web.StreamResponse]]] = ()
) -> None:
    """Give the app's aiohttp application keydesk's limits and the guard middleware.

    ``inner``: middlewares that run inside the guard (the identity's,
    ``handlers/identity/guard.py``), so that their refusals get its error shape.

    Through faust's ``web_application_options``, read once when faust builds the
    aiohttp application: hence before the first route is added.
    """
    if "web" in app.__dict__:
        raise RuntimeError(
            "install_http_guard must run before any route is added: "
            "faust has built its aiohttp application already"
        )
    # Set, not merged: reading a faust setting before setting it warns, and
    # keydesk sets no other web application option (streams/app.py).
    app.conf.web_application_options = {
        "client_max_size": MAX_BODY_BYTES,  # aiohttp's default is 1 MiB
        "middlewares": [guard_middleware(), *inner],
        "handler_args": {"auto_decompress": False},
    }
    app.conf.HttpClient = routed_reads_client


def routed_reads_client() -> aiohttp.ClientSession:
    """``app.http_client``: faust's table routing and our peer calls, with a deadline.

    aiohttp's default is 300 s: a caller of a routed read waited that long for
    a 504 when the owner never answered.
    """
    return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=ROUTED_READ_TIMEOUT_SECONDS))


def guard_middleware() -> Callable[..., Awaitable[web.StreamResponse]]:
    """The middleware: checks before the handler, one error shape after it."""
    bodies = Slots(MAX_CONCURRENT_BODIES, "requests with a body")

    @web.middleware
    async def guard(request: web.Request, handler) -> web.StreamResponse:
        try:
            _check_request(request)
            if not request.body_exists:
                return await handler(request)
            with bodies.take():
                return await handler(request)
        except BadRequest as exc:
            return exc.response()
        except web.HTTPException as exc:  # aiohttp's own: no such route, method not allowed
            if exc.status < 400:
                raise
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return problem(exc.status, None, f"{exc.reason}: {request.method} {request.path}"[:200], headers)
        except (aiohttp.ClientError, TimeoutError) as exc:
            # A read routed to the worker owning the customer: it went away or is stuck.
            log.warning(
                "http.peer_unavailable", method=request.method, path=request.path, error=repr(exc)[:300]
            )
            return problem(
                503,
                None,
                "the worker owning this customer did not answer; retry shortly",
                {"Retry-After": "1"},
            )
        except Exception:
            log.exception("http.unhandled", method=request.method, path=request.path)
            return problem(500, None, "internal error (logged as http.unhandled)")

    return guard


def _check_request(request: web.Request) -> None:
    for name, value in request.match_info.items():
        if len(value) > MAX_ID_LENGTH:
            raise BadRequest(422, name, f"longer than {MAX_ID_LENGTH} characters")
        if has_control_character(value, allow_breaks=False):
            raise BadRequest(422, name, "must not contain control characters")
    # The API's queries (values that reach SQL); a page's (``/login?next=``) are its own to sanitise,
    # so that a bad link still shows the page.
    for name, value in request.query.items() if request.path.startswith("/api/") else ():
        if has_control_character(name, allow_breaks=False) or has_control_character(
            value, allow_breaks=False
        ):
            raise BadRequest(422, printable(name), "must not contain control characters")
    if not request.body_exists:
        return
    if request.method in _BODILESS:
        raise BadRequest(400, "body", f"a {request.method} request has no body")
    body_encoding(request)
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise BadRequest(413, "body", f"larger than {MAX_BODY_BYTES} bytes")


def body_encoding(request: web.Request) -> str:
    """The body's ``Content-Encoding``, one of :data:`BODY_ENCODINGS`, or a 415."""
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower() or "identity"
    if encoding not in BODY_ENCODINGS:
        raise BadRequest(
            415, "Content-Encoding", f"{encoding[:40]!r} is not supported; send {' or '.join(BODY_ENCODINGS)}"
        )
    return encoding


async def read_body(request: web.Request) -> bytes:
    """The body, decompressed, at most :data:`MAX_BODY_BYTES` either way."""
    encoding = body_encoding(request)
    try:
        raw = await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise BadRequest(413, "body", f"larger than {MAX_BODY_BYTES} bytes") from None
    except (HttpProcessingError, RequestPayloadError) as exc:  # e.g. broken chunked framing
        raise BadRequest(400, "body", f"unreadable: {exc}"[:200]) from None
    return gunzip(raw, MAX_BODY_BYTES) if encoding == "gzip" and raw else raw


def gunzip(data: bytes, limit: int) -> bytes:
    """One gzip member, at most ``limit`` bytes once inflated (a bomb stops there)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise BadRequest(400, "Content-Encoding", f"the body is not valid gzip ({exc})") from None
    if len(out) > limit:
        raise BadRequest(413, "body", f"larger than {limit} bytes once decompressed")
    if not inflater.eof or inflater.unused_data:
        raise BadRequest(400, "Content-Encoding", "the body is not one complete gzip stream")
    return out


async def read_json_object(request: web.Request) -> dict[str, Any]:
    """The body as a JSON object, or a 400 naming ``body``."""
    try:
        body = orjson.loads(await read_body(request))
    except orjson.JSONDecodeError as exc:
        raise BadRequest(400, "body", f"body is not valid JSON: {exc}"[:300]) from None
    if not isinstance(body, dict):
        raise BadRequest(400, "body", "body must be a JSON object")
    culprit = control_character_field(body)
    if culprit is not None:
        raise BadRequest(422, culprit, "must not contain control characters (tab and line breaks allowed)")
    return body


#: C0 controls and DEL, but tab, line feed and carriage return (free text has lines)
_CONTROL = frozenset(chr(c) for c in (*range(32), 127)) - {"\t", "\n", "\r"}
_CONTROL_OR_BREAK = _CONTROL | {"\t", "\n", "\r"}


def has_control_character(text: str, *, allow_breaks: bool = True) -> bool:
    """Whether ``text`` holds a control character: NUL above all, which PostgreSQL refuses in text
    (a 500 when it reached a query), and the others no name, id or note needs."""
    forbidden = _CONTROL if allow_breaks else _CONTROL_OR_BREAK
    return not forbidden.isdisjoint(text)


def control_character_field(value: Any) -> str | None:
    """The dotted path (``contacts[0].name``) of the first key or string in ``value`` with a control
    character, or ``None``.  Every string of a body may reach SQL (the sink projects events).

    A loop, not recursion: orjson parses arrays nested 1,024 deep, past Python's recursion limit.
    """
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, here = stack.pop()
        if isinstance(here, str):
            if has_control_character(here):
                return printable(path or "body")
        elif isinstance(here, dict):
            inner: list[tuple[str, Any]] = []
            for key, item in here.items():
                named = f"{path}.{key}" if path else str(key)
                if has_control_character(str(key)):
                    return printable(named)
                inner.append((named, item))
            stack.extend(reversed(inner))
        elif isinstance(here, list):
            stack.extend(reversed([(f"{path}[{i}]", item) for i, item in enumerate(here)]))
    return None


def printable(name: str) -> str:
    """A field name fit to echo back: control characters shown escaped, at most 64 characters."""
    return "".join(c if c not in _CONTROL_OR_BREAK else repr(c)[1:-1] for c in name)[:64]


def check_instant_years(values: dict[str, Any], *fields: str) -> None:
    """Refuse ISO instants outside :data:`MIN_YEAR`-:data:`MAX_YEAR` before anyone converts them.

    ``0001-01-01T00:00:00+08:00`` overflows Python's datetime when turned into
    UTC (a 500 before); other malformed values are left to the real parser,
    which names them.
    """
    for name in fields:
        value = values.get(name)
        if not isinstance(value, str):
            continue
        try:
            instant = datetime.fromisoformat(value.strip())
        except ValueError:
            continue
        try:
            year = instant.astimezone(UTC).year if instant.utcoffset() is not None else instant.year
        except OverflowError:
            year = instant.year
        if not MIN_YEAR <= year <= MAX_YEAR:
            raise BadRequest(422, name, f"must lie in the years {MIN_YEAR}-{MAX_YEAR}")
