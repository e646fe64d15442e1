"""The ``keydesk`` command: bring the system up, log faults, read views, publish events."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import urllib.error
import urllib.request
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson

from handlers.reports.commands import add_report_parser
from streams.settings import Settings, SettingsError

SAMPLES = Path(__file__).with_name("samples") / "customers.jsonl"


def _runtime_file(settings: Settings) -> Path:
    return settings.data_dir / "runtime.json"


def _api_base(settings: Settings, given: str | None) -> str:
    """The API to talk to: --api, else what `keydesk up` recorded, else the configured port."""
    if given:
        return given.rstrip("/")
    if os.environ.get("KEYDESK_API"):
        return os.environ["KEYDESK_API"].rstrip("/")
    try:
        return json.loads(_runtime_file(settings).read_text())["http"]
    except (OSError, ValueError, KeyError):
        return f"http://{settings.http_host}:{settings.http_port}"


def _bootstrap(settings: Settings, given: str | None) -> str:
    if given or settings.kafka:
        return given or settings.kafka
    try:
        return json.loads(_runtime_file(settings).read_text())["kafka"]
    except (OSError, ValueError, KeyError):
        raise SettingsError("no Kafka to publish to: set KEYDESK_KAFKA, pass --kafka, "
                            "or run `keydesk up` first") from None


def _http(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"{}")
    except urllib.error.URLError as exc:
        raise SettingsError(f"cannot reach the keydesk API at {url}: {exc.reason}") from None


def _print_json(obj) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


# -- commands ----------------------------------------------------------------------

def cmd_up(args, settings: Settings) -> int:
    """Own broker (unless KEYDESK_KAFKA is set), worker and HTTP API, until Ctrl-C."""
    from handlers.local.kafka_broker import LocalKafka
    from handlers.cli.on_ready import announce_when_ready
    from handlers.composition import run_worker
    from sla_rules import load_rules
    from streams.log_config import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    load_rules(settings.sla_rules)  # an invalid rules file stops us before anything starts
    broker = None
    if not settings.kafka:
        broker = LocalKafka(partitions=settings.partitions)
        settings = replace(settings, kafka=broker.start())
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    runtime = _runtime_file(settings)
    runtime.write_text(json.dumps({"kafka": settings.kafka, "pid": os.getpid(),
                                   "http": f"http://{settings.http_host}:{settings.http_port}"}))
    try:
        run_worker(settings, on_ready=announce_when_ready(
            settings, samples=None if args.no_samples else SAMPLES, demo=args.demo,
            own_broker=broker is not None))
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

    settings.bootstrap_servers  # fail early and clearly without a broker address
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


def cmd_fault_log(args, settings: Settings) -> int:
    """Hotline: log a fault for a customer; prints the new fault id."""
    body = {"customer_id": args.customer, "severity": args.severity, "summary": args.summary,
            "service": args.service, "actor": args.actor, "source": args.source}
    for name in ("priority", "circuit_id", "location"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    base = _api_base(settings, args.api)
    status, answer = _http("POST", f"{base}/api/faults", body)
    if status != 202:
        print(f"refused ({status}): {answer.get('field')}: {answer.get('error')}",
              file=sys.stderr)
        return 2
    print(answer["fault_id"])
    if args.wait:
        status, view = _http("GET", f"{base}{answer['view']}?wait_for={answer['event_id']}")
        if status != 200:
            print(f"not in the view yet ({status}): {view.get('error')}", file=sys.stderr)
            return 1
        _print_json(view["open"]["fault"].get(answer["fault_id"]))
    return 0


def cmd_view(args, settings: Settings) -> int:
    """Show a customer's one-stop view."""
    status, view = _http("GET", f"{_api_base(settings, args.api)}/api/customers/"
                                f"{urllib.request.quote(args.customer_id)}/view")
    if status != 200:
        print(f"{status}: {view.get('error')}", file=sys.stderr)
        return 1
    _print_json(view)
    return 0


