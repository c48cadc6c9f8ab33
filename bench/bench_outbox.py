"""Benchmark: the event store and the outbox relay against their raw limits (asyncpg, aiokafka).

1. N decider-valid events (whole Renja cycles) are written to a scratch database's ``events`` table twice:
   - raw limit: the same rows with one bare asyncpg ``executemany`` per batch transaction;
   - ``shared.eventstore.append``: one call per Renja cycle, ``--batch`` events per transaction
     (encoding, the INSERT and the ``pg_notify`` wake-up included);
2. the stored rows, read back exactly as the relay reads them, are published:
   - raw limit: a bare idempotent aiokafka producer (``shared.kafka.start_producer``, ``acks=all``) sending
     the same key/value/headers to scratch topic A (``send`` for all, then ``gather``);
   - ``OutboxRelay.run`` (leadership, producer start, batches of ``--relay-batch``, marking after the
     acks) publishing to scratch topic B, timed until every row is marked published;
   - ``OutboxRelay.publish_until_short`` (the loop ``run`` uses) on a started producer: the relay's steady
     state without its start-up, to scratch topic C;
3. prints events/s for each and the ratios: relay / bare producer (target >= 0.7, issue 2) and
   append / raw insert (no target; it shows what the store's guarantees cost).

The scratch database and topics are removed afterwards. Run against the local stack:
``uv run python bench/bench_outbox.py --events 50000``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import Sequence
from uuid import uuid4

import asyncpg
from benchkit import (
    Rate,
    Stopwatch,
    bench_settings,
    flatten,
    ratio_line,
    scratch_database,
    scratch_topics,
    synthetic_cycles,
)

from shared.cloudevents import build_headers, encode_data
from shared.events import Event
from shared.eventstore import append
from shared.kafka import start_producer
from shared.outbox import OutboxRelay, pending_count

INSERT = """INSERT INTO events (event_id, stream_id, version, event_type, source, occurred_at, data, headers)
            VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8::jsonb)"""

SELECT_AS_RELAY = (
    "SELECT seq, event_id, stream_id, event_type, source, occurred_at, data::text AS data,"
    " headers->>'traceparent' AS traceparent FROM events ORDER BY seq"
)

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


def batches_of(cycles: Sequence[list[Event]], size: int) -> list[list[list[Event]]]:
    """Consecutive cycles grouped so each group holds about ``size`` events (a whole cycle never splits)."""
    groups: list[list[list[Event]]] = [[]]
    count = 0
    for cycle in cycles:
        if count >= size:
            groups.append([])
            count = 0
        groups[-1].append(cycle)
        count += len(cycle)
    return groups


def raw_rows(cycle: list[Event]) -> list[tuple[object, ...]]:
    """The row tuples ``append`` builds for one fresh stream (versions 1…), encoded ahead of the timing."""
    headers = json.dumps({})
    return [
        (e.event_id, e.renja_id, i + 1, e.event_type, e.source, e.occurred_at, encode_data(e).decode(), headers)
        for i, e in enumerate(cycle)
    ]


async def raw_insert(conn: asyncpg.Connection, groups: list[list[list[Event]]]) -> Rate:
    prepared = [[row for cycle in group for row in raw_rows(cycle)] for group in groups]
    with Stopwatch() as sw:
        for rows in prepared:
            async with conn.transaction():
                await conn.executemany(INSERT, rows)
    return Rate("raw asyncpg executemany (limit)", sum(map(len, prepared)), sw.seconds)


async def store_append(conn: asyncpg.Connection, groups: list[list[list[Event]]], service: str) -> Rate:
    n = 0
    with Stopwatch() as sw:
        for group in groups:
            async with conn.transaction():
                for cycle in group:
                    await append(conn, service=service, stream_id=cycle[0].renja_id, expected_version=0, events=cycle)
                    n += len(cycle)
    return Rate("shared.eventstore.append", n, sw.seconds)


async def relay_records(conn: asyncpg.Connection) -> list[Record]:
    """Every stored event as the relay sends it: key, the jsonb text as value, CloudEvents headers."""
    records: list[Record] = []
    for r in await conn.fetch(SELECT_AS_RELAY):
        headers = build_headers(
            event_id=r["event_id"],
            source=r["source"],
            event_type=r["event_type"],
            time=r["occurred_at"],
            subject=r["stream_id"],
            traceparent=r["traceparent"],
        )
        records.append((str(r["stream_id"]).encode(), r["data"].encode(), headers))
    return records


async def bare_producer(bootstrap: str, topic: str, records: list[Record]) -> Rate:
    producer = await start_producer(bootstrap, client_id="bench-bare-producer")
    try:
        with Stopwatch() as sw:
            futures = [await producer.send(topic, key=k, value=v, headers=h) for k, v, h in records]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return Rate("bare aiokafka idempotent producer (limit)", len(records), sw.seconds)


async def relay_run(dsn: str, bootstrap: str, topic: str, service: str, batch: int, n: int) -> Rate:
    """``OutboxRelay.run`` from start until every row is marked published (start-up included)."""
    relay = OutboxRelay(dsn=dsn, service=service, bootstrap=bootstrap, topic=topic, batch_max=batch)
    conn = await asyncpg.connect(dsn)
    try:
        with Stopwatch() as sw:
            task = asyncio.create_task(relay.run())
            while relay.published_total < n:
                if task.done():
                    task.result()  # the relay stopped: show why
                await asyncio.sleep(0.01)
        left = await pending_count(conn)
        if left:
            raise RuntimeError(f"relay counted {relay.published_total} but {left} rows are still unpublished")
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await conn.close()
    return Rate(f"OutboxRelay.run (batch {batch}, start-up incl.)", relay.published_total, sw.seconds)


async def relay_steady(dsn: str, bootstrap: str, topic: str, service: str, batch: int) -> Rate:
    """``OutboxRelay.publish_until_short`` on a started producer: the relay's steady state."""
    relay = OutboxRelay(dsn=dsn, service=service, bootstrap=bootstrap, topic=topic, batch_max=batch)
    conn = await asyncpg.connect(dsn)
    producer = await start_producer(bootstrap, client_id="bench-relay-steady")
    try:
        n = 0
        with Stopwatch() as sw:
            while sent := await relay.publish_until_short(conn, producer):
                n += sent
        if await pending_count(conn):
            raise RuntimeError("rows left unpublished after the steady-state relay")
    finally:
        await producer.stop()
        await conn.close()
    return Rate(f"OutboxRelay.publish_until_short (batch {batch})", n, sw.seconds)


