"""Hostile HTTP input against a real worker: a 4xx naming the field, and a worker still well.

Each input below once gave a 500, a wait of seconds to minutes, or a worker
that ran out of memory (issue 9, point 5).  The bounds are the named constants
of ``handlers/api/input_limits.py``.
"""

from __future__ import annotations

import asyncio
import gzip
import math
import signal
import threading
import time
import urllib.error
import urllib.request
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import faust
import orjson
import pytest
from aiohttp.test_utils import make_mocked_request
from sqlalchemy import text
from structlog.testing import capture_logs

from handlers.api.http_guard import BadRequest, guard_middleware, gunzip
from handlers.api.input_limits import (
    HTTP_MEMORY_BUDGET_BYTES,
    MAX_BODY_BYTES,
    MAX_ID_LENGTH,
    MAX_NOTE_LENGTH,
    MAX_REPORT_BREACHES,
    MAX_REPORT_DAYS,
)
from handlers.identity.guard import _IDENTITY as IDENTITY_KEY  # where the middleware puts the caller
from handlers.identity.roles import Identity
from handlers.reports import commands as report_commands
from schemas.reporting_db import open_engine
from streams.settings import Settings
from tests.builders import fault
from tests.e2e.conftest import auth, http, new_desk

pytestmark = pytest.mark.broker

POSTS = [
    "/api/faults",
    "/api/tickets",
    "/api/orders",
    "/api/events",
    "/api/customers/C-H/items/fault/F-1/acknowledge",
    "/api/faults/F-1/ack",
    "/api/orders/O-1/cancel",
    "/api/customers",
]
FAULT = {"customer_id": "C-HARD", "severity": "critical", "summary": "专线中断", "service": "MPLS VPN"}
NOT_AN_ID = "not-an-event-id"
BARRAGE_SIZE = 300


def send(
    method: str,
    url: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, dict, float]:
    """Status, JSON answer (or ``{"raw": text}``) and seconds taken; any headers, any body."""
    request = urllib.request.Request(
        url,
        data=body,
        method=method,
        headers={"Content-Type": "application/json", **auth(), **(headers or {})},
    )
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, payload = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, payload = exc.code, exc.read()
    try:
        answer = orjson.loads(payload)
    except orjson.JSONDecodeError:
        answer = {"raw": payload.decode(errors="replace")[:500]}
    return status, answer, time.monotonic() - started


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc/<pid>/status."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def gzip_bomb() -> bytes:
    """A few KiB that inflate to 40 times the body limit."""
    return gzip.compress(b"0" * (40 * MAX_BODY_BYTES), compresslevel=9)


def report_query(**query: str) -> str:
    return "/api/reports/compliance?" + "&".join(f"{k}={v}" for k, v in query.items())


