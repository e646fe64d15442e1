"""Real keydesk workers (subprocesses running `keydesk worker`) against the suite's broker."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import orjson
import pytest

from handlers.local.ports import free_port
from sla_rules import DEFAULT_RULES_PATH
from tests.conftest import service_missing

PARTITIONS = 4
T = TypeVar("T")


#: What :func:`short_rules_file` shortens in the shipped rules: diamond P1 faults'
#: response target, and the department head's step of their escalation ladder.
SHORT_RESPONSE = ('P1 = { response = "5m",  restore = "2h"', 'P1 = { response = "1m",  restore = "2h"')
SHORT_LADDER = ('{ role = "department_head", after = "30m" }', '{ role = "department_head", after = "1m" }')


def short_rules_file(directory: Path, *, ladder: bool) -> Path:
    """The shipped rules with a 1-minute response for diamond P1 faults (``ladder``: and
    the department head 1 minute later), so that a test sees steps within minutes.

    Each replacement must find its text once: shipped rules that moved on would
    otherwise leave a test waiting for a step that is now due hours later.
    """
    text = DEFAULT_RULES_PATH.read_text()
    for old, new in (SHORT_RESPONSE, SHORT_LADDER) if ladder else (SHORT_RESPONSE,):
        assert text.count(old) == 1, f"the shipped rules no longer say {old!r} once"
        text = text.replace(old, new)
    path = directory / "short.toml"
    path.write_text(text)
    return path


#: The suite's credential: a personal token of a user holding every role (a head-office manager:
#: every region), made in each desk's database before its first worker starts (``Desk``), sent
#: by :func:`http` and given to the CLI as ``KEYDESK_TOKEN``.
TEST_USER = "e2e-suite"
TEST_TOKEN = "kdt_" + secrets.token_urlsafe(32)


def poll(
    check: Callable[[], T],
    what: str,
    timeout: float = 30.0,
    every: float = 0.1,
    detail: Callable[[], str] | None = None,
) -> T:
    """``check()``'s first truthy answer, or an AssertionError naming ``what`` after ``timeout`` s.

    For what only shows up by asking (a worker's view, the sink's database, the
    workers' health): the interval paces the asking, the condition is what is
    waited for.  ``detail`` adds what explains a failure (a worker's log tail).
    """
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            more = f"\n{detail()}" if detail else ""
            raise AssertionError(
                f"timed out after {timeout} s waiting for {what}; last answer: {found!r}{more}"
            )
        time.sleep(every)


async def apoll(check: Callable[[], Awaitable[T]], what: str, timeout: float = 30.0, every: float = 0.2) -> T:
    """:func:`poll` for an async ``check`` (a page in the browser): the event loop keeps running."""
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last answer: {found!r}")
        await asyncio.sleep(every)


def auth(token: str | None = TEST_TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def provision_identity(database_url: str) -> None:
    """The suite's user and token in a desk's database (migrated first): idempotent."""
    from handlers.identity.bootstrap import provision_credential
    from handlers.identity.store import IdentityStore, prepare_database

    engine = prepare_database(database_url)
    try:
        provision_credential(IdentityStore(engine), TEST_USER, TEST_USER, TEST_TOKEN)
    finally:
        engine.dispose()


def http(
    method: str,
    url: str,
    body=None,
    raw: bytes | None = None,
    token: str | None = TEST_TOKEN,
    headers: dict[str, str] | None = None,
) -> tuple[int, dict]:
    """One API call as the suite's user (``token=None``: anonymous), its status and JSON answer."""
    data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **auth(token), **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as exc:
        payload = exc.read()
        try:
            return exc.code, orjson.loads(payload)
        except orjson.JSONDecodeError:
            return exc.code, {"raw": payload.decode(errors="replace")}


#: the password of every user a test adds (:func:`add_user`)
PASSWORD = "correct horse battery"


def add_user(desk: Desk, username: str, roles: list[str], **extra) -> str:
    """A user made by the suite's admin through the API; returns a bearer session secret.

    Made on the first worker, signed in on the second where there is one: every
    worker sees what another wrote to the identity's database.
    """
    status, answer = http(
        "POST",
        f"{desk.workers[0].url}/api/users",
        {"username": username, "roles": roles, "password": PASSWORD, **extra},
    )
    assert status == 201, answer
    return login(desk.workers[min(1, len(desk.workers) - 1)].url, username)["token"]


def login(url: str, username: str, password: str = PASSWORD, bearer: bool = True) -> dict:
    """Sign in over the API (``bearer``: the session secret comes back to send as a bearer token)."""
    status, answer = http(
        "POST", f"{url}/api/login", {"username": username, "password": password, "bearer": bearer}, token=None
    )
    assert status == 200, answer
    return answer


def keydesk(
    desk: Desk,
    *args: str,
    worker: int = 0,
    stdin: str | None = None,
    env: dict[str, str | None] | None = None,
) -> subprocess.CompletedProcess:
    """The CLI as a user runs it, against the desk's worker ``worker`` as the suite's user.

    ``env`` adds variables or, with ``None``, takes one away (``KEYDESK_TOKEN``: as whoever
    ``keydesk login`` saved instead)."""
    variables = desk.env(6066) | {"KEYDESK_API": desk.workers[worker].url}
    for name, value in (env or {}).items():
        if value is None:
            variables.pop(name, None)
        else:
            variables[name] = value
    return subprocess.run(
        [sys.executable, "-m", "handlers.cli", *args],
        env=variables,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


@dataclass
class Desk:
    """One keydesk deployment: a topic prefix and consumer group, with its workers."""

    bootstrap: str
    prefix: str
    tmp: Path
    workers: list[Worker] = field(default_factory=list)
    extra_env: dict[str, str] = field(default_factory=dict)
    provisioned: bool = False

    @property
    def events_topic(self) -> str:
        return f"{self.prefix}.events"

    @property
    def sla_topic(self) -> str:
        return f"{self.prefix}.sla"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.prefix}.dead-letters"

    def env(self, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEYDESK_")}
        env.update(
            KEYDESK_KAFKA=self.bootstrap,
            KEYDESK_HTTP_PORT=str(port),
            KEYDESK_APP_ID=f"{self.prefix}-app",
            KEYDESK_TOPIC_PREFIX=self.prefix,
            KEYDESK_PARTITIONS=str(PARTITIONS),
            KEYDESK_LOG_FORMAT="json",
            KEYDESK_DATA_DIR=str(self.tmp),
            KEYDESK_TOKEN=TEST_TOKEN,
            **self.extra_env,
        )
        return env

    @property
    def database_url(self) -> str:
        from streams.settings import Settings

        return Settings.from_env(self.env(0) | {"KEYDESK_HTTP_PORT": "1"}).database_url

    def provision(self) -> None:
        """Give the workers' database the suite's credential, once, before the first worker starts."""
        if not self.provisioned:
            provision_identity(self.database_url)
            self.provisioned = True

    def start_worker(self) -> Worker:
        self.provision()
        port = free_port()
        log = open(self.tmp / f"worker-{port}.log", "wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "handlers.cli", "worker"],
            env=self.env(port),
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).parents[2],
        )
        worker = Worker(
            url=f"http://127.0.0.1:{port}", process=process, log_path=self.tmp / f"worker-{port}.log"
        )
        self.workers.append(worker)
        return worker

    def wait_until_partitions_split(self, timeout: float = 60.0) -> None:
        """Wait until every partition is owned by exactly one live worker, all workers busy."""

        def split() -> list | None:
            owned = [w.partitions() for w in self.workers if w.alive()]
            flat = [p for ps in owned if ps for p in ps]
            return owned if owned and all(owned) and sorted(flat) == list(range(PARTITIONS)) else None

        poll(
            split,
            "every partition owned by exactly one busy worker",
            timeout,
            detail=lambda: "\n".join(w.log_path.read_text()[-3000:] for w in self.workers),
        )

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()


@dataclass
class Worker:
    url: str
    process: subprocess.Popen
    log_path: Path
    killed_wall: float | None = None  # time.time() of a fault test's kill -9

    def alive(self) -> bool:
        return self.process.poll() is None

    def partitions(self) -> list[int] | None:
        try:
            status, health = http("GET", f"{self.url}/api/health")
        except (urllib.error.URLError, ConnectionError, OSError):
            return None
        return health.get("partitions") if status == 200 and health.get("ready") else None

    def view(self, customer_id: str, wait_for: str | None = None) -> tuple[int, dict]:
        query = f"?wait_for={wait_for}&timeout=10" if wait_for else ""
        return http("GET", f"{self.url}/api/customers/{customer_id}/view{query}")

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def new_desk(kafka_bootstrap: str, tmp: Path, **env: str) -> Desk:
    return Desk(bootstrap=kafka_bootstrap, prefix=f"kd{uuid.uuid4().hex[:8]}", tmp=tmp, extra_env=env)


@pytest.fixture(scope="module")
def desk(kafka_bootstrap, tmp_path_factory):
    """One worker on a fresh topic prefix, shared by a test module."""
    d = new_desk(kafka_bootstrap, tmp_path_factory.mktemp("desk"))
    d.start_worker()
    try:
        d.wait_until_partitions_split()
        yield d
    finally:
        d.stop()


@pytest.fixture(scope="session")
def kcat():
    path = shutil.which("kcat")
    if path is None:
        service_missing("kcat", "not on PATH (apt-get install kcat)")
    return path
