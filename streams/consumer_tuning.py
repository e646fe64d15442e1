"""A faust Kafka consumer whose message drain loop does not spawn tasks per message.

Why this exists (measured on faust-streaming 0.15.3, see BENCHMARKS.md, issue 2):
faust's ``Consumer._drain_messages`` hands every fetched message to the
conductor through ``Service.wait_first(callback(message), suspend_flow.wait())``.
``wait_first`` wraps the callback *and* three event waits (``suspend_flow``,
``stopped``, ``crashed``) in fresh tasks, runs ``asyncio.wait`` on them and
cancels the losers: four tasks, a wait and three cancellations for each Kafka
message.  On the worker that was the single largest framework cost per event.

:class:`Consumer` keeps the drain loop of 0.15.3 (read-offset bookkeeping, gap
tracking for acks, ``commit_every`` commits, the periodic ``sleep(0)``) and
awaits ``callback(message)`` directly while the flow is not suspended; once it
is (``Consumer.stop_flow``, at every revocation), the original ``wait_first``
race is used for that message.

One difference follows from that, and is why the read offset is recorded
*before* the callback here, where faust records it after: a callback awaited
directly is not cancelled when a rebalance suspends the flow.  It may be held up
(by flow control, or by the producer buffer in ``wait_until_producer_ebb``)
for the whole rebalance, the fetcher is not stopped by one (``App._stop_fetcher``
runs only at shutdown), and it can return after the recovery has sought every
partition to its committed offset (``Consumer.perform_seek``, which also sets
the read offsets).  Recorded after the callback, that stale record's offset
overwrote the seek's read offset, so the records fetched again from the
committed offset up to it were dropped as already read: never folded, never
acked in the new generation, and that partition committed nothing more until
the worker was restarted (``Consumer._new_offset`` below refuses to commit past
an offset that was not acked).  Issue 9: seen after a rebalance in
``bench/restart_recovery.py`` (432,508 of 600,000 events left uncommitted);
``tests/faults/test_commits_after_rebalance.py`` and
``tests/streams/test_consumer_drain.py`` are its tests.  Recorded before, a seek
made during the callback wins; the stale record itself reaches the stream with
its old generation and is dropped there unacked (``streams.event_batches``).

A second difference: every ``commit_every`` acknowledged records faust's loop
awaits ``Consumer.commit``, which flushes the producer first, or waits for a
commit already under way (the commit timer's) to finish.  Under load a flush
takes seconds, and while intake stood waiting the worker folded nothing for 10 s
and more (issue 12's fan-out run, behind a 21.7 s commit).  Here intake starts
that commit in a task of its own, and none while one is under way (the timer
commits again a second after it).

Offsets are still only acknowledged by the streams after processing, and
committed by faust's ``Consumer.commit``, which flushes the producer first:
at-least-once is untouched.

The consumer is selected through the broker URL scheme ``keydesk-kafka://``,
registered here as an alias of this module's :class:`Transport`; see
``streams.app.faust_settings`` (``broker_consumer``).  Only the consumer uses it,
producers keep faust's plain aiokafka transport.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import ClassVar, cast

import faust
from faust.transport import drivers
from faust.transport.consumer import CONSUMER_FETCHING
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import ConsumerT
from mode import Service, ServiceT
from mode.utils.queues import FlowControlEvent

#: The faust release whose ``Consumer._drain_messages`` this module mirrors.
PINNED_FAUST = "0.15.3"
#: URL scheme of the keydesk consumer transport (``keydesk-kafka://host:port``).
SCHEME = "keydesk-kafka"

log = logging.getLogger(__name__)


class Consumer(faust_aiokafka.Consumer):
    """faust's aiokafka consumer, draining fetched messages without per-message tasks."""

    _intake_commit: asyncio.Task | None = None

    def _start_commit(self) -> None:
        """A commit in a task of its own (intake goes on meanwhile), unless one is under way (the
        1 s timer's, or the last one started here); a failure is logged."""
        if self._commit_fut is not None or (self._intake_commit and not self._intake_commit.done()):
            return
        task = asyncio.ensure_future(self.commit())
        self._intake_commit = task  # held: a task only the loop refers to can be collected

        def done(task: asyncio.Task) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.warning("intake commit failed: %r", task.exception())

        task.add_done_callback(done)

    async def _drain_messages(self, fetcher: ServiceT) -> None:  # pragma: no cover
        """faust 0.15.3 ``Consumer._drain_messages`` minus the per-message ``wait_first``.

        On any other faust version this defers to faust's own implementation,
        since the loop below is a copy of 0.15.3's and may not match a newer one.
        """
        if faust.__version__ != PINNED_FAUST:
            log.warning("faust %s is not %s: using faust's own drain loop", faust.__version__, PINNED_FAUST)
            return await super()._drain_messages(fetcher)
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        flow_suspended = self.suspend_flow.is_set

        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        flag_consumer_fetching = CONSUMER_FETCHING
        set_flag = self.diag.set_flag
        unset_flag = self.diag.unset_flag
        commit_every = self._commit_every
        acks_enabled_for = self.app.topics.acks_enabled_for

        yield_every = 100
        num_since_yield = 0
        sleep = asyncio.sleep

        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(flag_consumer_fetching)
                ait = cast(AsyncIterator, getmany(timeout=1.0))

                # Sleeping because sometimes getmany is called in a loop
                # never releasing to the event loop
                await self.sleep(0)
                if not self.should_stop:
                    async for tp, message in ait:
                        num_since_yield += 1
                        if num_since_yield > yield_every:
                            await sleep(0)
                            num_since_yield = 0

                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is None or offset >= r_offset:
                            # Read before the awaits below, not after them as in faust:
                            # a seek made meanwhile (the rebalance's seek to the committed
                            # offsets) must win, or the records it fetches again are
                            # dropped as read (see the module docstring).
                            set_read_offset(tp, offset)
                            gap = offset - (r_offset or 0)
                            # We have a gap in income messages
                            if gap > 1 and r_offset:
                                acks_enabled = acks_enabled_for(message.topic)
                                if acks_enabled:
                                    await self._add_gap(tp, r_offset + 1, offset)
                            if commit_every is not None:
                                if self._n_acked >= commit_every:
                                    # Started, not awaited: intake must not wait for a producer flush.
                                    self._n_acked = 0
                                    self._start_commit()
                            if flow_suspended():
                                # faust's own race: a rebalance began between the fetch and here.
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                            else:
                                await callback(message)
                        else:
                            self.log.dev(
                                "DROPPED MESSAGE ROFF %r: k=%r v=%r",
                                offset,
                                message.key,
                                message.value,
                            )
                    unset_flag(flag_consumer_fetching)

        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                # we're already stopping so ignore
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(flag_consumer_fetching)

    async def getmany(self, timeout: float):  # pragma: no cover - the loop is faust's
        """faust 0.15.3 ``Consumer.getmany``, except that no fetched record is dropped.

        faust skips a fetched record whose partition is not active at that
        moment (paused because its stream's buffer is full, or being recovered)
        and stops iterating when the flow stops or the generation changes, yet
        the client's fetch position has already moved past every record it
        returned.  Without a seek nothing reads those records again: a worker
        catching up after a crash lost 26 consecutive events of one partition
        that way in the kill -9 fault test, and the alert agent 14 steps.  Here
        each partition with records not handed on is sought back to the first
        of them, so they are fetched again once it is active.
        """
        if faust.__version__ != PINNED_FAUST:
            async for item in super().getmany(timeout):
                yield item
            return
        records, active_partitions = await self._wait_next_records(timeout)
        generation_id = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return
        handed: dict | None = {}  # tp -> last offset handed on; None: all sought to committed
        try:
            if self.flow_active:
                to_message = self._to_message
                for tp, record in self.scheduler.iterate(records):
                    if not self.flow_active or self.app.consumer_generation_id != generation_id:
                        break
                    if (
                        active_partitions is None
                        or tp in active_partitions
                        or tp in self._buffered_partitions
                    ):
                        self.app.monitor.track_tp_end_offset(tp, self.highwater(tp))
                        handed[tp] = record.offset
                        yield tp, to_message(tp, record)
            else:
                # Every partition goes back to its committed offset: the records
                # fetched here must not be sought to afterwards (they may lie past
                # it), even should the flow have resumed during the seek.
                handed = None
                try:
                    await self.perform_seek()
                except Exception as ex:
                    self.log.warning(f"exception performing seek when flow not active {ex}")
                return
        finally:
            # A stopped flow or a new generation is a rebalance: it seeks every
            # partition to its committed offset, which must not be overtaken.
            if handed is not None and self.flow_active and self.app.consumer_generation_id == generation_id:
                await self._seek_back_unhanded(records, handed)

    async def _seek_back_unhanded(self, records, handed) -> None:
        """Seek each partition back to its first fetched record not handed on.

        Through faust's own ``seek`` (the client lives in its own thread; this
        also resets the read offset that faust drops older records by).
        """
        for tp, fetched in records.items():
            last = handed.get(tp)
            left = [r.offset for r in fetched if last is None or r.offset > last]
            if not left:
                continue
            first = min(left)
            try:
                await self.seek(tp, first)
            except Exception as exc:  # no longer assigned: its next owner reads them
                self.log.info("Could not seek %r back to %r: %r", tp, first, exc)
                continue
            self.log.info("Fetched records of %r not handed on: sought back to %r", tp, first)

    def _new_offset(self, tp):
        """The offset to commit for ``tp``: only past offsets acked without a hole.

        faust 0.15.3 lets the first acked offset be one past the committed one
        (``min(acked) - committed > 1``) and so commits over an event that is not
        acked yet: the one at the committed offset, which is the next to be read.
        Here the run of acked offsets must start exactly at the committed offset
        (gaps of compacted topics are filled in by faust's own code first).
        """
        acked = self._acked[tp]
        committed = self._committed_offset[tp]
        if acked and committed is not None:
            self._fill_gaps(tp, acked)
            if min(acked) > committed:
                return None
        return super()._new_offset(tp)

    def _fill_gaps(self, tp, acked) -> None:
        """Count the known gaps up to the highest acked offset as acked (faust's step)."""
        gap_for_tp = self._gap[tp]
        if not gap_for_tp:
            return
        max_offset = max(acked)
        candidates = sorted(gap_for_tp.overlap(0, max_offset), key=lambda x: x.begin)
        if candidates:
            filler = [n for entry in candidates for n in range(entry.begin, entry.end)]
            acked.extend(filler)
            gap_for_tp.chop(0, max(filler[-1], max_offset + 1))
            acked.sort()


