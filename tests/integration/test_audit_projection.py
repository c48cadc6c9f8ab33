"""The audit projection on real Kafka and Postgres: rebuild equals live, tamper detection, duplicates,
restarts mid-batch. Events come from the real decider (``tests.kit.driver.cycle_events``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from services.audit.live import LiveProjection
from services.audit.main import create_app
from services.audit.projector import BatchResult, Projector
from services.audit.rebuild import rebuild, rebuild_equals_live
from services.audit.settings import AuditSettings
from services.audit.tables import LIVE, REBUILD
from shared.db import migrate
from shared.events import Event
from shared.kafka import start_producer
from shared.settings import ServiceSettings
from shared.sop import load_sop
from tests.kit.driver import cycle_events
from tests.kit.servicekit import run_service
from tests.kit.signing import signed
from tests.kit.tokens import auth

pytestmark = pytest.mark.integration

SOP = load_sop()
MIGRATIONS = Path(__file__).parents[2] / "services" / "audit" / "migrations"
START = datetime(2026, 8, 3, 1, 0, tzinfo=UTC)  # Monday 08:00 WIB


def scenario() -> dict[str, list[Event]]:
    """A completed cycle with two returns, a cancelled one, and one with a return still in review."""
    return {
        "returns": cycle_events(SOP, uuid4(), start=START, returns=(9, 10), receipts=2, opd="Bappeda"),
        "cancelled": cycle_events(SOP, uuid4(), start=START, cancel_before_step=8, opd="Dinas Kesehatan"),
        "open": cycle_events(SOP, uuid4(), start=START, returns=(8,), cancel_before_step=11, opd="Dinas PU")[:-1],
    }


async def publish(bootstrap: str, topic: str, events: list[Event]) -> None:
    producer: AIOKafkaProducer = await start_producer(bootstrap, client_id="audit-test")
    try:
        for event in events:
            rec = signed(event)
            await producer.send(topic, key=rec.key, value=rec.value, headers=rec.headers)
        await producer.flush()
    finally:
        await producer.stop()


async def wait_rows(dsn: str, expected: int, timeout_s: float = 30.0) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(int(timeout_s / 0.1)):
            if await conn.fetchval("SELECT count(*) FROM audit_events") >= expected:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"audit_events never reached {expected} rows")
    finally:
        await conn.close()


async def snapshot(dsn: str) -> dict[str, Any]:
    """Every projection table's full content, as one md5 per table (plus counts)."""
    conn = await asyncpg.connect(dsn)
    try:
        out: dict[str, Any] = {}
        for table, order in (
            ("audit_events", "renja_id, position"),
            ("audit_cycles", "renja_id"),
            ("audit_offsets", "kafka_partition"),
            ("audit_rejects", "kafka_partition, kafka_offset"),
        ):
            out[table] = await conn.fetchrow(
                f"SELECT count(*) AS n, md5(string_agg(t::text, '|' ORDER BY {order})) AS digest FROM {table} t"
            )
        return {k: tuple(v) for k, v in out.items()}
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def audit_service(topic: str, tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, AuditSettings]]:
    async with run_service(create_app, AuditSettings, topic=topic, run_dir=tmp_path) as (client, settings):
        assert isinstance(settings, AuditSettings)
        yield client, settings


async def test_rebuild_from_offset_zero_equals_the_live_projection_and_swaps(topic: str, tmp_path: Path) -> None:
    runs = scenario()
    everything = [e for events in runs.values() for e in events]
    async with audit_service(topic, tmp_path) as (client, settings):
        await publish(settings.kafka_bootstrap, topic, everything)
        dsn = settings.postgres_dsn()
        await wait_rows(dsn, len(everything))
        cycles = (await client.get("/cycles", headers=auth(settings, "auditor"))).json()
        status = {c["opd"]: (c["status"], c["current_step"], c["head_signed"]) for c in cycles}
        assert status == {
            "Bappeda": ("distributed", None, True),
            "Dinas Kesehatan": ("cancelled", None, True),
            "Dinas PU": ("in_progress", 11, False),
        }
        before = await snapshot(dsn)

        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        key = create_key(settings)
        try:
            projector = Projector(SOP, key, REBUILD, keep_cache=True)
            assert await rebuild_equals_live(pool, bootstrap=settings.kafka_bootstrap, topic=topic, projector=projector)
            seen: list[tuple[int, int]] = []
            report = await rebuild(
                pool,
                bootstrap=settings.kafka_bootstrap,
                topic=topic,
                projector=projector,
                progress=lambda done, total: seen.append((done, total)),
            )
        finally:
            await pool.close()
        assert (report.records, report.events, report.equal, report.swapped) == (
            len(everything),
            len(everything),
            True,
            True,
        )
        assert seen[-1] == (len(everything), len(everything))
        assert await snapshot(dsn) == before
        # the live consumer keeps folding into the swapped-in tables
        late = cycle_events(SOP, uuid4(), start=START, cancel_before_step=3, opd="Dinas Sosial")
        await publish(settings.kafka_bootstrap, topic, late)
        await wait_rows(dsn, len(everything) + len(late))
        r = await client.get(f"/renja/{late[0].renja_id}/verify", headers=auth(settings, "auditor"))
        assert r.status_code == 200 and r.json()["ok"], r.text


