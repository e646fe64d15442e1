"""Alerts leave keydesk: a real local SMTP server and a real local HTTP receiver get them.

No network mocks: aiosmtpd and aiohttp listen on 127.0.0.1 free ports.  Retries
never really sleep: the Dispatcher gets a sleep that records the backoff delays.
"""

from __future__ import annotations

import asyncio
import base64
import email
import hashlib
import hmac
from datetime import UTC, datetime
from email.policy import default as email_policy
from types import SimpleNamespace
from urllib.parse import unquote_plus

import orjson
import pytest
import structlog
from aiohttp import web
from aiosmtpd.smtp import SMTP as SMTPServerProtocol
from aiosmtpd.smtp import AuthResult

from handlers.alerts.channels import (
    Dispatcher,
    EmailChannel,
    LogChannel,
    RetryPolicy,
    Status,
    WebhookChannel,
    message_id,
)
from handlers.alerts.routing import (
    EMAIL,
    LOG,
    WEBHOOK,
    Alert,
    Recipient,
    route,
)
from handlers.local.ports import free_port
from tests.builders import event

PROFILE = {
    "name": "省政府办公厅",
    "tier": "diamond",
    "tier_label": "钻石",
    "account_manager": {"id": "AM-1", "name": "李敏", "email": "limin@example.cn"},
    "escalation_chain": [{"role": "department_head", "name": "王强", "email": "wangqiang@example.cn"}],
}
ITEM = {
    "id": "F-1",
    "kind": "fault",
    "state": "dispatched",
    "attributes": {"priority": "P1", "summary": "专线中断", "service": "MPLS VPN"},
}
CLOCK = {
    "item_kind": "fault",
    "metric": "restore",
    "cycle": 1,
    "policy": "diamond v1",
    "due_at": "2026-11-23T05:00:00+00:00",
}
SENDER = "keydesk 告警 <alerts@keydesk.example.cn>"
NOW = 1_795_500_000.0  # a fixed epoch second for Date headers and DingTalk signatures


def escalation_alert(**recipient) -> Alert:
    """The step-2 alert for the department head, with the given addresses."""
    chain = [{"role": "department_head", "name": "王强", **recipient}]
    alerts = route(
        event("sla.escalation_due", "F-1", "13:30", step=2, role="department_head", **CLOCK),
        {**PROFILE, "escalation_chain": chain},
        ITEM,
    )
    return alerts[0]


class RecordingSleep:
    """Stands in for asyncio.sleep: records the backoff and yields without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


class Mailbox:
    """aiosmtpd handler: keeps what arrives; ``rcpt_reply`` makes it refuse recipients."""

    def __init__(self) -> None:
        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[SimpleNamespace] = []
        self.rcpt_reply: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(SimpleNamespace(mail_from=envelope.mail_from, rcpt_tos=list(envelope.rcpt_tos)))
        self.messages.append(email.message_from_bytes(envelope.content, policy=email_policy))
        return "250 Message accepted"


@pytest.fixture
async def smtp_servers():
    """Starts real SMTP servers on 127.0.0.1 in the test's own event loop; closes them after."""
    servers = []
    loop = asyncio.get_running_loop()

    async def start(**options) -> Mailbox:
        mailbox = Mailbox()
        server = await loop.create_server(
            lambda: SMTPServerProtocol(mailbox, hostname="mx.test", loop=loop, **options), "127.0.0.1", 0
        )
        servers.append(server)
        mailbox.port = server.sockets[0].getsockname()[1]
        return mailbox

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def smtp(smtp_servers):
    """A plain SMTP server that accepts everything (unless told otherwise)."""
    return await smtp_servers()


def accept_only(login: bytes, password: bytes):
    """An aiosmtpd authenticator that knows one account."""

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (auth_data.login, auth_data.password) == (login, password)
        return AuthResult(success=ok, handled=False)  # handled=False: server answers 535

    return authenticator