def cmd_publish(args, settings: Settings) -> int:
    """Publish a JSON-lines file of events; bad lines are listed and not sent."""
    from handlers.cli.publish_file import publish_lines

    with open(args.file, "rb") as lines:
        report = asyncio.run(publish_lines(_bootstrap(settings, args.kafka),
                                           settings.events_topic, lines,
                                           validate=not args.no_validate,
                                           secret=settings.signing_key))
    for number, reason in report.refused:
        print(f"{args.file}:{number}: {reason}", file=sys.stderr)
    print(f"sent {report.sent} event(s), refused {len(report.refused)}")
    return 1 if report.refused else 0


def cmd_sla_check(args, settings: Settings) -> int:
    """Validate an SLA rules file; every problem is printed as FILE:LINE:where: reason.

    Warnings (e.g. a kind without targets: its items get no clock) are printed
    the same way, prefixed ``warning:``, and do not fail the check.
    """
    from sla_rules import check_rules_file, load_rules

    problems = check_rules_file(args.file)
    for problem in problems:
        print(str(problem), file=sys.stderr)
    if problems:
        print(f"{args.file}: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    rules = load_rules(args.file)
    for warning in rules.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.file}: ok, version {rules.version}, {len(rules.rules)} rules, "
          f"{len(rules.policies)} policies, {len(rules.calendars)} calendars"
          + (f", {len(rules.warnings)} warning(s)" if rules.warnings else ""))
    return 0


def _item_arg(args) -> tuple[str, str]:
    for kind in ("fault", "ticket", "order"):
        if getattr(args, kind):
            return kind, getattr(args, kind)
    raise SettingsError("name the item: --fault ID, --ticket ID or --order ID")


def cmd_sla_explain(args, settings: Settings) -> int:
    """How each SLA deadline of an item was derived, from the running system or a file."""
    kind, item_id = _item_arg(args)
    if args.events:
        return _explain_offline(args, settings, kind, item_id)
    query = f"?at={urllib.request.quote(args.at)}" if args.at else ""
    status, answer = _http("GET", f"{_api_base(settings, args.api)}/api/customers/"
                                  f"{urllib.request.quote(args.customer)}/items/{kind}/"
                                  f"{urllib.request.quote(item_id)}/sla{query}")
    if status != 200:
        print(f"{status}: {answer.get('field')}: {answer.get('error')}", file=sys.stderr)
        return 1
    print(answer["explanation"])
    return 0


def _explain_offline(args, settings: Settings, kind: str, item_id: str) -> int:
    """Fold a JSON-lines event file (pure, no broker) and explain one item."""
    from schemas.envelope import InvalidEvent, decode_lines, parse_instant
    from sla_rules import evaluate, format_explanation, load_rules
    from streams.customer_view import find_item, fold, new_view
    from streams.item_sla import clock_history, item_facts

    view = new_view(args.customer)
    with open(args.events, "rb") as lines:
        for number, _, event in decode_lines(lines):
            if isinstance(event, InvalidEvent):
                print(f"{args.events}:{number}: skipped: {event}", file=sys.stderr)
            elif event.customer_id == args.customer:
                fold(view, event)
    item = find_item(view, kind, item_id)
    if item is None:
        print(f"no {kind} {item_id} for customer {args.customer} in {args.events}",
              file=sys.stderr)
        return 1
    rules = load_rules(settings.sla_rules)
    history = clock_history(item)
    at = parse_instant(args.at, "--at") if args.at else max(r["occurred_at"] for r in history)
    facts = item_facts(view, item)
    print(format_explanation(facts, evaluate(facts, history, rules, at), rules))
    return 0


def cmd_sla_ack(args, settings: Settings) -> int:
    """A manager acknowledges an escalation: the rest of that ladder stops."""
    kind, item_id = _item_arg(args)
    body = {"metric": args.metric, "actor": args.actor}
    if args.note:
        body["note"] = args.note
    if args.cycle:
        body["cycle"] = args.cycle
    status, answer = _http("POST", f"{_api_base(settings, args.api)}/api/customers/"
                                   f"{urllib.request.quote(args.customer)}/items/{kind}/"
                                   f"{urllib.request.quote(item_id)}/acknowledge", body)
    if status != 202:
        print(f"refused ({status}): {answer.get('field')}: {answer.get('error')}",
              file=sys.stderr)
        return 2
    print(f"acknowledged {kind} {item_id} {answer['metric']} (cycle {answer['cycle']})")
    return 0


