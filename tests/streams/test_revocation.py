"""At a revocation, what is under way with the views finishes before they are dropped."""

from faust.types import TP

from tests.builders import fault
from tests.streams.conftest import PARTITIONS, put


async def test_the_alert_handover_runs_before_the_views_are_dropped(streams):
    """An alert in flight records its outcome in the item: the item must still be there.

    Before, the views were dropped first (the two handlers ran in the order they
    were connected), the outcome of an alert sent during a rebalance was never
    recorded, and the partition's next owner sent the alert again.
    """
    report = fault("F-1", "reported", "09:00", customer="C-7")
    agent = streams.app.agents["fold-events"]
    async with agent.test_context() as running:
        await put(running, report.to_bytes(), b"C-7")
        await streams.processor.wait_for_event("C-7", report.event_id, timeout=5)
    seen_by_hook = []

    async def handover():
        seen_by_hook.append(streams.views.find_item("C-7", "fault", "F-1") is not None)

    streams.processor.before_drop.append(handover)
    topic = streams.events.get_topic_name()
    await streams.app.on_partitions_revoked.send(revoked={TP(topic, p) for p in range(PARTITIONS)})
    assert seen_by_hook == [True]
    assert streams.views.get("C-7") is None
