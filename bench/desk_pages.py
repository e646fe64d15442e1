"""Desk pages (issue 12): server time of the customer page with 200 open items and of the queue with 10,000.

The real pages (``handlers/web/customer_page.py``'s ``/customers/{id}``,
``handlers/web/dispatch_page.py``'s ``/queue`` and ``/queue/rows``) on an
in-process aiohttp server behind the desk's two middlewares (the HTTP guard and
the identity's, sessions looked up in the database at every request), built as
``tests/web/customer_desk_fixture.py`` and ``tests/web/test_live_pages.py`` build
theirs: one SQLite file holds the users, sessions and the reporting tables.

- Customer pages: customers with 1, 10 and 200 open items (faults, tickets and
  orders mixed, opened 3 minutes to 6 days ago, some acknowledged, some paused
  pending the customer or a third party) and 10 recently closed ones each,
  folded by the worker's own fold and projected by the sink's own writer
  (``FoldingDesk``), then every SLA step the timers would have published by
  now folded back (warnings, breaches, ladder steps), so the page shows what
  a worker's would.  The page evaluates every clock of every item at each
  request, and reads the customer's compliance of the month from SQLite.
- Queue: 10, 1,000 and 10,000 open items over customers of every tier,
  12 regions and 20 account managers (a few customers hold many items), as the
  owner's views hold them (fold, SLA summary, steps folded back), each size on
  its own server; one worker owning every customer, no peers to ask.
- Viewers: a head-office manager (region ``*``: every customer in scope) and
  an account manager whose scope is a slice (their customers, ~1/20 of the
  queue); the baseline is the sign-in page (``/login``: a template, no session).

Server time is taken by an outermost middleware around the guard and the
handler (session lookup, scope checks, the page's work, rendering); the client
(aiohttp, same process, one request at a time) also records its round trip.
The scenarios are interleaved, round by round, so a change of the machine's load
falls on all of them alike.

    .venv/bin/python bench/desk_pages.py                        # 60 rounds, profile the 10,000 queue
    .venv/bin/python bench/desk_pages.py --rounds 10 --profile customer-200-manager
    .venv/bin/python bench/desk_pages.py --write                # replace its section of BENCHMARKS.md

Not part of the test suite.  Prints the figures (and, with ``--write``, replaces
its section of BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import os
import pstats
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchmarks_file import replace_section  # noqa: E402
from bench.event_mix import TIER_WEIGHTS, TIERS  # noqa: E402
from bench.sla_timers import pct  # noqa: E402
from handlers.api.http_guard import guard_middleware  # noqa: E402
from handlers.identity.audit import Who  # noqa: E402
from handlers.identity.guard import SESSION_COOKIE, IdentityGuard  # noqa: E402
from handlers.identity.passwords import PasswordHasher, hash_password  # noqa: E402
from handlers.identity.store import IdentityDb, IdentityStore, prepare_database  # noqa: E402
from handlers.local.ports import LOOPBACK, free_port  # noqa: E402
from handlers.web.customer_screens import register_customer_screens  # noqa: E402
from handlers.web.live_desk import LiveDesk  # noqa: E402
from handlers.web.live_feed import LiveHub  # noqa: E402
from handlers.web.live_pages import customer_lookup, register_live_pages  # noqa: E402
from handlers.web.pages import Desk, register_pages  # noqa: E402
from schemas.envelope import Event  # noqa: E402
from sla_rules import RuleSet  # noqa: E402
from streams.customer_view import find_item, fold, new_view  # noqa: E402
from streams.item_sla import due_steps, items_touched_by, sla_summary  # noqa: E402
from tests.web.customer_desk_fixture import RULES, FoldingDesk, item_event, registered  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SECTION = "## Desk pages (issue 12)"
PASSWORD = "bench password 12345"
CUSTOMER_SIZES = (1, 10, 200)
QUEUE_SIZES = (10, 1_000, 10_000)
CLOSED_PER_CUSTOMER = 10
REGIONS = [
    f"{p}/{c}" for p, c in [("广东", "广州"), ("广东", "深圳"), ("湖南", "长沙"), ("湖北", "武汉")]
] + [f"省{n:02d}/市{n:02d}" for n in range(8)]
MANAGERS = [f"AM-{n:02d}" for n in range(20)]
SLICE_MANAGER = "AM-07"
#: (username, roles, staff id, region)
USERS = [
    ("manager-hq", ["manager"], "MGR-HQ", "*"),
    ("am-slice", ["account_manager"], SLICE_MANAGER, None),
]
ARTICLE = re.compile(r'<article class="item"')
ROW = re.compile(r"data-item=")


# ----------------------------------------------------------------------------- what the desk holds


def profile(rng: random.Random, customer_id: str, manager: str, tier: str | None = None) -> dict[str, Any]:
    return {
        "name": f"客户{customer_id}",
        "tier": tier or rng.choices(TIERS, TIER_WEIGHTS)[0],
        "region": rng.choice(REGIONS),
        "account_manager": {"id": manager, "name": f"经理{manager}", "phone": "13900000001"},
        "escalation_chain": [
            {
                "role": "department_head",
                "id": f"DH-{rng.randrange(6)}",
                "name": "陈主任",
                "phone": "1390000002",
            },
            {"role": "branch_leader", "name": "黄总", "email": "huang@example.cn"},
        ],
        "contacts": [{"name": "王工", "title": "信息中心主任", "phone": "020-83000000"}],
        "services": [
            {"service": "MPLS VPN", "circuit_id": f"{customer_id}-MPLS-1"},
            {"service": "互联网专线", "circuit_id": f"{customer_id}-DIA-1", "address": "越秀区东风中路"},
        ],
    }


def open_item(rng: random.Random, customer_id: str, kind: str, item_id: str, now: datetime) -> list[Event]:
    """One open item's events: opened 3 minutes to 6 days ago, then some of its loop, perhaps paused."""
    at = now - timedelta(minutes=3 * (2880 ** rng.random()))  # log-uniform, 3 min .. 6 days

    def later() -> datetime:
        nonlocal at
        at += (now - at) * rng.uniform(0.05, 0.4)
        return at

    def ev(event_type: str, when: datetime, **payload: Any) -> Event:
        return item_event(event_type, customer_id, item_id, when, **payload)

    paused = rng.random() < 0.15
    if kind == "fault":
        events = [
            ev(
                "fault.reported",
                at,
                severity=rng.choice(["critical", "major", "minor", "warning"]),
                summary="专线中断",
                service="MPLS VPN",
                circuit_id=f"{customer_id}-MPLS-1",
            )
        ]
        if rng.random() < 0.7:
            events.append(ev("fault.acknowledged", later()))
            if rng.random() < 0.6:
                events.append(ev("fault.dispatched", later(), team=f"传输{rng.randrange(9)}班"))
                events.append(ev("fault.repair_started", later()))
    elif kind == "ticket":
        events = [
            ev(
                "ticket.opened",
                at,
                kind=rng.choice(["complaint", "service_request", "inquiry"]),
                priority=rng.choice(["P1", "P2", "P3", "P4"]),
                subject="账单疑问",
            )
        ]
        if rng.random() < 0.7:
            events.append(ev("ticket.acknowledged", later()))
            if rng.random() < 0.6:
                events.append(ev("ticket.assigned", later(), assignee=f"staff-{rng.randrange(50)}"))
    else:
        events = [
            ev(
                "order.received",
                at,
                product=rng.choice(["leased_line", "mpls_vpn", "dedicated_internet"]),
                urgency=rng.choice(["normal", "urgent", "extra_urgent"]),
            )
        ]
        if rng.random() < 0.8:
            events.append(ev("order.resource_confirmed", later()))
            if rng.random() < 0.6:
                events.append(ev("order.provisioning_started", later()))
    if paused:
        status = rng.choice(["pending_customer", "pending_third_party"])
        events.append(ev(f"{kind}.status_changed", later(), status=status, reason="等待客户确认"))
    return events