#: (method, path, body, headers, expected status, expected field): each once a 500 or a hang.
HOSTILE = [
    (
        "POST",
        "/api/customers/C-H/items/fault/F-1/acknowledge",
        orjson.dumps({"metric": []}),
        {},
        422,
        "metric",
    ),
    (
        "POST",
        "/api/customers/C-H/items/fault/F-1/acknowledge",
        orjson.dumps({"metric": {}}),
        {},
        422,
        "metric",
    ),
    ("POST", "/api/faults", b'{"customer_id": "C-1"}', {"Content-Encoding": "gzip"}, 400, "Content-Encoding"),
    (
        "POST",
        "/api/events",
        b"\x1f\x8b\x08\x00garbage",
        {"Content-Encoding": "gzip"},
        400,
        "Content-Encoding",
    ),
    ("POST", "/api/faults", gzip_bomb(), {"Content-Encoding": "gzip"}, 413, "body"),
    ("POST", "/api/orders", b"{" + b" " * (MAX_BODY_BYTES + 10) + b"}", {}, 413, "body"),
    ("POST", "/api/tickets", b"{}", {"Content-Encoding": "br"}, 415, "Content-Encoding"),
    ("GET", report_query(**{"from": "0001-01-01", "to": "9999-12-31"}), None, {}, 422, "from"),
    ("GET", report_query(**{"from": "1000-01-01", "to": "2026-12-01"}), None, {}, 422, "from"),
    ("GET", report_query(**{"from": "2024-01-01", "to": "2026-12-01"}), None, {}, 422, "to"),
    (
        "GET",
        report_query(**{"from": "2026-01-01", "to": "2026-02-01", "breaches": "9" * 5000}),
        None,
        {},
        422,
        "breaches",
    ),
    ("GET", f"/api/customers/C-H/view?wait_for={NOT_AN_ID}", None, {}, 422, "wait_for"),
    ("GET", f"/api/customers/C-H/view?wait_for={uuid.uuid4()}&timeout=nan", None, {}, 422, "timeout"),
    ("GET", f"/api/customers/{'C' * 5000}/view", None, {}, 422, "customer_id"),
    ("GET", "/api/dispatch-queue?limit=" + "9" * 5000, None, {}, 422, "limit"),
    ("GET", "/api/customers/C-H/items/fault/F-1/sla?at=0001-01-01T00:00:00%2B08:00", None, {}, 422, "at"),
    (
        "POST",
        "/api/faults",
        orjson.dumps({**FAULT, "occurred_at": "0001-01-01T00:00:00+08:00"}),
        {},
        422,
        "occurred_at",
    ),
    ("GET", "/api/customers/C-H/view", b"a body a GET does not have", {}, 400, "body"),
    ("GET", "/api/customers?limit=" + "9" * 5000, None, {}, 422, "limit"),
    ("GET", "/api/customers?q=" + "x" * 5000, None, {}, 422, "q"),
    ("GET", "/api/customers?q=%25%25%25&tier=" + "t" * 5000, None, {}, 422, "tier"),
    ("GET", "/api/customers", b"a body a GET does not have", {}, 400, "body"),
    ("PATCH", f"/api/customers/{'C' * 5000}", b'{"tier": "gold"}', {}, 422, "customer_id"),
    ("PATCH", "/api/customers/C-H", orjson.dumps({"services": [{"service": "x"}] * 33}), {}, 422, "services"),
    ("POST", "/api/customers", orjson.dumps({"customer_id": "C-H2", "name": ["x"]}), {}, 422, "name"),
    ("GET", f"/api/customers/C-H?wait_for={NOT_AN_ID}", None, {}, 422, "wait_for"),
]


def seed(desk) -> None:
    """Customer C-H with fault F-1: hostile acknowledgements aim at an item that exists."""
    known = fault("F-1", "reported", customer="C-H")
    status, answer = http("POST", f"{desk.workers[0].url}/api/events", raw=known.to_bytes())
    assert status == 202, answer
    assert desk.workers[0].view("C-H", wait_for=known.event_id)[0] == 200


@pytest.fixture(scope="module")
def seeded(desk):
    seed(desk)


