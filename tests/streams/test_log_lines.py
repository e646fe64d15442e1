"""The worker's log lines: its per-event lines one write per event-loop turn, in order, none lost."""

from __future__ import annotations

import asyncio
import logging

import orjson
import structlog

from streams import log_config
from streams.log_config import TURN_MAX_LINES, TurnHandler, TurnWriter


class RecordingFile:
    """A binary file that remembers each write separately."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.writes.append(data)
        return len(data)

    def flush(self) -> None:
        pass

    def lines(self) -> list[bytes]:
        return b"".join(self.writes).splitlines()


def test_lines_written_in_one_turn_leave_in_one_write_after_it():
    file = RecordingFile()
    writer = TurnWriter(file)

    async def a_batch_folded_without_an_await():
        for n in range(300):
            writer.write_line(b'{"event":"event.folded","n":%d}' % n, deferred=True)
        assert file.writes == []  # still the same turn: nothing written yet
        await asyncio.sleep(0)  # the turn ends
        return list(file.writes)

    writes = asyncio.run(a_batch_folded_without_an_await())
    assert len(writes) == 1
    assert [orjson.loads(line)["n"] for line in file.lines()] == list(range(300))


def test_a_line_outside_an_event_loop_is_written_at_once():
    file = RecordingFile()
    TurnWriter(file).write_line(b'{"event":"cli.done"}', deferred=True)
    assert file.lines() == [b'{"event":"cli.done"}']


def test_a_long_turn_writes_every_few_thousand_lines_so_memory_stays_bounded():
    file = RecordingFile()
    writer = TurnWriter(file)

    async def a_long_turn():
        for n in range(TURN_MAX_LINES * 2 + 5):
            writer.write_line(b"%d" % n, deferred=True)
        during = len(file.writes)
        await asyncio.sleep(0)
        return during

    assert asyncio.run(a_long_turn()) == 2
    assert file.lines() == [b"%d" % n for n in range(TURN_MAX_LINES * 2 + 5)]


def test_flush_writes_what_a_turn_has_not_yet_written():
    file = RecordingFile()
    writer = TurnWriter(file)

    async def stopped_mid_turn():
        writer.write_line(b"last words", deferred=True)
        writer.flush()  # what exit does (atexit) for a loop that never ran again
        return list(file.writes)

    assert asyncio.run(stopped_mid_turn()) == [b"last words\n"]


def test_framework_lines_and_keydesk_lines_keep_their_order():
    file = RecordingFile()
    writer = TurnWriter(file)
    handler = TurnHandler(writer)
    handler.setFormatter(logging.Formatter("%(message)s"))
    framework = logging.getLogger("test.framework")
    framework.propagate = False
    framework.addHandler(handler)
    try:

        async def interleaved():
            writer.write_line(b"keydesk 1", deferred=True)
            framework.warning("faust 2")
            written_with_the_warning = file.lines()
            writer.write_line(b"keydesk 3", deferred=True)
            await asyncio.sleep(0)
            return written_with_the_warning

        assert asyncio.run(interleaved()) == [b"keydesk 1", b"faust 2"]
    finally:
        framework.removeHandler(handler)
    assert file.lines() == [b"keydesk 1", b"faust 2", b"keydesk 3"]


def test_a_line_before_an_outside_effect_is_on_file_before_the_turn_ends():
    # An alert's "delivering" line must survive a kill -9 right after the delivery began.
    file = RecordingFile()
    writer = TurnWriter(file)

    async def an_alert_about_to_go_out():
        writer.write_line(b'{"event":"event.folded"}', deferred=True)
        writer.write_line(b'{"event":"alert_delivering","alert_id":"a-1"}')
        return file.lines()

    assert asyncio.run(an_alert_about_to_go_out()) == [
        b'{"event":"event.folded"}',
        b'{"event":"alert_delivering","alert_id":"a-1"}',
    ]


def test_the_summary_line_carries_the_ids_it_is_about_and_only_it_waits_for_the_turn(monkeypatch, capfd):
    # The worker passes the ids with each line instead of binding contextvars per event.
    monkeypatch.setattr(log_config, "_WRITERS", {})
    log_config.configure_logging("json")

    async def fold_then_alert():
        structlog.get_logger("keydesk.events").info(
            "event.folded", customer_id="C-1", entity_id="F-1", event_id="e-1", outcome="applied"
        )
        waiting = capfd.readouterr().err
        structlog.get_logger("keydesk.alerts").info("alert_delivering", alert_id="a-1")
        return waiting, capfd.readouterr().err

    try:
        waiting, written = asyncio.run(fold_then_alert())
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers[:] = []
    assert waiting == ""
    assert [orjson.loads(line)["event"] for line in written.splitlines()] == [
        "event.folded",
        "alert_delivering",
    ]
    line = orjson.loads(written.splitlines()[0])
    assert (line["customer_id"], line["entity_id"], line["event_id"]) == ("C-1", "F-1", "e-1")
    assert line["level"] == "info" and line["timestamp"].endswith("Z")
