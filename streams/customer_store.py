"""Where the one-stop views live: a working copy in memory, persisted in bounded records.

Why not one table record per customer (as before): a customer's view grows with
its items and an item's history with its events, and Kafka refuses a record past
``max.message.bytes`` (1 MB by default).  An alarm storm of a few hundred faults
at one key account then crashed the worker at every restart, for every customer.

So a view is persisted as three kinds of changelog records, none of which grows
with the number of a customer's items or of an item's events:

* ``customers``: the customer's header: profile, per-field stamps, the last
  :data:`~streams.customer_view.PROFILE_EVENT_IDS_LIMIT` profile event ids,
  counters (a few KB);
* ``items``: one record per item with everything but its history and SLA log
  (state, attributes, SLA summary, the last alerts), plus how many chunks each of
  those two has; an item evicted from the view (past the recent-closed limit)
  becomes a stub that only says so, and its chunks are deleted;
* ``item-history``: the item's history in event-time order, and its SLA log (the
  step events and acknowledgements, which grow with every reopen cycle), each cut
  into chunks of at most :data:`CHUNK_RECORDS` records and :data:`CHUNK_BYTES`
  bytes (one event is at most ``schemas.envelope.MAX_EVENT_BYTES``, so any chunk
  stays far below Kafka's limit).

All three are co-partitioned with the events topic: every record goes to the
partition of its customer, whatever its key (:class:`CustomerPartitionedTable`).
The working copy (:class:`CustomerStore`) is the view as the fold knows it,
full history included; it is rebuilt from the tables after each rebalance and
written back, record by changed record, after each batch.  Full history also
stays in Kafka and in the SQL ``event_log``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import faust
import orjson

from streams import lifecycles
from streams.customer_view import find_item, new_view
from streams.vocabulary import ITEM_KINDS

CHUNK_RECORDS = 200  # history records per chunk at most
CHUNK_BYTES = 256 * 1024  # serialised bytes per chunk at most (one record may exceed it alone)
_HEADER_FIELDS = (
    "customer_id",
    "profile",
    "profile_stamps",
    "profile_event_ids",
    "counters",
    "last_event_at",
)

ItemKey = tuple[str, str]  # (kind, item id) within one customer


def item_key(customer_id: str, kind: str, item_id: str) -> str:
    """The ``items`` table key: a JSON array, unambiguous whatever the ids contain."""
    return orjson.dumps([customer_id, kind, item_id]).decode()


def chunk_key(customer_id: str, kind: str, item_id: str, number: int, part: str = "history") -> str:
    """An ``item-history`` key: chunk ``number`` of the item's history or SLA log."""
    if part == "history":  # the key of the history chunks as first written
        return orjson.dumps([customer_id, kind, item_id, number]).decode()
    return orjson.dumps([customer_id, kind, item_id, part, number]).decode()


#: The item fields persisted as chunks, each with its chunk count in the item record.
CHUNKED = {"history": "history_chunks", "sla_log": "sla_log_chunks"}
#: How much rebuilding work runs between two yields to the event loop (seconds).
REBUILD_SLICE = 0.02


def customer_of_key(key: str) -> str:
    """The customer a key of any of the three tables belongs to."""
    return orjson.loads(key)[0] if key.startswith("[") else key


class CustomerPartitionedTable(faust.Table):
    """A table whose every record lives on its customer's partition of the events topic.

    faust would otherwise place a record by the hash of its whole key (the
    ``use_partitioner`` way) or by the partition of the event being processed,
    which the alert sender and the batch writer do not have.
    """

    partition_of: Callable[[str], int]

    def partition_for_key(self, key: Any) -> int:
        return self.partition_of(customer_of_key(key))


def _chunks(history: list[dict[str, Any]]) -> list[bytes]:
    """The history cut greedily into serialised chunks within both bounds."""
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for record in history:
        encoded = orjson.dumps(record)
        if current and (len(current) >= CHUNK_RECORDS or size + len(encoded) > CHUNK_BYTES):
            chunks.append(b"[" + b",".join(current) + b"]")
            current, size = [], 0
        current.append(encoded)
        size += len(encoded) + 1
    if current:
        chunks.append(b"[" + b",".join(current) + b"]")
    return chunks


