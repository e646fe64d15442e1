"""A throwaway PostgreSQL server for the test suite and the benchmarks.

Like ``local_kafka.py`` for the broker: rather than a mock or a shared server,
keydesk starts its own PostgreSQL from the Debian binaries (``apt-get install
postgresql``; ``/usr/lib/postgresql/N/bin`` need not be on PATH).  Each start
runs ``initdb`` into a fresh temporary folder, listens on a free loopback port
with its socket in that folder, and trusts the ``keydesk`` role, so the URL
needs no password.  PostgreSQL refuses to run as root: as root, the folder is
given to the ``postgres`` user and the binaries run through ``runuser``.
"""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import structlog

from handlers.local.ports import free_port as _free_port

USER = "keydesk"
log = structlog.get_logger("keydesk.local_postgres")


class LocalPostgresError(RuntimeError):
    """The local PostgreSQL server could not be set up or started; the message says why."""


def pg_bin(name: str) -> str | None:
    """The path of a PostgreSQL program: PATH first, then the newest Debian version."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: _version_key(p.parent.parent.name)
    )
    return str(candidates[-1]) if candidates else None


def _version_key(text: str) -> tuple[int, str]:
    return (int(text), "") if text.isdigit() else (-1, text)  # "9" < "15"


class LocalPostgres:
    """One PostgreSQL server on 127.0.0.1; ``with LocalPostgres() as url:``.

    ``fsync=False`` (the default) trades crash safety for speed: right for a
    server whose data is deleted at stop.  ``settings`` are extra ``-c`` server
    settings (``{"shared_buffers": "256MB"}``).
    """

    def __init__(
        self, *, fsync: bool = False, settings: dict[str, str] | None = None, timeout: float = 60.0
    ) -> None:
        self.fsync = fsync
        self.settings = dict(settings or {})
        self.timeout = timeout
        self.root: Path | None = None
        self.port: int | None = None
        self.url: str | None = None
        self._run_as: list[str] = []
        self._pg_ctl: str | None = None

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "server.log"

    def start(self) -> str:
        """initdb and start; returns ``postgresql+psycopg://keydesk@127.0.0.1:PORT/postgres``."""
        initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
        if not (initdb and pg_ctl):
            raise LocalPostgresError(
                "initdb/pg_ctl not found on PATH or in /usr/lib/postgresql/*/bin (apt-get install postgresql)"
            )
        self._pg_ctl = pg_ctl
        if os.geteuid() == 0:  # the server refuses root; run it as the Debian postgres user
            if shutil.which("runuser") is None:
                raise LocalPostgresError(
                    "running as root needs `runuser` to start PostgreSQL as the postgres user"
                )
            self._run_as = ["runuser", "-u", "postgres", "--"]
        self.root = Path(tempfile.mkdtemp(prefix="keydesk-pg-"))
        try:
            if self._run_as:
                shutil.chown(self.root, "postgres")
            self._run(
                [initdb, "-D", str(self.data_dir), "-U", USER, "--auth=trust", "-E", "UTF8", "--no-sync"],
                "initdb",
            )
            self.port = _free_port()
            options = [
                f"-p {self.port}",
                f"-k {self.root}",
                "-c listen_addresses=127.0.0.1",
                f"-c fsync={'on' if self.fsync else 'off'}",
            ]
            options += [f"-c {name}={value}" for name, value in self.settings.items()]
            self._run(
                [
                    pg_ctl,
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    str(int(self.timeout)),
                    "-o",
                    " ".join(options),
                    "start",
                ],
                "pg_ctl start",
            )
        except BaseException:
            if self.port is not None:  # pg_ctl may have started a server that then timed out
                subprocess.run(
                    [*self._run_as, pg_ctl, "-D", str(self.data_dir), "-m", "immediate", "stop"],
                    capture_output=True,
                )
            self._remove()
            raise
        atexit.register(self.stop)
        self.url = f"postgresql+psycopg://{USER}@127.0.0.1:{self.port}/postgres"
        log.info("local_postgres.started", url=self.url, root=str(self.root))
        return self.url

    def _run(self, command: list[str], what: str) -> None:
        try:
            done = subprocess.run([*self._run_as, *command], capture_output=True, text=True)
        except OSError as exc:
            raise LocalPostgresError(f"{what} could not run: {exc}") from exc
        if done.returncode != 0:
            server_log = ""
            if self.root is not None and self.log_file.exists():
                server_log = "\n" + self.log_file.read_text(errors="replace")[-1500:]
            raise LocalPostgresError(
                f"{what} failed ({done.returncode}): {(done.stdout + done.stderr)[-1500:]}{server_log}"
            )

    def stop(self) -> None:
        """Stop at once (``-m immediate``: the data is thrown away) and remove the folder."""
        if self.root is None:
            return
        if self.url is not None and self._pg_ctl is not None:
            subprocess.run(
                [*self._run_as, self._pg_ctl, "-D", str(self.data_dir), "-m", "immediate", "stop"],
                capture_output=True,
            )
            log.info("local_postgres.stopped", url=self.url)
        self.url = None
        self._remove()

    def _remove(self) -> None:
        root, self.root = self.root, None
        if root is not None:
            shutil.rmtree(root, ignore_errors=True)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def create_database(server_url: str, prefix: str = "keydesk") -> str:
    """A new, empty database on the server of ``server_url``; returns its URL.

    Tests and benchmarks each take a database of their own on one throwaway
    server: starting a server costs seconds, creating a database a fraction.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    _administer(server_url, f'CREATE DATABASE "{name}"')
    return server_url.rsplit("/", 1)[0] + f"/{name}"


def drop_database(server_url: str, database_url: str) -> None:
    """Drop a database made by :func:`create_database`, closing its connections."""
    name = database_url.rsplit("/", 1)[1]
    _administer(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _administer(server_url: str, statement: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE cannot run in one)."""
    from sqlalchemy import create_engine, text

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(statement))
    finally:
        admin.dispose()
