"""Signed origin on the running stack (issue 11): a record that anyone could produce to ``renja.events``
is no longer the official history. The phantom ``DirectiveIssued`` (level instruksi, for a Renja that never
existed, by the wrong role) produced raw is dead-lettered by every consumer group — ``unsigned`` without a
signature, ``bad_signature`` with a forged one, ``unknown_key`` with a key nobody registered,
``wrong_signer`` with another service's key — and the audit never folds it. A real command's events carry
their service's signature, and ``verify`` names the signer of every entry. An applied event id that comes
again with other content is dead-lettered as ``duplicate_id_conflict``.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from deploy.local.settings import StackSettings
from shared.cloudevents import OUTBOX_COLUMNS, KafkaRecord, record_from_row, to_kafka
from shared.events import DirectiveIssued
from shared.kafka import start_producer
from shared.manifest import SERVICES, database_of
from shared.origin import Signer, service_signer
from shared.settings import ServiceSettings
from tests.kit.factories import directive
from tests.kit.kafkatools import read_all
from tests.kit.people import PEOPLE, actor
from tests.kit.tokens import auth

pytestmark = pytest.mark.e2e


def phantom() -> DirectiveIssued:
    """Step 2 (instruksi) by the kepala badan, for a Renja nobody started: what the issue's attacker sent."""
    rid = uuid4()
    return directive(rid).model_copy(
        update={"level": "instruksi", "actor": actor("kepala_badan"), "addressee_role": "kasubag_pp",
                "addressee_name": PEOPLE["kasubag_pp"].name, "text": "Instruksi palsu"}
    )  # fmt: skip


def forgeries() -> dict[str, KafkaRecord]:
    """One phantom record per refusal reason (each its own Renja id)."""
    real = service_signer("directive")
    return {
        "unsigned": to_kafka(phantom()),
        # a fresh key claiming the directive's real key id: the signature does not verify
        "bad_signature": Signer("directive", real.key_id, Ed25519PrivateKey.generate()).signed(to_kafka(phantom())),
        "unknown_key": Signer.of("directive", Ed25519PrivateKey.generate()).signed(to_kafka(phantom())),
        "wrong_signer": service_signer("documents").signed(to_kafka(phantom())),
    }


async def produce(bootstrap: str, topic: str, records: dict[str, KafkaRecord]) -> dict[str, tuple[int, int]]:
    """Send each record raw; ``{reason: (partition, offset)}``."""
    producer = await start_producer(bootstrap, client_id="attacker")
    try:
        at = {}
        for reason, rec in records.items():
            meta = await producer.send_and_wait(topic, rec.value, key=rec.key, headers=rec.headers)
            at[reason] = (meta.partition, meta.offset)
        return at
    finally:
        await producer.stop()


