"""End to end on the real broker: from the hotline to the one-stop view."""

from __future__ import annotations

import subprocess
import uuid
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from streams.event_processor import DLQ_HEADER
from tests.builders import event, fault
from tests.e2e.conftest import PARTITIONS, TEST_USER, http, new_desk

pytestmark = pytest.mark.broker


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def post_event(desk, e) -> None:
    status, answer = http("POST", f"{desk.workers[0].url}/api/events", raw=e.to_bytes())
    assert status == 202, answer


async def produce_raw(bootstrap: str, topic: str, *messages: tuple[bytes | None, bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for key, value in messages:
            await producer.send_and_wait(topic, value, key=key)
    finally:
        await producer.stop()


async def read_topic(bootstrap: str, topic: str, count: int, timeout_ms: int = 30_000):
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records = []
    try:
        while len(records) < count:
            batch = await consumer.getmany(timeout_ms=timeout_ms)
            if not batch:
                break
            for part in batch.values():
                records.extend(part)
    finally:
        await consumer.stop()
    return records


class TestHotline:
    def test_a_fault_logged_over_http_appears_in_the_view(self, desk):
        """The hotline logs a fault; the customer's view shows it open, with history."""
        customer = unique("C-GOV")
        worker = desk.workers[0]
        status, answer = http(
            "POST",
            f"{worker.url}/api/faults",
            {
                "customer_id": customer,
                "severity": "critical",
                "summary": "专线中断",
                "service": "MPLS VPN",
                "circuit_id": "GZ-0001",
            },
        )
        assert status == 202 and answer["fault_id"].startswith("F-")
        status, view = worker.view(customer, wait_for=answer["event_id"])
        assert status == 200, view
        item = view["open"]["fault"][answer["fault_id"]]
        assert (item["state"], item["attributes"]["priority"]) == ("reported", "P1")
        assert item["history"][0]["actor"] == TEST_USER  # the signed-in user, never the body's
        assert item["opened_at"].endswith("+08:00")  # shown in local time
        assert item["sla"]["metrics"]["response"]["state"] == "pending"
        assert item["sla"]["metrics"]["restore"]["deadline"].endswith("+08:00")

    def test_an_items_sla_is_explained_over_http(self, desk):
        """Why a deadline is what it is: policy matched, calendar, pauses."""
        customer, worker = unique("C-EXPL"), desk.workers[0]
        post_event(desk, event("customer.registered", customer, customer=customer, tier="gold"))
        report = fault("F-1", "reported", "09:00", customer=customer)
        post_event(desk, report)
        worker.view(customer, wait_for=report.event_id)
        status, answer = http(
            "GET", f"{worker.url}/api/customers/{customer}/items/fault/F-1/sla?at=2026-11-23T10:00:00%2B08:00"
        )
        assert status == 200, answer
        assert "matched rule" in answer["explanation"] and "gold" in answer["explanation"]
        assert answer["evaluation"]["metrics"]["response"]["state"] == "breached"
        status, answer = http("GET", f"{worker.url}/api/customers/{customer}/items/fault/F-404/sla")
        assert (status, answer["field"]) == (404, "item_id")

    def test_a_ticket_and_an_order_are_placed_the_same_way(self, desk):
        """Tickets and orders have their own endpoints and show in the same view."""
        customer, worker = unique("C-POST"), desk.workers[0]
        _, ticket = http(
            "POST",
            f"{worker.url}/api/tickets",
            {"customer_id": customer, "kind": "complaint", "priority": "P2", "subject": "账单有误"},
        )
        status, order = http(
            "POST",
            f"{worker.url}/api/orders",
            {"customer_id": customer, "product": "mpls_vpn", "urgency": "extra_urgent"},
        )
        assert status == 202
        _, view = worker.view(customer, wait_for=order["event_id"])
        worker.view(customer, wait_for=ticket["event_id"])
        _, view = worker.view(customer)
        assert view["open"]["ticket"][ticket["ticket_id"]]["state"] == "open"
        assert view["open"]["order"][order["order_id"]]["attributes"]["urgency"] == "extra_urgent"

    @pytest.mark.parametrize(
        "body, status, field",
        [
            ({"severity": "critical", "summary": "x", "service": "y"}, 422, "customer_id"),
            ({"customer_id": "C-1", "summary": "x", "service": "y"}, 422, "severity"),
            ({"customer_id": "C-1", "severity": "fatal", "summary": "x", "service": "y"}, 422, "severity"),
            (
                {
                    "customer_id": "C-1",
                    "severity": "minor",
                    "summary": "x",
                    "service": "y",
                    "occurred_at": "2026-11-23 09:00",
                },
                422,
                "occurred_at",
            ),
            (
                {"customer_id": "C-1", "severity": "minor", "summary": "x", "service": "y", "colour": "red"},
                422,
                "colour",
            ),
        ],
    )
    def test_an_invalid_fault_gets_a_4xx_naming_the_field(self, desk, body, status, field):
        """The API says which field is wrong and why."""
        got, answer = http("POST", f"{desk.workers[0].url}/api/faults", body)
        assert (got, answer["field"]) == (status, field)
        assert answer["error"]

    def test_a_body_that_is_not_json_is_a_400(self, desk):
        """Garbage bodies are refused before anything is published."""
        status, answer = http("POST", f"{desk.workers[0].url}/api/faults", raw=b"{oops")
        assert status == 400 and "JSON" in answer["error"]

    def test_a_raw_event_with_a_bad_field_is_refused(self, desk):
        """The raw-event endpoint applies the published contract."""
        body = fault("F-1", "reported").to_wire() | {"source": "fax"}
        status, answer = http("POST", f"{desk.workers[0].url}/api/events", body)
        assert (status, answer["field"]) == (422, "source")

    def test_an_unknown_customer_is_a_404(self, desk):
        """No events, no view."""
        status, answer = desk.workers[0].view(unique("C-NOBODY"))
        assert (status, answer["field"]) == (404, "customer_id")


class TestAnyKafkaClient:
    def test_an_event_published_with_kcat_is_processed(self, desk, kcat, tmp_path):
        """kcat (librdkafka, its own default partitioner) publishes a plain JSON event."""
        customer = unique("C-KCAT")
        e = fault("F-K1", "reported", customer=customer)
        file = tmp_path / "event.json"
        file.write_bytes(e.to_bytes())
        subprocess.run(
            [kcat, "-b", desk.bootstrap, "-t", desk.events_topic, "-P", "-k", customer, "-l", str(file)],
            check=True,
            timeout=30,
        )
        status, view = desk.workers[0].view(customer, wait_for=e.event_id)
        assert status == 200 and view["open"]["fault"]["F-K1"]["state"] == "reported"

    def test_an_event_published_without_a_key_still_reaches_its_customer(self, desk, kcat, tmp_path):
        """No key: the worker forwards the event to its customer's partition."""
        customer = unique("C-NOKEY")
        e = fault("F-K2", "reported", customer=customer)
        file = tmp_path / "event.json"
        file.write_bytes(e.to_bytes())
        subprocess.run(
            [kcat, "-b", desk.bootstrap, "-t", desk.events_topic, "-P", "-l", str(file)],
            check=True,
            timeout=30,
        )
        status, view = desk.workers[0].view(customer, wait_for=e.event_id)
        assert status == 200 and "F-K2" in view["open"]["fault"]


class TestBadInput:
    async def test_malformed_and_invalid_messages_are_dead_lettered_and_work_goes_on(self, desk):
        """Bad messages land in the dead-letter topic with reasons; the next event is folded."""
        customer = unique("C-DLQ")
        garbage = b"\xff\xfe not json at all"
        invalid = fault("F-1", "reported", customer=customer).to_wire()
        invalid["payload"]["severity"] = "apocalyptic"
        invalid_bytes = orjson.dumps(invalid)
        good = fault("F-2", "reported", customer=customer)
        await produce_raw(
            desk.bootstrap,
            desk.events_topic,
            (customer.encode(), garbage),
            (customer.encode(), invalid_bytes),
            (customer.encode(), good.to_bytes()),
        )
        status, view = desk.workers[0].view(customer, wait_for=good.event_id)
        assert status == 200 and list(view["open"]["fault"]) == ["F-2"]

        parked = await read_topic(desk.bootstrap, desk.dead_letter_topic, count=2)
        mine = {r.value: dict(r.headers) for r in parked if r.key == customer.encode()}
        assert set(mine) == {garbage, invalid_bytes}  # original bytes, untouched
        assert b"not valid UTF-8 JSON" in mine[garbage][DLQ_HEADER + "reason"]
        assert mine[invalid_bytes][DLQ_HEADER + "field"] == b"payload.severity"
        for headers in mine.values():
            assert headers[DLQ_HEADER + "topic"] == desk.events_topic.encode()
            assert int(headers[DLQ_HEADER + "partition"]) in range(PARTITIONS)
            assert int(headers[DLQ_HEADER + "offset"]) >= 0


class TestDeliverySemantics:
    def test_a_duplicate_event_changes_nothing(self, desk):
        """The same event delivered twice is folded once."""
        customer = unique("C-DUP")
        report = fault("F-1", "reported", "09:00", customer=customer)
        post_event(desk, report)
        _, before = desk.workers[0].view(customer, wait_for=report.event_id)
        post_event(desk, report)
        marker = fault("F-2", "reported", "09:30", customer=customer)
        post_event(desk, marker)
        _, after = desk.workers[0].view(customer, wait_for=marker.event_id)
        # The live timers may fold F-1's steps (reported days ago, so all are due) and
        # their alerts in between: those are not the duplicate's doing.
        assert without_timers(after["open"]["fault"]["F-1"]) == without_timers(before["open"]["fault"]["F-1"])
        assert after["counters"]["duplicates_ignored"] == 1
        assert [h["event_id"] for h in after["open"]["fault"]["F-1"]["history"]] == [report.event_id]

    def test_an_out_of_order_event_lands_in_its_place(self, desk):
        """An acknowledgement that arrives after the restore is placed before it."""
        customer = unique("C-LATE")
        for e in (
            fault("F-1", "reported", "09:00", customer=customer),
            fault("F-1", "restored", "09:40", customer=customer),
            fault("F-1", "acknowledged", "09:05", customer=customer),
        ):
            post_event(desk, e)
        _, view = desk.workers[0].view(customer, wait_for=e.event_id)
        item = view["open"]["fault"]["F-1"]
        assert [h["event_type"] for h in item["history"]] == [
            "fault.reported",
            "fault.acknowledged",
            "fault.restored",
        ]
        assert item["state"] == "restored" and view["counters"]["late_events"] == 1


def without_timers(item):
    """An item as its own events left it: no SLA summary, step log or alerts."""
    return {k: v for k, v in item.items() if k not in ("sla", "sla_log", "alerts")}


class TestRecovery:
    def test_a_restarted_worker_serves_the_views_it_had(self, kafka_bootstrap, tmp_path):
        """Views survive a restart: the new worker recovers them from the changelog.

        The fault is reported now, so that none of its clocks comes due during the test: a fault of
        a past day had its warning step fire between the two reads, and the view rightly changed.
        """
        desk = new_desk(kafka_bootstrap, tmp_path)
        try:
            first = desk.start_worker()
            desk.wait_until_partitions_split()
            report = fault("F-1", "reported", datetime.now(UTC), customer="C-RESTART")
            post_event(desk, report)
            _, before = first.view("C-RESTART", wait_for=report.event_id)
            first.stop()
            second = desk.start_worker()
            desk.wait_until_partitions_split()
            status, after = second.view("C-RESTART")
            assert status == 200 and after == before
        finally:
            desk.stop()


class TestTwoWorkers:
    def test_either_worker_answers_for_any_customer(self, kafka_bootstrap, tmp_path):
        """With the partitions split between two workers, each serves every customer's view."""
        desk = new_desk(kafka_bootstrap, tmp_path)
        try:
            desk.start_worker()
            desk.start_worker()
            desk.wait_until_partitions_split()
            owned = [w.partitions() for w in desk.workers]
            assert all(owned) and len(owned[0]) + len(owned[1]) == PARTITIONS
            customers = [f"C-{n:03d}" for n in range(16)]
            registrations = [event("customer.registered", c, customer=c, name=f"客户{c}") for c in customers]
            for e in registrations:
                post_event(desk, e)
            for e in registrations:
                for worker in desk.workers:
                    status, view = worker.view(e.customer_id, wait_for=e.event_id)
                    assert status == 200, view
                    assert view["profile"]["name"] == f"客户{e.customer_id}"
        finally:
            desk.stop()