def closed_fault(rng: random.Random, customer_id: str, item_id: str, now: datetime) -> list[Event]:
    at = now - timedelta(days=rng.uniform(1, 20))
    loop = [
        ("fault.reported", {"severity": "minor", "summary": "网速慢", "service": "互联网专线"}),
        ("fault.acknowledged", {}),
        ("fault.restored", {}),
        ("fault.closed", {}),
    ]
    if rng.random() < 0.5:
        loop.append(("fault.revisit_recorded", {"satisfaction": rng.randint(3, 5)}))
    return [
        item_event(t, customer_id, item_id, at + timedelta(minutes=37 * n), **payload)
        for n, (t, payload) in enumerate(loop)
    ]


def kinds(rng: random.Random, count: int) -> list[str]:
    return rng.choices(["fault", "ticket", "order"], [40, 35, 25], k=count)


def customer_page_desk(engine: Any, now: datetime, rng: random.Random) -> tuple[FoldingDesk, dict[int, str]]:
    """The customers of the customer pages, one per size, through the worker's fold and the sink's writer."""
    desk = FoldingDesk(engine)
    ids = {}
    for size in CUSTOMER_SIZES:
        customer_id = ids[size] = f"C-PAGE-{size:03d}"
        desk.fold(
            registered(
                customer_id, now - timedelta(days=30), **profile(rng, customer_id, SLICE_MANAGER, "diamond")
            )
        )
        for n in range(CLOSED_PER_CUSTOMER):
            for event in closed_fault(rng, customer_id, f"F-DONE-{n:02d}", now):
                desk.fold(event)
        opened = []
        for n, kind in enumerate(kinds(rng, size)):
            item_id = f"{kind[0].upper()}-{n:04d}"
            opened.append((kind, item_id))
            for event in open_item(rng, customer_id, kind, item_id, now):
                desk.fold(event)
        for kind, item_id in opened:
            desk.steps_due(customer_id, kind, item_id, now)
    return desk, ids