async def dlq_reasons(bootstrap: str, topic: str, subjects: dict[bytes, str], timeout: float) -> dict[str, str]:
    """``{expected reason: dlq_reason}`` of the dead letters of ``subjects`` (Renja id → expected reason)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found = {}
        for r in await read_all(bootstrap, topic, timeout=1):
            h = dict(r.headers)
            if h.get("ce_subject") in subjects:
                found[subjects[h["ce_subject"]]] = h["dlq_reason"].decode()
        if len(found) == len(subjects) or loop.time() > deadline:
            return found
        await asyncio.sleep(0.5)


async def audit_rejects(stack: StackSettings, at: dict[str, tuple[int, int]], timeout: float) -> dict[str, str]:
    """``{expected reason: audit_rejects.reason}`` once the audit has folded past every record in ``at``."""
    conn = await asyncpg.connect(stack.postgres_dsn(database_of("audit")))
    try:
        for _ in range(int(timeout / 0.5)):
            rows = await conn.fetch("SELECT kafka_partition, next_offset FROM audit_offsets")
            folded = {r["kafka_partition"]: r["next_offset"] for r in rows}
            if all(folded.get(p, 0) > o for p, o in at.values()):
                break
            await asyncio.sleep(0.5)
        out = {}
        for expected, (partition, offset) in at.items():
            out[expected] = await conn.fetchval(
                "SELECT reason FROM audit_rejects WHERE kafka_partition = $1 AND kafka_offset = $2", partition, offset
            )
        return out
    finally:
        await conn.close()


async def test_the_phantom_directive_is_dead_lettered_by_every_consumer_and_never_audited() -> None:
    stack = StackSettings()
    records = forgeries()
    at = await produce(stack.kafka_bootstrap, stack.event_topic, records)
    subjects = {rec.key: reason for reason, rec in records.items()}
    expected = {reason: reason for reason in records}
    for spec in SERVICES:
        if spec.consumes:
            assert await dlq_reasons(stack.kafka_bootstrap, spec.dlq_topic, subjects, 90) == expected, spec.name
    assert await audit_rejects(stack, at, 90) == expected
    headers = auth(ServiceSettings(service="tests"), "auditor")
    async with httpx.AsyncClient(timeout=10) as client:
        for rec in records.values():
            renja_id = rec.key.decode()
            r = await client.get(f"{stack.service_url('audit')}/renja/{renja_id}/timeline", headers=headers)
            assert r.status_code == 404, r.text
            for spec in SERVICES:
                if spec.consumes:  # no service folded a phantom cycle either
                    r = await client.get(f"{stack.service_url(spec.name)}/renja/{renja_id}/state", headers=headers)
                    assert r.status_code == 404, (spec.name, r.text)


async def started_renja(client: httpx.AsyncClient, stack: StackSettings, settings: ServiceSettings) -> UUID:
    body = {
        "opd": f"OPD tanda tangan {uuid4().hex[:8]}",
        "fiscal_year": 2100,
        "addressee_name": PEOPLE["sekretaris"].name,
        "text": "Susun Renja: uji asal-usul bertanda tangan.",
    }
    r = await client.post(f"{stack.service_url('directive')}/renja", json=body, headers=auth(settings, "kepala_badan"))
    assert r.status_code == 201, r.text
    return UUID(r.json()["renja_id"])


async def test_verify_names_the_signer_of_every_entry() -> None:
    stack = StackSettings()
    settings = ServiceSettings(service="tests")
    headers = auth(settings, "auditor")
    async with httpx.AsyncClient(timeout=30) as client:
        renja_id = await started_renja(client, stack, settings)
        report: dict[str, Any] = {}
        for _ in range(180):
            r = await client.get(f"{stack.service_url('audit')}/renja/{renja_id}/verify", headers=headers)
            if r.status_code == 200:
                report = r.json()
                break
            await asyncio.sleep(0.5)
    assert report["ok"], report
    directive_key = service_signer("directive").key_id
    assert [(s["position"], s["service"], s["key_id"], s["status"]) for s in report["signers"]] == [
        (1, "directive", directive_key, "signed")
    ]
    assert {c["name"]: c["ok"] for c in report["checks"]}["origin"] is True


async def test_a_validly_signed_duplicate_id_with_another_payload_is_dead_lettered_by_every_consumer() -> None:
    """The directive's own arahan comes again, same event id, other text, signed with the directive's
    real key (a bug, or a stolen key): every consumer dead-letters it as ``duplicate_id_conflict`` — the
    directive service too, which compares it with its own stored event."""
    stack = StackSettings()
    settings = ServiceSettings(service="tests")
    async with httpx.AsyncClient(timeout=30) as client:
        renja_id = await started_renja(client, stack, settings)
    conn = await asyncpg.connect(stack.postgres_dsn(database_of("directive")))
    try:
        row = await conn.fetchrow(f"SELECT {OUTBOX_COLUMNS} FROM events WHERE stream_id = $1", renja_id)
    finally:
        await conn.close()
    original = record_from_row(row, "")
    data = json.loads(original.value)
    other = json.dumps({**data, "text": "Arahan yang diganti"}).encode()
    headers = [(k, v) for k, v in original.headers if not k.startswith("ce_signature")]
    forged = service_signer("directive").signed(KafkaRecord(original.key, other, headers))
    await produce(stack.kafka_bootstrap, stack.event_topic, {"duplicate_id_conflict": forged})
    subjects = {original.key: "duplicate_id_conflict"}
    for spec in SERVICES:
        if spec.consumes:
            found = await dlq_reasons(stack.kafka_bootstrap, spec.dlq_topic, subjects, 90)
            assert found == {"duplicate_id_conflict": "duplicate_id_conflict"}, spec.name
