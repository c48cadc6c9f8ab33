"""Fixtures shared by every tier. Integration and e2e tests use the real local stack (``make up``)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from uuid import uuid4

import asyncpg
import pytest

from shared.db import migrate
from shared.kafka import ensure_topics
from shared.settings import ServiceSettings


@pytest.fixture(scope="session")
def settings() -> ServiceSettings:
    """Connection settings of the running local stack (``RENJA_*`` env or the documented defaults)."""
    return ServiceSettings(service="tests", environment="test")


@pytest.fixture
async def scratch_db(settings: ServiceSettings) -> AsyncIterator[str]:
    """A fresh database with the shared plumbing migrated; dropped afterwards. Yields its DSN."""
    name = f"t_{uuid4().hex[:12]}"
    admin = await asyncpg.connect(settings.postgres_dsn("postgres"))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = settings.postgres_dsn(name)
        await migrate(dsn, None)
        yield dsn
    finally:
        if not os.environ.get("RENJA_KEEP_TEST_DB"):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


@pytest.fixture
async def topic(settings: ServiceSettings) -> str:
    """A fresh 6-partition topic (auto-create is off on the broker)."""
    name = f"test.{uuid4().hex[:12]}"
    await ensure_topics(settings.kafka_bootstrap, {name: (6, {}), f"{name}.dlq": (1, {})})
    return name
