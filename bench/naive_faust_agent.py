"""Baseline (b): the framework floor. A plain faust agent that decodes each event
into a faust Record (json, validation on) and updates one table entry per event.

Run by bench/throughput.py as a subprocess; prints one JSON line with its figures.
``counted`` and ``run`` are shared with the other baseline, bench/batch_floor_agent.py.
"""

from __future__ import annotations

import os
import sys
import time

import faust
import orjson


class Envelope(faust.Record, serializer="json", validation=True):
    event_id: str
    event_type: str
    schema_version: int
    customer_id: str
    entity_id: str
    occurred_at: str
    recorded_at: str
    source: str
    actor: str
    payload: dict


def counted(total: int):
    """A function to call with each event (or batch) counted: it prints the figures and exits at ``total``."""
    state = {"n": 0, "first": None}

    def count(n: int = 1) -> None:
        if state["first"] is None:
            state["first"] = time.perf_counter()
        state["n"] += n
        if state["n"] >= total:
            elapsed = time.perf_counter() - state["first"]
            sys.stdout.write(orjson.dumps({"events": state["n"], "seconds": elapsed}).decode() + "\n")
            sys.stdout.flush()
            os._exit(0)

    return count


def run(app: faust.App) -> None:
    """Run ``app``'s agents in the foreground until a ``counted`` function exits."""
    worker = faust.Worker(app, loglevel="WARNING", quiet=True, redirect_stdouts=False)
    worker.spinner = None
    worker.execute_from_commandline()


def main() -> None:
    bootstrap, topic, total = (
        os.environ["BENCH_KAFKA"],
        os.environ["BENCH_TOPIC"],
        int(os.environ["BENCH_TOTAL"]),
    )
    app = faust.App(
        f"bench-naive-{os.getpid()}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        stream_recovery_delay=0.0,
        consumer_auto_offset_reset="earliest",
        topic_partitions=int(os.environ["BENCH_PARTITIONS"]),
    )
    events = app.topic(topic, key_type=str, value_type=Envelope)
    counts = app.Table("counts", default=int)
    count = counted(total)

    @app.agent(events)
    async def fold(stream):
        async for event in stream:
            counts[event.customer_id] += 1
            count()

    run(app)


if __name__ == "__main__":
    main()
