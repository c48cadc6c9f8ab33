"""Readers are tolerant, writers strict (docs/events.md): what a newer producer adds never breaks a reader,
while a record whose envelope lies about its data is still refused with a reason."""

from __future__ import annotations

import json
from datetime import timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from shared.cloudevents import DecodeError, from_kafka, to_kafka
from shared.events import DirectiveIssued, parse_event
from shared.events.schema import SCHEMA_DIR, dataschema_uri, schema_id
from shared.settings import schema_base_url
from tests.kit.factories import directive

pytestmark = pytest.mark.unit


def _with(value: bytes, **changes: Any) -> bytes:
    data = json.loads(value)
    data.update(changes)
    return json.dumps(data).encode()


def test_an_added_field_is_ignored_at_the_top_and_nested() -> None:
    event = directive()
    rec = to_kafka(event)
    data = json.loads(rec.value)
    data["opd_kode"] = "5.01.0.00.0.00.01.0000"  # a field a later release adds
    data["actor"]["unit"] = "Sekretariat"  # and one inside a nested model
    parsed = from_kafka(rec.key, json.dumps(data).encode(), rec.headers)
    assert parsed == event
    assert parse_event(event.event_type, data) == event


def test_writers_stay_strict_an_unknown_field_is_refused_when_building_an_event() -> None:
    data = json.loads(directive().model_dump_json())
    with pytest.raises(ValidationError):
        DirectiveIssued.model_validate({**data, "opd_kode": "x"})


def test_a_bad_value_next_to_an_unknown_field_is_still_bad_schema() -> None:
    rec = to_kafka(directive())
    value = _with(rec.value, opd_kode="x", fiscal_year="soon")
    with pytest.raises(DecodeError) as err:
        from_kafka(rec.key, value, rec.headers)
    assert err.value.reason == "bad_schema" and "fiscal_year" in err.value.detail


def test_an_unknown_type_is_skippable_not_broken() -> None:
    rec = to_kafka(directive())
    headers = [(k, b"renja.FutureThing.v1" if k == "ce_type" else v) for k, v in rec.headers]
    with pytest.raises(DecodeError) as err:
        from_kafka(rec.key, rec.value, headers)
    assert err.value.reason == "unknown_type" and err.value.skippable


def _headers(rec: Any, **changes: bytes | None) -> list[tuple[str, bytes]]:
    out = [(k, changes.get(k.replace("-", "_"), v)) for k, v in rec.headers]
    return [(k, v) for k, v in out if v is not None]


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"ce_subject": b"00000000-0000-0000-0000-000000000001"}, "header_mismatch"),
        ({"ce_time": b"2020-01-01T00:00:00Z"}, "header_mismatch"),
        ({"ce_time": b"yesterday"}, "bad_header"),
        ({"content_type": b"application/cloudevents+json"}, "structured_mode"),
        ({"content_type": b"text/plain"}, "bad_header"),
    ],
)
def test_an_envelope_that_contradicts_its_data_is_refused(change: dict[str, bytes], reason: str) -> None:
    rec = to_kafka(directive())
    with pytest.raises(DecodeError) as err:
        from_kafka(rec.key, rec.value, _headers(rec, **change))
    assert err.value.reason == reason
    assert not err.value.skippable


def test_a_record_without_key_is_refused() -> None:
    rec = to_kafka(directive())
    with pytest.raises(DecodeError) as err:
        from_kafka(None, rec.value, rec.headers)
    assert err.value.reason == "missing_key"


def test_media_type_and_time_are_compared_by_meaning() -> None:
    event = directive()
    rec = to_kafka(event)
    wib = event.occurred_at.astimezone(timezone(timedelta(hours=7))).isoformat()
    headers = _headers(rec, content_type=b"Application/JSON; charset=UTF-8", ce_time=wib.encode())
    assert from_kafka(rec.key, rec.value, headers) == event


def test_records_name_their_schema_and_schemas_use_standard_keywords_only() -> None:
    rec = to_kafka(directive())
    assert dict(rec.headers)["ce_dataschema"] == dataschema_uri("renja.DirectiveIssued.v2", schema_base_url()).encode()

    def extension_keywords(node: Any, path: str = "") -> list[str]:
        if isinstance(node, dict):
            found = [f"{path}/{k}" for k in node if isinstance(k, str) and k.startswith("x-")]
            # ``properties`` maps field names, not keywords
            return found + [
                hit
                for k, v in node.items()
                for hit in extension_keywords(v, f"{path}/{k}")
                if k != "properties" or isinstance(v, dict)
            ]
        if isinstance(node, list):
            return [hit for i, v in enumerate(node) for hit in extension_keywords(v, f"{path}/{i}")]
        return []

    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        schema = json.loads(path.read_text(encoding="utf-8"))
        assert schema["$id"] == schema_id(schema["title"])
        assert extension_keywords(schema) == [], path.name