def create_key(settings: AuditSettings) -> Ed25519PrivateKey:
    from services.audit.keys import load_signing_key

    return load_signing_key(settings)


async def test_verify_locates_a_changed_event_and_a_cut_off_tail(topic: str, tmp_path: Path) -> None:
    runs = scenario()
    done = runs["returns"]
    renja = done[0].renja_id
    async with audit_service(topic, tmp_path) as (client, settings):
        await publish(settings.kafka_bootstrap, topic, [e for events in runs.values() for e in events])
        dsn = settings.postgres_dsn()
        await wait_rows(dsn, sum(len(v) for v in runs.values()))
        headers = auth(settings, "auditor")
        clean = (await client.get(f"/renja/{renja}/verify", headers=headers)).json()
        assert clean["ok"] and clean["head_signed"] and clean["entries"] == clean["log_entries"] == len(done)

        conn = await asyncpg.connect(dsn)
        try:
            # an insider edits who signed off step 8 (position 8) in the stored event
            await conn.execute(
                "UPDATE audit_events SET event = jsonb_set(event, '{actor,name}', '\"Orang Lain\"')"
                " WHERE renja_id = $1 AND position = 8",
                renja,
            )
            changed = (await client.get(f"/renja/{renja}/verify", headers=headers)).json()
            assert not changed["ok"]
            assert changed["first_bad_position"] == 8
            assert changed["first_bad_event_id"] == str(done[7].event_id)
            kinds = {c["name"]: (c["ok"], c["position"], c["kind"]) for c in changed["checks"]}
            assert kinds["projection"] == (False, 8, "changed")
            assert kinds["kafka"] == (False, 8, "changed")
            assert kinds["signed_head"] == (True, None, None)
            page = await client.get(f"/renja/{renja}/timeline.html", params={"token": headers["Authorization"][7:]})
            assert page.status_code == 200 and "tidak utuh" in page.text

            # restore, then cut off the last two entries (the distribution receipts)
            await conn.execute(
                "UPDATE audit_events SET event = $2::jsonb WHERE renja_id = $1 AND position = 8",
                renja,
                done[7].model_dump_json(),
            )
            await conn.execute(
                "UPDATE audit_events SET event = event || jsonb_build_object('event_type', event_type)"
                " WHERE renja_id = $1 AND position = 8",
                renja,
            )
            assert (await client.get(f"/renja/{renja}/verify", headers=headers)).json()["ok"]
            await conn.execute("DELETE FROM audit_events WHERE renja_id = $1 AND position > $2", renja, len(done) - 2)
        finally:
            await conn.close()
        cut = (await client.get(f"/renja/{renja}/verify", headers=headers)).json()
        assert not cut["ok"]
        assert cut["first_bad_position"] == len(done) - 1
        assert cut["first_bad_event_id"] == str(done[-2].event_id)
        kinds = {c["name"]: (c["ok"], c["position"], c["kind"]) for c in cut["checks"]}
        assert kinds["projection"] == (True, None, None)  # what is left is self-consistent...
        assert kinds["kafka"] == (False, len(done) - 1, "truncated")  # ...but the log has more
        assert kinds["signed_head"] == (False, len(done) - 1, "truncated")  # ...and so has the signed head
        without_kafka = (await client.get(f"/renja/{renja}/verify?kafka=false", headers=headers)).json()
        assert not without_kafka["ok"] and without_kafka["first_bad_position"] == len(done) - 1


