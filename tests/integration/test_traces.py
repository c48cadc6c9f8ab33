"""One trace from an HTTP command to the audit projection, continued across Kafka (W3C trace context).

In-process: an SDK ``TracerProvider`` with an in-memory exporter is installed before the apps are built,
as ``opentelemetry-instrument`` would (``shared.tracing.configure_tracing`` then uses it as it is).
"""

from __future__ import annotations

import asyncio

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from services.audit.main import create_app as create_audit
from services.audit.settings import AuditSettings
from services.directive.main import create_app as create_directive
from services.directive.settings import DirectiveSettings
from services.meetings.main import create_app as create_meetings
from services.meetings.settings import MeetingsSettings
from tests.kit.servicekit import run_service
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration

ARAHAN = {"opd": "Dinas Jejak", "fiscal_year": 2027, "text": "Susun Renja", "addressee_name": "Ir. Ratna Sari Dewi"}
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"


def exporter() -> InMemorySpanExporter:
    """The process's in-memory span exporter (installing the SDK provider the first time)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return memory


def of_trace(spans: tuple[ReadableSpan, ...], trace_id: int) -> list[ReadableSpan]:
    return [s for s in spans if s.context is not None and s.context.trace_id == trace_id]


async def test_one_trace_links_the_http_command_the_publish_and_each_consumer(topic: str) -> None:
    memory = exporter()
    async with (
        run_service(create_directive, DirectiveSettings, topic=topic) as (directive, s),
        run_service(create_meetings, MeetingsSettings, topic=topic) as _,
        run_service(create_audit, AuditSettings, topic=topic) as _,
    ):
        headers = {**auth(s, "kepala_badan"), "traceparent": f"00-{CALLER_TRACE}-b7ad6b7169203331-01"}
        r = await directive.post("/renja", json=ARAHAN, headers=headers)
        assert r.status_code == 201, r.text
        event_id = r.json()["events"][0]["event_id"]
        trace_id = int(CALLER_TRACE, 16)
        for _ in range(300):
            spans = of_trace(memory.get_finished_spans(), trace_id)
            consumers = [x for x in spans if x.kind == SpanKind.CONSUMER]
            groups = {(x.attributes or {}).get("messaging.consumer.group.name") for x in consumers}
            if {"audit", "meetings"} <= groups:
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError(f"no consumer spans of both services in the trace: {[x.name for x in spans]}")
    by_name = {x.name: x for x in spans}
    server = by_name["POST /renja"]
    assert server.kind == SpanKind.SERVER and server.parent is not None and server.parent.span_id == 0xB7AD6B7169203331
    command = by_name["command IssueArahan"]
    assert command.parent is not None and command.parent.span_id == server.context.span_id
    publish = by_name[f"publish {topic}"]
    assert publish.kind == SpanKind.PRODUCER and (publish.attributes or {})["renja.event_id"] == event_id
    assert publish.parent is not None and publish.parent.span_id == command.context.span_id
    for consumer in consumers:  # each consumer continues the publish span carried in the record's headers
        assert consumer.parent is not None and consumer.parent.span_id == publish.context.span_id
        assert (consumer.attributes or {})["renja.event_id"] == event_id
    assert any(x.name.startswith(("INSERT", "SELECT", "UPDATE")) for x in spans), "asyncpg query spans"
