"""How keydesk's Kafka clients authenticate and encrypt: the one translation of the settings.

Every client keydesk makes (the faust worker's consumer, producer and the
admin requests it makes with them to create changelog topics; the SQL sink's
consumer and dead-letter producer; the CLI's publisher; the topic and lag
checks) takes its security from here, so a secured cluster is configured once,
with the ``KEYDESK_KAFKA_*`` variables of :class:`~streams.settings.Settings`:

* ``PLAINTEXT`` (the default, and the local broker's): nothing;
* ``SSL``: TLS, the broker's certificate checked against ``KEYDESK_KAFKA_CA_FILE``
  (or the system's trusted CAs) *and its host name*; with
  ``KEYDESK_KAFKA_CERT_FILE`` a client certificate too (mutual TLS, the
  principal is the certificate's subject);
* ``SASL_SSL``: the same TLS plus a user name and password (PLAIN or SCRAM);
* ``SASL_PLAINTEXT``: SASL without TLS (a PLAIN password then crosses the
  network in the clear: for networks that are private by other means).

No Kafka client library is imported: the result is plain keyword arguments
(aiokafka's names) and an :class:`ssl.SSLContext`; ``streams/app.py`` wraps the
same for faust.
"""

from __future__ import annotations

import ssl
from typing import Any

from streams.settings import Settings, SettingsError


def uses_tls(settings: Settings) -> bool:
    return settings.kafka_security_protocol in ("SSL", "SASL_SSL")


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of a client (``None`` without TLS); certificates and host names are checked.

    A new context per call: each client holds its own, and the files are read
    when a client is made, so a renewed certificate is used by the next start.
    """
    if not uses_tls(settings):
        return None
    try:
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH,
            cafile=None if settings.kafka_ca_file is None else str(settings.kafka_ca_file),
        )
    except (ssl.SSLError, OSError) as exc:
        raise SettingsError(
            f"KEYDESK_KAFKA_CA_FILE={str(settings.kafka_ca_file)!r}: {_reason(exc)}"
        ) from None
    if settings.kafka_cert_file is not None:
        try:
            context.load_cert_chain(
                str(settings.kafka_cert_file),
                None if settings.kafka_key_file is None else str(settings.kafka_key_file),
                password=settings.kafka_key_password,
            )
        except (ssl.SSLError, OSError) as exc:
            files = f"KEYDESK_KAFKA_CERT_FILE={str(settings.kafka_cert_file)!r}"
            if settings.kafka_key_file is not None:
                files += f", KEYDESK_KAFKA_KEY_FILE={str(settings.kafka_key_file)!r}"
            raise SettingsError(
                f"{files}: cannot load the client certificate and its key: {_reason(exc)}"
            ) from None
    return context


def client_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka's ``AIOKafkaProducer``, ``AIOKafkaConsumer`` and admin client."""
    options: dict[str, Any] = {"security_protocol": settings.kafka_security_protocol}
    if uses_tls(settings):
        options["ssl_context"] = ssl_context(settings)
    if settings.kafka_security_protocol.startswith("SASL_"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism
        options["sasl_plain_username"] = settings.kafka_sasl_username
        options["sasl_plain_password"] = settings.kafka_sasl_password
    return options


def describe(settings: Settings) -> str:
    """How keydesk connects, for logs and the start banner (never the password)."""
    words = [settings.kafka_security_protocol]
    if settings.kafka_security_protocol.startswith("SASL_"):
        words.append(f"{settings.kafka_sasl_mechanism} as {settings.kafka_sasl_username}")
    if settings.kafka_cert_file is not None:
        words.append("with a client certificate")
    return " ".join(words)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError) and exc.reason:
        return f"{exc.reason} ({exc.library or 'ssl'})"
    return str(exc.strerror if isinstance(exc, OSError) and exc.strerror else exc)
