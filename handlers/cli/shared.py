"""What every command shares: where the running desk is (API, Kafka), who we are, HTTP calls, JSON output.

``keydesk up`` records its API and broker in ``runtime.json`` under the data
directory; the other commands find the running desk there unless told.  Every
API call carries ``Authorization: Bearer`` with ``KEYDESK_TOKEN`` (scripts), else
the session ``keydesk login`` saved in ``credentials.json`` in the data directory
(readable by its owner only).
"""

from __future__ import annotations

import json
import os
import sys
import urllib.error
import urllib.request
from pathlib import Path

import orjson

from streams.settings import Settings, SettingsError


def runtime_file(settings: Settings) -> Path:
    return settings.data_dir / "runtime.json"


def api_base(settings: Settings, given: str | None) -> str:
    """The API to talk to: --api, else what `keydesk up` recorded, else the configured port."""
    if given:
        return given.rstrip("/")
    if os.environ.get("KEYDESK_API"):
        return os.environ["KEYDESK_API"].rstrip("/")
    try:
        return json.loads(runtime_file(settings).read_text())["http"]
    except (OSError, ValueError, KeyError):
        return f"http://{settings.http_host}:{settings.http_port}"


def bootstrap(settings: Settings, given: str | None) -> str:
    if given or settings.kafka:
        return given or settings.kafka
    try:
        return json.loads(runtime_file(settings).read_text())["kafka"]
    except (OSError, ValueError, KeyError):
        raise SettingsError(
            "no Kafka to publish to: set KEYDESK_KAFKA, pass --kafka, or run `keydesk up` first"
        ) from None


def credentials_file(settings: Settings) -> Path:
    return settings.data_dir / "credentials.json"


def save_credentials(settings: Settings, api: str, answer: dict) -> Path:
    """Keep a sign-in's bearer secret for the next commands: a file only its owner can read."""
    path = credentials_file(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".credentials.{os.getpid()}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(
            {
                "api": api,
                "username": answer.get("username"),
                "token": answer["token"],
                "session_id": answer.get("session_id"),
                "expires_at": answer.get("expires_at"),
            },
            out,
        )
    os.replace(draft, path)
    return path


def bearer_token(settings: Settings | None = None) -> str | None:
    """``KEYDESK_TOKEN``, else the session ``keydesk login`` saved, else none."""
    if os.environ.get("KEYDESK_TOKEN"):
        return os.environ["KEYDESK_TOKEN"].strip()
    try:
        settings = settings or Settings.from_env()
        token = json.loads(credentials_file(settings).read_text())["token"]
    except (OSError, ValueError, KeyError, SettingsError):
        return None
    return token if isinstance(token, str) else None


def http(method: str, url: str, body: dict | None = None, *, token: str | None = None) -> tuple[int, dict]:
    """One API call, authenticated as :func:`bearer_token` (or ``token``): its status and JSON answer."""
    data = orjson.dumps(body) if body is not None else None
    headers = {"Content-Type": "application/json"}
    bearer = bearer_token() if token is None else token  # "": anonymous
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"{}")
    except urllib.error.URLError as exc:
        raise SettingsError(f"cannot reach the keydesk API at {url}: {exc.reason}") from None


def refused(status: int, answer: dict) -> int:
    """Say on stderr why the API refused, naming the field (and how to sign in, on a 401): exit code 2."""
    hint = " (keydesk login, or set KEYDESK_TOKEN)" if status == 401 else ""
    print(f"refused ({status}): {answer.get('field')}: {answer.get('error')}{hint}", file=sys.stderr)
    return 2


class Refused(Exception):
    """The API said no: :func:`handlers.cli.main` says why (:func:`refused`) and exits 2."""

    def __init__(self, status: int, answer: dict) -> None:
        super().__init__(status, answer)
        self.status, self.answer = status, answer


def ask(
    method: str, url: str, body: dict | None = None, *, expect: int = 200, token: str | None = None
) -> dict:
    """One API call whose only good answer is ``expect``: its JSON answer, else :class:`Refused`."""
    status, answer = http(method, url, body, token=token)
    if status != expect:
        raise Refused(status, answer)
    return answer


def print_json(obj) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")