def fold_customer(view: dict[str, Any], events: list[Event], rules: RuleSet) -> None:
    """A batch of the customer's events as the processor folds it: fold each, then summarise each
    touched item once (no sink: the queue reads only the views)."""
    touched = set()
    for event in events:
        touched.update(items_touched_by(view, event, fold(view, event)))
    for kind, item_id in touched:
        item = find_item(view, kind, item_id)
        if item is not None:
            item["sla"] = sla_summary(view, item, rules)


def queue_views(total: int, now: datetime, seed: int) -> list[tuple[str, dict[str, Any]]]:
    """``total`` open items as the owner's views: a few customers hold many (Pareto), most a handful."""
    rng = random.Random(seed)
    views: list[tuple[str, dict[str, Any]]] = []
    left = total
    while left:
        customer_id = f"C-Q{len(views):05d}"
        count = min(left, max(1, int(rng.paretovariate(1.5) * 2)), 400)
        view = new_view(customer_id)
        fold_customer(
            view,
            [
                registered(
                    customer_id, now - timedelta(days=60), **profile(rng, customer_id, rng.choice(MANAGERS))
                )
            ],
            RULES,
        )
        events = []
        for n, kind in enumerate(kinds(rng, count)):
            events.extend(open_item(rng, customer_id, kind, f"{kind[0].upper()}-{n:04d}", now))
        fold_customer(view, events, RULES)
        steps = []
        for kind in ("fault", "ticket", "order"):
            for item in view["open"][kind].values():
                steps.extend(due_steps(view, item, RULES, now)[0])
        fold_customer(view, steps, RULES)
        views.append((customer_id, view))
        left -= count
    return views


def clock_mix(views: list[tuple[str, dict[str, Any]]], now: datetime) -> dict[str, int]:
    """How many open items there are, how many with a breached clock, with a paused one (as the views say)."""
    found = {"items": 0, "breached": 0, "paused": 0}
    for _, view in views:
        for kind in ("fault", "ticket", "order"):
            for item in view["open"][kind].values():
                metrics = ((item.get("sla") or {}).get("metrics") or {}).values()
                found["items"] += 1
                found["breached"] += any(
                    m.get("state") == "breached"
                    or (
                        m.get("state") == "pending"
                        and m.get("deadline")
                        and not m.get("paused")
                        and datetime.fromisoformat(m["deadline"]) < now
                    )
                    for m in metrics
                )
                found["paused"] += any(m.get("paused") for m in metrics)
    return found


# ----------------------------------------------------------------------------- the servers


@dataclass
class Timer:
    """Server time of each request, taken around the guard and the handler; cProfile on request."""

    times: list[float] = field(default_factory=list)
    profile: cProfile.Profile | None = None

    def middleware(self) -> Any:
        @web.middleware
        async def timed(request: web.Request, handler: Any) -> web.StreamResponse:
            profile = self.profile
            started = time.perf_counter()
            if profile is not None:
                profile.enable()
            try:
                return await handler(request)
            finally:
                if profile is not None:
                    profile.disable()
                self.times.append(time.perf_counter() - started)

        return timed


