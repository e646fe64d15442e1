"""Every step of a fault, ticket and order loop as one command, against two real workers.

The CLI alone drives three whole closed loops (report to revisit) and each
step says what the owner's fold did with it; over HTTP a forbidden step is a
409 with the lifecycle's reason, a bad field a 422 naming it, and a step
posted to the worker that does not own the customer is taken, published and
answered with the owner's outcome (issue 11).
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from streams.partitioning import murmur2_partition
from tests.builders import event
from tests.e2e.conftest import PARTITIONS, http, keydesk, new_desk
from tests.e2e.test_acknowledge_any_worker import wait_until_every_partition_is_owned

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def two_workers(kafka_bootstrap, tmp_path_factory):
    desk = new_desk(kafka_bootstrap, tmp_path_factory.mktemp("actions"))
    try:
        for _ in range(2):
            desk.start_worker()
        wait_until_every_partition_is_owned(desk)
        yield desk
    finally:
        desk.stop()


def step(desk, kind: str, action: str, item_id: str, customer: str, *options: str) -> str:
    """Run ``keydesk KIND ACTION ID``; the state the item is in once the step was applied."""
    done = keydesk(desk, kind, action, item_id, "--customer", customer, *options)
    assert done.returncode == 0, (action, done.stdout, done.stderr)
    assert done.stdout.startswith(f"applied: {kind} {item_id} is "), (action, done.stdout)
    return done.stdout.split(" is ", 1)[1].split(" (", 1)[0]


def owner_index(desk, customer: str) -> int:
    partition = murmur2_partition(customer.encode(), PARTITIONS)
    owners = [i for i, w in enumerate(desk.workers) if partition in (w.partitions() or ())]
    assert len(owners) == 1, [w.partitions() for w in desk.workers]
    return owners[0]


def closed_item(view: dict, kind: str, item_id: str) -> dict | None:
    return next((i for i in view["recent_closed"] if (i["kind"], i["id"]) == (kind, item_id)), None)


def every_clock_met(item: dict) -> bool:
    """Every clock of the item stopped in time, and the timers have said so (``sla.met``)."""
    metrics = (item.get("sla") or {}).get("metrics") or {}
    logged = {r["metric"] for r in item.get("sla_log", ()) if r["event_type"] == "sla.met"}
    return bool(metrics) and all(m["state"] == "met" for m in metrics.values()) and set(metrics) <= logged


class TestClosedLoopsFromTheCommandLine:
    def test_a_fault_a_ticket_and_an_order_go_round_their_loops(self, two_workers, tmp_path):
        """Every step is one command that says the item's new state; all clocks end met."""
        desk = two_workers
        customer = f"C-LOOP-{uuid.uuid4().hex[:6]}"
        registered = event(
            "customer.registered",
            customer,
            datetime.now(UTC) - timedelta(hours=1),
            customer=customer,
            tier="diamond",
        )
        file = tmp_path / "customer.jsonl"
        file.write_bytes(registered.to_bytes() + b"\n")
        assert keydesk(desk, "publish", str(file)).returncode == 0

        done = keydesk(
            desk,
            "fault",
            "log",
            "--customer",
            customer,
            "--severity",
            "critical",
            "--summary",
            "专线中断",
            "--service",
            "MPLS VPN",
        )
        assert done.returncode == 0, done.stderr
        fault_id = done.stdout.strip()
        fault_steps = [
            ("ack", (), "acknowledged"),
            ("ack-escalation", ("--metric", "response", "--note", "已知悉"), "acknowledged"),
            ("dispatch", ("--team", "广州传输一班"), "dispatched"),
            ("repair", (), "in_repair"),
            ("pending", ("--status", "pending_third_party"), "pending"),
            ("resume", (), "in_progress"),
            ("restore", ("--cause", "fibre cut"), "restored"),
            ("confirm", (), "confirmed"),
            ("close", ("--resolution", "spliced"), "closed"),
            ("revisit", ("--satisfaction", "5"), "closed"),
        ]
        for action, options, state in fault_steps:
            assert step(desk, "fault", action, fault_id, customer, *options) == state, action

        done = keydesk(
            desk,
            "ticket",
            "open",
            "--customer",
            customer,
            "--kind",
            "complaint",
            "--priority",
            "P2",
            "--subject",
            "账单有误",
        )
        assert done.returncode == 0, done.stderr
        ticket_id = done.stdout.strip()
        ticket_steps = [
            ("ack", (), "acknowledged"),
            ("assign", ("--assignee", "staff-7"), "acknowledged"),
            ("start", (), "in_progress"),
            ("pending", (), "pending"),
            ("start", (), "in_progress"),
            ("priority", ("--priority", "P1"), "in_progress"),
            ("resolve", ("--resolution", "credited"), "resolved"),
            ("close", (), "closed"),
            ("revisit", ("--satisfaction", "4", "--comment", "满意"), "closed"),
        ]
        for action, options, state in ticket_steps:
            assert step(desk, "ticket", action, ticket_id, customer, *options) == state, action

        done = keydesk(
            desk, "order", "place", "--customer", customer, "--product", "leased_line", "--urgency", "urgent"
        )
        assert done.returncode == 0, done.stderr
        order_id = done.stdout.strip()
        order_steps = [
            ("confirm-resources", (), "resource_confirmed"),
            ("provision", (), "in_progress"),
            ("milestone", ("--milestone", "fibre_laid"), "in_progress"),
            ("pending", (), "pending"),
            ("resume", (), "in_progress"),
            ("activate", (), "activated"),
            ("accept", (), "completed"),
            ("revisit", ("--satisfaction", "5"), "completed"),
        ]
        for action, options, state in order_steps:
            assert step(desk, "order", action, order_id, customer, *options) == state, action

        items = {"fault": fault_id, "ticket": ticket_id, "order": order_id}
        deadline = time.monotonic() + 60
        while True:
            done = keydesk(desk, "view", customer)
            assert done.returncode == 0, done.stderr
            view = orjson.loads(done.stdout)
            found = {kind: closed_item(view, kind, item_id) for kind, item_id in items.items()}
            if all(item and every_clock_met(item) for item in found.values()):
                break
            assert time.monotonic() < deadline, {
                k: i and (i.get("sla"), i.get("sla_log")) for k, i in found.items()
            }
            time.sleep(0.5)  # polling the view until the timers have published sla.met
        for kind, item in found.items():
            assert item["attributes"]["satisfaction"] in (4, 5), kind
            assert all(r["outcome"] == "applied" for r in item["history"]), (kind, item["history"])
        assert [r["event_type"] for r in found["fault"]["sla_log"]].count("sla.escalation_acknowledged") == 1

    def test_a_forbidden_step_exits_1_with_the_lifecycles_reason(self, two_workers):
        """`keydesk fault confirm` on a fault never restored is rejected and says why."""
        desk = two_workers
        customer = f"C-NO-{uuid.uuid4().hex[:6]}"
        done = keydesk(
            desk,
            "fault",
            "log",
            "--customer",
            customer,
            "--severity",
            "minor",
            "--summary",
            "慢",
            "--service",
            "DIA",
        )
        fault_id = done.stdout.strip()
        done = keydesk(desk, "fault", "confirm", fault_id, "--customer", customer)
        assert done.returncode == 1, (done.stdout, done.stderr)
        assert "fault.customer_confirmed not allowed in state reported" in done.stderr