def email_channel(port: int) -> EmailChannel:
    return EmailChannel(
        "127.0.0.1", port, SENDER, local_hostname="keydesk.test", timeout=5, clock=lambda: NOW
    )


class Receiver:
    """An HTTP webhook receiver; ``script`` holds answers for the next requests, in order.

    An answer is (status, body, headers), or "hang" to hold the request until the
    test ends (for timeouts).  When the script is empty it answers like the robot.
    """

    OK = {
        "wecom": {"errcode": 0, "errmsg": "ok"},
        "dingtalk": {"errcode": 0, "errmsg": "ok"},
        "slack": "ok",
        "generic": {"accepted": True},
    }

    def __init__(self) -> None:
        self.requests: list[SimpleNamespace] = []
        self.script: list = []
        self.release = asyncio.Event()
        self.base = ""

    def url(self, fmt: str = "generic") -> str:
        return f"{self.base}/hook/{fmt}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        fmt = request.match_info["fmt"]
        self.requests.append(
            SimpleNamespace(
                fmt=fmt,
                headers=request.headers,
                query=request.rel_url.query,
                json=orjson.loads(await request.read()),
            )
        )
        answer = self.script.pop(0) if self.script else (200, self.OK[fmt], {})
        if answer == "hang":
            await self.release.wait()
            answer = (200, self.OK[fmt], {})
        status, body, headers = answer
        if isinstance(body, str):
            return web.Response(status=status, text=body, headers=headers)
        return web.json_response(body, status=status, headers=headers)


