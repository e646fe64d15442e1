"""A customer's service register (业务清单) as commands: ``keydesk customer service add|remove|list``.

Each is a call to a running worker's API (``handlers/api/customer_services.py``):
``add`` publishes ``customer.service_added`` (one service, or every line of a
JSON-lines file with ``--from``), ``remove`` publishes ``customer.service_removed``,
``list`` pages through the register as the reporting database holds it (behind
the log by the sink's lag: a service added a moment ago is listed once the sink
has written it).
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import orjson

from handlers.cli.shared import api_base, ask, http, print_json, refused
from streams.settings import Settings, SettingsError

__all__ = ["add_service_parsers"]

_FIELDS = ("service", "circuit_id", "address", "bandwidth", "note")


def add_service_parsers(customer_group: argparse._SubParsersAction) -> None:
    """``keydesk customer service`` and its commands, under the ``customer`` group."""
    group = customer_group.add_parser(
        "service", help="the customer's service register (业务清单): circuits one by one"
    ).add_subparsers(dest="service_action", required=True)

    add = group.add_parser("add", help=cmd_add.__doc__, description=cmd_add.__doc__)
    add.add_argument("customer_id", metavar="ID")
    add.add_argument("service_id", metavar="SERVICE_ID", nargs="?", help="the service's id in the register")
    add.add_argument("--service", help="what it is, e.g. MPLS VPN, dedicated internet")
    add.add_argument("--circuit-id", dest="circuit_id", help="its circuit id (电路编号)")
    add.add_argument("--address", help="the site's address")
    add.add_argument("--bandwidth", help="e.g. 100M")
    add.add_argument("--note")
    add.add_argument(
        "--from",
        dest="from_file",
        metavar="FILE",
        help="add every line of a JSON-lines file: {service_id, service, [circuit_id, address, ...]}",
    )
    add.add_argument("--occurred-at", dest="occurred_at", help="when (ISO-8601 with offset; default now)")
    add.add_argument("--api", help="API base URL (default: the running `keydesk up`)")
    add.set_defaults(run=cmd_add)

    remove = group.add_parser("remove", help=cmd_remove.__doc__, description=cmd_remove.__doc__)
    remove.add_argument("customer_id", metavar="ID")
    remove.add_argument("service_id", metavar="SERVICE_ID")
    remove.add_argument("--api")
    remove.set_defaults(run=cmd_remove)

    listing = group.add_parser("list", help=cmd_list.__doc__, description=cmd_list.__doc__)
    listing.add_argument("customer_id", metavar="ID")
    listing.add_argument("--limit", type=int, default=50, help="services per page (at most 500)")
    listing.add_argument("--after", metavar="SERVICE_ID", help="start after this service id (a page's next)")
    listing.add_argument("--all", action="store_true", help="follow every page")
    listing.add_argument("--json", action="store_true", help="print the API's JSON pages")
    listing.add_argument("--api")
    listing.set_defaults(run=cmd_list)


def _services_url(settings: Settings, args) -> str:
    customer = urllib.parse.quote(args.customer_id, safe="")
    return f"{api_base(settings, args.api)}/api/customers/{customer}/services"


def _bodies(args) -> list[dict[str, Any]]:
    if args.from_file:
        if args.service_id or any(getattr(args, name) for name in _FIELDS):
            raise SettingsError("--from: give the services in the file, not also on the command line")
        bodies = []
        for number, line in enumerate(Path(args.from_file).read_bytes().splitlines(), 1):
            if line.strip():
                try:
                    body = orjson.loads(line)
                except orjson.JSONDecodeError as exc:
                    raise SettingsError(f"--from: line {number} is not JSON ({exc})") from None
                if not isinstance(body, dict):
                    raise SettingsError(f"--from: line {number} is not a JSON object")
                bodies.append(body)
        return bodies
    if not args.service_id or not args.service:
        raise SettingsError("give SERVICE_ID and --service (or --from FILE)")
    body = {"service_id": args.service_id}
    body.update({name: getattr(args, name) for name in _FIELDS if getattr(args, name)})
    return [body]


def cmd_add(args, settings: Settings) -> int:
    """Add a service to a customer's register, or change one (customer.service_added)."""
    url = _services_url(settings, args)
    bodies = _bodies(args)
    for number, body in enumerate(bodies, 1):
        if args.occurred_at and "occurred_at" not in body:
            body["occurred_at"] = args.occurred_at
        status, answer = http("POST", url, body)
        if status != 202:
            if args.from_file:
                print(
                    f"{args.from_file}: line {number} ({body.get('service_id')}) not added", file=sys.stderr
                )
            return refused(status, answer)
        if not args.from_file:
            print(f"published: {body['service_id']} of {answer['customer_id']} ({answer['event_id']})")
    if args.from_file:
        print(f"published: {len(bodies)} services of {args.customer_id}")
    return 0


def cmd_remove(args, settings: Settings) -> int:
    """Take a service out of a customer's register (customer.service_removed)."""
    service = urllib.parse.quote(args.service_id, safe="")
    answer = ask("DELETE", f"{_services_url(settings, args)}/{service}", expect=202)
    print(f"published: {args.service_id} of {answer['customer_id']} removed ({answer['event_id']})")
    return 0


def cmd_list(args, settings: Settings) -> int:
    """A customer's register, a page at a time, by service id (from the reporting database)."""
    query = {"limit": str(args.limit)}
    if args.after:
        query["after"] = args.after
    while True:
        page = ask("GET", f"{_services_url(settings, args)}?{urllib.parse.urlencode(query)}")
        if args.json:
            print_json(page)
        else:
            for s in page["services"]:
                print("\t".join([s["service_id"], *(s.get(name) or "-" for name in _FIELDS[:4])]))
        if not page["next"] or not args.all:
            if not args.json:
                more = f"; more: --after {page['next']}" if page["next"] else ""
                print(f"{page['count']} services{more}", file=sys.stderr)
            return 0
        query["after"] = page["next"]
