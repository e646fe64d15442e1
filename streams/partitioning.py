"""Which partition a customer's events live on: Kafka's default partitioner, pure.

Kept apart from ``streams/event_processor.py`` (which needs faust) so that
what only has to know a customer's home partition (``streams/replay.py``,
the publisher, tests) imports no faust and no broker client beyond aiokafka's
pure murmur2.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import lru_cache

from aiokafka.partitioner import murmur2  # type: ignore[import-untyped]  # aiokafka ships no types


@lru_cache(maxsize=1 << 16)
def murmur2_partition(key: bytes, partitions: int) -> int:
    """The partition Kafka's default (Java) partitioner picks for ``key``.

    Memoised: pure-Python murmur2 ran twice per event over a few thousand
    customer ids (~3 % of processing, BENCHMARKS.md "Worker throughput").
    """
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def home_partition(customer_id: str, partitions: int) -> int:
    """The partition a customer's events, view and SLA steps live on."""
    return murmur2_partition(customer_id.encode(), partitions)


@dataclass(frozen=True)
class Placement:
    """Where a customer lives and which partitions this worker serves now.

    All an edge (the dispatch queue, the HTTP API's read routing) needs to know
    of partitions, handed to it by ``handlers/composition.py`` instead of the
    processor and its timers.
    """

    home: Callable[[str], int]  # customer id -> its home partition
    owned: Callable[[], Collection[int]]  # the partitions this worker folds and times