async def test_duplicate_delivery_changes_nothing(topic: str, tmp_path: Path) -> None:
    runs = scenario()
    everything = [e for events in runs.values() for e in events]
    async with audit_service(topic, tmp_path) as (_, settings):
        await publish(settings.kafka_bootstrap, topic, everything)
        dsn = settings.postgres_dsn()
        await wait_rows(dsn, len(everything))
        before = await snapshot(dsn)
        # every event delivered again (a producer retry or a relay re-publishing after a crash)
        await publish(settings.kafka_bootstrap, topic, everything)
        conn = await asyncpg.connect(dsn)
        try:
            for _ in range(300):
                if await conn.fetchval("SELECT sum(next_offset) FROM audit_offsets") == 2 * len(everything):
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the duplicates were never consumed")
        finally:
            await conn.close()
        after = await snapshot(dsn)
    assert after["audit_events"] == before["audit_events"]
    assert after["audit_cycles"] == before["audit_cycles"]
    assert after["audit_offsets"] != before["audit_offsets"]  # consumed, but nothing else changed


class CrashingProjector(Projector):
    """Fails inside the transaction after folding a batch, every ``every``-th batch (a crash mid-batch)."""

    def __init__(self, *args: Any, every: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.every = every
        self.calls = 0
        self.crashes = 0

    async def apply(self, conn: asyncpg.Connection, records: Any) -> BatchResult:
        result = await super().apply(conn, records)
        self.calls += 1
        if self.calls % self.every == 0:
            self.crashes += 1
            raise RuntimeError("simulated crash after the rows were written, before the commit")
        return result


@pytest.fixture
async def audit_db(settings: ServiceSettings) -> AsyncIterator[str]:
    name = f"t_{uuid4().hex[:12]}_audit"
    admin = await asyncpg.connect(settings.postgres_dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = settings.postgres_dsn(name)
        await migrate(dsn, MIGRATIONS)
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def test_a_crash_mid_batch_or_a_restart_loses_nothing(
    topic: str, audit_db: str, settings: ServiceSettings
) -> None:
    events = [e for i in range(6) for e in cycle_events(SOP, uuid4(), start=START, returns=(9,) * (i % 2))]
    await publish(settings.kafka_bootstrap, topic, events)
    key = Ed25519PrivateKey.generate()
    pool = await asyncpg.create_pool(audit_db, min_size=1, max_size=3)
    try:
        # small batches, every third one crashes before its commit; then a plain restart mid-stream
        crashing = CrashingProjector(SOP, key, LIVE, every=3)
        live = LiveProjection(
            pool=pool, bootstrap=settings.kafka_bootstrap, topic=topic, projector=crashing, batch_max=7
        )
        task = asyncio.create_task(live.run())
        for _ in range(300):
            async with pool.acquire() as conn:
                if await conn.fetchval("SELECT count(*) FROM audit_events") >= len(events) // 2:
                    break
            await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        assert crashing.crashes >= 1
        live = LiveProjection(
            pool=pool, bootstrap=settings.kafka_bootstrap, topic=topic, projector=Projector(SOP, key), batch_max=7
        )
        task = asyncio.create_task(live.run())
        try:
            for _ in range(300):
                async with pool.acquire() as conn:
                    if await conn.fetchval("SELECT sum(next_offset) FROM audit_offsets") == len(events):
                        break
                await asyncio.sleep(0.05)
            else:
                raise AssertionError("the restarted projection never caught up")
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        async with pool.acquire() as conn:
            stored = await conn.fetch("SELECT event_id, position FROM audit_events")
            assert sorted(str(r["event_id"]) for r in stored) == sorted(str(e.event_id) for e in events)
            per_renja = await conn.fetch(
                "SELECT count(*) AS n, max(position) AS last FROM audit_events GROUP BY renja_id"
            )
            assert all(r["n"] == r["last"] for r in per_renja)  # positions 1..n, no gaps, no repeats
        assert await rebuild_equals_live(
            pool,
            bootstrap=settings.kafka_bootstrap,
            topic=topic,
            projector=Projector(SOP, key, REBUILD, keep_cache=True),
        )
    finally:
        await pool.close()
