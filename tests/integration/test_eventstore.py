"""Event store against real Postgres: optimistic concurrency, idempotency, append-only."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import asyncpg
import pytest

from shared.cloudevents import OUTBOX_COLUMNS, from_kafka, record_from_row, to_kafka
from shared.eventstore import ConcurrencyConflict, DuplicateEvent, append, load_stream, stream_version
from shared.origin import SignedBy, process_trust, service_signer, verify_record
from tests.kit.factories import directive

pytestmark = pytest.mark.integration


async def test_concurrent_appends_exactly_one_wins_per_version(scratch_db: str) -> None:
    pool = await asyncpg.create_pool(scratch_db, min_size=10, max_size=10)
    stream = uuid4()
    gate = asyncio.Event()

    async def contender(i: int) -> str:
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await gate.wait()
                    await append(
                        conn,
                        service="t",
                        stream_id=stream,
                        expected_version=0,
                        events=[directive(stream, text=f"contender {i}")],
                    )
                return "won"
            except ConcurrencyConflict:
                return "conflict"

    tasks = [asyncio.create_task(contender(i)) for i in range(10)]
    await asyncio.sleep(0.2)
    gate.set()
    results = await asyncio.gather(*tasks)
    assert results.count("won") == 1
    assert results.count("conflict") == 9
    async with pool.acquire() as conn:
        assert await stream_version(conn, stream) == 1
        assert len(await load_stream(conn, stream)) == 1
    await pool.close()


async def test_same_event_id_is_stored_once(scratch_db: str) -> None:
    conn = await asyncpg.connect(scratch_db)
    event = directive()
    async with conn.transaction():
        await append(conn, service="t", stream_id=event.renja_id, expected_version=0, events=[event])
    with pytest.raises(DuplicateEvent):
        async with conn.transaction():
            await append(conn, service="t", stream_id=uuid4(), expected_version=0, events=[event])
    await conn.close()


async def test_events_are_append_only(scratch_db: str) -> None:
    conn = await asyncpg.connect(scratch_db)
    event = directive()
    async with conn.transaction():
        await append(conn, service="t", stream_id=event.renja_id, expected_version=0, events=[event])
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await conn.execute("""UPDATE events SET data = jsonb_set(data, '{text}', '"forged"')""")
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await conn.execute("DELETE FROM events")
    await conn.execute("UPDATE events SET published_at = now()")  # the relay's flag may change
    stored = await load_stream(conn, event.renja_id)
    assert stored[0].event == event and stored[0].published
    await conn.close()


async def test_each_row_is_signed_at_append_and_sent_as_stored(scratch_db: str) -> None:
    conn = await asyncpg.connect(scratch_db)
    event = directive()
    async with conn.transaction():
        await append(conn, service="directive", stream_id=event.renja_id, expected_version=0, events=[event])
    row = await conn.fetchrow(f"SELECT {OUTBOX_COLUMNS} FROM events WHERE event_id = $1", event.event_id)
    await conn.close()
    record = record_from_row(row, "http://schemas.example")
    assert record.value == to_kafka(event).value  # the exact bytes that were signed, not jsonb's rendering
    signer = verify_record(record.key, record.value, record.headers, process_trust().registry)
    assert signer == SignedBy("directive", service_signer("directive").key_id)
    assert record_from_row(row, "http://elsewhere").headers[-2:] == record.headers[-2:]  # same stored signature
    assert from_kafka(record.key, record.value, record.headers) == event


async def test_the_signature_is_as_append_only_as_the_event(scratch_db: str) -> None:
    conn = await asyncpg.connect(scratch_db)
    event = directive()
    async with conn.transaction():
        await append(conn, service="directive", stream_id=event.renja_id, expected_version=0, events=[event])
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await conn.execute("UPDATE events SET signature = 'AAAA' WHERE event_id = $1", event.event_id)
    await conn.close()
