"""Batches of events taken straight from a faust stream's channel queue.

Why not ``Stream.take_events`` (measured on faust-streaming 0.15.3, see
BENCHMARKS.md, "Worker throughput (issue 2)"):

* every event goes through the stream iterator *and* an ``async`` buffering
  processor (``add_to_buffer``), then is acked with one ``await stream.ack()``
  each: several coroutine frames and awaits per event;
* ``take_events(max, within)`` yields whatever arrived in ``within`` seconds.
  The drain loop, the stream and the processing share one thread, so under a
  backlog a 5 ms window held ~23 events (873 batches for 20,000 events): table
  writes and SLA refreshes barely coalesce per customer.

:func:`event_batches` reads the events from the channel queue in bulk and
closes a batch when it holds ``max_events``, when no further event arrived for
``idle`` seconds, or when the first event of the batch is ``linger`` seconds
old.  A lone hotline event therefore waits ``idle`` (not a fixed window), a
backlog is folded in large batches.

Per event it does what faust 0.15.3's ``Stream._py_aiter`` does (that method is
the reference; keep them in step on upgrades): track the message as unacked for
acking topics, call the stream sensors, and ack only after the batch was
processed.  Two deliberate differences, both because an ack is a promise that
the event is folded (issue 9, "a broker restart under load silently loses
events"):

* an event from a stale consumer generation is dropped *without* an ack.
  faust acks it, which puts its offset among the acked ones although nothing
  folded it; the next commit can then jump past it.  Unacked, it is fetched
  again: every rebalance ends with a seek to the committed offsets
  (``Consumer.perform_seek`` in ``faust.tables.recovery.Recovery``), and the
  drain loop keeps that seek even when such a stale record reached this queue
  only after it (``streams.consumer_tuning``; before, it undid the seek and
  the partition never committed again).  An event of the
  current generation taken while flow is still suspended was fetched after
  that seek and would never come again: faust skips (and acks) it too; here
  it is held until the flow resumes and then processed;
* a batch whose processing did not finish (the agent crashed or was cancelled
  at shutdown) is not acked either, where faust's ``take_events`` acks in a
  ``finally``.  Its events are redelivered to whoever owns the partition next;
  folds are idempotent, so a second delivery is harmless.

Offsets become committable only after the acks, and faust's ``Consumer.commit``
flushes the producer (changelog, dead letters) before committing: at-least-once
is kept.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import faust
from faust.exceptions import Skip
from faust.types import EventT, StreamT
from mode.utils.futures import maybe_async

#: The faust release whose ``Stream._py_aiter`` per-event bookkeeping is mirrored.
PINNED_FAUST = "0.15.3"


async def event_batches(
    stream: StreamT, max_events: int, *, idle: float, linger: float, stats: Counter | None = None
) -> AsyncIterator[list[EventT]]:
    """Yield lists of up to ``max_events`` events from ``stream``; ack them afterwards.

    The consumer may remove events from a yielded list that it did not handle:
    those are not acked, so that whoever owns the partition next gets them.

    ``idle``: a batch is closed once no event arrived for this long (seconds).
    ``linger``: and at the latest this long after its first event arrived.
    ``stats``: counts ``dropped_for_refetch`` (events left for the post-rebalance refetch).
    """
    stats = stats if stats is not None else Counter()
    if faust.__version__ != PINNED_FAUST:  # pragma: no cover - guards an upgrade
        async for batch in stream.take_events(max_events, within=idle):
            yield list(batch)
        return
    app = stream.app
    channel = stream.channel
    queue = channel.queue
    errors = queue._errors
    loop = asyncio.get_running_loop()
    flow_active = app.flow_control.is_active
    consumer = app.consumer
    add_unacked = consumer.unacked.add
    acking_topics = app.topics.acking_topics
    on_message_in = app.sensors.on_message_in
    on_event_in = app.sensors.on_stream_event_in
    on_event_out = app.sensors.on_stream_event_out
    on_message_out = app.sensors.on_message_out

    processors = stream._processors  # none in keydesk; the agent test harness adds one

    async def process(event: EventT) -> None:
        """Run the stream's processors on a taken event, as faust's iterator does."""
        value = event.value
        try:
            for processor in processors:
                value = await maybe_async(processor(value))
        except Skip:
            skipped.append(batch.pop())
            states.pop()

    batch: list[EventT] = []
    states: list = []
    skipped: list[EventT] = []  # events a stream processor skipped: done with, so acked
    held: list[EventT] = []  # of the current generation, taken while flow was suspended

    def take(item) -> bool:
        if not isinstance(item, EventT):  # plain values are not acked by faust either
            raise TypeError(f"event_batches needs events, the channel gave {item!r}")
        message = item.message
        if message.generation_id != app.consumer_generation_id:
            stats["dropped_for_refetch"] += 1  # no ack: the seek after the rebalance refetches
            return False
        if not flow_active():
            held.append(item)  # taken up again once flow resumes (see the loop)
            return False
        if message.topic in acking_topics and not message.tracked:
            message.tracked = True
            add_unacked(message)
            on_message_in(message.tp, message.offset, message)
        states.append(on_event_in(message.tp, message.offset, stream, item))
        batch.append(item)
        return True

    def ack(events: list[EventT], sensor_states: list | None) -> None:
        for n, event in enumerate(events):
            last = event.ack()
            message = event.message
            on_event_out(
                message.tp,
                message.offset,
                stream,
                event,
                sensor_states[n] if sensor_states is not None else None,
            )
            if last:
                on_message_out(message.tp, message.offset, message)

    pending_error: BaseException | None = None
    try:
        while True:
            if pending_error is not None:
                raise pending_error
            if held:
                # Fetched after the post-rebalance seek, so never fetched again:
                # wait for the flow to resume and take them (or drop them, should
                # yet another rebalance have made them stale meanwhile).
                await app.flow_control.acquire()
                waiting, held[:] = list(held), []
                for item in waiting:
                    if take(item) and processors:
                        await process(batch[-1])
            if not batch and take(await queue.get()) and processors:
                await process(batch[-1])
            first = last = loop.time()
            while len(batch) < max_events and not errors:
                if not queue.empty():
                    while len(batch) < max_events and not queue.empty() and not errors:
                        if take(queue.get_nowait()) and processors:
                            await process(batch[-1])
                    last = loop.time()
                    continue
                wait = min(last + idle, first + linger) - loop.time()
                if wait <= 0:
                    break
                try:
                    # Queue.get leaves the item in the queue until it returns, so
                    # a timeout loses nothing (and 3.11's wait_for returns a
                    # result that raced with the timeout).
                    item = await asyncio.wait_for(queue.get(), wait)
                except TimeoutError:
                    break
                except StopAsyncIteration as exc:  # thrown into the channel: end
                    pending_error = exc  # after this batch
                    break
                if take(item) and processors:
                    await process(batch[-1])
                last = loop.time()
            if skipped:
                ack(skipped, None)
                skipped.clear()
            if not batch:
                continue
            done, done_states = batch, states
            batch, states = [], []
            given = list(done)
            # Resumed: the batch was processed.  Closed instead (GeneratorExit at the
            # yield: the agent crashed or stopped): nothing is acked, all is redelivered.
            yield done
            # Events the consumer took out of the list were not handled (the alert
            # sender leaves a step to the partition's new owner): left unacked.
            kept = {id(event) for event in done}
            pairs = [(e, st) for e, st in zip(given, done_states) if id(e) in kept]
            ack([e for e, _ in pairs], [st for _, st in pairs])
    except StopAsyncIteration:
        # faust ends a stream by throwing this into its channel (Stream._py_aiter
        # returns on it); an async generator may not raise it.
        return
