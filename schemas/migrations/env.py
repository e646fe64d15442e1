"""Alembic environment for the reporting database (run through ``schemas.reporting_db``).

The URL comes from the caller (``keydesk db upgrade``, the sink at start-up, the
tests), never from a file: there is one place that decides which database is
used, ``KEYDESK_DB``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, engine_from_config, pool

from schemas.reporting_tables import REPORTING_TABLES

config = context.config


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = engine_from_config(
        config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.", poolclass=pool.NullPool
    )
    with engine.connect() as connection:
        _run(connection)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=REPORTING_TABLES,
        # SQLite cannot ALTER most things: batch mode copies the table.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise SystemExit("keydesk migrations run online only: give a database URL")
run_migrations_online()
