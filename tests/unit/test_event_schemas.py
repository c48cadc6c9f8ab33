"""The checked-in JSON Schemas are exactly what the event models generate, and they validate real events."""

from __future__ import annotations

import json

import jsonschema
import pytest

from shared.events import EVENT_TYPES
from shared.events.schema import SCHEMA_DIR, rendered
from tests.kit.factories import directive

pytestmark = pytest.mark.unit


def test_checked_in_schemas_match_the_models() -> None:
    expected = rendered()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.schema.json")}
    assert sorted(on_disk) == sorted(expected), "run: uv run python -m shared.events.schema"
    for name, text in expected.items():
        assert on_disk[name] == text, f"{name} is stale; run: uv run python -m shared.events.schema"


def test_one_schema_per_registered_type_with_required_envelope_fields() -> None:
    for event_type in EVENT_TYPES:
        schema = json.loads((SCHEMA_DIR / f"{event_type}.schema.json").read_text(encoding="utf-8"))
        assert schema["title"] == event_type
        for field in ("event_id", "renja_id", "source", "actor", "occurred_at", "correlation_id"):
            assert field in schema["required"], (event_type, field)


def test_a_real_event_validates_against_its_schema() -> None:
    event = directive()
    schema = json.loads((SCHEMA_DIR / f"{event.event_type}.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(event.model_dump_json()), schema)
    bad = {**json.loads(event.model_dump_json()), "level": "bisikan"}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
