"""The views persisted in bounded records, and rebuilt from them exactly."""

import asyncio
from datetime import timedelta

import orjson

from streams import customer_store
from streams.customer_store import CHUNK_BYTES, CHUNK_RECORDS
from streams.customer_view import RECENT_CLOSED_LIMIT, present
from tests.builders import at, event, fault
from tests.streams.conftest import put

#: No header or item record should come anywhere near Kafka's 1 MB default.
RECORD_BOUND = 64 * 1024


async def fold_all(streams, events, customer="C-9"):
    agent = streams.app.agents["fold-events"]
    async with agent.test_context() as running:
        for e in events:
            await put(running, e.to_bytes(), customer.encode())
        await streams.processor.wait_for_event(customer, events[-1].event_id, timeout=30)


def record_sizes(table):
    return [len(value) for value in table.values()]


async def rebuilt(streams, customer):
    """The customer's view as a restarted worker would rebuild it from the tables."""
    store = streams.views
    partition = store.partition_of(customer)
    store.drop([partition])
    assert store.get(customer) is None
    await store.rebuild([partition])
    return store.get(customer)


class TestBoundedRecords:
    async def test_an_alarm_storm_does_not_grow_any_record(self, streams):
        """A thousand open faults of one customer: a thousand small records, no big one."""
        storm = [event("customer.registered", "C-9", customer="C-9")] + [
            fault(f"F-{n}", "reported", at("09:00") + timedelta(seconds=n), customer="C-9")
            for n in range(1000)
        ]
        await fold_all(streams, storm)
        store = streams.views
        assert len(store["C-9"]["open"]["fault"]) == 1000
        assert len(store.items_table) == 1000
        assert max(record_sizes(store.customers)) < RECORD_BOUND
        assert max(record_sizes(store.items_table)) < RECORD_BOUND
        assert max(record_sizes(store.history)) < CHUNK_BYTES

    async def test_a_long_history_is_cut_into_chunks(self, streams):
        """An item with a thousand events keeps them all, in chunks within both bounds."""
        flips = [fault("F-1", "reported", "08:00", customer="C-9")] + [
            fault(
                "F-1",
                "status_changed",
                at("08:00") + timedelta(seconds=n),
                customer="C-9",
                status="pending_customer" if n % 2 else "in_progress",
            )
            for n in range(1, 1000)
        ]
        await fold_all(streams, flips)
        store = streams.views
        chunks = [orjson.loads(value) for value in store.history.values()]
        assert len(chunks) == -(-1000 // CHUNK_RECORDS)
        assert all(len(chunk) <= CHUNK_RECORDS for chunk in chunks)
        assert max(record_sizes(store.history)) <= CHUNK_BYTES
        assert len(store["C-9"]["open"]["fault"]["F-1"]["history"]) == 1000

    async def test_an_item_reopened_cycle_after_cycle_keeps_its_sla_log_in_chunks(self, streams):
        """Thousands of SLA steps on one item (a reopen storm): no item record grows."""
        await fold_all(streams, [fault("F-1", "reported", "08:00", customer="C-9")])
        store = streams.views
        view = store["C-9"]
        steps = [
            {
                "event_id": f"00000000-0000-4000-8000-{n:012d}",
                "event_type": "sla.warning_reached",
                "occurred_at": "2026-03-02T08:00:00+00:00",
                "actor": "keydesk-sla-timer",
                "item_kind": "fault",
                "metric": "repair",
                "cycle": n,
                "due_at": "2026-03-02T08:00:00+00:00",
                "policy": "p v1",
                "caused_by": "x" * 36,
                "threshold": "50%",
            }
            for n in range(5000)
        ]
        async with streams.app.agents["fold-events"].test_context():
            view["open"]["fault"]["F-1"]["sla_log"] = steps
            store.save(view, changed=[("fault", "F-1")])
        assert max(record_sizes(store.items_table)) < RECORD_BOUND
        assert max(record_sizes(store.history)) <= CHUNK_BYTES
        again = await rebuilt(streams, "C-9")
        assert again["open"]["fault"]["F-1"]["sla_log"] == steps


class TestRebuild:
    async def test_a_rebuild_of_many_customers_lets_the_event_loop_run(self, streams, monkeypatch):
        """Heartbeats and health answers go on while a big partition is rebuilt."""
        monkeypatch.setattr(customer_store, "REBUILD_SLICE", 0.0)
        agent = streams.app.agents["fold-events"]
        async with agent.test_context() as running:
            for n in range(50):
                registered = event("customer.registered", f"C-{n}", customer=f"C-{n}")
                await put(running, registered.to_bytes(), f"C-{n}".encode())
                await streams.processor.wait_for_event(f"C-{n}", registered.event_id, timeout=30)
        ran = 0

        async def heartbeat():
            nonlocal ran
            while True:
                ran += 1
                await asyncio.sleep(0)

        beating = asyncio.create_task(heartbeat())
        store = streams.views
        partitions = range(4)
        store.drop(partitions)
        try:
            rebuilt_count = await store.rebuild(partitions)
        finally:
            beating.cancel()
        assert rebuilt_count == 50
        assert ran >= 50  # at least once per customer assembled

    async def test_a_rebuilt_view_equals_the_working_one(self, streams):
        """Dropping the working copy and rebuilding it from the tables changes nothing."""
        events = [
            event("customer.registered", "C-9", customer="C-9"),
            *[
                fault(f"F-{n}", "reported", at("09:00") + timedelta(minutes=n), customer="C-9")
                for n in range(5)
            ],
            fault("F-1", "acknowledged", "09:30", customer="C-9"),
            fault("F-1", "restored", "10:00", customer="C-9", cause="fibre cut"),
            fault("F-1", "closed", "10:30", customer="C-9"),
            fault("F-2", "acknowledged", "08:59", customer="C-9"),
        ]  # rejected: too early
        await fold_all(streams, events)
        before = orjson.dumps(present(streams.views["C-9"]), option=orjson.OPT_SORT_KEYS)
        after = orjson.dumps(present(await rebuilt(streams, "C-9")), option=orjson.OPT_SORT_KEYS)
        assert after == before

    async def test_archived_items_are_still_recognised_after_a_rebuild(self, streams):
        """An item evicted past the recent-closed limit stays archived across a restart."""
        count = RECENT_CLOSED_LIMIT + 3
        lifecycle = []
        for n in range(count):
            opened = at("09:00") + timedelta(minutes=n)
            lifecycle += [
                fault(f"F-{n}", "reported", opened, customer="C-9"),
                fault(f"F-{n}", "restored", opened + timedelta(seconds=20), customer="C-9", cause="reset"),
                fault(f"F-{n}", "closed", opened + timedelta(seconds=40), customer="C-9"),
            ]
        await fold_all(streams, lifecycle)
        view = await rebuilt(streams, "C-9")
        assert len(view["recent_closed"]) == RECENT_CLOSED_LIMIT
        assert {"fault:F-0", "fault:F-1", "fault:F-2"} <= view["archived_ids"]
        straggler = fault("F-0", "revisit_recorded", "12:00", customer="C-9")
        marker = fault("F-new", "reported", "12:01", customer="C-9")  # folded after it
        await fold_all(streams, [straggler, marker])
        assert streams.processor.stats["archived"] == 1
        stubs = [orjson.loads(v) for v in streams.views.items_table.values()]
        assert sum(1 for s in stubs if s.get("archived")) == 3
        assert len(streams.views.history) == RECENT_CLOSED_LIMIT + 1  # and the marker's