def cmd_queue(args, settings: Settings) -> int:
    """The dispatch queue: open items across customers, most urgent first."""
    status, answer = _http("GET", f"{_api_base(settings, args.api)}/api/dispatch-queue"
                                  f"?limit={args.limit}")
    if status != 200:
        print(f"{status}: {answer.get('error')}", file=sys.stderr)
        return 1
    if args.json:
        _print_json(answer)
        return 0
    print(f"{'to breach':>10}  {'tier':9} {'prio':5} {'item':16} {'metric':9} customer")
    for row in answer["items"]:
        left = row["seconds_to_breach"]
        when = "paused" if left is None else (f"{left / 60:+.0f} min" if abs(left) >= 60
                                              else f"{left:+.0f} s")
        print(f"{when:>10}  {row['tier'] or '?':9} {row['priority'] or '':5} "
              f"{row['kind'][0].upper()} {row['id']:14} {row['metric'] or '':9} "
              f"{row['customer'] or row['customer_id']}")
    return 0


def cmd_replay(args, settings: Settings) -> int:
    """Replay a JSON-lines event file in event time; print the SLA step events it yields."""
    from sla_rules import load_rules
    from streams.replay import replay

    with open(args.file, "rb") as lines:
        result = replay(lines, load_rules(settings.sla_rules), partitions=settings.partitions)
    out = open(args.out, "wb") if args.out else sys.stdout.buffer
    try:
        for step in result.steps:
            out.write(step.to_bytes() + b"\n")
    finally:
        if args.out:
            out.close()
        else:
            out.flush()
    for number, reason in result.refused:
        print(f"{args.file}:{number}: skipped: {reason}", file=sys.stderr)
    print(f"replayed {result.events} event(s) of {len(result.views)} customer(s): "
          f"{len(result.steps)} SLA step event(s)", file=sys.stderr)
    return 0


def cmd_schemas(args, settings: Settings) -> int:
    """Write or check the published JSON Schema files."""
    from schemas.json_schema import SCHEMA_DIR, render_all, write_all

    if args.action == "write":
        print(f"wrote {len(write_all())} schema files to {SCHEMA_DIR}")
        return 0
    stale = [name for name, content in render_all().items()
             if not (SCHEMA_DIR / name).exists() or (SCHEMA_DIR / name).read_bytes() != content]
    for name in stale:
        print(f"out of date: {SCHEMA_DIR / name}", file=sys.stderr)
    return 1 if stale else 0


def cmd_sink(args, settings: Settings) -> int:
    """Only the SQL sink (KEYDESK_DB), in a process of its own, until Ctrl-C."""
    from handlers.sink_runner import run_sink
    from streams.log_config import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    settings = replace(settings, kafka=_bootstrap(settings, args.kafka))
    return run_sink(settings)


