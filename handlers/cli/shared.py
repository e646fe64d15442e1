"""What every command shares: where the running desk is (API, Kafka), HTTP calls, JSON output.

``keydesk up`` records its API and broker in ``runtime.json`` under the data
directory; the other commands find the running desk there unless told.
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


def http(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    data = orjson.dumps(body) if body is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read() or b"{}")
    except urllib.error.URLError as exc:
        raise SettingsError(f"cannot reach the keydesk API at {url}: {exc.reason}") from None


def read_or_say(url: str) -> dict | None:
    """GET ``url`` from the API: its JSON answer, or ``None`` once the refusal is on stderr."""
    status, answer = http("GET", url)
    if status != 200:
        print(f"{status}: {answer.get('error')}", file=sys.stderr)
        return None
    return answer


def print_json(obj) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")
