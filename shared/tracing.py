"""OpenTelemetry traces, off unless configured: HTTP → command transaction → outbox publish → each consumer.

Switching on (``configure_tracing``, called by ``shared.app.build_service_app``):
- ``RENJA_TRACING=otlp`` — or unset with the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
  ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` set — exports over OTLP/HTTP (protobuf) in batches; the exporter
  reads the standard ``OTEL_EXPORTER_OTLP_*`` variables (endpoint, headers, timeout);
- ``RENJA_TRACING=file`` writes each finished span as one JSON line to ``RENJA_TRACE_FILE`` (local
  debugging and the tests of the running stack; never stdout, which carries the JSON log lines);
- ``RENJA_TRACING=off`` (the default otherwise): no provider is installed, every span below is a cheap
  no-op, and a caller's W3C ``traceparent``/``tracestate`` are passed on unchanged as before;
- a process whose global ``TracerProvider`` is already an SDK one (set by a test, or by
  ``opentelemetry-instrument``) uses it as it is.
Where the maintained instrumentation fits it is used: ``opentelemetry-instrumentation-fastapi`` (HTTP server
spans, W3C context from the request headers) and ``-asyncpg`` (a span per query). Own code, because no
maintained package covers it for our shapes: the command span (``command_span``), the relay's producer
span per outbox row, continued from the context the command stored with the row (``publish_span``), the
consumer's span per handled event, a child of the record's ``traceparent``/``tracestate`` headers
(``handling``), the audit's span per folded record (``folding``), and the headers of outbound webhooks
(``inject_headers``). (The aiokafka instrumentation package wraps ``send``/``getone`` of its own clients; our
relay sends a context stored in Postgres and our consumers use ``getmany`` batches, so it does not fit.)

Spans are named per the OpenTelemetry messaging conventions (``publish renja.events``,
``process renja.events``); attributes name the event (``renja.event_id``, ``renja.event_type``,
``renja.renja_id``).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import structlog
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Span as Span
from opentelemetry.trace import SpanKind, Status, StatusCode

TRACER_NAME = "renja"
TRACESTATE_MAX = 512
"""Longest ``tracestate`` value passed on (W3C: 32 members of at most 256 characters; we keep it short)."""

_state: dict[str, bool] = {"enabled": False}


def enabled() -> bool:
    """Whether spans are recorded in this process (a provider is configured)."""
    return _state["enabled"] or isinstance(trace.get_tracer_provider(), TracerProvider)


class JsonLinesSpanExporter(SpanExporter):
    """Each finished span as one JSON line (``ReadableSpan.to_json`` without indentation) appended to a file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: IO[str] = path.open("a", encoding="utf-8")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            for span in spans:
                self._file.write(json.dumps(json.loads(span.to_json())) + "\n")
            self._file.flush()
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        with self._lock:
            self._file.close()


def tracing_mode(setting: str | None) -> str:
    """``otlp``, ``file`` or ``off``: the ``RENJA_TRACING`` setting, else ``otlp`` when the standard OTLP
    endpoint variable is set, else ``off``."""
    if setting:
        return setting
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return "otlp"
    return "off"


def configure_tracing(service: str, mode: str | None, trace_file: Path | None = None) -> bool:
    """Install the process's ``TracerProvider`` for ``mode`` (see ``tracing_mode``) once; returns whether
    tracing is on. Raises ``ValueError`` for ``file`` without a file."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        _state["enabled"] = True
        return True
    mode = tracing_mode(mode)
    if mode == "off":
        return False
    provider = TracerProvider(resource=Resource.create({"service.name": f"renja-{service}"}))
    if mode == "file":
        if trace_file is None:
            raise ValueError("RENJA_TRACING=file needs RENJA_TRACE_FILE")
        provider.add_span_processor(SimpleSpanProcessor(JsonLinesSpanExporter(trace_file)))
    elif mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        raise ValueError(f"RENJA_TRACING must be off, otlp or file, not {mode!r}")
    trace.set_tracer_provider(provider)
    _state["enabled"] = True
    return True


def instrument_app(app: Any) -> None:
    """HTTP server spans for a FastAPI ``app`` and a span per asyncpg query (only when tracing is on)."""
    if not enabled():
        return
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    FastAPIInstrumentor.instrument_app(app, excluded_urls="/healthz,/readyz,/metrics")
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument()


def tracer() -> trace.Tracer:
    return trace.get_tracer(TRACER_NAME)


def _clean(traceparent: str | None, tracestate: str | None) -> dict[str, str]:
    carrier: dict[str, str] = {}
    if traceparent:
        carrier["traceparent"] = traceparent.strip()
    if tracestate and len(tracestate) <= TRACESTATE_MAX and tracestate.isascii() and tracestate.isprintable():
        carrier["tracestate"] = tracestate.strip()
    return carrier


def current_context(traceparent: str | None = None, tracestate: str | None = None) -> tuple[str | None, str | None]:
    """The W3C ``(traceparent, tracestate)`` of the current span, else the ones given (passed through
    unchanged when tracing is off and nothing is current)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    if "traceparent" not in carrier:
        carrier = _clean(traceparent, tracestate)
    return carrier.get("traceparent"), carrier.get("tracestate")


def inject_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus the current span's ``traceparent``/``tracestate`` (an outbound HTTP call)."""
    propagate.inject(headers)
    return headers


