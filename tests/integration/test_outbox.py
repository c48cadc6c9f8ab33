"""The outbox relay against real Postgres and a real Kafka broker."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from uuid import UUID, uuid4

import asyncpg
import pytest

from shared.eventstore import append
from shared.outbox import OutboxRelay
from shared.settings import ServiceSettings
from tests.kit.factories import directive
from tests.kit.kafkatools import read_all

pytestmark = pytest.mark.integration


@contextlib.asynccontextmanager
async def running(relay: OutboxRelay) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(relay.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def wait_published(dsn: str, count: int, timeout: float = 30.0) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(int(timeout / 0.1)):
            if await conn.fetchval("SELECT count(*) FROM events WHERE published_at IS NOT NULL") >= count:
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"fewer than {count} events published within {timeout}s")
    finally:
        await conn.close()


def ids(records: list) -> list[str]:  # type: ignore[type-arg]
    return [dict(r.headers)["ce_id"].decode() for r in records]


async def append_one(conn: asyncpg.Connection, stream: UUID | None = None, text: str = "x") -> UUID:
    event = directive(stream, text=text)
    await append(conn, service="t", stream_id=event.renja_id, expected_version=0, events=[event])
    return event.event_id


async def test_rolled_back_event_is_never_published(scratch_db: str, topic: str, settings: ServiceSettings) -> None:
    conn = await asyncpg.connect(scratch_db)
    with contextlib.suppress(RuntimeError):
        async with conn.transaction():
            await append_one(conn, text="rolled back")
            raise RuntimeError("the state change failed")
    async with conn.transaction():
        kept = await append_one(conn, text="kept")
    relay = OutboxRelay(dsn=scratch_db, service="t", bootstrap=settings.kafka_bootstrap, topic=topic, poll_seconds=0.2)
    async with running(relay):
        await wait_published(scratch_db, 1)
    records = await read_all(settings.kafka_bootstrap, topic, expect=1)
    assert ids(records) == [str(kept)]
    await conn.close()


async def test_late_commit_with_lower_sequence_is_still_published(
    scratch_db: str, topic: str, settings: ServiceSettings
) -> None:
    slow = await asyncpg.connect(scratch_db)
    fast = await asyncpg.connect(scratch_db)
    relay = OutboxRelay(dsn=scratch_db, service="t", bootstrap=settings.kafka_bootstrap, topic=topic, poll_seconds=0.2)
    async with running(relay):
        tx = slow.transaction()
        await tx.start()
        slow_id = await append_one(slow, text="takes the lower seq, commits last")
        async with fast.transaction():
            fast_id = await append_one(fast, text="higher seq, commits first")
        await wait_published(scratch_db, 1)
        await asyncio.sleep(0.5)  # several relay passes while the slow transaction is still open
        await tx.commit()
        await wait_published(scratch_db, 2)
    seqs = {r["event_id"]: r["seq"] for r in await fast.fetch("SELECT event_id, seq FROM events")}
    assert seqs[slow_id] < seqs[fast_id]
    records = await read_all(settings.kafka_bootstrap, topic, expect=2)
    assert sorted(ids(records)) == sorted([str(slow_id), str(fast_id)])
    await slow.close()
    await fast.close()


async def test_crash_after_ack_before_mark_republishes(scratch_db: str, topic: str, settings: ServiceSettings) -> None:
    conn = await asyncpg.connect(scratch_db)
    async with conn.transaction():
        event_id = await append_one(conn)
    crashes = 0

    async def crash_once(_: list[int]) -> None:
        nonlocal crashes
        if crashes == 0:
            crashes += 1
            raise ConnectionResetError("relay killed between broker ack and published_at update")

    relay = OutboxRelay(
        dsn=scratch_db,
        service="t",
        bootstrap=settings.kafka_bootstrap,
        topic=topic,
        poll_seconds=0.2,
        after_ack=crash_once,
    )
    async with running(relay):
        await wait_published(scratch_db, 1)
    records = await read_all(settings.kafka_bootstrap, topic, expect=2)
    assert ids(records) == [str(event_id), str(event_id)]  # at least once: published twice
    await conn.close()


async def test_second_relay_waits_while_the_leader_runs(scratch_db: str, topic: str, settings: ServiceSettings) -> None:
    first = OutboxRelay(dsn=scratch_db, service="t", bootstrap=settings.kafka_bootstrap, topic=topic, poll_seconds=0.2)
    second = OutboxRelay(dsn=scratch_db, service="t", bootstrap=settings.kafka_bootstrap, topic=topic, poll_seconds=0.2)
    async with running(first):
        for _ in range(100):
            if first.is_leader:
                break
            await asyncio.sleep(0.1)
        async with running(second):
            await asyncio.sleep(1.0)
            assert first.is_leader and not second.is_leader
        conn = await asyncpg.connect(scratch_db)
        async with conn.transaction():
            await append_one(conn)
        await wait_published(scratch_db, 1)
        await conn.close()
    assert first.published_total == 1 and second.published_total == 0
    # once the leader is gone, the waiting instance takes over
    async with running(second):
        conn = await asyncpg.connect(scratch_db)
        async with conn.transaction():
            await append_one(conn)
        await wait_published(scratch_db, 2)
        await conn.close()
    assert second.published_total == 1
    assert len(await read_all(settings.kafka_bootstrap, topic, expect=2)) == 2


async def test_relay_publishes_a_burst_in_batches_in_stream_order(
    scratch_db: str, topic: str, settings: ServiceSettings
) -> None:
    conn = await asyncpg.connect(scratch_db)
    stream = uuid4()
    events = [directive(stream, text=f"n{i}") for i in range(1200)]
    async with conn.transaction():
        await append(conn, service="t", stream_id=stream, expected_version=0, events=events)
    relay = OutboxRelay(
        dsn=scratch_db, service="t", bootstrap=settings.kafka_bootstrap, topic=topic, poll_seconds=0.2, batch_max=500
    )
    async with running(relay):
        await wait_published(scratch_db, 1200)
    records = await read_all(settings.kafka_bootstrap, topic, expect=1200)
    assert ids(records) == [str(e.event_id) for e in events]  # one key, one partition, log order kept
    await conn.close()


async def test_a_row_the_broker_refuses_is_set_aside_and_blocks_only_its_own_renja(
    scratch_db: str, topic: str, settings: ServiceSettings
) -> None:
    conn = await asyncpg.connect(scratch_db)
    stuck, other = uuid4(), uuid4()
    huge = directive(stuck, text="x" * 1_200_000)  # bigger than the producer's 1 MiB request limit
    # Written past the append() size guard on purpose: a row that is already in an outbox (an older
    # version, a broker with a smaller limit) must not stop the relay.
    await conn.execute(
        "INSERT INTO events (event_id, stream_id, version, event_type, source, occurred_at, data)"
        " VALUES ($1, $2, 1, $3, 'directive', $4, $5::jsonb)",
        huge.event_id,
        stuck,
        huge.event_type,
        huge.occurred_at,
        huge.model_dump_json(),
    )
    async with conn.transaction():
        behind = directive(stuck, text="after the huge one")
        await append(conn, service="t", stream_id=stuck, expected_version=1, events=[behind])
        fine = directive(other, text="another Renja")
        await append(conn, service="t", stream_id=other, expected_version=0, events=[fine])
    relay = OutboxRelay(dsn=scratch_db, service="t", bootstrap=settings.kafka_bootstrap, topic=topic, poll_seconds=0.2)
    async with running(relay):
        await wait_published(scratch_db, 1)
        await asyncio.sleep(1.0)  # several more passes: the relay keeps running and does not retry it
    assert relay.is_leader is False  # stopped by the context manager
    rows = {r["event_id"]: r for r in await conn.fetch("SELECT * FROM events")}
    assert rows[huge.event_id]["publish_error"].startswith("MessageSizeTooLargeError")
    assert rows[huge.event_id]["published_at"] is None
    assert rows[behind.event_id]["published_at"] is None  # waits behind it: that Renja's order is kept
    assert rows[fine.event_id]["published_at"] is not None
    assert ids(await read_all(settings.kafka_bootstrap, topic, expect=1)) == [str(fine.event_id)]
    await conn.close()
