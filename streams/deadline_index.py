"""The deadline index: when each open clock of this worker next needs attention.

A binary heap of ``(due, key)`` with lazy deletion: scheduling or rescheduling is
O(log n) (a push; the old entry goes stale), a tick pops only what is due, so its
cost is O(number due · log n), not O(number open).  Stale entries are dropped when
popped and the heap is rebuilt when they outnumber live ones, which bounds memory
to about two entries per clock.

Pure: instants are integers (microseconds since the epoch) passed in by the
caller, which is the live or the replay clock.  Keys are whatever identifies a
clock (keydesk uses ``(customer_id, kind, item_id)``); each remembers its
partition so that a revoked partition's clocks can be dropped at once.
"""

from __future__ import annotations

import heapq
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class DeadlineIndex(Generic[K]):
    """Next due instant per key, for the partitions this worker owns."""

    __slots__ = ("_heap", "_due", "_partition")

    def __init__(self) -> None:
        self._heap: list[tuple[int, K]] = []
        self._due: dict[K, int] = {}
        self._partition: dict[K, int] = {}

    def __len__(self) -> int:
        return len(self._due)

    def __contains__(self, key: K) -> bool:
        return key in self._due

    def due_at(self, key: K) -> int | None:
        return self._due.get(key)

    def schedule(self, key: K, due: int | None, partition: int) -> None:
        """Set (or move) ``key``'s next due instant; ``None`` cancels it."""
        if due is None:
            self.cancel(key)
            return
        if self._due.get(key) == due:
            return
        self._due[key] = due
        self._partition[key] = partition
        heapq.heappush(self._heap, (due, key))
        if len(self._heap) > 2 * len(self._due) + 1024:
            self._compact()

    def cancel(self, key: K) -> None:
        """Forget ``key`` (its heap entry goes stale and is skipped later)."""
        self._due.pop(key, None)
        self._partition.pop(key, None)

    def next_due(self) -> int | None:
        """The earliest live due instant, or ``None`` when nothing is scheduled."""
        heap, due = self._heap, self._due
        while heap and due.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def pop_due(self, now: int) -> list[K]:
        """Remove and return every key due at or before ``now``, earliest first."""
        heap, due = self._heap, self._due
        fired = []
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if due.get(key) == at:
                del due[key]
                del self._partition[key]
                fired.append(key)
        return fired

    def drop_partitions(self, partitions: Iterable[int]) -> int:
        """Forget the clocks of revoked partitions; returns how many were dropped."""
        gone = set(partitions)
        keys = [key for key, partition in self._partition.items() if partition in gone]
        for key in keys:
            self.cancel(key)
        if keys:
            self._compact()
        return len(keys)

    def _compact(self) -> None:
        self._heap = [(at, key) for key, at in self._due.items()]
        heapq.heapify(self._heap)
