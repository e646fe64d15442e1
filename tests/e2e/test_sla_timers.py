"""Live SLA timers on the real broker: steps published at their instants, exactly once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from tests.builders import event, fault
from tests.e2e.conftest import http, new_desk, short_rules_file

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def short_rules(tmp_path_factory):
    """The shipped rules with a 1-minute response target for diamond P1 faults."""
    return short_rules_file(tmp_path_factory.mktemp("rules"), ladder=False)


async def read_sla_steps(desk, entity_id: str, want: set[str], timeout_s: float = 60.0):
    """Follow the SLA topic until the item's wanted step events (by type) have all arrived."""
    consumer = AIOKafkaConsumer(
        desk.sla_topic,
        bootstrap_servers=desk.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[dict] = []
    deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
    try:
        while datetime.now(UTC) < deadline and not want <= {s["event_type"] for s in seen}:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for record in records:
                    step = orjson.loads(record.value)
                    if step["entity_id"] == entity_id:
                        seen.append(step)
    finally:
        await consumer.stop()
    return seen


def register_diamond(desk, customer: str) -> None:
    registration = event(
        "customer.registered",
        customer,
        customer=customer,
        tier="diamond",
        escalation_chain=[{"role": "account_manager", "name": "李敏", "email": "li.min@example.cn"}],
    )
    http("POST", f"{desk.workers[0].url}/api/events", raw=registration.to_bytes())
    desk.workers[0].view(customer, wait_for=registration.event_id)


class TestLiveTimers:
    async def test_a_p1_fault_warns_breaches_and_escalates_at_its_instants(
        self, kafka_bootstrap, tmp_path, short_rules
    ):
        """Diamond P1, 1 min to respond: 50/75/90% warnings, breach and step 1, each once."""
        desk = new_desk(kafka_bootstrap, tmp_path, KEYDESK_SLA_RULES=str(short_rules))
        try:
            desk.start_worker()
            desk.wait_until_partitions_split()
            customer = f"C-LIVE-{uuid.uuid4().hex[:6]}"
            register_diamond(desk, customer)
            reported_at = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=50)
            report = fault("F-1", "reported", reported_at, customer=customer)
            http("POST", f"{desk.workers[0].url}/api/events", raw=report.to_bytes())
            steps = await read_sla_steps(desk, "F-1", {"sla.breached", "sla.escalation_due"})
            response = [s for s in steps if s["payload"]["metric"] == "response"]
            due = {
                (
                    s["event_type"],
                    s["payload"].get("threshold"),
                    s["payload"].get("step"),
                ): datetime.fromisoformat(s["occurred_at"])
                for s in response
            }
            assert due == {
                ("sla.warning_reached", "50%", None): reported_at + timedelta(seconds=30),
                ("sla.warning_reached", "75%", None): reported_at + timedelta(seconds=45),
                ("sla.warning_reached", "90%", None): reported_at + timedelta(seconds=54),
                ("sla.breached", None, None): reported_at + timedelta(seconds=60),
                ("sla.escalation_due", None, 1): reported_at + timedelta(seconds=60),
            }
            assert len(response) == len(due)  # each step once
            breach = next(s for s in response if s["event_type"] == "sla.breached")
            published = datetime.fromisoformat(breach["recorded_at"])
            assert timedelta(0) <= published - (reported_at + timedelta(seconds=60)) < timedelta(seconds=5)
            status, view = desk.workers[0].view(customer, wait_for=breach["event_id"])
            log = view["open"]["fault"]["F-1"]["sla_log"]
            assert breach["event_id"] in {r["event_id"] for r in log}
        finally:
            desk.stop()


class TestReplayMode:
    async def test_a_worker_in_replay_mode_publishes_what_the_replay_command_computes(
        self, kafka_bootstrap, tmp_path
    ):
        """Event-time replay through Kafka gives the in-process replay's step events, twice."""
        from sla_rules import load_rules
        from streams.replay import replay
        from tests.streams.test_replay import recorded_day

        lines = [e.to_bytes() for e in recorded_day()]
        expected = {s.event_id: s.to_wire() for s in replay(lines, load_rules(), 4).steps}
        assert expected
        for attempt in range(2):
            desk = new_desk(kafka_bootstrap, tmp_path / f"run{attempt}", KEYDESK_CLOCK="replay")
            (tmp_path / f"run{attempt}").mkdir()
            try:
                desk.start_worker()
                desk.wait_until_partitions_split()
                from handlers.cli.publish_file import publish_lines

                await publish_lines(desk.bootstrap, desk.events_topic, lines)
                published = await read_topic_until(desk, set(expected))
                assert {k: v for k, v in published.items()} == expected
            finally:
                desk.stop()


async def read_topic_until(desk, ids: set[str], timeout_s: float = 60.0) -> dict:
    consumer = AIOKafkaConsumer(
        desk.sla_topic,
        bootstrap_servers=desk.bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[str, dict] = {}
    deadline = datetime.now(UTC) + timedelta(seconds=timeout_s)
    try:
        while datetime.now(UTC) < deadline and not ids <= set(seen):
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    step = orjson.loads(record.value)
                    seen[step["event_id"]] = step
    finally:
        await consumer.stop()
    return seen


class TestDispatchQueue:
    def test_either_worker_lists_every_customers_items_most_urgent_first(self, kafka_bootstrap, tmp_path):
        """The queue merges both workers' partitions and orders by time to breach."""
        desk = new_desk(kafka_bootstrap, tmp_path)
        try:
            desk.start_worker()
            desk.start_worker()
            desk.wait_until_partitions_split()
            now = datetime.now(UTC).replace(microsecond=0)
            tiers = ["diamond", "gold", "business", "platinum", "vip", "public"]
            posted = []
            for n, tier in enumerate(tiers):
                customer = f"C-Q{n}-{uuid.uuid4().hex[:4]}"
                for e in (
                    event("customer.registered", customer, customer=customer, tier=tier),
                    fault(
                        f"F-{n}", "reported", now - timedelta(minutes=n), customer=customer, severity="major"
                    ),
                ):
                    http("POST", f"{desk.workers[0].url}/api/events", raw=e.to_bytes())
                    posted.append(e)
            for e in posted:
                assert desk.workers[0].view(e.customer_id, wait_for=e.event_id)[0] == 200
            answers = [http("GET", f"{w.url}/api/dispatch-queue?limit=100") for w in desk.workers]
            assert all(status == 200 for status, _ in answers), answers
            mine = {e.customer_id for e in posted}
            lists = [
                [(r["customer_id"], r["id"]) for r in a["items"] if r["customer_id"] in mine]
                for _, a in answers
            ]
            assert lists[0] == lists[1] and len(lists[0]) == len(tiers)
            rows = [r for r in answers[0][1]["items"] if r["customer_id"] in mine]
            waits = [r["seconds_to_breach"] for r in rows]
            assert waits == sorted(waits)
            assert rows[0]["tier"] == "diamond"  # P2 faults: diamond's clock is the tightest
        finally:
            desk.stop()
