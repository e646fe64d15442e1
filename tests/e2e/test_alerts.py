"""Escalation alerts end to end: real broker, real SMTP server, real webhook receiver."""

from __future__ import annotations

import asyncio
import email
import os
import signal
import threading
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from handlers.local.ports import free_port
from tests.builders import event, fault
from tests.e2e.conftest import http, new_desk, short_rules_file

pytestmark = pytest.mark.broker


def subject(message) -> str:
    return str(email.header.make_header(email.header.decode_header(message["Subject"])))


class Mailbox:
    """An SMTP server on loopback that keeps every message it accepts."""

    def __init__(self):
        self.messages: list[email.message.Message] = []
        self.arrived = asyncio.Event()
        self.loop = asyncio.get_running_loop()

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content))
        self.loop.call_soon_threadsafe(self.arrived.set)
        return "250 OK"


class Receiver:
    """A webhook endpoint, on its own thread and loop, that answers 503 to its first posts.

    Its own loop: the test's loop is blocked while the test makes synchronous calls.
    """

    def __init__(self, fail_first: int = 0):
        self.fail_first, self.attempts, self.accepted = fail_first, 0, []
        self.arrived = asyncio.Event()
        self.test_loop = asyncio.get_running_loop()
        self.loop = asyncio.new_event_loop()
        self.port = free_port()

    async def handle(self, request):
        self.attempts += 1
        if self.attempts <= self.fail_first:
            return web.Response(status=503)
        self.accepted.append((request.headers.get("Idempotency-Key"), await request.json()))
        self.test_loop.call_soon_threadsafe(self.arrived.set)
        return web.json_response({"ok": True})

    def start(self) -> None:
        started = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            app = web.Application()
            app.router.add_post("/hook", self.handle)
            self.runner = web.AppRunner(app)
            self.loop.run_until_complete(self.runner.setup())
            self.loop.run_until_complete(web.TCPSite(self.runner, "127.0.0.1", self.port).start())
            started.set()
            self.loop.run_forever()
            self.loop.run_until_complete(self.runner.cleanup())

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        started.wait(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def until(predicate, what: str, timeout: float = 90.0, *signals: asyncio.Event):
    """Wait for ``predicate`` to hold, waking on the servers' arrival events."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        left = deadline - asyncio.get_running_loop().time()
        if left <= 0:
            raise AssertionError(f"timed out waiting for {what}")
        if not signals:  # a condition only HTTP can tell: poll it
            await asyncio.sleep(0.1)
            continue
        waiters = [asyncio.ensure_future(s.wait()) for s in signals]
        await asyncio.wait(waiters, timeout=min(left, 1.0))
        for s, w in zip(signals, waiters):
            w.cancel()
            s.clear()


@pytest.fixture
async def mailbox():
    box = Mailbox()
    controller = Controller(box, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield box, f"127.0.0.1:{controller.port}"
    controller.stop()


@pytest.fixture
async def receiver():
    hook = Receiver(fail_first=2)
    hook.start()
    yield hook, f"http://127.0.0.1:{hook.port}/hook"
    hook.stop()


@pytest.fixture(scope="module")
def short_rules(tmp_path_factory):
    """Diamond P1 faults: 1 minute to respond, ladder steps 1 minute apart."""
    return short_rules_file(tmp_path_factory.mktemp("rules"), ladder=True)


@pytest.fixture
def alert_desk(kafka_bootstrap, tmp_path, short_rules, mailbox):
    """A deployment with the short test policy and alert emails to the test's SMTP server."""
    desk = new_desk(kafka_bootstrap, tmp_path, KEYDESK_SLA_RULES=str(short_rules), KEYDESK_SMTP=mailbox[1])
    yield desk
    desk.stop()


def register(desk, customer: str, webhook: str) -> None:
    registration = event(
        "customer.registered",
        customer,
        customer=customer,
        tier="diamond",
        name="省政府办公厅",
        account_manager={"id": "AM-1", "name": "李敏", "email": "li.min@example.cn", "webhook": webhook},
        escalation_chain=[
            {"role": "account_manager", "name": "李敏", "email": "li.min@example.cn"},
            {"role": "department_head", "name": "王强", "email": "wang.qiang@example.cn"},
        ],
    )
    http("POST", f"{desk.workers[0].url}/api/events", raw=registration.to_bytes())
    assert desk.workers[0].view(customer, wait_for=registration.event_id)[0] == 200


def report(desk, customer: str, fault_id: str, seconds_ago: int):
    reported_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=seconds_ago)
    e = fault(fault_id, "reported", reported_at, customer=customer)
    http("POST", f"{desk.workers[0].url}/api/events", raw=e.to_bytes())
    assert desk.workers[0].view(customer, wait_for=e.event_id)[0] == 200
    return reported_at


