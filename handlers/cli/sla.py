"""Commands about SLA clocks: check a rules file, explain an item's deadlines, acknowledge, replay."""

from __future__ import annotations

import sys
import urllib.request

from handlers.cli.shared import api_base, ask, http
from streams.settings import Settings, SettingsError
from streams.vocabulary import ITEM_KINDS


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
    print(
        f"{args.file}: ok, version {rules.version}, {len(rules.rules)} rules, "
        f"{len(rules.policies)} policies, {len(rules.calendars)} calendars"
        + (f", {len(rules.warnings)} warning(s)" if rules.warnings else "")
    )
    return 0


def _item_arg(args) -> tuple[str, str]:
    for kind in ITEM_KINDS:
        if getattr(args, kind):
            return kind, getattr(args, kind)
    raise SettingsError("name the item: --fault ID, --ticket ID or --order ID")


def cmd_sla_explain(args, settings: Settings) -> int:
    """How each SLA deadline of an item was derived, from the running system or a file."""
    kind, item_id = _item_arg(args)
    if args.events:
        return _explain_offline(args, settings, kind, item_id)
    query = f"?at={urllib.request.quote(args.at)}" if args.at else ""
    status, answer = http(
        "GET",
        f"{api_base(settings, args.api)}/api/customers/"
        f"{urllib.request.quote(args.customer)}/items/{kind}/"
        f"{urllib.request.quote(item_id)}/sla{query}",
    )
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
        print(f"no {kind} {item_id} for customer {args.customer} in {args.events}", file=sys.stderr)
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
    body = {"metric": args.metric}
    if args.note:
        body["note"] = args.note
    if args.cycle:
        body["cycle"] = args.cycle
    answer = ask(
        "POST",
        f"{api_base(settings, args.api)}/api/customers/"
        f"{urllib.request.quote(args.customer)}/items/{kind}/"
        f"{urllib.request.quote(item_id)}/acknowledge",
        body,
        expect=202,
    )
    print(f"acknowledged {kind} {item_id} {answer['metric']} (cycle {answer['cycle']})")
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
    print(
        f"replayed {result.events} event(s) of {len(result.views)} customer(s): "
        f"{len(result.steps)} SLA step event(s)",
        file=sys.stderr,
    )
    return 0
