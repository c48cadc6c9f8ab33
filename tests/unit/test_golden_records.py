"""The records release 1 published stay readable by every release (``tests/fixtures/events/v1``), and so do
the first records of each later version (``tests/fixtures/events/v2``, ...).

The log is kept forever and read by services we do not control: whatever a model change does, these exact
bytes must still decode (an old version through its upcasters, as the current model), validate against the
published schemas of their own version and fold to the same SOP state.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shared.cloudevents import from_kafka, to_kafka
from shared.events import EVENT_TYPES, UPCASTERS, DirectiveIssued, Event, upcast
from shared.events.schema import SCHEMA_DIR
from shared.sop import RenjaState, evolve

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "events"
GOLDEN = FIXTURES / "v1" / "records.jsonl"
GOLDEN_V2 = FIXTURES / "v2" / "records.jsonl"


def _records(path: Path = GOLDEN) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _all_records() -> list[dict[str, Any]]:
    return [r for path in sorted(FIXTURES.glob("v*/records.jsonl")) for r in _records(path)]


def _decode(record: dict[str, Any]) -> Event:
    headers = [(k, v.encode()) for k, v in record["headers"]]
    return from_kafka(record["key"].encode(), record["value"].encode(), headers)


def _decoded() -> list[Event]:
    return [_decode(r) for r in _records()]


def _ce_type(record: dict[str, Any]) -> str:
    return str(dict(record["headers"])["ce_type"])


def test_every_event_type_has_a_golden_record() -> None:
    types = {upcast(_ce_type(r), {})[0] for r in _all_records()}
    assert types == set(EVENT_TYPES), "a new event type needs its golden record in tests/fixtures/events/"


def test_every_old_version_has_a_golden_record() -> None:
    assert set(UPCASTERS) <= {_ce_type(r) for r in _all_records()}


def test_release_1_directives_read_as_the_current_model_with_no_opd_code() -> None:
    directives = [e for r, e in zip(_records(), _decoded(), strict=True) if _ce_type(r) == "renja.DirectiveIssued.v1"]
    assert len(directives) == 4
    assert all(type(e) is DirectiveIssued and e.opd_code is None for e in directives)


def test_the_upcast_v1_directives_validate_against_the_v2_schema() -> None:
    schema = json.loads((SCHEMA_DIR / "renja.DirectiveIssued.v2.schema.json").read_text(encoding="utf-8"))
    v1 = [r for r in _records() if _ce_type(r) == "renja.DirectiveIssued.v1"]
    assert v1
    for record in v1:
        ce_type, data = upcast("renja.DirectiveIssued.v1", json.loads(record["value"]))
        assert ce_type == "renja.DirectiveIssued.v2"
        jsonschema.validate(data, schema)
        with pytest.raises(jsonschema.ValidationError):  # the v1 data alone lacks the required opd_code
            jsonschema.validate(json.loads(record["value"]), schema)


def test_a_v2_directive_round_trips_to_the_same_bytes_and_headers() -> None:
    [record] = _records(GOLDEN_V2)
    event = _decode(record)
    assert isinstance(event, DirectiveIssued) and event.opd_code == "5.01.5.05.0.00.01.0000"
    again = to_kafka(event)
    assert again.value == record["value"].encode() and again.key == record["key"].encode()
    published = [(k, v.decode()) for k, v in again.headers if k != "ce_dataschema"]
    assert published == [tuple(h) for h in record["headers"]]
    schema = json.loads((SCHEMA_DIR / "renja.DirectiveIssued.v2.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(json.loads(record["value"]), schema)


def test_golden_records_decode_and_reencode_to_the_same_data() -> None:
    for record, event in zip(_records(), _decoded(), strict=True):
        assert str(event.event_id) == dict(record["headers"])["ce_id"]
        # additive changes only: what a release-1 record said is still said, field for field
        published = json.loads(record["value"])
        current = json.loads(event.model_dump_json())
        assert {k: current[k] for k in published} == published


def test_golden_records_validate_against_the_published_schemas() -> None:
    for record in _all_records():
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