async def serve(
    db: IdentityDb, engine: Any, desk: FoldingDesk, views: list[tuple[str, dict[str, Any]]], timer: Timer
) -> tuple[str, web.AppRunner]:
    """The pages behind the real middlewares (the fixtures' composition), the queue over ``views``."""

    async def acknowledge(*_: Any) -> Any:
        raise web.HTTPForbidden()  # never asked here

    app = web.Application(
        middlewares=[timer.middleware(), guard_middleware(), IdentityGuard(db, b"k" * 32).middleware()]
    )
    register_pages(app, Desk(db, PasswordHasher()))
    register_customer_screens(app, desk, db)
    register_live_pages(
        app,
        LiveDesk(
            hub=LiveHub(customer_lookup(db)),
            views=lambda: views,
            owns=lambda customer_id: True,
            peers=lambda: [],
            http=lambda: None,  # no other worker to ask
            hop_key=b"k" * 32,
            acknowledge=acknowledge,
            run_sql=db.run,
            engine=engine,
        ),
    )
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    return f"http://{LOOPBACK}:{port}", runner


@dataclass
class Scenario:
    name: str
    what: str
    base: str
    path: str
    user: str | None
    #: what is counted on the page (item cards, queue rows), to report and to check there are some
    counted: re.Pattern[str] | None = None
    server: list[float] = field(default_factory=list)
    client: list[float] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    shown: int = 0

    def clear(self) -> None:
        self.server, self.client, self.sizes = [], [], []


async def fetch(http: aiohttp.ClientSession, s: Scenario, secrets: dict[str, str], timer: Timer) -> None:
    headers = {"Cookie": f"{SESSION_COOKIE}={secrets[s.user]}"} if s.user else {}
    started = time.perf_counter()
    async with http.get(s.base + s.path, headers=headers, allow_redirects=False) as answer:
        body = await answer.read()
    took = time.perf_counter() - started
    if answer.status != 200:
        raise RuntimeError(f"{s.name}: {answer.status} {body[:300]!r}")
    if s.counted is not None:
        s.shown = len(s.counted.findall(body.decode()))
        if not s.shown:
            raise RuntimeError(f"{s.name}: nothing on the page matches {s.counted.pattern}")
    s.server.append(timer.times.pop())
    s.client.append(took)
    s.sizes.append(len(body))


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    now = datetime.now(UTC)
    rng = random.Random(args.seed)
    engine = prepare_database(f"sqlite:///{workdir / 'desk.sqlite'}")
    store = IdentityStore(engine)
    hashed = hash_password(PASSWORD)
    secrets = {}
    for name, roles, staff, region in USERS:
        store.add_user(name, hashed, roles, Who(actor="bench"), staff_id=staff, region=region)
        secrets[name] = store.open_session(name, Who(actor=name)).secret
    db = IdentityDb(store)
    seeding = time.perf_counter()
    desk, page_ids = customer_page_desk(engine, now, rng)
    page_seconds = time.perf_counter() - seeding
    seeding = time.perf_counter()
    queues = {size: queue_views(size, now, args.seed + size) for size in QUEUE_SIZES}
    queue_seconds = time.perf_counter() - seeding
    slice_items = sum(
        sum(len(v["open"][k]) for k in ("fault", "ticket", "order"))
        for _, v in queues[QUEUE_SIZES[-1]]
        if v["profile"]["account_manager"]["id"] == SLICE_MANAGER
    )
    timer = Timer()
    runners, bases = [], {}
    for size in QUEUE_SIZES:
        bases[size], runner = await serve(db, engine, desk, queues[size], timer)
        runners.append(runner)
    first, big, top = bases[QUEUE_SIZES[0]], QUEUE_SIZES[-1], CUSTOMER_SIZES[-1]
    scenarios = [Scenario("login", "sign-in page (baseline)", first, "/login", None)]
    for size in CUSTOMER_SIZES:
        path = f"/customers/{page_ids[size]}"
        what = f"customer page, {size} open, head-office manager"
        scenarios.append(Scenario(f"customer-{size}-manager", what, first, path, "manager-hq", ARTICLE))
    what = f"customer page, {top} open, its account manager"
    path = f"/customers/{page_ids[top]}"
    scenarios.append(Scenario(f"customer-{top}-am", what, first, path, "am-slice", ARTICLE))
    for size in QUEUE_SIZES:
        for name, path in (("queue", "/queue"), ("rows", "/queue/rows")):
            what = f"`{path}`, {size:,} open, head-office manager"
            scenarios.append(Scenario(f"{name}-{size}-manager", what, bases[size], path, "manager-hq", ROW))
    for name, path in (("queue", "/queue"), ("rows", "/queue/rows")):
        what = f"`{path}`, {big:,} open, account manager (a slice)"
        scenarios.append(Scenario(f"{name}-{big}-am", what, bases[big], path, "am-slice", ROW))
    by_name = {s.name: s for s in scenarios}
    profiled = [name for name in args.profile.split(",") if name]
    for name in profiled:
        if name not in by_name:
            raise SystemExit(f"--profile: one of {', '.join(by_name)}")
    load_before = uptime()
    started = time.perf_counter()
    profiles: dict[str, tuple[str, list[tuple[str, float, float]]]] = {}
    try:
        connector = aiohttp.TCPConnector(limit=1)
        async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar()) as http:
            for _ in range(args.warmup):
                for s in scenarios:
                    await fetch(http, s, secrets, timer)
            for s in scenarios:
                s.clear()
            for _ in range(args.rounds):
                for s in scenarios:
                    await fetch(http, s, secrets, timer)
            took = time.perf_counter() - started
            for name in profiled:  # after the rounds: the profiler's figures are kept apart
                target = by_name[name]
                kept = (target.server, target.client, target.sizes)
                timer.profile = cProfile.Profile()
                for _ in range(args.profile_requests):
                    await fetch(http, target, secrets, timer)
                timer.profile.create_stats()
                profiles[name] = profile_summary(timer.profile, args.profile_requests)
                timer.profile = None
                target.server, target.client, target.sizes = kept
    finally:
        for runner in runners:
            await runner.cleanup()
        engine.dispose()
    return {
        "now": now,
        "scenarios": scenarios,
        "seconds": took,
        "seeding": (page_seconds, queue_seconds),
        "load_before": load_before,
        "load_after": uptime(),
        "page_mix": {
            size: clock_mix([(page_ids[size], desk.views[page_ids[size]])], now) for size in CUSTOMER_SIZES
        },
        "queue_mix": clock_mix(queues[big], now),
        "queue_customers": {size: len(queues[size]) for size in QUEUE_SIZES},
        "slice_items": slice_items,
        "profiles": profiles,
    }