@pytest.mark.usefixtures("seeded")
class TestHostileInput:
    @pytest.mark.parametrize(
        ("method", "path", "body", "headers", "status", "field"),
        HOSTILE,
        ids=[f"{h[0]} {h[1][:50]} {h[5]}" for h in HOSTILE],
    )
    def test_each_hostile_input_gets_its_4xx_naming_the_field_at_once(
        self, desk, method, path, body, headers, status, field
    ):
        """Refused within a second, with {"error", "field"}: no 500, no wait, no 504."""
        got, answer, took = send(method, desk.workers[0].url + path, body, headers)
        assert (got, answer.get("field")) == (status, field), answer
        assert answer["error"] and took < 2.0, (took, answer)

    @pytest.mark.parametrize("path", POSTS)
    def test_every_post_refuses_a_body_that_says_gzip_and_is_not(self, desk, path):
        """aiohttp's own decoding is off: the guard answers, naming Content-Encoding."""
        got, answer, _ = send(
            "POST", desk.workers[0].url + path, b'{"metric": "response"}', {"Content-Encoding": "gzip"}
        )
        assert (got, answer["field"]) == (400, "Content-Encoding")

    @pytest.mark.parametrize("encoding", ["br", "deflate", "zstd", "compress", "gzip, gzip"])
    def test_an_encoding_other_than_gzip_is_a_415(self, desk, encoding):
        """Only identity and gzip; aiohttp would have tried br, zstd and deflate itself."""
        got, answer, _ = send(
            "POST", desk.workers[0].url + "/api/faults", b"{}", {"Content-Encoding": encoding}
        )
        assert (got, answer["field"]) == (415, "Content-Encoding")

    def test_a_gzip_body_is_accepted(self, desk):
        """gzip is supported, not only refused."""
        got, answer, _ = send(
            "POST",
            desk.workers[0].url + "/api/faults",
            gzip.compress(orjson.dumps(FAULT)),
            {"Content-Encoding": "gzip"},
        )
        assert got == 202, answer

    @pytest.mark.parametrize(
        ("body", "field"),
        [
            ({"metric": 5}, "metric"),
            ({"metric": "colour"}, "metric"),
            ({}, "metric"),
            ({"metric": "response", "cycle": "1"}, "cycle"),
            ({"metric": "response", "cycle": 0}, "cycle"),
            (b'{"metric": "response", "cycle": 1000000000000000000000000000000}', "cycle"),
            ({"metric": "response", "cycle": True}, "cycle"),
            ({"metric": "response", "note": ["x"]}, "note"),
            ({"metric": "response", "note": "x" * (MAX_NOTE_LENGTH + 1)}, "note"),
            ({"metric": "response", "colour": "red"}, "colour"),
            # who acknowledges is the sign-in's to say: a body naming it is refused
            ({"metric": "response", "actor": "a" * (MAX_ID_LENGTH + 1)}, "actor"),
            ({"metric": "response", "actor": "AM-1"}, "actor"),
            ({"metric": "response", "source": "hotline"}, "source"),
        ],
    )
    def test_an_acknowledgement_is_checked_field_by_field(self, desk, body, field):
        """On the receiving worker, before anyone is asked about the item."""
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        got, answer, _ = send(
            "POST", desk.workers[0].url + "/api/customers/C-H/items/fault/F-1/acknowledge", raw
        )
        assert (got, answer["field"]) == (422, field), answer

    def test_an_acknowledgement_of_an_unknown_kind_names_kind(self, desk):
        """The kind in the path is checked like a field."""
        got, answer, _ = send(
            "POST",
            desk.workers[0].url + "/api/customers/C-H/items/widget/W-1/acknowledge",
            orjson.dumps({"metric": "response"}),
        )
        assert (got, answer["field"]) == (422, "kind")

    @pytest.mark.parametrize("timeout", ["-1", "11", "abc", "inf"])
    def test_a_wait_is_bounded(self, desk, timeout):
        """A timeout outside 0-10 s (or not a number) is refused, not clamped or waited."""
        got, answer, took = send(
            "GET", f"{desk.workers[0].url}/api/customers/C-H/view?wait_for={uuid.uuid4()}&timeout={timeout}"
        )
        assert (got, answer["field"], took < 2.0) == (422, "timeout", True)

    @pytest.mark.parametrize("limit", ["0", "1001", "abc", "1e3"])
    def test_the_dispatch_queue_limit_is_bounded(self, desk, limit):
        """1 to 1,000 rows, a whole number."""
        got, answer, _ = send("GET", f"{desk.workers[0].url}/api/dispatch-queue?limit={limit}")
        assert (got, answer["field"]) == (422, "limit")

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ({"from": "2026-01-01", "to": "2027-01-03"}, "to"),  # 367 days
            ({"from": "2026-01-01", "to": "2026-02-01", "breaches": "0"}, "breaches"),
            (
                {"from": "2026-01-01", "to": "2026-02-01", "breaches": str(MAX_REPORT_BREACHES + 1)},
                "breaches",
            ),
            ({"from": "2026-01-01", "to": "2026-02-01", "breaches": "%C2%B2"}, "breaches"),
            ({"from": "2026-01-01", "to": "2026-02-01", "as_of": "9999-12-31T23:59:59-10:00"}, "as_of"),
            ({"from": "2026-01-01", "to": "2026-02-01", "group_by": "x" * 5000}, "group_by"),
        ],
    )
    def test_report_arguments_are_bounded(self, desk, query, field):
        """Period, breaches, years and dimensions: refused with a short reason."""
        got, answer, took = send("GET", desk.workers[0].url + report_query(**query))
        assert (got, answer["field"]) == (422, field), answer
        assert len(answer["error"]) < 300 and took < 2.0

    def test_a_year_long_report_is_served(self, desk):
        """The bound still lets a whole (leap) year through."""
        assert MAX_REPORT_DAYS == 366
        got, answer, _ = send(
            "GET",
            desk.workers[0].url
            + report_query(**{"from": "2028-01-01", "to": "2029-01-01", "format": "json"}),
        )
        assert got == 200, answer

    @pytest.mark.parametrize(
        ("method", "path", "status"),
        [
            ("GET", "/api/nothing-here", 404),
            ("DELETE", "/api/faults", 405),
            ("PUT", "/api/customers/C-H/items/fault/F-1/acknowledge", 405),
        ],
    )
    def test_routes_and_methods_that_do_not_exist_answer_json(self, desk, method, path, status):
        """aiohttp's own 404 and 405 come in the API's shape too."""
        body = b"{}" if method == "PUT" else None
        got, answer, _ = send(method, desk.workers[0].url + path, body)
        assert got == status and "error" in answer and "field" in answer

    def test_sla_events_cannot_be_posted_as_raw_events(self, desk):
        """Steps are the timers' own; acknowledgements have their endpoint."""
        body = {
            "event_id": str(uuid.uuid4()),
            "event_type": "sla.breached",
            "schema_version": 1,
            "customer_id": "C-H",
            "entity_id": "F-1",
            "occurred_at": "2026-11-23T09:00:00Z",
            "recorded_at": "2026-11-23T09:00:00Z",
            "source": "hotline",
            "actor": "x",
            "payload": {
                "item_kind": "fault",
                "metric": "response",
                "cycle": 1,
                "due_at": "2026-11-23T09:00:00Z",
                "deadline": "2026-11-23T09:00:00Z",
            },
        }
        got, answer, _ = send("POST", desk.workers[0].url + "/api/events", orjson.dumps(body))
        assert (got, answer["field"]) == (422, "event_type"), answer


