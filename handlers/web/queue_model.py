"""The dispatch queue page's rows (零时延): the API's queue rows, in the viewer's scope, filtered, banded.

Pure: no aiohttp, no Kafka.  A row is the API's (``handlers/api/dispatch_queue.queue_row``:
time to breach, tier, priority, ordered by ``queue_order``) plus what the page
filters on: the customer's region, account manager and escalation chain, and a
ticket's assignee.  Scope is decided per row with the identity's one policy
(``roles.may_for_customer``) over the facts of the customer's profile as its
owner's view holds it now, the same facts (account manager id, region, chain
ids) the SQL ``customers`` row gives the middleware, only without the sink's lag.

Each worker filters its own customers' rows before the limit is applied, so a
manager of one region sees their most urgent items even when other regions'
fill the first thousand rows of the whole desk.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from handlers.api.dispatch_queue import queue_order, queue_row
from handlers.identity.roles import CUSTOMER_READ, CustomerFacts, Identity, may_for_customer
from streams.vocabulary import ITEM_KINDS

#: The colour bands, most urgent first, and how long before its deadline a row enters each.
BANDS = ("breached", "soon", "today", "later", "paused")
SOON_SECONDS = 30 * 60
TODAY_SECONDS = 4 * 3600
TIERS = ("diamond", "platinum", "gold", "vip", "business", "public")
MAX_FILTER_LENGTH = 120
#: rows a page shows at most, and asks each worker for
PAGE_ROWS = 200


class FilterProblem(ValueError):
    """A filter the page cannot take; ``field`` names it (the page answers 422)."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class QueueFilters:
    """What the queue page's form narrows the queue to; empty means every value."""

    tier: str = ""
    kind: str = ""
    region: str = ""
    account_manager: str = ""
    mine: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> QueueFilters:
        """The filters of a query string, checked: a tier or kind outside the vocabulary is refused."""
        text = {}
        for name in ("tier", "kind", "region", "account_manager"):
            value = str(query.get(name, "")).strip()
            if len(value) > MAX_FILTER_LENGTH:
                raise FilterProblem(name, f"longer than {MAX_FILTER_LENGTH} characters")
            text[name] = value
        if text["tier"] and text["tier"] not in TIERS:
            raise FilterProblem("tier", f"must be one of {', '.join(TIERS)}")
        if text["kind"] and text["kind"] not in ITEM_KINDS:
            raise FilterProblem("kind", f"must be one of {', '.join(ITEM_KINDS)}")
        mine = str(query.get("mine", "")).strip()
        if mine not in ("", "0", "1", "on"):
            raise FilterProblem("mine", "must be 1 or left out")
        return cls(mine=mine in ("1", "on"), **text)

    def to_query(self) -> dict[str, str]:
        """The filters as query parameters (only those set), for links and the live stream."""
        found = {
            "tier": self.tier,
            "kind": self.kind,
            "region": self.region,
            "account_manager": self.account_manager,
        }
        query = {k: v for k, v in found.items() if v}
        if self.mine:
            query["mine"] = "1"
        return query


def profile_facts(customer_id: str, profile: Mapping[str, Any]) -> CustomerFacts:
    """Scoping facts of a customer's profile: as ``IdentityStore.customer_facts`` reads its SQL row."""
    manager = profile.get("account_manager")
    manager_id = manager.get("id") if isinstance(manager, Mapping) else None
    chain = profile.get("escalation_chain") or ()
    ids = frozenset(str(step["id"]) for step in chain if isinstance(step, Mapping) and step.get("id"))
    region = profile.get("region")
    return CustomerFacts(
        customer_id,
        str(manager_id) if manager_id else None,
        str(region) if isinstance(region, str) else None,
        ids,
    )


def band(row: Mapping[str, Any]) -> str:
    """The row's colour band: breached, within half an hour, within four hours, later, or paused."""
    if row.get("paused"):
        return "paused"
    waiting = row.get("seconds_to_breach")
    if waiting is None:
        return "paused"
    if waiting <= 0:
        return "breached"
    if waiting <= SOON_SECONDS:
        return "soon"
    if waiting <= TODAY_SECONDS:
        return "today"
    return "later"


def _region_matches(given: str, region: str | None) -> bool:
    """``广东`` matches ``广东`` and ``广东/广州`` (as the archive's list filter), not ``广东省``."""
    if not given:
        return True
    if not region:
        return False
    return region == given or region.startswith(given.rstrip("/") + "/")


