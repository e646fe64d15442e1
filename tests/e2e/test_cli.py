"""The `keydesk` command against a running worker and the real broker."""

from __future__ import annotations

import subprocess
import sys
import uuid

import orjson
import pytest

from tests.builders import event, fault
from tests.e2e.conftest import keydesk as run_keydesk

pytestmark = pytest.mark.broker


def keydesk(desk, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = run_keydesk(desk, *args)
    if check:
        assert done.returncode == 0, done.stderr
    return done


class TestHotlineCommands:
    def test_log_a_fault_and_see_it_in_the_view(self, desk):
        """`keydesk fault log --wait` prints the new fault id and the fault from the view."""
        customer = f"C-CLI-{uuid.uuid4().hex[:6]}"
        done = keydesk(
            desk,
            "fault",
            "log",
            "--customer",
            customer,
            "--severity",
            "major",
            "--summary",
            "专线丢包",
            "--service",
            "DIA",
            "--wait",
        )
        fault_id, _, shown = done.stdout.partition("\n")
        assert fault_id.startswith("F-")
        assert orjson.loads(shown)["attributes"]["priority"] == "P2"
        view = orjson.loads(keydesk(desk, "view", customer).stdout)
        assert fault_id in view["open"]["fault"]

    def test_a_refused_fault_names_the_field(self, desk):
        """The API's 4xx reaches the operator as a one-line reason."""
        done = keydesk(
            desk,
            "fault",
            "log",
            "--customer",
            " ",
            "--severity",
            "minor",
            "--summary",
            "x",
            "--service",
            "y",
            check=False,
        )
        assert done.returncode == 2 and "customer_id" in done.stderr


class TestPublish:
    def test_a_json_lines_file_is_published_and_bad_lines_are_reported(self, desk, tmp_path):
        """Good lines are sent; a bad line is named by its number and not sent."""
        customer = f"C-PUB-{uuid.uuid4().hex[:6]}"
        good = [
            event("customer.registered", customer, customer=customer),
            fault("F-1", "reported", customer=customer),
        ]
        file = tmp_path / "events.jsonl"
        file.write_bytes(
            b"\n".join([good[0].to_bytes(), b'{"event_type": "fault.reported"}', good[1].to_bytes()]) + b"\n"
        )
        done = keydesk(desk, "publish", str(file), check=False)
        assert done.returncode == 1
        assert f"{file}:2:" in done.stderr and "sent 2 event(s), refused 1" in done.stdout
        status, view = desk.workers[0].view(customer, wait_for=good[1].event_id)
        assert status == 200 and "F-1" in view["open"]["fault"]


class TestSlaCommands:
    def test_explain_an_items_deadlines(self, desk, tmp_path):
        """`keydesk sla explain` shows how the deadline was derived, live and offline."""
        customer = f"C-SLA-{uuid.uuid4().hex[:6]}"
        events = [
            event("customer.registered", customer, customer=customer, tier="platinum"),
            fault("F-9", "reported", "09:00", customer=customer),
            fault("F-9", "status_changed", "09:10", customer=customer, status="pending_third_party"),
        ]
        file = tmp_path / "events.jsonl"
        file.write_bytes(b"\n".join(e.to_bytes() for e in events))
        keydesk(desk, "publish", str(file))
        desk.workers[0].view(customer, wait_for=events[-1].event_id)
        live = keydesk(
            desk,
            "sla",
            "explain",
            "--customer",
            customer,
            "--fault",
            "F-9",
            "--at",
            "2026-11-23T10:00:00+08:00",
        ).stdout
        offline = keydesk(
            desk,
            "sla",
            "explain",
            "--customer",
            customer,
            "--fault",
            "F-9",
            "--events",
            str(file),
            "--at",
            "2026-11-23T10:00:00+08:00",
        ).stdout
        assert "platinum" in live and "pending_third_party" in live
        assert live == offline  # the running system and the event file agree

    def test_check_a_rules_file(self, desk, tmp_path):
        """A bad rules file is reported with file, line and reason; the worker refuses it."""
        from sla_rules import DEFAULT_RULES_PATH

        bad = tmp_path / "rules.toml"
        bad.write_text(open(DEFAULT_RULES_PATH).read().replace('tier = ["diamond"]', 'tier = ["mithril"]', 1))
        done = keydesk(desk, "sla", "check", str(bad), check=False)
        assert done.returncode == 1 and f"{bad}:" in done.stderr and "mithril" in done.stderr
        assert keydesk(desk, "sla", "check", str(DEFAULT_RULES_PATH)).returncode == 0
        env = desk.env(6066) | {"KEYDESK_SLA_RULES": str(bad)}
        refused = subprocess.run(
            [sys.executable, "-m", "handlers.cli", "worker"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert refused.returncode == 2 and "invalid" in refused.stderr


class TestTimerCommands:
    def test_replay_prints_the_same_step_events_every_time(self, desk, tmp_path):
        """`keydesk replay` on a recorded stream is byte-for-byte repeatable."""
        from tests.streams.test_replay import recorded_day

        file = tmp_path / "day.jsonl"
        file.write_bytes(b"\n".join(e.to_bytes() for e in recorded_day()))
        first = keydesk(desk, "replay", str(file))
        second = keydesk(desk, "replay", str(file))
        steps = [orjson.loads(line) for line in first.stdout.splitlines()]
        assert first.stdout == second.stdout and steps
        assert {s["event_type"] for s in steps} >= {"sla.breached", "sla.escalation_due"}
        assert "SLA step event(s)" in first.stderr

    def test_queue_and_acknowledge(self, desk):
        """The queue lists a fresh P1 fault; a manager acknowledges its response clock."""
        customer = f"C-QA-{uuid.uuid4().hex[:6]}"
        done = keydesk(
            desk,
            "fault",
            "log",
            "--customer",
            customer,
            "--severity",
            "critical",
            "--summary",
            "中断",
            "--service",
            "MPLS VPN",
            "--wait",
        )
        fault_id = done.stdout.splitlines()[0]
        queue = orjson.loads(keydesk(desk, "queue", "--json", "--limit", "1000").stdout)
        assert fault_id in {row["id"] for row in queue["items"]}
        assert fault_id in keydesk(desk, "queue", "--limit", "1000").stdout
        acked = keydesk(
            desk,
            "sla",
            "ack",
            "--customer",
            customer,
            "--fault",
            fault_id,
            "--metric",
            "response",
            "--note",
            "已派单",
        )
        assert "acknowledged fault" in acked.stdout and "cycle 1" in acked.stdout
