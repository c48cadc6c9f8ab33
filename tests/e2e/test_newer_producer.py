"""A producer released before its consumers (a rolling upgrade) on the running stack: its events carry a
field the others do not know, and one type they do not know. Every service and the audit apply the first
(ignoring the field) and skip the second; nothing is dead-lettered; reconcile sees no gap.

The newer producer is simulated where a real one writes: rows in the directive service's own event store
(the outbox), published by its relay, so every witness (service table, Kafka, audit) holds them.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from uuid import UUID, uuid4

import asyncpg
import httpx
import pytest

from deploy.local.settings import StackSettings
from services.audit.reconcile import collect, compare_witnesses
from shared.manifest import PRODUCERS, SERVICES, database_of
from shared.settings import ServiceSettings
from tests.kit.kafkatools import read_all
from tests.kit.people import PEOPLE
from tests.kit.signing import row_signature
from tests.kit.tokens import auth

pytestmark = pytest.mark.e2e


def _newer_events(renja_id: UUID) -> list[tuple[UUID, str, dict[str, object]]]:
    person = PEOPLE["kepala_badan"]
    name, nip = person.name, person.nip
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    common = {
        "renja_id": str(renja_id), "source": "directive", "occurred_at": now, "causation_id": None,
        "correlation_id": str(renja_id),
        "actor": {"user_id": f"kepala_badan:{nip}", "name": name, "nip": nip, "role": "kepala_badan",
                  "jabatan": "Kepala Badan"},  # a nested field a later release adds
    }  # fmt: skip
    arahan_id, future_id = uuid4(), uuid4()
    arahan = {**common, "event_id": str(arahan_id), "level": "arahan", "text": "Susun Renja (rilis baru)",
              "addressee_role": "sekretaris", "addressee_name": "", "opd": f"OPD rilis baru {renja_id.hex[:6]}",
              "fiscal_year": 2100 - renja_id.int % 60, "opd_kode": "5.01.5.05.0.00.01.0000"}  # fmt: skip
    future = {**common, "event_id": str(future_id), "note": "a type this release does not know"}
    return [(arahan_id, "renja.DirectiveIssued.v1", arahan), (future_id, "renja.FutureThing.v1", future)]


async def _append_as_newer_directive(stack: StackSettings, renja_id: UUID) -> list[UUID]:
    conn = await asyncpg.connect(stack.postgres_dsn(database_of("directive")))
    try:
        ids = []
        for version, (event_id, event_type, data) in enumerate(_newer_events(renja_id), start=1):
            occurred_at = datetime.fromisoformat(str(data["occurred_at"]))
            payload = json.dumps(data).encode()
            signature, key_id = row_signature(
                event_id=event_id,
                stream_id=renja_id,
                event_type=event_type,
                source="directive",
                occurred_at=occurred_at,
                payload=payload,
            )  # signed with the directive's key, as a newer directive release signs
            await conn.execute(
                "INSERT INTO events (event_id, stream_id, version, event_type, source, occurred_at, data,"
                " payload, signature, signature_key_id)"
                " VALUES ($1, $2, $3, $4, 'directive', $5, $6::jsonb, $7, $8, $9)",
                event_id, renja_id, version, event_type, occurred_at, payload.decode(), payload, signature, key_id,
            )  # fmt: skip
            ids.append(event_id)
        await conn.execute("SELECT pg_notify('outbox_directive', '')")
        return ids
    finally:
        await conn.close()


async def test_a_newer_producers_events_are_applied_or_skipped_never_dead_lettered() -> None:
    stack = StackSettings()
    settings = ServiceSettings(service="tests")
    renja_id = uuid4()
    arahan_id, future_id = await _append_as_newer_directive(stack, renja_id)
    headers = auth(settings, "auditor")
    async with httpx.AsyncClient(timeout=10) as client:
        for _ in range(150):
            seen = []
            for spec in SERVICES:
                path = f"/renja/{renja_id}/timeline" if spec.name == "audit" else f"/renja/{renja_id}/state"
                r = await client.get(f"{stack.service_url(spec.name)}{path}", headers=headers)
                seen.append(r.status_code == 200)
            if all(seen):
                break
            await asyncio.sleep(0.2)
        assert all(seen), dict(zip([s.name for s in SERVICES], seen, strict=True))
        timeline = (await client.get(f"{stack.service_url('audit')}/renja/{renja_id}/timeline", headers=headers)).json()
    assert [e["event_id"] for e in timeline["entries"]] == [str(arahan_id)]
    for spec in SERVICES:
        if spec.consumes:
            dead = await read_all(stack.kafka_bootstrap, spec.dlq_topic, timeout=1)
            assert not [r for r in dead if dict(r.headers).get("ce_subject") == str(renja_id).encode()], spec.name
    witnesses = await collect(
        bootstrap=stack.kafka_bootstrap,
        topic=stack.event_topic,
        audit_dsn=stack.postgres_dsn(database_of("audit")),
        service_dsns={name: stack.postgres_dsn(database_of(name)) for name in PRODUCERS},
    )
    assert future_id in witnesses.kafka and future_id in witnesses.unknown_types
    gaps = [d for d in compare_witnesses(witnesses).discrepancies if d.event_id in (str(arahan_id), str(future_id))]
    assert gaps == []
