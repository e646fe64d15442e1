"""The fold-events agent under faust's test context (memory store, no broker)."""

import pytest
from faust.types import TP

from schemas.envelope import utc_iso
from streams.app import build_streams
from streams.event_processor import DLQ_HEADER, murmur2_partition
from streams.settings import Settings
from tests.builders import event, fault

PARTITIONS = 4


class RecordingTopic:
    """Stands in for an outbound topic: keeps what was sent."""

    def __init__(self):
        self.sent = []

    async def send(self, **kwargs):
        self.sent.append(kwargs)


@pytest.fixture
def streams():
    built = build_streams(Settings(kafka="unused:9092", partitions=PARTITIONS),
                          broker="kafka://unused:9092")
    built.app.finalize()
    built.app.conf.store = "memory://"
    built.app.flow_control.resume()
    built.processor.dead_letters = RecordingTopic()
    built.processor.events = RecordingTopic()
    # The table's changelog asks the (unstarted) producer for Kafka's partition.
    built.app.producer.key_partition = \
        lambda topic, key: TP(topic, murmur2_partition(key, PARTITIONS))
    return built


async def put(agent, raw: bytes, key: bytes | None, partition: int | None = None):
    if partition is None:
        partition = murmur2_partition(key, PARTITIONS)
    await agent.put(value=raw, key=key, partition=partition,
                    key_serializer="raw", value_serializer="raw")


class TestFoldAgent:
    async def test_an_event_is_folded_into_its_customers_view(self, streams):
        """A reported fault appears in the customer's view table."""
        agent = streams.app.agents["fold-events"]
        async with agent.test_context() as running:
            report = fault("F-1", "reported", customer="C-7")
            await put(running, report.to_bytes(), b"C-7")
            await streams.processor.wait_for_event("C-7", report.event_id, timeout=5)
        item = streams.views["C-7"]["open"]["fault"]["F-1"]
        assert item["state"] == "reported"
        assert item["sla"]["metrics"]["response"]["state"] == "pending"

    async def test_garbage_goes_to_the_dead_letter_topic_and_the_next_event_is_folded(self, streams):
        """Undecodable bytes are parked with a reason; processing goes on."""
        agent = streams.app.agents["fold-events"]
        dlq = streams.processor.dead_letters
        async with agent.test_context() as running:
            await put(running, b"\x00not json", b"C-7")
            good = fault("F-2", "reported", customer="C-7")
            await put(running, good.to_bytes(), b"C-7")
            await streams.processor.wait_for_event("C-7", good.event_id, timeout=5)
        assert len(dlq.sent) == 1
        assert dlq.sent[0]["value"] == b"\x00not json"
        headers = dict(dlq.sent[0]["headers"])
        assert b"not valid UTF-8 JSON" in headers[DLQ_HEADER + "reason"]
        assert "F-2" in streams.views["C-7"]["open"]["fault"]

    async def test_an_event_on_the_wrong_partition_is_forwarded_home(self, streams):
        """An event keyed by another partitioner is re-published to its home partition."""
        agent = streams.app.agents["fold-events"]
        report = fault("F-3", "reported", customer="C-7")
        home = murmur2_partition(b"C-7", PARTITIONS)
        async with agent.test_context() as running:
            await put(running, report.to_bytes(), b"C-7", partition=(home + 1) % PARTITIONS)
        forwarded = streams.processor.events.sent
        assert [(f["partition"], f["value"]) for f in forwarded] == [(home, report.to_bytes())]
        assert streams.views.get("C-7") is None

    async def test_a_batch_writes_each_customer_once_with_every_event_in(self, streams):
        """Several events of one customer in a batch all land in its view."""
        agent = streams.app.agents["fold-events"]
        events = [event("customer.registered", "C-8", customer="C-8"),
                  fault("F-1", "reported", "09:00", customer="C-8"),
                  fault("F-1", "acknowledged", "09:01", customer="C-8"),
                  fault("F-1", "acknowledged", "09:01", customer="C-8")]  # a duplicate
        async with agent.test_context() as running:
            for e in events:
                await put(running, e.to_bytes(), b"C-8")
            await streams.processor.wait_for_event("C-8", events[2].event_id, timeout=5)
        view = streams.views["C-8"]
        assert view["profile"]["name"] == "省政府办公厅"
        assert view["open"]["fault"]["F-1"]["milestones"]["acknowledged"] == \
            utc_iso(events[2].occurred_at)
        assert view["counters"]["duplicates_ignored"] == 1
        # the registration arrived in the same batch: clocks use the diamond tier
        assert view["open"]["fault"]["F-1"]["sla"]["tier_assumed"] is False
        assert view["open"]["fault"]["F-1"]["sla"]["metrics"]["response"]["policy"].startswith("diamond")
