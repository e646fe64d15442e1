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


#: Kafka's own names for how a client connects (``security.protocol``).
KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
#: The SASL mechanisms keydesk's clients speak: a user name and a password.
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


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
    # How every Kafka client of keydesk (worker, sink, publisher, CLI) connects;
    # streams/kafka_security.py turns these into the clients' options.
    kafka_security_protocol: str = "PLAINTEXT"  # KEYDESK_KAFKA_SECURITY_PROTOCOL: one of KAFKA_PROTOCOLS
    kafka_ca_file: Path | None = None  # KEYDESK_KAFKA_CA_FILE: PEM CAs to trust; None = the system's
    kafka_cert_file: Path | None = None  # KEYDESK_KAFKA_CERT_FILE: PEM client certificate (mutual TLS)
    kafka_key_file: Path | None = None  # KEYDESK_KAFKA_KEY_FILE: its PEM private key (else in the cert file)
    kafka_key_password: str | None = field(default=None, repr=False)  # KEYDESK_KAFKA_KEY_PASSWORD
    kafka_sasl_mechanism: str | None = None  # KEYDESK_KAFKA_SASL_MECHANISM: one of SASL_MECHANISMS
    kafka_sasl_username: str | None = None  # KEYDESK_KAFKA_SASL_USERNAME
    # KEYDESK_KAFKA_SASL_PASSWORD, or KEYDESK_KAFKA_SASL_PASSWORD_FILE (read at start)
    kafka_sasl_password: str | None = field(default=None, repr=False)

    @property
    def events_topic(self) -> str:
        return f"{self.topic_prefix}.events"

    @property
    def sla_topic(self) -> str:
        return f"{self.topic_prefix}{SLA_TOPIC_SUFFIX}"  # streams/topic_rules.py knows it by this

    @property
    def rules_topic(self) -> str:
        """The SLA rules' revisions (``streams/rules_revisions.py``): one partition, compacted."""
        return f"{self.topic_prefix}.rules"

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
        _read_kafka_security(env, values)
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
        self._validate_kafka_security()
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

    def _validate_kafka_security(self) -> None:
        """Refuse a Kafka security combination that cannot work, naming the variable.

        What a protocol does not use is refused rather than ignored: a CA file
        under PLAINTEXT or a password under SSL is a mistake that would otherwise
        show only as a broker refusing keydesk.  The certificate files are loaded
        here (streams/kafka_security.py), so a bad PEM stops the start too.
        """
        protocol = self.kafka_security_protocol
        if protocol not in KAFKA_PROTOCOLS:
            raise SettingsError(
                f"KEYDESK_KAFKA_SECURITY_PROTOCOL={protocol!r}: use one of {', '.join(KAFKA_PROTOCOLS)}"
            )
        tls, sasl = protocol in ("SSL", "SASL_SSL"), protocol.startswith("SASL_")
        tls_files = {
            "KEYDESK_KAFKA_CA_FILE": self.kafka_ca_file,
            "KEYDESK_KAFKA_CERT_FILE": self.kafka_cert_file,
            "KEYDESK_KAFKA_KEY_FILE": self.kafka_key_file,
        }
        for name, path in tls_files.items():
            if path is None:
                continue
            if not tls:
                raise SettingsError(
                    f"{name} is set but KEYDESK_KAFKA_SECURITY_PROTOCOL={protocol}: use SSL or SASL_SSL"
                )
            if not path.is_file():
                raise SettingsError(f"{name}={str(path)!r}: no such file")
        if self.kafka_key_file is not None and self.kafka_cert_file is None:
            raise SettingsError("KEYDESK_KAFKA_KEY_FILE is set without KEYDESK_KAFKA_CERT_FILE")
        if self.kafka_key_password is not None and self.kafka_cert_file is None:
            raise SettingsError("KEYDESK_KAFKA_KEY_PASSWORD is set without KEYDESK_KAFKA_CERT_FILE")
        sasl_values = {
            "KEYDESK_KAFKA_SASL_MECHANISM": self.kafka_sasl_mechanism,
            "KEYDESK_KAFKA_SASL_USERNAME": self.kafka_sasl_username,
            "KEYDESK_KAFKA_SASL_PASSWORD": self.kafka_sasl_password,
        }
        for name, value in sasl_values.items():
            if sasl and value is None:
                raise SettingsError(
                    f"KEYDESK_KAFKA_SECURITY_PROTOCOL={protocol} needs {name}"
                    + ("" if "PASSWORD" not in name else " (or KEYDESK_KAFKA_SASL_PASSWORD_FILE)")
                )
            if not sasl and value is not None:
                raise SettingsError(
                    f"{name} is set but KEYDESK_KAFKA_SECURITY_PROTOCOL={protocol}: "
                    "use SASL_SSL or SASL_PLAINTEXT"
                )
        if sasl and self.kafka_sasl_mechanism not in SASL_MECHANISMS:
            raise SettingsError(
                f"KEYDESK_KAFKA_SASL_MECHANISM={self.kafka_sasl_mechanism!r}: "
                f"use one of {', '.join(SASL_MECHANISMS)}"
            )
        if tls:
            from streams.kafka_security import ssl_context

            ssl_context(self)  # raises SettingsError naming the file it cannot use


def _read_kafka_security(env: Mapping[str, str], values: dict[str, Any]) -> None:
    """The ``KEYDESK_KAFKA_*`` security variables into ``values`` (checked by ``validate``).

    Protocol and mechanism are Kafka's names, accepted in any case.  The password
    may come from a file (a mounted secret), read here once; not both.
    """
    for name, attr in (
        ("KEYDESK_KAFKA_SECURITY_PROTOCOL", "kafka_security_protocol"),
        ("KEYDESK_KAFKA_SASL_MECHANISM", "kafka_sasl_mechanism"),
    ):
        if env.get(name, "").strip():
            values[attr] = env[name].strip().upper()
    for name, attr in (
        ("KEYDESK_KAFKA_CA_FILE", "kafka_ca_file"),
        ("KEYDESK_KAFKA_CERT_FILE", "kafka_cert_file"),
        ("KEYDESK_KAFKA_KEY_FILE", "kafka_key_file"),
    ):
        if env.get(name, "").strip():
            values[attr] = Path(env[name].strip())
    if env.get("KEYDESK_KAFKA_SASL_USERNAME", "").strip():
        values["kafka_sasl_username"] = env["KEYDESK_KAFKA_SASL_USERNAME"].strip()
    # secrets are taken as given: a password may begin or end with a space
    if env.get("KEYDESK_KAFKA_KEY_PASSWORD"):
        values["kafka_key_password"] = env["KEYDESK_KAFKA_KEY_PASSWORD"]
    password, password_file = (
        env.get("KEYDESK_KAFKA_SASL_PASSWORD"),
        env.get("KEYDESK_KAFKA_SASL_PASSWORD_FILE"),
    )
    if password and password_file:
        raise SettingsError("set KEYDESK_KAFKA_SASL_PASSWORD or KEYDESK_KAFKA_SASL_PASSWORD_FILE, not both")
    if password_file:
        try:
            text = Path(password_file).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SettingsError(f"KEYDESK_KAFKA_SASL_PASSWORD_FILE={password_file!r}: {exc}") from None
        password = text.removesuffix("\n").removesuffix("\r")  # the newline an editor or echo adds
        if not password:
            raise SettingsError(f"KEYDESK_KAFKA_SASL_PASSWORD_FILE={password_file!r} is empty")
    if password:
        values["kafka_sasl_password"] = password