# ----------------------------------------------------------------------------- report


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "load " + " ".join(f"{x:.2f}" for x in os.getloadavg())


def where(code: tuple[str, int, str]) -> str:
    filename, line, name = code
    path = Path(filename)
    try:
        shown = str(path.resolve().relative_to(ROOT))
    except ValueError:
        parts = path.parts
        shown = "/".join(parts[parts.index("site-packages") + 1 :]) if "site-packages" in parts else path.name
    return f"{shown}:{line} {name}" if line else name


def profile_summary(profile: cProfile.Profile, requests: int) -> tuple[str, list[tuple[str, float, float]]]:
    """The full top-40 listing (printed) and the top entries by cumulative time, per request."""
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("cumulative").print_stats(40)
    stats.sort_stats("tottime").print_stats(25)
    entries = stats.stats  # type: ignore[attr-defined]
    rows = []
    for code, (_, _, own, cumulative, _) in entries.items():
        name = where(code)
        if any(skip in name for skip in ("asyncio/", "aiohttp/web_", "bench/desk_pages")):
            continue
        rows.append((name, cumulative * 1000 / requests, own * 1000 / requests))
    rows.sort(key=lambda r: -r[1])
    return out.getvalue(), rows[:18]


def ms(values: list[float], q: float | None = None) -> float:
    return 1000 * (max(values) if q is None else pct(values, q))


