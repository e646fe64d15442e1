"""A seek made while the drain loop hands a record on is not undone by that record.

The drain loop awaits the conductor's callback directly (no task per message), so a
rebalance does not cancel it: it can return after the recovery's seek to the committed
offsets.  faust records the read offset after the callback; recorded so here, the stale
record's offset overwrote the seek's, the records fetched again below it were dropped as
read, and the partition never committed again (issue 9, ``bench/restart_recovery.py``).
"""

import asyncio
from types import SimpleNamespace

import faust
from faust.types import TP

from streams.consumer_tuning import PINNED_FAUST, Consumer

EVENTS = TP("keydesk.events", 3)


class Flag:
    def __init__(self):
        self.set_ = False

    def is_set(self):
        return self.set_


def draining_consumer(fetches, callback, *, read_offset, committed):
    """Our consumer with what ``_drain_messages`` reads; ``fetches`` are its getmany results."""
    consumer = Consumer.__new__(Consumer)
    stopped = Flag()
    batches = iter(fetches)

    async def getmany(timeout):
        batch = next(batches, None)
        if batch is None:
            stopped.set_ = True
            return
        for offset in batch:
            yield EVENTS, SimpleNamespace(offset=offset, topic=EVENTS.topic, key=None, value=None)

    async def seek_to_committed():
        return {EVENTS: committed}

    async def sleep(seconds):
        await asyncio.sleep(seconds)

    consumer.__dict__.update(
        callback=callback,
        getmany=getmany,
        seek_to_committed=seek_to_committed,
        sleep=sleep,
        _stopped=stopped,
        _crashed=Flag(),
        suspend_flow=Flag(),
        _read_offset={EVENTS: read_offset},
        _committed_offset={EVENTS: committed},
        _commit_every=None,
        _commit_fut=None,
        _n_acked=0,
        diag=SimpleNamespace(set_flag=lambda flag: None, unset_flag=lambda flag: None),
        app=SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True)),
        log=SimpleNamespace(dev=lambda *a: None),
    )
    return consumer


async def test_the_seek_to_the_committed_offsets_during_a_hand_over_wins():
    """Record 83 held up across the rebalance; the recovery seeks back to 81 meanwhile.

    81 and 82 were folded before the rebalance but their acks were cleared with the
    revocation: they must come again, or the partition never commits past 81.
    """
    assert faust.__version__ == PINNED_FAUST
    handed: list[int] = []
    held_up = asyncio.Event()
    released = asyncio.Event()

    async def callback(message):
        handed.append(message.offset)
        if len(handed) == 1:  # the record in hand when the rebalance began
            held_up.set()
            await released.wait()

    consumer = draining_consumer([[83], [81, 82, 83, 84]], callback, read_offset=82, committed=81)
    fetcher = SimpleNamespace(_stopped=Flag())
    draining = asyncio.create_task(consumer._drain_messages(fetcher))
    await held_up.wait()
    await consumer.perform_seek()  # faust's own: read and committed offsets from the seek
    assert consumer._read_offset[EVENTS] == 81
    released.set()
    await asyncio.wait_for(draining, 10)
    assert handed == [83, 81, 82, 83, 84], handed


async def test_records_below_the_read_offset_are_still_dropped_without_a_seek():
    """What the read offset is for: a fetch that overlaps what was handed on is not doubled."""
    handed: list[int] = []

    async def callback(message):
        handed.append(message.offset)

    consumer = draining_consumer([[5, 6, 7], [6, 7, 8]], callback, read_offset=None, committed=5)
    await asyncio.wait_for(consumer._drain_messages(SimpleNamespace(_stopped=Flag())), 10)
    assert handed == [5, 6, 7, 7, 8]  # faust's own rule: an offset equal to the read offset passes


async def test_intake_waits_for_no_commit():
    """A commit flushes the producer first, which can take seconds under load: faust's loop, at
    every ``commit_every`` acks, awaited one (or the timer's under way), folding nothing meanwhile."""
    handed: list[int] = []
    commits: list[int] = []

    async def callback(message):
        handed.append(message.offset)
        consumer._n_acked += 1

    async def commit():
        commits.append(len(handed))
        return True

    consumer = draining_consumer([[1, 2, 3, 4, 5, 6]], callback, read_offset=None, committed=1)
    under_way = asyncio.get_running_loop().create_future()  # the timer's commit, never finishing here
    consumer.__dict__.update(_commit_every=2, _commit_fut=under_way, commit=commit)
    await asyncio.wait_for(consumer._drain_messages(SimpleNamespace(_stopped=Flag())), 10)
    assert handed == [1, 2, 3, 4, 5, 6] and commits == []
    flushing = asyncio.Event()

    async def slow_commit():  # a flush that takes long: intake goes on meanwhile
        commits.append(len(handed))
        await flushing.wait()
        return True

    consumer = draining_consumer([[1, 2, 3, 4, 5, 6]], callback, read_offset=None, committed=1)
    consumer.__dict__.update(_commit_every=2, commit=slow_commit)  # none under way: intake starts one
    handed.clear()
    await asyncio.wait_for(consumer._drain_messages(SimpleNamespace(_stopped=Flag())), 10)
    assert handed == [1, 2, 3, 4, 5, 6]  # all handed on while the commit it started was flushing
    assert len(commits) == 1  # and no second one beside it
    flushing.set()
    await consumer._intake_commit
