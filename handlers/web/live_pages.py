"""Screens 5 and 6 on a worker: the dispatch queue, the escalations inbox, their stream and live feed.

``register_live_pages`` attaches the routes to any aiohttp application (the
browser tests' too); ``live_desk_of_worker`` builds what they need from a
worker's streams and starts the live feed's consumer with the faust app.
"""

from __future__ import annotations

import asyncio
from typing import Any

import mode
import structlog
from aiohttp import web

from handlers.identity.store import IdentityDb
from handlers.web import inbox_reads
from handlers.web.dispatch_page import register_dispatch_page
from handlers.web.inbox_model import Customer
from handlers.web.inbox_page import register_inbox_page
from handlers.web.live_desk import Acknowledge, LiveDesk
from handlers.web.live_feed import LiveHub, LiveTopics
from handlers.web.live_source import LiveSource
from handlers.web.live_stream import register_live_stream
from streams.app import Streams
from streams.kafka_security import client_options
from streams.partitioning import Placement
from streams.settings import Settings

log = structlog.get_logger("keydesk.web.live")


def register_live_pages(web_app: web.Application, live: LiveDesk) -> None:
    register_dispatch_page(web_app, live)
    register_inbox_page(web_app, live)
    register_live_stream(web_app, live)


def customer_lookup(db: IdentityDb) -> Any:
    async def lookup(ids: list[str]) -> dict[str, Customer]:
        found: dict[str, Customer] = await db.run(inbox_reads.customers, db.store.engine, ids)
        return found

    return lookup


def live_desk_of_worker(
    streams: Streams,
    settings: Settings,
    placement: Placement,
    db: IdentityDb,
    acknowledge: Acknowledge,
    hop_key: bytes,
) -> LiveDesk:
    """The live pages' collaborators on a worker, and its live feed started and stopped with the app."""
    app = streams.app
    hub = LiveHub(customer_lookup(db))
    topics = LiveTopics(
        sla=settings.sla_topic,
        events=settings.events_topic,
        items_changelog=streams.views.items_table.changelog_topic.get_topic_name(),
    )
    source = LiveSource(
        hub,
        list(settings.bootstrap_servers),
        topics,
        settings.signing_key,
        client_options(settings),
        settings.partitions,
    )

    @app.service
    class LiveFeedService(mode.Service):
        async def on_start(self) -> None:
            self._running = asyncio.ensure_future(source.run())

        async def on_stop(self) -> None:
            await source.stop()
            hub.close()
            try:
                await asyncio.wait_for(asyncio.shield(self._running), 10)
            except TimeoutError:
                self._running.cancel()

    def peers() -> list[str]:
        me = str(app.conf.canonical_url).rstrip("/")
        hosts = {str(url).rstrip("/") for url in app.router.tables_metadata()}
        return sorted(h for h in hosts if h != me)

    def owns(customer_id: str) -> bool:
        return placement.home(customer_id) in placement.owned()

    return LiveDesk(
        hub=hub,
        views=streams.views.items,
        owns=owns,
        peers=peers,
        http=lambda: app.http_client,
        hop_key=hop_key,
        acknowledge=acknowledge,
        run_sql=db.run,
        engine=db.store.engine,
        zone=settings.zone,
    )
