"""The per-Renja hash chain over the records as published, and signed heads: tampering is detected and
located; the layout is the documented one; no change of an event model can alter a past hash."""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pytest
from aiokafka import ConsumerRecord
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import create_model

from services.audit.hashchain import (
    GENESIS,
    ChainEntry,
    Published,
    build_chain,
    chain_hash,
    check_signed_head,
    event_hash,
    extend_chain,
    make_signed_head,
    published_from_event,
    published_from_record,
    record_bytes,
    sign_head,
    verify_chain,
    verify_head,
)
from services.audit.logreader import decode_batch
from services.audit.projector import BatchResult, Projector, _shown
from services.audit.store import EVENT_COLUMNS, record_json
from shared.cloudevents import to_kafka
from shared.events import EVENT_TYPES, Actor, DirectiveIssued
from shared.sop import load_sop
from shared.sop.state import EVOLVERS
from tests.kit.signing import legacy_trust

pytestmark = pytest.mark.unit

RENJA = UUID("00000000-0000-4000-8000-00000000aaaa")
HEAD = Actor(user_id="u1", name="Dr. Kepala", nip="197001011990031001", role="kepala_badan")


def directive(n: int, text: str = "Susun Renja 2027") -> DirectiveIssued:
    return DirectiveIssued(
        event_id=UUID(int=n),
        renja_id=RENJA,
        source="directive",
        actor=HEAD,
        occurred_at=datetime(2026, 8, 3, 1, 0, tzinfo=UTC) + timedelta(minutes=n),
        correlation_id=RENJA,
        level="arahan",
        text=f"{text} #{n}",
        addressee_role="sekretaris",
        opd="Bappeda Kota Bogor",
        fiscal_year=2027,
        opd_code=None,
    )


def event_dicts(count: int = 5) -> list[Published]:
    """The records a producer publishes for ``count`` directives (name kept from the v1 tests)."""
    return [published_from_event(directive(n)) for n in range(1, count + 1)]


def edited(record: Published, old: str, new: str) -> Published:
    """``record`` with ``old`` replaced by ``new`` in its value bytes (a tampered copy)."""
    assert old.encode() in record.value
    return replace(record, value=record.value.replace(old.encode(), new.encode()))


def test_record_bytes_follow_the_documented_layout_and_keep_unicode_as_received() -> None:
    p = Published(b"k", b"id", b"renja.X.v1", b"/renja/x", b"k", b"2026-08-03T01:00:00Z", '{"a":"–"}'.encode())
    assert record_bytes(p) == (
        b"renja-audit-record/v2\n"
        b"key 1\nk\n"
        b"ce_id 2\nid\n"
        b"ce_type 10\nrenja.X.v1\n"
        b"ce_source 8\n/renja/x\n"
        b"ce_subject 1\nk\n"
        b"ce_time 20\n2026-08-03T01:00:00Z\n"
        b'value 11\n{"a":"\xe2\x80\x93"}\n'
    )
    assert event_hash(record_bytes(p)) == hashlib.sha256(record_bytes(p)).hexdigest()


def test_an_absent_header_is_not_an_empty_one() -> None:
    p = Published(b"k", b"id", b"t", b"s", None, None, b"{}")
    assert b"ce_subject -\nce_time -\n" in record_bytes(p)
    assert record_bytes(p) != record_bytes(replace(p, ce_subject=b"", ce_time=b""))


def test_chain_hash_is_sha256_over_domain_prev_newline_bytes() -> None:
    # v2 (deliberate change): the preimage starts with the chain's domain line
    domain = b"renja-audit-chain/v2\n"
    assert chain_hash(None, b"x") == hashlib.sha256(domain + GENESIS.encode() + b"\nx").hexdigest()
    first = chain_hash(None, b"x")
    assert chain_hash(first, b"y") == hashlib.sha256(domain + first.encode() + b"\ny").hexdigest()


