"""Signed origin (``shared.origin``): what a signature covers, and every way a record is refused."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from shared.cloudevents import KafkaRecord, to_kafka
from shared.origin import (
    LEGACY,
    KeyRegistry,
    OriginError,
    OriginSettings,
    RegisteredKey,
    SignedBy,
    Signer,
    ensure_local_keys,
    local_key_path,
    record_digest,
    signer_from,
    trust_from,
    verify_record,
)
from tests.kit.factories import directive
from tests.kit.signing import trust_of

pytestmark = pytest.mark.unit

DIRECTIVE = Signer.of("directive", Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
DOCUMENTS = Signer.of("documents", Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33))))
TRUST = trust_of(DIRECTIVE, DOCUMENTS)


def record() -> KafkaRecord:
    return DIRECTIVE.signed(to_kafka(directive()))


def reason(rec: KafkaRecord, trust=TRUST, offset: int = 0) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(OriginError) as caught:
        trust.check(rec.key, rec.value, rec.headers, 0, offset)
    return caught.value.reason


def with_header(rec: KafkaRecord, name: str, value: bytes) -> KafkaRecord:
    return KafkaRecord(rec.key, rec.value, [(k, value if k == name else v) for k, v in rec.headers])


def unsigned(rec: KafkaRecord) -> KafkaRecord:
    return KafkaRecord(rec.key, rec.value, [(k, v) for k, v in rec.headers if not k.startswith("ce_signature")])


def test_a_signed_record_names_its_signer() -> None:
    rec = record()
    assert verify_record(rec.key, rec.value, rec.headers, TRUST.registry) == SignedBy("directive", DIRECTIVE.key_id)
    assert dict(rec.headers)["ce_signaturekeyid"] == DIRECTIVE.key_id.encode()
    assert DIRECTIVE.key_id.startswith("directive-") and len(DIRECTIVE.key_id) == len("directive-") + 16


def test_the_signature_covers_the_value_and_each_identifying_header() -> None:
    rec = record()
    assert reason(replace(rec, value=rec.value.replace(b"Susun", b"Hapus"))) == "bad_signature"
    assert reason(replace(rec, key=b"another-renja")) == "bad_signature"
    for name in ("ce_id", "ce_type", "ce_subject", "ce_time", "ce_specversion"):
        assert reason(with_header(rec, name, b"x" + dict(rec.headers)[name])) == "bad_signature", name
    # not covered: where the schema is served, and the trace context
    moved = with_header(rec, "ce_dataschema", b"https://elsewhere/schemas/x.json")
    assert TRUST.check(moved.key, moved.value, [*moved.headers, ("traceparent", b"00-x")], 0, 0).service == "directive"


def test_an_unsigned_record_is_refused_unless_below_the_legacy_cut_over() -> None:
    rec = unsigned(record())
    assert reason(rec) == "unsigned"
    legacy = trust_of(DIRECTIVE, unsigned_before={0: 10})
    assert legacy.check(rec.key, rec.value, rec.headers, 0, 9) == LEGACY
    assert reason(rec, legacy, offset=10) == "unsigned"
    assert reason(KafkaRecord(rec.key, rec.value, [*rec.headers, ("ce_signature", b"AAAA")])) == "unsigned"


def test_a_key_the_registry_does_not_know_is_refused() -> None:
    stranger = Signer.of("directive", Ed25519PrivateKey.generate())
    assert reason(stranger.signed(to_kafka(directive()))) == "unknown_key"


def test_a_key_signs_only_its_own_services_events() -> None:
    assert reason(DOCUMENTS.signed(to_kafka(directive()))) == "wrong_signer"
    forged = Signer("directive", DIRECTIVE.key_id, DOCUMENTS.private_key)  # claims directive's key id
    assert reason(forged.signed(to_kafka(directive()))) == "bad_signature"


def test_a_retired_key_verifies_what_it_signed_before_it_was_retired() -> None:
    event = directive(occurred_at=datetime(2026, 1, 5, 1, 0, tzinfo=UTC))
    retired = RegisteredKey("directive", DIRECTIVE.private_key.public_key(), datetime(2026, 1, 6, tzinfo=UTC))
    trust = replace(TRUST, registry=KeyRegistry({DIRECTIVE.key_id: retired}))
    old = DIRECTIVE.signed(to_kafka(event))
    assert trust.check(old.key, old.value, old.headers, 0, 0).key_id == DIRECTIVE.key_id
    late = DIRECTIVE.signed(to_kafka(directive(occurred_at=datetime(2026, 1, 7, tzinfo=UTC))))
    assert reason(late, trust) == "unknown_key"


def test_the_digest_tells_a_redelivery_from_another_payload_under_the_same_id() -> None:
    event = directive()
    first = DIRECTIVE.signed(to_kafka(event))
    again = DIRECTIVE.signed(to_kafka(event))
    other = DIRECTIVE.signed(to_kafka(event.model_copy(update={"text": "Renja palsu"})))
    resigned = DOCUMENTS.signed(to_kafka(event))  # same content, another key: still the same content
    digest = record_digest(first.key, first.value, first.headers)
    assert digest == record_digest(again.key, again.value, again.headers)
    assert digest == record_digest(resigned.key, resigned.value, resigned.headers)
    assert digest != record_digest(other.key, other.value, other.headers)


def test_the_registry_file_round_trips_and_a_new_key_is_found_without_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    path.write_text(trust_of(DIRECTIVE).registry.to_json())
    registry = KeyRegistry.load(path)
    assert registry.key_ids() == [DIRECTIVE.key_id]
    path.write_text(trust_of(DIRECTIVE, DOCUMENTS).registry.to_json())
    registry._read_at -= 60  # the re-read is rate-limited
    assert registry.get(DOCUMENTS.key_id) is not None
    with pytest.raises(ValueError, match="malformed"):
        KeyRegistry.from_json(json.dumps({"keys": {"k": {"service": "directive", "public_key": "!!"}}}))


def test_local_keys_are_made_once_and_a_rotated_key_stays_in_the_registry(tmp_path: Path) -> None:
    registry_path = ensure_local_keys(tmp_path, ["directive", "documents"])
    first = KeyRegistry.load(registry_path).key_ids()
    assert len(first) == 2 and (local_key_path(tmp_path, "directive").stat().st_mode & 0o777) == 0o600
    assert KeyRegistry.load(ensure_local_keys(tmp_path, ["directive"])).key_ids() == first
    local_key_path(tmp_path, "directive").unlink()  # rotate: a new key is made, the old one kept
    rotated = KeyRegistry.load(ensure_local_keys(tmp_path, ["directive"]))
    assert len(rotated.key_ids("directive")) == 2 and set(first) < set(rotated.key_ids())


def test_production_never_generates_a_key(tmp_path: Path) -> None:
    settings = OriginSettings(environment="production", run_dir=tmp_path, key_registry_file=tmp_path / "r.json")
    with pytest.raises(FileNotFoundError, match="RENJA_SIGNING_KEY"):
        signer_from(settings, "directive")
    with pytest.raises(FileNotFoundError):
        trust_from(settings)
    assert not (tmp_path / "keys").exists()
    with pytest.raises(ValueError, match="RENJA_KEY_REGISTRY_FILE"):
        OriginSettings(environment="production", run_dir=tmp_path)


def test_development_generates_the_key_and_the_registry_that_verifies_it(tmp_path: Path) -> None:
    settings = OriginSettings(environment="development", run_dir=tmp_path)
    signer = signer_from(settings, "meetings")
    trust = trust_from(settings)
    rec = signer.signed(to_kafka(directive().model_copy(update={"source": "meetings"})))
    assert trust.check(rec.key, rec.value, rec.headers, 0, 0) == SignedBy("meetings", signer.key_id)


def test_the_audit_chains_a_signed_record_with_its_signature_and_an_unsigned_one_as_before() -> None:
    from services.audit.hashchain import published_from_record, record_bytes

    plain = to_kafka(directive())
    signed_rec = DIRECTIVE.signed(plain)
    p_plain = published_from_record(plain.key, plain.value, plain.headers)
    p_signed = published_from_record(signed_rec.key, signed_rec.value, signed_rec.headers)
    assert record_bytes(p_plain).startswith(b"renja-audit-record/v2\n") and not p_plain.signed
    assert record_bytes(p_signed).startswith(b"renja-audit-record/v3\n")
    assert b"ce_signaturekeyid %d\n%s\n" % (len(DIRECTIVE.key_id), DIRECTIVE.key_id.encode()) in record_bytes(p_signed)
    assert replace(p_signed, signature=None, signature_key_id=None) == p_plain
    other = replace(p_signed, signature=b"x" + (p_signed.signature or b""))
    assert record_bytes(other) != record_bytes(p_signed)
    # the stored columns alone re-verify the producer's signature (what ``verify`` does)
    assert TRUST.check(p_signed.key, p_signed.value, p_signed.headers(), 0, 0).service == "directive"
