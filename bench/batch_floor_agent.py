"""Reference (f): the floor of keydesk's own consumer path, doing nothing per event.

keydesk's faust app, its tuned consumer (``streams.consumer_tuning``) and its
batches (``streams.event_batches``, acks after each batch), with the worker's
own batch settings, and nothing else: no decoding, no fold, no table, no log
line.  What is left is what faust and aiokafka cost per event on the way in;
the worker (c) cannot be faster than this, so ``f/b`` bounds ``c/b`` from above
whatever the worker's own code costs.

Run by bench/throughput.py as a subprocess; prints one JSON line with its figures.
"""

from __future__ import annotations

import os

from bench.naive_faust_agent import counted, run
from streams.app import BATCH_LINGER, BATCH_MAX, BATCH_WITHIN, App, faust_settings
from streams.event_batches import event_batches
from streams.settings import Settings


def main() -> None:
    bootstrap, topic, total = (
        os.environ["BENCH_KAFKA"],
        os.environ["BENCH_TOPIC"],
        int(os.environ["BENCH_TOTAL"]),
    )
    settings = Settings(kafka=bootstrap, partitions=int(os.environ["BENCH_PARTITIONS"]))
    app = App(
        f"bench-floor-{os.getpid()}",
        broker=f"kafka://{bootstrap}",
        **{
            **faust_settings(settings),
            "web_enabled": False,
            "stream_recovery_delay": 0.0,
            "consumer_auto_offset_reset": "earliest",
        },
    )
    events = app.topic(topic, key_type=bytes, value_type=bytes)
    count = counted(total)

    @app.agent(events)
    async def take(stream):
        async for batch in event_batches(stream, BATCH_MAX, idle=BATCH_WITHIN, linger=BATCH_LINGER):
            count(len(batch))

    run(app)


if __name__ == "__main__":
    main()
