"""Memory per open clock: what a worker holds for each running SLA clock (issue 13).

In process, no broker: the worker's own state built with the worker's own code
for N customers with open items, then weighed.  Per customer the events of
``bench/restart_recovery.py`` (a registration, then ``--items-per-customer``
items, faults, tickets and orders in turn: 10 clocks a customer at 5 items under
the shipped rules), reported "now" so that no clock comes due.  Each event goes
the way ``EventProcessor._process_batch`` takes it on a live worker (one batch
per customer): decoded (``schemas.envelope.decode_event``), folded into the
working view (``CustomerStore.view_for_update``, ``streams.customer_view.fold``),
its touched items' SLA summaries evaluated (``streams.item_sla.sla_summary``)
and scheduled in the deadline index (``SlaTimers.schedule``), then the view
written back record by changed record (``CustomerStore.save``).  The three
tables are plain dicts of key → bytes: what faust's memory store keeps for a
table of raw values (``streams/app.py``), the records a restart reads back from
the changelogs; faust's own buffers and the consumer's are not in it (the RSS
of a real worker is in ``bench/restart_recovery.py``'s figures).

Weighed two ways, each size in a fresh subprocess:

* ``tracemalloc``: the Python heap the state holds, split by freeing one part
  after the other (each part's figure is what freeing it gives back while the
  others stay): the deadline index (``SlaTimers.indexes``), the store's
  bookkeeping (a fingerprint per record key, chunk counts, item keys per
  customer), the views' working copy, the tables' bytes.  Twice: as the live
  worker has it after folding ("folded"), and as a restarted worker has it after
  ``CustomerStore.rebuild`` and ``SlaTimers.rebuild`` from the same tables
  ("rebuilt"; the tables are the same objects, weighed once);
* ``rss``: the process's resident memory before and after folding, without
  tracemalloc (its own traces would count): the allocator's slack included.

    .venv/bin/python bench/clock_memory.py --customers 1000 10000

Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.restart_recovery import customer_events, expected_clocks  # noqa: E402
from schemas.envelope import decode_event  # noqa: E402
from sla_rules import load_rules  # noqa: E402
from streams.customer_store import CustomerStore  # noqa: E402
from streams.customer_view import find_item, fold  # noqa: E402
from streams.event_processor import _item_of  # noqa: E402
from streams.item_sla import items_touched_by, sla_summary  # noqa: E402
from streams.partitioning import murmur2_partition  # noqa: E402
from streams.sla_timers import SlaTimers  # noqa: E402

PARTITIONS = 4


def _partition_of(customer_id: str) -> int:
    return murmur2_partition(customer_id.encode(), PARTITIONS)


class State:
    """A worker's state for the customers of all its partitions: tables, store, timers."""

    def __init__(self, rules: Any) -> None:
        self.rules = rules
        self.tables: tuple[dict[str, bytes], dict[str, bytes], dict[str, bytes]] = ({}, {}, {})
        self.store = CustomerStore(*self.tables, partition_of=_partition_of)  # type: ignore[arg-type]
        self.timers = SlaTimers(self.rules, _partition_of)
        self.timers.rebuild((), range(PARTITIONS))  # owns every partition, as one worker alone

    def fold_customer(self, messages: list[tuple[bytes, bytes]], offset: int) -> int:
        """One customer's events as one batch of the live worker folds them."""
        view: dict[str, Any] | None = None
        changed: set[tuple[str, str]] = set()
        evicted: set[tuple[str, str]] = set()
        touched: set[tuple[str, str]] = set()
        for _key, value in messages:
            event = decode_event(value)
            view = view or self.store.view_for_update(event.customer_id)
            outcome = fold(view, event, offset)
            offset += 1
            if outcome.status in ("applied", "rejected"):
                item = _item_of(event)
                if item is not None:
                    changed.add(item)
            evicted.update(outcome.evicted)
            touched |= items_touched_by(view, event, outcome)
        assert view is not None
        for kind, item_id in touched:
            item = find_item(view, kind, item_id)
            if item is not None:
                item["sla"] = sla_summary(view, item, self.rules)
                self.timers.schedule(view, item)
        self.store.save(view, changed | touched, evicted)
        return offset

    def rebuilt(self) -> tuple[CustomerStore, SlaTimers]:
        """A restarted worker's store and timers, from the same tables."""
        store = CustomerStore(*self.tables, partition_of=_partition_of)  # type: ignore[arg-type]
        asyncio.run(store.rebuild(range(PARTITIONS)))
        timers = SlaTimers(self.rules, _partition_of)
        timers.rebuild(store.items(), range(PARTITIONS))
        return store, timers