def test_the_documented_shell_recipe_recomputes_a_link(tmp_path: Path) -> None:
    """The module docstring's recipe (printf, wc, cat, sha256sum) gives the link the code computes."""
    import services.audit.hashchain as hashchain

    doc = hashchain.__doc__ or ""
    recipe = doc[doc.index("    field() {") : doc.index("Changing, removing")].replace("\n    ", "\n")
    p = published_from_event(directive(1))
    for name, raw in (("key", p.key), ("id", p.ce_id), ("type", p.ce_type), ("source", p.ce_source),
                      ("subject", p.ce_subject), ("time", p.ce_time), ("value", p.value)):  # fmt: skip
        assert raw is not None
        (tmp_path / f"{name}.bin").write_bytes(raw)
    prev = chain_hash(None, b"earlier")
    out = subprocess.run(
        ["bash", "-c", recipe], cwd=tmp_path, env={"PREV": prev, "PATH": "/usr/bin:/bin"}, capture_output=True
    )
    assert out.returncode == 0, out.stderr
    assert (tmp_path / "record.bin").read_bytes() == record_bytes(p)
    assert out.stdout.decode().split()[0] == chain_hash(prev, record_bytes(p))


def test_the_chain_covers_the_identifying_headers_and_not_the_others() -> None:
    rec = to_kafka(directive(1), traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01")
    plain = published_from_event(directive(1))
    assert published_from_record(rec.key, rec.value, rec.headers) == plain  # traceparent is not covered
    moved = [(k, b"2026-08-03T09:01:00+08:00" if k == "ce_time" else v) for k, v in rec.headers]
    assert build_chain([published_from_record(rec.key, rec.value, moved)]) != build_chain([plain])


def test_models_and_their_records_chain_identically() -> None:
    models = [directive(n) for n in range(1, 4)]
    records = [to_kafka(m) for m in models]
    assert build_chain([published_from_event(m) for m in models]) == build_chain(
        [published_from_record(r.key, r.value, r.headers) for r in records]
    )
    assert [e.position for e in build_chain([published_from_event(m) for m in models])] == [1, 2, 3]


def test_extend_chain_equals_building_at_once() -> None:
    events = event_dicts(5)
    head = build_chain(events[:2])
    assert head + extend_chain(head, events[2:]) == build_chain(events)


def test_correct_chain_verifies() -> None:
    events = event_dicts()
    assert verify_chain(build_chain(events), events).ok
    assert verify_chain(events, events).ok


def test_changed_event_is_detected_and_located() -> None:
    stored = build_chain(event_dicts())
    tampered = event_dicts()
    tampered[2] = edited(tampered[2], "Susun Renja 2027 #3", "Susun Renja 2028 #3")
    result = verify_chain(stored, tampered)
    assert not result.ok
    assert result.first_bad_position == 3
    assert result.kind == "changed"
    assert str(UUID(int=3)) in result.reason


def test_edited_stored_link_is_a_broken_link() -> None:
    stored = build_chain(event_dicts())
    forged = [*stored[:1], ChainEntry(2, stored[1].event_id, stored[1].event_hash, "f" * 64), *stored[2:]]
    result = verify_chain(forged, event_dicts())
    assert (result.ok, result.first_bad_position, result.kind) == (False, 2, "broken_link")


def test_missing_middle_event_is_located() -> None:
    events = event_dicts()
    result = verify_chain(build_chain(events), [*events[:1], *events[2:]])
    assert (result.first_bad_position, result.kind) == (2, "missing")


def test_inserted_event_is_located() -> None:
    events = event_dicts()
    intruder = published_from_event(directive(99))
    result = verify_chain(events, [*events[:3], intruder, *events[3:]])
    assert (result.first_bad_position, result.kind) == (4, "extra")


def test_swapped_events_are_reordered() -> None:
    events = event_dicts()
    result = verify_chain(events, [events[0], events[2], events[1], *events[3:]])
    assert (result.first_bad_position, result.kind) == (2, "reordered")


def test_truncated_tail_against_stored_chain() -> None:
    events = event_dicts()
    result = verify_chain(build_chain(events), events[:3])
    assert (result.ok, result.first_bad_position, result.kind) == (False, 4, "truncated")


def test_extra_tail_is_reported() -> None:
    events = event_dicts()
    result = verify_chain(events[:4], events)
    assert (result.first_bad_position, result.kind) == (5, "extra")


def test_signed_head_round_trip_and_binding() -> None:
    key = Ed25519PrivateKey.generate()
    sig = sign_head(key, RENJA, 5, "a" * 64)
    assert verify_head(key.public_key(), RENJA, 5, "a" * 64, sig)
    assert verify_head(key.public_key(), str(RENJA), 5, "a" * 64, sig)
    assert not verify_head(key.public_key(), RENJA, 4, "a" * 64, sig)
    assert not verify_head(key.public_key(), RENJA, 5, "b" * 64, sig)
    assert not verify_head(key.public_key(), UUID(int=7), 5, "a" * 64, sig)
    assert not verify_head(Ed25519PrivateKey.generate().public_key(), RENJA, 5, "a" * 64, sig)
    assert not verify_head(key.public_key(), RENJA, 5, "a" * 64, "not base64!")


def test_deleted_last_events_are_detected_by_the_signed_head() -> None:
    key = Ed25519PrivateKey.generate()
    events = event_dicts()
    head = make_signed_head(key, RENJA, build_chain(events))
    # a shortened log is self-consistent: chain comparison against itself cannot see the cut ...
    shortened = events[:3]
    assert verify_chain(shortened, shortened).ok
    # ... but the signed head can
    result = check_signed_head(key.public_key(), head, shortened)
    assert (result.ok, result.first_bad_position, result.kind) == (False, 4, "truncated")


def test_signed_head_accepts_the_full_and_a_longer_chain() -> None:
    key = Ed25519PrivateKey.generate()
    events = event_dicts()
    head = make_signed_head(key, RENJA, build_chain(events[:4]))
    assert check_signed_head(key.public_key(), head, events[:4]).ok
    assert check_signed_head(key.public_key(), head, events).ok


def test_signed_head_detects_rewritten_history_of_same_length() -> None:
    key = Ed25519PrivateKey.generate()
    events = event_dicts()
    head = make_signed_head(key, RENJA, build_chain(events))
    rewritten = event_dicts()
    rewritten[0] = edited(rewritten[0], "Susun Renja 2027 #1", "lain")
    result = check_signed_head(key.public_key(), head, rewritten)
    assert (result.ok, result.kind) == (False, "changed")


def test_forged_head_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    events = event_dicts()
    genuine = make_signed_head(key, RENJA, build_chain(events))
    forged = make_signed_head(Ed25519PrivateKey.generate(), RENJA, build_chain(events[:3]))
    assert not check_signed_head(key.public_key(), forged, events[:3]).ok
    assert check_signed_head(key.public_key(), genuine, events).ok


# --- the published bytes decide every hash: golden records, and a model with an added field ----------

GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "events" / "v1" / "records.jsonl"


def golden_records() -> list[ConsumerRecord[bytes, bytes]]:
    """Release 1's records (``tests/fixtures/events/v1``) as the audit's reader receives them."""
    lines = [json.loads(line) for line in GOLDEN.read_text(encoding="utf-8").splitlines() if line]
    return [
        ConsumerRecord(
            topic="renja.events",
            partition=0,
            offset=offset,
            timestamp=0,
            timestamp_type=0,
            key=r["key"].encode(),
            value=r["value"].encode(),
            checksum=None,
            serialized_key_size=-1,
            serialized_value_size=-1,
            headers=tuple((k, v.encode()) for k, v in r["headers"]),
        )
        for offset, r in enumerate(lines)
    ]


FOLD_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))


