"""Delivering alerts: email over SMTP, chat webhooks, the log; retries with backoff.

Each channel makes exactly one attempt per :meth:`deliver` call and classifies
the outcome: delivered, a transient failure worth retrying (connection refused,
timeouts, HTTP 5xx/408/429, SMTP 4xx), or a permanent one that retrying cannot
fix (HTTP 4xx, SMTP 5xx, a malformed address, a robot that answers 200 with a
non-zero ``errcode``).  Channels never raise for delivery problems.

:class:`Dispatcher` owns the retry loop, so the policy is in one place and tests
can inject ``sleep`` (no real waiting).  It never loses an alert silently: every
channel ends with a :class:`DeliveryResult` and the caller sends the failures to
its retry / dead-letter topic.

Receivers can drop duplicates after a restart: the alert id (deterministic, see
:mod:`handlers.alerts.routing`) travels as the email ``Message-ID`` and
``X-Keydesk-Alert-Id`` header, and as the webhook ``Idempotency-Key`` header and
in the body.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
import smtplib
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from email.header import Header
from email.mime.text import MIMEText
from email.utils import formataddr, formatdate, parseaddr
from enum import StrEnum
from typing import Any, Protocol
from urllib.parse import quote_plus, urlsplit

import aiohttp
import orjson
import structlog

from handlers.alerts.routing import (
    EMAIL,
    LOG,
    WEBHOOK,
    WEBHOOK_FORMATS,
    Alert,
    webhook_format_for,
    webhook_payload,
)

log = structlog.get_logger("keydesk.alerts")

#: Robot error codes that mean "slow down / try later" (rate limits, system busy).
ROBOT_TRANSIENT_ERRCODES = frozenset({-1, 45009, 45033, 130101, 130102})


class Status(StrEnum):
    DELIVERED = "delivered"
    TRANSIENT = "transient_failure"  # one attempt only; the Dispatcher decides what follows
    FAILED_PERMANENTLY = "failed_permanently"
    GAVE_UP = "gave_up_after_retries"


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of delivering one alert on one channel (after retries, from the Dispatcher)."""

    channel: str
    alert_id: str
    status: Status
    reason: str = ""
    attempts: int = 1
    retry_after: float | None = None  # the receiver asked us to wait this long (HTTP 429)
    delays: tuple[float, ...] = ()  # backoff waits between attempts

    @property
    def delivered(self) -> bool:
        return self.status is Status.DELIVERED


class Channel(Protocol):
    name: str

    async def deliver(self, alert: Alert) -> DeliveryResult: ...

    async def close(self) -> None: ...


def _ok(channel: str, alert: Alert) -> DeliveryResult:
    return DeliveryResult(channel, alert.alert_id, Status.DELIVERED)


def _transient(channel: str, alert: Alert, reason: str, retry_after: float | None = None) -> DeliveryResult:
    return DeliveryResult(channel, alert.alert_id, Status.TRANSIENT, reason, retry_after=retry_after)


def _permanent(channel: str, alert: Alert, reason: str) -> DeliveryResult:
    return DeliveryResult(channel, alert.alert_id, Status.FAILED_PERMANENTLY, reason)


# ---------------------------------------------------------------- email

_ADDRESS = re.compile(r"^[^@\s<>()\[\],;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?$")


