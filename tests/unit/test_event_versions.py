"""The version registry (``shared.events.versions``): every old type upcasts to a current one, purely, and
every reader (``from_kafka``, ``parse_event``, the audit's ``event_from_json``) goes through it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from services.audit.store import event_from_json
from shared.cloudevents import DecodeError, from_kafka, to_kafka
from shared.events import EVENT_TYPES, UPCASTERS, DirectiveIssued, UnknownEventType, is_known, parse_event, upcast
from shared.events.legacy import LEGACY_TYPES
from shared.events.schema import SCHEMA_DIR, rendered
from tests.kit.factories import directive

pytestmark = pytest.mark.unit


ORIGINAL = directive()
"""The event as release 2 would write it without an OPD code (``opd_code`` None)."""


def _v1_record() -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """``ORIGINAL`` as release 1 published it: the data without ``opd_code``, under the v1 type."""
    rec = to_kafka(ORIGINAL)
    data = {k: v for k, v in json.loads(rec.value).items() if k != "opd_code"}
    headers = [(k, b"renja.DirectiveIssued.v1" if k == "ce_type" else v) for k, v in rec.headers]
    return rec.key, json.dumps(data).encode(), headers


def test_every_old_type_upcasts_to_a_current_type_and_has_a_frozen_model() -> None:
    assert set(UPCASTERS) == set(LEGACY_TYPES)
    for old in UPCASTERS:
        assert old not in EVENT_TYPES
        assert upcast(old, {})[0] in EVENT_TYPES
        assert f"{old}.schema.json" in rendered() and (SCHEMA_DIR / f"{old}.schema.json").is_file()


def test_current_and_unknown_types_pass_through_unchanged() -> None:
    data: dict[str, Any] = {"a": 1}
    assert upcast("renja.Signed.v1", data) == ("renja.Signed.v1", data)
    assert upcast("renja.FutureThing.v1", data) == ("renja.FutureThing.v1", data)


def test_directive_v1_gains_a_null_opd_code_and_the_input_is_untouched() -> None:
    data = {"level": "arahan", "opd": "Bappeda"}
    assert upcast("renja.DirectiveIssued.v1", data) == (
        "renja.DirectiveIssued.v2",
        {"level": "arahan", "opd": "Bappeda", "opd_code": None},
    )
    assert data == {"level": "arahan", "opd": "Bappeda"}


def test_known_means_current_or_upcastable() -> None:
    assert is_known("renja.DirectiveIssued.v2") and is_known("renja.DirectiveIssued.v1")
    assert not is_known("renja.DirectiveIssued.v3") and not is_known("renja.FutureThing.v1")


def test_from_kafka_reads_a_v1_directive_as_the_current_model() -> None:
    key, value, headers = _v1_record()
    event = from_kafka(key, value, headers)
    assert type(event) is DirectiveIssued and event == ORIGINAL and event.opd_code is None


def test_from_kafka_still_names_broken_old_records_and_skips_unknown_types() -> None:
    key, _, headers = _v1_record()
    with pytest.raises(DecodeError) as not_json:
        from_kafka(key, b"{", headers)
    assert not_json.value.reason == "not_json"
    with pytest.raises(DecodeError) as bad:
        from_kafka(key, b'{"level": "arahan"}', headers)
    assert bad.value.reason == "bad_schema" and not bad.value.skippable
    future = [(k, b"renja.DirectiveIssued.v3" if k == "ce_type" else v) for k, v in headers]
    with pytest.raises(DecodeError) as unknown:
        from_kafka(key, b"{}", future)
    assert unknown.value.skippable


def test_parse_event_and_the_audit_read_v1_data_as_the_current_model() -> None:
    _, value, _ = _v1_record()
    for data in (value, value.decode(), json.loads(value)):
        assert parse_event("renja.DirectiveIssued.v1", data) == ORIGINAL
    assert event_from_json({"event_type": "renja.DirectiveIssued.v1", **json.loads(value)}) == ORIGINAL
    with pytest.raises(UnknownEventType):
        parse_event("renja.FutureThing.v1", value)


def test_a_v2_directive_needs_its_opd_code() -> None:
    data = json.loads(to_kafka(directive()).value)
    del data["opd_code"]
    with pytest.raises(ValueError, match="opd_code"):
        parse_event("renja.DirectiveIssued.v2", data)
