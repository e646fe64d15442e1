"""No record the client fetched is dropped by the consumer without being fetched again."""

from types import SimpleNamespace

import faust
from faust.types import TP

from streams.consumer_tuning import PINNED_FAUST, Consumer

EVENTS = TP("keydesk.events", 1)
SLA = TP("keydesk.sla", 1)


class Client:
    """Stands in for faust's ``Consumer.seek`` (which goes to the client's thread)."""

    def __init__(self):
        self.sought = {}

    async def seek(self, tp, offset):
        self.sought[tp] = offset


def consumer_fetching(records, active):
    """Our consumer with just what ``getmany`` reads: one fetch, given partitions active."""
    consumer = Consumer.__new__(Consumer)
    client = Client()

    async def wait_next_records(timeout):
        return records, active

    consumer._wait_next_records = wait_next_records
    consumer.app = SimpleNamespace(
        consumer_generation_id=3, monitor=SimpleNamespace(track_tp_end_offset=lambda *a: None)
    )
    never = SimpleNamespace(is_set=lambda: False)
    consumer.__dict__.update(
        _stopped=never,
        _crashed=never,
        flow_active=True,
        _buffered_partitions=set(),
        _read_offset={},
        scheduler=SimpleNamespace(iterate=lambda recs: ((tp, r) for tp, rs in recs.items() for r in rs)),
        _to_message=lambda tp, record: record.offset,
        highwater=lambda tp: 0,
        seek=client.seek,
        log=SimpleNamespace(info=lambda *a: None),
    )
    return consumer, client


def fetched(*offsets):
    return [SimpleNamespace(offset=o) for o in offsets]


async def test_records_of_a_paused_partition_are_fetched_again():
    """Paused while its records were in flight (a full stream buffer): sought back to them.

    faust skipped them while the client's position had moved past them; a worker
    catching up after a crash lost 26 events of one partition that way.
    """
    assert faust.__version__ == PINNED_FAUST
    consumer, client = consumer_fetching({EVENTS: fetched(186, 187, 188), SLA: fetched(40, 41)}, active={SLA})
    handed = [item async for item in consumer.getmany(timeout=1.0)]
    assert handed == [(SLA, 40), (SLA, 41)]
    assert client.sought == {EVENTS: 186}


async def test_records_handed_on_are_not_fetched_again():
    consumer, client = consumer_fetching({EVENTS: fetched(5, 6)}, active={EVENTS})
    assert [item async for item in consumer.getmany(timeout=1.0)] == [(EVENTS, 5), (EVENTS, 6)]
    assert client.sought == {}


async def test_records_fetched_while_the_flow_is_stopped_are_not_sought_to_after_the_seek():
    """Flow stopped (a rebalance): faust seeks all to committed; no seek back to the fetch after.

    The flow may resume while that seek is awaited (the recovery resumes it);
    seeking back then to the records fetched before would move the partitions
    (changelogs mid-recovery too) away from the committed offsets, possibly past them.
    """
    consumer, client = consumer_fetching({EVENTS: fetched(209, 210)}, active={EVENTS})
    consumer.flow_active = False
    committed = []

    async def perform_seek():
        committed.append(True)
        consumer.flow_active = True  # resumed by the recovery meanwhile

    consumer.perform_seek = perform_seek
    assert [item async for item in consumer.getmany(timeout=1.0)] == []
    assert committed == [True]
    assert client.sought == {}
