"""Composition root: builds the streams and hands each edge what it needs, runs a faust worker.

The one place that knows the processor's insides: the edges get narrow
collaborators instead (:class:`~streams.publisher.HomePublisher` for writing
to a customer's home partition, :class:`~streams.partitioning.Placement` for
where customers live and which partitions this worker serves, the SLA topic
for the alert sender, the fold's retries and the sink's status for the health
verdict), so none reaches into ``streams.processor``'s topics, timers,
partitioner or counters of failure.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable

import faust
import mode
import structlog
from yarl import URL

from handlers.alerts.sender import register_alert_agent
from handlers.api.routes import register_routes
from handlers.api.rules_routes import register_rules_routes
from handlers.api.worker_health import Retrying, WorkerHealth
from handlers.identity.guard import IdentityGuard
from handlers.identity.hop import hop_target
from handlers.identity.passwords import PasswordHasher
from handlers.identity.routes import register_identity_routes
from handlers.identity.store import IdentityDb, IdentityStore, prepare_database
from handlers.kafka_topics import ensure_topics_sync
from handlers.reports.commands import register_report_routes
from handlers.sink_runner import register_sink_service
from handlers.web.account_page import register_account_page
from handlers.web.admin_pages import register_admin_pages
from handlers.web.customer_desk import WorkerCustomerDesk
from handlers.web.customer_screens import register_customer_screens
from handlers.web.live_pages import live_desk_of_worker, register_live_pages
from handlers.web.pages import Desk, register_pages
from handlers.web.reports_page import register_report_page
from handlers.web.rules_page import register_rules_page
from schemas.reporting_db import open_engine
from streams.app import Streams, build_streams
from streams.desk_signature import fingerprint
from streams.log_config import configure_logging
from streams.partitioning import Placement
from streams.rules_feed import RulesFeed
from streams.rules_revisions import InForce
from streams.settings import Settings
from streams.sql_sink import SinkStatus

log = structlog.get_logger("keydesk.worker")


def seconds_since_process_start() -> float:
    """Wall time since this process was exec'd (Linux /proc), for the start-up figure."""
    try:
        ticks = os.sysconf("SC_CLK_TCK")
        start = int(open("/proc/self/stat").read().rsplit(")", 1)[1].split()[19]) / ticks
        uptime = float(open("/proc/uptime").read().split()[0])
        return uptime - start
    except (OSError, ValueError, IndexError):
        return time.process_time()


def worker_health(streams: Streams) -> WorkerHealth:
    """The health verdict, given what it reads: the app, the fold's retries, the sink's status."""
    processor = streams.processor

    def retrying() -> Retrying | None:
        since = processor.failing_since
        return None if since is None else Retrying(since, processor.last_error)

    def sink_status() -> SinkStatus | None:
        # read at each call: the sink is attached after the routes are built
        return streams.sink.status if streams.sink is not None else None

    return WorkerHealth(streams.app, retrying, sink_status)


