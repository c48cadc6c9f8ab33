"""A new fold version refolds the live audit projection from the log on start-up; the same one keeps it."""

from __future__ import annotations

from pathlib import Path
from uuid import uuid4

import asyncpg
import pytest

from services.audit.main import create_app
from services.audit.settings import AuditSettings
from services.audit.versioning import PROJECTION_VERSION, ensure_projection_version
from tests.integration.test_audit_projection import SOP, START, publish, wait_rows
from tests.kit.driver import cycle_events
from tests.kit.servicekit import run_service

pytestmark = pytest.mark.integration


async def test_an_older_fold_version_is_refolded_from_the_log_and_the_same_version_is_kept(
    topic: str, tmp_path: Path, scratch_db: str
) -> None:
    events = cycle_events(SOP, uuid4(), start=START, receipts=1)
    db = scratch_db.rsplit("/", 1)[1]  # kept across the two starts below; dropped by the fixture
    async with run_service(create_app, AuditSettings, topic=topic, database=db, run_dir=tmp_path) as (_, settings):
        await publish(settings.kafka_bootstrap, topic, events)
        await wait_rows(settings.postgres_dsn(), len(events))
        conn = await asyncpg.connect(settings.postgres_dsn())
        assert await conn.fetchval("SELECT value FROM audit_meta WHERE key = 'projection_version'") == (
            PROJECTION_VERSION
        )
        # what an older release's fold would have left: same rows, an older mark, one row that differs
        await conn.execute("UPDATE audit_meta SET value = 'old'")
        await conn.execute("UPDATE audit_cycles SET status = 'stale'")
        await conn.close()

    async with run_service(create_app, AuditSettings, topic=topic, database=db, run_dir=tmp_path) as (_, settings):
        await wait_rows(settings.postgres_dsn(), len(events))  # refolded from offset 0 by the new start
        conn = await asyncpg.connect(settings.postgres_dsn())
        try:
            assert await conn.fetchval("SELECT value FROM audit_meta WHERE key = 'projection_version'") == (
                PROJECTION_VERSION
            )
            assert await conn.fetchval("SELECT status FROM audit_cycles") == "distributed"
            assert await conn.fetchval("SELECT count(*) FROM audit_events") == len(events)
            # the same version again: nothing is emptied
            pool = await asyncpg.create_pool(settings.postgres_dsn(), min_size=1, max_size=1)
            assert await ensure_projection_version(pool) is False
            await pool.close()
            assert await conn.fetchval("SELECT count(*) FROM audit_events") == len(events)
        finally:
            await conn.close()
