"""The customer archive (客户档案) as commands: ``keydesk customer register|update|show|list|search``.

Each command is one call to a running worker's archive API
(``handlers/api/customer_archive.py``): ``register`` and ``update`` publish
``customer.registered`` / ``customer.updated`` and wait (up to 10 s) until the
customer's owner has folded it, then print the record; ``show`` is the owner's
record; ``list`` and ``search`` page through the reporting database (behind
the log by the sink's lag).  The archive's lists (``--contacts``,
``--services``, ``--escalation-chain``) are JSON arrays, given inline or as
``@FILE``; an update replaces a list whole.
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import orjson

from handlers.cli.customer_services import add_service_parsers
from handlers.cli.shared import api_base, ask, http, print_json, refused
from schemas.event_catalogue import TIERS
from streams.settings import Settings, SettingsError

__all__ = ["add_customer_parsers"]

#: Seconds a write waits for the owner's fold (the API's longest wait).
WAIT_SECONDS = 10
_LISTS = ("contacts", "services", "escalation_chain")
_SCALARS = ("name", "tier", "industry", "region")
_MANAGER = ("id", "name", "phone", "email", "webhook")
_SEARCH_HELP = "find customers by name, id, circuit id (电路编号) or phone, with the list's filters"


def add_customer_parsers(subparsers: argparse._SubParsersAction) -> None:
    """The ``customer`` command group and its commands."""
    group = subparsers.add_parser("customer", help="the customer archive (客户档案)").add_subparsers(
        dest="action", required=True
    )
    for name, command, required in (("register", cmd_register, True), ("update", cmd_update, False)):
        write = group.add_parser(name, help=command.__doc__, description=command.__doc__)
        write.add_argument("customer_id", metavar="ID")
        write.add_argument("--name", required=required, help="customer name, e.g. 省政府办公厅")
        write.add_argument("--tier", choices=TIERS)
        write.add_argument("--industry", help="industry code, GB/T 4754")
        write.add_argument("--region", help="management region, e.g. 广东/广州")
        for field in _MANAGER:
            write.add_argument(
                f"--account-manager{'' if field == 'id' else '-' + field}",
                dest=f"manager_{field}",
                help=f"the account manager's (第一责任人) {'staff id' if field == 'id' else field}"
                + ("; the account manager is given whole: id and name" if field == "id" else ""),
            )
        for field in _LISTS:
            write.add_argument(
                f"--{field.replace('_', '-')}",
                dest=field,
                metavar="JSON|@FILE",
                help=f"the {field.replace('_', ' ')} as a JSON array (replaces the whole list)",
            )
        # no --actor: who makes the change is the signed-in user (keydesk login, KEYDESK_TOKEN)
        write.add_argument("--no-wait", action="store_true", help="answer once published, not once folded")
        write.add_argument("--api", help="API base URL (default: the running `keydesk up`)")
        write.set_defaults(run=command)

    add_service_parsers(group)

    show = group.add_parser("show", help=cmd_show.__doc__)
    show.add_argument("customer_id", metavar="ID")
    show.add_argument("--api")
    show.set_defaults(run=cmd_show)

    for name, command in (("list", cmd_list), ("search", cmd_list)):
        listing = group.add_parser(name, help=_SEARCH_HELP if name == "search" else command.__doc__)
        if name == "search":
            listing.add_argument("q", metavar="TEXT", help="name (part), customer id, circuit id or phone")
        listing.add_argument("--tier", choices=TIERS)
        listing.add_argument("--region", help="a region and those under it (广东 finds 广东/广州)")
        listing.add_argument("--account-manager", dest="account_manager", metavar="STAFF_ID")
        listing.add_argument(
            "--open-breaches",
            dest="has_open_breaches",
            action=argparse.BooleanOptionalAction,
            help="only customers with (--no-open-breaches: without) an open item past a deadline",
        )
        listing.add_argument("--limit", type=int, default=50, help="customers per page (at most 200)")
        listing.add_argument("--after", metavar="ID", help="start after this customer id (a page's next)")
        listing.add_argument("--all", action="store_true", help="follow every page")
        listing.add_argument("--json", action="store_true", help="print the API's JSON pages")
        listing.add_argument("--api")
        listing.set_defaults(run=cmd_list)


def _json_list(text: str, option: str) -> Any:
    raw = Path(text[1:]).read_bytes() if text.startswith("@") else text.encode()
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise SettingsError(f"--{option.replace('_', '-')}: not JSON ({exc})") from None


def _body(args) -> dict[str, Any]:
    body: dict[str, Any] = {name: getattr(args, name) for name in _SCALARS if getattr(args, name)}
    manager = {f: getattr(args, f"manager_{f}") for f in _MANAGER if getattr(args, f"manager_{f}")}
    if manager:
        body["account_manager"] = manager
    for name in _LISTS:
        if getattr(args, name) is not None:
            body[name] = _json_list(getattr(args, name), name)
    return body


def _customer_url(settings: Settings, args) -> str:
    return f"{api_base(settings, args.api)}/api/customers/{urllib.parse.quote(args.customer_id, safe='')}"


def _written(status: int, answer: dict, verb: str) -> int:
    if status == 200:
        print(f"{verb}: {answer['customer_id']} ({answer['event_type']} {answer['event_id']})")
        print_json(answer["customer"])
        return 0
    if status == 202:
        later = f", not folded within {answer['waited']} s" if "waited" in answer else ""
        print(f"published: {answer['customer_id']} ({answer['event_type']} {answer['event_id']}){later}")
        return 0
    return refused(status, answer)


def cmd_register(args, settings: Settings) -> int:
    """Register a customer in the archive (customer.registered); prints the record once folded."""
    url = f"{api_base(settings, args.api)}/api/customers"
    status, answer = http(
        "POST",
        url if args.no_wait else f"{url}?wait={WAIT_SECONDS}",
        {"customer_id": args.customer_id, **_body(args)},
    )
    return _written(status, answer, "registered")


def cmd_update(args, settings: Settings) -> int:
    """Change the given fields of a customer (customer.updated); the others stay as they are."""
    url = _customer_url(settings, args)
    status, answer = http("PATCH", url if args.no_wait else f"{url}?wait={WAIT_SECONDS}", _body(args))
    return _written(status, answer, "updated")


def cmd_show(args, settings: Settings) -> int:
    """A customer's archive record, from the worker that owns it."""
    answer = ask("GET", _customer_url(settings, args))
    print_json(answer)
    return 0


