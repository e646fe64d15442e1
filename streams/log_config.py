"""Structured logging: JSON lines in production, a readable console on a terminal.

Context (customer, entity, event ids) is bound per processed event with
contextvars, so every line written while handling an event carries them.
"""

from __future__ import annotations

import logging
import sys

import orjson
import structlog


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
    if as_json:
        renderer = structlog.processors.JSONRenderer(serializer=orjson.dumps)
        factory = structlog.BytesLoggerFactory(file=sys.stderr.buffer)
        foreign_renderer = structlog.processors.JSONRenderer(
            serializer=lambda obj, **kw: orjson.dumps(obj, default=str).decode()
        )
    else:
        renderer = foreign_renderer = structlog.dev.ConsoleRenderer()
        factory = structlog.PrintLoggerFactory(file=sys.stderr)
    processors.append(renderer)
    handler = logging.StreamHandler(sys.stderr)
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
