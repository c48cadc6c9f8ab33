"""W3C trace context passed on when tracing is off, and carried by webhooks (CloudEvents tracing extension)."""

from __future__ import annotations

import json

import pytest

from services.notifier.dispatch import _trace_of
from services.notifier.messages import webhook_body
from shared import tracing
from tests.kit.factories import directive

pytestmark = pytest.mark.unit

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_a_webhook_body_carries_the_trace_context_and_the_delivery_reads_it_back() -> None:
    body = webhook_body(directive(), TP, "rojo=00f067aa0ba902b7")
    assert json.loads(body)["traceparent"] == TP
    assert _trace_of(body) == {"traceparent": TP, "tracestate": "rojo=00f067aa0ba902b7"}
    assert "traceparent" not in json.loads(webhook_body(directive()))


def test_with_tracing_off_the_stored_context_is_sent_unchanged() -> None:
    if tracing.enabled():  # checked when it runs: an earlier test of the session may have installed one
        pytest.skip("a tracer provider is installed in this process (tests/integration/test_traces.py)")
    span, tp, ts = tracing.publish_span("t", TP, "a=b", {})
    assert (span, tp, ts) == (None, TP, "a=b")
    with tracing.client_span("POST webhook", TP, "x" * 600) as headers:
        assert headers == {"traceparent": TP}  # an over-long tracestate is dropped
    with tracing.handling(topic="t", event_id="e", renja_id="r", event_type="x", traceparent=TP):
        assert tracing.current_context() == (TP, None)
    assert tracing.current_context() == (None, None)
