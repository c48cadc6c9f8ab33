"""The records release 1 published stay readable by every release (``tests/fixtures/events/v1``).

The log is kept forever and read by services we do not control: whatever a model change does, these exact
bytes must still decode, validate against the published schemas and fold to the same SOP state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shared.cloudevents import from_kafka
from shared.events import EVENT_TYPES, Event
from shared.events.schema import SCHEMA_DIR
from shared.sop import RenjaState, evolve

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "events" / "v1" / "records.jsonl"


def _records() -> list[dict[str, Any]]:
    return [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line]


def _decoded() -> list[Event]:
    return [
        from_kafka(r["key"].encode(), r["value"].encode(), [(k, v.encode()) for k, v in r["headers"]])
        for r in _records()
    ]


def test_every_event_type_has_a_golden_record() -> None:
    types = {dict(r["headers"])["ce_type"] for r in _records()}
    assert types == set(EVENT_TYPES), "a new event type needs its golden record in tests/fixtures/events/"


def test_golden_records_decode_and_reencode_to_the_same_data() -> None:
    for record, event in zip(_records(), _decoded(), strict=True):
        assert str(event.event_id) == dict(record["headers"])["ce_id"]
        # additive changes only: what a release-1 record said is still said, field for field
        published = json.loads(record["value"])
        current = json.loads(event.model_dump_json())
        assert {k: current[k] for k in published} == published


def test_golden_records_validate_against_the_published_schemas() -> None:
    for record in _records():
        ce_type = dict(record["headers"])["ce_type"]
        schema = json.loads((SCHEMA_DIR / f"{ce_type}.schema.json").read_text(encoding="utf-8"))
        jsonschema.validate(json.loads(record["value"]), schema)


def test_golden_records_fold_to_the_states_release_1_reached() -> None:
    states: dict[str, RenjaState] = {}
    for event in _decoded():
        key = str(event.renja_id)
        states[key] = evolve(states.get(key, RenjaState()), event)
    finals = sorted(
        (s.status, s.fiscal_year, len(s.drafts), s.returns, s.completed_steps, len(s.receipts), s.events_applied)
        for s in states.values()
    )
    assert finals == [
        ("cancelled", 2028, 0, 0, (1,), 0, 2),
        ("distributed", 2027, 3, 1, tuple(range(1, 12)), 1, 15),
    ]