def customer_columns(customer_id: str, profile: Mapping[str, Any]) -> dict[str, Any]:
    """What each row of a customer's items shows and filters on of the customer: read once per customer."""
    manager = profile.get("account_manager")
    facts = profile_facts(customer_id, profile)
    return {
        "region": facts.region,
        "account_manager_id": facts.account_manager_id,
        "account_manager": manager.get("name") if isinstance(manager, Mapping) else None,
        "chain_ids": sorted(facts.chain_ids),
    }


def page_row(
    view: Mapping[str, Any],
    item: Mapping[str, Any],
    now: datetime,
    customer: Mapping[str, Any] | None = None,
) -> dict[str, Any] | None:
    """One queue row with what the page filters on, or ``None`` for an item with no running clock.

    ``customer``: the view's :func:`customer_columns`, when the caller has them already.
    """
    row = queue_row(dict(view), dict(item), now)
    if row is None:
        return None
    if customer is None:
        customer = customer_columns(str(view["customer_id"]), view.get("profile") or {})
    attributes = item.get("attributes") or {}
    return {**row, **customer, "assignee": attributes.get("assignee")}


def row_facts(row: Mapping[str, Any]) -> CustomerFacts:
    return CustomerFacts(
        str(row["customer_id"]),
        row.get("account_manager_id"),
        row.get("region"),
        frozenset(row.get("chain_ids") or ()),
    )


def is_mine(row: Mapping[str, Any], viewer: Identity) -> bool:
    """The viewer is the customer's account manager (第一责任人), in its chain, or the item's assignee."""
    staff = viewer.staff
    return (
        row.get("account_manager_id") == staff
        or staff in (row.get("chain_ids") or ())
        or row.get("assignee") in (staff, viewer.name)
    )


def customer_shown(row: Mapping[str, Any], viewer: Identity, filters: QueueFilters) -> bool:
    """Whether the viewer may see the customer's rows (their scope) and the customer's filters keep them.

    ``row``: any row of the customer, or just its columns and tier: nothing of the item is read.
    """
    if not may_for_customer(viewer, CUSTOMER_READ, row_facts(row)):
        return False
    if filters.tier and (row.get("tier") or "public") != filters.tier:
        return False
    if not _region_matches(filters.region, row.get("region")):
        return False
    return not (filters.account_manager and row.get("account_manager_id") != filters.account_manager)


def item_shown(row: Mapping[str, Any], viewer: Identity, filters: QueueFilters) -> bool:
    """Whether the filters that look at the item (its kind, "mine") keep the row."""
    if filters.kind and row.get("kind") != filters.kind:
        return False
    return not (filters.mine and not is_mine(row, viewer))


def local_rows(
    views: Iterable[tuple[str, Mapping[str, Any]]],
    owns: Callable[[str], bool] | None,
    now: datetime,
    viewer: Identity,
    filters: QueueFilters,
    limit: int = PAGE_ROWS,
) -> list[dict[str, Any]]:
    """The viewer's rows among ``views`` (only the customers ``owns`` says are here), most urgent first.

    Scope and the customer's filters are decided once per customer, before any of its items is read:
    with 10,000 open items that is most of the queue's time (BENCHMARKS.md, "Desk pages").
    """
    rows = []
    for customer_id, view in views:
        if owns is not None and not owns(customer_id):
            continue
        profile = view.get("profile") or {}
        columns = customer_columns(str(view["customer_id"]), profile)
        customer = {**columns, "customer_id": view["customer_id"], "tier": profile.get("tier")}
        if not customer_shown(customer, viewer, filters):
            continue
        for kind in (filters.kind,) if filters.kind else ITEM_KINDS:
            for item in (view.get("open") or {}).get(kind, {}).values():
                row = page_row(view, item, now, columns)
                if row is not None and item_shown(row, viewer, filters):
                    rows.append(row)
    return merged(rows, limit)


def merged(rows: Iterable[dict[str, Any]], limit: int = PAGE_ROWS) -> list[dict[str, Any]]:
    """Rows of every worker as one queue: the API's order, at most ``limit``, each with its band."""
    ordered = heapq.nsmallest(limit, rows, key=queue_order)  # sorted(...)[:limit], without sorting all
    return [{**row, "band": band(row)} for row in ordered]
