"""Structured logging: JSON lines in production, a readable console on a terminal.

The worker passes a record's customer, entity and event ids with each line it
writes about it (``event.folded``, ``event.dead_lettered``, ...); code that
handles one customer's request may bind them with ``structlog.contextvars``,
which every line merges.

The event processor's JSON lines (logger ``keydesk.events``: a summary line for
every event folded or dead-lettered) are written once per event-loop turn
(:class:`TurnWriter`), not one ``write`` each: a write system call per line to
a log file was ~5 % of the worker's time (issue 13; BENCHMARKS.md, "Worker
throughput").  Every other line is written at once, after those before it: a
line that precedes an outside effect (an alert about to be delivered) must be
on file before the effect, whatever happens to the process next.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import sys
import threading
from typing import BinaryIO

import orjson
import structlog

#: The loggers whose lines may wait for the end of the event loop's turn: they are
#: about events whose batch is not yet acknowledged, so a process killed before
#: the turn ends folds those events, and writes their lines, again.
DEFERRED_LOGGERS = frozenset({"keydesk.events"})
#: A turn's lines are written at once by then at the latest (a batch of events
#: folded without an await writes thousands), so memory stays bounded.
TURN_MAX_LINES = 2000


class TurnWriter:
    """Writes lines in order; deferred ones in one go when the event loop's turn ends.

    A deferred line outside a running loop (the CLI's commands, a thread
    without one) is written at once, as is any line that is not deferred,
    together with the deferred ones before it: lines keep their order, whoever
    writes them (structlog and, through :class:`TurnHandler`, the standard
    library's loggers).  What is left is written at exit.  A process killed
    with ``-9`` loses the deferred lines of the turn it was in.
    """

    def __init__(self, file: BinaryIO) -> None:
        self._file = file
        self._lines: list[bytes] = []
        self._lock = threading.Lock()
        self._scheduled: set[asyncio.AbstractEventLoop] = set()
        atexit.register(self.flush)

    def write_line(self, line: bytes, *, deferred: bool = False) -> None:
        loop = None
        if deferred:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                pass
        with self._lock:
            self._lines.append(line)
            if loop is None or len(self._lines) >= TURN_MAX_LINES:
                self._write_locked()
                return
            if loop in self._scheduled:
                return
            self._scheduled.add(loop)
        loop.call_soon(self._end_of_turn, loop)

    def _end_of_turn(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._lock:
            self._scheduled.discard(loop)
            self._write_locked()

    def flush(self) -> None:
        with self._lock:
            self._write_locked()

    def _write_locked(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            self._file.write(b"\n".join(lines) + b"\n")
            self._file.flush()
        except (OSError, ValueError):  # stderr closed or gone: nothing left to tell
            pass


class TurnLogger:
    """structlog's ``BytesLogger`` interface over a :class:`TurnWriter`."""

    def __init__(self, writer: TurnWriter, *, deferred: bool = False) -> None:
        self._writer = writer
        self._deferred = deferred

    def msg(self, message: bytes) -> None:
        self._writer.write_line(message, deferred=self._deferred)

    log = debug = info = warn = warning = msg
    fatal = failure = err = error = critical = exception = msg


class TurnHandler(logging.Handler):
    """A standard-library handler writing its formatted records through a :class:`TurnWriter`."""

    def __init__(self, writer: TurnWriter) -> None:
        super().__init__()
        self._writer = writer

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._writer.write_line(self.format(record).encode("utf-8", "backslashreplace"))
        except Exception:
            self.handleError(record)


_WRITERS: dict[int, TurnWriter] = {}


def _writer_for(file: BinaryIO) -> TurnWriter:
    """One writer per file, however often logging is configured (tests configure it again)."""
    writer = _WRITERS.get(id(file))
    if writer is None or writer._file is not file:
        writer = _WRITERS[id(file)] = TurnWriter(file)
    return writer


def configure_logging(log_format: str = "auto", level: str = "info") -> None:
    """Configure structlog once per process; framework loggers only say warnings.

    faust, mode and aiokafka log through the standard library; their records are
    rendered by the same processors, so every line on stderr is one JSON object.
    """
    as_json = log_format == "json" or (log_format == "auto" and not sys.stderr.isatty())
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    processors = [*shared, structlog.processors.StackInfoRenderer(), structlog.processors.format_exc_info]
    handler: logging.Handler
    if as_json:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        writer = _writer_for(sys.stderr.buffer)
        at_once, deferred = TurnLogger(writer), TurnLogger(writer, deferred=True)

        def factory(*args: object) -> TurnLogger:
            """structlog calls this with ``get_logger``'s arguments: the first is the name."""
            return deferred if args and args[0] in DEFERRED_LOGGERS else at_once

        foreign_renderer = structlog.processors.JSONRenderer(
            serializer=lambda obj, **kw: orjson.dumps(obj, default=str).decode()
        )
        handler = TurnHandler(writer)
    else:
        renderer = foreign_renderer = structlog.dev.ConsoleRenderer()
        factory = structlog.PrintLoggerFactory(file=sys.stderr)
        handler = logging.StreamHandler(sys.stderr)
    processors.append(renderer)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[structlog.stdlib.add_logger_name, *shared],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                foreign_renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=factory,
        cache_logger_on_first_use=True,
    )
    for noisy in ("faust", "mode", "aiokafka", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