class CustomerStore:
    """The views of the customers on this worker's partitions, and their persistence.

    Reads (``get``, ``items``) serve the working copy.  Writes are explicit:
    :meth:`save` after the fold changed a customer, :meth:`save_item` after an
    agent changed one item.  Each writes only the records whose bytes changed.
    """

    def __init__(
        self,
        customers: faust.Table,
        items: faust.Table,
        history: faust.Table,
        partition_of: Callable[[str], int],
    ) -> None:
        self.customers = customers
        self.items_table = items
        self.history = history
        self.partition_of = partition_of
        self._views: dict[str, dict[str, Any]] = {}
        # What was last written, per record key: a hash of its bytes (and chunk counts).
        self._written: dict[str, int] = {}
        self._chunk_counts: dict[tuple[str, str], int] = {}  # (item key, part) -> chunks
        # The item record keys of each customer, so that one customer is reloaded
        # without scanning every item of the partition.
        self._item_keys: dict[str, set[str]] = {}
        # Bumped whenever working copies are dropped or rebuilt: a batch that
        # began under another generation holds views that are no longer the
        # working copy, and must neither save them nor have its events acked.
        self.generation = 0
        # Partitions whose working copies were dropped and not rebuilt since: not
        # this worker's (any more, or yet). A batch taken before a revocation
        # and handed over after it must not fold into them (it would start new,
        # empty views and save them over the customers' records).
        self.dropped: set[int] = set()

    # -- reading the working copy ------------------------------------------------

    def get(self, customer_id: str, default: Any = None) -> dict[str, Any] | None:
        return self._views.get(customer_id, default)

    def __getitem__(self, customer_id: str) -> dict[str, Any]:
        return self._views[customer_id]

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._views

    def __len__(self) -> int:
        return len(self._views)

    def items(self) -> Iterator[tuple[str, dict[str, Any]]]:
        return iter(list(self._views.items()))

    def find_item(self, customer_id: str, kind: str, item_id: str) -> dict[str, Any] | None:
        view = self._views.get(customer_id)
        return find_item(view, kind, item_id) if view is not None else None

    def view_for_update(self, customer_id: str) -> dict[str, Any]:
        """The working view of a customer, a new empty one if we know nothing of it."""
        view = self._views.get(customer_id)
        if view is None:
            view = self._views[customer_id] = new_view(customer_id)
        return view

    # -- writing -----------------------------------------------------------------

    def save(
        self, view: dict[str, Any], changed: Iterable[ItemKey] = (), evicted: Iterable[ItemKey] = ()
    ) -> int:
        """Persist a customer's header, its ``changed`` items and ``evicted`` stubs.

        Returns how many records were written (unchanged ones are not).
        """
        customer_id = view["customer_id"]
        self._views[customer_id] = view
        written = self._put(self.customers, customer_id, orjson.dumps({k: view[k] for k in _HEADER_FIELDS}))
        for kind, item_id in set(changed):
            item = find_item(view, kind, item_id)
            if item is not None:
                written += self._write_item(customer_id, item)
        for kind, item_id in set(evicted):
            written += self._write_stub(customer_id, kind, item_id)
        return written

    def save_item(self, customer_id: str, kind: str, item_id: str) -> int:
        """Persist one item of the working copy (an agent changed it in place)."""
        item = self.find_item(customer_id, kind, item_id)
        return self._write_item(customer_id, item) if item is not None else 0

    def _put(self, table: faust.Table, key: str, value: bytes) -> int:
        fingerprint = hash(value)
        if self._written.get(key) == fingerprint:
            return 0
        table[key] = value
        self._written[key] = fingerprint
        return 1

    def _delete(self, table: faust.Table, key: str) -> None:
        if key in table:
            del table[key]
        self._written.pop(key, None)

    def _write_item(self, customer_id: str, item: dict[str, Any]) -> int:
        kind, item_id = item["kind"], item["id"]
        key = item_key(customer_id, kind, item_id)
        self._item_keys.setdefault(customer_id, set()).add(key)
        record = {k: v for k, v in item.items() if k not in CHUNKED}
        written = 0
        for part, count_field in CHUNKED.items():
            chunks = _chunks(item.get(part) or ())
            for number, chunk in enumerate(chunks):
                written += self._put(self.history, chunk_key(customer_id, kind, item_id, number, part), chunk)
            for number in range(len(chunks), self._chunk_counts.get((key, part), 0)):
                self._delete(self.history, chunk_key(customer_id, kind, item_id, number, part))
            self._chunk_counts[(key, part)] = len(chunks)
            record[count_field] = len(chunks)
        return written + self._put(self.items_table, key, orjson.dumps(record))

    def _write_stub(self, customer_id: str, kind: str, item_id: str) -> int:
        key = item_key(customer_id, kind, item_id)
        self._item_keys.setdefault(customer_id, set()).add(key)
        for part in CHUNKED:
            for number in range(self._chunk_counts.pop((key, part), 0)):
                self._delete(self.history, chunk_key(customer_id, kind, item_id, number, part))
        return self._put(self.items_table, key, orjson.dumps({"id": item_id, "kind": kind, "archived": True}))

    # -- rebuilding from the tables ----------------------------------------------

    def drop(self, partitions: Iterable[int]) -> int:
        """Forget the working copies of revoked partitions; returns how many."""
        gone = set(partitions)
        self.generation += 1
        self.dropped |= gone
        dropped = [c for c in {*self._views, *self._item_keys} if self.partition_of(c) in gone]
        for customer_id in dropped:
            self._views.pop(customer_id, None)
            self._item_keys.pop(customer_id, None)
        return len(dropped)

    async def rebuild(self, partitions: Iterable[int]) -> int:
        """Rebuild the working copies of ``partitions`` from the tables (after recovery).

        In slices that yield to the event loop: with 100,000 customers this is
        tens of seconds of work, and done in one go it starved the consumer's
        heartbeat, faust's keepalive thread and ``/api/health`` for as long
        (BENCHMARKS.md).  faust awaits ``on_rebalance_complete`` handlers before
        it resumes the streams, so no event is folded into a half-built view.
        """
        owned = set(partitions)
        self.generation += 1
        self.dropped -= owned
        mine = self.partition_of
        pace = _Pace()
        headers: dict[str, bytes] = {}
        for key, value in list(self.customers.items()):
            if mine(key) in owned:
                headers[key] = value
            await pace.maybe_yield()
        items: dict[str, list[tuple[str, bytes]]] = {}
        for key, value in list(self.items_table.items()):
            customer_id = customer_of_key(key)
            if mine(customer_id) in owned:
                items.setdefault(customer_id, []).append((key, value))
            await pace.maybe_yield()
        for customer_id in {*headers, *items}:
            header = headers.get(customer_id)
            self._views[customer_id] = self._assemble(
                customer_id,
                orjson.loads(header) if header is not None else None,
                [(key, orjson.loads(value)) for key, value in items.get(customer_id, ())],
            )
            await pace.maybe_yield()
        return len(headers.keys() | items.keys())

    def reload(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's view exactly as last written (undoes unsaved changes).

        ``None``, and no working copy, when nothing was ever written for it.
        """
        header = self.customers.get(customer_id)
        records = []
        for key in sorted(self._item_keys.get(customer_id, ())):
            value = self.items_table.get(key)
            if value is not None:
                records.append((key, orjson.loads(value)))
        if header is None and not records:
            self._views.pop(customer_id, None)
            return None
        view = self._assemble(customer_id, orjson.loads(header) if header else None, records)
        self._views[customer_id] = view
        return view

    def _assemble(
        self, customer_id: str, header: dict[str, Any] | None, records: Iterable[tuple[str, dict[str, Any]]]
    ) -> dict[str, Any]:
        view = new_view(customer_id)
        if header is not None:
            view.update(header)
            self._written[customer_id] = hash(orjson.dumps({k: view[k] for k in _HEADER_FIELDS}))
        keys = self._item_keys[customer_id] = set()
        closed = []
        for key, record in records:
            keys.add(key)
            self._written[key] = hash(orjson.dumps(record))
            kind, item_id = record["kind"], record["id"]
            if record.get("archived"):
                view["archived_ids"].add(f"{kind}:{item_id}")
                for part in CHUNKED:
                    self._chunk_counts.pop((key, part), None)
                continue
            for part, count_field in CHUNKED.items():
                count = record.pop(count_field, 0)
                values: list[dict[str, Any]] = []
                for number in range(count):
                    ckey = chunk_key(customer_id, kind, item_id, number, part)
                    chunk = self.history.get(ckey)
                    if chunk is not None:
                        self._written[ckey] = hash(chunk)
                        values.extend(orjson.loads(chunk))
                self._chunk_counts[(key, part)] = count
                if part == "history" or values:
                    record[part] = values
            if lifecycles.is_closed(kind, record["state"]):
                closed.append(record)
            elif kind in ITEM_KINDS:
                view["open"][kind][item_id] = record
        closed.sort(key=lambda i: i["closed_at"] or "", reverse=True)
        view["recent_closed"] = closed
        return view


class _Pace:
    """Yields to the event loop once per :data:`REBUILD_SLICE` of work."""

    def __init__(self) -> None:
        self.since = time.monotonic()

    async def maybe_yield(self) -> None:
        if time.monotonic() - self.since >= REBUILD_SLICE:
            await asyncio.sleep(0)  # let heartbeats and HTTP answers run; not a wait
            self.since = time.monotonic()
