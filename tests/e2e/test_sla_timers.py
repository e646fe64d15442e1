"""Live SLA timers on the real broker: steps published at their instants, exactly once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaConsumer

from sla_rules import DEFAULT_RULES_PATH
from tests.builders import event, fault
from tests.e2e.conftest import http, new_desk

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def short_rules(tmp_path_factory):
    """The shipped rules with a 1-minute response target for diamond P1 faults."""
    text = DEFAULT_RULES_PATH.read_text()
    text = text.replace('P1 = { response = "5m",  restore = "2h"',
                        'P1 = { response = "1m",  restore = "2h"', 1)
    assert 'response = "1m"' in text
    path = tmp_path_factory.mktemp("rules") / "short.toml"
    path.write_text(text)
    return path


async def read_sla_steps(desk, entity_id: str, want: set[str], timeout_s: float = 60.0):
    """Follow the SLA topic until the item's wanted step events (by type) have all arrived."""
    consumer = AIOKafkaConsumer(desk.sla_topic, bootstrap_servers=desk.bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
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
    registration = event("customer.registered", customer, customer=customer, tier="diamond",
                         escalation_chain=[{"role": "account_manager", "name": "李敏",
                                            "email": "li.min@example.cn"}])
    http("POST", f"{desk.workers[0].url}/api/events", raw=registration.to_bytes())
    desk.workers[0].view(customer, wait_for=registration.event_id)


class TestLiveTimers:
    async def test_a_p1_fault_warns_breaches_and_escalates_at_its_instants(
            self, kafka_bootstrap, tmp_path, short_rules):
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
            due = {(s["event_type"], s["payload"].get("threshold"), s["payload"].get("step")):
                   datetime.fromisoformat(s["occurred_at"]) for s in response}
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