class TestUnderABarrage:
    def test_hundreds_of_hostile_requests_leave_the_worker_healthy_and_in_its_budget(
        self, kafka_bootstrap, tmp_path
    ):
        """After it: ready, within its memory budget, a fault still lands, SIGTERM stops it."""
        desk = new_desk(kafka_bootstrap, tmp_path)
        worker = desk.start_worker()
        try:
            desk.wait_until_partitions_split()
            seed(desk)
            pid = worker.process.pid
            before = rss_bytes(pid)
            requests = [HOSTILE[i % len(HOSTILE)] for i in range(BARRAGE_SIZE)]

            def fire(spec):
                method, path, body, headers, _, _ = spec
                return send(method, worker.url + path, body, headers, timeout=20)[0]

            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=16) as pool:
                statuses = list(pool.map(fire, requests))
            took = time.monotonic() - started
            assert took < 60, took
            assert all(400 <= s < 500 for s in statuses), sorted(set(statuses))
            status, health = http("GET", f"{worker.url}/api/health")
            assert status == 200 and health["ready"], health
            after = rss_bytes(pid)
            assert after - before < HTTP_MEMORY_BUDGET_BYTES, (before, after)
            customer = f"C-AFTER-{uuid.uuid4().hex[:6]}"
            status, answer = http("POST", f"{worker.url}/api/faults", {**FAULT, "customer_id": customer})
            assert status == 202, answer
            status, view = worker.view(customer, wait_for=answer["event_id"])
            assert status == 200 and answer["fault_id"] in view["open"]["fault"], view
            print(
                f"{BARRAGE_SIZE} hostile requests in {took:.1f} s; "
                f"RSS {before / 2**20:.0f} -> {after / 2**20:.0f} MiB"
            )
            worker.process.send_signal(signal.SIGTERM)
            assert worker.process.wait(timeout=20) is not None  # it stops when asked
        finally:
            desk.stop()


