"""The customer screens over a desk in memory: what is published is folded and projected at once.

:class:`FoldingDesk` is the pages' :class:`~handlers.web.customer_desk.CustomerDesk`
without a broker: an event published by a page is folded into its customer's
view by the worker's own fold (``streams.customer_view.fold``, then every
touched clock summarised as the processor does) and written to the SQLite
reporting database by the sink's own writer, so that the archive's search and
the compliance figures read what the pages wrote.  A step's outcome is the
API's ``fold_outcome``; an acknowledgement is checked by the API's
``acknowledgement`` and given the clock's current cycle, as the owner would.

The fixture ``screens`` serves the pages behind the real middlewares over that
desk, with one user per role and two key-account customers.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiohttp import web

from handlers.api.actions import fold_outcome
from handlers.api.commands import acknowledgement
from handlers.api.customer_search import ArchiveQuery, list_customers
from handlers.api.http_guard import guard_middleware
from handlers.identity.audit import Who
from handlers.identity.guard import IdentityGuard
from handlers.identity.passwords import PasswordHasher, hash_password
from handlers.identity.store import IdentityDb, IdentityStore, prepare_database
from handlers.local.ports import LOOPBACK, free_port
from handlers.reports.model import Figures
from handlers.reports.queries import compliance_report
from handlers.web.account_page import register_account_page
from handlers.web.customer_desk import month_bounds
from handlers.web.customer_screens import register_customer_screens
from handlers.web.pages import Desk, register_pages
from schemas.envelope import Event, new_event
from sla_rules import DEFAULT_RULES_PATH, RuleSet, load_rules
from streams.customer_view import find_item, fold, new_view, present, present_item
from streams.desk_signature import signature_headers
from streams.item_sla import due_steps, items_touched_by, sla_summary
from streams.sink_writer import SinkWriter

SECRET = b"s" * 32
ZONE = ZoneInfo("Asia/Shanghai")
RULES = load_rules(DEFAULT_RULES_PATH)
PASSWORD = "correct horse battery staple"
#: username -> (roles, staff id, region)
USERS = {
    "hotline-zhang": (["hotline"], None, None),
    "am-li": (["account_manager"], "AM-LI", None),
    "am-zhao": (["account_manager"], "AM-ZHAO", None),
    "manager-chen": (["manager"], "MGR-CHEN", "*"),
    "reports-wu": (["report_reader"], None, None),
}


class FoldingDesk:
    """A :class:`~handlers.web.customer_desk.CustomerDesk` in memory (see the module's docstring)."""

    zone = ZONE

    def __init__(self, engine: Any, rules: RuleSet = RULES) -> None:
        self.engine, self._rules = engine, rules
        self.views: dict[str, dict[str, Any]] = {}
        self.writer = SinkWriter(engine, rules, "sink", secret=SECRET)
        self.offsets = itertools.count()

    def rules(self) -> RuleSet:
        return self._rules

    def fold(self, event: Event, *, signed: bool = False) -> None:
        view = self.views.setdefault(event.customer_id, new_view(event.customer_id))
        outcome = fold(view, event)
        for kind, item_id in items_touched_by(view, event, outcome):
            item = find_item(view, kind, item_id)
            if item is not None:
                item["sla"] = sla_summary(view, item, self._rules)
        topic = "keydesk.sla" if event.kind == "sla" and not signed else "keydesk.events"
        value = event.to_bytes()
        record = (next(self.offsets), value, signature_headers(SECRET, value)) if signed else None
        self.writer.write(topic, 0, [record or (next(self.offsets), value)])

    def steps_due(self, customer_id: str, kind: str, item_id: str, now: datetime) -> list[Event]:
        """Publish what the SLA timers would have published for the item by ``now``."""
        view = self.views[customer_id]
        steps, _ = due_steps(view, find_item(view, kind, item_id), self._rules, now)
        for step in steps:
            self.fold(step)
        return steps

    async def view(self, customer_id: str) -> dict[str, Any] | None:
        view = self.views.get(customer_id)
        return None if view is None else present(view, ZONE)

    async def search(self, query: ArchiveQuery, now: datetime) -> dict[str, Any]:
        return list_customers(self.engine, query, now)

    async def month(self, customer_id: str, now: datetime) -> Figures | None:
        start, end = month_bounds(now, ZONE)
        report = compliance_report(
            self.engine,
            period_start=start,
            period_end=end,
            as_of=now,
            zone=ZONE,
            breach_limit=0,
            customer_id=customer_id,
        )
        return report.total

    async def publish(self, event: Event, *, signed: bool = False) -> None:
        self.fold(event, signed=signed)

    async def outcome(
        self, customer_id: str, kind: str, item_id: str, event_id: str, timeout: float
    ) -> dict[str, Any] | None:
        found = fold_outcome(self.views.get(customer_id), kind, item_id, event_id)
        return None if found is None else {**found, "item": present_item(found["item"], ZONE)}

    async def acknowledgement(
        self, customer_id: str, kind: str, item_id: str, body: dict[str, Any], actor: str, source: str
    ) -> Event:
        metric, cycle, extra = acknowledgement(body, kind)
        item = find_item(self.views[customer_id], kind, item_id)
        current = ((item or {}).get("sla") or {}).get("metrics", {}).get(metric, {}).get("cycle", 1)
        payload = {"item_kind": kind, "metric": metric, "cycle": cycle or current, **extra}
        return new_event(
            "sla.escalation_acknowledged",
            customer_id,
            item_id,
            payload,
            source=source,
            actor=actor,
            now=datetime.now(UTC),
        )


def registered(customer_id: str, when: datetime, **profile: Any) -> Event:
    return new_event(
        "customer.registered",
        customer_id,
        customer_id,
        profile,
        source="web",
        actor="admin",
        occurred_at=when,
        now=when,
    )


def item_event(event_type: str, customer_id: str, item_id: str, when: datetime, **payload: Any) -> Event:
    return new_event(
        event_type,
        customer_id,
        item_id,
        payload,
        source="hotline",
        actor="hotline-zhang",
        occurred_at=when,
        now=when,
    )


def seed(desk: FoldingDesk, now: datetime) -> None:
    """Two key-account customers; the government's old fault, unanswered and escalated; a closed one."""
    earlier = now - timedelta(hours=3)
    desk.fold(
        registered(
            "C-GOV-001",
            earlier - timedelta(days=1),
            name="省政府办公厅",
            tier="diamond",
            region="广东/广州",
            account_manager={"id": "AM-LI", "name": "李敏", "phone": "13900000001"},
            escalation_chain=[
                {"role": "department_head", "id": "MGR-CHEN", "name": "陈主任", "phone": "13900000002"},
                {"role": "branch_leader", "name": "黄总", "email": "huang@example.cn"},
            ],
            contacts=[{"name": "王工", "title": "信息中心主任", "phone": "020-83000000"}],
            services=[
                {"service": "MPLS VPN", "circuit_id": "GZ-MPLS-0001"},
                {"service": "互联网专线", "circuit_id": "GZ-DIA-0042", "address": "越秀区东风中路"},
            ],
        )
    )
    desk.fold(
        registered(
            "C-BANK-001",
            earlier - timedelta(days=1),
            name="招商银行广州分行",
            tier="platinum",
            region="广东/广州",
            account_manager={"id": "AM-ZHAO", "name": "赵强"},
            services=[{"service": "SD-WAN", "circuit_id": "GZ-SDWAN-0007"}],
        )
    )
    desk.fold(
        item_event(
            "fault.reported",
            "C-GOV-001",
            "F-OLD",
            earlier,
            severity="critical",
            summary="省网中断",
            service="MPLS VPN",
        )
    )
    desk.steps_due("C-GOV-001", "fault", "F-OLD", now)
    closed = earlier - timedelta(hours=2)
    for offset, (event_type, payload) in enumerate(
        [
            ("fault.reported", {"severity": "minor", "summary": "网速慢", "service": "互联网专线"}),
            ("fault.acknowledged", {}),
            ("fault.restored", {}),
            ("fault.closed", {}),
        ]
    ):
        desk.fold(
            item_event(event_type, "C-GOV-001", "F-DONE", closed + timedelta(minutes=offset), **payload)
        )


@pytest.fixture
async def screens(tmp_path):
    """``(base url, desk)``: the customer screens over a :class:`FoldingDesk` with :data:`USERS`."""
    engine = prepare_database(f"sqlite:///{tmp_path / 'desk.sqlite'}")
    store = IdentityStore(engine)
    for name, (roles, staff_id, region) in USERS.items():
        store.add_user(
            name, hash_password(PASSWORD), roles, Who(actor="test"), staff_id=staff_id, region=region
        )
    db = IdentityDb(store)
    desk = FoldingDesk(engine)
    seed(desk, datetime.now(UTC))
    app = web.Application(middlewares=[guard_middleware(), IdentityGuard(db, SECRET).middleware()])
    desk_pages = Desk(db, PasswordHasher())
    register_pages(app, desk_pages)
    register_account_page(app, desk_pages)
    register_customer_screens(app, desk, db)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    try:
        yield f"http://{LOOPBACK}:{port}", desk
    finally:
        await runner.cleanup()
        engine.dispose()


async def signed_in(browser, base: str, username: str, *, language: str = "zh_CN", **context: Any):
    """A new page of a new browser context, signed in as ``username``, the language chosen."""
    page = await (await browser.new_context(**context)).new_page()
    await page.goto(f"{base}/login?lang={language}")
    await page.locator("#username").fill(username)
    await page.locator("#password").fill(PASSWORD)
    await page.locator("#password").press("Enter")
    await page.wait_for_url(f"{base}/")
    return page
