"""docs/asyncapi.yaml is exactly what the registry generates, names every event type, and describes the
records we really produce: the headers of ``to_kafka`` and ``dlq_headers`` validate against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from uuid import UUID

import jsonschema
import pytest
import yaml
from aiokafka import ConsumerRecord
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from deploy.local.settings import StackSettings
from shared import cloudevents, inbox, origin
from shared.cloudevents import DecodeError, from_kafka, header_map, to_kafka
from shared.events import EVENT_TYPES
from shared.events.asyncapi import ASYNCAPI_FILE, BUNDLED_FILE, DLQ_REASONS, SHIPPED_SOP_FILE, rendered
from shared.events.schema import SCHEMA_DIR
from shared.inbox import dlq_headers
from shared.sop import anomaly, load_sop
from tests.kit.factories import directive

pytestmark = pytest.mark.unit

RENJA = UUID("6f1c2b1e-0000-4000-8000-000000000001")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(ASYNCAPI_FILE.read_text(encoding="utf-8"))
    return loaded


def _message(doc: dict[str, Any], event_type: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [m for m in doc["components"]["messages"].values() if m["name"] == event_type]
    assert len(found) == 1, event_type
    return found[0]


def test_checked_in_document_matches_the_registry() -> None:
    assert ASYNCAPI_FILE.read_text(encoding="utf-8") == rendered(), (
        "stale; run: uv run python -m shared.events.asyncapi"
    )


def test_checked_in_bundled_document_matches_the_registry() -> None:
    assert BUNDLED_FILE.read_text(encoding="utf-8") == rendered(bundled=True), (
        "stale; run: uv run python -m shared.events.asyncapi"
    )


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref" and isinstance(v, str)] + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_bundled_document_is_self_contained_and_its_payloads_judge_like_the_schema_files() -> None:
    bundled: dict[str, Any] = yaml.safe_load(BUNDLED_FILE.read_text(encoding="utf-8"))
    refs = _refs(bundled)
    assert refs and [r for r in refs if not r.startswith("#/")] == []
    registry: Registry[Any] = Registry().with_resource("urn:bundle", Resource(bundled, DRAFT202012))
    for ref in set(refs):  # every pointer lands on something
        assert registry.resolver("urn:bundle").lookup("urn:bundle" + ref).contents is not None, ref
    event = json.loads(directive(RENJA).model_dump_json())
    payload_ref = _message(bundled, "renja.DirectiveIssued.v2")["payload"]["$ref"]
    inlined = jsonschema.Draft202012Validator({"$ref": "urn:bundle" + payload_ref}, registry=registry)
    on_file = jsonschema.Draft202012Validator(
        json.loads((SCHEMA_DIR / "renja.DirectiveIssued.v2.schema.json").read_text(encoding="utf-8"))
    )
    for value in (event, {**event, "level": "bisikan"}, {**event, "actor": {"nip": "1"}}, {**event, "x": 1}):
        assert inlined.is_valid(value) == on_file.is_valid(value), value
    assert inlined.is_valid(event) and not inlined.is_valid({**event, "actor": {"nip": "1"}})


def test_one_message_per_event_type_with_its_schema_file(doc: dict[str, Any]) -> None:
    channel = doc["channels"]["renjaEvents"]
    assert channel["address"] == "renja.events"
    received = {m["$ref"].rsplit("/", 1)[1] for m in doc["operations"]["receiveRenjaEvents"]["messages"]}
    assert received == set(channel["messages"])
    for event_type in EVENT_TYPES:
        message = _message(doc, event_type)
        assert message["headers"]["properties"]["ce_type"]["const"] == event_type
        schema_path = (ASYNCAPI_FILE.parent / message["payload"]["$ref"]).resolve()
        schema = json.loads(schema_path.read_text(encoding="utf-8"))
        assert schema["title"] == event_type
        assert message["bindings"]["kafka"]["key"] == {
            "type": "string",
            "format": "uuid",
            "description": "The Renja id: one Renja, one partition.",
        }


def test_sop_steps_per_message_cover_the_eleven_steps_once(doc: dict[str, Any]) -> None:
    steps = [s["step"] for m in doc["components"]["messages"].values() for s in m.get("x-sop-steps", [])]
    assert sorted(steps) == list(range(1, 12))
    assert [s["step"] for s in _message(doc, "renja.Initialed.v1")["x-sop-steps"]] == [8, 9]
    assert _message(doc, "renja.RenjaCancelled.v1")["x-sop-steps"] == []


def test_headers_we_produce_validate_and_another_type_does_not(doc: dict[str, Any]) -> None:
    event = directive(RENJA)
    record = to_kafka(event, traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
    headers = header_map(record.headers)
    message = _message(doc, event.event_type)
    jsonschema.validate(headers, message["headers"])
    jsonschema.validate(record.key.decode(), message["bindings"]["kafka"]["key"])
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(headers, _message(doc, "renja.Signed.v1")["headers"])
    wrong_schema = {**headers, "ce_dataschema": headers["ce_dataschema"].replace("DirectiveIssued", "Signed")}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(wrong_schema, message["headers"])
    without_subject = {k: v for k, v in headers.items() if k != "ce_subject"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(without_subject, message["headers"])


def test_dead_letter_headers_we_produce_validate(doc: dict[str, Any]) -> None:
    record = to_kafka(directive(RENJA))
    rec: ConsumerRecord[bytes, bytes] = ConsumerRecord(
        topic="renja.events", partition=3, offset=42, timestamp=0, timestamp_type=0,
        key=record.key, value=b"not json", checksum=None, serialized_key_size=36,
        serialized_value_size=8, headers=record.headers,
    )  # fmt: skip
    with pytest.raises(DecodeError) as refused:
        from_kafka(rec.key, rec.value, rec.headers)
    headers = header_map(dlq_headers(rec, "notifier", refused.value.reason, refused.value.detail))
    schema = doc["components"]["messages"]["DeadLetter"]["headers"]
    jsonschema.validate(headers, schema)
    assert headers["dlq_reason"] == "not_json"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**headers, "dlq_reason": "gremlins"}, schema)


def test_every_dead_letter_reason_is_one_the_code_can_give() -> None:
    # the decoder's codes, the inbox's handler_error, the services' refusal (shared.sop.UnfoldableEvent),
    # and the origin refusals (shared.origin)
    code = "".join(Path(m.__file__ or "").read_text(encoding="utf-8") for m in (cloudevents, inbox, anomaly, origin))
    assert [r for r in DLQ_REASONS if f'"{r}"' not in code] == []


def test_topic_layout_is_the_local_stacks(doc: dict[str, Any]) -> None:
    stack = StackSettings.model_construct()  # the defaults, whatever RENJA_* this shell has set
    events = doc["channels"]["renjaEvents"]["bindings"]["kafka"]
    assert (events["partitions"], events["replicas"]) == (stack.event_topic_partitions, stack.replication_factor)
    assert events["topicConfiguration"]["retention.ms"] == -1
    assert events["topicConfiguration"]["cleanup.policy"] == ["delete"]
    assert doc["servers"]["local"]["host"] == f"{stack.kafka_host}:{stack.kafka_port}"
    dlq = doc["channels"]["renjaEventsDlq"]
    assert dlq["address"] == stack.dlq_topic_prefix + "{group}"
    assert sorted(dlq["parameters"]["group"]["enum"]) == sorted(stack.consumer_groups)


def test_subscriber_guide_names_every_type_and_each_steps_completing_event() -> None:
    guide = (ASYNCAPI_FILE.parent / "events.md").read_text(encoding="utf-8")
    assert [t for t in EVENT_TYPES if f"`{t}`" not in guide] == []
    sop = load_sop(SHIPPED_SOP_FILE)
    rows = {int(line.split("|")[1]): line for line in guide.splitlines() if line[:5].strip("| ").isdigit()}
    for step in sop.steps:
        line = rows[step.number]
        assert f"`{step.completed_by.event_type}`" in line and step.role in line, line
        for value in step.completed_by.match.values():
            assert f"= `{value}`" in line or f"= {value}" in line, line