class SignedIn(dict):
    """A request the identity's middleware has let through: the caller under its key, a query."""

    query: dict[str, str]


#: a report reader: the whole desk's report
READER = Identity("reader", "user", "s-reader", roles=frozenset({"report_reader"}))


class TestOneReportAtATime:
    async def test_a_second_report_while_one_runs_is_a_429_with_retry_after(self, tmp_path, monkeypatch):
        """No broker needed: the route on a never-started app, the report held in its thread."""
        release, started = threading.Event(), threading.Event()

        def slow_report(*args, **kwargs):
            started.set()
            release.wait(30)
            return 200, "application/json", b"{}"

        monkeypatch.setattr(report_commands, "report_response", slow_report)
        app = faust.App(f"keydesk-busy-{uuid.uuid4().hex[:6]}", autodiscover=False)
        settings = Settings(db_url=f"sqlite:///{tmp_path / 'r.sqlite'}")
        report_commands.register_report_routes(SimpleNamespace(app=app), settings)
        view = app.web.views["/api/reports/compliance"]

        def asked() -> dict:
            """A report reader's request, as the identity's middleware leaves it."""
            request = SignedIn({IDENTITY_KEY: READER})
            request.query = {}
            return request

        first = asyncio.ensure_future(view.get(asked()))
        while not started.is_set():  # the first report's thread has begun
            if first.done():
                first.result()  # it failed before its thread began: say why
                raise AssertionError("the first report answered before its thread began")
            await asyncio.sleep(0.01)
        with pytest.raises(BadRequest) as refused:
            await view.get(asked())
        assert refused.value.status == 429 and refused.value.headers["Retry-After"]
        release.set()
        assert (await first).status == 200
        assert (await view.get(asked())).status == 200  # the slot is free

    def test_a_report_past_its_time_limit_is_interrupted_and_named(self, tmp_path, monkeypatch):
        """SQLite's progress handler stops an endless query; the answer names the period."""
        engine = open_engine(f"sqlite:///{tmp_path / 'slow.sqlite'}")
        deadline = report_commands.QueryDeadline(engine)

        def endless(engine, request, zone, customers=None):
            with engine.connect() as connection:
                connection.execute(
                    text(
                        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL "
                        "SELECT x + 1 FROM c) SELECT count(*) FROM c"
                    )
                )

        monkeypatch.setattr(report_commands, "build_report", endless)
        started = time.monotonic()
        status, _, body = report_commands.report_response(
            engine,
            {"from": "2026-01-01", "to": "2026-02-01"},
            ZoneInfo("Asia/Shanghai"),
            datetime.now(UTC),
            deadline,
            time_limit=0.3,
        )
        assert (status, orjson.loads(body)["field"]) == (422, "to")
        assert time.monotonic() - started < 5 and deadline.at == math.inf


class TestGuard:
    """The middleware and the inflater alone, without a worker."""

    async def test_an_unexpected_exception_is_a_logged_500_in_the_api_shape(self):
        async def broken(request):
            raise RuntimeError("a bug")

        with capture_logs() as logs:
            response = await guard_middleware()(make_mocked_request("GET", "/api/x"), broken)
        assert response.status == 500
        assert orjson.loads(response.body) == {
            "error": "internal error (logged as http.unhandled)",
            "field": None,
        }
        assert [entry["event"] for entry in logs] == ["http.unhandled"]

    def test_a_bomb_stops_at_the_limit(self):
        with pytest.raises(BadRequest) as refused:
            gunzip(gzip_bomb(), MAX_BODY_BYTES)
        assert (refused.value.status, refused.value.field) == (413, "body")

    @pytest.mark.parametrize(
        "data", [gzip.compress(b"{}")[:-4], gzip.compress(b"{}") + b"x", gzip.compress(b"{}") * 2]
    )
    def test_a_truncated_or_padded_gzip_body_names_content_encoding(self, data):
        with pytest.raises(BadRequest) as refused:
            gunzip(data, MAX_BODY_BYTES)
        assert (refused.value.status, refused.value.field) == (400, "Content-Encoding")
