"""The outbox relay survives a Kafka crash: nothing appended meanwhile is lost, and it recovers by itself.

This test kills the local stack's broker (SIGKILL) and lets ``renja up`` restart it, so it runs with the
real stack only (``make test`` brings it up); other services reconnect on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from uuid import uuid4

import asyncpg
import pytest

from deploy.local import stack
from deploy.local.settings import StackSettings
from shared.eventstore import append
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings
from tests.kit.factories import directive
from tests.kit.kafkatools import read_all

pytestmark = pytest.mark.integration


async def append_events(dsn: str, count: int) -> list[str]:
    conn = await asyncpg.connect(dsn)
    ids: list[str] = []
    try:
        for _ in range(count):
            event = directive(uuid4())
            async with conn.transaction():
                await append(conn, service="t", stream_id=event.renja_id, expected_version=0, events=[event])
            ids.append(str(event.event_id))
    finally:
        await conn.close()
    return ids


async def published(dsn: str) -> tuple[int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT count(*) FILTER (WHERE published_at IS NOT NULL) AS done, count(*) AS total FROM events"
        )
        return int(row["done"]), int(row["total"])
    finally:
        await conn.close()


async def wait_all_published(dsn: str, timeout_s: float) -> None:
    for _ in range(int(timeout_s / 0.2)):
        done, total = await published(dsn)
        if done == total:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"only {done} of {total} published after {timeout_s}s")


async def test_kafka_killed_and_restarted_while_the_relay_runs_loses_nothing(
    scratch_db: str, topic: str, settings: ServiceSettings
) -> None:
    stack_settings = StackSettings()
    relay = OutboxRelay(dsn=scratch_db, service="t", bootstrap=settings.kafka_bootstrap, topic=topic, poll_seconds=0.2)
    task = asyncio.create_task(relay.run())
    try:
        before = await append_events(scratch_db, 50)
        await wait_all_published(scratch_db, 30)

        kafka_pid = (await stack.status(stack_settings))["kafka"].pid
        assert kafka_pid is not None
        os.kill(kafka_pid, signal.SIGKILL)
        while stack.pid_alive(kafka_pid):
            await asyncio.sleep(0.1)

        during = await append_events(scratch_db, 50)  # committed while no broker answers
        await asyncio.sleep(2.0)
        done, total = await published(scratch_db)
        assert done < total, "nothing can be acknowledged while the broker is down"

        actions = await stack.up(stack_settings, echo=lambda _line: None)
        assert actions["kafka"] == "restarted"
        await wait_all_published(scratch_db, 120)  # the relay reconnects by itself
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    on_kafka = {
        r.headers[1][1].decode() for r in await read_all(settings.kafka_bootstrap, topic, expect=100, timeout=60)
    }
    assert set(before + during) <= on_kafka
