"""The worker's SQL sink end to end: a fault logged over HTTP reaches the reporting database."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import orjson
import pytest

from handlers.kafka_topics import ensure_topics
from streams.settings import Settings
from tests.builders import event, fault
from tests.e2e.conftest import http, new_desk, poll

pytestmark = pytest.mark.broker


def sink_status(worker, timeout: float = 60.0, until=lambda s: True) -> dict:
    """Poll the worker's own sink report until ``until`` holds."""

    def reported() -> dict | None:
        status, answer = http("GET", f"{worker.url}/api/sink")
        return answer if status == 200 and until(answer) else None

    return poll(reported, "the sink's report", timeout, detail=lambda: worker.log_path.read_text()[-3000:])


def test_a_logged_fault_is_in_the_default_sqlite_database_with_its_clocks(desk):
    worker = desk.workers[0]
    status, answer = http(
        "POST",
        f"{worker.url}/api/faults",
        {"customer_id": "C-SQL", "severity": "critical", "summary": "专线中断", "service": "MPLS VPN"},
    )
    assert status == 202, answer
    sink_status(worker, until=lambda s: s["totals"].get("stored", 0) >= 1 and s["lag_total"] == 0)
    db = subprocess.run(
        [sys.executable, "-m", "handlers.cli", "db", "status"],
        env=desk.env(1),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert db.returncode == 0, db.stderr
    report = orjson.loads(db.stdout)
    assert report["database"].endswith("keydesk.sqlite") and report["revision"] == report["head"]
    assert report["rows"]["event_log"] >= 1 and report["rows"]["items"] >= 1
    assert report["rows"]["sla_outcomes"] >= 3  # response, restore, resolve
    assert report["sink_lag"]["total"] == 0 and len(report["sink_lag"]["partitions"]) == 8


def test_the_sink_alone_feeds_the_database_and_stops_cleanly(kafka_bootstrap, tmp_path):
    """`keydesk sink` in a process of its own (KEYDESK_SINK=off on the workers)."""
    desk = new_desk(kafka_bootstrap, tmp_path, KEYDESK_SINK="off")
    asyncio.run(ensure_topics(Settings.from_env(desk.env(1))))
    events = [
        event("customer.registered", "C-ALONE", "08:00", customer="C-ALONE"),
        fault("F-ALONE", "reported", "09:00", customer="C-ALONE"),
        fault("F-ALONE", "restored", "10:00", customer="C-ALONE"),
    ]
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(e.to_bytes() + b"\n" for e in events))
    published = subprocess.run(
        [sys.executable, "-m", "handlers.cli", "publish", str(path)],
        env=desk.env(1),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert published.returncode == 0, published.stderr
    log = open(tmp_path / "sink.log", "wb")
    sink = subprocess.Popen(
        [sys.executable, "-m", "handlers.cli", "sink"], env=desk.env(1), stdout=log, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            db = subprocess.run(
                [sys.executable, "-m", "handlers.cli", "db", "status"],
                env=desk.env(1),
                capture_output=True,
                text=True,
                timeout=60,
            )
            status = orjson.loads(db.stdout) if db.stdout.startswith("{") else {}
            if status.get("rows", {}).get("event_log") == 3 and status["sink_lag"]["total"] == 0:
                break
            assert sink.poll() is None, (tmp_path / "sink.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (db.stdout, db.stderr)
            time.sleep(0.2)  # polling the database the other process writes
        assert status["rows"]["items"] == 1 and status["rows"]["sla_outcomes"] == 3
    finally:
        sink.send_signal(signal.SIGTERM)
        assert sink.wait(30) == 0, (tmp_path / "sink.log").read_text()[-3000:]
