"""The end of a recovery does not throw away events fetched after its seek (issue 9).

faust's ``Recovery.on_recovery_completed`` resumes the stream partitions, awaits
the seek to the committed offsets and then calls ``app.flow_control.resume()``,
which empties every stream buffer.  The flow was already resumed earlier in the
recovery, so during that await the fetcher hands on records read from the
committed offset onwards; the clear dropped those still buffered, unacked, with
the client's position past them.  The kill -9 fault test lost 2 to 26
consecutive events of a partition that way (e.g. offsets 177-190 of events:3 and
23-38 of sla:2 of the worker that kept its partitions, 184-208 of a takeover).
"""

from types import SimpleNamespace

import faust
from faust.tables.recovery import Recovery
from faust.types import TP

from streams.consumer_tuning import PINNED_FAUST
from tests.streams.conftest import unstarted_streams

EVENTS = TP("keydesk.events", 3)


def app_with_stream_buffer():
    """The keydesk app, its flow resumed as faust's recovery does, and a stream buffer."""
    app = unstarted_streams().app
    app.flow_control.resume()  # recovery.py: resumed before the actives are read
    # What every faust channel (so the agent's stream) buffers its events in.
    return app, app.FlowControlQueue(maxsize=100, clear_on_resume=True)


async def test_events_fetched_during_the_seek_at_recovery_end_stay_in_the_stream_buffer():
    assert faust.__version__ == PINNED_FAUST
    app, buffer = app_with_stream_buffer()
    resumed = []

    async def perform_seek():
        # Seek done (the client is at the committed offset), then the fetcher
        # hands on what it read from there, before the recovery goes on.
        buffer.put_nowait(("event", EVENTS, 184))
        buffer.put_nowait(("event", EVENTS, 185))

    consumer = SimpleNamespace(
        assignment=lambda: {EVENTS},
        perform_seek=perform_seek,
        resume_partitions=resumed.append,
        resume_flow=lambda: resumed.append("flow"),
    )
    fake_app = SimpleNamespace(
        consumer=consumer,
        consumer_generation_id=7,
        conf=app.conf,
        flow_control=app.flow_control,
        on_rebalance_complete=SimpleNamespace(send=_nothing),
        _fetcher=SimpleNamespace(maybe_start=_nothing),
        assignor=SimpleNamespace(assigned_standbys=lambda: set()),
        on_rebalance_end=lambda: None,
    )

    async def wait(coro, timeout=None):
        await coro

    recovery = SimpleNamespace(
        app=fake_app,
        log=SimpleNamespace(info=lambda *a: None, dev=lambda *a: None, warning=lambda *a: None),
        tables=SimpleNamespace(
            values=lambda: [], on_actives_ready=lambda: None, on_standbys_ready=lambda: None
        ),
        _wait=wait,
        _set_recovery_ended=lambda: None,
        _is_changelog_tp=lambda tp: False,
        completed=SimpleNamespace(set=lambda: None),
        actives_for_table={},
        standbys_for_table={},
    )

    await Recovery.on_recovery_completed(recovery, generation_id=7)

    assert resumed == [{EVENTS}, "flow"]  # faust's own steps ran, in its order
    assert buffer.qsize() == 2, "events fetched after the seek were dropped from the buffer"
    assert [buffer.get_nowait()[2] for _ in range(2)] == [184, 185]


async def test_a_resume_after_a_suspension_still_empties_the_buffers():
    """A rebalance suspends the flow: what was buffered before is stale, as in faust."""
    app, buffer = app_with_stream_buffer()
    app.flow_control.suspend()
    buffer.put_nowait(("event", EVENTS, 12))
    app.flow_control.resume()
    assert buffer.empty()
    assert app.flow_control.is_active()


async def _nothing():
    return None
