"""Where the worker's own time goes per event: its batch processing in process, without Kafka.

The worker's real ``EventProcessor.process_batch`` over the events of
``bench/event_mix.py`` (live dates), in batches of the worker's ``BATCH_MAX``,
on faust's memory store with the changelog producer not started (what faust
does up to handing each changelog record to its producer is included; aiokafka's
send and everything on the way in from the broker are not: those are what
``bench/throughput.py``'s (f) measures).  Each stage is timed by wrapping the
processor's own methods (``perf_counter`` around each call), so the split adds
a little to the total but not to any one stage's share:

- decode: bytes to a validated event (``_decode``: parse, envelope, payload, signature);
- fold + line: the fold into the view and the summary log line (``_fold_one``),
  of which the line alone (the processor's logger);
- SLA: the clocks of the touched items, once per item per batch (``_refresh_sla``);
- save: the changed records, serialised and written to the tables (``CustomerStore.save``);
- the rest of ``process_batch`` (partition checks, touched items, timers).

Best of ``--repeats`` runs, each on fresh state; prints a table and one JSON line.

    .venv/bin/python bench/worker_stages.py --events 20000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import orjson
from faust.types import TP

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.event_mix import generate  # noqa: E402
from streams.app import BATCH_MAX, build_streams  # noqa: E402
from streams.log_config import configure_logging  # noqa: E402
from streams.partitioning import murmur2_partition  # noqa: E402
from streams.settings import Settings  # noqa: E402

PARTITIONS = 4
SECRET = "a bench secret of 32 or more characters"


class Discard:
    """An outbound topic (dead letters, forwarded events) that keeps nothing."""

    async def send(self, **kwargs) -> None:
        pass


def timed(owner: object, name: str, spent: Counter, stage: str) -> None:
    """Wrap ``owner.name`` so that the time spent in it adds up in ``spent[stage]``."""
    original = getattr(owner, name)
    clock = time.perf_counter
    if asyncio.iscoroutinefunction(original):

        async def wrapper_async(*args, **kwargs):
            started = clock()
            try:
                return await original(*args, **kwargs)
            finally:
                spent[stage] += clock() - started

        setattr(owner, name, wrapper_async)
    else:

        def wrapper(*args, **kwargs):
            started = clock()
            try:
                return original(*args, **kwargs)
            finally:
                spent[stage] += clock() - started

        setattr(owner, name, wrapper)


async def one_run(messages: list[tuple[bytes, bytes]]) -> tuple[float, Counter, Counter]:
    built = build_streams(
        Settings(kafka="unused:9092", partitions=PARTITIONS, secret=SECRET),
        broker="kafka://unused:9092",
    )
    built.app.finalize()
    built.app.conf.store = "memory://"
    built.app.flow_control.resume()
    processor = built.processor
    topic = processor.events.get_topic_name()  # where the events come from (not SLA steps)
    processor.dead_letters = processor.events = Discard()
    built.app.producer.key_partition = lambda topic, key: TP(topic, murmur2_partition(key, PARTITIONS))
    spent: Counter = Counter()
    timed(processor, "_decode", spent, "decode")
    timed(processor, "_fold_one", spent, "fold + line")
    timed(processor.log, "info", spent, "of which the line")
    timed(processor, "_refresh_sla", spent, "SLA")
    timed(processor.views, "save", spent, "save")
    generation = built.app.consumer_generation_id
    taken = [
        SimpleNamespace(
            message=SimpleNamespace(
                key=key,
                value=value,
                partition=murmur2_partition(key, PARTITIONS),
                offset=offset,
                topic=topic,
                generation_id=generation,
                headers=[],
            )
        )
        for offset, (key, value) in enumerate(messages)
    ]
    started = time.perf_counter()
    for first in range(0, len(taken), BATCH_MAX):
        await processor.process_batch(taken[first : first + BATCH_MAX])
    return time.perf_counter() - started, spent, Counter(processor.stats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sys.stderr = open(os.devnull, "w")  # noqa: SIM115  # the summary lines are written, to nowhere
    configure_logging("json")
    start = datetime.now(UTC).replace(second=0, microsecond=0)
    messages = list(generate(args.events, start=start))
    runs = [asyncio.run(one_run(messages)) for _ in range(args.repeats)]
    total, spent, stats = min(runs, key=lambda run: run[0])
    n = len(messages)
    inside = sum(v for k, v in spent.items() if k != "of which the line")
    rows = [(stage, spent[stage]) for stage in ("decode", "fold + line", "of which the line", "SLA", "save")]
    rows.append(("the rest of process_batch", total - inside))
    print(f"{n:,} events, best of {args.repeats}: {total / n * 1e6:.1f} µs/event ({n / total:,.0f} events/s)")
    print("| stage | µs/event | share |\n|---|---:|---:|")
    for stage, seconds in rows:
        print(f"| {stage} | {seconds / n * 1e6:.1f} | {seconds / total:.0%} |")
    print(f"records written per event: {stats['records_written'] / n:.2f}")
    figures = {
        "events": n,
        "us_per_event": total / n * 1e6,
        "stages_us_per_event": {stage: seconds / n * 1e6 for stage, seconds in rows},
        "records_written_per_event": stats["records_written"] / n,
    }
    print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
