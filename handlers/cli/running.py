"""Commands that run a part of the desk in the foreground: ``up``, ``worker``, ``broker``, ``sink``."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from handlers.cli.shared import bootstrap, runtime_file
from streams.settings import Settings, SettingsError

SAMPLES = Path(__file__).with_name("samples") / "customers.jsonl"


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