class TestAlerts:
    async def test_warnings_breach_and_first_step_reach_the_account_manager_once(
        self, alert_desk, mailbox, receiver
    ):
        """Diamond P1: each step alerts the account manager by email and webhook, once."""
        box, _ = mailbox
        hook, url = receiver
        desk = alert_desk
        desk.start_worker()
        desk.wait_until_partitions_split()
        customer = f"C-AL-{uuid.uuid4().hex[:6]}"
        register(desk, customer, url)
        report(desk, customer, "F-1", seconds_ago=50)
        # 3 warnings at once, then breach + step 1 at the deadline: 5 alerts
        await until(
            lambda: len(box.messages) >= 5 and len(hook.accepted) >= 5,
            "5 emails and 5 webhooks",
            90,
            box.arrived,
            hook.arrived,
        )
        subjects = [subject(m) for m in box.messages]
        assert all(
            m["To"].endswith("li.min@example.cn>") or m["To"] == "li.min@example.cn" for m in box.messages
        ), [m["To"] for m in box.messages]
        assert sum("预警" in s or "warning" in s.lower() for s in subjects) == 3, subjects
        ids = Counter(m["X-Keydesk-Alert-Id"] for m in box.messages)
        assert len(ids) == 5 and set(ids.values()) == {1}
        hook_ids = Counter(key for key, _ in hook.accepted)
        assert set(hook_ids) == set(ids) and set(hook_ids.values()) == {1}
        assert hook.attempts == len(hook.accepted) + 2  # two 503s were retried
        worker = desk.workers[0]
        await until(
            lambda: http("GET", f"{worker.url}/api/health")[1]["processed"].get("alerts_recorded", 0) >= 5,
            "5 outcomes recorded",
            30,
        )
        status, view = worker.view(customer)
        sent = view["open"]["fault"]["F-1"]["alerts"]
        assert len(sent) == 5 and all(a["delivered"] for a in sent)

    async def test_an_acknowledged_escalation_stops_its_ladder(self, alert_desk, mailbox, receiver):
        """After the manager acknowledges step 1, step 2 (department head) never goes out."""
        box, _ = mailbox
        hook, url = receiver
        desk = alert_desk
        desk.start_worker()
        desk.wait_until_partitions_split()
        customer = f"C-ACK-{uuid.uuid4().hex[:6]}"
        register(desk, customer, url)
        report(desk, customer, "F-1", seconds_ago=95)  # step 2 due in ~25 s
        await until(
            lambda: any("升级" in subject(m) for m in box.messages),
            "the step-1 escalation email",
            60,
            box.arrived,
        )
        status, answer = http(
            "POST",
            f"{desk.workers[0].url}/api/customers/{customer}/items/fault/F-1/acknowledge",
            {"metric": "response", "note": "已派单"},
        )
        assert status == 202, answer
        report(desk, customer, "F-2", seconds_ago=30)  # its breach lands after F-1's step 2
        await until(
            lambda: any("F-2" in subject(m) and "违约" in subject(m) for m in box.messages),
            "F-2's breach email",
            90,
            box.arrived,
        )
        to_head = [m for m in box.messages if "wang.qiang" in m["To"]]
        assert to_head == []


class TestCrashes:
    async def test_a_worker_killed_before_the_deadline_alerts_exactly_once_after_restart(
        self, alert_desk, mailbox, receiver
    ):
        """kill -9 between the warnings and the breach: the new worker sends the breach once."""
        box, _ = mailbox
        hook, url = receiver
        desk = alert_desk
        first = desk.start_worker()
        desk.wait_until_partitions_split()
        customer = f"C-K9-{uuid.uuid4().hex[:6]}"
        register(desk, customer, url)
        report(desk, customer, "F-1", seconds_ago=50)
        await until(lambda: len(box.messages) >= 3, "the 3 warning emails", 60, box.arrived)
        await until(
            lambda: http("GET", f"{first.url}/api/health")[1]["processed"].get("alerts_recorded", 0) >= 3,
            "the warnings durably recorded",
            30,
        )
        os.kill(first.process.pid, signal.SIGKILL)  # the breach is a few seconds away
        first.process.wait()
        desk.workers.remove(first)
        desk.start_worker()
        desk.wait_until_partitions_split(timeout=90)
        await until(lambda: len(box.messages) >= 5, "breach and step-1 emails", 90, box.arrived)
        ids = Counter(m["X-Keydesk-Alert-Id"] for m in box.messages)
        assert len(ids) == 5 and set(ids.values()) == {1}, ids

    async def test_a_rebalance_to_two_workers_alerts_exactly_once(self, alert_desk, mailbox, receiver):
        """A second worker joins before the deadline: whichever owns the customer alerts, once."""
        box, _ = mailbox
        hook, url = receiver
        desk = alert_desk
        desk.start_worker()
        desk.wait_until_partitions_split()
        customers = [f"C-RB{n}-{uuid.uuid4().hex[:4]}" for n in range(4)]
        for customer in customers:
            register(desk, customer, url)
            report(desk, customer, "F-1", seconds_ago=45)
        desk.start_worker()
        desk.wait_until_partitions_split(timeout=90)
        await until(
            lambda: len(box.messages) >= 5 * len(customers), "every customer's 5 emails", 120, box.arrived
        )
        ids = Counter(m["X-Keydesk-Alert-Id"] for m in box.messages)
        assert len(ids) == 5 * len(customers) and set(ids.values()) == {1}, ids