def build_worker_streams(settings: Settings, rules_feed: RulesFeed | None = None) -> Streams:
    """Everything one worker process runs: agents, table, HTTP API and (unless off) the sink.

    ``rules_feed``: the rules in force, caught up with the rules topic (``run_worker``);
    without one (tests), the rules file's, followed from the topic's beginning once running.
    """
    feed = rules_feed or RulesFeed.from_settings(settings)
    streams = build_streams(settings, rules=feed.in_force.rules)
    register_rules_feed(streams, feed)
    placement = Placement(home=streams.publisher.home_partition, owned=streams.processor.owned_partitions)
    # Users, sessions and tokens: the reporting database, migrated here too (the sink may be off).
    identity_db = IdentityDb(IdentityStore(prepare_database(settings.database_url)))
    identity = IdentityGuard(
        identity_db,
        settings.signing_key,
        here=lambda: hop_target(URL(str(streams.app.conf.canonical_url))),
    )
    reads = register_routes(streams, settings, streams.publisher, placement, identity, worker_health(streams))
    hasher = PasswordHasher()
    register_identity_routes(streams.app, identity_db, hasher, cookie_secure=settings.cookie_secure)
    desk = Desk(identity_db, hasher, cookie_secure=settings.cookie_secure)
    register_pages(streams.app.web.web_app, desk)
    register_account_page(streams.app.web.web_app, desk)
    # screens 2-4: the hotline console, the customer's one-stop page, the item page
    customer_desk = WorkerCustomerDesk(
        reads, streams.publisher, lambda: streams.rules, settings.zone, open_engine(settings.database_url)
    )
    register_customer_screens(streams.app.web.web_app, customer_desk, identity_db)
    # screens 5-6: the dispatch queue and the escalations inbox, live from every partition
    register_live_pages(
        streams.app.web.web_app,
        live_desk_of_worker(streams, settings, placement, identity_db, reads.acknowledge, identity.hop_key),
    )
    report_runs = register_report_routes(streams, settings)
    # screens 7-8: reports and admin, over the same report runs and archive functions as the API
    register_report_page(streams.app.web.web_app, report_runs, settings.zone)
    register_admin_pages(streams.app.web.web_app, desk, reads.archive, settings.zone)
    register_rules_routes(streams.app, feed)
    register_rules_page(streams.app.web.web_app, feed, settings.zone)
    register_alert_agent(streams, settings, placement, streams.sla_topic)
    if settings.sink == "on":
        register_sink_service(streams, settings)
    return streams


def register_rules_feed(streams: Streams, feed: RulesFeed) -> None:
    """Follow the rules topic while the app runs; each applied revision reaches the processor,
    the in-worker sink and the routes (``streams.rules``), in that order, between their batches."""
    streams.rules_feed = feed

    async def apply(new: InForce) -> None:
        await streams.processor.swap_rules(new.rules)
        if streams.sink is not None:
            await streams.sink.swap_rules(new.rules)
        streams.rules = new.rules

    feed.appliers.append(apply)

    @streams.app.service
    class RulesFeedService(mode.Service):
        async def on_start(self) -> None:
            self._following = asyncio.ensure_future(feed.follow())

        async def on_stop(self) -> None:
            await feed.stop()
            await asyncio.wait_for(asyncio.shield(self._following), 30)


def announce_secret(settings: Settings) -> None:
    """Log which secret signs this worker's acknowledgements, by fingerprint, and warn when it
    is the data directory's own: workers on other machines would each make a different one and
    park each other's acknowledgements (``streams/desk_signature.py``)."""
    key = settings.signing_key
    if settings.secret:
        log.info("worker.secret", source="KEYDESK_SECRET", fingerprint=fingerprint(key))
    else:
        log.warning(
            "worker.secret",
            source=str(settings.data_dir / "secret"),
            fingerprint=fingerprint(key),
            advice="workers on more than one machine need the same KEYDESK_SECRET",
        )


def run_worker(settings: Settings, on_ready: Callable[[Streams], Awaitable[None]] | None = None) -> None:
    """Run a worker in the foreground until SIGINT/SIGTERM.

    ``on_ready`` runs once, after the first rebalance and table recovery, when
    the worker is processing events.
    """
    configure_logging(settings.log_format, settings.log_level)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_topics_sync(settings)
    feed = RulesFeed.from_settings(settings)
    asyncio.run(feed.catch_up())  # the newest revision on the log is in force from the first event on
    streams = build_worker_streams(settings, feed)
    announce_secret(settings)
    ready = False

    @streams.app.on_rebalance_complete.connect
    async def _announce(sender, **kwargs) -> None:
        nonlocal ready
        assigned = sorted(
            tp.partition
            for tp in streams.app.assignor.assigned_actives()
            if tp.topic == settings.events_topic
        )
        log.info(
            "worker.processing",
            partitions=assigned,
            seconds_since_start=round(seconds_since_process_start(), 2),
            http=str(streams.app.conf.canonical_url),
        )
        if not ready:
            ready = True
            if on_ready is not None:
                streams.app.loop.create_task(on_ready(streams))

    worker = faust.Worker(
        streams.app, loglevel="WARNING", quiet=True, redirect_stdouts=False, override_logging=False
    )
    worker.spinner = None  # a terminal spinner's escape codes have no place in JSON logs
    worker.execute_from_commandline()
