"""The idempotent consumer against real Kafka and Postgres: exactly-once effects, DLQ for poison."""

from __future__ import annotations

import asyncio
import contextlib
import json
from uuid import uuid4

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from shared.cloudevents import KafkaRecord
from shared.events import Event
from shared.inbox import Delivery, IdempotentConsumer
from shared.settings import ServiceSettings
from tests.kit.factories import directive
from tests.kit.kafkatools import read_all
from tests.kit.signing import sign_as, signed

pytestmark = pytest.mark.integration


async def effects_table(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    # no unique key on purpose: a double application would show as two rows
    await conn.execute("CREATE TABLE applied (event_id uuid NOT NULL, text text NOT NULL)")
    await conn.close()


async def record_effect(conn: asyncpg.Connection, event: Event, _: Delivery) -> None:
    if getattr(event, "text", "") == "explode":
        raise ValueError("handler cannot apply this event")
    await conn.execute("INSERT INTO applied VALUES ($1, $2)", event.event_id, getattr(event, "text", ""))


async def produce(settings: ServiceSettings, topic: str, records: list[tuple[bytes | None, bytes, list]]) -> None:  # type: ignore[type-arg]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for key, value, headers in records:
            await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()


def good(text: str, stream=None) -> tuple[bytes, bytes, list]:  # type: ignore[no-untyped-def,type-arg]
    rec = signed(directive(stream, text=text))
    return rec.key, rec.value, rec.headers


async def wait_applied(dsn: str, count: int, timeout: float = 45.0) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n = 0
        for _ in range(int(timeout / 0.1)):
            n = await conn.fetchval("SELECT count(*) FROM applied")
            if n >= count:
                return int(n)
            await asyncio.sleep(0.1)
        return int(n)
    finally:
        await conn.close()


def make_consumer(pool: asyncpg.Pool, settings: ServiceSettings, topic: str, group: str, **kw) -> IdempotentConsumer:  # type: ignore[no-untyped-def]
    return IdempotentConsumer(
        pool=pool,
        bootstrap=settings.kafka_bootstrap,
        topic=topic,
        group_id=group,
        dlq_topic=f"{topic}.dlq",
        handler=record_effect,
        **kw,
    )


async def test_poison_messages_go_to_the_dlq_and_the_next_good_one_is_applied(
    scratch_db: str, topic: str, settings: ServiceSettings
) -> None:
    await effects_table(scratch_db)
    stream = uuid4()
    key, value, headers = good("template", stream)
    h = dict(headers)
    poison = [
        (key, b"{not json", headers),
        (key, value, [(k, v) for k, v in headers if k != "ce_source"]),
        (key, json.dumps({**json.loads(value), "level": "bisikan"}).encode(), headers),
        good("explode", stream),
    ]
    # A newer producer's event type is skipped, not dead-lettered (tolerant reader).
    future = (key, value, list({**h, "ce_type": b"renja.Unknown.v9"}.items()))
    # ... and a known event with a field this release does not know is applied (the field ignored).
    newer_key, newer_value, newer_headers = good("with a newer field", stream)
    newer_value = json.dumps({**json.loads(newer_value), "opd_kode": "1.02"}).encode()
    newer_headers = [(k, v) for k, v in newer_headers if k not in ("ce_signature", "ce_signaturekeyid")]
    newer = (newer_key, newer_value, sign_as("directive", KafkaRecord(newer_key, newer_value, newer_headers)).headers)
    last = good("after the poison", stream)
    await produce(settings, topic, [poison[0], future, newer, *poison[1:], last])
    pool = await asyncpg.create_pool(scratch_db, min_size=1, max_size=4)
    consumer = make_consumer(pool, settings, topic, f"g-{uuid4().hex[:8]}")
    task = asyncio.create_task(consumer.run())
    try:
        assert await wait_applied(scratch_db, 2) == 2
        dead = await read_all(settings.kafka_bootstrap, f"{topic}.dlq", expect=4)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.close()
    reasons = [dict(r.headers)["dlq_reason"].decode() for r in dead]
    assert reasons == ["not_json", "missing_header", "bad_schema", "handler_error"]
    assert consumer.stats.skipped_unknown == {"renja.Unknown.v9": 1}
    assert all(dict(r.headers)["dlq_error"] for r in dead)
    assert dead[0].value == b"{not json"  # the original message is kept as it was
    conn = await asyncpg.connect(scratch_db)
    applied = [r["text"] for r in await conn.fetch("SELECT text FROM applied")]
    assert applied == ["with a newer field", "after the poison"]
    await conn.close()


async def test_redelivered_and_republished_events_are_applied_once(
    scratch_db: str, topic: str, settings: ServiceSettings
) -> None:
    await effects_table(scratch_db)
    records = [good(f"e{i}") for i in range(50)]
    await produce(settings, topic, records + records[:10])  # a relay re-send after a crash
    pool = await asyncpg.create_pool(scratch_db, min_size=1, max_size=4)
    group = f"g-{uuid4().hex[:8]}"
    consumer = make_consumer(pool, settings, topic, group)
    task = asyncio.create_task(consumer.run())
    assert await wait_applied(scratch_db, 50) == 50
    for _ in range(50):
        if consumer.stats.duplicates >= 10:
            break
        await asyncio.sleep(0.1)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert consumer.stats.duplicates == 10
    await pool.close()


async def test_consumer_killed_mid_batch_applies_every_event_exactly_once(
    scratch_db: str, topic: str, settings: ServiceSettings
) -> None:
    await effects_table(scratch_db)
    total = 300
    await produce(settings, topic, [good(f"e{i}") for i in range(total)])
    pool = await asyncpg.create_pool(scratch_db, min_size=1, max_size=4)
    group = f"g-{uuid4().hex[:8]}"
    seen = 0
    killed = asyncio.Event()

    async def slow_then_die(conn: asyncpg.Connection, event: Event, d: Delivery) -> None:
        nonlocal seen
        await record_effect(conn, event, d)
        seen += 1
        if seen == 70:
            killed.set()
            await asyncio.sleep(3600)  # cancelled here, in the middle of a batch transaction

    first = IdempotentConsumer(
        pool=pool,
        bootstrap=settings.kafka_bootstrap,
        topic=topic,
        group_id=group,
        dlq_topic=f"{topic}.dlq",
        handler=slow_then_die,
        batch_max=100,
    )
    task = asyncio.create_task(first.run())
    await asyncio.wait_for(killed.wait(), 60)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    second = make_consumer(pool, settings, topic, group, batch_max=100)
    task2 = asyncio.create_task(second.run())
    applied = await wait_applied(scratch_db, total)
    await asyncio.sleep(1.0)
    task2.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task2
    conn = await asyncpg.connect(scratch_db)
    rows = await conn.fetch("SELECT event_id, count(*) AS n FROM applied GROUP BY event_id")
    await conn.close()
    await pool.close()
    assert applied == total
    assert len(rows) == total and all(r["n"] == 1 for r in rows)


async def test_a_duplicate_id_with_another_payload_is_dead_lettered_and_counted(
    scratch_db: str, topic: str, settings: ServiceSettings
) -> None:
    await effects_table(scratch_db)
    original = directive(uuid4(), text="asli")
    other = original.model_copy(update={"text": "palsu, validly signed"})  # same event id, other content
    first, conflict, redelivery = signed(original), signed(other), signed(original)
    after = good("after the conflict", original.renja_id)
    await produce(settings, topic, [(r.key, r.value, r.headers) for r in (first, conflict, redelivery)] + [after])
    pool = await asyncpg.create_pool(scratch_db, min_size=1, max_size=4)
    consumer = make_consumer(pool, settings, topic, f"g-{uuid4().hex[:8]}")
    task = asyncio.create_task(consumer.run())
    try:
        assert await wait_applied(scratch_db, 2) == 2
        dead = await read_all(settings.kafka_bootstrap, f"{topic}.dlq", expect=1)
        for _ in range(100):
            if consumer.stats.duplicates >= 1:
                break
            await asyncio.sleep(0.1)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.close()
    assert [dict(r.headers)["dlq_reason"] for r in dead] == [b"duplicate_id_conflict"]
    assert dead[0].value == conflict.value and str(original.event_id).encode() in dict(dead[0].headers)["dlq_error"]
    assert consumer.stats.duplicate_conflicts == 1
    assert consumer.stats.dead_lettered_by_reason == {"duplicate_id_conflict": 1}
    assert consumer.stats.duplicates == 1  # the identical re-delivery stays a silent duplicate
    conn = await asyncpg.connect(scratch_db)
    applied = [r["text"] for r in await conn.fetch("SELECT text FROM applied")]
    await conn.close()
    assert applied == ["asli", "after the conflict"]


async def test_an_unsigned_or_forged_record_is_dead_lettered_with_its_reason(
    scratch_db: str, topic: str, settings: ServiceSettings
) -> None:
    await effects_table(scratch_db)
    stream = uuid4()
    key, value, headers = good("genuine", stream)
    unsigned = [(k, v) for k, v in headers if not k.startswith("ce_signature")]
    tampered = json.dumps({**json.loads(value), "text": "tampered"}).encode()
    await produce(settings, topic, [(key, value, unsigned), (key, tampered, headers), (key, value, headers)])
    pool = await asyncpg.create_pool(scratch_db, min_size=1, max_size=4)
    consumer = make_consumer(pool, settings, topic, f"g-{uuid4().hex[:8]}")
    task = asyncio.create_task(consumer.run())
    try:
        assert await wait_applied(scratch_db, 1) == 1
        dead = await read_all(settings.kafka_bootstrap, f"{topic}.dlq", expect=2)
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.close()
    assert [dict(r.headers)["dlq_reason"] for r in dead] == [b"unsigned", b"bad_signature"]
    assert consumer.stats.dead_lettered_by_reason == {"unsigned": 1, "bad_signature": 1}