def fold_rows(records: list[ConsumerRecord[bytes, bytes]]) -> list[tuple[Any, ...]]:
    """The ``audit_events`` rows, then the ``audit_cycles`` rows, that the audit's fold (``Projector``,
    its pure part) makes of ``records`` in one batch."""
    projector = Projector(load_sop(), FOLD_KEY)
    batch = decode_batch(records, legacy_trust())  # release 1 signed nothing: legacy records
    assert not batch.rejects and not batch.skipped
    rows, touched, _ = projector._fold(batch.events, {}, BatchResult())
    return rows + projector._cycle_rows(touched)


def add_defaulted_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """The next release's event models, for this test only: every type gains ``catatan: str =
    "tambahan"`` (an additive change, as docs/events.md allows). Readers (``EVENT_TYPES``) and the fold's
    dispatch (``EVOLVERS``, keyed by class) use them, as a release that edited the models would."""
    for ce_type, model in list(EVENT_TYPES.items()):
        newer = create_model(f"{model.__name__}Next", __base__=model, catatan=(str, "tambahan"))
        monkeypatch.setitem(EVENT_TYPES, ce_type, newer)
        if model in EVOLVERS:
            monkeypatch.setitem(cast(dict[Any, Any], EVOLVERS), newer, EVOLVERS[model])


