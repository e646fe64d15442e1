"""``keydesk rules show|check FILE|replace FILE``: the SLA rules the running desk has in force.

Through the HTTP API (``/api/rules``), with the caller's credential: ``show`` and
``check`` need a manager or an admin, ``replace`` an admin.  ``check`` asks the
server, so it also says what a replace would refuse as rewriting history; the
offline ``keydesk sla check FILE`` only validates the file.  ``replace`` waits
until the worker asked has the new revision in force.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from handlers.cli.shared import api_base, http, print_json, refused
from streams.settings import Settings

__all__ = ["add_rules_parsers"]

#: how long ``replace`` waits for the worker asked to have the revision in force (the API's most)
REPLACE_WAIT_SECONDS = 10


def add_rules_parsers(sub: argparse._SubParsersAction) -> None:
    rules = sub.add_parser("rules", help="the SLA rules in force (manager, admin)").add_subparsers(
        dest="action", required=True
    )
    show = rules.add_parser("show", help=cmd_rules_show.__doc__)
    show.add_argument("--text", action="store_true", help="print the rules text in force")
    show.add_argument("--json", action="store_true")
    show.set_defaults(run=cmd_rules_show)
    check = rules.add_parser("check", help=cmd_rules_check.__doc__)
    check.add_argument("file")
    check.set_defaults(run=cmd_rules_check)
    replace = rules.add_parser("replace", help=cmd_rules_replace.__doc__)
    replace.add_argument("file")
    replace.set_defaults(run=cmd_rules_replace)
    for parser in (show, check, replace):
        parser.add_argument("--api")


def _refused(status: int, answer: dict) -> int:
    """The shared refusal line, then each problem of the document on a line of its own."""
    code = refused(status, answer)
    _print_problems(answer.get("problems") or [])
    return code


def _print_problems(problems: list[dict], prefix: str = "") -> None:
    for p in problems:
        where = ":".join(str(x) for x in (p.get("line"), p.get("column")) if x is not None)
        print(
            f"{prefix}{where + ':' if where else ''}{p.get('path') or ''}: {p.get('reason')}", file=sys.stderr
        )


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        print(f"keydesk: cannot read {path}: {exc}", file=sys.stderr)
        return None


def cmd_rules_show(args, settings: Settings) -> int:
    """The rules in force: revision, who replaced them when, policies with their versions."""
    status, answer = http("GET", f"{api_base(settings, args.api)}/api/rules")
    if status != 200:
        return _refused(status, answer)
    if args.json:
        print_json(answer)
        return 0
    if args.text:
        sys.stdout.write(answer["text"])
        return 0
    by = (
        f", replaced by {answer['replaced_by']} at {answer['replaced_at']}"
        if answer.get("replaced_by")
        else ""
    )
    print(
        f"revision {answer['revision']} ({answer['source']}{by}), "
        f"version {answer['version']}, {answer['digest']}"
    )
    for policy in answer["summary"]["policies"]:
        for v in policy["versions"]:
            state = "in force" if v["frozen"] else "future"
            print(
                f"  {policy['id']} v{v['version']}  from {v['effective_from']}  "
                f"({state}, calendar {v['calendar']})"
            )
    print("  calendars: " + ", ".join(c["id"] for c in answer["summary"]["calendars"]))
    return 0


def cmd_rules_check(args, settings: Settings) -> int:
    """Ask the server what a replace by FILE would refuse (invalid, or rewriting history); nothing changes."""
    text = _read(args.file)
    if text is None:
        return 2
    status, answer = http("POST", f"{api_base(settings, args.api)}/api/rules/check", {"text": text})
    if status != 200:
        return _refused(status, answer)
    _print_problems(answer["problems"], f"{args.file}:")
    _print_problems(answer["warnings"], f"warning: {args.file}:")
    against = answer["against"]
    if not answer["valid"]:
        print(
            f"{args.file}: {len(answer['problems'])} problem(s) against revision {against['revision']}",
            file=sys.stderr,
        )
        return 1
    print(f"{args.file}: a replace of revision {against['revision']} would be taken")
    return 0


def cmd_rules_replace(args, settings: Settings) -> int:
    """Replace the rules in force by FILE (admin); waits until the worker asked has it in force."""
    text = _read(args.file)
    if text is None:
        return 2
    url = f"{api_base(settings, args.api)}/api/rules?wait={REPLACE_WAIT_SECONDS}"
    status, answer = http("PUT", url, {"text": text})
    if status == 200:
        if answer["outcome"] == "unchanged":
            print(f"unchanged: revision {answer['revision']} has this text already")
        else:
            print(f"applied: revision {answer['revision']} ({answer['digest']}) is in force")
        return 0
    if status == 202:
        print(f"published: revision {answer['revision']} is on the log; not yet in force on the worker asked")
        return 0
    return _refused(status, answer)
