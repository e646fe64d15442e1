"""Keydesk's settings: one typed object, read once from the environment.

Every knob has a local default so that ``keydesk up`` works on a fresh clone
(own broker, SQLite file).  A bad value fails at start with the variable named,
never later with a stack trace.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from streams.topic_rules import SLA_TOPIC_SUFFIX


class SettingsError(ValueError):
    """An environment variable holds a value keydesk cannot use."""


@dataclass(frozen=True)
class Settings:
    """Where keydesk connects and how it names things.  Field docs name the variable."""

    kafka: str | None = None  # KEYDESK_KAFKA: bootstrap "host:port[,host:port]"; None = own broker
    db_url: str = ""  # KEYDESK_DB: SQLAlchemy URL; default SQLite file in data_dir
    http_host: str = "127.0.0.1"  # KEYDESK_HTTP_HOST
    http_port: int = 6066  # KEYDESK_HTTP_PORT
    partitions: int = 4  # KEYDESK_PARTITIONS: partitions of keydesk's topics
    replication: int = 1  # KEYDESK_REPLICATION: replication factor of new topics
    app_id: str = "keydesk"  # KEYDESK_APP_ID: consumer group and changelog prefix
    topic_prefix: str = "keydesk"  # KEYDESK_TOPIC_PREFIX
    data_dir: Path = field(default_factory=lambda: Path("var"))  # KEYDESK_DATA_DIR
    timezone: str = "Asia/Shanghai"  # KEYDESK_TIMEZONE: how instants are shown (stored in UTC)
    log_format: str = "auto"  # KEYDESK_LOG_FORMAT: json | console | auto (console on a tty)
    log_level: str = "info"  # KEYDESK_LOG_LEVEL
    sla_rules: Path | None = None  # KEYDESK_SLA_RULES: rules file; None = the shipped default
    clock: str = "live"  # KEYDESK_CLOCK: live (wall clock) | replay (event time)
    alert_delivery: str = ""  # KEYDESK_ALERTS: send | log; default send live, log in replay
    sink: str = "on"  # KEYDESK_SINK: on = the worker also feeds KEYDESK_DB | off
    smtp: str | None = None  # KEYDESK_SMTP: host:port of the mail relay for alerts
    smtp_from: str = "keydesk@localhost"  # KEYDESK_SMTP_FROM
    smtp_starttls: bool = False  # KEYDESK_SMTP_STARTTLS=1
    smtp_user: str | None = None  # KEYDESK_SMTP_USER
    smtp_password: str | None = field(default=None, repr=False)  # KEYDESK_SMTP_PASSWORD
    secret: str | None = field(default=None, repr=False)  # KEYDESK_SECRET; None = <data_dir>/secret
    cookie_secure: bool = False  # KEYDESK_COOKIE_SECURE=1: the session cookie only over HTTPS (behind TLS)

    @property
    def events_topic(self) -> str:
        return f"{self.topic_prefix}.events"

    @property
    def sla_topic(self) -> str:
        return f"{self.topic_prefix}{SLA_TOPIC_SUFFIX}"  # streams/topic_rules.py knows it by this

    @property
    def alerts_failed_topic(self) -> str:
        return f"{self.topic_prefix}.alerts-failed"

    @property
    def sink_group(self) -> str:
        """The consumer group of the SQL sink (its own: it reads at its own pace)."""
        return f"{self.app_id}-sql-sink"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}.dead-letters"

    @property
    def database_url(self) -> str:
        return self.db_url or f"sqlite:///{(self.data_dir / 'keydesk.sqlite').resolve()}"

    @property
    def bootstrap_servers(self) -> list[str]:
        if not self.kafka:
            raise SettingsError("KEYDESK_KAFKA is not set and no local broker was started")
        return [s.strip() for s in self.kafka.split(",") if s.strip()]

    @property
    def signing_key(self) -> bytes:
        """The desk's secret (``streams/desk_signature.py``): KEYDESK_SECRET, else the data dir's.

        Without KEYDESK_SECRET, the file ``secret`` in the data directory, made
        at the first use (random, readable by its owner only): workers that
        share a data directory share it, as a local desk's do.  Workers on
        several machines need KEYDESK_SECRET, the same on each.  Made with a
        hard link so that two workers starting together cannot make two.
        """
        if self.secret:
            return self.secret.encode()
        path = self.data_dir / "secret"
        if not path.exists():
            self.data_dir.mkdir(parents=True, exist_ok=True)
            draft = path.with_name(f".secret.{os.getpid()}.{secrets.token_hex(4)}")
            draft.write_text(secrets.token_hex(32), encoding="ascii")
            draft.chmod(0o600)
            try:
                os.link(draft, path)
            except FileExistsError:
                pass  # another worker made it first: use that one
            finally:
                draft.unlink()
        key = path.read_text(encoding="ascii").strip()
        if len(key) < 32:
            raise SettingsError(f"{path}: the desk's secret is shorter than 32 characters")
        return key.encode()

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Read ``KEYDESK_*`` variables; ``overrides`` win (used by the CLI and tests)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}

        def text(name: str, attr: str) -> None:
            if env.get(name):
                values[attr] = env[name].strip()

        def number(name: str, attr: str, low: int, high: int) -> None:
            if env.get(name):
                try:
                    value = int(env[name])
                except ValueError:
                    raise SettingsError(f"{name}={env[name]!r} is not a whole number") from None
                if not low <= value <= high:
                    raise SettingsError(f"{name}={value} is outside {low}..{high}")
                values[attr] = value

        text("KEYDESK_KAFKA", "kafka")
        text("KEYDESK_DB", "db_url")
        text("KEYDESK_HTTP_HOST", "http_host")
        number("KEYDESK_HTTP_PORT", "http_port", 1, 65535)
        number("KEYDESK_PARTITIONS", "partitions", 1, 1024)
        number("KEYDESK_REPLICATION", "replication", 1, 16)
        text("KEYDESK_APP_ID", "app_id")
        text("KEYDESK_TOPIC_PREFIX", "topic_prefix")
        if env.get("KEYDESK_DATA_DIR"):
            values["data_dir"] = Path(env["KEYDESK_DATA_DIR"])
        if env.get("KEYDESK_SLA_RULES"):
            values["sla_rules"] = Path(env["KEYDESK_SLA_RULES"])
        text("KEYDESK_CLOCK", "clock")
        text("KEYDESK_ALERTS", "alert_delivery")
        text("KEYDESK_SINK", "sink")
        text("KEYDESK_SMTP", "smtp")
        text("KEYDESK_SMTP_FROM", "smtp_from")
        text("KEYDESK_SMTP_USER", "smtp_user")
        text("KEYDESK_SMTP_PASSWORD", "smtp_password")
        text("KEYDESK_SECRET", "secret")
        if env.get("KEYDESK_SMTP_STARTTLS"):
            values["smtp_starttls"] = env["KEYDESK_SMTP_STARTTLS"].lower() in ("1", "true", "yes")
        if env.get("KEYDESK_COOKIE_SECURE"):
            values["cookie_secure"] = env["KEYDESK_COOKIE_SECURE"].lower() in ("1", "true", "yes")
        text("KEYDESK_TIMEZONE", "timezone")
        text("KEYDESK_LOG_FORMAT", "log_format")
        text("KEYDESK_LOG_LEVEL", "log_level")
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values.get("alert_delivery"):
            # a replay of old events computes the same alerts but only logs them
            values["alert_delivery"] = "log" if values.get("clock") == "replay" else "send"
        settings = cls(**values)
        settings.validate()
        return settings

    def validate(self) -> None:
        try:
            _ = self.zone  # raises for a name that is not an IANA zone
        except (ZoneInfoNotFoundError, ValueError):
            raise SettingsError(f"KEYDESK_TIMEZONE={self.timezone!r} is not an IANA zone") from None
        if self.alert_delivery not in ("send", "log", ""):
            raise SettingsError(f"KEYDESK_ALERTS={self.alert_delivery!r}: use send or log")
        if self.smtp and not self.smtp.rpartition(":")[2].isdigit():
            raise SettingsError(f"KEYDESK_SMTP={self.smtp!r}: use host:port")
        if self.sink not in ("on", "off"):
            raise SettingsError(f"KEYDESK_SINK={self.sink!r}: use on or off")
        if self.secret is not None and len(self.secret) < 32:
            raise SettingsError("KEYDESK_SECRET is shorter than 32 characters")
        if self.clock not in ("live", "replay"):
            raise SettingsError(f"KEYDESK_CLOCK={self.clock!r}: use live or replay")
        if self.log_format not in ("json", "console", "auto"):
            raise SettingsError(f"KEYDESK_LOG_FORMAT={self.log_format!r}: use json, console or auto")
        if self.log_level.lower() not in ("debug", "info", "warning", "error"):
            raise SettingsError(f"KEYDESK_LOG_LEVEL={self.log_level!r}: use debug/info/warning/error")