GOLDEN_HEADS = {
    # the chain heads of release 1's two cycles under hash layout v2: no later release may change them
    "74473f1d-f5d6-5546-9605-720dc99aaf7c": "95716a0fd364cfaccb024bad434f6687f38b7ff71690c90dd0ae51c8471312e5",
    "600887ae-f58b-5a50-9bdd-a2e2353b1739": "8f30caadc46de57d95a9196004e4b211a211659cfec0651ee7539ad3b514f68c",
}


def test_golden_records_chain_to_their_pinned_heads() -> None:
    rows = [row for row in fold_rows(golden_records()) if len(row) == len(EVENT_COLUMNS)]
    heads = {str(row[3]): row[16] for row in rows}  # renja_id → last chain_hash (rows are in log order)
    assert heads == GOLDEN_HEADS
    by_renja: dict[str, list[Published]] = {}
    for rec in golden_records():
        by_renja.setdefault(rec.key.decode(), []).append(published_from_record(rec.key, rec.value, rec.headers))
    assert {rid: build_chain(records)[-1].chain_hash for rid, records in by_renja.items()} == GOLDEN_HEADS


def test_an_added_defaulted_field_changes_no_stored_row_and_no_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    before = fold_rows(golden_records())
    add_defaulted_field(monkeypatch)
    decoded = decode_batch(golden_records(), legacy_trust()).events
    assert all(getattr(ev, "catatan", None) == "tambahan" for _, ev in decoded)  # the model did change
    after = fold_rows(golden_records())
    hashes = slice(EVENT_COLUMNS.index("event_hash"), EVENT_COLUMNS.index("chain_hash") + 1)
    assert [r[hashes] for r in after[:17]] == [r[hashes] for r in before[:17]]
    assert after == before  # every column, signed heads too: a rebuild with the new model equals the live one


@pytest.mark.parametrize(
    "value",
    [
        b' {"a":1}',
        b'{"a":NaN,"b":-Infinity}',
        b'\xef\xbb\xbf{"a":1}',
        '{"a":"–"}'.encode("utf-16"),
        b'{"event_type":"x"}',
    ],
)
def test_the_shown_event_is_what_the_record_bytes_say(value: bytes) -> None:
    """The ``event`` column the fold writes parses to ``store.record_json`` of the record, whatever
    JSON the producer sent (the fast path and the fallback agree)."""
    for rec in [*golden_records()[:3], replace(published_from_event(directive(1)), value=value)]:
        p = rec if isinstance(rec, Published) else published_from_record(rec.key, rec.value, rec.headers)
        assert json.loads(_shown(p)) == record_json(p)
