"""structlog JSON logging for every process: one line per log call, bound context via contextvars.

Invariants:
- logs are JSON objects on stdout with ``timestamp`` (UTC ISO), ``level``, ``event`` and the bound
  ``service``; consumers and handlers bind ``event_id`` and ``renja_id`` while they work on an event;
- no secret reaches a log line: tracebacks carry no local variables (they would hold request headers
  and bodies), and a ``token=`` query parameter in an access-log line is replaced by ``token=[redacted]``.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog
from structlog.tracebacks import ExceptionDictTransformer

_TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s\"']+")


class RedactTokens(logging.Filter):
    """Rewrites ``token=<jwt>`` in a record's message and arguments (uvicorn's access log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = _TOKEN_IN_QUERY.sub(r"\1[redacted]", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(
                _TOKEN_IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args
            )
        return True


def configure_logging(service: str, level: str = "INFO") -> None:
    """Configure structlog and stdlib logging (uvicorn, aiokafka) to emit JSON lines bound with ``service``."""
    exceptions = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared_processors, exceptions, structlog.processors.JSONRenderer()],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            exceptions,
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    handler.addFilter(RedactTokens())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel("WARNING")
    # uvicorn's access logger has handlers of its own (set up before the app): redact there too.
    logging.getLogger("uvicorn.access").addFilter(RedactTokens())
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
