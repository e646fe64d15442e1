"""Every step of an item's loop as a command: ``keydesk fault ack F-1 --customer C``.

The commands are built from the one table of steps (``handlers/api/actions.py``),
their options from the catalogue's fields of each step's event, so that the CLI
offers what the HTTP API takes, under the same names.  Each command is one
``POST /api/{faults|tickets|orders}/{id}/{action}`` to a running worker, which
publishes it; by default the command waits for the owner's fold and says what
the step did: ``applied`` (exit 0), ``rejected`` with the lifecycle's reason
(exit 1), or ``published`` when no worker could say in time (exit 0).  Opening a
ticket or an order is ``keydesk ticket open`` / ``keydesk order place`` (a fault:
``keydesk fault log``).
"""

from __future__ import annotations

import argparse
import sys
import urllib.parse

from handlers.api.actions import ACTIONS, COLLECTIONS
from handlers.cli.shared import api_base, ask, http, refused
from schemas.event_catalogue import ORDER_URGENCIES, PRIORITIES, TICKET_KINDS
from streams.settings import Settings

__all__ = ["add_item_parsers"]

#: Seconds a step waits for the owner's fold (the API's longest wait).
WAIT_SECONDS = 10


def add_item_parsers(groups: dict[str, argparse._SubParsersAction]) -> None:
    """Add ``ticket open``, ``order place`` and every action of each kind to its command group."""
    opening = groups["ticket"].add_parser("open", help=cmd_open.__doc__)
    opening.add_argument("--customer", required=True)
    opening.add_argument("--kind", required=True, choices=TICKET_KINDS)
    opening.add_argument("--priority", required=True, choices=PRIORITIES)
    opening.add_argument("--subject", required=True)
    opening.add_argument("--description")
    opening.set_defaults(
        run=cmd_open, item_kind="ticket", fields=("kind", "priority", "subject", "description")
    )
    placing = groups["order"].add_parser("place", help=cmd_open.__doc__)
    placing.add_argument("--customer", required=True)
    placing.add_argument("--product", required=True)
    placing.add_argument("--urgency", required=True, choices=ORDER_URGENCIES)
    placing.add_argument("--bandwidth")
    placing.set_defaults(run=cmd_open, item_kind="order", fields=("product", "urgency", "bandwidth"))
    for parser in (opening, placing):
        _envelope_options(parser)

    for kind, actions in ACTIONS.items():
        for name, action in actions.items():
            step = groups[kind].add_parser(
                name, help=action.help, description=f"{action.help} ({action.event_type})"
            )
            step.add_argument("item_id", metavar="ID", help=f"the {kind}'s id")
            step.add_argument("--customer", required=True)
            fields = action.fields()
            for field_name, spec in fields.items():
                step.add_argument(
                    f"--{field_name.replace('_', '-')}",
                    dest=field_name,
                    required=spec.required,
                    type=int if spec.type == "integer" else str,
                    choices=spec.enum,
                    help=spec.description or None,
                )
            step.add_argument("--no-wait", action="store_true", help="answer once published, not once folded")
            _envelope_options(step)
            step.set_defaults(run=cmd_item_action, item_kind=kind, step=name, fields=tuple(fields))


def _envelope_options(parser: argparse.ArgumentParser) -> None:
    # No --actor nor --source: who acts is the signed-in user (`keydesk login`, KEYDESK_TOKEN).
    parser.add_argument("--api", help="API base URL (default: the running `keydesk up`)")


def _body(args) -> dict:
    body = {"customer_id": args.customer}
    for name in args.fields:
        if getattr(args, name, None) is not None:
            body[name] = getattr(args, name)
    return body


def cmd_open(args, settings: Settings) -> int:
    """Open a ticket / place an order for a customer; prints the new id."""
    kind = args.item_kind
    answer = ask("POST", f"{api_base(settings, args.api)}/api/{COLLECTIONS[kind]}", _body(args), expect=202)
    print(answer[f"{kind}_id"])
    return 0


def cmd_item_action(args, settings: Settings) -> int:
    """One step of an item's loop; says whether it was applied or rejected, and why."""
    kind, item = args.item_kind, urllib.parse.quote(args.item_id, safe="")
    url = f"{api_base(settings, args.api)}/api/{COLLECTIONS[kind]}/{item}/{args.step}"
    status, answer = http("POST", url if args.no_wait else f"{url}?wait={WAIT_SECONDS}", _body(args))
    if status == 200:
        done = f"{answer['event_type']} {answer['event_id']}"
        print(f"applied: {kind} {args.item_id} is {answer['state']} ({done})")
        return 0
    if status == 409 and answer.get("outcome") == "rejected":
        print(f"rejected: {answer.get('error')} (state {answer.get('state')})", file=sys.stderr)
        return 1
    if status == 202:
        later = "" if args.no_wait else f", not folded within {answer.get('waited')} s"
        print(f"published: {answer['event_type']} {answer['event_id']}{later}")
        return 0
    return refused(status, answer)
