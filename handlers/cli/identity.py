"""Commands about who uses the desk: ``login``, ``logout``, ``user ...``, ``token ...``, ``audit``.

All through the HTTP API, with the caller's credential (``handlers/cli/shared.py``):
``user``, ``token`` and ``audit`` need an admin.  Only ``keydesk up`` writes to the
identity tables directly, to make the first admin (``handlers/identity/bootstrap.py``).

``keydesk login`` opens a session (``POST /api/login`` asking for a bearer
secret) and keeps it in ``credentials.json`` in the data directory, mode 0600;
a one-time password (the first admin's, a reset) must be changed there and then.
Scripts set ``KEYDESK_TOKEN`` to a token from ``keydesk token create`` instead.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import urllib.parse

from handlers.cli.shared import api_base, ask, credentials_file, print_json, save_credentials
from handlers.identity.roles import ROLES
from schemas.event_catalogue import SOURCES
from streams.settings import Settings

__all__ = ["add_identity_parsers"]


def add_identity_parsers(sub: argparse._SubParsersAction) -> None:
    login = sub.add_parser("login", help=cmd_login.__doc__)
    login.add_argument("--username", help="default: asked")
    login.add_argument(
        "--password-stdin", action="store_true", help="read the password (and a new one if asked) from stdin"
    )
    login.add_argument("--api")
    login.set_defaults(run=cmd_login)
    logout = sub.add_parser("logout", help=cmd_logout.__doc__)
    logout.add_argument("--api")
    logout.set_defaults(run=cmd_logout)
    whoami = sub.add_parser("whoami", help=cmd_whoami.__doc__)
    whoami.add_argument("--api")
    whoami.set_defaults(run=cmd_whoami)

    user = sub.add_parser("user", help="users and their roles (admin)").add_subparsers(
        dest="action", required=True
    )
    add = user.add_parser("add", help=cmd_user_add.__doc__)
    add.add_argument("username")
    add.add_argument("--role", action="append", default=[], choices=ROLES, help="repeat for several")
    add.add_argument(
        "--staff-id", dest="staff_id", help="the id customers' profiles name (default: username)"
    )
    add.add_argument("--region", help="a manager's region (* for every region)")
    add.set_defaults(run=cmd_user_add)
    listing = user.add_parser("list", help=cmd_user_list.__doc__)
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(run=cmd_user_list)
    for name, command in (("disable", cmd_user_disable), ("enable", cmd_user_enable)):
        one = user.add_parser(name, help=command.__doc__)
        one.add_argument("username")
        one.set_defaults(run=command)
    role = user.add_parser("role", help=cmd_user_role.__doc__)
    role.add_argument("username")
    role.add_argument("roles", nargs="*", choices=ROLES, metavar="ROLE", help=f"any of {', '.join(ROLES)}")
    role.set_defaults(run=cmd_user_role)
    reset = user.add_parser("reset-password", help=cmd_user_reset.__doc__)
    reset.add_argument("username")
    reset.set_defaults(run=cmd_user_reset)

    token = sub.add_parser("token", help="API tokens (admin)").add_subparsers(dest="action", required=True)
    create = token.add_parser("create", help=cmd_token_create.__doc__)
    create.add_argument("name")
    create.add_argument(
        "--user",
        help="a personal token: your own username (no one mints one for another); else an integration token",
    )
    create.add_argument(
        "--event-type", dest="event_types", action="append", help="an integration may publish it (repeat)"
    )
    create.add_argument("--source", choices=SOURCES, help="the integration's events' source")
    create.add_argument("--expires-in-days", dest="expires_in_days", type=int)
    create.set_defaults(run=cmd_token_create)
    tokens = token.add_parser("list", help=cmd_token_list.__doc__)
    tokens.add_argument("--json", action="store_true")
    tokens.set_defaults(run=cmd_token_list)
    revoke = token.add_parser("revoke", help=cmd_token_revoke.__doc__)
    revoke.add_argument("token_id", metavar="ID")
    revoke.set_defaults(run=cmd_token_revoke)

    trail = sub.add_parser("audit", help=cmd_audit.__doc__)
    for name in ("kind", "actor", "target", "since", "until"):
        trail.add_argument(f"--{name}")
    trail.add_argument("--limit", type=int, default=50)
    trail.add_argument("--json", action="store_true")
    trail.set_defaults(run=cmd_audit)

    for parser in (add, listing, role, reset, create, tokens, revoke, trail, *_disable_enable(user)):
        parser.add_argument("--api")


def _disable_enable(user: argparse._SubParsersAction) -> list[argparse.ArgumentParser]:
    return [user.choices["disable"], user.choices["enable"]]


def _read_secret(prompt: str, from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    return getpass.getpass(prompt)


def cmd_login(args, settings: Settings) -> int:
    """Sign in; the session is kept for the next commands (a one-time password is changed here)."""
    base = api_base(settings, args.api)
    username = args.username or input("username: ").strip()
    password = _read_secret("password: ", args.password_stdin)
    answer = ask(
        "POST", f"{base}/api/login", {"username": username, "password": password, "bearer": True}, token=""
    )
    if answer.get("must_change_password"):
        new = _read_secret("a new password (at least 10 characters): ", args.password_stdin)
        if not args.password_stdin and getpass.getpass("again: ") != new:
            print("the two new passwords differ; nothing changed", file=sys.stderr)
            return 2
        ask(
            "POST",
            f"{base}/api/me/password",
            {"password": password, "new_password": new},
            token=answer["token"],
        )
    path = save_credentials(settings, base, answer)
    print(f"signed in as {answer['username']} ({', '.join(answer['roles']) or 'no role'}); session in {path}")
    return 0


def cmd_logout(args, settings: Settings) -> int:
    """End the saved session (refused from then on by every worker) and forget it."""
    try:
        answer = ask("POST", f"{api_base(settings, args.api)}/api/logout", {})
    finally:
        credentials_file(settings).unlink(missing_ok=True)
    print(f"signed out ({answer['signed_out']})")
    return 0


def cmd_whoami(args, settings: Settings) -> int:
    """Who the API takes this command line for."""
    answer = ask("GET", f"{api_base(settings, args.api)}/api/me")
    print_json(answer)
    return 0


def cmd_user_add(args, settings: Settings) -> int:
    """Add a user; prints the one-time password (to change at the first sign-in)."""
    body: dict = {"username": args.username, "roles": args.role}
    for name in ("staff_id", "region"):
        if getattr(args, name):
            body[name] = getattr(args, name)
    answer = ask("POST", f"{api_base(settings, args.api)}/api/users", body, expect=201)
    print(f"added {answer['username']} ({', '.join(answer['roles']) or 'no role'})")
    print(f"one-time password: {answer['one_time_password']}")
    return 0


def cmd_user_list(args, settings: Settings) -> int:
    """Every user, their roles, staff id and region."""
    answer = ask("GET", f"{api_base(settings, args.api)}/api/users")
    if args.json:
        print_json(answer["users"])
        return 0
    for user in answer["users"]:
        flags = " (disabled)" if user["disabled"] else ""
        print(
            f"{user['username']:20} {','.join(user['roles']) or '-':40} "
            f"{user['staff_id'] or '':12} {user['region'] or ''}{flags}"
        )
    return 0


def _change(args, settings: Settings, body: dict) -> dict:
    user = urllib.parse.quote(args.username, safe="")
    return ask("PATCH", f"{api_base(settings, args.api)}/api/users/{user}", body)


def cmd_user_disable(args, settings: Settings) -> int:
    """Disable a user: their sessions and tokens are refused at once."""
    answer = _change(args, settings, {"disabled": True})
    print(f"disabled {answer['username']}")
    return 0


def cmd_user_enable(args, settings: Settings) -> int:
    """Enable a disabled user again."""
    answer = _change(args, settings, {"disabled": False})
    print(f"enabled {answer['username']}")
    return 0


def cmd_user_role(args, settings: Settings) -> int:
    """Set a user's roles (all of them: those not named are taken away)."""
    answer = _change(args, settings, {"roles": args.roles})
    print(f"{answer['username']}: {', '.join(answer['roles']) or 'no role'}")
    return 0


