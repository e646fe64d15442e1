"""The fold-events agent under faust's test context (memory store, no broker)."""

from schemas.envelope import utc_iso
from streams.desk_signature import signature_headers
from streams.event_processor import DLQ_HEADER
from streams.partitioning import murmur2_partition
from tests.builders import event, fault
from tests.streams.conftest import PARTITIONS, SECRET, put


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
        events = [
            event("customer.registered", "C-8", customer="C-8"),
            fault("F-1", "reported", "09:00", customer="C-8"),
            fault("F-1", "acknowledged", "09:01", customer="C-8"),
            fault("F-1", "acknowledged", "09:01", customer="C-8"),
        ]  # a duplicate
        async with agent.test_context() as running:
            for e in events:
                await put(running, e.to_bytes(), b"C-8")
            await streams.processor.wait_for_event("C-8", events[2].event_id, timeout=5)
        view = streams.views["C-8"]
        assert view["profile"]["name"] == "省政府办公厅"
        assert view["open"]["fault"]["F-1"]["milestones"]["acknowledged"] == utc_iso(events[2].occurred_at)
        assert view["counters"]["duplicates_ignored"] == 1
        # the registration arrived in the same batch: clocks use the diamond tier
        assert view["open"]["fault"]["F-1"]["sla"]["tier_assumed"] is False
        assert view["open"]["fault"]["F-1"]["sla"]["metrics"]["response"]["policy"].startswith("diamond")


class TestNothingLost:
    async def test_a_fold_that_raises_is_undone_and_dead_lettered(self, streams, monkeypatch):
        """A bug in one event's fold parks that event; the view is as before it, neighbours fold."""
        from streams import customer_view, lifecycles

        real = lifecycles.transition
        poison = fault("F-1", "acknowledged", "09:05", customer="C-7")

        def transition(kind, state, event_type, payload):
            if event_type == "fault.acknowledged":
                raise RuntimeError("a bug in the acknowledged step")
            return real(kind, state, event_type, payload)

        monkeypatch.setattr(customer_view.lifecycles, "transition", transition)
        report = fault("F-1", "reported", "09:00", customer="C-7")
        later = fault("F-2", "reported", "09:10", customer="C-7")
        agent = streams.app.agents["fold-events"]
        async with agent.test_context() as running:
            for e in (report, poison, later):
                await put(running, e.to_bytes(), b"C-7")
            await streams.processor.wait_for_event("C-7", later.event_id, timeout=5)
        view = streams.views["C-7"]
        assert [r["event_id"] for r in view["open"]["fault"]["F-1"]["history"]] == [report.event_id]
        assert view["open"]["fault"]["F-1"]["state"] == "reported"
        assert "F-2" in view["open"]["fault"]
        assert view["counters"]["events_applied"] == 2
        sent = streams.processor.dead_letters.sent
        assert [d["value"] for d in sent] == [poison.to_bytes()]
        assert b"a bug in the acknowledged step" in dict(sent[0]["headers"])[DLQ_HEADER + "reason"]
        # the tables hold exactly the working view: nothing of the failed fold leaked in
        assert (
            streams.views.reload("C-7")["open"]["fault"]["F-1"]["history"]
            == view["open"]["fault"]["F-1"]["history"]
        )

    async def test_an_sla_step_on_the_events_topic_is_refused(self, streams):
        """A breach published on the events topic is a forgery: dead-lettered, not folded."""
        from tests.builders import event as make

        report = fault("F-1", "reported", "09:00", customer="C-7")
        forged = make(
            "sla.breached",
            "F-1",
            "09:01",
            customer="C-7",
            source="system",
            item_kind="fault",
            metric="response",
            cycle=1,
            due_at="2026-11-23T01:01:00+00:00",
            policy="forged v1",
            caused_by=report.event_id,
            deadline="2026-11-23T01:01:00+00:00",
        )
        after = fault("F-2", "reported", "09:02", customer="C-7")
        agent = streams.app.agents["fold-events"]
        async with agent.test_context() as running:
            for e in (report, forged, after):
                await put(running, e.to_bytes(), b"C-7")
            await streams.processor.wait_for_event("C-7", after.event_id, timeout=5)
        item = streams.views["C-7"]["open"]["fault"]["F-1"]
        assert not item.get("sla_log")
        sent = streams.processor.dead_letters.sent
        assert [d["value"] for d in sent] == [forged.to_bytes()]
        assert b"only on the SLA topic" in dict(sent[0]["headers"])[DLQ_HEADER + "reason"]

    async def test_a_signed_acknowledgement_on_the_events_topic_is_folded_an_unsigned_one_parked(
        self, streams
    ):
        """Acknowledgements travel with the item's events (issue 10), signed with the desk's
        secret by the API; one without a valid signature is a forgery (issue 9)."""
        from tests.builders import event as make

        report = fault("F-1", "reported", "09:00", customer="C-7")

        def acknowledgement(when, note):
            return make(
                "sla.escalation_acknowledged",
                "F-1",
                when,
                customer="C-7",
                item_kind="fault",
                metric="response",
                cycle=1,
                note=note,
            )

        signed = acknowledgement("09:20", "已派单")
        unsigned, wrongly = acknowledgement("09:10", "forged"), acknowledgement("09:11", "forged")
        agent = streams.app.agents["fold-events"]
        async with agent.test_context() as running:
            await put(running, report.to_bytes(), b"C-7")
            await put(running, unsigned.to_bytes(), b"C-7")
            await put(
                running,
                wrongly.to_bytes(),
                b"C-7",
                headers=signature_headers(b"another desk's secret", wrongly.to_bytes()),
            )
            await put(
                running,
                signed.to_bytes(),
                b"C-7",
                headers=signature_headers(SECRET.encode(), signed.to_bytes()),
            )
            await streams.processor.wait_for_event("C-7", signed.event_id, timeout=5)
        item = streams.views["C-7"]["open"]["fault"]["F-1"]
        assert [r["note"] for r in item["sla_log"]] == ["已派单"]
        parked = streams.processor.dead_letters.sent
        assert [d["value"] for d in parked] == [unsigned.to_bytes(), wrongly.to_bytes()]
        assert all(
            b"signed with the desk's secret" in dict(d["headers"])[DLQ_HEADER + "reason"] for d in parked
        )

    async def test_a_step_the_producer_refuses_is_handed_back_to_the_timers(self, streams):
        """A step that cannot be sent is not left in flight: the next tick publishes it again."""
        from tests.builders import event as make

        class RefusingTopic:
            async def send(self, **kwargs):
                raise RuntimeError("producer service not yet started")

        step = make(
            "sla.breached",
            "F-1",
            "09:01",
            customer="C-7",
            source="system",
            item_kind="fault",
            metric="response",
            cycle=1,
            due_at="2026-11-23T01:01:00+00:00",
            policy="p v1",
            caused_by="00000000-0000-4000-8000-000000000000",
            deadline="2026-11-23T01:01:00+00:00",
        )
        streams.processor.sla_topic = RefusingTopic()
        streams.processor.timers.in_flight[step.event_id] = 1
        await streams.processor.publish_steps([step])
        assert step.event_id not in streams.processor.timers.in_flight
        assert streams.processor.stats["sla_steps_unsent"] == 1

    async def test_a_batch_whose_partition_is_revoked_under_it_saves_nothing(self, streams):
        """A revocation at one of a batch's awaits: the customer's records stay as they were.

        The kill -9 fault test found it: the batch went on folding into a new,
        empty working copy and saved it over the customer's header, so a
        registration folded long before was gone, and the events folded were
        acked. Now the batch stops, saves nothing, and leaves its events unacked.
        """
        await register_gold_customer(streams)
        views = streams.views

        class RevokingDeadLetters:
            """Parking a message takes an await; the rebalance begins during it."""

            async def send(self, **kwargs):
                views.drop(range(PARTITIONS))

        streams.processor.dead_letters = RevokingDeadLetters()
        report = fault("F-1", "reported", "09:00", customer="C-7")
        topic = streams.events.get_topic_name()
        batch = [
            _taken(topic, b"\x00poison", b"C-7", offset=1, streams=streams),
            _taken(topic, report.to_bytes(), b"C-7", offset=2, streams=streams),
        ]
        poison = batch[0]
        await streams.processor.process_batch(batch)
        await views.rebuild(range(PARTITIONS))
        assert views["C-7"]["profile"]["tier"] == "gold"
        assert "F-1" not in views["C-7"]["open"]["fault"]
        assert batch == [poison]  # parked, so acked; the report is left for the refetch


