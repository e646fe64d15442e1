"""The worker's SQL sink end to end: a fault logged over HTTP reaches the reporting database."""

from __future__ import annotations

import subprocess
import sys
import time

import orjson
import pytest

from tests.e2e.conftest import http

pytestmark = pytest.mark.broker


def sink_status(worker, timeout: float = 60.0, until=lambda s: True) -> dict:
    """Poll the worker's own sink report until ``until`` holds."""
    deadline = time.monotonic() + timeout
    while True:
        status, answer = http("GET", f"{worker.url}/api/sink")
        if status == 200 and until(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(f"sink never got there: {status} {answer}\n"
                                 f"{worker.log_path.read_text()[-3000:]}")
        time.sleep(0.1)  # polling the worker's own report


def test_a_logged_fault_is_in_the_default_sqlite_database_with_its_clocks(desk):
    worker = desk.workers[0]
    status, answer = http("POST", f"{worker.url}/api/faults", {
        "customer_id": "C-SQL", "severity": "critical", "summary": "专线中断",
        "service": "MPLS VPN"})
    assert status == 202, answer
    sink_status(worker, until=lambda s: s["totals"].get("stored", 0) >= 1 and s["lag_total"] == 0)
    db = subprocess.run([sys.executable, "-m", "handlers.cli", "db", "status"],
                        env=desk.env(1), capture_output=True, text=True, timeout=60)
    assert db.returncode == 0, db.stderr
    report = orjson.loads(db.stdout)
    assert report["database"].endswith("keydesk.sqlite") and report["revision"] == report["head"]
    assert report["rows"]["event_log"] >= 1 and report["rows"]["items"] >= 1
    assert report["rows"]["sla_outcomes"] >= 3  # response, restore, resolve
    assert report["sink_lag"]["total"] == 0 and len(report["sink_lag"]["partitions"]) == 8
