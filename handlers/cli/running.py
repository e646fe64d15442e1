"""Commands that run a part of the desk in the foreground: ``up``, ``worker``, ``broker``, ``sink``."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from handlers.cli.shared import bootstrap, credentials_file, runtime_file, save_credentials
from streams.settings import Settings, SettingsError

SAMPLES = Path(__file__).with_name("samples") / "customers.jsonl"
#: the demo user the CLI is signed in as after `keydesk up --demo` (the README's commands are the hotline's)
DEMO_CLI_USER = "demo-hotline"


def first_run(settings: Settings, *, demo: bool, api: str) -> list[str]:
    """The first admin if there is no user (one-time password); with ``demo``, a user per role.

    Straight to the database (nobody could call the API before an admin exists).
    Returns the banner's lines: every password made, shown this once.  With
    ``demo`` the CLI is also signed in as :data:`DEMO_CLI_USER` (a personal
    token in ``credentials.json``), so that the README's commands work at once.
    """
    import secrets

    from handlers.identity.audit import Who
    from handlers.identity.bootstrap import demo_users, first_admin
    from handlers.identity.store import IdentityStore, prepare_database

    engine = prepare_database(settings.database_url)
    store = IdentityStore(engine)
    lines = []
    try:
        admin = first_admin(store)
        if admin is not None:
            lines.append(
                f"  first admin {admin.username}, one-time password {admin.password} "
                "(keydesk login --username admin: it asks for a new one)"
            )
        if demo:
            for made in demo_users(store):
                scope = f", staff id {made.staff_id}" if made.staff_id else ""
                scope += f", region {made.region}" if made.region else ""
                lines.append(
                    f"  demo user   {made.username:14} password {made.password}  ({made.roles[0]}{scope})"
                )
            if not credentials_file(settings).exists() and store.user(DEMO_CLI_USER) is not None:
                public, secret = store.create_token(
                    f"{DEMO_CLI_USER}-cli-{secrets.token_hex(3)}",
                    Who(actor="keydesk-up"),
                    username=DEMO_CLI_USER,
                )
                save_credentials(settings, api, {"username": DEMO_CLI_USER, "token": secret})
                lines.append(
                    f"  the CLI     signed in as {DEMO_CLI_USER} (token {public['id']}; "
                    "keydesk login to change)"
                )
    finally:
        engine.dispose()
    return lines


def cmd_up(args, settings: Settings) -> int:
    """Own broker (unless KEYDESK_KAFKA is set), worker and HTTP API, until Ctrl-C."""
    from handlers.cli.on_ready import announce_when_ready
    from handlers.composition import run_worker
    from handlers.local.kafka_broker import LocalKafka
    from sla_rules import load_rules
    from streams.log_config import configure_logging

    if not settings.kafka and settings.kafka_security_protocol != "PLAINTEXT":
        # the own broker has only a plaintext listener: the settings are meant for a cluster
        raise SettingsError(
            f"KEYDESK_KAFKA_SECURITY_PROTOCOL={settings.kafka_security_protocol} needs KEYDESK_KAFKA: "
            "the own local broker is plaintext"
        )
    configure_logging(settings.log_format, settings.log_level)
    load_rules(settings.sla_rules)  # an invalid rules file stops us before anything starts
    broker = None
    if not settings.kafka:
        broker = LocalKafka(partitions=settings.partitions)
        settings = replace(settings, kafka=broker.start())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    identity_lines = first_run(
        settings, demo=args.demo, api=f"http://{settings.http_host}:{settings.http_port}"
    )
    runtime = runtime_file(settings)
    runtime.write_text(
        json.dumps(
            {
                "kafka": settings.kafka,
                "pid": os.getpid(),
                "http": f"http://{settings.http_host}:{settings.http_port}",
            }
        )
    )
    try:
        run_worker(
            settings,
            on_ready=announce_when_ready(
                settings,
                samples=None if args.no_samples else SAMPLES,
                demo=args.demo,
                own_broker=broker is not None,
                identity_lines=identity_lines,
            ),
        )
    except SystemExit:
        pass
    finally:
        runtime.unlink(missing_ok=True)
        if broker is not None:
            broker.stop()
    return 0


def cmd_worker(args, settings: Settings) -> int:
    """A worker against KEYDESK_KAFKA (production: run one per host or container)."""
    from handlers.composition import run_worker
    from sla_rules import load_rules

    _ = settings.bootstrap_servers  # fail early and clearly without a broker address
    load_rules(settings.sla_rules)
    try:
        run_worker(settings)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def cmd_broker(args, settings: Settings) -> int:
    """Only the local Apache Kafka broker, in the foreground (for tools and benchmarks)."""
    import signal

    from handlers.local.kafka_broker import LocalKafka, LocalKafkaError
    from streams.log_config import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    stop_signals = {signal.SIGINT, signal.SIGTERM}
    # Blocked first: sigwait only receives signals that would not kill us outright.
    signal.pthread_sigmask(signal.SIG_BLOCK, stop_signals)
    # with --data-dir (and --port) the broker keeps its data and address across runs
    broker = LocalKafka(args.data_dir, partitions=settings.partitions, port=args.port)
    try:
        print(broker.start(), flush=True)
    except LocalKafkaError as exc:  # e.g. the port or the data dir is someone else's
        print(f"keydesk: {exc}", file=sys.stderr)
        return 2
    try:
        signal.sigwait(stop_signals)
    finally:
        broker.stop()
    return 0


def cmd_sink(args, settings: Settings) -> int:
    """Only the SQL sink (KEYDESK_DB), in a process of its own, until Ctrl-C."""
    from handlers.sink_runner import run_sink
    from streams.log_config import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    settings = replace(settings, kafka=bootstrap(settings, args.kafka))
    return run_sink(settings)