def lines_of(result: dict[str, Any], args: argparse.Namespace) -> list[str]:
    scenarios = result["scenarios"]
    base = statistics.median(scenarios[0].server)
    big = QUEUE_SIZES[-1]
    mix, pages = result["queue_mix"], result["page_mix"]
    top = pages[CUSTOMER_SIZES[-1]]
    lines = [
        SECTION,
        "",
        "What: server time of the customer one-stop page (`/customers/{id}`) and of the dispatch queue "
        "(`/queue`, and its table `/queue/rows` that the page reloads live), from the real handlers, "
        "templates and the desk's two middlewares (sessions looked up in the database at each request), "
        "on an in-process aiohttp server over one SQLite file (users, sessions, reporting tables), as "
        "`tests/web` builds them. Customer pages: customers with 1, 10 and 200 open items (faults, "
        "tickets, orders mixed; opened 3 min to 6 days ago; some acknowledged, some paused) and "
        f"{CLOSED_PER_CUSTOMER} closed items each, folded by the worker's fold, projected by the sink's "
        "writer, every SLA step due by now folded back. Queue: the owners' views of 10 / 1,000 / 10,000 "
        "open items, one worker owning every customer. Server time = an outermost middleware around the "
        "guard and the handler; the client (aiohttp, same process, one request at a time) records its "
        "round trip too. Scenarios interleaved round by round.",
        "",
        "Command (from the repo root; no broker, no PostgreSQL):",
        "",
        f"    .venv/bin/python bench/desk_pages.py --rounds {args.rounds}"
        + (f" --profile {args.profile}" if args.profile else "")
        + " --write",
        "",
        f"Result, {result['now']:%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores, Python "
        f"{sys.version.split()[0]}, {args.rounds} requests per row after {args.warmup} warm-up "
        f"round(s), {result['seconds']:.0f} s of requests. Machine load (`uptime`) before: "
        f"`{result['load_before']}`; after: `{result['load_after']}`.",
        "",
        f"The 200-item customer: {top['breached']} items with a breached clock, {top['paused']} paused. "
        f"The 10,000-item queue: {result['queue_customers'][big]:,} customers, {mix['breached']:,} items "
        f"with a breached clock, {mix['paused']:,} paused; the account manager's slice "
        f"{result['slice_items']:,} items (the page shows at most 200 rows).",
        "",
        "| page | cards / rows shown | server p50 ms | p95 | max | / sign-in page (p50) "
        "| client round trip p50 ms | response KB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in scenarios:
        p50 = statistics.median(s.server)
        lines.append(
            f"| {s.what} | {s.shown if s.counted else ''} | {1000 * p50:.1f} | {ms(s.server, 95):.1f} | "
            f"{ms(s.server):.1f} | "
            f"x{p50 / base:.1f} | {1000 * statistics.median(s.client):.1f} | "
            f"{statistics.median(s.sizes) / 1024:.1f} |"
        )
    lines.append("")
    p50 = {s.name: statistics.median(s.server) for s in scenarios}
    first, top_size = CUSTOMER_SIZES[0], CUSTOMER_SIZES[-1]
    lines += [
        f"Scaling (server p50): customer page {top_size} open / {first} open "
        f"x{p50[f'customer-{top_size}-manager'] / p50[f'customer-{first}-manager']:.1f}; "
        f"`/queue` {big:,} open / {QUEUE_SIZES[0]:,} open "
        f"x{p50[f'queue-{big}-manager'] / p50[f'queue-{QUEUE_SIZES[0]}-manager']:.1f}, "
        f"`/queue/rows` x{p50[f'rows-{big}-manager'] / p50[f'rows-{QUEUE_SIZES[0]}-manager']:.1f}. "
        "Queue customers: "
        + ", ".join(f"{n:,} for {size:,} items" for size, n in result["queue_customers"].items())
        + ".",
        "",
    ]
    for name, (_, rows) in result["profiles"].items():
        lines += [
            f"Where the time goes in `{name}`: cProfile of {args.profile_requests} more requests "
            "(profiler on, so these figures are inflated), ms per request, top entries by cumulative "
            "time (asyncio's and aiohttp's own dispatch left out):",
            "",
            "| function | cum. ms | own ms |",
            "|---|---:|---:|",
        ]
        lines += [f"| `{where_}` | {cum:.1f} | {own:.1f} |" for where_, cum, own in rows]
        lines.append("")
    page_s, queue_s = result["seeding"]
    lines.append(
        f"(Building the data took {page_s:.0f} s for the customer pages, {queue_s:.0f} s for the queues.)"
    )
    lines.append("")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=60, help="requests per scenario")
    parser.add_argument("--warmup", type=int, default=2, help="rounds before measuring")
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument(
        "--profile",
        default=f"queue-{QUEUE_SIZES[-1]}-manager,customer-{CUSTOMER_SIZES[-1]}-manager",
        help="scenarios to profile after the rounds, comma-separated ('' for none)",
    )
    parser.add_argument("--profile-requests", type=int, default=20)
    parser.add_argument("--write", action="store_true", help="replace the section of BENCHMARKS.md")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="keydesk-page-bench-") as workdir:
        result = asyncio.run(measure(args, Path(workdir)))
    lines = lines_of(result, args)
    for text, _ in result["profiles"].values():
        print(text)
    print("\n".join(lines))
    if args.write:
        replace_section(SECTION, lines)


if __name__ == "__main__":
    main()
