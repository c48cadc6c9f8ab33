"""Run a service in-process for integration tests: its own fresh database, a given topic, real Kafka."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import httpx
from asgi_lifespan import LifespanManager
from fastapi import FastAPI

from shared.kafka import ensure_topics
from shared.settings import ServiceSettings
from tests.kit.tokens import auth


@contextlib.asynccontextmanager
async def run_service(
    create_app: Callable[[Any], FastAPI],
    settings_cls: type[ServiceSettings],
    *,
    topic: str,
    database: str | None = None,
    **overrides: Any,
) -> AsyncIterator[tuple[httpx.AsyncClient, ServiceSettings]]:
    """Start ``create_app(settings)`` with lifespan on a fresh database (or ``database``) and ``topic``.

    Yields an HTTP client bound to the app and the settings used. The fresh database is dropped afterwards.
    """
    base = settings_cls(environment="test")
    db = database or f"t_{uuid4().hex[:10]}_{base.service}"
    admin = await asyncpg.connect(base.postgres_dsn("postgres"))
    if database is None:
        await admin.execute(f'CREATE DATABASE "{db}"')
    settings = settings_cls(
        environment="test",
        postgres_database=db,
        event_topic=topic,
        dlq_topic_prefix=f"{topic}.dlq.",
        relay_poll_seconds=0.2,
        # a group of its own: joining the running stack's group (same name, other topic) would make the
        # stack's service and this one rebalance each other, slowing both and their shutdown
        consumer_group=overrides.pop("consumer_group", f"{base.service}.{topic}"),
        **overrides,
    )
    await ensure_topics(settings.kafka_bootstrap, {settings.dlq_topic: (1, {})})
    app = create_app(settings)
    try:
        async with LifespanManager(app, startup_timeout=120, shutdown_timeout=30) as manager:
            transport = httpx.ASGITransport(app=manager.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
                yield client, settings
    finally:
        if database is None:
            await admin.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        await admin.close()


async def wait_state(
    client: httpx.AsyncClient,
    settings: ServiceSettings,
    renja_id: UUID | str,
    *,
    until: Callable[[dict[str, Any]], bool],
    timeout_s: float = 30.0,
) -> dict[str, Any]:
    """Poll ``GET /renja/{id}/state`` until ``until(state)`` holds (events arrive through Kafka)."""
    last: dict[str, Any] = {}
    for _ in range(int(timeout_s / 0.1)):
        r = await client.get(f"/renja/{renja_id}/state", headers=auth(settings, "auditor"))
        if r.status_code == 200:
            last = r.json()["state"]
            if until(last):
                return last
        await asyncio.sleep(0.1)
    raise AssertionError(f"state of {renja_id} never satisfied the condition; last: {last}")