async def register_gold_customer(streams):
    """C-7, a gold customer, folded and saved as a batch of its own."""
    registered = event("customer.registered", "C-7", customer="C-7", tier="gold")
    async with streams.app.agents["fold-events"].test_context() as running:
        await put(running, registered.to_bytes(), b"C-7")
        await streams.processor.wait_for_event("C-7", registered.event_id, timeout=5)


class _Message:
    def __init__(self, topic, value, key, offset, generation_id):
        self.topic, self.value, self.key, self.offset = topic, value, key, offset
        self.partition = murmur2_partition(key, PARTITIONS)
        self.generation_id = generation_id
        self.timestamp = 0.0
        self.headers = []


class _Taken:
    """An event as a batch holds it: only its message is read."""

    def __init__(self, message):
        self.message = message


def _taken(topic, value, key, *, offset, streams):
    return _Taken(_Message(topic, value, key, offset, streams.app.consumer_generation_id))


async def test_a_batch_handed_over_after_a_revocation_folds_nothing(streams):
    """Taken before the revocation, processed after it: the customer's records stay.

    The rebalance fault test found it: the batch folded into new, empty views
    (the working copies were already dropped) and saved them over the
    customers' records; a fault reported seconds before was gone.
    """
    await register_gold_customer(streams)
    views = streams.views
    views.drop(range(PARTITIONS))  # the revocation
    report = fault("F-1", "reported", "09:00", customer="C-7")
    batch = [_taken(streams.events.get_topic_name(), report.to_bytes(), b"C-7", offset=2, streams=streams)]
    await streams.processor.process_batch(batch)  # the batch taken before it
    await views.rebuild(range(PARTITIONS))  # the partitions come back
    assert views["C-7"]["profile"]["tier"] == "gold"
    assert batch == []  # unacked: refetched and folded then