class TestStepsOverHttp:
    def report(self, worker, customer: str) -> str:
        status, answer = http(
            "POST",
            f"{worker.url}/api/faults",
            {"customer_id": customer, "severity": "major", "summary": "丢包", "service": "DIA"},
        )
        assert status == 202, answer
        return answer["fault_id"]

    def test_a_step_through_the_non_owner_is_answered_with_the_owners_outcome(self, two_workers):
        """Posted to the worker without the customer: published, folded by the owner, 200 applied."""
        desk = two_workers
        customer = f"C-NON-{uuid.uuid4().hex[:6]}"
        other = desk.workers[1 - owner_index(desk, customer)]
        fault_id = self.report(other, customer)
        status, answer = http(
            "POST",
            f"{other.url}/api/faults/{fault_id}/dispatch?wait=10",
            {"customer_id": customer, "team": "一班"},
        )
        assert status == 200, answer
        assert (answer["outcome"], answer["state"], answer["event_type"]) == (
            "applied",
            "dispatched",
            "fault.dispatched",
        )
        assert answer["item"]["attributes"]["team"] == "一班"
        status, view = other.view(customer)
        assert status == 200 and view["open"]["fault"][fault_id]["state"] == "dispatched"

        status, answer = http("POST", f"{other.url}/api/faults/{fault_id}/repair", {"customer_id": customer})
        assert (status, answer["outcome"]) == (202, "published"), answer
        status, _ = other.view(customer, wait_for=answer["event_id"])
        assert status == 200

    def test_a_step_the_state_forbids_is_a_409_with_the_reason(self, two_workers):
        """Through either worker: rejected by the lifecycle, 409, field action."""
        desk = two_workers
        customer = f"C-409-{uuid.uuid4().hex[:6]}"
        fault_id = self.report(desk.workers[0], customer)
        for worker in desk.workers:
            status, answer = http(
                "POST",
                f"{worker.url}/api/faults/{fault_id}/revisit?wait=10",
                {"customer_id": customer, "satisfaction": 3},
            )
            assert status == 409, answer
            assert answer["error"] == "fault.revisit_recorded not allowed in state reported"
            assert (answer["field"], answer["outcome"], answer["state"]) == ("action", "rejected", "reported")

    @pytest.mark.parametrize(
        ("path", "body", "field"),
        [
            ("dispatch", {"engineer": "王工"}, "team"),
            ("revisit", {"satisfaction": 9}, "satisfaction"),
            ("close", {"closed_unresolved": "bored"}, "closed_unresolved"),
            ("resume", {"status": "pending_customer"}, "status"),
            ("fly", {}, "action"),
            ("ack?wait=60", {}, "wait"),
        ],
    )
    def test_a_bad_field_is_a_422_naming_it(self, two_workers, path, body, field):
        """Nothing is published for a body the catalogue refuses; the answer names the field."""
        worker = two_workers.workers[0]
        customer = f"C-422-{uuid.uuid4().hex[:6]}"
        status, answer = http(
            "POST", f"{worker.url}/api/faults/F-1/{path}", {"customer_id": customer, **body}
        )
        assert (status, answer["field"]) == (422, field), answer
        status, answer = http("POST", f"{worker.url}/api/faults/F-1/ack", {"note": "whose?"})
        assert (status, answer["field"]) == (422, "customer_id"), answer