def cmd_db(args, settings: Settings) -> int:
    """The reporting database: apply migrations, or show revision, rows and sink lag."""
    from handlers.reports.status import database_status
    from schemas.reporting_db import open_engine, upgrade

    engine = open_engine(settings.database_url)
    if args.action == "upgrade":
        upgrade(engine)
        print(f"{engine.url.render_as_string()}: schema up to date")
        return 0
    kafka = args.kafka or settings.kafka
    if kafka is None:
        try:
            kafka = _bootstrap(settings, None)
        except SettingsError:
            kafka = None  # lag needs Kafka; the rest is still worth showing
    status = asyncio.run(database_status(engine, replace(settings, kafka=kafka)))
    _print_json(status)
    return 0 if status["revision"] == status["head"] else 1


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="keydesk", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help=cmd_up.__doc__)
    up.add_argument("--demo", action="store_true", help="log a sample fault and show the view")
    up.add_argument("--no-samples", action="store_true", help="do not load sample customers")
    up.set_defaults(run=cmd_up)
    sub.add_parser("worker", help=cmd_worker.__doc__).set_defaults(run=cmd_worker)
    broker = sub.add_parser("broker", help=cmd_broker.__doc__)
    broker.add_argument("--data-dir", dest="data_dir", type=Path, metavar="DIR",
                        help="keep the broker's data here across runs (default: a temporary "
                             "directory, removed when it stops)")
    broker.add_argument("--port", type=int, metavar="N",
                        help="listen on this port (default: a free one)")
    broker.set_defaults(run=cmd_broker)

    fault = sub.add_parser("fault", help="faults").add_subparsers(dest="action", required=True)
    log = fault.add_parser("log", help=cmd_fault_log.__doc__)
    log.add_argument("--customer", required=True)
    log.add_argument("--severity", required=True, choices=["critical", "major", "minor", "warning"])
    log.add_argument("--summary", required=True)
    log.add_argument("--service", required=True)
    log.add_argument("--priority", choices=["P1", "P2", "P3", "P4"])
    log.add_argument("--circuit-id", dest="circuit_id")
    log.add_argument("--location")
    log.add_argument("--actor", default=os.environ.get("USER", "hotline"))
    log.add_argument("--source", default="hotline")
    log.add_argument("--wait", action="store_true", help="wait for it and print it from the view")
    log.add_argument("--api", help="API base URL (default: the running `keydesk up`)")
    log.set_defaults(run=cmd_fault_log)

    view = sub.add_parser("view", help=cmd_view.__doc__)
    view.add_argument("customer_id")
    view.add_argument("--api")
    view.set_defaults(run=cmd_view)

    pub = sub.add_parser("publish", help=cmd_publish.__doc__)
    pub.add_argument("file")
    pub.add_argument("--kafka", help="bootstrap address (default KEYDESK_KAFKA or `keydesk up`'s)")
    pub.add_argument("--no-validate", action="store_true",
                     help="send invalid lines too (they end in the dead-letter topic)")
    pub.set_defaults(run=cmd_publish)

    sla = sub.add_parser("sla", help="SLA rules").add_subparsers(dest="action", required=True)
    check = sla.add_parser("check", help=cmd_sla_check.__doc__)
    check.add_argument("file")
    check.set_defaults(run=cmd_sla_check)
    explain = sla.add_parser("explain", help=cmd_sla_explain.__doc__)
    explain.add_argument("--customer", required=True)
    for kind in ("fault", "ticket", "order"):
        explain.add_argument(f"--{kind}", metavar="ID")
    explain.add_argument("--at", help="instant to evaluate at (ISO-8601 with offset); "
                                      "default now, or the item's last event with --events")
    explain.add_argument("--events", help="explain from a JSON-lines event file, offline")
    explain.add_argument("--api")
    explain.set_defaults(run=cmd_sla_explain)

    ack = sla.add_parser("ack", help=cmd_sla_ack.__doc__)
    ack.add_argument("--customer", required=True)
    for kind in ("fault", "ticket", "order"):
        ack.add_argument(f"--{kind}", metavar="ID")
    ack.add_argument("--metric", required=True,
                     choices=["response", "restore", "resolve", "provision", "acceptance", "revisit"])
    ack.add_argument("--cycle", type=int)
    ack.add_argument("--note")
    ack.add_argument("--actor", default=os.environ.get("USER", "manager"))
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
    except (SettingsError, InvalidEvent) as exc:
        print(f"keydesk: {exc}", file=sys.stderr)
        return 2
    except KafkaConnectionError as exc:
        print(f"keydesk: cannot reach Kafka: {exc}", file=sys.stderr)
        return 2
    except RulesError as exc:
        print(f"keydesk: refusing to start, the SLA rules file is invalid:\n{exc}",
              file=sys.stderr)
        return 2