def cmd_list(args, settings: Settings) -> int:
    """List the archive with filters (tier, region, account manager, open breaches), a page at a time."""
    query = {
        name: value
        for name, value in (
            ("q", getattr(args, "q", None)),
            ("tier", args.tier),
            ("region", args.region),
            ("account_manager", args.account_manager),
            ("limit", str(args.limit)),
            ("after", args.after),
        )
        if value
    }
    if args.has_open_breaches is not None:
        query["has_open_breaches"] = "true" if args.has_open_breaches else "false"
    base = f"{api_base(settings, args.api)}/api/customers"
    while True:
        page = ask("GET", f"{base}?{urllib.parse.urlencode(query)}")
        if args.json:
            print_json(page)
        else:
            for c in page["customers"]:
                manager = c.get("account_manager") or {}
                print(
                    "\t".join(
                        [
                            c["customer_id"],
                            c.get("name") or "-",
                            c.get("tier") or "-",
                            c.get("region") or "-",
                            manager.get("name") or manager.get("id") or "-",
                            f"open breaches {c['open_breaches']}",
                        ]
                    )
                )
        if not page["next"] or not args.all:
            if page["next"] and not args.json:
                print(f"more: --after {page['next']}", file=sys.stderr)
            return 0
        query["after"] = page["next"]