def message_id(alert_id: str, domain: str) -> str:
    """An RFC 5322 Message-ID from the alert id (``:`` and other specials become ``.``)."""
    left = re.sub(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+", ".", alert_id).strip(".")
    return f"<{left}@{domain}>"


class EmailChannel:
    """Plain-text UTF-8 email via stdlib :mod:`smtplib`, run in a worker thread.

    stdlib rather than an async SMTP client: alert volume is low, and it is one
    dependency fewer.  ``clock`` (epoch seconds) stamps the Date header.
    """

    name = EMAIL

    def __init__(
        self,
        host: str,
        port: int,
        sender: str,
        *,
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
        local_hostname: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.starttls, self.username, self.password = starttls, username, password
        self.timeout, self.ssl_context, self.local_hostname = timeout, ssl_context, local_hostname
        self.clock = clock
        self.envelope_from = parseaddr(sender)[1] or sender
        self.domain = self.envelope_from.rpartition("@")[2] or "keydesk.local"

    def build_message(self, alert: Alert, to: str) -> MIMEText:
        """A UTF-8 plain-text message.

        Built with the compat32 :class:`~email.header.Header` encoder on purpose:
        the modern ``email.policy.default`` folder drops the space between
        Chinese words at encoded-word boundaries ("办公厅 故障" arrives as
        "办公厅故障"), which garbles subjects.
        """
        msg = MIMEText(alert.text, "plain", "utf-8")
        msg["From"] = _encode_address(self.sender)
        msg["To"] = formataddr((alert.recipient.name, to), charset="utf-8")
        msg["Subject"] = Header(alert.subject, "utf-8")
        msg["Date"] = formatdate(self.clock(), usegmt=True)
        msg["Message-ID"] = _OneLine(message_id(alert.alert_id, self.domain))
        msg["X-Keydesk-Alert-Id"] = _OneLine(alert.alert_id)
        if alert.kind != "warning":
            msg["X-Priority"] = "1"
        return msg

    async def deliver(self, alert: Alert) -> DeliveryResult:
        to = (alert.recipient.email or "").strip()
        if not to:
            return _permanent(self.name, alert, "recipient has no email address")
        if not to.isascii() or not _ADDRESS.match(to):
            return _permanent(self.name, alert, f"invalid email address {to!r}")
        try:
            msg = self.build_message(alert, to)
            await asyncio.to_thread(self._send, msg, to)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (550, b""))
            return self._by_code(alert, code, f"recipient refused: {code} {_decode(text)}")
        except smtplib.SMTPResponseException as exc:  # incl. connect, auth, sender, data errors
            return self._by_code(alert, exc.smtp_code, f"SMTP {exc.smtp_code} {_decode(exc.smtp_error)}")
        except smtplib.SMTPNotSupportedError as exc:
            return _permanent(self.name, alert, f"server lacks a required extension: {exc}")
        except ssl.SSLCertVerificationError as exc:
            return _permanent(self.name, alert, f"TLS certificate rejected: {exc}")
        except (OSError, smtplib.SMTPException) as exc:  # refused, reset, timeout, DNS, TLS
            return _transient(self.name, alert, f"{type(exc).__name__}: {exc}"[:300])
        except ValueError as exc:  # header/address the email package refuses
            return _permanent(self.name, alert, f"cannot build message: {exc}")
        return _ok(self.name, alert)

    def _send(self, msg: MIMEText, to: str) -> None:
        with smtplib.SMTP(
            self.host, self.port, timeout=self.timeout, local_hostname=self.local_hostname
        ) as smtp:
            if self.starttls:
                smtp.starttls(context=self.ssl_context or ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(msg, from_addr=self.envelope_from, to_addrs=[to])

    def _by_code(self, alert: Alert, code: int, reason: str) -> DeliveryResult:
        """SMTP 4xx is 'try again later' by definition; 5xx is final."""
        if 400 <= code < 500:
            return _transient(self.name, alert, reason)
        return _permanent(self.name, alert, reason)

    async def close(self) -> None:
        """Nothing to release: one connection per message (alerts are rare)."""


class _OneLine:
    """A header value the compat32 folder must not fold: ids are compared as strings.

    Folding ``Message-ID:`` before ``<`` is legal but many readers then keep the
    leading space.  One line is fine up to RFC 5322's 998 characters.
    """

    def __init__(self, value: str) -> None:
        self.value = value

    def __str__(self) -> str:
        return self.value

    def encode(self, linesep: str = "\n", maxlinelen: int | None = None) -> str:
        return self.value


def _encode_address(value: str) -> str:
    """``名字 <a@b>`` with the display name RFC 2047-encoded (ASCII on the wire)."""
    name, addr = parseaddr(value)
    return formataddr((name, addr), charset="utf-8") if addr else value


def _decode(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


# ---------------------------------------------------------------- webhooks


def dingtalk_signed_url(url: str, secret: str, now: float) -> str:
    """DingTalk's 加签 scheme: HMAC-SHA256 over "timestamp\\nsecret", in the query string."""
    timestamp = str(int(now * 1000))
    digest = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
    sign = quote_plus(base64.b64encode(digest).decode())
    return f"{url}{'&' if '?' in url else '?'}timestamp={timestamp}&sign={sign}"


class WebhookChannel:
    """POSTs the alert as JSON to the recipient's webhook URL, in one of the robot formats.

    ``format="auto"`` picks the format from the URL's host.  ``secret`` enables
    DingTalk signing.  The HTTP session is created on first use, not here.
    """

    name = WEBHOOK

    def __init__(
        self,
        format: str = "auto",
        *,
        timeout: float = 10.0,
        secret: str | None = None,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if format != "auto" and format not in WEBHOOK_FORMATS:
            raise ValueError(f"webhook format must be auto or one of {', '.join(WEBHOOK_FORMATS)}")
        self.format, self.timeout, self.secret, self.clock = format, timeout, secret, clock
        self._session, self._own_session = session, session is None

    async def deliver(self, alert: Alert) -> DeliveryResult:
        url = (alert.recipient.webhook or "").strip()
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            return _permanent(self.name, alert, f"invalid webhook URL {url[:80]!r}")
        fmt = self.format if self.format != "auto" else webhook_format_for(url)
        if fmt == "dingtalk" and self.secret:
            url = dingtalk_signed_url(url, self.secret, self.clock())
        headers = {"Content-Type": "application/json; charset=utf-8", "Idempotency-Key": alert.alert_id}
        body = orjson.dumps(webhook_payload(fmt, alert))
        try:
            async with self._get_session().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as resp:
                answer = await resp.text(errors="replace")
                return self._classify(alert, fmt, resp.status, answer, resp.headers.get("Retry-After"))
        except TimeoutError:
            return _transient(self.name, alert, f"timed out after {self.timeout}s")
        except aiohttp.InvalidURL as exc:
            return _permanent(self.name, alert, f"invalid webhook URL: {exc}")
        except aiohttp.ClientError as exc:  # refused, reset, DNS, server disconnected
            return _transient(self.name, alert, f"{type(exc).__name__}: {exc}"[:300])

    def _classify(
        self, alert: Alert, fmt: str, status: int, answer: str, retry_after: str | None
    ) -> DeliveryResult:
        if status == 429:
            return _transient(self.name, alert, "HTTP 429 rate limited", _seconds(retry_after))
        if status == 408 or status >= 500:  # a 503 may also say when to come back
            return _transient(self.name, alert, f"HTTP {status} {answer[:200]}", _seconds(retry_after))
        if not 200 <= status < 300:
            return _permanent(self.name, alert, f"HTTP {status} {answer[:200]}")
        if fmt in ("wecom", "dingtalk"):
            try:
                errcode = orjson.loads(answer).get("errcode", 0)
            except (orjson.JSONDecodeError, AttributeError):
                return _permanent(self.name, alert, f"unreadable robot answer {answer[:200]!r}")
            if errcode not in (0, None):
                reason = f"robot errcode {errcode}: {answer[:200]}"
                if errcode in ROBOT_TRANSIENT_ERRCODES:
                    return _transient(self.name, alert, reason)
                return _permanent(self.name, alert, reason)
        return _ok(self.name, alert)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
        self._session = None if self._own_session else self._session


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None  # an HTTP-date: ignore, use our own backoff


# ---------------------------------------------------------------- log


class LogChannel:
    """Always available: the alert in the structured log, so it is visible even if nothing else works."""

    name = LOG

    def __init__(self, logger: Any = None) -> None:
        self.logger = logger

    async def deliver(self, alert: Alert) -> DeliveryResult:
        (self.logger or log).warning(
            "sla_alert",
            alert_id=alert.alert_id,
            customer_id=alert.customer_id,
            kind=alert.kind,
            recipient=alert.recipient.name,
            role=alert.recipient.role,
            copy=alert.copy,
            fallback=alert.fallback,
            subject=alert.subject,
            fields=dict(alert.fields),
        )
        return _ok(self.name, alert)

    async def close(self) -> None:
        """Nothing to release."""


# ---------------------------------------------------------------- dispatch


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff: waits base, base*m, base*m^2, ... capped at max_delay.

    ``attempts`` counts the first try.  Defaults (5 attempts: 1, 2, 4, 8 s) bound
    one alert's in-process retrying to ~15 s; longer outages are the retry
    topic's job, so a dead SMTP server does not stall the alert stream.
    """

    attempts: int = 5
    base_delay: float = 1.0
    max_delay: float = 30.0
    multiplier: float = 2.0

    def __post_init__(self) -> None:
        if self.attempts < 1 or self.base_delay < 0 or self.max_delay < 0 or self.multiplier < 1:
            raise ValueError("attempts >= 1, delays >= 0, multiplier >= 1")

    def delay(self, failed_attempts: int, retry_after: float | None = None) -> float:
        """The wait after the n-th failed attempt; a receiver's Retry-After wins if longer."""
        backoff = self.base_delay * self.multiplier ** (failed_attempts - 1)
        return min(self.max_delay, max(backoff, retry_after or 0.0))


@dataclass(frozen=True, slots=True)
class DispatchReport:
    """Per-channel outcomes for one alert; ``failures`` is what the caller must keep."""

    alert: Alert
    results: tuple[DeliveryResult, ...]

    @property
    def delivered(self) -> bool:
        return all(r.delivered for r in self.results)

    @property
    def failures(self) -> tuple[DeliveryResult, ...]:
        return tuple(r for r in self.results if not r.delivered)


class Dispatcher:
    """Sends each alert on every channel it lists, concurrently, retrying transient failures."""

    def __init__(
        self,
        channels: Iterable[Channel],
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.channels = {channel.name: channel for channel in channels}
        self.retry = retry or RetryPolicy()
        self._sleep = sleep

    async def dispatch(self, alert: Alert) -> DispatchReport:
        results = await asyncio.gather(*(self._deliver(name, alert) for name in alert.channels))
        return DispatchReport(alert, tuple(results))

    async def dispatch_all(self, alerts: Iterable[Alert]) -> list[DispatchReport]:
        return list(await asyncio.gather(*(self.dispatch(alert) for alert in alerts)))

    async def close(self) -> None:
        for channel in self.channels.values():
            await channel.close()

    async def _deliver(self, name: str, alert: Alert) -> DeliveryResult:
        logger = log.bind(alert_id=alert.alert_id, customer_id=alert.customer_id, channel=name)
        channel = self.channels.get(name)
        if channel is None:  # visible misconfiguration rather than a silently dropped route
            logger.error("alert_channel_not_configured")
            return _permanent(name, alert, f"no {name} channel configured")
        delays: list[float] = []
        for attempt in range(1, self.retry.attempts + 1):
            result = await self._attempt(channel, alert, logger)
            final = replace(result, attempts=attempt, delays=tuple(delays))
            if result.status is Status.DELIVERED:
                logger.info("alert_delivered", attempts=attempt)
                return final
            if result.status is not Status.TRANSIENT:
                logger.error("alert_failed_permanently", attempts=attempt, reason=result.reason)
                return final
            if attempt == self.retry.attempts:
                logger.error("alert_gave_up", attempts=attempt, reason=result.reason)
                return replace(final, status=Status.GAVE_UP)
            delay = self.retry.delay(attempt, result.retry_after)
            logger.warning("alert_retrying", attempt=attempt, delay=delay, reason=result.reason)
            delays.append(delay)
            await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, channel: Channel, alert: Alert, logger: Any) -> DeliveryResult:
        """One try; a bug in a channel becomes a permanent failure, never a lost alert."""
        try:
            return await channel.deliver(alert)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - report, keep the alert
            logger.exception("alert_channel_crashed")
            return _permanent(channel.name, alert, f"channel error {type(exc).__name__}: {exc}")
