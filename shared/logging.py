"""structlog JSON logging for every process: one line per log call, one schema, bound context via contextvars.

Invariants:
- every line on stdout is one JSON object, whoever logs it: our structlog loggers and every stdlib logger
  (uvicorn's server and access logs, aiokafka, alembic) go through ONE handler and ``ProcessorFormatter``;
  uvicorn's own handlers (set up from its ``log_config`` before the app factory runs) are removed and its
  loggers propagate to that handler, so no plain-text line is left;
- one schema: every line has ``message``, ``level``, ``logger``, ``service``, ``timestamp`` (UTC ISO 8601)
  and the correlation keys ``trace_id``, ``span_id``, ``request_id``, ``renja_id``, ``event_id`` (``null``
  when not known); ``message`` replaces structlog's ``event`` key (which collides with the ECS/OTel
  meaning of ``event``); an access-log line adds ``http_method``, ``http_path``, ``http_status``,
  ``client``;
- the correlation ids live in contextvars that are cleared per HTTP request
  (``shared.web.middleware.RequestContextMiddleware``) and bound per consumed message only for the time it
  is handled (``shared.tracing.handling``), so a line never carries another request's or event's ids;
  ``trace_id``/``span_id`` come from the current OpenTelemetry span (``shared.tracing``), when one is;
- levels mean what they say: ``error`` is for a fault someone must look at; the Kafka client's transient
  start-up messages (no group coordinator yet) are ``info`` and, below the client's ``WARNING``
  threshold, left out;
- no secret reaches a log line: tracebacks carry no local variables (they would hold request headers
  and bodies), and a ``token=`` query parameter in an access-log line is replaced by ``token=[redacted]``.
"""

from __future__ import annotations

import logging
import re
import sys

import structlog
from opentelemetry import trace
from structlog.tracebacks import ExceptionDictTransformer
from structlog.types import EventDict, WrappedLogger

_TOKEN_IN_QUERY = re.compile(r"(token=)[^&\s\"']+")

CORRELATION_KEYS = ("trace_id", "span_id", "request_id", "renja_id", "event_id")
"""Keys every line carries (``null`` when not known), beside ``message``, ``level``, ``logger``,
``service`` and ``timestamp``."""

UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")

TRANSIENT_KAFKA_MESSAGES = re.compile(
    r"GroupCoordinatorNotAvailable|Marking the coordinator dead|NotCoordinatorForGroup|CoordinatorLoadInProgress"
)
"""aiokafka messages logged at ``error``/``warning`` that it retries by itself (the broker is still electing
a group coordinator, as at every start): noise, not faults."""


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


class TransientKafkaNoise(logging.Filter):
    """Demotes aiokafka's self-healing coordinator messages to ``info`` (then dropped below the client's
    threshold): a normal start logs no error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith("aiokafka") or record.levelno < logging.WARNING:
            return True
        if not TRANSIENT_KAFKA_MESSAGES.search(record.getMessage()):
            return True
        record.levelno, record.levelname = logging.INFO, "INFO"
        return logging.getLogger(record.name).getEffectiveLevel() <= logging.INFO


def add_trace_context(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """``trace_id`` / ``span_id`` (hex) of the current OpenTelemetry span, if there is a valid one."""
    ctx = trace.get_current_span().get_span_context()
    if ctx.is_valid:
        event_dict.setdefault("trace_id", format(ctx.trace_id, "032x"))
        event_dict.setdefault("span_id", format(ctx.span_id, "016x"))
    return event_dict


def add_access_fields(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """uvicorn's access-log record as fields: ``client``, ``http_method``, ``http_path``, ``http_status``
    (from the record's arguments, which ``ProcessorFormatter(pass_foreign_args=True)`` hands over as
    ``positional_args``; they are never printed as such)."""
    args = event_dict.pop("positional_args", None)
    record = event_dict.get("_record")
    if record is not None and record.name == "uvicorn.access" and isinstance(args, tuple) and len(args) == 5:
        client, method, path, _version, status = args
        event_dict.update(client=client, http_method=method, http_path=path, http_status=status)
    return event_dict


def _service_adder(service: str) -> structlog.types.Processor:
    def add_service(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add_service


def _with_schema_keys(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    for key in CORRELATION_KEYS:
        event_dict.setdefault(key, None)
    return event_dict


def configure_logging(service: str, level: str = "INFO") -> None:
    """Route structlog and every stdlib logger (uvicorn, aiokafka, alembic) to one JSON handler on stdout,
    each line with the schema of the module docstring and ``service``; clears the bound context."""
    exceptions = structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _service_adder(service),
        add_trace_context,
    ]
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared_processors,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        wrapper_class=structlog.stdlib.BoundLogger,
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared_processors,
        pass_foreign_args=True,
        processors=[
            add_access_fields,
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            exceptions,
            _with_schema_keys,
            structlog.processors.EventRenamer("message"),
            structlog.processors.JSONRenderer(),
        ],
    )
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(formatter)
    handler.addFilter(RedactTokens())
    handler.addFilter(TransientKafkaNoise())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel("WARNING")
    for name in UVICORN_LOGGERS:  # uvicorn configured these with plain-text handlers before our factory ran
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
    structlog.contextvars.clear_contextvars()