@pytest.fixture
async def receiver():
    """A real aiohttp server on 127.0.0.1 standing in for WeCom, DingTalk, Slack and others."""
    hooks = Receiver()
    app = web.Application()
    app.router.add_post("/hook/{fmt}", hooks.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    host, port = runner.addresses[0][:2]
    hooks.base = f"http://{host}:{port}"
    yield hooks
    hooks.release.set()
    await runner.cleanup()


@pytest.fixture
async def webhooks():
    """Webhook channels per format, closed after the test."""
    made: list[WebhookChannel] = []

    def make(fmt: str = "auto", **kw) -> WebhookChannel:
        made.append(WebhookChannel(fmt, **kw))
        return made[-1]

    yield make
    for channel in made:
        await channel.close()


class TestEmailChannel:
    async def test_alert_arrives_with_recipient_subject_and_message_id(self, smtp):
        """The department head's mailbox gets the alert, addressed, titled and identified."""
        alert = escalation_alert(email="wangqiang@example.cn")
        result = await email_channel(smtp.port).deliver(alert)
        assert result.status is Status.DELIVERED
        [msg] = smtp.messages
        assert msg["To"].addresses[0].addr_spec == "wangqiang@example.cn"
        assert msg["To"].addresses[0].display_name == "王强"
        assert msg["Subject"] == alert.subject
        assert msg["Message-ID"] == message_id(alert.alert_id, "keydesk.example.cn")
        assert msg["X-Keydesk-Alert-Id"] == alert.alert_id
        assert "专线中断" in msg.get_content()
        assert smtp.envelopes[0].mail_from == "alerts@keydesk.example.cn"
        assert smtp.envelopes[0].rcpt_tos == ["wangqiang@example.cn"]

    async def test_message_id_is_the_same_when_the_alert_is_resent(self, smtp):
        """A resend after a restart carries the same Message-ID, so it can be recognised."""
        channel = email_channel(smtp.port)
        await channel.deliver(escalation_alert(email="wangqiang@example.cn"))
        await channel.deliver(escalation_alert(email="wangqiang@example.cn"))
        first, second = smtp.messages
        assert first["Message-ID"] == second["Message-ID"]
        assert first["Date"].datetime == datetime.fromtimestamp(NOW, UTC)  # injected clock

    async def test_unknown_mailbox_550_is_permanent(self, smtp):
        """A server that says the mailbox does not exist will not change its mind."""
        smtp.rcpt_reply = "550 5.1.1 no such user"
        result = await email_channel(smtp.port).deliver(escalation_alert(email="nobody@x.cn"))
        assert result.status is Status.FAILED_PERMANENTLY
        assert "550" in result.reason and smtp.messages == []

    async def test_greylisting_451_is_transient(self, smtp):
        """A 4xx reply means 'try again later' by SMTP's own definition."""
        smtp.rcpt_reply = "451 4.7.1 greylisted, try later"
        result = await email_channel(smtp.port).deliver(escalation_alert(email="wq@x.cn"))
        assert result.status is Status.TRANSIENT and "451" in result.reason

    async def test_malformed_address_fails_without_connecting(self):
        """An address that cannot be right is a permanent failure; no server is needed."""
        result = await email_channel(free_port()).deliver(escalation_alert(email="王强 at 省府"))
        assert result.status is Status.FAILED_PERMANENTLY
        assert "invalid email address" in result.reason

    @pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
    async def test_relay_login_is_used_when_configured(self, smtp_servers):
        """A relay that requires a login accepts the alert with the right account."""
        relay = await smtp_servers(
            auth_required=True, auth_require_tls=False, authenticator=accept_only(b"keydesk", b"s3cret")
        )
        channel = EmailChannel(
            "127.0.0.1",
            relay.port,
            SENDER,
            username="keydesk",
            password="s3cret",
            local_hostname="keydesk.test",
        )
        assert (await channel.deliver(escalation_alert(email="wq@x.cn"))).delivered
        assert len(relay.messages) == 1

    @pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
    async def test_wrong_relay_password_is_permanent(self, smtp_servers):
        """A 535 authentication failure is configuration, not weather: no retry helps."""
        relay = await smtp_servers(
            auth_required=True, auth_require_tls=False, authenticator=accept_only(b"keydesk", b"s3cret")
        )
        channel = EmailChannel(
            "127.0.0.1",
            relay.port,
            SENDER,
            username="keydesk",
            password="wrong",
            local_hostname="keydesk.test",
        )
        result = await channel.deliver(escalation_alert(email="wq@x.cn"))
        assert result.status is Status.FAILED_PERMANENTLY and "535" in result.reason
        assert relay.messages == []

    async def test_starttls_required_but_not_offered_is_permanent(self, smtp):
        """A server without STARTTLS will not grow it; we never fall back to plain text."""
        channel = EmailChannel("127.0.0.1", smtp.port, SENDER, starttls=True, local_hostname="keydesk.test")
        result = await channel.deliver(escalation_alert(email="wq@x.cn"))
        assert result.status is Status.FAILED_PERMANENTLY and smtp.messages == []

    async def test_unreachable_server_is_transient(self):
        """Connection refused is an outage, not a verdict on the alert."""
        result = await email_channel(free_port()).deliver(escalation_alert(email="wq@x.cn"))
        assert result.status is Status.TRANSIENT and "ConnectionRefused" in result.reason


class TestWebhookChannel:
    async def test_generic_receiver_gets_the_alert_as_json(self, receiver, webhooks):
        """A plain endpoint gets every structured field plus the alert id, in body and header."""
        alert = escalation_alert(webhook=receiver.url("generic"))
        result = await webhooks("generic").deliver(alert)
        assert result.status is Status.DELIVERED
        [req] = receiver.requests
        assert req.headers["Idempotency-Key"] == alert.alert_id
        assert req.json["alert_id"] == alert.alert_id
        assert req.json["fields"]["metric"] == "restore" and req.json["fields"]["step"] == 2
        assert "webhook" not in req.json["recipient"]

    async def test_wecom_robot_gets_markdown(self, receiver, webhooks):
        """A WeCom group robot gets msgtype markdown with the subject as heading."""
        alert = escalation_alert(webhook=receiver.url("wecom"))
        assert (await webhooks("wecom").deliver(alert)).delivered
        [req] = receiver.requests
        assert req.json["msgtype"] == "markdown"
        assert req.json["markdown"]["content"].startswith(f"## {alert.subject}")
        assert alert.alert_id in req.json["markdown"]["content"]
        assert req.headers["Idempotency-Key"] == alert.alert_id

    async def test_dingtalk_robot_gets_markdown_with_title_and_at(self, receiver, webhooks):
        """A DingTalk robot gets title + text, and @-mentions the recipient's phone."""
        alert = escalation_alert(webhook=receiver.url("dingtalk"), phone="13700000003")
        assert (await webhooks("dingtalk").deliver(alert)).delivered
        [req] = receiver.requests
        assert req.json["msgtype"] == "markdown"
        assert req.json["markdown"]["title"] == alert.subject[:64]
        assert alert.alert_id in req.json["markdown"]["text"]
        assert req.json["at"] == {"atMobiles": ["13700000003"], "isAtAll": False}
        assert req.headers["Idempotency-Key"] == alert.alert_id

    async def test_dingtalk_signed_robot_gets_timestamp_and_signature(self, receiver, webhooks):
        """With a secret, the URL carries DingTalk's timestamp and HMAC-SHA256 sign."""
        alert = escalation_alert(webhook=receiver.url("dingtalk") + "?access_token=t1")
        channel = webhooks("dingtalk", secret="SEC123", clock=lambda: NOW)
        assert (await channel.deliver(alert)).delivered
        query = receiver.requests[0].query
        assert query["access_token"] == "t1" and query["timestamp"] == str(int(NOW * 1000))
        expected = base64.b64encode(
            hmac.new(b"SEC123", f"{query['timestamp']}\nSEC123".encode(), hashlib.sha256).digest()
        ).decode()
        assert unquote_plus(query["sign"]) in (expected, expected.replace("+", " "))

    async def test_slack_gets_text_and_blocks(self, receiver, webhooks):
        """A Slack incoming webhook gets fallback text and simple blocks."""
        alert = escalation_alert(webhook=receiver.url("slack"))
        assert (await webhooks("slack").deliver(alert)).delivered
        [req] = receiver.requests
        assert req.json["text"].startswith(alert.subject)
        assert [b["type"] for b in req.json["blocks"]] == ["header", "section", "context"]
        assert req.headers["Idempotency-Key"] == alert.alert_id

    @pytest.mark.parametrize(
        ("errcode", "status"), [(93000, Status.FAILED_PERMANENTLY), (45009, Status.TRANSIENT)]
    )
    async def test_robot_error_in_a_200_answer_is_a_failure(self, receiver, webhooks, errcode, status):
        """HTTP 200 with a non-zero errcode did not deliver; rate limits are worth a retry."""
        receiver.script = [(200, {"errcode": errcode, "errmsg": "no"}, {})]
        result = await webhooks("wecom").deliver(escalation_alert(webhook=receiver.url("wecom")))
        assert result.status is status and str(errcode) in result.reason

    @pytest.mark.parametrize(
        ("http", "status"),
        [
            (400, Status.FAILED_PERMANENTLY),
            (404, Status.FAILED_PERMANENTLY),
            (503, Status.TRANSIENT),
            (429, Status.TRANSIENT),
        ],
    )
    async def test_http_status_decides_transient_or_permanent(self, receiver, webhooks, http, status):
        """4xx is the receiver's verdict (except 429); 5xx and 429 are worth a retry."""
        receiver.script = [(http, {"error": "x"}, {})]
        result = await webhooks("generic").deliver(escalation_alert(webhook=receiver.url()))
        assert result.status is status and str(http) in result.reason

    async def test_slow_receiver_times_out_as_transient(self, receiver, webhooks):
        """A receiver that does not answer in time is an outage, retried later."""
        receiver.script = ["hang"]
        result = await webhooks("generic", timeout=0.2).deliver(escalation_alert(webhook=receiver.url()))
        assert result.status is Status.TRANSIENT and "timed out" in result.reason

    async def test_refused_connection_is_transient(self, webhooks):
        """Nobody listening is an outage."""
        alert = escalation_alert(webhook=f"http://127.0.0.1:{free_port()}/hook")
        assert (await webhooks().deliver(alert)).status is Status.TRANSIENT

    async def test_non_http_url_is_permanent(self, webhooks):
        """A URL we cannot POST to never will be."""
        result = await webhooks().deliver(escalation_alert(webhook="ftp://example.cn/x"))
        assert result.status is Status.FAILED_PERMANENTLY


class TestLogChannel:
    async def test_alert_is_logged_with_its_id_and_customer(self):
        """The log is the last resort, so it carries enough to act on."""
        alert = escalation_alert()
        with structlog.testing.capture_logs() as logs:
            result = await LogChannel().deliver(alert)
        assert result.delivered
        [entry] = [e for e in logs if e["event"] == "sla_alert"]
        assert (entry["alert_id"], entry["customer_id"]) == (alert.alert_id, "C-1")
        assert entry["subject"] == alert.subject


class TestRetryPolicy:
    def test_backoff_doubles_up_to_the_cap(self):
        """Waits grow exponentially and stop growing at max_delay."""
        policy = RetryPolicy(attempts=6, base_delay=1, max_delay=5)
        assert [policy.delay(n) for n in range(1, 6)] == [1, 2, 4, 5, 5]

    def test_a_longer_retry_after_wins(self):
        """A receiver that asks us to wait longer is obeyed, within the cap."""
        policy = RetryPolicy(base_delay=1, max_delay=30)
        assert (policy.delay(1, retry_after=7), policy.delay(1, retry_after=99)) == (7, 30)

    def test_nonsense_is_refused(self):
        """Zero attempts would mean never sending."""
        with pytest.raises(ValueError):
            RetryPolicy(attempts=0)


class TestDispatcher:
    async def test_receiver_that_fails_twice_gets_the_alert_once_it_recovers(self, receiver, webhooks):
        """Two 503s are retried with growing waits; the third try delivers, same key each time."""
        receiver.script = [(503, "busy", {}), (503, "busy", {})]
        sleep = RecordingSleep()
        dispatcher = Dispatcher(
            [webhooks("generic"), LogChannel()],
            RetryPolicy(attempts=5, base_delay=1, max_delay=30),
            sleep=sleep,
        )
        alert = escalation_alert(webhook=receiver.url())
        report = await dispatcher.dispatch(alert)
        assert report.delivered and report.failures == ()
        webhook = next(r for r in report.results if r.channel == WEBHOOK)
        assert (webhook.attempts, webhook.delays) == (3, (1, 2))
        assert sleep.delays == [1, 2]
        assert {r.headers["Idempotency-Key"] for r in receiver.requests} == {alert.alert_id}
        assert len(receiver.requests) == 3

    async def test_a_400_is_not_retried(self, receiver, webhooks):
        """The receiver rejected the request; asking again would only be refused again."""
        receiver.script = [(400, {"error": "bad payload"}, {})]
        sleep = RecordingSleep()
        report = await Dispatcher([webhooks("generic"), LogChannel()], sleep=sleep).dispatch(
            escalation_alert(webhook=receiver.url())
        )
        [failure] = report.failures
        assert (failure.channel, failure.status, failure.attempts) == (WEBHOOK, Status.FAILED_PERMANENTLY, 1)
        assert "400" in failure.reason
        assert len(receiver.requests) == 1 and sleep.delays == []

    async def test_unreachable_smtp_is_retried_then_reported(self):
        """Every attempt is refused; after the last one the failure comes back with its reason."""
        sleep = RecordingSleep()
        dispatcher = Dispatcher(
            [email_channel(free_port()), LogChannel()],
            RetryPolicy(attempts=4, base_delay=0.5, max_delay=1.5),
            sleep=sleep,
        )
        report = await dispatcher.dispatch(escalation_alert(email="wangqiang@example.cn"))
        [failure] = report.failures
        assert (failure.channel, failure.status, failure.attempts) == (EMAIL, Status.GAVE_UP, 4)
        assert "ConnectionRefused" in failure.reason
        assert sleep.delays == [0.5, 1.0, 1.5]
        assert [r.status for r in report.results if r.channel == LOG] == [Status.DELIVERED]

    async def test_rate_limited_receiver_is_given_the_time_it_asks_for(self, receiver, webhooks):
        """A 429 with Retry-After: 7 waits 7 s, not the 1 s backoff."""
        receiver.script = [(429, {"error": "slow down"}, {"Retry-After": "7"})]
        sleep = RecordingSleep()
        report = await Dispatcher([webhooks("generic"), LogChannel()], sleep=sleep).dispatch(
            escalation_alert(webhook=receiver.url())
        )
        assert report.delivered and sleep.delays == [7]

    async def test_every_channel_reports_on_its_own(self, smtp, receiver, webhooks):
        """Email delivered and webhook refused: only the webhook is handed back as a failure."""
        receiver.script = [(404, "no such hook", {})]
        alert = escalation_alert(email="wangqiang@example.cn", webhook=receiver.url())
        report = await Dispatcher(
            [email_channel(smtp.port), webhooks(), LogChannel()], sleep=RecordingSleep()
        ).dispatch(alert)
        assert {r.channel: r.status for r in report.results} == {
            EMAIL: Status.DELIVERED,
            WEBHOOK: Status.FAILED_PERMANENTLY,
            LOG: Status.DELIVERED,
        }
        assert [f.channel for f in report.failures] == [WEBHOOK]
        assert len(smtp.messages) == 1

    async def test_a_channel_route_without_a_configured_channel_is_reported(self):
        """An email route with no SMTP configured is a visible failure, not a silent drop."""
        report = await Dispatcher([LogChannel()], sleep=RecordingSleep()).dispatch(
            escalation_alert(email="wangqiang@example.cn")
        )
        [failure] = report.failures
        assert failure.status is Status.FAILED_PERMANENTLY and "no email channel" in failure.reason

    async def test_a_crashing_channel_does_not_lose_the_alert(self):
        """A bug in a channel comes back as a failure with its reason, not an exception."""

        class Broken:
            name = LOG

            async def deliver(self, alert):
                raise RuntimeError("boom")

            async def close(self):
                pass

        report = await Dispatcher([Broken()], sleep=RecordingSleep()).dispatch(escalation_alert())
        [failure] = report.failures
        assert failure.status is Status.FAILED_PERMANENTLY and "boom" in failure.reason

    async def test_routed_alerts_reach_inbox_and_robot_end_to_end(self, smtp, receiver, webhooks):
        """A step-2 escalation reaches the department head's robot and the manager's inbox."""
        profile = {
            **PROFILE,
            "escalation_chain": [
                {"role": "department_head", "name": "王强", "webhook": receiver.url("wecom")}
            ],
        }
        alerts = route(
            event("sla.escalation_due", "F-1", "13:30", step=2, role="department_head", **CLOCK),
            profile,
            ITEM,
        )
        dispatcher = Dispatcher([email_channel(smtp.port), webhooks(), LogChannel()], sleep=RecordingSleep())
        reports = await dispatcher.dispatch_all(alerts)
        await dispatcher.close()
        assert all(r.delivered for r in reports)
        assert [m["To"].addresses[0].addr_spec for m in smtp.messages] == ["limin@example.cn"]
        assert "抄送" in smtp.messages[0]["Subject"]
        assert receiver.requests[0].fmt == "wecom"
        assert receiver.requests[0].headers["Idempotency-Key"] == alerts[0].alert_id


def test_recipient_without_channels_still_gets_logged():
    """Even a recipient with no addresses yields a log line (and the routing adds the desk)."""
    assert escalation_alert().channels == (LOG,)
    assert Recipient(name="x", role="executive").reachable is False
