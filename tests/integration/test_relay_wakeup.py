"""The outbox relay never misses a wake-up (issue 17.3): a commit that lands while a batch is being
published starts the next pass at once, not after ``poll_seconds``.

The relay polls only once an hour here, so a lost wake-up leaves the second event unpublished and the
test fails at its (generous) bound; nothing here measures time.
"""

from __future__ import annotations

import asyncio
import contextlib
from uuid import UUID

import asyncpg
import pytest

from shared.eventstore import append
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings
from tests.kit.factories import directive
from tests.kit.kafkatools import read_all

pytestmark = pytest.mark.integration

NEVER_S = 3600.0
"""The relay's poll period in this test: only a wake-up can start a pass."""

HANG_BOUND_S = 60.0
"""How long the test waits before calling the relay stuck (a missed wake-up would wait ``NEVER_S``)."""


async def commit_one(dsn: str) -> UUID:
    conn = await asyncpg.connect(dsn)
    try:
        event = directive()
        async with conn.transaction():
            await append(conn, service="t", stream_id=event.renja_id, expected_version=0, events=[event])
        return event.event_id
    finally:
        await conn.close()


async def published(dsn: str, event_ids: list[UUID]) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM events WHERE event_id = ANY($1::uuid[]) AND published_at IS NOT NULL", event_ids
            )
        )
    finally:
        await conn.close()


async def test_a_commit_during_a_publish_is_taken_by_the_next_pass_without_the_poll(
    scratch_db: str, topic: str, settings: ServiceSettings
) -> None:
    committed: list[UUID] = []

    async def second_command_while_the_first_is_published(seqs: list[int]) -> None:
        # runs after the broker acknowledged the first batch, before the relay marks it: the back-to-back
        # command commits now, and wakes the relay the way a service's command does
        if len(committed) == 1:
            committed.append(await commit_one(scratch_db))
            relay.wake()

    relay = OutboxRelay(
        dsn=scratch_db,
        service="t",
        bootstrap=settings.kafka_bootstrap,
        topic=topic,
        poll_seconds=NEVER_S,
        after_ack=second_command_while_the_first_is_published,
    )
    task = asyncio.create_task(relay.run())
    try:
        for _ in range(600):  # leading and listening before the first command
            if relay.is_leader:
                break
            await asyncio.sleep(0.05)
        assert relay.is_leader
        committed.append(await commit_one(scratch_db))
        relay.wake()

        async def both_published() -> None:
            while len(committed) < 2 or await published(scratch_db, committed) < 2:
                await asyncio.sleep(0.05)

        try:
            await asyncio.wait_for(both_published(), timeout=HANG_BOUND_S)
        except TimeoutError:
            pytest.fail(f"the second event waited for the poll: a wake-up was missed (passes: {relay.passes_total})")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    records = await read_all(settings.kafka_bootstrap, topic, expect=2)
    assert sorted(dict(r.headers)["ce_id"].decode() for r in records) == sorted(str(e) for e in committed)