def cmd_user_reset(args, settings: Settings) -> int:
    """Give a user a new one-time password (printed once)."""
    answer = _change(args, settings, {"password": None})
    print(f"one-time password for {answer['username']}: {answer['one_time_password']}")
    return 0


def cmd_token_create(args, settings: Settings) -> int:
    """Create a token: personal (--user) or an integration's (--event-type ... --source); shown once."""
    body: dict = {"name": args.name}
    if args.user:
        body["username"] = args.user
    if args.event_types:
        body["event_types"] = args.event_types
    if args.source:
        body["source"] = args.source
    if args.expires_in_days is not None:
        body["expires_in_days"] = args.expires_in_days
    answer = ask("POST", f"{api_base(settings, args.api)}/api/tokens", body, expect=201)
    print(f"token {answer['id']} ({answer['name']}); shown once, keep it now:")
    print(answer["token"])
    return 0


def cmd_token_list(args, settings: Settings) -> int:
    """Every token: name, scope, expiry, last use, revoked (never the secret)."""
    answer = ask("GET", f"{api_base(settings, args.api)}/api/tokens")
    if args.json:
        print_json(answer["tokens"])
        return 0
    for token in answer["tokens"]:
        scope = (
            f"as {token['username']}"
            if token["username"]
            else f"{token['source']}: " + ",".join(token["event_types"] or ())
        )
        state = "revoked" if token["revoked_at"] else f"expires {token['expires_at'] or 'never'}"
        print(f"{token['id']:16} {token['name']:24} {scope:50} {state}; last used {token['last_used_at']}")
    return 0


def cmd_token_revoke(args, settings: Settings) -> int:
    """Revoke a token: every worker refuses it from the next request on."""
    token = urllib.parse.quote(args.token_id, safe="")
    answer = ask("DELETE", f"{api_base(settings, args.api)}/api/tokens/{token}")
    print(f"revoked {answer['id']} ({answer['name']})")
    return 0


def cmd_audit(args, settings: Settings) -> int:
    """The audit trail, newest first: sign-ins, failures, denials, admin changes."""
    query = {n: getattr(args, n) for n in ("kind", "actor", "target", "since", "until") if getattr(args, n)}
    query["limit"] = str(args.limit)
    url = f"{api_base(settings, args.api)}/api/audit?{urllib.parse.urlencode(query)}"
    answer = ask("GET", url)
    if args.json:
        print_json(answer["records"])
        return 0
    for r in answer["records"]:
        print(
            f"{r['at']}  {r['kind']:22} {r['actor'] or '-':16} {r['credential'] or '-':16} "
            f"{r['address'] or '-':15} {r['target'] or ''}  {r['detail'] or ''}"
        )
    return 0
