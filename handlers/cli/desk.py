"""Commands the hotline and dispatchers use against a running desk: faults, views, the queue, publishing."""

from __future__ import annotations

import asyncio
import sys
import urllib.request

from handlers.cli.shared import api_base, ask, bootstrap, http, print_json
from streams.settings import Settings


def cmd_fault_log(args, settings: Settings) -> int:
    """Hotline: log a fault for a customer; prints the new fault id."""
    body = {
        "customer_id": args.customer,
        "severity": args.severity,
        "summary": args.summary,
        "service": args.service,
    }
    for name in ("priority", "circuit_id", "location"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    base = api_base(settings, args.api)
    answer = ask("POST", f"{base}/api/faults", body, expect=202)
    print(answer["fault_id"])
    if args.wait:
        status, view = http("GET", f"{base}{answer['view']}?wait_for={answer['event_id']}")
        if status != 200:
            print(f"not in the view yet ({status}): {view.get('error')}", file=sys.stderr)
            return 1
        print_json(view["open"]["fault"].get(answer["fault_id"]))
    return 0


def cmd_view(args, settings: Settings) -> int:
    """Show a customer's one-stop view."""
    view = ask(
        "GET", f"{api_base(settings, args.api)}/api/customers/{urllib.request.quote(args.customer_id)}/view"
    )
    print_json(view)
    return 0


def cmd_publish(args, settings: Settings) -> int:
    """Publish a JSON-lines file of events; bad lines are listed and not sent."""
    from handlers.cli.publish_file import publish_lines
    from streams.kafka_security import client_options

    with open(args.file, "rb") as lines:
        report = asyncio.run(
            publish_lines(
                bootstrap(settings, args.kafka),
                settings.events_topic,
                lines,
                validate=not args.no_validate,
                secret=settings.signing_key,
                security=client_options(settings),
            )
        )
    for number, reason in report.refused:
        print(f"{args.file}:{number}: {reason}", file=sys.stderr)
    print(f"sent {report.sent} event(s), refused {len(report.refused)}")
    return 1 if report.refused else 0


def cmd_queue(args, settings: Settings) -> int:
    """The dispatch queue: open items across customers, most urgent first."""
    answer = ask("GET", f"{api_base(settings, args.api)}/api/dispatch-queue?limit={args.limit}")
    if args.json:
        print_json(answer)
        return 0
    print(f"{'to breach':>10}  {'tier':9} {'prio':5} {'item':16} {'metric':9} customer")
    for row in answer["items"]:
        left = row["seconds_to_breach"]
        when = (
            "paused" if left is None else (f"{left / 60:+.0f} min" if abs(left) >= 60 else f"{left:+.0f} s")
        )
        print(
            f"{when:>10}  {row['tier'] or '?':9} {row['priority'] or '':5} "
            f"{row['kind'][0].upper()} {row['id']:14} {row['metric'] or '':9} "
            f"{row['customer'] or row['customer_id']}"
        )
    return 0
