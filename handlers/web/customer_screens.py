"""The hotline console, the forms for a new item, the customer and item pages (issue 12, screens 2-4)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from handlers.identity.store import IdentityDb
from handlers.web.console import register_console
from handlers.web.customer_desk import CustomerDesk
from handlers.web.customer_page import register_customer_page
from handlers.web.item_page import register_item_page
from handlers.web.new_item_pages import register_new_item_pages
from handlers.web.page_refusals import install_page_refusals


def register_customer_screens(
    web_app: web.Application,
    desk: CustomerDesk,
    identity: IdentityDb,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> None:
    """Attach screens 2-4 to the worker's aiohttp application (after ``register_pages``)."""
    install_page_refusals(web_app)
    register_console(web_app, desk, clock)
    register_new_item_pages(web_app, desk, clock)
    register_customer_page(web_app, desk, identity, clock)
    register_item_page(web_app, desk, identity, clock)