async def main(events: int, batch: int, relay_batch: int, partitions: int) -> None:
    settings = bench_settings()
    service = f"bench{uuid4().hex[:8]}"  # its own advisory lock and NOTIFY channel
    cycles = synthetic_cycles(events)
    n = len(flatten(cycles))
    groups = batches_of(cycles, batch)
    print(f"{n} events in {len(cycles)} Renja cycles, {len(groups)} transactions of ~{batch} events")
    async with (
        scratch_database(settings) as dsn,
        scratch_topics(settings, partitions, partitions, partitions) as (topic_a, topic_b, topic_c),
    ):
        conn = await asyncpg.connect(dsn)
        try:
            raw = await raw_insert(conn, groups)
            await conn.execute("TRUNCATE events")
            stored = await store_append(conn, groups, service)
            records = await relay_records(conn)
        finally:
            await conn.close()
        bare = await bare_producer(settings.kafka_bootstrap, topic_a, records)
        relay = await relay_run(dsn, settings.kafka_bootstrap, topic_b, service, relay_batch, n)
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("UPDATE events SET published_at = NULL")
        finally:
            await conn.close()
        steady = await relay_steady(dsn, settings.kafka_bootstrap, topic_c, service, relay_batch)
    for rate in (raw, stored, bare, relay, steady):
        print(rate.line())
    print(ratio_line("append / raw insert", stored, raw, None))
    print(ratio_line("relay run / bare producer", relay, bare, 0.7))
    print(ratio_line("relay steady state / bare producer", steady, bare, 0.7))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000, help="events to write and publish (default 50000)")
    parser.add_argument("--batch", type=int, default=500, help="events per insert/append transaction")
    parser.add_argument("--relay-batch", type=int, default=500, help="OutboxRelay batch_max (service default 500)")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of each scratch topic")
    args = parser.parse_args()
    asyncio.run(main(args.events, args.batch, args.relay_batch, args.partitions))
