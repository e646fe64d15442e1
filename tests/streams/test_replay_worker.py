"""A replay-clock worker publishes the steps `keydesk replay` computes, however its batches fall.

The worker folds whole batches and publishes each batch's steps once it is
saved; `keydesk replay` ticks after every line.  Issue 10's generated log found
that one tick per batch differed from one per event: an event later than the
watermark (late) folded in the same batch as the events that moved it, and a
customer's tier changed in the batch that also passed a deadline.  The worker
now ticks after each event too; these tests drive its real ``process_batch``
with both cases, in batches of one, two and all.
"""

import asyncio

import pytest

from sla_rules import load_rules
from streams.replay import replay
from tests.builders import event, ticket
from tests.streams.conftest import PARTITIONS, RecordingTopic, unstarted_streams
from tests.streams.test_agent import _taken


class SlaTopic(RecordingTopic):
    """Keeps what was sent and, as the producer does, answers each send with its delivery."""

    async def send(self, **kwargs):
        await super().send(**kwargs)
        delivered = asyncio.get_running_loop().create_future()
        delivered.set_result(None)
        return delivered


@pytest.fixture
def worker():
    built = unstarted_streams(clock="replay")
    built.processor.sla_topic = SlaTopic()
    return built


async def published_in_batches(worker, events, size):
    """The step events the worker publishes for ``events`` cut into batches of ``size``."""
    topic = worker.events.get_topic_name()
    taken = [
        _taken(topic, e.to_bytes(), e.customer_id.encode(), offset=n, streams=worker)
        for n, e in enumerate(events)
    ]
    for start in range(0, len(taken), size):
        await worker.processor.process_batch(taken[start : start + size])
    return {sent["value"] for sent in worker.processor.sla_topic.sent}


def replayed(events):
    """The step events `keydesk replay` computes for the same lines."""
    return {
        step.to_bytes() for step in replay([e.to_bytes() for e in events], load_rules(), PARTITIONS).steps
    }


LATE_RESOLVE = [
    event("customer.registered", "C-1", "08:00", customer="C-1", tier="diamond"),
    ticket("T-1", "opened", "09:00", customer="C-1", priority="P1", kind="complaint"),
    ticket("T-2", "opened", "15:00", customer="C-1", priority="P4", kind="inquiry"),
    ticket("T-1", "resolved", "09:20", customer="C-1"),  # recorded hours late
    ticket("T-2", "resolved", "15:05", customer="C-1"),
]
TIER_CHANGE = [
    event("customer.registered", "C-2", "08:00", customer="C-2", tier="business"),
    ticket("T-3", "opened", "09:00", customer="C-2", priority="P2", kind="complaint"),
    ticket("T-4", "opened", "11:00", customer="C-2", priority="P4", kind="inquiry"),
    event("customer.updated", "C-2", "11:30", customer="C-2", tier="diamond"),
    ticket("T-3", "assigned", "16:00", customer="C-2", assignee="王工"),
]


@pytest.mark.parametrize("events", [LATE_RESOLVE, TIER_CHANGE], ids=["late-resolve", "tier-change"])
@pytest.mark.parametrize("size", [1, 2, 100])
async def test_a_replay_clock_worker_publishes_the_replays_steps(worker, events, size):
    """One event per batch, two, or all in one: the steps `keydesk replay` computes."""
    expected = replayed(events)
    assert expected, "the case must make steps due"
    assert await published_in_batches(worker, events, size) == expected


async def test_a_batch_that_fails_after_its_ticks_leaves_no_step_in_flight(worker):
    """A dead letter the broker refuses fails the batch after a tick took steps: they are
    handed back to the timers (left in flight, no tick would publish them again until the
    partition's next rebalance)."""

    class Refusing(RecordingTopic):
        async def send(self, **kwargs):
            raise RuntimeError("broker away")

    topic = worker.events.get_topic_name()
    taken = [
        _taken(topic, e.to_bytes(), e.customer_id.encode(), offset=n, streams=worker)
        for n, e in enumerate(LATE_RESOLVE[:3])
    ]
    taken.append(_taken(topic, b"\x00poison", b"C-1", offset=3, streams=worker))
    worker.processor.dead_letters = Refusing()
    with pytest.raises(RuntimeError):
        await worker.processor.process_batch(list(taken))
    assert worker.processor.timers.in_flight == {}


class Refusing(RecordingTopic):
    """A dead-letter topic the broker will not take: fails the batch that needs it."""

    async def send(self, **kwargs):
        raise RuntimeError("broker away")


async def fail_then_retry(worker, events):
    """The batch ``events`` plus a poison record fails on its dead letter, then goes through.

    As ``process_batch_until_done`` does: the batch's customers are reloaded as
    last written before the retry, which then folds the very same records.
    """
    topic = worker.events.get_topic_name()
    taken = [
        _taken(topic, e.to_bytes(), e.customer_id.encode(), offset=n, streams=worker)
        for n, e in enumerate(events)
    ]
    taken.append(
        _taken(topic, b"\x00poison", events[0].customer_id.encode(), offset=len(events), streams=worker)
    )
    good = worker.processor.dead_letters
    worker.processor.dead_letters = Refusing()
    with pytest.raises(RuntimeError):
        await worker.processor.process_batch(list(taken))
    for customer_id in {e.customer_id for e in events}:
        worker.views.reload(customer_id)
    worker.processor.dead_letters = good
    await worker.processor.process_batch(list(taken))
    return {sent["value"] for sent in worker.processor.sla_topic.sent}


async def test_a_retried_batch_publishes_the_steps_its_failed_try_took(worker):
    """The retry meets the timers as the first try found them: every step, once."""
    events = LATE_RESOLVE[:3]
    assert await fail_then_retry(worker, events) == replayed(events)


async def test_a_retried_batch_ticks_at_its_own_instants_not_where_the_failed_try_ended(worker):
    """A resolve in time, then a later event: the retry must not tick the opening at 15:00."""
    events = [
        event("customer.registered", "C-1", "08:00", customer="C-1", tier="diamond"),
        ticket("T-1", "opened", "09:00", customer="C-1", priority="P1", kind="complaint"),
        ticket("T-1", "resolved", "09:10", customer="C-1"),
        ticket("T-2", "opened", "15:00", customer="C-1", priority="P4", kind="inquiry"),
    ]
    expected = replayed(events)
    assert not any(b"sla.breached" in step for step in expected), "the case must breach nothing"
    assert await fail_then_retry(worker, events) == expected
