"""Our Kafka binary-mode CloudEvents against the official ``cloudevents`` SDK, both directions."""

from __future__ import annotations

import json
from uuid import uuid4

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.v1.event import CloudEvent

from shared.cloudevents import DecodeError, from_kafka, to_kafka
from tests.kit.factories import directive

pytestmark = pytest.mark.unit

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def test_sdk_parses_what_we_produce() -> None:
    event = directive()
    rec = to_kafka(event, traceparent=TRACEPARENT)
    msg = ce_kafka.KafkaMessage(headers=dict(rec.headers), key=rec.key, value=rec.value)
    parsed = ce_kafka.from_binary_event(msg)
    assert parsed.get_id() == str(event.event_id)
    assert parsed.get_type() == "renja.DirectiveIssued.v2"
    assert parsed.get_source() == "/renja/directive"
    assert parsed.get_subject() == str(event.renja_id)
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_time() == event.occurred_at
    data = parsed.get_data()
    assert isinstance(data, dict) and data["text"] == "Susun Renja 2027"
    assert rec.key == str(event.renja_id).encode()
    assert dict(rec.headers)["traceparent"] == TRACEPARENT.encode()


def test_we_parse_what_the_sdk_produces() -> None:
    event = directive()
    data = json.loads(event.model_dump_json())
    ce = CloudEvent(
        {
            "id": str(event.event_id),
            "source": "/renja/directive",
            "type": "renja.DirectiveIssued.v2",
            "subject": str(event.renja_id),
            "time": event.occurred_at,
            "datacontenttype": "application/json",
            "partitionkey": str(event.renja_id),
        },
        data,
    )
    msg = ce_kafka.to_binary_event(ce)
    parsed = from_kafka(
        msg.key if isinstance(msg.key, bytes) else str(msg.key).encode(), msg.value, list(msg.headers.items())
    )
    assert parsed == event


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda h, v: (h, b"not json{"), "not_json"),
        (lambda h, v: ({**h, "ce_type": b"renja.Nope.v1"}, v), "unknown_type"),
        (lambda h, v: ({k: x for k, x in h.items() if k != "ce_id"}, v), "missing_header"),
        (lambda h, v: (h, json.dumps({**json.loads(v), "fiscal_year": "soon"}).encode()), "bad_schema"),
        (lambda h, v: ({**h, "ce_id": str(uuid4()).encode()}, v), "header_mismatch"),
        (lambda h, v: ({**h, "ce_specversion": b"0.3"}, v), "bad_specversion"),
    ],
)
def test_poison_records_are_refused_with_a_reason(mutate, reason) -> None:  # type: ignore[no-untyped-def]
    rec = to_kafka(directive())
    headers, value = mutate(dict(rec.headers), rec.value)
    with pytest.raises(DecodeError) as err:
        from_kafka(rec.key, value, list(headers.items()))
    assert err.value.reason == reason
