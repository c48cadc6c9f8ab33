"""The audit's hash chain covers the records as published (real Kafka and Postgres): the stored bytes are
the log's, a model with an added field changes no hash and no row, and a changed stored byte is found."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest

from services.audit.projector import Projector
from services.audit.rebuild import rebuild_equals_live
from services.audit.settings import AuditSettings
from services.audit.tables import REBUILD
from shared.cloudevents import to_kafka
from tests.integration.test_audit_projection import SOP, audit_service, create_key, publish, scenario, wait_rows
from tests.kit.tokens import auth
from tests.unit.test_hashchain import add_defaulted_field

pytestmark = pytest.mark.integration


async def verify(client: httpx.AsyncClient, settings: AuditSettings, renja: UUID) -> dict[str, Any]:
    r = await client.get(f"/renja/{renja}/verify", headers=auth(settings, "auditor"))
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def checks(report: dict[str, Any]) -> dict[str, tuple[bool, int | None, str | None]]:
    return {c["name"]: (c["ok"], c["position"], c["kind"]) for c in report["checks"]}


async def test_an_added_defaulted_field_changes_no_hash_and_every_chain_still_verifies(
    topic: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = scenario()
    everything = [e for events in runs.values() for e in events]
    async with audit_service(topic, tmp_path) as (client, settings):
        await publish(settings.kafka_bootstrap, topic, everything)
        dsn = settings.postgres_dsn()
        await wait_rows(dsn, len(everything))
        conn = await asyncpg.connect(dsn)
        try:
            stored = await conn.fetch("SELECT event_id, value, event_hash, chain_hash FROM audit_events")
            heads = await conn.fetch("SELECT renja_id, signed_hash, signature_b64 FROM audit_cycles ORDER BY 1")
        finally:
            await conn.close()
        # the audit keeps the exact bytes the producer published
        published = {e.event_id: to_kafka(e).value for e in everything}
        assert {r["event_id"]: bytes(r["value"]) for r in stored} == published

        add_defaulted_field(monkeypatch)  # the next release's models: every event type gains a field
        for events in runs.values():
            report = await verify(client, settings, events[0].renja_id)
            assert report["ok"] and report["entries"] == report["log_entries"] == len(events), report
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            projector = Projector(SOP, create_key(settings), REBUILD, keep_cache=True)
            assert await rebuild_equals_live(pool, bootstrap=settings.kafka_bootstrap, topic=topic, projector=projector)
            async with pool.acquire() as conn:
                again = await conn.fetch("SELECT event_id, value, event_hash, chain_hash FROM audit_events")
                heads_again = await conn.fetch(
                    "SELECT renja_id, signed_hash, signature_b64 FROM audit_cycles ORDER BY 1"
                )
        finally:
            await pool.close()
        assert sorted(map(tuple, again)) == sorted(map(tuple, stored))
        assert list(map(tuple, heads_again)) == list(map(tuple, heads))


async def test_a_changed_stored_byte_or_header_is_found_by_verify(topic: str, tmp_path: Path) -> None:
    runs = scenario()
    done = runs["returns"]
    renja = done[0].renja_id
    async with audit_service(topic, tmp_path) as (client, settings):
        await publish(settings.kafka_bootstrap, topic, [e for events in runs.values() for e in events])
        dsn = settings.postgres_dsn()
        await wait_rows(dsn, sum(len(v) for v in runs.values()))
        assert (await verify(client, settings, renja))["ok"]
        conn = await asyncpg.connect(dsn)
        try:
            original = await conn.fetchval("SELECT value FROM audit_events WHERE renja_id = $1 AND position = 5", renja)
            # one byte of the stored value bytes (a character of the actor's name) changed
            index = bytes(original).index(done[4].actor.name.encode())
            await conn.execute(
                "UPDATE audit_events SET value = set_byte(value, $2, get_byte(value, $2) # 1)"
                " WHERE renja_id = $1 AND position = 5",
                renja,
                index,
            )
            changed = await verify(client, settings, renja)
            assert not changed["ok"]
            assert (changed["first_bad_position"], changed["first_bad_event_id"]) == (5, str(done[4].event_id))
            assert checks(changed)["projection"] == (False, 5, "changed")
            assert checks(changed)["kafka"] == (False, 5, "changed")
            assert checks(changed)["signed_head"] == (True, None, None)

            await conn.execute(
                "UPDATE audit_events SET value = $2 WHERE renja_id = $1 AND position = 5", renja, original
            )
            assert (await verify(client, settings, renja))["ok"]
            # a stored header: when step 3 was done
            await conn.execute(
                "UPDATE audit_events SET ce_time = '2026-08-03T00:00:00Z' WHERE renja_id = $1 AND position = 3",
                renja,
            )
            moved = await verify(client, settings, renja)
            assert not moved["ok"] and moved["first_bad_position"] == 3
            assert checks(moved)["projection"] == (False, 3, "changed")
            assert checks(moved)["kafka"] == (False, 3, "changed")
        finally:
            await conn.close()