class FlowControl(FlowControlEvent):
    """faust's stream flow control, except that resuming a flowing stream drops nothing.

    ``FlowControlEvent.resume`` empties every stream buffer (the channel queues
    are ``clear_on_resume``), and faust's recovery calls it at its very end
    (``Recovery.on_recovery_completed``, also ``_resume_streams``) after it has
    already resumed the flow earlier in the recovery, resumed the stream
    partitions and awaited the seek to the committed offsets.  While that seek
    is awaited the fetcher hands on records fetched from the committed offset
    onwards; the clear then throws away those still in the buffer, unacked,
    while the client's position is past them: nobody reads them again.  The
    kill -9 fault test lost runs of 2 to 26 events of a partition so (issue 9).

    Here only a resume that ends a suspension empties the buffers (what faust
    means: a rebalance suspended the flow, anything buffered since is stale).
    Resuming a flow that is already active leaves them: events taken there were
    fetched in the current generation, so at worst again after the seek, and
    folds are idempotent.
    """

    def resume(self) -> None:
        if self.is_active():
            return
        super().resume()


class Transport(faust_aiokafka.Transport):
    """faust's aiokafka transport with :class:`Consumer` as its consumer."""

    Consumer: ClassVar[type[ConsumerT]] = Consumer


def register() -> str:
    """Make ``keydesk-kafka://`` resolve to :class:`Transport`; returns the scheme."""
    drivers.TRANSPORTS.aliases.setdefault(SCHEME, f"{__name__}:Transport")
    return SCHEME


def consumer_urls(bootstrap_servers: list[str]) -> list[str]:
    """``broker_consumer`` URLs for the given ``host:port`` servers."""
    return [f"{register()}://{server}" for server in bootstrap_servers]