@contextlib.contextmanager
def command_span(command: str, renja_id: object) -> Iterator[Span]:
    """The span of one command transaction (a child of the HTTP server span, when there is one)."""
    attributes = {"renja.command": command, "renja.renja_id": str(renja_id)}
    with tracer().start_as_current_span(f"command {command}", kind=SpanKind.INTERNAL, attributes=attributes) as span:
        yield span


@contextlib.contextmanager
def client_span(name: str, traceparent: str | None, tracestate: str | None) -> Iterator[dict[str, str]]:
    """An outbound HTTP call (a webhook) continuing a stored trace context: yields the ``traceparent`` /
    ``tracestate`` headers to send (a CLIENT span's when tracing is on, else the stored ones unchanged)."""
    if not enabled():
        yield _clean(traceparent, tracestate)
        return
    parent = propagate.extract(_clean(traceparent, tracestate))
    with tracer().start_as_current_span(name, context=parent, kind=SpanKind.CLIENT) as span:
        headers: dict[str, str] = {}
        propagate.inject(headers, context=trace.set_span_in_context(span))
        yield headers


def publish_span(
    topic: str, traceparent: str | None, tracestate: str | None, attributes: Mapping[str, str]
) -> tuple[Span | None, str | None, str | None]:
    """Start the relay's producer span for one outbox row as a child of the context the command stored
    with it; returns the span (None when tracing is off) and the ``traceparent``/``tracestate`` to send
    (the span's own, so consumers continue it; the stored ones unchanged when tracing is off)."""
    if not enabled():
        clean = _clean(traceparent, tracestate)
        return None, clean.get("traceparent"), clean.get("tracestate")
    parent = propagate.extract(_clean(traceparent, tracestate))
    span = tracer().start_span(
        f"publish {topic}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={"messaging.system": "kafka", "messaging.destination.name": topic, **attributes},
    )
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    return span, carrier.get("traceparent"), carrier.get("tracestate")


def end_spans(spans: Sequence[Span | None], error: BaseException | None = None) -> None:
    """End the relay's publish spans, marked as errors if the batch failed."""
    for span in spans:
        if span is None:
            continue
        if error is not None:
            span.record_exception(error)
            span.set_status(Status(StatusCode.ERROR, type(error).__name__))
        span.end()


@contextlib.contextmanager
def handling(
    *,
    topic: str,
    event_id: object,
    renja_id: object,
    event_type: str,
    traceparent: str | None,
    tracestate: str | None = None,
    consumer: str | None = None,
) -> Iterator[None]:
    """While one consumed event is handled: its ``event_id``/``renja_id`` bound for the log lines (and
    unbound after, so the next line carries none of them) and, when tracing is on, a consumer span that
    continues the record's trace context."""
    ids = {"event_id": str(event_id), "renja_id": str(renja_id)}
    with structlog.contextvars.bound_contextvars(**ids):
        parent = propagate.extract(_clean(traceparent, tracestate))
        if not enabled():
            # no span, but the record's context is current: what the handler sends on (a webhook) carries it
            token = otel_context.attach(parent)
            try:
                yield
            finally:
                otel_context.detach(token)
            return
        attributes = {
            "messaging.system": "kafka",
            "messaging.destination.name": topic,
            "messaging.operation.type": "process",
            "renja.event_id": ids["event_id"],
            "renja.renja_id": ids["renja_id"],
            "renja.event_type": event_type,
        }
        if consumer is not None:
            attributes["messaging.consumer.group.name"] = consumer
        with tracer().start_as_current_span(
            f"process {topic}", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
        ):
            yield


_RECORD_ATTRIBUTES = (("renja.event_id", "ce_id"), ("renja.event_type", "ce_type"), ("renja.renja_id", "ce_subject"))


def record_trace(headers: Sequence[tuple[str, bytes]] | None) -> tuple[dict[str, str], dict[str, str]]:
    """A Kafka record's trace headers (as text) and its span attributes (``ce_id``, ``ce_type``, key-less),
    for ``folding``; cheap: it looks only at the few headers it needs."""
    wanted = {"traceparent", "tracestate", "ce_id", "ce_type", "ce_subject"}
    found = {k: v.decode(errors="replace") for k, v in headers or () if k in wanted}
    attributes = {name: found[key] for name, key in _RECORD_ATTRIBUTES if key in found}
    return found, attributes


@contextlib.contextmanager
def folding(
    topic: str, consumer: str, records: Sequence[tuple[Mapping[str, str], Mapping[str, str]]]
) -> Iterator[None]:
    """While a batch projection (the audit's) folds ``records``: one consumer span per record, each a child
    of its record's trace context, ended when the batch is done (marked as an error if it failed).
    ``records``: ``(headers as text, span attributes)`` per record. No-op when tracing is off."""
    if not enabled():
        yield
        return
    spans: list[Span | None] = []
    for headers, attributes in records:
        parent = propagate.extract(_clean(headers.get("traceparent"), headers.get("tracestate")))
        spans.append(
            tracer().start_span(
                f"process {topic}",
                context=parent,
                kind=SpanKind.CONSUMER,
                attributes={
                    "messaging.system": "kafka",
                    "messaging.destination.name": topic,
                    "messaging.consumer.group.name": consumer,
                    **attributes,
                },
            )
        )
    try:
        yield
    except BaseException as exc:
        end_spans(spans, exc)
        raise
    end_spans(spans)
