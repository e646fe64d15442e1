"""Upkeep commands: the reporting database's migrations and status, the published JSON Schemas."""

from __future__ import annotations

import asyncio
import sys
from dataclasses import replace

from handlers.cli.shared import bootstrap, print_json
from streams.settings import Settings, SettingsError


def cmd_db(args, settings: Settings) -> int:
    """The reporting database: apply migrations, or show revision, rows and sink lag."""
    from handlers.reports.status import database_status
    from schemas.reporting_db import open_engine, upgrade

    engine = open_engine(settings.database_url)
    if args.action == "upgrade":
        upgrade(engine)
        print(f"{engine.url.render_as_string()}: schema up to date")
        return 0
    kafka = args.kafka or settings.kafka
    if kafka is None:
        try:
            kafka = bootstrap(settings, None)
        except SettingsError:
            kafka = None  # lag needs Kafka; the rest is still worth showing
    status = asyncio.run(database_status(engine, replace(settings, kafka=kafka)))
    print_json(status)
    return 0 if status["revision"] == status["head"] else 1


def cmd_schemas(args, settings: Settings) -> int:
    """Write or check the published JSON Schema files."""
    from schemas.json_schema import SCHEMA_DIR, render_all, write_all

    if args.action == "write":
        print(f"wrote {len(write_all())} schema files to {SCHEMA_DIR}")
        return 0
    stale = [
        name
        for name, content in render_all().items()
        if not (SCHEMA_DIR / name).exists() or (SCHEMA_DIR / name).read_bytes() != content
    ]
    for name in stale:
        print(f"out of date: {SCHEMA_DIR / name}", file=sys.stderr)
    return 1 if stale else 0
