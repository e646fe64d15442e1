"""Swapping the rule set between batches: no batch is folded half under one rules, half under another.

Batches of the events agent and of the SLA agent may be under way at once (each
awaits the producer and the tables).  :meth:`RulesGate.swap` closes the gate to
new batches, waits until the ones under way are done, swaps, and opens it again:
a writer-first lock, so a steady stream of batches cannot hold a swap off.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager


class RulesGate:
    def __init__(self) -> None:
        self._active = 0
        self._idle: asyncio.Event | None = None
        self._open: asyncio.Event | None = None

    def _events(self) -> tuple[asyncio.Event, asyncio.Event]:
        if self._idle is None or self._open is None:  # made in the running loop, at first use
            self._idle, self._open = asyncio.Event(), asyncio.Event()
            self._idle.set()
            self._open.set()
        return self._idle, self._open

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """Around one batch: waits while a swap is under way."""
        idle, opened = self._events()
        await opened.wait()
        self._active += 1
        idle.clear()
        try:
            yield
        finally:
            self._active -= 1
            if self._active == 0:
                idle.set()

    async def swap(self, apply: Callable[[], None]) -> None:
        """Run ``apply`` once no batch is under way, holding new ones until it has run."""
        idle, opened = self._events()
        while not opened.is_set():  # another swap is under way: after it
            await opened.wait()
        opened.clear()
        try:
            await idle.wait()
            apply()
        finally:
            opened.set()
