"""Running the SQL sink: inside a worker (``KEYDESK_SINK=on``) or on its own (``keydesk sink``).

Inside a worker it is a faust service started and stopped with the app; it has
its own consumer group, so a slow database never holds back the one-stop view
or the SLA timers.  On its own it is the same sink in a process of its own, for
deployments that scale the database writer separately.
"""

from __future__ import annotations

import asyncio
import signal

import mode
import structlog

from schemas.reporting_db import open_engine
from sla_rules import RuleSet
from streams.app import Streams
from streams.kafka_security import client_options
from streams.rules_feed import RulesFeed
from streams.rules_revisions import InForce
from streams.settings import Settings
from streams.sink_writer import SinkWriter
from streams.sql_sink import SqlSink

log = structlog.get_logger("keydesk.sink")


def build_sink(settings: Settings, rules: RuleSet) -> SqlSink:
    """A sink for ``KEYDESK_DB`` reading the events and SLA topics.

    Events it cannot write go to the desk's dead-letter topic, next to the ones
    the worker parks, so one topic holds everything that needs a person.
    """
    writer = SinkWriter(
        open_engine(settings.database_url), rules, settings.sink_group, secret=settings.signing_key
    )
    return SqlSink(
        writer,
        settings.bootstrap_servers,
        [settings.events_topic, settings.sla_topic],
        dead_letter_topic=settings.dead_letter_topic,
        security=client_options(settings),
    )


def register_sink_service(streams: Streams, settings: Settings) -> None:
    """Start the sink with the worker's app and stop it with the app."""

    @streams.app.service
    class SqlSinkService(mode.Service):
        async def on_start(self) -> None:
            streams.sink = build_sink(settings, streams.rules)
            self._running = asyncio.ensure_future(streams.sink.run())
            self._running.add_done_callback(_log_end)

        async def on_stop(self) -> None:
            await streams.sink.stop()
            await asyncio.wait_for(asyncio.shield(self._running), 30)


def _log_end(task: asyncio.Future) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("sink.failed", error=repr(task.exception()))


def run_sink(settings: Settings) -> int:
    """Run the sink in the foreground until SIGINT/SIGTERM.

    Its rules: the file (``KEYDESK_SLA_RULES``), superseded by the newest revision
    on the rules topic, read to its end before the first batch and followed while
    it runs (``streams/rules_feed.py``), as a worker does.
    """
    feed = RulesFeed.from_settings(settings)  # an invalid rules file stops us here

    async def main() -> None:
        await feed.catch_up()  # (no topic yet: the file's rules, until a worker has made it)
        sink = build_sink(settings, feed.in_force.rules)  # its consumer belongs to this loop

        async def apply(new: InForce) -> None:
            await sink.swap_rules(new.rules)

        feed.appliers.append(apply)
        following = asyncio.ensure_future(feed.follow())
        following.add_done_callback(_log_end)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, lambda: loop.create_task(sink.stop()))
        log.info(
            "sink.starting",
            database=sink.writer.engine.url.render_as_string(),
            topics=sink.topics,
            group=settings.sink_group,
            rules_revision=feed.in_force.revision,
        )
        try:
            await sink.run()
        finally:
            await feed.stop()
            await asyncio.wait_for(asyncio.shield(following), 30)

    asyncio.run(main())
    return 0