def build(customers: int, per_customer: int, rules: Any) -> tuple[State, float]:
    state = State(rules)
    started = time.perf_counter()
    offset = 0
    batch: list[tuple[bytes, bytes]] = []
    for message in customer_events(customers, datetime.now(UTC), per_customer):
        if batch and message[0] != batch[0][0]:
            offset = state.fold_customer(batch, offset)
            batch = []
        batch.append(message)
    state.fold_customer(batch, offset)
    return state, time.perf_counter() - started


def open_clocks(store: CustomerStore) -> tuple[int, int]:
    """(open items with clocks, clocks neither met nor cancelled) in the working copy."""
    items = clocks = 0
    for _, view in store.items():
        for kind_items in view["open"].values():
            for item in kind_items.values():
                metrics = (item.get("sla") or {}).get("metrics") or {}
                items += bool(metrics)
                clocks += sum(m["state"] not in ("met", "cancelled") for m in metrics.values())
    return items, clocks


def deep_size(root: object, seen: set[int]) -> int:
    """Bytes of the objects reachable from ``root`` not in ``seen`` (``sys.getsizeof``), adding them."""
    total = 0
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (bool, type)):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif not isinstance(obj, (str, bytes, int, float)):
            stack.extend(
                getattr(obj, name) for name in getattr(type(obj), "__slots__", ()) if hasattr(obj, name)
            )
            if hasattr(obj, "__dict__"):
                stack.append(obj.__dict__)
    return total


def sized_parts(
    store: CustomerStore, timers: SlaTimers, tables: tuple[dict[str, bytes], ...]
) -> dict[str, int]:
    """Deep sizes of the parts, each counting only what the parts before it do not hold."""
    seen: set[int] = set()
    return {
        "views_working_copy": deep_size(store._views, seen),
        "tables": deep_size(tables, seen),
        "store_bookkeeping": deep_size((store._written, store._chunk_counts, store._item_keys), seen),
        "deadline_index": deep_size(timers.indexes, seen),
    }


def item_fields(store: CustomerStore) -> dict[str, int]:
    """Deep size of the open items' fields over the working copy, largest first (what dominates)."""
    seen: set[int] = set()
    sizes: dict[str, int] = {}
    for _, view in store.items():
        for kind_items in view["open"].values():
            seen.add(id(kind_items))
            for item in kind_items.values():
                sizes["(item dict)"] = sizes.get("(item dict)", 0) + sys.getsizeof(item)
                seen.add(id(item))
                sla = item.get("sla") or {}
                for name, value in item.items():
                    if name == "sla" and isinstance(value, dict):
                        seen.add(id(value))
                        sizes["(sla dict)"] = sizes.get("(sla dict)", 0) + sys.getsizeof(value)
                        for part, inner in sla.items():
                            field = f"sla.{part}"
                            sizes[field] = sizes.get(field, 0) + deep_size(inner, seen)
                        continue
                    sizes[name] = sizes.get(name, 0) + deep_size(value, seen)
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


#: Fields of a clock's summary that are derived (from the deadline, the target and the instant).
DERIVED_METRIC_FIELDS = (
    "elapsed_seconds",
    "remaining_seconds",
    "overdue_seconds",
    "target_seconds",
    "paused_seconds_by_reason",
)


def _intern_strings(obj: Any) -> None:
    """Replace every string value under ``obj`` by its interned copy (one object per distinct text)."""
    stack = [obj]
    while stack:
        node = stack.pop()
        pairs = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in list(pairs):
            if isinstance(value, str):
                node[key] = sys.intern(value)
            elif isinstance(value, (dict, list)):
                stack.append(value)


def lever_probes(state: State) -> dict[str, int]:
    """Deep sizes for the levers: the rebuilt views as they are, with their strings interned,
    and also without the derived clock fields; the store's bookkeeping part by part."""
    store, _ = state.rebuilt()
    figures = {"as_rebuilt": deep_size(store._views, set())}
    seen: set[int] = set()
    deep_size((store._views, state.tables), seen)
    for name in ("_written", "_chunk_counts", "_item_keys"):  # the bookkeeping, part by part
        figures[f"bookkeeping{name}"] = deep_size(getattr(store, name), seen)
    for _, view in store.items():
        _intern_strings(view)
    figures["strings_interned"] = deep_size(store._views, set())
    for _, view in store.items():
        for kind_items in view["open"].values():
            for item in kind_items.values():
                for metric in ((item.get("sla") or {}).get("metrics") or {}).values():
                    for name in DERIVED_METRIC_FIELDS:
                        metric.pop(name, None)
    figures["interned_without_derived_fields"] = deep_size(store._views, set())
    return figures


def _traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def _freed(release: Callable[[], None]) -> int:
    before = _traced()
    release()
    return before - _traced()


