"""Worker start-up: from process start to the first event folded, against a running broker.

An event is waiting on the topic before each start, so "processing" means the
worker has joined the group, recovered its table and folded real input.
Each run is a new consumer group (a cold start: nothing committed, nothing to
recover) and then a restart of the same group (a warm start with recovery).

    .venv/bin/python bench/startup.py --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from handlers.cli.publish_file import publish_lines  # noqa: E402
from handlers.kafka_topics import ensure_topics  # noqa: E402
from handlers.local.kafka_broker import LocalKafka  # noqa: E402
from streams.settings import Settings  # noqa: E402
from tests.builders import fault  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def start_once(bootstrap: str, prefix: str, workdir: Path, customer: str) -> dict:
    """Seconds from Popen to 'worker.processing' and to the first 'event.folded'."""
    event = fault(f"F-{uuid.uuid4().hex[:6]}", "reported", customer=customer)
    settings = Settings(kafka=bootstrap, topic_prefix=prefix)
    asyncio.run(publish_lines(bootstrap, settings.events_topic, [event.to_bytes()]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYDESK_")}
    env.update(
        KEYDESK_KAFKA=bootstrap,
        KEYDESK_TOPIC_PREFIX=prefix,
        KEYDESK_APP_ID=f"{prefix}-app",
        KEYDESK_LOG_FORMAT="json",
        KEYDESK_HTTP_PORT=str(6300 + os.getpid() % 500),
        KEYDESK_DATA_DIR=str(workdir),
    )
    started = time.monotonic()
    worker = subprocess.Popen(
        [sys.executable, "-m", "handlers.cli", "worker"],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    marks: dict[str, float] = {}
    try:
        for line in worker.stderr:
            if b'"worker.processing"' in line and "processing" not in marks:
                marks["processing"] = time.monotonic() - started
                marks["reported_by_worker"] = orjson.loads(line)["seconds_since_start"]
            if b'"event.folded"' in line and event.event_id.encode() in line:
                marks["first_event"] = time.monotonic() - started
                break
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    return marks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    broker = None
    bootstrap = os.environ.get("KEYDESK_KAFKA")
    if not bootstrap:
        broker = LocalKafka()
        bootstrap = broker.start()
    try:
        cold, warm = [], []
        for _ in range(args.runs):
            prefix = f"start{uuid.uuid4().hex[:6]}"
            asyncio.run(ensure_topics(Settings(kafka=bootstrap, topic_prefix=prefix)))
            with tempfile.TemporaryDirectory() as workdir:
                cold.append(start_once(bootstrap, prefix, Path(workdir), "C-START"))
                warm.append(start_once(bootstrap, prefix, Path(workdir), "C-START"))
        for name, runs in (("cold start (new group)", cold), ("restart (same group)", warm)):
            first = [r["first_event"] for r in runs]
            print(
                f"{name}: first event folded after median {statistics.median(first):.2f} s "
                f"(max {max(first):.2f} s); processing after median "
                f"{statistics.median(r['processing'] for r in runs):.2f} s",
                flush=True,
            )
    finally:
        if broker is not None:
            broker.stop()


if __name__ == "__main__":
    main()
