"""The benches' clock counts hold under the shipped rules.

``bench/restart_recovery.py`` reports ``clocks_held`` from its deadline index's
item count times the clocks each kind runs (:data:`CLOCKS_PER_KIND`), and
``bench/clock_memory.py`` divides by the clocks; both are wrong if the shipped
rules give a kind other clocks.  So: fold the bench's own events with the
worker's code and count the open clocks there.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bench.clock_memory import build, open_clocks
from bench.restart_recovery import CLOCKS_PER_KIND, customer_events, expected_clocks, item_ids
from schemas.envelope import decode_event
from sla_rules import load_rules
from streams.customer_view import find_item


def test_item_ids_cycle_through_the_kinds_and_keep_the_first_fault_id() -> None:
    assert item_ids(7, 5) == [
        ("fault", "F-0000007"),
        ("ticket", "T-0000007-1"),
        ("order", "O-0000007-2"),
        ("fault", "F-0000007-3"),
        ("order", "O-0000007-4"),
    ]
    assert expected_clocks(100_000, 5) == {
        "fault_items": 200_000,
        "ticket_items": 100_000,
        "order_items": 200_000,
        "clocks": 1_000_000,
        "items": 500_000,
    }


def test_every_bench_event_is_valid_and_keyed_by_its_customer() -> None:
    messages = list(customer_events(3, datetime(2026, 12, 2, 4, 0, tzinfo=UTC), 5))
    assert len(messages) == 3 * 6
    for key, value in messages:
        assert decode_event(value).customer_id == key.decode()


def test_folded_items_run_the_clocks_the_benches_count() -> None:
    state, _ = build(4, 6, load_rules(None))
    assert open_clocks(state.store) == (24, expected_clocks(4, 6)["clocks"])
    assert len(state.timers) == 24  # one deadline index entry per item
    for number in range(4):
        view = state.store[f"C-{number:07d}"]
        for kind, item_id in item_ids(number, 6):
            item = find_item(view, kind, item_id)
            assert item is not None
            metrics = item["sla"]["metrics"]
            assert sum(m["state"] == "pending" for m in metrics.values()) == CLOCKS_PER_KIND[kind], (
                kind,
                sorted(metrics),
            )


def test_a_rebuilt_state_holds_the_same_clocks() -> None:
    state, _ = build(3, 5, load_rules(None))
    store, timers = state.rebuilt()
    assert open_clocks(store) == open_clocks(state.store) == (15, 30)
    assert len(timers) == 15