def weigh(customers: int, per_customer: int) -> dict[str, Any]:
    """The folded state by deep size; the rebuilt one by tracemalloc (and deep size).

    Folding under tracemalloc was ~25x slower (its traceback per allocation),
    too slow for 100k clocks, so the fold runs untraced and is sized by
    walking it; the restart's path (tables copied, as the recovery fills them;
    views and timers rebuilt from them) runs traced, and is split by freeing.
    """
    rules = load_rules(None)
    state, seconds = build(customers, per_customer, rules)
    items, clocks = open_clocks(state.store)
    index_entries = len(state.timers)
    table_records = sum(len(t) for t in state.tables)
    table_payload = sum(len(k) + len(v) for t in state.tables for k, v in t.items())
    folded = sized_parts(state.store, state.timers, state.tables)
    folded["total"] = sum(folded.values())
    memo = len(state.timers.memo)

    tracemalloc.start()
    base = _traced()
    # The tables as recovery fills them: new key and value objects, one per record.
    copies = tuple({k.encode().decode(): bytes(bytearray(v)) for k, v in t.items()} for t in state.tables)
    state.tables = copies  # type: ignore[assignment]
    tables = _traced() - base
    store, timers = state.rebuilt()
    rebuilt_clocks = open_clocks(store)
    rebuilt_sized = sized_parts(store, timers, state.tables)
    fields = item_fields(store)
    rebuilt_total = _traced() - base

    def index() -> None:
        timers.indexes.clear()

    def bookkeeping() -> None:
        store._written.clear()
        store._chunk_counts.clear()
        store._item_keys.clear()

    def views() -> None:
        store._views.clear()

    rebuilt = {
        "total": rebuilt_total,
        "tables": tables,
        "deadline_index": _freed(index),
        "store_bookkeeping": _freed(bookkeeping),
        "views_working_copy": _freed(views),
    }
    rebuilt["other"] = rebuilt_total - sum(v for k, v in rebuilt.items() if k != "total")
    tracemalloc.stop()
    levers = lever_probes(state)
    return {
        "mode": "sizes",
        "customers": customers,
        "items": items,
        "clocks": clocks,
        "deadline_index_entries": index_entries,
        "step_memo_entries": memo,
        "rebuilt_items_clocks": list(rebuilt_clocks),
        "table_records": table_records,
        "table_key_value_bytes": table_payload,
        "fold_s": round(seconds, 1),
        "folded_deep_size": folded,
        "rebuilt_tracemalloc": rebuilt,
        "rebuilt_deep_size": rebuilt_sized,
        "rebuilt_item_fields": fields,
        "views_lever_probes": levers,
    }


def _rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def weigh_rss(customers: int, per_customer: int) -> dict[str, Any]:
    rules = load_rules(None)  # the rules' own memory is not per clock
    gc.collect()
    base = _rss()
    state, seconds = build(customers, per_customer, rules)
    gc.collect()
    total = _rss() - base
    items, clocks = open_clocks(state.store)
    return {
        "mode": "rss",
        "customers": customers,
        "items": items,
        "clocks": clocks,
        "fold_s": round(seconds, 1),
        "rss_delta": total,
    }


def per_clock(figures: dict[str, Any]) -> str:
    clocks = figures["clocks"]
    if figures["mode"] == "rss":
        return f"| {clocks:,} | RSS delta | folded | {figures['rss_delta'] / clocks:,.0f} | | | | |"
    rows = []
    for phase, how in (
        ("folded_deep_size", "deep size"),
        ("rebuilt_deep_size", "deep size"),
        ("rebuilt_tracemalloc", "tracemalloc"),
    ):
        part = figures[phase]
        total = part.get("total", sum(part.values()))
        cells = [total] + [
            part[name] for name in ("views_working_copy", "tables", "store_bookkeeping", "deadline_index")
        ]
        rows.append(
            f"| {clocks:,} | {how} | {phase.split('_')[0]} | "
            + " | ".join(f"{c / clocks:,.0f}" for c in cells)
            + " |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[1000, 10_000])
    parser.add_argument("--items-per-customer", type=int, default=5, metavar="K")
    parser.add_argument("--one", choices=("sizes", "rss"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child: one size, one way, one JSON line
        figures = (weigh if args.one == "sizes" else weigh_rss)(args.customers[0], args.items_per_customer)
        figures["expected"] = expected_clocks(args.customers[0], args.items_per_customer)
        print(orjson.dumps(figures).decode(), flush=True)
        return
    results = []
    for customers in args.customers:
        for mode in ("sizes", "rss"):
            done = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    mode,
                    "--customers",
                    str(customers),
                    "--items-per-customer",
                    str(args.items_per_customer),
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results.append(orjson.loads(done.stdout.splitlines()[-1]))
            print(f"{customers} customers, {mode}: done", file=sys.stderr, flush=True)
    print("| open clocks | how | state | bytes/clock | views | tables | store bookkeeping | deadline index |")
    print("|---:|---|---|---:|---:|---:|---:|---:|")
    for figures in results:
        print(per_clock(figures))
    print(orjson.dumps(results).decode())


if __name__ == "__main__":
    main()
