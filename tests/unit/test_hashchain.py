"""The per-Renja hash chain and signed heads: tampering is detected and located."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.hashchain import (
    GENESIS,
    ChainEntry,
    build_chain,
    canonical_event_bytes,
    chain_hash,
    check_signed_head,
    event_json,
    extend_chain,
    make_signed_head,
    sign_head,
    verify_chain,
    verify_head,
)
from shared.events import Actor, DirectiveIssued

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
    )


def event_dicts(count: int = 5) -> list[dict[str, Any]]:
    return [event_json(directive(n)) for n in range(1, count + 1)]


def test_canonical_bytes_sort_keys_and_keep_unicode() -> None:
    assert canonical_event_bytes({"b": 1, "a": "Perencanaan – Bogor"}) == ('{"a":"Perencanaan – Bogor","b":1}'.encode())


def test_canonical_bytes_refuse_raw_datetimes() -> None:
    with pytest.raises(TypeError):
        canonical_event_bytes({"at": datetime(2026, 1, 1, tzinfo=UTC)})


def test_chain_hash_is_sha256_over_prev_newline_bytes() -> None:
    assert chain_hash(None, b"x") == hashlib.sha256(GENESIS.encode() + b"\nx").hexdigest()
    first = chain_hash(None, b"x")
    assert chain_hash(first, b"y") == hashlib.sha256(first.encode() + b"\ny").hexdigest()


def test_models_and_their_json_dicts_chain_identically() -> None:
    models = [directive(n) for n in range(1, 4)]
    assert build_chain(models) == build_chain([event_json(m) for m in models])
    assert [e.position for e in build_chain(models)] == [1, 2, 3]


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
    tampered[2]["text"] = "Susun Renja 2028 #3"
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
    intruder = event_json(directive(99))
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
    rewritten[0]["text"] = "lain"
    result = check_signed_head(key.public_key(), head, rewritten)
    assert (result.ok, result.kind) == (False, "changed")


def test_forged_head_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    events = event_dicts()
    genuine = make_signed_head(key, RENJA, build_chain(events))
    forged = make_signed_head(Ed25519PrivateKey.generate(), RENJA, build_chain(events[:3]))
    assert not check_signed_head(key.public_key(), forged, events[:3]).ok
    assert check_signed_head(key.public_key(), genuine, events).ok
