"""The ``keydesk`` command: bring the system up, log faults and take every step of them, tickets
and orders, read views, publish events."""

# One module per command group (``running``, ``desk``, ``items``, ``customers``, ``sla``, ``upkeep``; the
# report commands live with the reports, ``handlers/reports/commands.py``) and
# ``shared`` for what they all need.  This module is the command table and the
# console entry point (``keydesk = "handlers.cli:main"``).

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from handlers.cli.customers import add_customer_parsers
from handlers.cli.desk import cmd_fault_log, cmd_publish, cmd_queue, cmd_view
from handlers.cli.identity import add_identity_parsers
from handlers.cli.items import add_item_parsers
from handlers.cli.running import cmd_broker, cmd_sink, cmd_up, cmd_worker
from handlers.cli.shared import Refused, refused
from handlers.cli.sla import cmd_replay, cmd_sla_ack, cmd_sla_check, cmd_sla_explain
from handlers.cli.upkeep import cmd_db, cmd_schemas
from handlers.reports.commands import add_report_parser
from streams.settings import Settings, SettingsError
from streams.vocabulary import FAULT_SEVERITIES, ITEM_KINDS, PRIORITIES, SLA_METRICS

__all__ = ["main", "parser"]


def _item_parser(subparsers, name: str, command) -> argparse.ArgumentParser:
    """A command about one item: ``--customer`` and one of ``--fault/--ticket/--order ID``."""
    item = subparsers.add_parser(name, help=command.__doc__)
    item.add_argument("--customer", required=True)
    for kind in ITEM_KINDS:
        item.add_argument(f"--{kind}", metavar="ID")
    return item


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keydesk", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help=cmd_up.__doc__)
    up.add_argument("--demo", action="store_true", help="log a sample fault and show the view")
    up.add_argument("--no-samples", action="store_true", help="do not load sample customers")
    up.set_defaults(run=cmd_up)
    sub.add_parser("worker", help=cmd_worker.__doc__).set_defaults(run=cmd_worker)
    broker = sub.add_parser("broker", help=cmd_broker.__doc__)
    broker.add_argument(
        "--data-dir",
        dest="data_dir",
        type=Path,
        metavar="DIR",
        help="keep the broker's data here across runs (default: a temporary "
        "directory, removed when it stops)",
    )
    broker.add_argument("--port", type=int, metavar="N", help="listen on this port (default: a free one)")
    broker.set_defaults(run=cmd_broker)

    fault = sub.add_parser("fault", help="faults").add_subparsers(dest="action", required=True)
    log = fault.add_parser("log", help=cmd_fault_log.__doc__)
    log.add_argument("--customer", required=True)
    log.add_argument("--severity", required=True, choices=FAULT_SEVERITIES)
    log.add_argument("--summary", required=True)
    log.add_argument("--service", required=True)
    log.add_argument("--priority", choices=PRIORITIES)
    log.add_argument("--circuit-id", dest="circuit_id")
    log.add_argument("--location")
    log.add_argument("--wait", action="store_true", help="wait for it and print it from the view")
    log.add_argument("--api", help="API base URL (default: the running `keydesk up`)")
    log.set_defaults(run=cmd_fault_log)
    ticket = sub.add_parser("ticket", help="tickets").add_subparsers(dest="action", required=True)
    order = sub.add_parser("order", help="orders").add_subparsers(dest="action", required=True)
    add_item_parsers({"fault": fault, "ticket": ticket, "order": order})

    add_customer_parsers(sub)

    view = sub.add_parser("view", help=cmd_view.__doc__)
    view.add_argument("customer_id")
    view.add_argument("--api")
    view.set_defaults(run=cmd_view)

    pub = sub.add_parser("publish", help=cmd_publish.__doc__)
    pub.add_argument("file")
    pub.add_argument("--kafka", help="bootstrap address (default KEYDESK_KAFKA or `keydesk up`'s)")
    pub.add_argument(
        "--no-validate",
        action="store_true",
        help="send invalid lines too (they end in the dead-letter topic)",
    )
    pub.set_defaults(run=cmd_publish)

    sla = sub.add_parser("sla", help="SLA rules").add_subparsers(dest="action", required=True)
    check = sla.add_parser("check", help=cmd_sla_check.__doc__)
    check.add_argument("file")
    check.set_defaults(run=cmd_sla_check)
    explain = _item_parser(sla, "explain", cmd_sla_explain)
    explain.add_argument(
        "--at",
        help="instant to evaluate at (ISO-8601 with offset); "
        "default now, or the item's last event with --events",
    )
    explain.add_argument("--events", help="explain from a JSON-lines event file, offline")
    explain.add_argument("--api")
    explain.set_defaults(run=cmd_sla_explain)

    ack = _item_parser(sla, "ack", cmd_sla_ack)
    ack.add_argument("--metric", required=True, choices=SLA_METRICS)
    ack.add_argument("--cycle", type=int)
    ack.add_argument("--note")
    ack.add_argument("--api")
    ack.set_defaults(run=cmd_sla_ack)

    queue = sub.add_parser("queue", help=cmd_queue.__doc__)
    queue.add_argument("--limit", type=int, default=30)
    queue.add_argument("--json", action="store_true")
    queue.add_argument("--api")
    queue.set_defaults(run=cmd_queue)

    rep = sub.add_parser("replay", help=cmd_replay.__doc__)
    rep.add_argument("file")
    rep.add_argument("--out", help="write the step events here instead of stdout")
    rep.set_defaults(run=cmd_replay)

    sink = sub.add_parser("sink", help=cmd_sink.__doc__)
    sink.add_argument("--kafka", help="bootstrap servers (default: KEYDESK_KAFKA or `up`'s)")
    sink.set_defaults(run=cmd_sink)
    db = sub.add_parser("db", help=cmd_db.__doc__)
    db.add_argument("action", choices=["upgrade", "status"])
    db.add_argument("--kafka", help="bootstrap servers, for the sink's lag")
    db.set_defaults(run=cmd_db)

    add_identity_parsers(sub)
    add_report_parser(sub)
    schemas = sub.add_parser("schemas", help=cmd_schemas.__doc__)
    schemas.add_argument("action", choices=["write", "check"])
    schemas.set_defaults(run=cmd_schemas)
    return p


def main(argv: list[str] | None = None) -> int:
    from aiokafka.errors import KafkaConnectionError

    from schemas.envelope import InvalidEvent
    from sla_rules import RulesError

    args = parser().parse_args(argv)
    try:
        return args.run(args, Settings.from_env())
    except Refused as exc:
        return refused(exc.status, exc.answer)
    except (SettingsError, InvalidEvent) as exc:
        print(f"keydesk: {exc}", file=sys.stderr)
        return 2
    except KafkaConnectionError as exc:
        print(f"keydesk: cannot reach Kafka: {exc}", file=sys.stderr)
        return 2
    except RulesError as exc:
        print(f"keydesk: refusing to start, the SLA rules file is invalid:\n{exc}", file=sys.stderr)
        return 2
